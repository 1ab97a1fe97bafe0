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

/// A conversation waiting for a person, in the order it should be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub conversation_id: i64,
    /// `None`: handed over without a queue; any available person may take it.
    pub queue_id: Option<i64>,
    /// Set when it waits in one agent's personal line (a transfer to a busy agent).
    pub only_agent_id: Option<i64>,
    /// The limit of agents without one of their own (the queue's default).
    pub default_limit: u32,
    /// Who sent it to this queue: served by anyone else first, by them only when no one else can.
    pub avoid_agent_id: Option<i64>,
}

/// A person who may receive conversations, as routing sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub agent_id: i64,
    /// Conversations assigned now.
    pub load: u32,
    /// Their own limit; `None` = the waiting conversation's queue default.
    pub max_concurrent: Option<u32>,
    pub available: bool,
    pub idle_since_ms: i64,
    pub queue_ids: Vec<i64>,
}

impl Agent {
    fn may_take(&self, w: &Waiting) -> bool {
        let member = match (w.only_agent_id, w.queue_id) {
            (Some(only), _) => only == self.agent_id,
            (None, None) => true,
            (None, Some(q)) => self.queue_ids.contains(&q),
        };
        let limit = self.max_concurrent.unwrap_or(w.default_limit);
        member && self.available && self.load < limit
    }
}

/// Which waiting conversation goes to whom, serving `waiting` in order: each goes to an eligible
/// agent below their limit (least loaded, then longest idle, then lowest id) or keeps waiting.
/// Loads grow as the plan is made, so no agent ever ends above their limit.
pub fn plan_assignments(waiting: &[Waiting], agents: &[Agent], now_ms: i64) -> Vec<(i64, i64)> {
    let mut agents = agents.to_vec();
    let mut plan = Vec::new();
    for w in waiting {
        let best = agents.iter_mut().filter(|a| a.may_take(w)).min_by_key(|a| {
            (
                Some(a.agent_id) == w.avoid_agent_id,
                a.load,
                a.idle_since_ms,
                a.agent_id,
            )
        });
        if let Some(agent) = best {
            agent.load += 1;
            agent.idle_since_ms = now_ms;
            plan.push((w.conversation_id, agent.agent_id));
        }
    }
    plan
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

    fn w(id: i64, queue: Option<i64>, only: Option<i64>) -> Waiting {
        Waiting {
            conversation_id: id,
            queue_id: queue,
            only_agent_id: only,
            default_limit: 2,
            avoid_agent_id: None,
        }
    }

    fn a(id: i64, load: u32, max: Option<u32>, queues: &[i64]) -> Agent {
        Agent {
            agent_id: id,
            load,
            max_concurrent: max,
            available: true,
            idle_since_ms: 0,
            queue_ids: queues.to_vec(),
        }
    }

    #[test]
    fn plan_spreads_by_load_and_respects_membership() {
        let agents = [a(1, 0, None, &[10]), a(2, 1, None, &[10, 20])];
        let waiting = [
            w(100, Some(10), None),
            w(101, Some(10), None),
            w(102, Some(20), None),
        ];
        // 100 to the idle agent 1; 101: both at load 1, agent 1 was just assigned so 2 is idler;
        // 102: only agent 2 is a member of 20, and is now at the default limit 2.
        assert_eq!(
            plan_assignments(&waiting, &agents, 1_000),
            vec![(100, 1), (101, 2)]
        );
    }

    #[test]
    fn personal_line_and_unqueued() {
        let mut busy = a(1, 0, Some(1), &[]);
        busy.available = true;
        let agents = [busy, a(2, 0, None, &[])];
        let waiting = [w(1, None, Some(1)), w(2, None, Some(1)), w(3, None, None)];
        assert_eq!(plan_assignments(&waiting, &agents, 5), vec![(1, 1), (3, 2)]);
    }

    #[test]
    fn the_agent_who_sent_it_away_is_the_last_resort() {
        let mut back = w(1, Some(10), None);
        back.avoid_agent_id = Some(1);
        let agents = [a(1, 0, None, &[10]), a(2, 1, None, &[10])];
        assert_eq!(plan_assignments(&[back.clone()], &agents, 0), vec![(1, 2)]);
        assert_eq!(plan_assignments(&[back], &agents[..1], 0), vec![(1, 1)]);
    }

    #[test]
    fn unavailable_agents_get_nothing() {
        let mut paused = a(1, 0, Some(5), &[10]);
        paused.available = false;
        assert!(plan_assignments(&[w(1, Some(10), None)], &[paused], 0).is_empty());
    }

    proptest! {
        #[test]
        fn a_plan_never_exceeds_a_limit(
            loads in proptest::collection::vec((0u32..4, proptest::option::of(0u32..4), any::<bool>()), 1..6),
            queues in proptest::collection::vec((proptest::option::of(0i64..3), proptest::option::of(0i64..6)), 0..40),
        ) {
            let agents: Vec<Agent> = loads.iter().enumerate().map(|(i, (load, max, available))| Agent {
                agent_id: i as i64,
                load: *load,
                max_concurrent: *max,
                available: *available,
                idle_since_ms: 0,
                queue_ids: vec![i as i64 % 3],
            }).collect();
            let waiting: Vec<Waiting> = queues.iter().enumerate().map(|(i, (q, only))| w(i as i64, *q, *only)).collect();
            let plan = plan_assignments(&waiting, &agents, 1);
            for agent in &agents {
                let given = plan.iter().filter(|(_, to)| *to == agent.agent_id).count() as u32;
                if given > 0 {
                    prop_assert!(agent.available);
                    // every conversation given had a limit at least load + its rank
                    let limit = agent.max_concurrent.unwrap_or(2);
                    prop_assert!(agent.load + given <= limit.max(agent.load));
                }
            }
            // each conversation at most once
            let mut ids: Vec<i64> = plan.iter().map(|(c, _)| *c).collect();
            ids.dedup();
            prop_assert_eq!(ids.len(), plan.len());
        }
    }
}
