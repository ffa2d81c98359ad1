//! Per-key privileges (encrypt, decrypt, admin): who may use which key, as Vault's transit
//! policies per key. A role holds a privilege on a key when it has the privileges (inheritance
//! counts, as for GRANT) of
//! - a superuser or a member of encml_key_admin: every privilege on every key;
//! - the key's creator (keys from create_key; not the keys tenant_key() makes): every privilege;
//! - a member of encml_tenant_admin, for a tenant's key: every privilege;
//! - a member of the key's tenant, for the keys tenant_key() makes: encrypt and decrypt;
//! - a member of encml_subject_processor, for the data subjects' keys subject_key() makes:
//!   encrypt and decrypt;
//! - a grantee of `encml.grant_key(key, role, privilege)`.
//!
//! Answers are cached per backend and role, and dropped with the key cache (any change of keys or
//! grants, sent as a relcache invalidation of the key table) and on any change of role
//! memberships or attributes (syscache callbacks), so a REVOKE takes effect at the next statement
//! of every session.

use crate::keys::catalog::uuid_string;
use crate::pg::catalog_reads::{arg, select_one};
use crate::pg::errors::raise_full;
use crate::pg::identity::as_extension_owner;
use crate::pg::roles::{
    caller, has_privs_of_role_named, is_superuser, role_name, KEY_ADMIN, SUBJECT_PROCESSOR,
};
use pgrx::{pg_sys, PgSqlErrorCode};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    Encrypt,
    Decrypt,
    Admin,
}

impl Privilege {
    pub const ALL: [Privilege; 3] = [Privilege::Encrypt, Privilege::Decrypt, Privilege::Admin];

    pub fn label(self) -> &'static str {
        match self {
            Privilege::Encrypt => "encrypt",
            Privilege::Decrypt => "decrypt",
            Privilege::Admin => "admin",
        }
    }

    pub fn from_label(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.label() == label)
    }

    pub(crate) fn bit(self) -> u8 {
        match self {
            Privilege::Encrypt => 1,
            Privilege::Decrypt => 2,
            Privilege::Admin => 4,
        }
    }
}

const ALL_BITS: u8 = 7;

/// What the privilege check needs to know about a key.
pub struct KeyOwnership<'a> {
    pub key_id: &'a [u8; 16],
    pub tenant: Option<&'a str>,
    pub created_by: pg_sys::Oid,
    pub managed: bool,
}

thread_local! {
    /// (key, role) -> privilege bits.
    static MEMO: RefCell<HashMap<([u8; 16], pg_sys::Oid), u8>> = RefCell::new(HashMap::new());
    /// The last answer, for bulk statements that use one key over and over.
    static LAST: Cell<Option<([u8; 16], pg_sys::Oid, u8)>> = const { Cell::new(None) };
    static CALLBACKS: Cell<bool> = const { Cell::new(false) };
}

pub fn clear() {
    crate::keys::clearances::clear();
    LAST.with(|l| l.set(None));
    MEMO.with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            m.clear();
        }
    });
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn on_role_change(_arg: pg_sys::Datum, _cache: i32, _hash: u32) {
    // The key cache too: its entries remember which role was verified for them.
    crate::keys::cache::clear();
}

/// Role memberships and attributes (SUPERUSER, INHERIT) change answers: drop them on any change.
pub fn register_callbacks() {
    if !CALLBACKS.with(|c| c.replace(true)) {
        // SAFETY: registered once per process (CALLBACKS), for two valid syscache ids, with a
        // #[pg_guard] callback of the signature Postgres calls, which ignores its `arg`. The
        // bindings are guarded (running out of callback slots is an ERROR, not a longjmp here).
        unsafe {
            pg_sys::CacheRegisterSyscacheCallback(
                pg_sys::SysCacheIdentifier::AUTHMEMROLEMEM as i32,
                Some(on_role_change),
                pg_sys::Datum::from(0),
            );
            pg_sys::CacheRegisterSyscacheCallback(
                pg_sys::SysCacheIdentifier::AUTHOID as i32,
                Some(on_role_change),
                pg_sys::Datum::from(0),
            );
        }
    }
}

