//! Decryption rate per (role, key): values per minute, as a sliding-window estimate (the previous
//! minute's count weighted by how much of it still overlaps the last 60 seconds, plus the current
//! minute's), in a fixed open-addressing table that can live in shared memory. Used to detect
//! bulk decryption (exfiltration) across all sessions of a role.

const MINUTE: i64 = 60_000_000; // microseconds
const PROBES: usize = 32;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    used: bool,
    pub role: u32,
    pub key: [u8; 16],
    minute: i64,
    current: u64,
    previous: u64,
    alerted_minute: i64,
    /// Values counted since the slot was taken (for metrics).
    pub total: u64,
}

impl Slot {
    const EMPTY: Slot = Slot {
        used: false,
        role: 0,
        key: [0; 16],
        minute: 0,
        current: 0,
        previous: 0,
        alerted_minute: i64::MIN,
        total: 0,
    };

    fn estimate(&self, now: i64) -> u64 {
        let minute = now.div_euclid(MINUTE);
        let (current, previous) = match minute - self.minute {
            0 => (self.current, self.previous),
            1 => (0, self.current),
            _ => (0, 0),
        };
        let left = MINUTE - now.rem_euclid(MINUTE);
        current + (previous as u128 * left as u128 / MINUTE as u128) as u64
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Rate {
    /// Values decrypted in the last minute (estimate), including these.
    pub per_minute: u64,
    /// The threshold was crossed and no alert was given for this minute yet.
    pub first_over: bool,
    /// The table had no room: nothing was counted.
    pub untracked: bool,
}

#[repr(C)]
pub struct Table<const N: usize> {
    slots: [Slot; N],
    pub alerts_total: u64,
    pub untracked_total: u64,
}

fn home(role: u32, key: &[u8; 16], n: usize) -> usize {
    // FNV-1a: spreads (role, key) over the table; keys are random already.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in role.to_le_bytes().iter().chain(key.iter()) {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    (h % n as u64) as usize
}

impl<const N: usize> Table<N> {
    pub const EMPTY: Self = Table {
        slots: [Slot::EMPTY; N],
        alerts_total: 0,
        untracked_total: 0,
    };

    /// Counts `n` values decrypted by `role` with `key` at `now`; `threshold` 0 never alerts.
    pub fn add(&mut self, role: u32, key: &[u8; 16], n: u64, now: i64, threshold: u64) -> Rate {
        let minute = now.div_euclid(MINUTE);
        let start = home(role, key, N);
        let mut free = None;
        let mut found = None;
        for p in 0..PROBES.min(N) {
            let i = (start + p) % N;
            let s = &self.slots[i];
            if s.used && s.role == role && s.key == *key {
                found = Some(i);
                break;
            }
            // Unused, or idle for two minutes (its estimate is 0): reusable.
            if free.is_none() && (!s.used || minute - s.minute >= 2) {
                free = Some(i);
            }
        }
        let Some(i) = found.or(free) else {
            self.untracked_total += 1;
            return Rate {
                per_minute: 0,
                first_over: false,
                untracked: true,
            };
        };
        let s = &mut self.slots[i];
        if found.is_none() {
            *s = Slot {
                used: true,
                role,
                key: *key,
                minute,
                ..Slot::EMPTY
            };
        }
        match minute - s.minute {
            0 => {}
            1 => {
                s.previous = s.current;
                s.current = 0;
            }
            _ => {
                s.previous = 0;
                s.current = 0;
            }
        }
        s.minute = minute;
        s.current += n;
        s.total += n;
        let per_minute = s.estimate(now);
        let first_over = threshold > 0 && per_minute > threshold && s.alerted_minute != minute;
        if first_over {
            s.alerted_minute = minute;
            self.alerts_total += 1;
        }
        Rate {
            per_minute,
            first_over,
            untracked: false,
        }
    }

    /// The current estimate without counting.
    pub fn peek(&self, role: u32, key: &[u8; 16], now: i64) -> u64 {
        let start = home(role, key, N);
        (0..PROBES.min(N))
            .map(|p| &self.slots[(start + p) % N])
            .find(|s| s.used && s.role == role && s.key == *key)
            .map_or(0, |s| s.estimate(now))
    }

    /// Every (role, key) seen, with its estimate and total.
    pub fn entries(&self, now: i64) -> impl Iterator<Item = (&Slot, u64)> + '_ {
        self.slots
            .iter()
            .filter(|s| s.used)
            .map(move |s| (s, s.estimate(now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const K: [u8; 16] = [7; 16];

    #[test]
    fn alerts_once_per_minute_above_the_threshold() {
        let mut t = Table::<64>::EMPTY;
        let r = t.add(10, &K, 100, 0, 150);
        assert_eq!(
            r,
            Rate {
                per_minute: 100,
                first_over: false,
                untracked: false
            }
        );
        let r = t.add(10, &K, 60, 1_000_000, 150);
        assert!(r.first_over && r.per_minute == 160);
        assert!(!t.add(10, &K, 60, 2_000_000, 150).first_over);
        assert_eq!(t.alerts_total, 1);
        // Another role and another key count apart.
        assert_eq!(t.add(11, &K, 1, 3_000_000, 150).per_minute, 1);
        assert_eq!(t.add(10, &[8; 16], 1, 3_000_000, 150).per_minute, 1);
    }

    #[test]
    fn the_previous_minute_fades_out() {
        let mut t = Table::<64>::EMPTY;
        t.add(1, &K, 600, 30 * 1_000_000, 0);
        // 15 s into the next minute, 3/4 of the previous minute still counts.
        assert_eq!(t.peek(1, &K, MINUTE + 15_000_000), 450);
        assert_eq!(t.add(1, &K, 10, MINUTE + 15_000_000, 0).per_minute, 460);
        assert_eq!(t.peek(1, &K, 3 * MINUTE), 0);
        // A burst split over a minute boundary is still seen (no fixed-window blind spot).
        let mut t = Table::<64>::EMPTY;
        t.add(1, &K, 900, MINUTE - 1_000_000, 1000);
        assert!(t.add(1, &K, 900, MINUTE + 1_000_000, 1000).first_over);
    }

    #[test]
    fn a_full_neighbourhood_is_untracked_and_idle_slots_are_reused() {
        let mut t = Table::<4>::EMPTY;
        for role in 0..4 {
            assert!(!t.add(role, &K, 1, 0, 0).untracked);
        }
        assert!(t.add(99, &K, 1, 0, 0).untracked);
        assert_eq!(t.untracked_total, 1);
        // Two minutes later every slot is idle and may be taken again.
        assert!(!t.add(99, &K, 1, 2 * MINUTE, 0).untracked);
    }
}
