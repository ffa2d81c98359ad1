//! Which columns hold this extension's ciphertexts, recognised by type OID: the type itself, a
//! domain over it, or an array, range or composite type that contains one (issue 27, attacker
//! round 6: a domain over enc_bytea escaped anonymization when types were matched by name).

use pgrx::pg_sys;
use std::ffi::CString;

/// The extension's ciphertext types.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Encrypted {
    EncBytea,
    DetText,
    OreInt8,
    OreFloat8,
    OreTimestamptz,
}

impl Encrypted {
    const ALL: [Encrypted; 5] = [
        Encrypted::EncBytea,
        Encrypted::DetText,
        Encrypted::OreInt8,
        Encrypted::OreFloat8,
        Encrypted::OreTimestamptz,
    ];

    /// The SQL name of the type (in the extension's schema).
    pub fn type_name(self) -> &'static str {
        match self {
            Encrypted::EncBytea => "enc_bytea",
            Encrypted::DetText => "det_text",
            Encrypted::OreInt8 => "ore_int8",
            Encrypted::OreFloat8 => "ore_float8",
            Encrypted::OreTimestamptz => "ore_timestamptz",
        }
    }

    /// The ciphertext kind its values carry in their header (docs/formats.md).
    pub fn kind(self) -> encml_core::format::Kind {
        use encml_core::format::Kind;
        match self {
            Encrypted::EncBytea => Kind::Randomized,
            Encrypted::DetText => Kind::Deterministic,
            Encrypted::OreInt8 | Encrypted::OreFloat8 | Encrypted::OreTimestamptz => {
                Kind::OrderRevealing
            }
        }
    }

    /// Whether values of it can be decrypted (order-revealing values cannot be).
    pub fn decryptable(self) -> bool {
        matches!(self, Encrypted::EncBytea | Encrypted::DetText)
    }
}

/// The OID of `name` in the extension's own schema (`encml`, fixed by the control file), where
/// only the extension's owner creates objects; InvalidOid if the extension is not installed.
fn extension_type(name: &str) -> pg_sys::Oid {
    let name = CString::new(name).expect("no NUL");
    // SAFETY: catalog lookups by name; missing objects give InvalidOid (missing_ok).
    unsafe {
        let schema = pg_sys::get_namespace_oid(c"encml".as_ptr(), true);
        if schema == pg_sys::InvalidOid {
            return pg_sys::InvalidOid;
        }
        pg_sys::GetSysCacheOid(
            pg_sys::SysCacheIdentifier::TYPENAMENSP as i32,
            pg_sys::Anum_pg_type_oid as i16,
            pg_sys::Datum::from(name.as_ptr()),
            pg_sys::Datum::from(schema),
            pg_sys::Datum::from(0usize),
            pg_sys::Datum::from(0usize),
        )
    }
}

/// The ciphertext type `typoid` is, directly or as a domain over it (at any depth).
pub fn encrypted_type(typoid: pg_sys::Oid) -> Option<Encrypted> {
    // SAFETY: a syscache walk down the domain's base types.
    let base = unsafe { pg_sys::getBaseType(typoid) };
    if base.to_u32() < pg_sys::FirstNormalObjectId {
        return None;
    }
    Encrypted::ALL
        .into_iter()
        .find(|t| extension_type(t.type_name()) == base)
}

/// Whether values of `typoid` can hold a ciphertext of the extension: it is one, a domain over
/// one, or an array, range or composite type with one inside.
pub fn holds_encrypted(typoid: pg_sys::Oid) -> bool {
    holds_encrypted_at(typoid, 0)
}

fn holds_encrypted_at(typoid: pg_sys::Oid, depth: usize) -> bool {
    // A composite type can contain itself only through an array of itself, which Postgres
    // refuses; the bound is for safety, not expected to be reached.
    if depth > 32 {
        return true;
    }
    if encrypted_type(typoid).is_some() {
        return true;
    }
    // SAFETY: syscache lookups by oid; the tuple descriptor is released after use.
    unsafe {
        let base = pg_sys::getBaseType(typoid);
        if base.to_u32() < pg_sys::FirstNormalObjectId {
            return false;
        }
        let element = pg_sys::get_element_type(base);
        if element != pg_sys::InvalidOid {
            return holds_encrypted_at(element, depth + 1);
        }
        let subtype = pg_sys::get_range_subtype(base);
        if subtype != pg_sys::InvalidOid {
            return holds_encrypted_at(subtype, depth + 1);
        }
        let multirange = pg_sys::get_multirange_range(base);
        if multirange != pg_sys::InvalidOid {
            return holds_encrypted_at(multirange, depth + 1);
        }
        if pg_sys::type_is_rowtype(base) {
            let desc = pg_sys::lookup_rowtype_tupdesc(base, -1);
            let mut types = Vec::new();
            for i in 0..(*desc).natts as usize {
                let att = (*desc).attrs.as_ptr().add(i);
                if !(*att).attisdropped {
                    types.push((*att).atttypid);
                }
            }
            pg_sys::DecrTupleDescRefCount(desc);
            return types.into_iter().any(|t| holds_encrypted_at(t, depth + 1));
        }
        false
    }
}
