//! Encrypted large objects for checkpoints of any size: lo_encrypt, lo_decrypt,
//! lo_decrypt_range, lo_encryption_info. Streamed chunk by chunk through the STREAM construction
//! (`encml_core::stream`, docs/formats.md), so memory stays at about two chunks whatever the
//! object's size, and objects beyond the 1 GB limit of a bytea work.

use crate::api::encrypt::key_arg;
use crate::keys::cache;
use crate::keys::grants::Privilege;
use crate::pg::errors::{raise, raise_core, raise_full};
use crate::pg::large_object::LargeObject;
use crate::pg::random;
use crate::pg::varlena::OwnedVarlena;
use encml_core::format::TAG_LEN;
use encml_core::stream::{
    ObjectCipher, StreamHeader, DEFAULT_CHUNK_SIZE, HEADER_LEN, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE,
};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgMemoryContexts, PgSqlErrorCode, Uuid};
use zeroize::Zeroizing;

/// Runs `f` in a memory context that is emptied after each call, so that what the large-object
/// layer allocates per chunk does not accumulate over a multi-gigabyte object.
struct ChunkContext(PgMemoryContexts);

impl ChunkContext {
    fn new() -> Self {
        ChunkContext(PgMemoryContexts::new("encml large object chunk"))
    }

    fn run<R>(&mut self, f: impl FnOnce() -> R) -> R {
        // SAFETY: the context is our own, alive as long as `self`; switch_to restores the
        // previous context after `f`. The reset frees only what `f` allocated in it: every
        // caller's `f` returns `()` and keeps its data in Rust memory (the chunk buffer), and
        // the large-object descriptors live in be-fsstubs' own context, not this one.
        unsafe {
            let r = self.0.switch_to(|_| f());
            self.0.reset();
            r
        }
    }
}

/// Opens an encrypted object: its parsed header and cipher, after checking that its length is
/// the one the header implies (a removed tail or appended bytes are refused before any chunk).
fn open_encrypted(src: &mut LargeObject) -> ObjectCipher {
    let size = src.size();
    let mut head = [0u8; HEADER_LEN];
    if !src.read_exact(&mut head) {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
            format!(
                "large object {} is not an encrypted large object (shorter than its header)",
                src.oid
            ),
        );
    }
    let header = StreamHeader::decode(&head).unwrap_or_else(|e| {
        raise(
            crate::pg::errors::sqlstate(&e),
            format!("large object {}: {e}", src.oid),
        )
    });
    if size != header.encrypted_len() {
        raise_full(
            PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
            format!(
                "encrypted large object {} was truncated or extended: it has {size} bytes, its header implies {}",
                src.oid,
                header.encrypted_len()
            ),
            None,
            None,
        );
    }
    let key = cache::version(&header.key_id, header.key_version);
    ObjectCipher::new(key.aead(Privilege::Decrypt), header).unwrap_or_else(|e| raise_core(e))
}

fn chunk_failed(oid: pg_sys::Oid, i: u64, e: encml_core::Error) -> ! {
    match e {
        encml_core::Error::AuthenticationFailed => raise_full(
            PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
            format!("decryption of chunk {i} of large object {oid} failed: chunks were altered, reordered, swapped or removed"),
            None,
            None,
        ),
        e => raise_core(e),
    }
}

fn read_chunk(src: &mut LargeObject, cipher: &ObjectCipher, i: u64, buf: &mut Vec<u8>) {
    let len = cipher.header().chunk_plain_len(i) + TAG_LEN;
    buf.resize(len, 0);
    if !src.read_exact(buf) {
        raise(
            PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
            format!("encrypted large object {} ends inside chunk {i}", src.oid),
        );
    }
    if let Err(e) = cipher.open_chunk(i, buf) {
        chunk_failed(src.oid, i, e);
    }
}

