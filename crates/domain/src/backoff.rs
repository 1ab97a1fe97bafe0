//! Retry timing for the outbox. The caller supplies the random number so this
//! stays pure and tests can pin it.

/// Delay before retry number `attempt` (1 = first retry; 0 is treated as 1).
///
/// The ceiling doubles per attempt (`base_ms * 2^(attempt-1)`, capped at
/// `cap_ms`) and the delay is drawn uniformly between `min_ms` and that ceiling
/// ("full jitter" with a floor): full jitter spreads the retries of many
/// workers hit by the same 429, and the floor keeps a 0-ish draw from
/// hammering the Graph API. `jitter_unit` is clamped to `0..=1` (NaN counts
/// as 1, the conservative end). If `min_ms > cap_ms`, `cap_ms` wins: the cap is
/// the operator's promise about how long a message may sit between attempts.
pub fn backoff_delay_ms(
    attempt: u32,
    base_ms: u64,
    cap_ms: u64,
    min_ms: u64,
    jitter_unit: f64,
) -> u64 {
    let exponent = attempt.saturating_sub(1);
    let growth = 1u64.checked_shl(exponent).unwrap_or(u64::MAX);
    let ceiling = base_ms.saturating_mul(growth).min(cap_ms);
    let floor = min_ms.min(cap_ms);
    let ceiling = ceiling.max(floor);
    let unit = if jitter_unit.is_nan() {
        1.0
    } else {
        jitter_unit.clamp(0.0, 1.0)
    };
    let span = ceiling - floor;
    // `as` saturates, and the `min` absorbs float rounding at the top end.
    let jitter = ((span as f64) * unit).round() as u64;
    floor.saturating_add(jitter.min(span))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn grows_exponentially_until_the_cap() {
        let d = |a| backoff_delay_ms(a, 500, 60_000, 0, 1.0);
        assert_eq!(d(0), 500);
        assert_eq!(d(1), 500);
        assert_eq!(d(2), 1_000);
        assert_eq!(d(3), 2_000);
        assert_eq!(d(8), 60_000);
        assert_eq!(d(64), 60_000);
        assert_eq!(d(u32::MAX), 60_000);
    }

    #[test]
    fn jitter_spans_floor_to_ceiling() {
        assert_eq!(backoff_delay_ms(3, 500, 60_000, 250, 0.0), 250);
        assert_eq!(backoff_delay_ms(3, 500, 60_000, 250, 1.0), 2_000);
        assert_eq!(backoff_delay_ms(3, 500, 60_000, 250, 0.5), 1_125);
        assert_eq!(backoff_delay_ms(3, 500, 60_000, 0, 0.5), 1_000);
    }

    #[test]
    fn odd_inputs() {
        assert_eq!(backoff_delay_ms(3, 500, 60_000, 250, f64::NAN), 2_000);
        assert_eq!(backoff_delay_ms(3, 500, 60_000, 250, -3.0), 250);
        assert_eq!(backoff_delay_ms(3, 500, 60_000, 250, 7.0), 2_000);
        assert_eq!(backoff_delay_ms(3, 500, 60_000, 250, f64::INFINITY), 2_000);
        // Floor above cap: the cap wins.
        assert_eq!(backoff_delay_ms(1, 500, 1_000, 5_000, 0.0), 1_000);
        // Floor above the exponential ceiling: floor wins.
        assert_eq!(backoff_delay_ms(1, 100, 10_000, 1_000, 0.7), 1_000);
        assert_eq!(backoff_delay_ms(1, 0, 0, 0, 0.5), 0);
        assert_eq!(backoff_delay_ms(70, u64::MAX, u64::MAX, 0, 1.0), u64::MAX);
    }

    proptest! {
        #[test]
        fn always_within_bounds(attempt in any::<u32>(), base in any::<u64>(), cap in any::<u64>(), min in any::<u64>(), j in any::<f64>()) {
            let d = backoff_delay_ms(attempt, base, cap, min, j);
            prop_assert!(d <= cap);
            prop_assert!(d >= min.min(cap));
        }

        #[test]
        fn ceiling_is_monotonic_in_attempt(attempt in 0u32..80, base in 0u64..100_000, cap in 0u64..10_000_000, min in 0u64..10_000) {
            let a = backoff_delay_ms(attempt, base, cap, min, 1.0);
            let b = backoff_delay_ms(attempt + 1, base, cap, min, 1.0);
            prop_assert!(b >= a);
        }

        #[test]
        fn monotonic_in_jitter(attempt in 0u32..40, base in 0u64..100_000, cap in 0u64..10_000_000, min in 0u64..10_000, j1 in 0.0f64..=1.0, j2 in 0.0f64..=1.0) {
            let (lo, hi) = if j1 <= j2 { (j1, j2) } else { (j2, j1) };
            prop_assert!(backoff_delay_ms(attempt, base, cap, min, lo) <= backoff_delay_ms(attempt, base, cap, min, hi));
        }
    }
}
