//! Server-side large objects through the functions behind SQL's lo_open, loread, lowrite,
//! lo_lseek64 and lo_close: the caller's privileges are checked as for those (SELECT to read,
//! UPDATE to write), creation is refused in read-only transactions, and Postgres closes what is
//! left open at the end of the transaction, after an ERROR too. (The lower inv_api would skip
//! that end-of-transaction cleanup and leak its relation references.)

use crate::pg::errors::raise;
use pgrx::datum::IntoDatum;
use pgrx::fcinfo::direct_function_call_as_datum;
use pgrx::{pg_sys, PgSqlErrorCode};

const INV_WRITE: i32 = 0x0002_0000;
const INV_READ: i32 = 0x0004_0000;
const SEEK_SET: i32 = 0;
const SEEK_END: i32 = 2;
/// Bytes per loread/lowrite call: large reads are split so no single bytea gets huge.
const IO_STEP: usize = 1 << 20;

pub struct LargeObject {
    fd: i32,
    pub oid: pg_sys::Oid,
}

fn call(
    f: unsafe fn(pg_sys::FunctionCallInfo) -> pg_sys::Datum,
    args: &[Option<pg_sys::Datum>],
) -> pg_sys::Datum {
    // SAFETY: every caller in this module passes one of pg_sys's guarded be_lo_* fmgr functions
    // with the arguments of its SQL signature, each made by IntoDatum from the matching Rust
    // type; none of them reads flinfo or context, which a direct call leaves NULL.
    unsafe { direct_function_call_as_datum(f, args) }
        .expect("large object functions return a value")
}

impl LargeObject {
    fn open(oid: pg_sys::Oid, mode: i32) -> Self {
        let fd = call(pg_sys::be_lo_open, &[oid.into_datum(), mode.into_datum()]);
        LargeObject {
            fd: fd.value() as i32,
            oid,
        }
    }

    /// Opens for reading with the statement's snapshot; ERROR if it does not exist or the
    /// caller lacks SELECT on it.
    pub fn open_read(oid: pg_sys::Oid) -> Self {
        Self::open(oid, INV_READ)
    }

    /// Creates a new, empty large object owned by the caller and opens it for writing.
    pub fn create() -> Self {
        let oid = call(pg_sys::be_lo_create, &[pg_sys::InvalidOid.into_datum()]);
        Self::open(pg_sys::Oid::from(oid.value() as u32), INV_WRITE)
    }

    fn lseek(&mut self, offset: i64, whence: i32) -> i64 {
        let pos = call(
            pg_sys::be_lo_lseek64,
            &[
                self.fd.into_datum(),
                offset.into_datum(),
                whence.into_datum(),
            ],
        );
        pos.value() as i64
    }

    /// Size in bytes; leaves the position at the start.
    pub fn size(&mut self) -> u64 {
        let end = self.lseek(0, SEEK_END);
        self.lseek(0, SEEK_SET);
        end as u64
    }

    pub fn seek(&mut self, offset: u64) {
        self.lseek(offset as i64, SEEK_SET);
    }

    /// Fills `buf` from the current position; false if the object ends first.
    pub fn read_exact(&mut self, buf: &mut [u8]) -> bool {
        let mut done = 0;
        while done < buf.len() {
            let want = (buf.len() - done).min(IO_STEP) as i32;
            let datum = call(
                pg_sys::be_loread,
                &[self.fd.into_datum(), want.into_datum()],
            );
            // SAFETY: be_loread returns a bytea palloc'd in the current memory context holding
            // at most `want` <= buf.len() - done bytes, so the copy stays inside buf[done..]; the
            // bytea is ours alone: it is cleared and freed here and not used afterwards.
            unsafe {
                let v = datum.cast_mut_ptr::<pg_sys::varlena>();
                let n = pgrx::varsize_any_exhdr(v);
                if n == 0 {
                    return false;
                }
                std::ptr::copy_nonoverlapping(
                    pgrx::vardata_any(v) as *const u8,
                    buf[done..].as_mut_ptr(),
                    n,
                );
                // Plaintext read from the object does not linger in a freed chunk.
                std::ptr::write_bytes(pgrx::vardata_any(v) as *mut u8, 0, n);
                pg_sys::pfree(v.cast());
                done += n;
            }
        }
        true
    }

    pub fn write_all(&mut self, buf: &[u8]) {
        for part in buf.chunks(IO_STEP) {
            let mut v = crate::pg::varlena::OwnedVarlena::from_slice(part);
            let datum = v.datum();
            let n = call(pg_sys::be_lowrite, &[self.fd.into_datum(), Some(datum)]);
            // Decrypted data passed through this copy: clear it before it is freed.
            v.payload_mut().fill(0);
            if n.value() as i32 as usize != part.len() {
                raise(
                    PgSqlErrorCode::ERRCODE_IO_ERROR,
                    format!("could not write large object {}", self.oid),
                );
            }
        }
    }

    pub fn close(self) {
        call(pg_sys::be_lo_close, &[self.fd.into_datum()]);
    }
}
