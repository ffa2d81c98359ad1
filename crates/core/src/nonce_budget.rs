//! How many AES-GCM encryptions each data-key version has made with random 96-bit nonces.
//!
//! NIST SP 800-38D limits a key used with random nonces to 2^32 encryptions: beyond that the
//! chance that two nonces collide (which leaks the XOR of two plaintexts and lets an attacker
//! forge tags) exceeds 2^-32. The extension counts approximately and warns at [`WARN_AT`], half
//! the limit, so that a key is rotated long before.
//!
//! [`Table`] is a fixed open-addressing table that can live in shared memory: per (database, key,
//! version) the encryptions not yet recorded in the catalog, and the catalog's total as last
//! seen. Backends add to it in batches; whoever brings a slot to the flush threshold takes the
//! unrecorded count and records it (the caller does the catalog write).

/// Encryptions under one key version with random nonces that NIST SP 800-38D allows.
pub const NONCE_LIMIT: u64 = 1 << 32;
/// Where the extension warns and `compliance_report()` fails: half the limit.
pub const WARN_AT: u64 = NONCE_LIMIT / 2;

const PROBES: usize = 32;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    used: bool,
    /// Someone is recording this slot's count (others do not start a second recording).
    recording: bool,
    pub database: u32,
    pub key: [u8; 16],
    pub version: u32,
    /// Encryptions counted here and not yet recorded in the catalog.
    pub unrecorded: u64,
    /// The catalog's total for this version as last read or written (0 until then).
    pub recorded: u64,
}

impl Slot {
    const EMPTY: Slot = Slot {
        used: false,
        recording: false,
        database: 0,
        key: [0; 16],
        version: 0,
        unrecorded: 0,
        recorded: 0,
    };

    fn is(&self, database: u32, key: &[u8; 16], version: u32) -> bool {
        self.used && self.database == database && self.version == version && self.key == *key
    }

    /// The best estimate of the version's encryptions so far.
    pub fn total(&self) -> u64 {
        self.recorded.saturating_add(self.unrecorded)
    }
}

/// What `add` tells the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Added {
    /// The version's estimated total after this addition.
    pub total: u64,
    /// The slot is new: the caller should read the catalog's total (`set_recorded`).
    pub new_slot: bool,
    /// Encryptions the caller must record in the catalog now (taken out of the slot); on
    /// failure it gives them back with `recorded_failed`.
    pub to_record: u64,
    /// The version has no slot and none was free: nothing was added; the caller keeps `n`
    /// (and may make room with `take_window`, recording what it takes).
    pub full: bool,
}

#[repr(C)]
pub struct Table<const N: usize> {
    slots: [Slot; N],
}

impl<const N: usize> Table<N> {
    pub const EMPTY: Self = Table {
        slots: [Slot::EMPTY; N],
    };

    fn home(database: u32, key: &[u8; 16], version: u32) -> usize {
        // Key ids are random UUIDs: their bytes spread well enough.
        let mut h = u64::from_le_bytes(key[..8].try_into().expect("8 bytes"));
        h ^= (u64::from(database) << 32) | u64::from(version);
        h = h.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (h >> 32) as usize % N
    }

    fn find(&self, database: u32, key: &[u8; 16], version: u32) -> Option<usize> {
        let home = Self::home(database, key, version);
        (0..PROBES.min(N))
            .map(|i| (home + i) % N)
            .take_while(|&i| self.slots[i].used)
            .find(|&i| self.slots[i].is(database, key, version))
    }

    /// Adds `n` encryptions. When the unrecorded count reaches `record_every` (and nobody is
    /// recording it already) the whole unrecorded count is handed out in `to_record`. A full
    /// table hands `n` out at once, so nothing goes uncounted.
    pub fn add(
        &mut self,
        database: u32,
        key: &[u8; 16],
        version: u32,
        n: u64,
        record_every: u64,
    ) -> Added {
        let home = Self::home(database, key, version);
        // The whole probe chain is searched before a slot is taken, so a version is never in two
        // slots. A slot with nothing unrecorded may be taken over by another version (its
        // recorded total is read again when it comes back). A count not yet recorded is never
        // pushed out: a full window hands the new count back to the caller, whose own backend
        // keeps it, so that no other session can make it disappear (attacker round 3).
        let mut free = None;
        let mut reusable = None;
        let mut found = None;
        for i in (0..PROBES.min(N)).map(|i| (home + i) % N) {
            let s = &self.slots[i];
            if !s.used {
                free = Some(i);
                break;
            }
            if s.is(database, key, version) {
                found = Some(i);
                break;
            }
            if reusable.is_none() && s.unrecorded == 0 && !s.recording {
                reusable = Some(i);
            }
        }
        let (i, new_slot) = match (found, reusable.or(free)) {
            (Some(i), _) => (i, false),
            (None, Some(i)) => {
                self.slots[i] = Slot {
                    used: true,
                    database,
                    key: *key,
                    version,
                    ..Slot::EMPTY
                };
                (i, true)
            }
            (None, None) => {
                return Added {
                    total: n,
                    new_slot: false,
                    to_record: 0,
                    full: true,
                };
            }
        };
        let s = &mut self.slots[i];
        s.unrecorded = s.unrecorded.saturating_add(n);
        let total = s.total();
        let to_record = if !s.recording && s.unrecorded >= record_every.max(1) {
            s.recording = true;
            std::mem::take(&mut s.unrecorded)
        } else {
            0
        };
        Added {
            total,
            new_slot,
            to_record,
            full: false,
        }
    }

