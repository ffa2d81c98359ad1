//! Brute-force login lockout: failed logins counted per (role, client address) pair in a fixed
//! table that can live in shared memory (no pointers, no allocation). After `max_failures` within
//! `window`, the pair is locked for `lockout`; a correct password is refused while locked (and
//! does not reset the count, so the reply does not reveal that the password was right). Only the
//! pair is locked: a third party cannot lock a role out of other addresses.
//!
//! Times are microseconds on any clock shared by the processes (Postgres's TimestampTz).

/// A role name (at most 63 bytes, as Postgres's NAMEDATALEN - 1) and a client address
/// (family byte: 0 = Unix socket, 4, 6; then the address bytes).
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Pair {
    role_len: u8,
    role: [u8; 63],
    family: u8,
    addr: [u8; 16],
}

impl Pair {
    /// The pair of `role` (cut at 63 bytes) and an address; `None` for a Unix socket.
    pub fn new(role: &[u8], addr: Option<std::net::IpAddr>) -> Pair {
        let n = role.len().min(63);
        let mut r = [0u8; 63];
        r[..n].copy_from_slice(&role[..n]);
        let (family, addr) = match addr {
            None => (0, [0u8; 16]),
            Some(std::net::IpAddr::V4(a)) => {
                let mut b = [0u8; 16];
                b[..4].copy_from_slice(&a.octets());
                (4, b)
            }
            Some(std::net::IpAddr::V6(a)) => (6, a.octets()),
        };
        Pair {
            role_len: n as u8,
            role: r,
            family,
            addr,
        }
    }

    pub fn role(&self) -> &[u8] {
        &self.role[..self.role_len as usize]
    }

    /// The address, `None` for a Unix socket.
    pub fn addr(&self) -> Option<std::net::IpAddr> {
        match self.family {
            4 => Some(std::net::IpAddr::from([
                self.addr[0],
                self.addr[1],
                self.addr[2],
                self.addr[3],
            ])),
            6 => Some(std::net::IpAddr::from(self.addr)),
            _ => None,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    used: bool,
    pub pair: Pair,
    pub failures: u32,
    pub window_start: i64,
    pub locked_until: i64,
    pub last_seen: i64,
}

impl Slot {
    const EMPTY: Slot = Slot {
        used: false,
        pair: Pair {
            role_len: 0,
            role: [0; 63],
            family: 0,
            addr: [0; 16],
        },
        failures: 0,
        window_start: 0,
        locked_until: 0,
        last_seen: 0,
    };

    pub fn locked_at(&self, now: i64) -> bool {
        self.locked_until > now
    }
}

/// The settings in force at an attempt.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// 0 turns counting off (existing locks still hold until they expire or are unlocked).
    pub max_failures: u32,
    pub window: i64,
    pub lockout: i64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// Let the attempt's own result stand.
    Allow,
    /// A failure was counted; the pair is not locked yet.
    Counted { failures: u32 },
    /// This failure locked the pair until the given time.
    NewlyLocked { failures: u32, until: i64 },
    /// The pair is locked: refuse, whatever the password.
    Locked { until: i64 },
    /// The table is full of locked pairs: this failure was not counted.
    Untracked,
}

/// The lockout table: `N` slots, scanned linearly (logins are rare next to queries).
#[repr(C)]
pub struct Table<const N: usize> {
    slots: [Slot; N],
    pub failures_total: u64,
    pub lockouts_total: u64,
    pub refused_total: u64,
    pub untracked_total: u64,
}

impl<const N: usize> Table<N> {
    pub const EMPTY: Self = Table {
        slots: [Slot::EMPTY; N],
        failures_total: 0,
        lockouts_total: 0,
        refused_total: 0,
        untracked_total: 0,
    };

    fn find(&self, pair: &Pair) -> Option<usize> {
        self.slots.iter().position(|s| s.used && s.pair == *pair)
    }

