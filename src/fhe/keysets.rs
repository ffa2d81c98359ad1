//! FHE key sets: only public material lives in the database (`encml.fhe_keysets`); the secret
//! key stays with its owner. A key set's id is the key id inside its material and inside every
//! ciphertext made with it. Each backend deserializes a key set once and keeps it (key sets are
//! never changed after registration, so the cache needs no invalidation beyond a DROP).

use crate::pg::catalog_access::{arg, as_extension_owner, read_rows};
use crate::pg::errors::raise;
use encml_fhe::keys::PublicKey;
use pgrx::PgSqlErrorCode;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

thread_local! {
    static VECTOR_KEYS: RefCell<HashMap<[u8; 16], Rc<PublicKey>>> = RefCell::new(HashMap::new());
    static LOADS: Cell<i64> = const { Cell::new(0) };
}

/// How many times this backend read and deserialized key-set material (for tests and tuning).
pub fn loads() -> i64 {
    LOADS.with(|l| l.get())
}

/// The stored material and kind of a key set.
pub fn material(id: &[u8; 16]) -> (String, Vec<u8>) {
    let rows = as_extension_owner(|| {
        read_rows(
            "SELECT kind, public_material FROM encml.fhe_keysets WHERE id = $1",
            &[arg(pgrx::Uuid::from_bytes(*id))],
            1,
            |row| (row.get::<String>(1), row.get::<Vec<u8>>(2)),
        )
    });
    match rows.into_iter().next() {
        Some((Some(kind), Some(bytes))) => {
            LOADS.with(|l| l.set(l.get() + 1));
            (kind, bytes)
        }
        _ => raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!(
                "FHE key set {} does not exist",
                pgrx::Uuid::from_bytes(*id)
            ),
        ),
    }
}

/// The public key of a vector key set, deserialized once per backend.
pub fn vector_public_key(id: &[u8; 16]) -> Rc<PublicKey> {
    if let Some(k) = VECTOR_KEYS.with(|c| c.borrow().get(id).cloned()) {
        return k;
    }
    let (kind, bytes) = material(id);
    if kind != "vector" {
        raise(
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!("FHE key set {} is a {kind} key set, not a vector key set", pgrx::Uuid::from_bytes(*id)),
        );
    }
    let key = Rc::new(PublicKey::from_bytes(&bytes).unwrap_or_else(|e| super::fhe_error(e)));
    VECTOR_KEYS.with(|c| c.borrow_mut().insert(*id, key.clone()));
    key
}
