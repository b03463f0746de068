//! The table that finds a transfer by its id among millions: open
//! addressing with linear probing over 8-byte slots, each slot a 32-bit tag
//! of the id's hash and the transfer's index in the history.
//!
//! *Rationale.* A ledger looks up every transfer's id (and its pending's)
//! in a table as large as the history. A general map stores the key beside
//! the value and compares keys through a pointer: each lookup costs a cache
//! miss for the slot, another for the key's text. Here a slot is 8 bytes
//! (eight to a cache line, so a probe is almost always one miss), the key
//! is not stored (the history holds it: a tag that matches is confirmed
//! against the record), and growing moves slots by their tags without
//! hashing any id again. TigerBeetle's ids are integers and its tables
//! hash them cheaply for the same reason.
//!
//! *The hash is not keyed* (FxHash's multiply over 8-byte words). That is
//! safe only because transfer ids are chosen by the server from its own
//! ids (jobs, tasks, attempts, tenants), never by an outside caller who
//! could aim for collisions; a table whose ids came from callers would
//! need a keyed hash. Collisions cost probes, never correctness: every
//! match is confirmed against the id itself.
//!
//! *Limits.* At most 2^31 entries (a slot's index is a `u32`; the
//! table has 2^32 slots at most and is kept at most half full).

use std::hash::Hasher;

use crate::book::IdHasher;

