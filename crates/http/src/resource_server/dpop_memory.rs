//! The DPoP proofs a resource server has accepted (RFC 9449 §11.1), so that each is used once.
//!
//! Each proof is remembered under its key's thumbprint and its `jti` until its `iat` is too old
//! for the proof to pass again. Two bounds keep one client from crowding out the others: a
//! share per key (past it, that key's requests are refused until its older proofs expire) and
//! a total (past it, every new proof is refused, never an old one forgotten early, which would
//! let it be replayed). Only proofs of requests that passed every other check are remembered.

use std::collections::HashMap;

/// What remembering a proof came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Remembered {
    /// First seen: remembered.
    New,
    /// Seen before and still within its window: a replay.
    Replayed,
    /// This key has as many proofs remembered as one key may.
    KeyOverQuota,
    /// As many proofs are remembered as this server keeps.
    Full,
}

#[derive(Debug)]
pub(super) struct ProofMemory {
    /// Key thumbprint → `jti` → until when it is remembered.
    keys: HashMap<String, HashMap<String, u64>>,
    total: usize,
    per_key: usize,
    capacity: usize,
}

impl ProofMemory {
    pub(super) fn new(per_key: usize, capacity: usize) -> Self {
        Self {
            keys: HashMap::new(),
            total: 0,
            per_key,
            capacity,
        }
    }

    /// Remembers the proof `jti` of key `jkt` until `until`, at `now`.
    pub(super) fn remember(&mut self, jkt: &str, jti: &str, until: u64, now: u64) -> Remembered {
        if let Some(seen) = self.keys.get_mut(jkt) {
            if seen.get(jti).is_some_and(|kept| *kept >= now) {
                return Remembered::Replayed;
            }
            if seen.len() >= self.per_key {
                let before = seen.len();
                seen.retain(|_, kept| *kept >= now);
                self.total -= before - seen.len();
                if seen.len() >= self.per_key {
                    return Remembered::KeyOverQuota;
                }
            }
        }
        if self.total >= self.capacity {
            self.keys.retain(|_, seen| {
                seen.retain(|_, kept| *kept >= now);
                !seen.is_empty()
            });
            self.total = self.keys.values().map(HashMap::len).sum();
            if self.total >= self.capacity {
                return Remembered::Full;
            }
        }
        let seen = self.keys.entry(jkt.to_owned()).or_default();
        if seen.insert(jti.to_owned(), until).is_none() {
            self.total += 1;
        }
        Remembered::New
    }
}

#[cfg(test)]
mod tests {
    use super::{ProofMemory, Remembered};

    #[test]
    fn a_proof_is_accepted_once_within_its_window() {
        let mut memory = ProofMemory::new(10, 100);
        assert_eq!(memory.remember("k", "j", 1_300, 1_000), Remembered::New);
        assert_eq!(
            memory.remember("k", "j", 1_300, 1_200),
            Remembered::Replayed
        );
        assert_eq!(
            memory.remember("k", "j", 1_300, 1_300),
            Remembered::Replayed
        );
        // Another key may use the same jti.
        assert_eq!(memory.remember("other", "j", 1_300, 1_000), Remembered::New);
        // Past its window the proof is refused by its iat anyway: it may be forgotten.
        assert_eq!(memory.remember("k", "j", 1_600, 1_301), Remembered::New);
    }

    #[test]
    fn one_key_cannot_take_more_than_its_share() {
        let mut memory = ProofMemory::new(3, 100);
        for jti in ["a", "b", "c"] {
            assert_eq!(
                memory.remember("greedy", jti, 1_300, 1_000),
                Remembered::New
            );
        }
        assert_eq!(
            memory.remember("greedy", "d", 1_300, 1_000),
            Remembered::KeyOverQuota
        );
        // Everyone else is unaffected.
        assert_eq!(
            memory.remember("polite", "a", 1_300, 1_000),
            Remembered::New
        );
        // Once its proofs expire, the key may send again.
        assert_eq!(
            memory.remember("greedy", "d", 1_700, 1_301),
            Remembered::New
        );
    }

    #[test]
    fn when_full_new_proofs_are_refused_and_old_ones_never_forgotten_early() {
        let mut memory = ProofMemory::new(10, 4);
        for (key, jti) in [("a", "1"), ("a", "2"), ("b", "1"), ("c", "1")] {
            assert_eq!(memory.remember(key, jti, 1_300, 1_000), Remembered::New);
        }
        assert_eq!(memory.remember("d", "1", 1_300, 1_000), Remembered::Full);
        // Still remembered: a replay is a replay, not a new proof.
        assert_eq!(
            memory.remember("a", "1", 1_300, 1_100),
            Remembered::Replayed
        );
        // After they expire there is room again.
        assert_eq!(memory.remember("d", "1", 1_700, 1_301), Remembered::New);
    }
}
