//! Security events no audit log could take when they were raised, kept in a shared-memory ring
//! (preloaded library only) until a backend of a database with the extension forwards them
//! (`security::queue::forward`, whenever security state is read): events of authentication (no
//! database yet), of databases without the extension (role changes are cluster-wide), and of
//! parallel workers that found no background worker slot free (they exit before any statement
//! of theirs could write). An event raised in a database carries its OID and is forwarded only
//! to that database's log; the others go to the first database that reads them.

use encml_core::event_ring::Ring;
use pgrx::pg_sys;
use pgrx::{PGRXSharedMemory, PgLwLock};

/// Records waiting at most; the oldest is dropped when full (counted in metrics).
const RECORDS: usize = 256;
/// The longest record; a longer event is parked with its detail cut (`park`).
const RECORD_BYTES: usize = 1024;

/// The member naming the database an event belongs to.
const DATABASE: &str = "database_oid";

pub struct Queue(pub Ring<RECORDS, RECORD_BYTES>);
// SAFETY: plain old data (encml_core::event_ring's Ring: a fixed array of length-prefixed byte
// records and integer cursors), no pointers and no Drop, so every process sees the same valid
// bytes; it is initialized with EMPTY by pg_shmem_init! and only reached through QUEUE's LWLock.
unsafe impl PGRXSharedMemory for Queue {}
impl Queue {
    pub const EMPTY: Queue = Queue(Ring::EMPTY);
}

// SAFETY: PgLwLock::new asks for a name no other lock uses: the extension's other locks are
// "... key use", "... auth lockout" and "... decrypt rates".
pub static QUEUE: PgLwLock<Queue> = unsafe { PgLwLock::new(c"pg_encrypt_ml event queue") };

/// Parks an event (the JSON the detached writer inserts), for any database; one too long for a
/// record keeps its fields but for `detail`, cut to its severity. False when the library is not
/// preloaded (there is no ring).
pub fn park(mut event: serde_json::Value) -> bool {
    if !crate::pg::preload::preloaded() {
        return false;
    }
    let mut text = event.to_string();
    if text.len() > RECORD_BYTES {
        let operation = event["operation"].as_str().unwrap_or_default().to_string();
        event["detail"] = serde_json::json!({
            "truncated": true,
            "severity": crate::events::severity::of(&operation),
        });
        text = event.to_string();
    }
    QUEUE.exclusive().0.push(text.as_bytes())
}

/// Parks an event of the current database: only a backend of this database forwards it.
pub fn park_here(mut event: serde_json::Value) -> bool {
    // SAFETY: a backend global set when the session connected.
    let database = unsafe { pg_sys::MyDatabaseId };
    event[DATABASE] = serde_json::json!(database.to_u32());
    park(event)
}

/// Takes the parked events this database may write: its own and those of no database. Events
/// of other databases stay, in their order.
pub fn take_for_this_database() -> Vec<String> {
    if !crate::pg::preload::preloaded() {
        return Vec::new();
    }
    // SAFETY: a backend global set when the session connected.
    let here = unsafe { pg_sys::MyDatabaseId }.to_u32() as u64;
    let mut q = QUEUE.exclusive();
    let all: Vec<Vec<u8>> = std::iter::from_fn(|| q.0.pop()).collect();
    let mut mine = Vec::new();
    for record in all {
        let text = String::from_utf8_lossy(&record).into_owned();
        let owner = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|e| e.get(DATABASE).and_then(serde_json::Value::as_u64));
        match owner {
            Some(db) if db != here => {
                q.0.push(&record);
            }
            _ => mine.push(text),
        }
    }
    mine
}

/// Waiting events and events dropped because the ring was full.
pub fn stats() -> (usize, u64) {
    if !crate::pg::preload::preloaded() {
        return (0, 0);
    }
    let q = QUEUE.share();
    (q.0.len(), q.0.dropped)
}
