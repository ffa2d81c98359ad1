//! Unwrapped data keys, cached per backend so that a bulk statement unwraps each key once.
//!
//! Entries hold ciphers whose key schedules are zeroized on drop. The cache is emptied when any
//! backend changes key rows (the key functions send a relcache invalidation for the key table,
//! delivered to every backend at commit and accepted before the next query uses a key, caught by
//! the callback below), when Postgres resets all caches, when a transaction or savepoint aborts,
//! and when it reaches `encml.key_cache_size` entries.

use crate::keys::clearances;
use crate::keys::grants::{self, Privilege};
use crate::keys::{catalog, provider};
use crate::pg::errors::raise_full;
use encml_core::aead::AeadKey;
use encml_core::fpe::FpeKey;
use encml_core::kdf::Purpose;
use encml_core::ore::OreKey;
use encml_core::siv::DetKey;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// One usable data-key version, with the cipher of its purpose (sub-keys of other purposes are
/// never derived for it).
pub struct KeyVersion {
    pub key_id: [u8; 16],
    pub version: u32,
    pub purpose: Purpose,
    pub tenant: Option<String>,
    /// For the per-key privileges (`grants`).
    pub created_by: pg_sys::Oid,
    pub managed: bool,
    pub cipher: Cipher,
    /// (role, privilege bits, statement) already checked for this entry: a bulk statement then
    /// costs one comparison per value. The statement start is 0 when the answer holds for any
    /// statement, else the statement it was checked in (clearance conditions hold per statement).
    /// Entries are dropped whenever the answers may change (grants, clearances, labels, role
    /// memberships: see `clear`).
    verified: Cell<(pg_sys::Oid, u8, i64)>,
}

pub enum Cipher {
    Aead(AeadKey),
    Deterministic(DetKey),
    OrderRevealing(OreKey),
    FormatPreserving(FpeKey),
    /// Purposes whose ciphers live in later modules.
    None,
}

impl Cipher {
    fn for_purpose(purpose: Purpose, root: &[u8; 32], key_id: [u8; 16], version: u32) -> Self {
        match purpose {
            Purpose::Aead => Cipher::Aead(AeadKey::from_root(root, key_id, version)),
            Purpose::Deterministic => {
                Cipher::Deterministic(DetKey::from_root(root, key_id, version))
            }
            Purpose::Ore => Cipher::OrderRevealing(OreKey::from_root(root, key_id, version)),
            Purpose::Hmac => Cipher::None,
            Purpose::Fpe => Cipher::FormatPreserving(FpeKey::from_root(root, key_id, version)),
        }
    }
}

impl KeyVersion {
    fn wrong_purpose(&self, wanted: Purpose, what: &str) -> ! {
        raise_full(
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!(
                "key {} has purpose '{}'; {what} needs a key of purpose '{}'",
                catalog::uuid_string(&self.key_id),
                self.purpose.label(),
                wanted.label()
            ),
            None,
            None,
        )
    }

