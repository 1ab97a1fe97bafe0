//! Login throttling: how many password checks a key (an account, a client address) gets, and how
//! long it waits after that.
//!
//! Two uses, deliberately different:
//! - **Accounts** reserve an attempt *before* the password is checked ([`reserve`]): the first
//!   `free_attempts` go through at once, then each further attempt must wait an exponentially
//!   growing delay. Parallel requests cannot all slip through, and a locked-out owner waits
//!   seconds, not a fixed quarter of an hour.
//! - **Addresses** only count failures ([`record_failure`]) and slow down the *failed* answers
//!   ([`failure_delay_ms`]): a correct password is never refused because other accounts failed
//!   from the same office network or proxy.
//!
//! A key is forgotten once it has been quiet for a whole window after its back-off ended.

/// The numbers of one throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Attempts (accounts) or failures (addresses) allowed before any delay.
    pub free_attempts: i64,
    /// A key quiet for this long starts again from zero.
    pub window_ms: i64,
    /// The first delay; each further attempt doubles it.
    pub base_delay_ms: i64,
    /// The longest delay.
    pub max_delay_ms: i64,
}

impl Policy {
    /// Five attempts per account, then 1 s, 2 s, 4 s... up to 15 minutes.
    pub const ACCOUNT: Policy = Policy {
        free_attempts: 5,
        window_ms: 15 * 60 * 1000,
        base_delay_ms: 1000,
        max_delay_ms: 15 * 60 * 1000,
    };
    /// Twenty failures per address, then failed answers slowed by 0.25 s, 0.5 s... up to 8 s.
    pub const ADDRESS: Policy = Policy {
        free_attempts: 20,
        window_ms: 15 * 60 * 1000,
        base_delay_ms: 250,
        max_delay_ms: 8000,
    };

    /// The delay after the `n`-th attempt (1-based): zero while `n` is below the free attempts.
    pub fn delay_after(&self, n: i64) -> i64 {
        let over = n - self.free_attempts;
        if over < 0 {
            return 0;
        }
        let doublings = u32::try_from(over.min(62)).unwrap_or(62);
        self.base_delay_ms
            .saturating_mul(1i64.checked_shl(doublings).unwrap_or(i64::MAX))
            .clamp(0, self.max_delay_ms)
    }
}

/// What is stored per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyState {
    pub attempts: i64,
    pub last_attempt_at: i64,
    pub blocked_until: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Check the password.
    Proceed,
    /// Answer 429 with `Retry-After`; nothing was checked.
    Wait { retry_after_ms: i64 },
}

/// A key is forgotten only after a whole window of quiet *after* its back-off ended, so a guesser
/// waiting out the longest delay does not get the free attempts again.
fn live(policy: &Policy, state: Option<KeyState>, now: i64) -> Option<KeyState> {
    state.filter(|s| now - s.last_attempt_at.max(s.blocked_until) < policy.window_ms)
}

/// An account's attempt: proceed (and count it) or wait. The new state is to be stored in the
/// same transaction that read `state`.
pub fn reserve(policy: &Policy, state: Option<KeyState>, now: i64) -> (Verdict, KeyState) {
    let state = live(policy, state, now);
    if let Some(s) = state.filter(|s| s.blocked_until > now) {
        return (
            Verdict::Wait {
                retry_after_ms: s.blocked_until - now,
            },
            s,
        );
    }
    let attempts = state.map_or(0, |s| s.attempts) + 1;
    let delay = policy.delay_after(attempts);
    let next = KeyState {
        attempts,
        last_attempt_at: now,
        blocked_until: if delay > 0 { now + delay } else { 0 },
    };
    (Verdict::Proceed, next)
}

/// An address's failure, counted.
pub fn record_failure(policy: &Policy, state: Option<KeyState>, now: i64) -> KeyState {
    let attempts = live(policy, state, now).map_or(0, |s| s.attempts) + 1;
    KeyState {
        attempts,
        last_attempt_at: now,
        blocked_until: 0,
    }
}

