//! A fixed ring of short text records that can live in shared memory: security events raised
//! where they cannot be written to the audit log yet (during authentication, before a database
//! is connected). When full, the oldest record is dropped and counted.

#[repr(C)]
#[derive(Clone, Copy)]
struct Record<const M: usize> {
    len: u32,
    bytes: [u8; M],
}

#[repr(C)]
pub struct Ring<const N: usize, const M: usize> {
    records: [Record<M>; N],
    /// Records ever pushed, and popped: head - tail records are waiting.
    head: u64,
    tail: u64,
    pub dropped: u64,
}

impl<const N: usize, const M: usize> Ring<N, M> {
    pub const EMPTY: Self = Ring {
        records: [Record {
            len: 0,
            bytes: [0; M],
        }; N],
        head: 0,
        tail: 0,
        dropped: 0,
    };

    /// Appends `text`; returns false (and stores nothing) if it is longer than a record.
    pub fn push(&mut self, text: &[u8]) -> bool {
        if text.len() > M {
            return false;
        }
        if self.head - self.tail == N as u64 {
            self.tail += 1;
            self.dropped += 1;
        }
        let r = &mut self.records[(self.head % N as u64) as usize];
        r.len = text.len() as u32;
        r.bytes[..text.len()].copy_from_slice(text);
        self.head += 1;
        true
    }

    pub fn pop(&mut self) -> Option<Vec<u8>> {
        if self.tail == self.head {
            return None;
        }
        let r = &self.records[(self.tail % N as u64) as usize];
        self.tail += 1;
        Some(r.bytes[..r.len as usize].to_vec())
    }

    pub fn len(&self) -> usize {
        (self.head - self.tail) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.head == self.tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_with_the_oldest_dropped_when_full() {
        let mut r = Ring::<3, 8>::EMPTY;
        assert!(r.is_empty());
        for s in ["a", "b", "c", "d"] {
            assert!(r.push(s.as_bytes()));
        }
        assert_eq!(r.dropped, 1);
        assert_eq!(r.len(), 3);
        assert_eq!(r.pop().as_deref(), Some(&b"b"[..]));
        assert_eq!(r.pop().as_deref(), Some(&b"c"[..]));
        assert!(r.push(b"e"));
        assert_eq!(r.pop().as_deref(), Some(&b"d"[..]));
        assert_eq!(r.pop().as_deref(), Some(&b"e"[..]));
        assert_eq!(r.pop(), None);
        assert!(!r.push(b"too long!"));
    }
}