#[pg_extern(volatile, parallel_unsafe)]
fn lo_encrypt(
    src: Option<pg_sys::Oid>,
    key: Option<Uuid>,
    chunk_size: default!(Option<i32>, 1048576),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<pg_sys::Oid> {
    crate::pg::recovery::refuse_during_recovery("encml.lo_encrypt()");
    // SAFETY: fcinfo is the one pgrx passed to this #[pg_extern] function, valid for
    // the call; the function is not set-returning, so fn_extra is free.
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    let src = src?;
    let key = cache::current(&key_arg(key));
    let chunk_size = chunk_size.unwrap_or(DEFAULT_CHUNK_SIZE as i32);
    if !(MIN_CHUNK_SIZE as i32..=MAX_CHUNK_SIZE as i32).contains(&chunk_size) {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("chunk_size must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE} bytes"),
        );
    }
    let mut input = LargeObject::open_read(src);
    let mut salt = [0u8; 16];
    random::fill(&mut salt);
    let header = StreamHeader {
        key_id: key.key_id,
        key_version: key.version,
        chunk_size: chunk_size as u32,
        plaintext_len: input.size(),
        salt,
    };
    if header.chunk_count() > u32::MAX as u64 {
        raise(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            "large object has more chunks than the format allows; use a larger chunk_size",
        );
    }
    let cipher =
        ObjectCipher::new(key.aead(Privilege::Encrypt), header).unwrap_or_else(|e| raise_core(e));
    let mut output = LargeObject::create();
    output.write_all(&cipher.header().encode());
    // Plaintext passes through this buffer: zeroed when dropped, after an ERROR too.
    let mut buf = Zeroizing::new(Vec::with_capacity(chunk_size as usize + TAG_LEN));
    let mut ctx = ChunkContext::new();
    for i in 0..cipher.header().chunk_count() {
        // Large objects reach terabytes: statement_timeout and cancels act between chunks.
        pgrx::check_for_interrupts!();
        buf.resize(cipher.header().chunk_plain_len(i), 0);
        ctx.run(|| {
            if !input.read_exact(&mut buf) {
                raise(
                    PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
                    format!("large object {src} changed while it was being encrypted"),
                );
            }
            cipher
                .seal_chunk(i, &mut buf)
                .unwrap_or_else(|e| raise_core(e));
            output.write_all(&buf);
        });
        crate::pg::pause::point("lo_encrypt");
    }
    input.close();
    let oid = output.oid;
    output.close();
    Some(oid)
}

#[pg_extern(volatile, parallel_unsafe)]
fn lo_decrypt(src: Option<pg_sys::Oid>, fcinfo: pg_sys::FunctionCallInfo) -> Option<pg_sys::Oid> {
    crate::pg::recovery::refuse_during_recovery("encml.lo_decrypt()");
    // SAFETY: fcinfo is the one pgrx passed to this #[pg_extern] function, valid for
    // the call; the function is not set-returning, so fn_extra is free.
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    let mut input = LargeObject::open_read(src?);
    let cipher = open_encrypted(&mut input);
    let mut output = LargeObject::create();
    let mut buf = Zeroizing::new(Vec::with_capacity(
        cipher.header().chunk_size as usize + TAG_LEN,
    ));
    let mut ctx = ChunkContext::new();
    // Only authenticated chunks are written; a failure later (a removed last chunk shows as a
    // chunk that was not sealed as last) raises, and the ERROR discards the new object.
    for i in 0..cipher.header().chunk_count() {
        // Large objects reach terabytes: statement_timeout and cancels act between chunks.
        pgrx::check_for_interrupts!();
        ctx.run(|| {
            read_chunk(&mut input, &cipher, i, &mut buf);
            output.write_all(&buf);
        });
    }
    crate::security::exfil::decrypted(&cipher.header().key_id);
    input.close();
    let oid = output.oid;
    output.close();
    Some(oid)
}

/// Re-encrypts an encrypted large object under the current version of its key into a new large
/// object, chunk by chunk (the source itself is returned when it is already current), for
/// rotation: point the row at the new oid and unlink the old one.
#[pg_extern(volatile, parallel_unsafe)]
fn lo_reencrypt(src: Option<pg_sys::Oid>, fcinfo: pg_sys::FunctionCallInfo) -> Option<pg_sys::Oid> {
    crate::pg::recovery::refuse_during_recovery("encml.lo_reencrypt()");
    // SAFETY: fcinfo is the one pgrx passed to this #[pg_extern] function, valid for
    // the call; the function is not set-returning, so fn_extra is free.
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    let src = src?;
    // A value in, an object of the same key out: a re-encryption job may run it on its key's
    // authority (`cache::with_reencrypt_authority`).
    let oid = cache::reencrypting(|| reencrypt_object(src));
    if oid != src {
        crate::api::lifecycle::objects::created(oid);
    }
    Some(oid)
}

