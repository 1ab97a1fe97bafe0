//! Token bucket as plain state, so the server can keep it in the database and
//! several instances share one limit per phone number.

use serde::{Deserialize, Serialize};

/// Float slack so that waiting exactly the returned `wait_ms` always succeeds
/// despite rounding in `tokens + elapsed * rate`; far too small to grant an
/// extra message.
const EPSILON: f64 = 1e-9;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TokenBucket {
    pub tokens: f64,
    pub updated_ms: i64,
}

impl TokenBucket {
    /// A bucket that can send a full burst right away.
    pub fn full(burst: f64, now_ms: i64) -> TokenBucket {
        TokenBucket {
            tokens: burst.max(1.0),
            updated_ms: now_ms,
        }
    }
}

/// Refills at `rate_per_sec` up to `burst`, then tries to take one token;
/// returns `Ok(new_state)` or `Err(wait_ms)` until a token is available.
///
/// On `Err` the caller keeps the old state: the refill is recomputed from
/// `updated_ms` next time, so nothing is lost. A clock that goes backwards
/// (another instance slightly behind) refills nothing and never moves
/// `updated_ms` back, so skew cannot mint tokens. `burst` below 1 is treated
/// as 1 (otherwise nothing could ever be sent); a non-positive or NaN rate
/// never refills and reports `u64::MAX` when empty.
///
/// Choose `burst >= 1 + rate_per_sec / 1000` (see [`min_burst_for`]): waits
/// are whole milliseconds, so the refill overshoots a little, and a bucket
/// capped at 1 throws that fraction away: at 80/s with burst 1 only ~96% of
/// the rate gets through, at 800/s ~63%.
pub fn try_take(
    state: TokenBucket,
    now_ms: i64,
    rate_per_sec: f64,
    burst: f64,
) -> Result<TokenBucket, u64> {
    let burst = if burst.is_nan() { 1.0 } else { burst.max(1.0) };
    let rate = if rate_per_sec.is_nan() || rate_per_sec < 0.0 {
        0.0
    } else {
        rate_per_sec
    };
    let elapsed_ms = now_ms.saturating_sub(state.updated_ms).max(0);
    let current = if state.tokens.is_nan() {
        0.0
    } else {
        state.tokens
    };
    let refilled = (current + elapsed_ms as f64 * rate / 1000.0).min(burst);
    let updated_ms = state.updated_ms.max(now_ms);
    if refilled + EPSILON >= 1.0 {
        return Ok(TokenBucket {
            tokens: refilled - 1.0,
            updated_ms,
        });
    }
    if rate == 0.0 {
        return Err(u64::MAX);
    }
    let missing = 1.0 - refilled;
    let wait = (missing * 1000.0 / rate).ceil();
    // Waits are measured from `updated_ms`, which may be ahead of `now_ms`.
    let ahead = state.updated_ms.saturating_sub(now_ms).max(0) as f64;
    Err(((wait + ahead).max(1.0)) as u64)
}