    /// Makes room for a version whose window is full: takes the unrecorded counts of the
    /// window's slots of `database` (marked as being recorded; the caller records them and then
    /// calls `set_recorded` or `recorded_failed` for each), and frees the slots of databases
    /// that no longer exist (`live` says which do). Slots become reusable once recorded.
    pub fn take_window(
        &mut self,
        database: u32,
        key: &[u8; 16],
        version: u32,
        live: impl Fn(u32) -> bool,
    ) -> Vec<([u8; 16], u32, u64)> {
        let home = Self::home(database, key, version);
        let mut taken = Vec::new();
        for i in (0..PROBES.min(N)).map(|i| (home + i) % N) {
            let s = &mut self.slots[i];
            if !s.used {
                break;
            }
            if s.recording || s.unrecorded == 0 {
                continue;
            }
            if s.database == database {
                s.recording = true;
                taken.push((s.key, s.version, std::mem::take(&mut s.unrecorded)));
            } else if !live(s.database) {
                s.unrecorded = 0; // a dropped database's counts went with it
            }
        }
        taken
    }

    /// The catalog's total as read or written: recording is over.
    pub fn set_recorded(&mut self, database: u32, key: &[u8; 16], version: u32, recorded: u64) {
        if let Some(i) = self.find(database, key, version) {
            let s = &mut self.slots[i];
            s.recorded = s.recorded.max(recorded);
            s.recording = false;
        }
    }

    /// Recording `n` failed: they go back to the slot; false if it is gone (the caller keeps
    /// them).
    pub fn recorded_failed(&mut self, database: u32, key: &[u8; 16], version: u32, n: u64) -> bool {
        match self.find(database, key, version) {
            Some(i) => {
                let s = &mut self.slots[i];
                s.unrecorded = s.unrecorded.saturating_add(n);
                s.recording = false;
                true
            }
            None => false,
        }
    }