/// The 64-bit hash of an id's text: FxHash's words, then MurmurHash3's
/// finalizer, so that the top bits (where a probe starts) depend on every
/// byte. Fx alone leaves them to the first bytes of the last word, and ids
/// that differ in their last digits would crowd a few runs of slots.
pub(crate) fn hash_id(text: &str) -> u64 {
    let mut hasher = IdHasher::default();
    hasher.write(text.as_bytes());
    let mut h = hasher.finish() ^ text.len() as u64;
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A slot: the high 32 bits of the hash (the tag), and index + 1 (0:
/// empty).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Slot {
    tag: u32,
    at_plus_one: u32,
}

const BITS_MIN: u32 = 4;
const BITS_MAX: u32 = 32;

/// See the module doc.
#[derive(Clone, Debug)]
pub(crate) struct IdIndex {
    slots: Vec<Slot>,
    /// `slots.len() == 1 << bits`.
    bits: u32,
    len: usize,
}

impl Default for IdIndex {
    fn default() -> IdIndex {
        IdIndex::with_capacity(0)
    }
}

impl IdIndex {
    /// Room for `entries` before the table grows.
    pub(crate) fn with_capacity(entries: usize) -> IdIndex {
        let mut bits = BITS_MIN;
        while (1usize << bits) < slots_for(entries) {
            bits += 1;
        }
        assert!(bits <= BITS_MAX, "an id index holds at most 2^31 entries");
        IdIndex {
            slots: vec![Slot::default(); 1 << bits],
            bits,
            len: 0,
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// Where a tag's probe starts: its top `bits` bits.
    fn home(&self, tag: u32) -> usize {
        // `bits` is at least 4, so the shift is at most 28.
        (tag >> (BITS_MAX - self.bits)) as usize
    }

    /// The index of the entry with this hash that `is` confirms.
    pub(crate) fn find(&self, hash: u64, is: impl Fn(u32) -> bool) -> Option<u32> {
        let tag = tag_of(hash);
        let mask = self.mask();
        let mut i = self.home(tag);
        loop {
            let slot = self.slots[i];
            if slot.at_plus_one == 0 {
                return None;
            }
            if slot.tag == tag && is(slot.at_plus_one - 1) {
                return Some(slot.at_plus_one - 1);
            }
            i = (i + 1) & mask;
        }
    }

    /// Reads the slot where a probe for `hash` starts, and nothing else:
    /// see `Book::warm`.
    pub(crate) fn touch(&self, hash: u64) -> u64 {
        let slot = self.slots[self.home(tag_of(hash))];
        u64::from(slot.at_plus_one)
    }

    /// Adds an entry the caller knows is absent.
    pub(crate) fn insert(&mut self, hash: u64, at: u32) {
        assert!(at < u32::MAX, "an index below 2^32 - 1");
        if slots_for(self.len + 1) > self.slots.len() {
            self.resize(self.len + 1);
        }
        self.put(Slot {
            tag: tag_of(hash),
            at_plus_one: at + 1,
        });
        self.len += 1;
    }

    fn put(&mut self, slot: Slot) {
        let mask = self.mask();
        let mut i = self.home(slot.tag);
        while self.slots[i].at_plus_one != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = slot;
    }

    /// Removes the entry for index `at` with this hash (backward-shift
    /// deletion: no tombstones, so probes stay short).
    pub(crate) fn remove(&mut self, hash: u64, at: u32) {
        let tag = tag_of(hash);
        let mask = self.mask();
        let mut i = self.home(tag);
        loop {
            let slot = self.slots[i];
            assert!(slot.at_plus_one != 0, "a removed entry is in the index");
            if slot.tag == tag && slot.at_plus_one == at + 1 {
                break;
            }
            i = (i + 1) & mask;
        }
        // Shift back every later slot of the run whose home is not
        // between the hole and itself.
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let slot = self.slots[j];
            if slot.at_plus_one == 0 {
                break;
            }
            let home = self.home(slot.tag);
            // Distances from home, modulo the table: the slot may fill the
            // hole if the hole is no further from its home than it is.
            if (hole.wrapping_sub(home) & mask) < (j.wrapping_sub(home) & mask) {
                self.slots[hole] = slot;
                hole = j;
            }
        }
        self.slots[hole] = Slot::default();
        self.len -= 1;
    }

    /// Grows to hold `entries`; slots move by their tags.
    fn resize(&mut self, entries: usize) {
        let grown = IdIndex::with_capacity(entries.max(self.len));
        let old = std::mem::replace(self, grown);
        for slot in old.slots {
            if slot.at_plus_one != 0 {
                self.put(slot);
            }
        }
        self.len = old.len;
    }
}

/// The slots `entries` need: at most half full, where linear probing
/// reads about 2.5 slots for an absent id (one cache line, mostly).
fn slots_for(entries: usize) -> usize {
    entries.saturating_mul(2)
}

fn tag_of(hash: u64) -> u32 {
    (hash >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a plain vector of ids, with inserts and removals (newest
    /// first and not), through growth; tags forced to collide.
    #[test]
    fn finds_what_was_inserted_and_not_what_was_removed() {
        let ids: Vec<String> = (0..5_000).map(|i| format!("t:{i}")).collect();
        // Half the entries share one hash: every probe of theirs collides.
        let hash = |i: usize| {
            if i.is_multiple_of(2) {
                7 << 32
            } else {
                hash_id(&ids[i])
            }
        };
        let mut index = IdIndex::default();
        for i in 0..ids.len() {
            assert_eq!(index.find(hash(i), |at| at as usize == i), None);
            index.insert(hash(i), i as u32);
        }
        assert_eq!(index.len(), ids.len());
        for i in (0..ids.len()).step_by(3) {
            index.remove(hash(i), i as u32);
        }
        for i in 0..ids.len() {
            let found = index.find(hash(i), |at| ids[at as usize] == ids[i]);
            let expect = (i % 3 != 0).then_some(i as u32);
            assert_eq!(found, expect, "entry {i}");
        }
        let mut small = IdIndex::with_capacity(3);
        for i in 0..40 {
            small.insert(u64::MAX - i, i as u32);
        }
        for i in (0..40).rev() {
            assert_eq!(
                small.find(u64::MAX - i, |at| at == i as u32),
                Some(i as u32)
            );
            small.remove(u64::MAX - i, i as u32);
            assert_eq!(small.find(u64::MAX - i, |at| at == i as u32), None);
        }
        assert_eq!(small.len(), 0);
    }
}