    fn ownership(&self) -> grants::KeyOwnership<'_> {
        grants::KeyOwnership {
            key_id: &self.key_id,
            tenant: self.tenant.as_deref(),
            created_by: self.created_by,
            managed: self.managed,
        }
    }

    /// Whether the caller may use this key now for `privilege`: it holds the privilege
    /// (`grants`) and the key's tenant is current (or the caller is a superuser or member of
    /// encml_tenant_admin); the checks of `aead()` and friends without the ERROR.
    pub fn usable(&self, privilege: Privilege) -> bool {
        if self.reencryption_authorized() {
            return true;
        }
        let role = crate::pg::roles::caller();
        self.tenant_allows()
            && grants::holds_as(&self.ownership(), privilege, role)
            && (privilege != Privilege::Decrypt || clearances::allows_as(&self.key_id, role))
    }

    fn tenant_allows(&self) -> bool {
        let Some(tenant) = &self.tenant else {
            return true;
        };
        if crate::keys::tenant_context::is_current(tenant) {
            return true;
        }
        crate::keys::tenants::is_tenant_admin(crate::pg::roles::caller())
    }

    /// A key bound to a tenant is usable only while that tenant is current, or by superusers
    /// and members of encml_tenant_admin. Checked on every use, at encryption and decryption,
    /// whoever's row, view or function the value came through.
    fn check_tenant(&self) {
        if self.tenant_allows() {
            return;
        }
        let tenant = self.tenant.as_deref().unwrap_or_default();
        crate::events::refused(
            "tenant_key_refused",
            serde_json::json!({ "key": catalog::uuid_string(&self.key_id), "key_tenant": tenant }),
        );
        raise_full(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "key {} belongs to tenant \"{tenant}\", which is not the current tenant",
                catalog::uuid_string(&self.key_id)
            ),
            Some(match crate::keys::tenant_context::current() {
                Some(t) => format!("The current tenant is \"{t}\"."),
                None => "No tenant is set.".to_string(),
            }),
            Some("Call encml.set_tenant() for the key's tenant first.".into()),
        );
    }

    /// The checks of every use: the tenant, the caller's privilege on the key and, to decrypt,
    /// the clearances for the key's labels.
    /// Whether a re-encryption job authorized this use: the key is the job's, and the call is
    /// the body of a re-encryption function (`reencrypting`), which returns only a ciphertext of
    /// the same key. Code of the table's owner that the job's UPDATE runs (a trigger calling
    /// `decrypt`) gets no such use.
    fn reencryption_authorized(&self) -> bool {
        REENCRYPTING.with(|r| r.get()) && REENCRYPT_AUTHORITY.with(|a| a.get()) == Some(self.key_id)
    }

    fn check(&self, privilege: Privilege) {
        if self.reencryption_authorized() {
            return;
        }
        self.check_tenant();
        let role = crate::pg::roles::caller();
        let (verified_role, bits, statement) = self.verified.get();
        if verified_role == role
            && bits & privilege.bit() != 0
            && (statement == 0 || statement == crate::pg::roles::statement_start())
        {
            return;
        }
        grants::check_as(&self.ownership(), privilege, role);
        let holds_for = if privilege == Privilege::Decrypt {
            clearances::check_as(&self.key_id, role).unwrap_or(0)
        } else {
            0
        };
        // Privileges verified for any statement stay; a per-statement answer replaces them.
        let kept = if verified_role == role && statement == holds_for {
            bits
        } else {
            0
        };
        self.verified.set((role, kept | privilege.bit(), holds_for));
    }

    /// The AES-GCM cipher, or an ERROR naming the key's actual purpose.
    pub fn aead(&self, privilege: Privilege) -> &AeadKey {
        self.check(privilege);
        match &self.cipher {
            Cipher::Aead(k) => k,
            _ => self.wrong_purpose(Purpose::Aead, "enc_bytea encryption"),
        }
    }

    /// The ORE keys, or an ERROR naming the key's actual purpose.
    pub fn order_revealing(&self, privilege: Privilege) -> &OreKey {
        self.check(privilege);
        match &self.cipher {
            Cipher::OrderRevealing(k) => k,
            _ => self.wrong_purpose(Purpose::Ore, "order-revealing encryption"),
        }
    }

    /// The FF1 key, or an ERROR naming the key's actual purpose.
    pub fn format_preserving(&self, privilege: Privilege) -> &FpeKey {
        self.check(privilege);
        match &self.cipher {
            Cipher::FormatPreserving(k) => k,
            _ => self.wrong_purpose(Purpose::Fpe, "format-preserving encryption"),
        }
    }

    /// The AES-SIV cipher, or an ERROR naming the key's actual purpose.
    pub fn deterministic(&self, privilege: Privilege) -> &DetKey {
        self.check(privilege);
        match &self.cipher {
            Cipher::Deterministic(k) => k,
            _ => self.wrong_purpose(
                Purpose::Deterministic,
                "deterministic encryption (det_text)",
            ),
        }
    }
}

