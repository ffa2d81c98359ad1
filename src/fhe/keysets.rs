//! FHE key sets: only public material lives in the database (`encml.fhe_keysets`); the secret
//! key stays with its owner. A key set's id is the key id inside its material and inside every
//! ciphertext made with it. Each backend deserializes a key set once and keeps it (key sets are
//! never changed after registration, so the cache needs no invalidation beyond a DROP).

use super::rounds;
use crate::audit::events;
use crate::pg::catalog_access::{arg, as_extension_owner, oid_arg, read_rows};
use crate::pg::errors::raise;
use encml_fhe::keys::{KeyId, PublicKey};
use encml_fhe::FheError;
use pgrx::prelude::*;
use pgrx::{PgSqlErrorCode, Uuid};
use serde_json::json;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

thread_local! {
    static VECTOR_KEYS: RefCell<HashMap<[u8; 16], Rc<PublicKey>>> = RefCell::new(HashMap::new());
    static LOADS: Cell<i64> = const { Cell::new(0) };
}

/// The kind of key set some public material is for, and its key set id.
fn kind_of(material: &[u8]) -> Result<(&'static str, KeyId), FheError> {
    if encml_fhe::uint32::is_server_material(material) {
        return Ok(("uint32", encml_fhe::uint32::key_id_of(material)?));
    }
    Ok(("vector", PublicKey::from_bytes(material)?.key_id))
}

/// Registers a key set from its public material; returns its id (the key id in the material).
pub fn register(name: &str, material: &[u8]) -> Uuid {
    let me = rounds::require("fhe_register_keyset", rounds::ADMIN_ROLE);
    if name.is_empty() || name.len() >= 64 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "a key set name needs 1 to 63 bytes",
        );
    }
    let (kind, key_id) = kind_of(material).unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("not the public material of an FHE key set: {e}"),
        )
    });
    let id = Uuid::from_bytes(key_id);
    let inserted = crate::pg::catalog_access::as_extension_owner(|| {
        Spi::connect_mut(|c| {
            c.update(
                "INSERT INTO encml.fhe_keysets (id, name, kind, public_material, created_by) \
                 VALUES ($1, $2, $3, $4, $5::regrole) ON CONFLICT DO NOTHING RETURNING id",
                None,
                &[
                    id.into(),
                    name.into(),
                    kind.into(),
                    material.into(),
                    oid_arg(me),
                ],
            )
            .unwrap_or_else(|e| rounds::spi_err(e))
            .len()
        })
    });
    if inserted == 0 {
        raise(
            PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
            format!("an FHE key set named \"{name}\" or with id {id} is already registered"),
        );
    }
    events::record(
        "fhe_register_keyset",
        None,
        json!({ "keyset": id.to_string(), "name": name, "kind": kind }),
    );
    id
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
            format!("FHE key set {} does not exist", pgrx::Uuid::from_bytes(*id)),
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
            format!(
                "FHE key set {} is a {kind} key set, not a vector key set",
                pgrx::Uuid::from_bytes(*id)
            ),
        );
    }
    let key = Rc::new(PublicKey::from_bytes(&bytes).unwrap_or_else(|e| super::fhe_error(e)));
    VECTOR_KEYS.with(|c| c.borrow_mut().insert(*id, key.clone()));
    key
}

thread_local! {
    static UINT32_KEYS: RefCell<HashMap<[u8; 16], Rc<encml_fhe::uint32::ServerKeySet>>> =
        RefCell::new(HashMap::new());
}

/// The server key of a uint32 key set, deserialized and decompressed once per backend (seconds
/// and about 200 MB; never per row).
pub fn uint32_server_key(id: &[u8; 16]) -> Rc<encml_fhe::uint32::ServerKeySet> {
    if let Some(k) = UINT32_KEYS.with(|c| c.borrow().get(id).cloned()) {
        return k;
    }
    let (kind, bytes) = material(id);
    if kind != "uint32" {
        raise(
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!(
                "FHE key set {} is a {kind} key set, not a uint32 key set",
                Uuid::from_bytes(*id)
            ),
        );
    }
    let key = Rc::new(
        encml_fhe::uint32::ServerKeySet::from_material(&bytes)
            .unwrap_or_else(|e| super::fhe_error(e)),
    );
    UINT32_KEYS.with(|c| c.borrow_mut().insert(*id, key.clone()));
    key
}