fn compute(key: &KeyOwnership<'_>, role: pg_sys::Oid) -> u8 {
    if is_superuser(role) || has_privs_of_role_named(role, KEY_ADMIN) {
        return ALL_BITS;
    }
    if !key.managed
        && key.created_by != pg_sys::InvalidOid
        // SAFETY: has_privs_of_role takes two role oids by value and only reads the catalog
        // (through pgrx's guarded binding); an oid of a dropped role is simply not a member.
        && unsafe { pg_sys::has_privs_of_role(role, key.created_by) }
    {
        return ALL_BITS;
    }
    if key.tenant.is_some() && crate::keys::tenants::is_tenant_admin(role) {
        return ALL_BITS;
    }
    let mut bits = 0;
    match (key.managed, key.tenant) {
        (true, Some(t)) if crate::keys::tenants::is_member(t, role) => {
            bits |= Privilege::Encrypt.bit() | Privilege::Decrypt.bit();
        }
        // The managed keys without a tenant are the data subjects' keys (subject_key()).
        (true, None) if has_privs_of_role_named(role, SUBJECT_PROCESSOR) => {
            bits |= Privilege::Encrypt.bit() | Privilege::Decrypt.bit();
        }
        _ => {}
    }
    let granted = crate::pg::catalog_reads::with_latest_snapshot(|| {
        as_extension_owner(|| {
            select_one::<i32>(
            "SELECT coalesce(bit_or(CASE privilege WHEN 'encrypt' THEN 1 WHEN 'decrypt' THEN 2 ELSE 4 END), 0) \
               FROM encml.key_grants \
              WHERE key_id = $1 AND pg_catalog.pg_has_role($2::oid, grantee::oid, 'USAGE')",
            &[arg(pgrx::Uuid::from_bytes(*key.key_id)), arg(role)],
        )
        .unwrap_or(0)
        })
    });
    bits | granted as u8
}

/// Whether the calling role holds `privilege` on the key (cached).
pub fn holds(key: &KeyOwnership<'_>, privilege: Privilege) -> bool {
    holds_as(key, privilege, caller())
}

/// Whether `role` holds `privilege` on the key (cached; the role is passed in by callers that
/// check several things per value, since every call into Postgres costs a sigsetjmp).
pub fn holds_as(key: &KeyOwnership<'_>, privilege: Privilege, role: pg_sys::Oid) -> bool {
    if let Some((k, r, bits)) = LAST.with(|l| l.get()) {
        if k == *key.key_id && r == role {
            return bits & privilege.bit() != 0;
        }
    }
    let cached = MEMO.with(|m| m.borrow().get(&(*key.key_id, role)).copied());
    let bits = match cached {
        Some(b) => b,
        None => {
            let b = compute(key, role);
            MEMO.with(|m| m.borrow_mut().insert((*key.key_id, role), b));
            b
        }
    };
    LAST.with(|l| l.set(Some((*key.key_id, role, bits))));
    bits & privilege.bit() != 0
}

/// ERROR 42501 naming the key (never material) unless the caller holds `privilege`; the refusal
/// is recorded outside the caller's transaction.
pub fn check_as(key: &KeyOwnership<'_>, privilege: Privilege, role: pg_sys::Oid) {
    if holds_as(key, privilege, role) {
        return;
    }
    let id = uuid_string(key.key_id);
    crate::events::refused(
        "key_privilege_refused",
        serde_json::json!({ "key": id, "privilege": privilege.label() }),
    );
    raise_full(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("permission denied to {} with key {id}", privilege.label()),
        None,
        Some(format!(
            "A key administrator can run encml.grant_key('{id}', '{}', '{}').",
            role_name(role),
            privilege.label()
        )),
    );
}