#[derive(Default)]
struct Cache {
    /// key id -> current (encryption) version
    current: HashMap<[u8; 16], u32>,
    versions: HashMap<([u8; 16], u32), Rc<KeyVersion>>,
    /// Bulk statements use one key over and over: the last current version handed out for
    /// encryption and the last version handed out for decryption skip the hash lookups.
    last_current: Option<Rc<KeyVersion>>,
    last_version: Option<Rc<KeyVersion>>,
    /// tenant -> (purpose, the key `tenant_key()` returns); emptied with the rest, so a key
    /// destroyed elsewhere is looked up again.
    tenant_keys: HashMap<String, Vec<(Purpose, [u8; 16])>>,
}

thread_local! {
    /// The key a re-encryption job's batch may move values of (`with_reencrypt_authority`).
    static REENCRYPT_AUTHORITY: Cell<Option<[u8; 16]>> = const { Cell::new(None) };
    /// Inside the body of a re-encryption function (`reencrypting`).
    static REENCRYPTING: Cell<bool> = const { Cell::new(false) };
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
    static KEY_TABLE: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
    static CALLBACK_REGISTERED: Cell<bool> = const { Cell::new(false) };
    /// Caches of the layers above built from the key catalog (subject keys, consents).
    static DEPENDENT_CACHES: RefCell<Vec<fn()>> = const { RefCell::new(Vec::new()) };
}

/// Restores a thread-local flag when a scope ends, by return or by ERROR.
struct Restore<T: Copy + 'static>(&'static std::thread::LocalKey<Cell<T>>, T);

impl<T: Copy + 'static> Drop for Restore<T> {
    fn drop(&mut self) {
        self.0.with(|c| c.set(self.1));
    }
}

/// Runs `f` (a re-encryption job's batch, run as the table's owner) with the authority to move
/// values of `key` to its current version: the re-encryption functions called inside may use
/// the key whatever the current role's grants, tenant or clearances, since their result is only
/// a ciphertext of the same key; every other use is checked as always. The job's requester was
/// checked when it was queued (`api::lifecycle::jobs`).
pub fn with_reencrypt_authority<R>(key: [u8; 16], f: impl FnOnce() -> R) -> R {
    let _restore = Restore(
        &REENCRYPT_AUTHORITY,
        REENCRYPT_AUTHORITY.with(|a| a.replace(Some(key))),
    );
    f()
}

/// Runs the body of a re-encryption function (`reencrypt`, `det_reencrypt`, `ore_reencrypt`,
/// `reencrypt_jsonb`): a value in, a ciphertext of the same key out, no plaintext leaving it.
pub fn reencrypting<R>(f: impl FnOnce() -> R) -> R {
    let _restore = Restore(&REENCRYPTING, REENCRYPTING.with(|r| r.replace(true)));
    f()
}

/// Has `clear_dependent` called whenever the key cache is emptied (a change of keys or of role
/// memberships, an abort), once per function: a cache of a layer above that holds what it read
/// through the key catalog registers itself here rather than being called from below.
pub fn also_clear(clear_dependent: fn()) {
    DEPENDENT_CACHES.with(|d| {
        let mut d = d.borrow_mut();
        if !d.iter().any(|f| *f as usize == clear_dependent as usize) {
            d.push(clear_dependent);
        }
    });
}

pub fn clear() {
    grants::clear();
    crate::keys::service::clear();
    let dependents = DEPENDENT_CACHES.with(|d| d.borrow().clone());
    for clear_dependent in dependents {
        clear_dependent();
    }
    CACHE.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            // Dropping the entries zeroizes their key schedules.
            *c = Cache::default();
        }
    });
}

#[pg_guard]
unsafe extern "C-unwind" fn on_relcache_invalidation(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    let ours = KEY_TABLE.with(|k| k.get());
    if relid == pg_sys::InvalidOid || relid == ours {
        clear();
        crate::pg::identity::forget_owner();
        // Looked up again on the next miss: the table may have been dropped and created anew
        // (DROP/CREATE EXTENSION) under another oid.
        KEY_TABLE.with(|k| k.set(pg_sys::InvalidOid));
    }
}

