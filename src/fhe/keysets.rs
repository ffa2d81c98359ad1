//! FHE key sets: only public material lives in the database (`encml.fhe_keysets`); the secret
//! key stays with its owner. A key set's id is the key id inside its material and inside every
//! ciphertext made with it. A vector key set registered with a CRS (`pg_encrypt_ml-fhe keygen
//! --proofs`) takes proven updates only. Each backend deserializes a key set (and its CRS) once
//! and keeps it (key sets are never changed after registration, so the cache needs no
//! invalidation beyond a DROP).

use super::rounds;
use crate::events;
use crate::pg::catalog_reads::{arg, oid_arg, read_rows};
use crate::pg::errors::raise;
use crate::pg::errors::OrSpiFailed;
use crate::pg::identity::as_extension_owner;
use crate::pg::roles::FHE_ADMIN;
use encml_fhe::keys::{KeyId, PublicKey};
use encml_fhe::proven::Crs;
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
    static CRSS: RefCell<HashMap<[u8; 16], Option<Rc<Crs>>>> = RefCell::new(HashMap::new());
}

/// The kind of key set some public material is for, and its key set id.
fn kind_of(material: &[u8]) -> Result<(&'static str, KeyId), FheError> {
    if encml_fhe::uint32::is_server_material(material) {
        return Ok(("uint32", encml_fhe::uint32::key_id_of(material)?));
    }
    Ok(("vector", PublicKey::from_bytes(material)?.key_id))
}

/// Whether the installed schema has proven updates (0.2.0 and later: `fhe_keysets.proof_crs`,
/// `fhe_rounds.proven`). A 0.1.0 schema, before `ALTER EXTENSION pg_encrypt_ml UPDATE`, has
/// unproven key sets and rounds only.
pub fn proofs_supported() -> bool {
    let keysets = crate::pg::catalog_reads::extension_relation(c"fhe_keysets");
    // SAFETY: a syscache lookup of a column by name; nothing is kept.
    keysets != pgrx::pg_sys::InvalidOid
        && unsafe { pgrx::pg_sys::get_attnum(keysets, c"proof_crs".as_ptr()) > 0 }
}

/// Registers a key set from its public material, and for a vector key set that takes proven
/// updates only, the CRS its proofs are made with; returns its id (the key id in the material).
pub fn register(name: &str, material: &[u8], crs: Option<&[u8]>) -> Uuid {
    let me = rounds::require("fhe_register_keyset", FHE_ADMIN);
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
    let supported = proofs_supported();
    let proofs = crs.map(|bytes| {
        if !supported {
            raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "proven updates need the 0.2.0 schema: run ALTER EXTENSION pg_encrypt_ml UPDATE",
            );
        }
        if kind != "vector" {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "only vector key sets take proven updates (a CRS)",
            );
        }
        // Checked once, here (every point in its group, parameters as its header says; tens of
        // seconds at 2,048 values per proof): a CRS read later is the one checked now.
        let checked =
            super::workers::run(|| Crs::from_bytes_checked(bytes).map(|c| c.encoding_bits));
        let (value_bits, message_bits) = checked.unwrap_or_else(|e| {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("not a CRS for proven updates: {e}"),
            )
        });
        json!({ "value_bits": value_bits, "message_bits": message_bits })
    });
    let columns = if supported {
        "(id, name, kind, public_material, created_by, proof_crs) VALUES ($1, $2, $3, $4, $5::regrole, $6)"
    } else {
        "(id, name, kind, public_material, created_by) VALUES ($1, $2, $3, $4, $5::regrole)"
    };
    let inserted = crate::pg::identity::as_extension_owner(|| {
        Spi::connect_mut(|c| {
            let insert = format!(
                "INSERT INTO encml.fhe_keysets {columns} ON CONFLICT DO NOTHING RETURNING id"
            );
            let mut args: Vec<pgrx::datum::DatumWithOid> = vec![
                id.into(),
                name.into(),
                kind.into(),
                material.into(),
                oid_arg(me),
            ];
            if supported {
                args.push(crs.into());
            }
            c.update(&insert, None, &args)
                .or_spi_failed("FHE round catalog")
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
        json!({ "keyset": id.to_string(), "name": name, "kind": kind, "proofs": proofs }),
    );
    id
}

/// The CRS a vector key set's updates are proven with, or None for a key set without proofs;
/// read and deserialized once per backend (the CRS was checked when it was registered).
pub fn crs(id: &[u8; 16]) -> Option<Rc<Crs>> {
    if let Some(c) = CRSS.with(|c| c.borrow().get(id).cloned()) {
        return c;
    }
    if !proofs_supported() {
        return None;
    }
    let rows = as_extension_owner(|| {
        read_rows(
            "SELECT proof_crs FROM encml.fhe_keysets WHERE id = $1",
            &[arg(pgrx::Uuid::from_bytes(*id))],
            1,
            |row| row.get::<Vec<u8>>(1),
        )
    });
    let bytes = match rows.into_iter().next() {
        Some(bytes) => bytes,
        None => raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("FHE key set {} does not exist", pgrx::Uuid::from_bytes(*id)),
        ),
    };
    let crs = bytes.map(|b| {
        LOADS.with(|l| l.set(l.get() + 1));
        Rc::new(
            super::workers::run(|| Crs::from_bytes_trusted(&b))
                .unwrap_or_else(|e| crate::pg::errors::fhe_error(e)),
        )
    });
    CRSS.with(|c| c.borrow_mut().insert(*id, crs.clone()));
    crs
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
    let key =
        Rc::new(PublicKey::from_bytes(&bytes).unwrap_or_else(|e| crate::pg::errors::fhe_error(e)));
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
    crate::fhe::workers::prepare_global_pool();
    let key = Rc::new(
        encml_fhe::uint32::ServerKeySet::from_material(&bytes)
            .unwrap_or_else(|e| crate::pg::errors::fhe_error(e)),
    );
    UINT32_KEYS.with(|c| c.borrow_mut().insert(*id, key.clone()));
    key
}