/// How long to hold a failed answer for an address with `failures` failures.
pub fn failure_delay_ms(policy: &Policy, failures: i64) -> i64 {
    policy.delay_after(failures)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const P: Policy = Policy::ACCOUNT;

    fn run(n: usize, now: i64) -> (Vec<Verdict>, KeyState) {
        let mut state = None;
        let mut verdicts = Vec::new();
        for _ in 0..n {
            let (v, s) = reserve(&P, state, now);
            verdicts.push(v);
            state = Some(s);
        }
        (
            verdicts,
            state.unwrap_or(KeyState {
                attempts: 0,
                last_attempt_at: 0,
                blocked_until: 0,
            }),
        )
    }

    #[test]
    fn parallel_attempts_at_one_instant_get_exactly_the_free_ones() {
        let (verdicts, state) = run(40, 1_000_000);
        let proceeded = verdicts.iter().filter(|v| **v == Verdict::Proceed).count();
        assert_eq!(proceeded, 5);
        assert_eq!(
            verdicts[5],
            Verdict::Wait {
                retry_after_ms: 1000
            }
        );
        assert_eq!(state.attempts, 5);
    }

    #[test]
    fn after_the_free_attempts_the_delay_doubles() {
        let mut now = 0;
        let mut state = run(5, now).1;
        let mut waits = Vec::new();
        for _ in 0..4 {
            now = state.blocked_until;
            let (v, s) = reserve(&P, Some(state), now);
            assert_eq!(v, Verdict::Proceed, "the back-off is over at {now}");
            waits.push(s.blocked_until - now);
            state = s;
        }
        assert_eq!(waits, vec![2000, 4000, 8000, 16000]);
    }

    #[test]
    fn a_quiet_window_forgets_the_key() {
        let (_, state) = run(5, 0);
        let later = state.blocked_until.max(state.last_attempt_at) + P.window_ms;
        let (v, s) = reserve(&P, Some(state), later);
        assert_eq!(v, Verdict::Proceed);
        assert_eq!(s.attempts, 1);
    }

    #[test]
    fn waiting_out_the_longest_delay_does_not_bring_the_free_attempts_back() {
        let mut state = run(5, 0).1;
        // Guess as soon as each back-off ends, for a day.
        let mut proceeded = 5;
        let mut now;
        for _ in 0..200 {
            now = state.blocked_until;
            if now > 24 * 3600 * 1000 {
                break;
            }
            let (v, s) = reserve(&P, Some(state), now);
            assert_eq!(v, Verdict::Proceed);
            assert!(s.attempts > 5, "never forgotten while guessing: {s:?}");
            proceeded += 1;
            state = s;
        }
        assert!(proceeded < 120, "about 4 an hour at the cap: {proceeded}");
    }

    #[test]
    fn the_delay_is_capped() {
        assert_eq!(P.delay_after(4), 0);
        assert_eq!(P.delay_after(5), 1000);
        assert_eq!(P.delay_after(500), P.max_delay_ms);
    }

    #[test]
    fn address_failures_slow_answers_only_past_the_free_ones() {
        let a = Policy::ADDRESS;
        let mut state = None;
        for _ in 0..20 {
            state = Some(record_failure(&a, state, 0));
        }
        let failures = state.map_or(0, |s| s.attempts);
        assert_eq!(failures, 20);
        assert_eq!(failure_delay_ms(&a, 19), 0);
        assert_eq!(failure_delay_ms(&a, 20), 250);
        assert_eq!(failure_delay_ms(&a, 30), 8000);
    }

    proptest! {
        /// However attempts are spread in time, no more than the free attempts plus one per
        /// elapsed back-off ever proceed, and a waiting verdict never outlasts the cap.
        #[test]
        fn never_more_than_free_attempts_at_once(gaps in proptest::collection::vec(0i64..3000, 1..200)) {
            let mut state = None;
            let mut now = 0;
            let mut proceeded_within_first_second = 0;
            for gap in gaps {
                now += gap;
                let (v, s) = reserve(&P, state, now);
                if let Verdict::Wait { retry_after_ms } = v {
                    prop_assert!(retry_after_ms > 0 && retry_after_ms <= P.max_delay_ms);
                } else if now < 1000 {
                    proceeded_within_first_second += 1;
                }
                state = Some(s);
            }
            prop_assert!(proceeded_within_first_second <= P.free_attempts);
        }
    }
}