    /// The slots of `database`.
    pub fn of_database(&self, database: u32) -> impl Iterator<Item = &Slot> {
        self.slots
            .iter()
            .filter(move |s| s.used && s.database == database)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: [u8; 16] = [7; 16];

    #[test]
    fn counts_accumulate_and_are_handed_out_once_at_the_threshold() {
        let mut t = Table::<64>::EMPTY;
        let a = t.add(1, &K, 1, 60, 100);
        assert_eq!((a.total, a.new_slot, a.to_record), (60, true, 0));
        let a = t.add(1, &K, 1, 50, 100);
        assert_eq!((a.total, a.new_slot, a.to_record), (110, false, 110));
        // While recording, more counts accumulate but are not handed out twice.
        let a = t.add(1, &K, 1, 200, 100);
        assert_eq!(a.to_record, 0);
        t.set_recorded(1, &K, 1, 110);
        let s = *t.of_database(1).next().unwrap();
        assert_eq!((s.recorded, s.unrecorded, s.total()), (110, 200, 310));
        let a = t.add(1, &K, 1, 1, 100);
        assert_eq!((a.total, a.to_record), (311, 201));
    }

    #[test]
    fn a_failed_recording_gives_the_count_back() {
        let mut t = Table::<64>::EMPTY;
        let a = t.add(1, &K, 1, 100, 100);
        assert_eq!(a.to_record, 100);
        t.recorded_failed(1, &K, 1, a.to_record);
        let a = t.add(1, &K, 1, 1, 100);
        assert_eq!(a.to_record, 101);
    }

    #[test]
    fn databases_keys_and_versions_are_counted_apart() {
        let mut t = Table::<64>::EMPTY;
        t.add(1, &K, 1, 5, 1000);
        t.add(2, &K, 1, 7, 1000);
        t.add(1, &K, 2, 11, 1000);
        t.add(1, &[8; 16], 1, 13, 1000);
        let mut one: Vec<_> = t
            .of_database(1)
            .map(|s| (s.key[0], s.version, s.unrecorded))
            .collect();
        one.sort();
        assert_eq!(one, vec![(7, 1, 5), (7, 2, 11), (8, 1, 13)]);
        assert_eq!(t.of_database(2).map(|s| s.unrecorded).sum::<u64>(), 7);
    }

    #[test]
    fn a_full_table_hands_the_count_back_and_room_is_made_by_recording() {
        let mut t = Table::<4>::EMPTY;
        for v in 1..=3 {
            t.add(1, &K, v, 10 * v as u64, 1000);
        }
        t.add(2, &K, 9, 7, 1000);
        // Full: nothing is added, nothing is pushed out.
        let a = t.add(1, &K, 5, 3, 1000);
        assert!(a.full);
        assert_eq!(t.of_database(1).map(|s| s.unrecorded).sum::<u64>(), 60);
        // Making room takes database 1's counts (database 2 is alive: its slot stays).
        let mut taken = t.take_window(1, &K, 5, |_| true);
        taken.sort();
        assert_eq!(
            taken.iter().map(|e| e.2).collect::<Vec<_>>(),
            vec![10, 20, 30]
        );
        // While being recorded they are neither reusable nor taken twice.
        assert!(t.add(1, &K, 5, 3, 1000).full);
        assert!(t.take_window(1, &K, 5, |_| true).is_empty());
        // One recording fails (given back), the others succeed (their slots become reusable).
        assert!(t.recorded_failed(1, &K, 1, 10));
        t.set_recorded(1, &K, 2, 20);
        t.set_recorded(1, &K, 3, 30);
        let a = t.add(1, &K, 5, 3, 1000);
        assert!(!a.full && a.new_slot);
        assert_eq!(
            t.of_database(1)
                .find(|s| s.version == 1)
                .unwrap()
                .unrecorded,
            10
        );
        // A dropped database's slot is freed by the next window taken over it.
        t.add(1, &K, 6, 1, 1000);
        assert!(t.add(1, &K, 7, 1, 1000).full);
        t.take_window(1, &K, 7, |db| db != 2);
        assert_eq!(t.of_database(2).map(|s| s.unrecorded).sum::<u64>(), 0);
    }

    #[test]
    fn recorded_slots_are_taken_over_and_no_version_is_counted_twice() {
        let mut t = Table::<4>::EMPTY;
        for v in 1..=4 {
            t.add(1, &K, v, 1, 1000);
        }
        // Version 2 gets recorded: its slot holds nothing unrecorded any more.
        let a = t.add(1, &K, 2, 999, 1000);
        assert_eq!(a.to_record, 1000);
        t.set_recorded(1, &K, 2, 1000);
        // A new version takes that slot...
        let a = t.add(1, &K, 9, 5, 1000);
        assert_eq!((a.new_slot, a.full), (true, false));
        // ... and the others are still found where they were, once each.
        for v in [1, 3, 4] {
            let a = t.add(1, &K, v, 1, 1000);
            assert_eq!((a.new_slot, a.total), (false, 2), "version {v}");
        }
        assert_eq!(t.of_database(1).filter(|s| s.version == 9).count(), 1);
        // Version 2 comes back: no room, its count is handed back.
        assert!(t.add(1, &K, 2, 1, 1000).full);
    }

    #[test]
    fn a_version_further_along_its_chain_is_found_even_if_an_earlier_slot_is_reusable() {
        let mut t = Table::<8>::EMPTY;
        for v in 1..=7 {
            t.add(1, &K, v, 1, 1000);
        }
        let a = t.add(1, &K, 1, 1000, 1000);
        t.set_recorded(1, &K, 1, a.to_record);
        for v in 2..=7 {
            t.add(1, &K, v, 1, 1000);
            let slots: Vec<_> = t.of_database(1).filter(|s| s.version == v).collect();
            assert_eq!(slots.len(), 1, "version {v}");
            assert_eq!(slots[0].unrecorded, 2);
        }
    }

    #[test]
    fn the_catalog_total_only_grows() {
        let mut t = Table::<8>::EMPTY;
        t.add(1, &K, 1, 1, 1000);
        t.set_recorded(1, &K, 1, 500);
        t.set_recorded(1, &K, 1, 300); // a stale read arriving late
        assert_eq!(t.of_database(1).next().unwrap().recorded, 500);
        assert_eq!(t.add(1, &K, 1, 1, 1000).total, 502);
    }
}
