//! Encrypted large objects: `stream::StreamHeader::decode` and `ObjectCipher::open_chunk` on
//! the chunks that follow it.
//!
//! Checks: a decoded header re-encodes to the input's first 56 bytes; its chunk arithmetic
//! (count, offsets, lengths, total) is exact (checked in 128 bits); chunks after an own header
//! open only in place; own objects of any length and chunk size round trip.

use crate::fixtures;
use encml_core::aead::AeadKey;
use encml_core::format::TAG_LEN;
use encml_core::stream::{ObjectCipher, StreamHeader, HEADER_LEN, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};

thread_local! {
    static AEAD: AeadKey = fixtures::aead();
}

pub fn init() {
    AEAD.with(|_| ());
}

fn arithmetic(h: &StreamHeader) {
    let (len, size) = (h.plaintext_len as u128, h.chunk_size as u128);
    let count = len.div_ceil(size).max(1);
    assert_eq!(h.chunk_count() as u128, count);
    assert!(count <= 1 << 32);
    assert_eq!(
        h.encrypted_len() as u128,
        HEADER_LEN as u128 + len + count * TAG_LEN as u128
    );
    for i in [0, count - 1] {
        let i64_ = i as u64;
        assert_eq!(
            h.chunk_offset(i64_) as u128,
            HEADER_LEN as u128 + i * (size + TAG_LEN as u128)
        );
        let start = i * size;
        assert_eq!(
            h.chunk_plain_len(i64_) as u128,
            len.saturating_sub(start).min(size)
        );
        assert_eq!(h.is_last(i64_), i == count - 1);
    }
    // The chunks' plaintext adds up to the object's.
    if count <= 4 {
        let total: u128 = (0..count as u64)
            .map(|i| h.chunk_plain_len(i) as u128)
            .sum();
        assert_eq!(total, len);
    }
}

pub fn run(data: &[u8]) {
    AEAD.with(|k| {
        if let Ok(h) = StreamHeader::decode(data) {
            assert_eq!(
                h.encode()[..],
                data[..HEADER_LEN],
                "header re-encodes to itself"
            );
            assert!((MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&h.chunk_size));
            arithmetic(&h);
            if let Ok(c) = ObjectCipher::new(k, h.clone()) {
                let mut rest = &data[HEADER_LEN..];
                for i in 0..h.chunk_count().min(4) {
                    let n = (h.chunk_plain_len(i) + TAG_LEN).min(rest.len());
                    let mut buf = rest[..n].to_vec();
                    rest = &rest[n..];
                    if c.open_chunk(i, &mut buf).is_ok() {
                        assert_eq!(buf.len(), h.chunk_plain_len(i));
                    } else {
                        assert!(buf.iter().all(|&b| b == 0), "a failed chunk is zeroed");
                    }
                }
                let mut buf = vec![0u8; TAG_LEN];
                assert!(c.open_chunk(h.chunk_count(), &mut buf).is_err());
            }
        }

        // Own objects: chunk size and length from the input, content the rest (at most 4 chunks).
        let (size, rest) = crate::take::<2>(data);
        let chunk_size = MIN_CHUNK_SIZE + (u16::from_le_bytes(size) as u32 % 2048);
        let len = rest.len().min(4 * chunk_size as usize);
        let h = StreamHeader {
            key_id: fixtures::KEY_ID,
            key_version: fixtures::KEY_VERSION,
            chunk_size,
            plaintext_len: len as u64,
            salt: [9; 16],
        };
        let decoded = StreamHeader::decode(&h.encode()).expect("own header decodes");
        assert_eq!(decoded, h);
        arithmetic(&h);
        let c = ObjectCipher::new(k, h.clone()).expect("own key");
        let mut chunks = Vec::new();
        let mut at = 0usize;
        for i in 0..h.chunk_count() {
            let n = h.chunk_plain_len(i);
            let mut buf = rest[at..at + n].to_vec();
            at += n;
            c.seal_chunk(i, &mut buf).expect("seal");
            chunks.push(buf);
        }
        assert_eq!(at, len);
        for (i, ch) in chunks.iter().enumerate() {
            let mut buf = ch.clone();
            c.open_chunk(i as u64, &mut buf).expect("own chunk opens");
            // At another position it does not.
            let mut moved = ch.clone();
            let other = (i as u64 + 1) % (h.chunk_count() + 1);
            assert!(c.open_chunk(other, &mut moved).is_err() || other == i as u64);
        }
    });
}
