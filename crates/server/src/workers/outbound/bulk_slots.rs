//! The send slots that broadcast jobs hold while they wait for them, in this process, so a
//! conversation's message can take the earliest one instead of queueing behind the broadcast.
//!
//! A slot is a moment on the number's shared schedule (`Store::reserve_send_slots`). Bulk jobs
//! reserve their slots ahead (a broadcast keeps the schedule full for `BULK_HORIZON_MS`); a
//! conversation's job reserves the next free slot, which is at the end of that schedule, and then
//! trades it here for the earliest slot a bulk job is still waiting for. The set of slots is the
//! same, so the number's rate is unchanged; only who uses which slot changes, and a trade always
//! moves the bulk job later, never earlier.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

/// (channel, slot in unix ms, outbox job id).
type Key = (i64, i64, i64);

/// How far in the future a bulk slot must be for a conversation to take it: the conversation's
/// task needs that long to reach the send.
const MARGIN_MS: i64 = 2;

/// Held bulk slots, shared by the sender's tasks.
#[derive(Clone, Default)]
pub struct BulkSlots {
    held: Arc<Mutex<BTreeMap<Key, watch::Sender<i64>>>>,
}

/// A bulk job's claim on its slot: [`BulkSlots::settle`] says which slot it ends up with.
pub struct Held {
    key: Key,
    moved_to: watch::Receiver<i64>,
}

impl BulkSlots {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, watch::Sender<i64>>> {
        // A panic while holding the lock cannot leave the map half-changed (single operations).
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A bulk job waits for `slot`; until it settles, a conversation may take the slot.
    pub fn hold(&self, channel_id: i64, slot: i64, job_id: i64) -> Held {
        let (tx, rx) = watch::channel(slot);
        let key = (channel_id, slot, job_id);
        self.map().insert(key, tx);
        Held { key, moved_to: rx }
    }

    /// Called by the bulk job when its slot comes: the slot is its own from now on (it was not
    /// taken), or it was moved to the later slot it gets instead.
    pub fn settle(&self, held: Held) -> i64 {
        let mut map = self.map();
        match map.remove(&held.key) {
            Some(_) => held.key.1,
            None => *held.moved_to.borrow(),
        }
    }

    /// A conversation's job holds `slot`: the earliest bulk slot of the channel before `before`
    /// (and at least [`MARGIN_MS`] ahead of `now`) is taken and its job moved to `slot` (a slot
    /// already missed makes that job reserve a new one). Returns the slot to send at: `slot` when
    /// none was taken.
    pub fn take_earlier(&self, channel_id: i64, slot: i64, before: i64, now: i64) -> i64 {
        let mut map = self.map();
        // Entries of tasks that ended without settling (shutdown) are dropped as they age.
        let stale: Vec<Key> = map
            .range(
                (channel_id, i64::MIN, i64::MIN)..(channel_id, now.saturating_sub(1_000), i64::MIN),
            )
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            map.remove(&k);
        }
        let from = (channel_id, now + MARGIN_MS, i64::MIN);
        let until = (channel_id, before, i64::MIN);
        if from >= until {
            // The conversation's own slot is already the soonest there can be.
            return slot;
        }
        let earliest = map.range(from..until).next().map(|(k, _)| *k);
        let Some(key) = earliest else {
            return slot;
        };
        if let Some(moved) = map.remove(&key) {
            // The bulk task may be gone (shutdown): nobody to tell, and the slot is still free.
            let _ = moved.send(slot);
        }
        key.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conversation_takes_the_earliest_bulk_slot_and_the_bulk_job_gets_its_slot() {
        let slots = BulkSlots::default();
        let a = slots.hold(1, 1_010, 7);
        let b = slots.hold(1, 1_020, 8);
        let other_channel = slots.hold(2, 1_005, 9);
        assert_eq!(slots.take_earlier(1, 1_200, 1_200, 1_000), 1_010);
        assert_eq!(slots.settle(a), 1_200, "moved to the conversation's slot");
        assert_eq!(slots.settle(b), 1_020, "untouched");
        assert_eq!(slots.settle(other_channel), 1_005);
    }

    #[test]
    fn only_earlier_slots_far_enough_ahead_are_taken() {
        let slots = BulkSlots::default();
        let soon = slots.hold(1, 1_001, 1);
        let later = slots.hold(1, 1_300, 2);
        assert_eq!(
            slots.take_earlier(1, 1_200, 1_200, 1_000),
            1_200,
            "nothing in between"
        );
        assert_eq!(slots.settle(soon), 1_001);
        assert_eq!(slots.settle(later), 1_300);
    }

    #[test]
    fn a_slot_due_now_or_past_is_kept() {
        let slots = BulkSlots::default();
        let bulk = slots.hold(1, 1_001, 1);
        assert_eq!(slots.take_earlier(1, 990, 990, 1_000), 990);
        assert_eq!(slots.take_earlier(1, 1_001, 1_001, 1_000), 1_001);
        assert_eq!(slots.settle(bulk), 1_001);
    }

    #[test]
    fn a_late_conversation_takes_any_held_slot_and_the_bulk_job_gets_the_missed_one() {
        let slots = BulkSlots::default();
        let bulk = slots.hold(1, 1_150, 1);
        assert_eq!(slots.take_earlier(1, 980, i64::MAX, 1_000), 1_150);
        assert_eq!(slots.settle(bulk), 980, "missed: it reserves again");
    }

    #[test]
    fn a_settled_slot_cannot_be_taken() {
        let slots = BulkSlots::default();
        let a = slots.hold(1, 1_050, 1);
        assert_eq!(slots.settle(a), 1_050);
        assert_eq!(slots.take_earlier(1, 1_200, 1_200, 1_000), 1_200);
    }

    #[test]
    fn each_bulk_slot_goes_to_one_conversation() {
        let slots = BulkSlots::default();
        let a = slots.hold(1, 1_050, 1);
        assert_eq!(slots.take_earlier(1, 1_200, 1_200, 1_000), 1_050);
        assert_eq!(slots.take_earlier(1, 1_210, 1_210, 1_000), 1_210);
        assert_eq!(slots.settle(a), 1_200);
    }
}