/// Smallest burst that lets a sender polling at the returned waits reach the
/// full rate (see [`try_take`]).
pub fn min_burst_for(rate_per_sec: f64) -> f64 {
    (1.0 + rate_per_sec.max(0.0) / 1000.0).ceil()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn burst_then_rate() {
        let mut b = TokenBucket::full(3.0, 0);
        for _ in 0..3 {
            b = try_take(b, 0, 1.0, 3.0).unwrap();
        }
        assert_eq!(try_take(b, 0, 1.0, 3.0), Err(1_000));
        assert_eq!(try_take(b, 400, 1.0, 3.0), Err(600));
        let b = try_take(b, 1_000, 1.0, 3.0).unwrap();
        assert!(b.tokens.abs() < 1e-9);
        assert_eq!(b.updated_ms, 1_000);
    }

    /// A sender that sleeps exactly the returned waits for `duration_ms`.
    fn drive(rate: f64, burst: f64, duration_ms: i64) -> u64 {
        let mut b = TokenBucket {
            tokens: 0.0,
            updated_ms: 0,
        };
        let mut sent = 0;
        let mut now = 0;
        loop {
            match try_take(b, now, rate, burst) {
                Ok(nb) => {
                    b = nb;
                    sent += 1;
                }
                Err(wait) => {
                    now += wait as i64;
                    if now > duration_ms {
                        return sent;
                    }
                }
            }
        }
    }

    #[test]
    fn eighty_per_second() {
        assert_eq!(min_burst_for(80.0), 2.0);
        // 80/s over 10 s from an empty bucket.
        assert_eq!(drive(80.0, 2.0, 10_000), 800);
        assert_eq!(drive(1_000.0, min_burst_for(1_000.0), 10_000), 10_000);
    }

    #[test]
    fn burst_of_one_loses_the_fractions() {
        assert_eq!(drive(80.0, 1.0, 10_000), 769);
        assert!(drive(800.0, 1.0, 10_000) < 5_100);
    }

    #[test]
    fn refill_is_capped_at_burst() {
        let b = TokenBucket {
            tokens: 0.0,
            updated_ms: 0,
        };
        let b = try_take(b, 1_000_000, 10.0, 5.0).unwrap();
        assert!((b.tokens - 4.0).abs() < 1e-9);
    }

    #[test]
    fn clock_going_backwards_mints_nothing() {
        let b = TokenBucket {
            tokens: 0.5,
            updated_ms: 10_000,
        };
        assert_eq!(try_take(b, 9_000, 1.0, 1.0), Err(1_500));
        let b = TokenBucket {
            tokens: 1.5,
            updated_ms: 10_000,
        };
        let nb = try_take(b, 9_000, 1.0, 2.0).unwrap();
        assert_eq!(nb.updated_ms, 10_000);
    }

    #[test]
    fn degenerate_parameters() {
        let empty = TokenBucket {
            tokens: 0.0,
            updated_ms: 0,
        };
        assert_eq!(try_take(empty, 1_000, 0.0, 10.0), Err(u64::MAX));
        assert_eq!(try_take(empty, 1_000, -5.0, 10.0), Err(u64::MAX));
        assert_eq!(try_take(empty, 1_000, f64::NAN, 10.0), Err(u64::MAX));
        // burst < 1 behaves as 1.
        assert!(try_take(empty, 1_000, 1.0, 0.2).is_ok());
        let corrupt = TokenBucket {
            tokens: f64::NAN,
            updated_ms: 0,
        };
        assert_eq!(try_take(corrupt, 0, 1.0, 1.0), Err(1_000));
    }

    proptest! {
        /// Over any sequence of attempts at non-decreasing times, the successes
        /// inside any window of T ms are at most burst + rate*T/1000.
        #[test]
        fn never_exceeds_the_limit(
            rate in 0.5f64..1_000.0,
            burst in 1.0f64..50.0,
            steps in prop::collection::vec(0i64..200, 1..300),
        ) {
            // A full bucket at the start is the worst case for the bound.
            let mut state = TokenBucket::full(burst, 0);
            let mut now = 0i64;
            let mut taken = Vec::new();
            for dt in steps {
                now += dt;
                if let Ok(s) = try_take(state, now, rate, burst) {
                    state = s;
                    taken.push(now);
                }
            }
            for (i, &a) in taken.iter().enumerate() {
                for (j, &b) in taken.iter().enumerate().skip(i) {
                    let t = (b - a) as f64;
                    let count = (j - i + 1) as f64;
                    prop_assert!(count <= burst + rate * t / 1000.0 + 1e-6,
                        "{} takes in {} ms (rate {}, burst {})", count, t, rate, burst);
                }
            }
        }

        #[test]
        fn waiting_the_returned_time_succeeds(
            rate in 0.01f64..2_000.0,
            burst in 1.0f64..20.0,
            tokens in -5.0f64..1.0,
            now in 0i64..1_000_000,
            behind in 0i64..1_000,
        ) {
            let state = TokenBucket { tokens, updated_ms: now + behind };
            match try_take(state, now, rate, burst) {
                Ok(_) => {}
                Err(wait) => {
                    prop_assert!(wait >= 1);
                    prop_assert!(try_take(state, now + wait as i64, rate, burst).is_ok(),
                        "wait {} not enough", wait);
                    if wait > 1 {
                        prop_assert!(try_take(state, now + wait as i64 - 2, rate, burst).is_err());
                    }
                }
            }
        }

        #[test]
        fn sustained_rate_is_reached(rate in 1.0f64..1_000.0) {
            // Outbound target: at least 95% of the configured rate, never above.
            let sent = drive(rate, min_burst_for(rate), 10_000) as f64;
            prop_assert!(sent >= 0.99 * rate * 10.0 - 1.0, "sent {} at rate {}", sent, rate);
            prop_assert!(sent <= rate * 10.0 + 1.0, "sent {} at rate {}", sent, rate);
        }
    }
}
