//! Outbound delivery status. Meta's status webhooks arrive late, duplicated
//! and out of order, so the stored status only ever moves up a fixed order and
//! any order of arrival ends in the same place.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Queued,
    Sending,
    Sent,
    Delivered,
    Read,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown delivery status {0:?}")]
pub struct UnknownStatus(pub String);

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 6] = [
        DeliveryStatus::Queued,
        DeliveryStatus::Sending,
        DeliveryStatus::Sent,
        DeliveryStatus::Delivered,
        DeliveryStatus::Read,
        DeliveryStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Read => "read",
            DeliveryStatus::Failed => "failed",
        }
    }

    /// Accepts our names, which are also the values of Meta's `statuses[].status`
    /// for sent/delivered/read/failed.
    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        DeliveryStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Position in the total order `advance` follows. `Failed` ranks above
    /// everything but `Read`: a failure overrides progress reports, yet a
    /// read receipt proves the customer got the message, so a stale failure
    /// (e.g. of a retry) must not hide it. Making it a total order is what
    /// makes the outcome independent of arrival order. Also usable in SQL as
    /// `UPDATE ... WHERE status_rank < $new_rank`.
    pub fn rank(self) -> u8 {
        match self {
            DeliveryStatus::Queued => 0,
            DeliveryStatus::Sending => 1,
            DeliveryStatus::Sent => 2,
            DeliveryStatus::Delivered => 3,
            DeliveryStatus::Failed => 4,
            DeliveryStatus::Read => 5,
        }
    }

    /// The status after learning `next`: the higher-ranked of the two.
    pub fn advance(self, next: DeliveryStatus) -> DeliveryStatus {
        if next.rank() > self.rank() {
            next
        } else {
            self
        }
    }

    /// Whether `next` would change the stored status.
    pub fn can_advance_to(self, next: DeliveryStatus) -> bool {
        next.rank() > self.rank()
    }

    /// No later report can change it.
    pub fn is_final(self) -> bool {
        self == DeliveryStatus::Read
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeliveryStatus::parse(s).ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::DeliveryStatus::*;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_round_trip() {
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
            assert_eq!(s.to_string().parse::<DeliveryStatus>(), Ok(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert_eq!(DeliveryStatus::parse("READ"), None);
        assert_eq!(
            "deleted".parse::<DeliveryStatus>(),
            Err(UnknownStatus("deleted".into()))
        );
    }

    #[test]
    fn exhaustive_transition_table() {
        // Rows: current; columns: incoming, in ALL order.
        let expected = [
            /* Queued    */ [Queued, Sending, Sent, Delivered, Read, Failed],
            /* Sending   */ [Sending, Sending, Sent, Delivered, Read, Failed],
            /* Sent      */ [Sent, Sent, Sent, Delivered, Read, Failed],
            /* Delivered */ [Delivered, Delivered, Delivered, Delivered, Read, Failed],
            /* Read      */ [Read, Read, Read, Read, Read, Read],
            /* Failed    */ [Failed, Failed, Failed, Failed, Read, Failed],
        ];
        for (i, cur) in DeliveryStatus::ALL.into_iter().enumerate() {
            for (j, next) in DeliveryStatus::ALL.into_iter().enumerate() {
                assert_eq!(cur.advance(next), expected[i][j], "{cur} + {next}");
                assert_eq!(cur.can_advance_to(next), cur.advance(next) != cur);
            }
        }
    }

    #[test]
    fn out_of_order_reports() {
        assert_eq!(Sent.advance(Read).advance(Delivered), Read);
        assert_eq!(Queued.advance(Delivered).advance(Sent), Delivered);
        assert_eq!(Sending.advance(Failed).advance(Sent), Failed);
        assert_eq!(Read.advance(Failed), Read);
        assert!(Read.is_final());
        assert!(!Failed.is_final());
    }

    proptest! {
        #[test]
        fn any_permutation_ends_in_the_same_state(
            statuses in prop::collection::vec(prop::sample::select(DeliveryStatus::ALL.to_vec()), 0..12),
            seed in any::<u64>(),
            start in prop::sample::select(DeliveryStatus::ALL.to_vec()),
        ) {
            let forward = statuses.iter().fold(start, |s, &n| s.advance(n));
            let mut shuffled = statuses.clone();
            // Deterministic Fisher-Yates driven by the seed.
            let mut x = seed | 1;
            for i in (1..shuffled.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                shuffled.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let permuted = shuffled.iter().fold(start, |s, &n| s.advance(n));
            prop_assert_eq!(forward, permuted);
            let reversed = statuses.iter().rev().fold(start, |s, &n| s.advance(n));
            prop_assert_eq!(forward, reversed);
            // Never goes down.
            let mut cur = start;
            for &n in &statuses {
                let nxt = cur.advance(n);
                prop_assert!(nxt.rank() >= cur.rank());
                cur = nxt;
            }
        }

        #[test]
        fn advance_is_idempotent(a in prop::sample::select(DeliveryStatus::ALL.to_vec()), b in prop::sample::select(DeliveryStatus::ALL.to_vec())) {
            prop_assert_eq!(a.advance(b).advance(b), a.advance(b));
            prop_assert_eq!(a.advance(a), a);
        }
    }
}