    /// A slot for a new pair: a free one, else the least recently seen unlocked one.
    fn claim(&mut self, now: i64) -> Option<usize> {
        if let Some(i) = self.slots.iter().position(|s| !s.used) {
            return Some(i);
        }
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.locked_at(now))
            .min_by_key(|(_, s)| s.last_seen)
            .map(|(i, _)| i)
    }

    /// Records an authentication attempt and says what to do with it.
    pub fn observe(&mut self, pair: &Pair, success: bool, now: i64, policy: &Policy) -> Outcome {
        let found = self.find(pair);
        if let Some(i) = found {
            let slot = &mut self.slots[i];
            slot.last_seen = now;
            if slot.locked_at(now) {
                self.refused_total += 1;
                return Outcome::Locked {
                    until: slot.locked_until,
                };
            }
        }
        if success {
            if let Some(i) = found {
                self.slots[i] = Slot::EMPTY;
            }
            return Outcome::Allow;
        }
        self.failures_total += 1;
        if policy.max_failures == 0 {
            return Outcome::Allow;
        }
        let i = match found.or_else(|| self.claim(now)) {
            Some(i) => i,
            None => {
                self.untracked_total += 1;
                return Outcome::Untracked;
            }
        };
        let slot = &mut self.slots[i];
        if !slot.used || slot.pair != *pair || now - slot.window_start > policy.window {
            *slot = Slot {
                used: true,
                pair: *pair,
                window_start: now,
                last_seen: now,
                ..Slot::EMPTY
            };
        }
        slot.failures += 1;
        if slot.failures >= policy.max_failures {
            slot.locked_until = now + policy.lockout;
            self.lockouts_total += 1;
            return Outcome::NewlyLocked {
                failures: slot.failures,
                until: slot.locked_until,
            };
        }
        Outcome::Counted {
            failures: slot.failures,
        }
    }

    /// Forgets the failures and locks of `role` (from `addr` only, if given). Returns how many
    /// pairs were locked.
    pub fn unlock(
        &mut self,
        role: &[u8],
        addr: Option<Option<std::net::IpAddr>>,
        now: i64,
    ) -> usize {
        let mut unlocked = 0;
        for s in self.slots.iter_mut() {
            if s.used && s.pair.role() == role && addr.is_none_or(|a| s.pair.addr() == a) {
                if s.locked_at(now) {
                    unlocked += 1;
                }
                *s = Slot::EMPTY;
            }
        }
        unlocked
    }

