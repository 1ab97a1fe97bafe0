//! The WhatsApp 24 h customer service window: free-form and interactive
//! messages are allowed only within 24 h of the customer's last message;
//! outside it only approved templates may be sent (Graph error 131047).

use serde::{Deserialize, Serialize};

pub const SERVICE_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum WindowState {
    Open {
        closes_at_ms: i64,
    },
    /// `closed_at_ms: None` means the customer never wrote, so only templates
    /// can start the conversation.
    Closed {
        closed_at_ms: Option<i64>,
    },
}

/// The window closes exactly 24 h after the last inbound message and counts
/// as closed from that instant on: at the boundary, offering a template is
/// safer than a free-form send that Meta may reject with 131047.
pub fn window_state(last_inbound_ms: Option<i64>, now_ms: i64) -> WindowState {
    match last_inbound_ms {
        None => WindowState::Closed { closed_at_ms: None },
        Some(last) => {
            let closes_at_ms = last.saturating_add(SERVICE_WINDOW_MS);
            if now_ms < closes_at_ms {
                WindowState::Open { closes_at_ms }
            } else {
                WindowState::Closed {
                    closed_at_ms: Some(closes_at_ms),
                }
            }
        }
    }
}

impl WindowState {
    pub fn is_open(&self) -> bool {
        matches!(self, WindowState::Open { .. })
    }

    /// Milliseconds left before the window closes (0 when closed), for the
    /// composer's countdown.
    pub fn remaining_ms(&self, now_ms: i64) -> i64 {
        match *self {
            WindowState::Open { closes_at_ms } => closes_at_ms.saturating_sub(now_ms).max(0),
            WindowState::Closed { .. } => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn never_wrote_is_closed_without_a_date() {
        let s = window_state(None, 1_000);
        assert_eq!(s, WindowState::Closed { closed_at_ms: None });
        assert!(!s.is_open());
        assert_eq!(s.remaining_ms(1_000), 0);
    }

    #[test]
    fn open_until_just_before_24h() {
        let last = 1_700_000_000_000;
        let s = window_state(Some(last), last);
        assert_eq!(
            s,
            WindowState::Open {
                closes_at_ms: last + SERVICE_WINDOW_MS
            }
        );
        assert!(s.is_open());
        assert_eq!(s.remaining_ms(last), SERVICE_WINDOW_MS);
        assert!(window_state(Some(last), last + SERVICE_WINDOW_MS - 1).is_open());
        assert_eq!(
            window_state(Some(last), last + SERVICE_WINDOW_MS),
            WindowState::Closed {
                closed_at_ms: Some(last + SERVICE_WINDOW_MS)
            }
        );
        assert!(!window_state(Some(last), last + 3 * SERVICE_WINDOW_MS).is_open());
    }

    #[test]
    fn inbound_in_the_future_counts_as_open() {
        // Clock skew between instances must not lock agents out.
        let s = window_state(Some(10_000), 0);
        assert_eq!(
            s,
            WindowState::Open {
                closes_at_ms: 10_000 + SERVICE_WINDOW_MS
            }
        );
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        assert!(window_state(Some(i64::MAX), i64::MIN).is_open());
        assert!(!window_state(Some(i64::MIN), i64::MAX).is_open());
    }

    #[test]
    fn serde_shape() {
        let json = serde_json::to_string(&WindowState::Open { closes_at_ms: 5 }).unwrap();
        assert_eq!(json, r#"{"state":"open","closes_at_ms":5}"#);
        let json = serde_json::to_string(&WindowState::Closed { closed_at_ms: None }).unwrap();
        assert_eq!(json, r#"{"state":"closed","closed_at_ms":null}"#);
    }

    proptest! {
        #[test]
        fn open_iff_less_than_24h_elapsed(last in -1_000_000_000_000i64..5_000_000_000_000, dt in -1_000_000i64..200_000_000) {
            let s = window_state(Some(last), last + dt);
            prop_assert_eq!(s.is_open(), dt < SERVICE_WINDOW_MS);
            prop_assert!(s.remaining_ms(last + dt) <= SERVICE_WINDOW_MS.max(SERVICE_WINDOW_MS - dt));
        }
    }
}