/// A rolled-back transaction or savepoint may have rotated or created a key whose version this
/// backend already cached; that version no longer exists, and encrypting under it would lose
/// data. Postgres replays a failed transaction's invalidations locally only for commands that
/// completed, so every abort empties the cache explicitly.
#[pg_guard]
unsafe extern "C-unwind" fn on_xact_event(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    if event == pg_sys::XactEvent::XACT_EVENT_ABORT
        || event == pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT
    {
        clear();
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_subxact_event(
    event: pg_sys::SubXactEvent::Type,
    _mine: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        clear();
    }
}

pub fn register_invalidation_callback() {
    grants::register_callbacks();
    if !CALLBACK_REGISTERED.with(|r| r.replace(true)) {
        // SAFETY: registered once per process (CALLBACK_REGISTERED); both callbacks are
        // #[pg_guard] functions with the signatures Postgres calls, and ignore their `arg`, so
        // the null pointer is never dereferenced. Registration only appends to a list in
        // TopMemoryContext.
        unsafe {
            crate::pg::invalidation::on_relcache(on_relcache_invalidation);
            pg_sys::RegisterXactCallback(Some(on_xact_event), std::ptr::null_mut());
            pg_sys::RegisterSubXactCallback(Some(on_subxact_event), std::ptr::null_mut());
        }
    }
}

fn remember_key_table() {
    if KEY_TABLE.with(|k| k.get()) == pg_sys::InvalidOid {
        let oid = catalog::key_table_oid();
        KEY_TABLE.with(|k| k.set(oid));
    }
}

/// Processes pending invalidations once per query for each call site, so that another session's
/// rotation, retirement or destruction takes effect at this session's next statement even inside
/// an open transaction (Postgres itself only does so at transaction start or when it takes a new
/// lock). The call site's `fn_extra`, fresh for every executor start, marks that it was done;
/// checking it costs no function call per row.
///
/// # Safety
/// `fcinfo` must be null or the FunctionCallInfo of the running call, as fmgr passed it (the
/// `fcinfo` argument of a `#[pg_extern]` function), so that it and its `flinfo`, when not null,
/// are valid for the call, and `fn_extra` is this function's own slot, unused by anything else
/// (true of the extension's functions that call this: none of them is a set-returning function,
/// which would keep its FuncCallContext there).
pub unsafe fn accept_invalidations_once_per_query(fcinfo: pg_sys::FunctionCallInfo) {
    // SAFETY: `fcinfo` and its `flinfo` are each tested for null before they are read, and are
    // valid otherwise (the contract above); fn_extra is ours to set, and the dangling non-null
    // marker is never dereferenced or freed (Postgres frees only fn_mcxt, never fn_extra
    // itself). AcceptInvalidationMessages is a guarded binding.
    unsafe {
        let flinfo = if fcinfo.is_null() {
            std::ptr::null_mut()
        } else {
            (*fcinfo).flinfo
        };
        if flinfo.is_null() {
            pg_sys::AcceptInvalidationMessages();
        } else if (*flinfo).fn_extra.is_null() {
            pg_sys::AcceptInvalidationMessages();
            // A marker only: nothing reads it; it lives as long as the call site.
            (*flinfo).fn_extra = std::ptr::NonNull::<u8>::dangling().as_ptr().cast();
        }
    }
}

/// The remembered id of a tenant's managed key for a purpose.
pub fn tenant_key(tenant: &str, purpose: Purpose) -> Option<[u8; 16]> {
    CACHE.with(|c| {
        let c = c.borrow();
        let keys = c.tenant_keys.get(tenant)?;
        keys.iter().find(|(p, _)| *p == purpose).map(|(_, id)| *id)
    })
}

pub fn remember_tenant_key(tenant: &str, purpose: Purpose, id: [u8; 16]) {
    remember_key_table();
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let keys = c.tenant_keys.entry(tenant.to_string()).or_default();
        keys.retain(|(p, _)| *p != purpose);
        keys.push((purpose, id));
    });
}

/// The version new values are encrypted with.
pub fn current(key_id: &[u8; 16]) -> Rc<KeyVersion> {
    let hit = CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if let Some(k) = c.last_current.as_ref().filter(|k| k.key_id == *key_id) {
            return Some(k.clone());
        }
        let k = c
            .current
            .get(key_id)
            .and_then(|v| c.versions.get(&(*key_id, *v)).cloned())?;
        c.last_current = Some(k.clone());
        Some(k)
    });
    hit.unwrap_or_else(|| load(key_id, None))
}