    /// The pairs with failures in their window or a lock in force.
    pub fn entries(&self, now: i64, policy: &Policy) -> impl Iterator<Item = &Slot> + '_ {
        let window = policy.window;
        self.slots
            .iter()
            .filter(move |s| s.used && (s.locked_at(now) || now - s.window_start <= window))
    }

    pub fn locked_count(&self, now: i64) -> usize {
        self.slots
            .iter()
            .filter(|s| s.used && s.locked_at(now))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const S: i64 = 1_000_000;
    const P: Policy = Policy {
        max_failures: 3,
        window: 60 * S,
        lockout: 300 * S,
    };

    fn pair(role: &str, addr: &str) -> Pair {
        Pair::new(role.as_bytes(), Some(addr.parse().unwrap()))
    }

    #[test]
    fn locks_after_max_failures_and_refuses_even_the_right_password() {
        let mut t = Table::<8>::EMPTY;
        let p = pair("alice", "10.0.0.1");
        assert_eq!(
            t.observe(&p, false, 0, &P),
            Outcome::Counted { failures: 1 }
        );
        assert_eq!(
            t.observe(&p, false, S, &P),
            Outcome::Counted { failures: 2 }
        );
        assert_eq!(
            t.observe(&p, false, 2 * S, &P),
            Outcome::NewlyLocked {
                failures: 3,
                until: 302 * S
            }
        );
        assert_eq!(
            t.observe(&p, true, 3 * S, &P),
            Outcome::Locked { until: 302 * S }
        );
        // The lock outlives the correct password and expires on time.
        assert_eq!(t.observe(&p, true, 303 * S, &P), Outcome::Allow);
        assert_eq!(
            t.observe(&p, false, 304 * S, &P),
            Outcome::Counted { failures: 1 }
        );
        assert_eq!(t.lockouts_total, 1);
        assert_eq!(t.refused_total, 1);
    }

    #[test]
    fn only_the_pair_is_locked() {
        let mut t = Table::<8>::EMPTY;
        let attacker = pair("postgres", "203.0.113.9");
        for i in 0..3 {
            t.observe(&attacker, false, i, &P);
        }
        assert!(matches!(
            t.observe(&attacker, true, 10, &P),
            Outcome::Locked { .. }
        ));
        assert_eq!(
            t.observe(&pair("postgres", "10.0.0.1"), true, 10, &P),
            Outcome::Allow
        );
        assert_eq!(
            t.observe(&Pair::new(b"postgres", None), true, 10, &P),
            Outcome::Allow
        );
    }

    #[test]
    fn failures_outside_the_window_start_over_and_success_resets() {
        let mut t = Table::<8>::EMPTY;
        let p = pair("bob", "::1");
        t.observe(&p, false, 0, &P);
        t.observe(&p, false, S, &P);
        assert_eq!(
            t.observe(&p, false, 62 * S, &P),
            Outcome::Counted { failures: 1 }
        );
        t.observe(&p, true, 63 * S, &P);
        assert_eq!(
            t.observe(&p, false, 64 * S, &P),
            Outcome::Counted { failures: 1 }
        );
    }

    #[test]
    fn unlock_by_role_or_pair() {
        let mut t = Table::<8>::EMPTY;
        let a = pair("carol", "10.0.0.1");
        let b = pair("carol", "10.0.0.2");
        for i in 0..3 {
            t.observe(&a, false, i, &P);
            t.observe(&b, false, i, &P);
        }
        assert_eq!(
            t.unlock(b"carol", Some(Some("10.0.0.1".parse().unwrap())), 5),
            1
        );
        assert_eq!(t.observe(&a, true, 6, &P), Outcome::Allow);
        assert!(matches!(t.observe(&b, true, 6, &P), Outcome::Locked { .. }));
        assert_eq!(t.unlock(b"carol", None, 7), 1);
        assert_eq!(t.observe(&b, true, 8, &P), Outcome::Allow);
    }

    #[test]
    fn a_full_table_evicts_unlocked_pairs_but_keeps_locks() {
        let mut t = Table::<2>::EMPTY;
        let locked = pair("x", "10.0.0.1");
        for i in 0..3 {
            t.observe(&locked, false, i, &P);
        }
        t.observe(&pair("y", "10.0.0.2"), false, 10, &P);
        // A third pair takes y's slot, not the locked one.
        assert_eq!(
            t.observe(&pair("z", "10.0.0.3"), false, 11, &P),
            Outcome::Counted { failures: 1 }
        );
        assert!(matches!(
            t.observe(&locked, true, 12, &P),
            Outcome::Locked { .. }
        ));
        // Two locked pairs fill it: a new failure is not tracked.
        t.observe(&pair("z", "10.0.0.3"), false, 13, &P);
        t.observe(&pair("z", "10.0.0.3"), false, 14, &P);
        assert_eq!(
            t.observe(&pair("w", "10.0.0.4"), false, 15, &P),
            Outcome::Untracked
        );
    }

    #[test]
    fn long_role_names_are_cut_and_max_zero_turns_counting_off() {
        let long = "r".repeat(100);
        let p = Pair::new(long.as_bytes(), None);
        assert_eq!(p.role().len(), 63);
        let mut t = Table::<4>::EMPTY;
        let off = Policy {
            max_failures: 0,
            ..P
        };
        for i in 0..10 {
            assert_eq!(t.observe(&p, false, i, &off), Outcome::Allow);
        }
    }
}