fn reencrypt_object(src: pg_sys::Oid) -> pg_sys::Oid {
    let mut input = LargeObject::open_read(src);
    let old = open_encrypted(&mut input);
    let current = cache::current(&old.header().key_id);
    if current.version == old.header().key_version {
        input.close();
        return src;
    }
    let mut salt = [0u8; 16];
    random::fill(&mut salt);
    let header = StreamHeader {
        key_version: current.version,
        salt,
        ..old.header().clone()
    };
    let new = ObjectCipher::new(current.aead(Privilege::Encrypt), header)
        .unwrap_or_else(|e| raise_core(e));
    let mut output = LargeObject::create();
    output.write_all(&new.header().encode());
    let mut buf = Zeroizing::new(Vec::with_capacity(
        old.header().chunk_size as usize + TAG_LEN,
    ));
    let mut ctx = ChunkContext::new();
    for i in 0..old.header().chunk_count() {
        // Large objects reach terabytes: statement_timeout and cancels act between chunks.
        pgrx::check_for_interrupts!();
        ctx.run(|| {
            read_chunk(&mut input, &old, i, &mut buf);
            new.seal_chunk(i, &mut buf)
                .unwrap_or_else(|e| raise_core(e));
            output.write_all(&buf);
        });
    }
    crate::security::exfil::decrypted(&old.header().key_id);
    input.close();
    let oid = output.oid;
    output.close();
    oid
}

/// Up to `length` plaintext bytes from `offset` (fewer at the end of the object, as lo_get),
/// decrypting only the chunks that hold them.
#[pg_extern(volatile, parallel_restricted)]
fn lo_decrypt_range(
    src: Option<pg_sys::Oid>,
    offset: Option<i64>,
    length: Option<i32>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<OwnedVarlena> {
    // SAFETY: fcinfo is the one pgrx passed to this #[pg_extern] function, valid for
    // the call; the function is not set-returning, so fn_extra is free.
    unsafe { cache::accept_invalidations_once_per_query(fcinfo) };
    let (src, offset, length) = (src?, offset?, length?);
    if offset < 0 || length < 0 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "offset and length must not be negative",
        );
    }
    let mut input = LargeObject::open_read(src);
    let cipher = open_encrypted(&mut input);
    let h = cipher.header().clone();
    let start = (offset as u64).min(h.plaintext_len);
    let end = (start + length as u64).min(h.plaintext_len);
    let mut out = OwnedVarlena::with_bytes_at((end - start) as usize, 0, &[]);
    let chunk = h.chunk_size as u64;
    let last = h.chunk_count() - 1;
    let mut buf = Zeroizing::new(Vec::with_capacity(chunk as usize + TAG_LEN));
    let mut wanted: Vec<u64> = if end > start {
        (start / chunk..=(end - 1) / chunk).collect()
    } else {
        Vec::new()
    };
    // The plaintext length that bounds the range comes from the header; opening the last chunk
    // (sealed as last, with the header as AAD) proves it, so a shortened object cannot pass
    // for a complete one, even for a read at or past its end.
    if wanted.last() != Some(&last) {
        wanted.push(last);
    }
    let out_bytes = out.payload_mut();
    for i in wanted {
        // Large objects reach terabytes: statement_timeout and cancels act between chunks.
        pgrx::check_for_interrupts!();
        input.seek(h.chunk_offset(i));
        read_chunk(&mut input, &cipher, i, &mut buf);
        let chunk_start = i * chunk;
        let from = start.max(chunk_start);
        let to = end.min(chunk_start + buf.len() as u64);
        if from < to {
            out_bytes[(from - start) as usize..(to - start) as usize]
                .copy_from_slice(&buf[(from - chunk_start) as usize..(to - chunk_start) as usize]);
        }
    }
    crate::security::exfil::decrypted(&h.key_id);
    input.close();
    Some(out)
}

/// The clear header of an encrypted large object (unverified until a chunk is decrypted).
#[pg_extern(volatile, parallel_restricted, strict)]
fn lo_encryption_info(
    src: pg_sys::Oid,
) -> TableIterator<
    'static,
    (
        name!(key_id, Uuid),
        name!(key_version, i32),
        name!(plaintext_bytes, i64),
        name!(chunk_size, i32),
        name!(chunks, i64),
    ),
> {
    let mut input = LargeObject::open_read(src);
    let mut head = [0u8; HEADER_LEN];
    if !input.read_exact(&mut head) {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
            format!(
                "large object {src} is not an encrypted large object (shorter than its header)"
            ),
        );
    }
    input.close();
    let h = StreamHeader::decode(&head).unwrap_or_else(|e| raise_core(e));
    TableIterator::once((
        Uuid::from_bytes(h.key_id),
        h.key_version as i32,
        h.plaintext_len as i64,
        h.chunk_size as i32,
        h.chunk_count() as i64,
    ))
}
