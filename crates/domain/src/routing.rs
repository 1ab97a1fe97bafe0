//! Choosing which agent gets the next conversation of a queue. The database
//! re-checks capacity atomically when assigning; this is only the preference.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub agent_id: i64,
    pub active: u32,
    pub max_simultaneous: u32,
    pub available: bool,
    pub idle_since_ms: i64,
}

impl Candidate {
    pub fn has_capacity(&self) -> bool {
        self.available && self.active < self.max_simultaneous
    }
}

/// Available agents below their limit; least loaded first, then longest idle
/// (smallest `idle_since_ms`), then lowest id so the choice is deterministic.
pub fn choose_agent(candidates: &[Candidate]) -> Option<i64> {
    rank_agents(candidates).first().copied()
}

/// All eligible agents in preference order, for retrying the atomic
/// assignment with the next one when the first lost a race.
pub fn rank_agents(candidates: &[Candidate]) -> Vec<i64> {
    let mut eligible: Vec<&Candidate> = candidates.iter().filter(|c| c.has_capacity()).collect();
    eligible.sort_by_key(|c| (c.active, c.idle_since_ms, c.agent_id));
    eligible.into_iter().map(|c| c.agent_id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c(agent_id: i64, active: u32, max: u32, available: bool, idle: i64) -> Candidate {
        Candidate {
            agent_id,
            active,
            max_simultaneous: max,
            available,
            idle_since_ms: idle,
        }
    }

    #[test]
    fn empty_and_ineligible() {
        assert_eq!(choose_agent(&[]), None);
        assert_eq!(
            choose_agent(&[
                c(1, 0, 3, false, 0),
                c(2, 3, 3, true, 0),
                c(3, 0, 0, true, 0),
                c(4, 5, 3, true, 0)
            ]),
            None
        );
    }

    #[test]
    fn least_loaded_first() {
        assert_eq!(
            choose_agent(&[c(1, 2, 5, true, 0), c(2, 1, 5, true, 100)]),
            Some(2)
        );
    }

    #[test]
    fn then_longest_idle_then_lowest_id() {
        assert_eq!(
            choose_agent(&[c(1, 1, 5, true, 500), c(2, 1, 5, true, 100)]),
            Some(2)
        );
        assert_eq!(
            choose_agent(&[c(9, 1, 5, true, 100), c(3, 1, 5, true, 100)]),
            Some(3)
        );
    }

    #[test]
    fn unavailable_or_full_are_skipped_even_if_less_loaded() {
        assert_eq!(
            choose_agent(&[
                c(1, 0, 5, false, 0),
                c(2, 1, 1, true, 0),
                c(3, 4, 5, true, 0)
            ]),
            Some(3)
        );
        assert_eq!(
            rank_agents(&[
                c(1, 2, 5, true, 0),
                c(2, 0, 5, true, 9),
                c(3, 0, 5, true, 1)
            ]),
            vec![3, 2, 1]
        );
    }

    proptest! {
        #[test]
        fn chosen_agent_is_eligible_and_minimal(cands in prop::collection::vec(
            (0i64..20, 0u32..6, 0u32..6, any::<bool>(), 0i64..5).prop_map(|(a, b, m, av, i)| c(a, b, m, av, i)), 0..15)
        ) {
            match choose_agent(&cands) {
                None => prop_assert!(cands.iter().all(|x| !x.has_capacity())),
                Some(id) => {
                    let best = cands.iter().filter(|x| x.has_capacity())
                        .min_by_key(|x| (x.active, x.idle_since_ms, x.agent_id)).unwrap();
                    prop_assert_eq!(id, best.agent_id);
                    prop_assert!(cands.iter().filter(|x| x.has_capacity()).all(|x| x.active >= best.active));
                }
            }
        }
    }
}