/// A specific version, for decryption.
pub fn version(key_id: &[u8; 16], version: u32) -> Rc<KeyVersion> {
    let hit = CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if let Some(k) = c
            .last_version
            .as_ref()
            .filter(|k| k.key_id == *key_id && k.version == version)
        {
            return Some(k.clone());
        }
        let k = c.versions.get(&(*key_id, version)).cloned()?;
        c.last_version = Some(k.clone());
        Some(k)
    });
    hit.unwrap_or_else(|| load(key_id, Some(version)))
}

/// Why a key version cannot be used; raised as an ERROR by the strict lookups.
pub struct Unavailable {
    pub code: PgSqlErrorCode,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl Unavailable {
    pub fn raise(self) -> ! {
        raise_full(self.code, self.message, self.detail, self.hint)
    }

    /// The key was destroyed or the version retired: its values are deliberately unreadable.
    pub fn is_erased(&self) -> bool {
        self.code == PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE
    }
}

/// A specific version for decryption, or why it cannot be used (errors of the master key
/// provider are still raised).
pub fn try_version(key_id: &[u8; 16], version: u32) -> Result<Rc<KeyVersion>, Unavailable> {
    let hit = CACHE.with(|c| {
        let c = c.borrow();
        c.last_version
            .as_ref()
            .filter(|k| k.key_id == *key_id && k.version == version)
            .or_else(|| c.versions.get(&(*key_id, version)))
            .cloned()
    });
    match hit {
        Some(k) => Ok(k),
        None => try_load(key_id, Some(version)),
    }
}

fn load(key_id: &[u8; 16], wanted: Option<u32>) -> Rc<KeyVersion> {
    try_load(key_id, wanted).unwrap_or_else(|e| e.raise())
}

fn try_load(key_id: &[u8; 16], wanted: Option<u32>) -> Result<Rc<KeyVersion>, Unavailable> {
    remember_key_table();
    let id = catalog::uuid_string(key_id);
    let loaded =
        crate::pg::catalog_reads::with_latest_snapshot(|| catalog::load(key_id, wanted, false));
    let Some((key, version)) = loaded else {
        return Err(Unavailable {
            code: PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            message: format!("key {id} does not exist"),
            detail: None,
            hint: None,
        });
    };
    if let Some(when) = &key.destroyed_at {
        return Err(Unavailable {
            code: PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            message: format!("key {id} was destroyed (crypto-shredded); values encrypted under it cannot be decrypted"),
            detail: Some(format!("The key was destroyed at {when}.")),
            hint: None,
        });
    }
    let number = wanted.unwrap_or(key.current_version);
    let Some(v) = version else {
        return Err(Unavailable {
            code: PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            message: format!("key {id} has no version {number}"),
            detail: None,
            hint: None,
        });
    };
    let (Some(wrapped), Some(fingerprint)) = (&v.wrapped, &v.fingerprint) else {
        return Err(Unavailable {
            code: PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            message: format!("version {number} of key {id} was {}; values encrypted under it cannot be decrypted", v.status),
            detail: v.retired_at.as_ref().map(|t| format!("It was {} at {t}.", v.status)),
            hint: Some("Re-encrypt values with encml.reencrypt() before retiring a key version.".into()),
        });
    };
    let root = provider::unwrap_data_key(fingerprint, key_id, v.version, wrapped);
    let entry = Rc::new(KeyVersion {
        key_id: *key_id,
        version: v.version,
        purpose: key.purpose,
        tenant: key.tenant.clone(),
        created_by: key.created_by,
        managed: key.managed,
        cipher: Cipher::for_purpose(key.purpose, &root, *key_id, v.version),
        verified: Cell::new((pg_sys::InvalidOid, 0, 0)),
    });
    let limit = crate::pg::gucs::KEY_CACHE_SIZE.get().max(1) as usize;
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.versions.len() >= limit {
            *c = Cache::default();
        }
        c.versions.insert((*key_id, v.version), entry.clone());
        c.current.insert(*key_id, key.current_version);
        // The catalog may have shown a newer current version than the shortcut holds.
        c.last_current = None;
    });
    Ok(entry)
}
