//! The tenant context: a setting (`encml.tenant`) that behaves like any other — transaction-
//! and savepoint-scoped, cleared by RESET ALL and DISCARD ALL, copied into parallel workers —
//! but that only `encml.set_tenant` may give a value. Its check hook accepts a non-empty value
//! only while `set_tenant` (after its membership check) has raised a backend-local flag, or while
//! Postgres copies the leader's settings into a parallel worker. So `SET`, `set_config()`,
//! `ALTER ROLE ... SET`, `ALTER DATABASE ... SET` and connection options cannot spoof it.
//!
//! On Citus the value also arrives as a tenant token (docs/citus.md). A token is accepted only
//! by a SET inside a transaction block, and holds only for the local transaction it arrived in,
//! while the role may act for the tenant by this node's catalog, and within its lifetime
//! (`encml.tenant_token_lifetime`, 5 minutes by default): the check hook stores the token with that transaction's
//! local id and expiry (`<token>#<lxid>#<expires µs>`), and every read of the tenant checks
//! them, so a session-wide SET of a token, or one kept past its lifetime, reads as no tenant.

use crate::pg::errors::OrSpiFailed;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::{CStr, CString};

pub static TENANT: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// Where `set_tenant` may put the tenant: for the session, or (behind a transaction-pooling
/// connection pooler, where the next transaction on this server connection may be another
/// client's) only for the current transaction.
#[derive(pgrx::PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum TenantScope {
    Session,
    Transaction,
}

pub static TENANT_SCOPE: GucSetting<TenantScope> =
    GucSetting::<TenantScope>::new(TenantScope::Session);

thread_local! {
    static SETTING_ALLOWED: Cell<bool> = const { Cell::new(false) };
    /// A copy of the setting kept by its assign hook (which Postgres calls on every change,
    /// rollback and RESET included), so per-row checks read it without a lookup or allocation.
    static CURRENT: RefCell<Option<String>> = const { RefCell::new(None) };
    /// For a value that came from a tenant token: the local transaction it holds for and when
    /// it expires (µs since the Unix epoch). None for values set by set_tenant itself.
    static ORIGIN: Cell<Option<(pg_sys::LocalTransactionId, i64)>> = const { Cell::new(None) };
    /// The local transaction in which the role's membership of the token's tenant was last
    /// confirmed from this node's catalog (checked at the first read in each transaction).
    static VERIFIED: Cell<pg_sys::LocalTransactionId> = const { Cell::new(pg_sys::InvalidLocalTransactionId) };
    /// The same as a text value, which `encml.current_tenant()` returns without copying.
    static CURRENT_TEXT: Cell<*mut pg_sys::varlena> = const { Cell::new(std::ptr::null_mut()) };
    /// Every tenant name this backend has held, as a text value in TopMemoryContext: never
    /// freed, so a value handed out stays valid whatever the setting does later (one small
    /// allocation per distinct tenant and backend).
    static INTERNED: RefCell<HashMap<String, usize>> = RefCell::new(HashMap::new());
}

/// The interned text value of `name`, allocated on first sight; null if memory ran out (the
/// caller then fails closed). Never raises an error, so the GUC hooks may call it.
fn intern(name: &str) -> *mut pg_sys::varlena {
    if let Some(p) = INTERNED.with(|m| m.borrow().get(name).copied()) {
        return p as *mut pg_sys::varlena;
    }
    let size = pg_sys::VARHDRSZ + name.len();
    // SAFETY: TopMemoryContext exists for the life of the process; MCXT_ALLOC_NO_OOM makes an
    // out-of-memory return NULL (handled below) instead of raising, and a tenant name (a GUC
    // value) is far below MaxAllocSize, the one other reason the allocation could ERROR.
    let p = unsafe {
        pg_sys::MemoryContextAllocExtended(
            pg_sys::TopMemoryContext,
            size,
            pg_sys::MCXT_ALLOC_NO_OOM as i32,
        )
    } as *mut pg_sys::varlena;
    if p.is_null() {
        return p;
    }
    // SAFETY: `p` is a fresh, non-null allocation of VARHDRSZ + name.len() bytes: the header
    // and the copied name fill it exactly, and the source (a &str) cannot overlap it. It lives
    // in TopMemoryContext and is never freed, so the pointer kept in INTERNED stays valid.
    unsafe {
        pgrx::set_varsize_4b(p, size as i32);
        std::ptr::copy_nonoverlapping(
            name.as_ptr(),
            (p as *mut u8).add(pg_sys::VARHDRSZ),
            name.len(),
        );
    }
    INTERNED.with(|m| m.borrow_mut().insert(name.to_string(), p as usize));
    p
}

/// `encml.current_tenant()`, bound by C symbol in the SQL below. Called once per executor start
/// by every tenant-isolated query (its value is an index condition), so it neither allocates
/// nor goes through a wrapper; only the first read of a token-derived tenant in a transaction
/// takes the guarded path that checks membership (`origin_holds`).
#[no_mangle]
pub extern "C" fn pg_finfo_encml_current_tenant() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// # Safety
/// Called by Postgres' function manager with a valid `fcinfo`.
#[no_mangle]
pub unsafe extern "C-unwind" fn encml_current_tenant(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let p = CURRENT_TEXT.with(|c| c.get());
    // SAFETY: origin_holds only reads thread-locals and shared memory it may read; its one
    // path that can raise an ERROR (the membership query) is, with `from_c`, a #[pg_guard]
    // function, and nothing in this frame needs dropping if that ERROR longjmps over it.
    if p.is_null() || !unsafe { origin_holds(true) } {
        // SAFETY: fcinfo is the valid FunctionCallInfo fmgr passed (this function's contract);
        // setting isnull is how a version-1 function returns NULL.
        unsafe { (*fcinfo).isnull = true };
        pg_sys::Datum::from(0)
    } else {
        pg_sys::Datum::from(p)
    }
}

pgrx::extension_sql!(
    r#"
CREATE FUNCTION current_tenant() RETURNS text
    LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_current_tenant';
"#,
    name = "current_tenant",
);

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn assign_tenant(
    newval: *const std::ffi::c_char,
    _extra: *mut std::ffi::c_void,
) {
    let value = if newval.is_null() {
        None
    } else {
        // SAFETY: `newval` is the GUC machinery's new value for the assign hook: tested for
        // NULL above, otherwise a NUL-terminated string it keeps alive during the call; copied
        // at once.
        Some(
            unsafe { CStr::from_ptr(newval) }
                .to_string_lossy()
                .into_owned(),
        )
        .filter(|s| !s.is_empty())
    };
    // A token-derived value: the tenant it names, bound to a transaction and an expiry.
    let (value, origin) = match value.as_deref().and_then(parse_bound) {
        Some((tenant, lxid, expires)) => (Some(tenant), Some((lxid, expires))),
        None => (value, None),
    };
    // Interned by the check hook already (or earlier, for a value a rollback restores).
    let text = value.as_deref().map_or(std::ptr::null_mut(), intern);
    CURRENT_TEXT.with(|c| c.set(text));
    CURRENT.with(|c| *c.borrow_mut() = value);
    ORIGIN.with(|o| o.set(origin));
}

/// `<token>#<lxid>#<expires>` as the check hook stores it: (tenant, lxid, expires). Never
/// raises (the assign hook calls it).
fn parse_bound(value: &str) -> Option<(String, pg_sys::LocalTransactionId, i64)> {
    let mut parts = value.split('#');
    let (token, lxid, expires) = (parts.next()?, parts.next()?, parts.next()?);
    let tenant = encml_core::tenant_token::tenant_of(token)?;
    Some((tenant, lxid.parse().ok()?, expires.parse().ok()?))
}

/// The local transaction id that token-derived values are bound to: this backend's, or in a
/// parallel worker its leader's (the worker runs inside the leader's transaction).
fn transaction_id() -> pg_sys::LocalTransactionId {
    // SAFETY: MyProc is this backend's PGPROC, valid for the life of the process; a parallel
    // worker's lock group leader is the leader's PGPROC, which waits in the same transaction
    // for as long as the worker runs. Reading one 32-bit field needs no lock.
    unsafe {
        let me = pg_sys::MyProc;
        if me.is_null() {
            return pg_sys::InvalidLocalTransactionId;
        }
        let leader = (*me).lockGroupLeader;
        // IsParallelWorker(): ParallelWorkerNumber >= 0.
        if pg_sys::ParallelWorkerNumber >= 0 && !leader.is_null() {
            (*leader).lxid
        } else {
            (*me).lxid
        }
    }
}

/// Microseconds since the Unix epoch at the start of the current statement (no system call).
fn statement_now_us() -> i64 {
    // SAFETY: reads a backend-local timestamp; cannot fail.
    let start = unsafe { pg_sys::GetCurrentStatementStartTimestamp() };
    start + PG_EPOCH_OFFSET_US
}

/// Whether the current value may be used now: always for values set_tenant set; for a
/// token-derived one only in the transaction it arrived in, before it expires, and while the
/// role may act for the tenant by this node's catalog (checked at the first read in each
/// transaction, so a revoke_tenant takes effect from the next transaction on).
///
/// # Safety
/// May raise an ERROR (from the membership query) on the first read in a transaction. With
/// `from_c` (for a C entry point without a guard of its own) the ERROR is raised by longjmp from
/// the guarded membership check, so the callers' frames must hold nothing that needs dropping.
/// Without it the ERROR is a Rust panic that unwinds the callers' frames, so they must run under
/// a pg_guard (as every Rust entry point of the extension does).
unsafe fn origin_holds(from_c: bool) -> bool {
    match ORIGIN.with(|o| o.get()) {
        None => true,
        Some((lxid, expires)) => {
            if lxid != transaction_id() || statement_now_us() > expires {
                return false;
            }
            if VERIFIED.with(|v| v.get()) == lxid {
                return true;
            }
            let member = if from_c {
                // SAFETY: a guarded function, so an ERROR in it is raised cleanly, by a longjmp
                // over frames that hold nothing to drop (the contract above).
                unsafe { member_of_current() }
            } else {
                current_is_member()
            };
            if member {
                VERIFIED.with(|v| v.set(lxid));
            }
            member
        }
    }
}

/// Whether the current role may act for the current (token-derived) tenant here. The catalog
/// query runs here, at the first read in a transaction, rather than when the token arrives: on
/// a Citus worker the forwarded SET LOCAL comes before Citus assigns the distributed
/// transaction, and reading the (reference-table) catalog then would assign one locally.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn member_of_current() -> bool {
    current_is_member()
}

/// `member_of_current` for Rust callers: an ERROR unwinds them as a Rust panic instead of
/// longjmp-ing over their frames (which would skip their destructors and scope guards).
fn current_is_member() -> bool {
    let tenant = CURRENT.with(|c| c.borrow().clone());
    tenant.is_some_and(|t| member_now(&t))
}

/// Calls `f` with the current tenant (no allocation).
pub fn with_current<R>(f: impl FnOnce(Option<&str>) -> R) -> R {
    // SAFETY: not `from_c`: an ERROR of the membership check unwinds as a Rust panic, and every
    // Rust caller runs under a pgrx entry point's guard, which reports it.
    let holds = unsafe { origin_holds(false) };
    CURRENT.with(|c| f(c.borrow().as_deref().filter(|_| holds)))
}

/// Whether `tenant` is the current tenant (no allocation).
pub fn is_current(tenant: &str) -> bool {
    // SAFETY: as in with_current, not `from_c`: an ERROR unwinds to the caller's guard.
    let holds = unsafe { origin_holds(false) };
    holds && CURRENT.with(|c| c.borrow().as_deref() == Some(tenant))
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_tenant(
    newval: *mut *mut std::ffi::c_char,
    _extra: *mut *mut std::ffi::c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    // SAFETY: a #[pg_guard] check hook, so the guarded bindings' ERRORs are raised cleanly.
    // `newval` and `*newval` are tested for NULL before the string is read; otherwise it is the
    // GUC machinery's NUL-terminated candidate value. In PostgreSQL 15 GUC strings are
    // malloc'd (guc_malloc), and a check hook may replace `*newval` by freeing it and storing
    // another malloc'd string, which is what happens here: `value` and `token`, which borrow
    // the old string, are last used (in the format!) before it is freed.
    // InitializingParallelWorker is a plain global of this single-threaded backend. The
    // GUC_check_* strings are pstrdup'd in the current memory context, which lasts until the
    // GUC code reports them after the hook returns.
    unsafe {
        let clearing = newval.is_null() || (*newval).is_null() || **newval == 0;
        if clearing {
            return true;
        }
        let value = CStr::from_ptr(*newval).to_string_lossy();
        if encml_core::tenant_token::is_token(&value) {
            if pg_sys::InitializingParallelWorker {
                // The leader's value, bound to the leader's transaction: taken as it is.
                return match parse_bound(&value) {
                    Some((tenant, _, _)) => interned_for_check(&tenant),
                    None => refuse_token("malformed tenant token"),
                };
            }
            // From a coordinator (Citus forwarded `SET LOCAL`, docs/citus.md), or from
            // set_tenant itself on the coordinator. Only a SET in a session inside a
            // transaction block, never a role, database or file setting.
            if source != pg_sys::GucSource::PGC_S_SESSION || !pg_sys::IsTransactionBlock() {
                return refuse_token(
                    "tenant tokens are accepted only from SET LOCAL inside a transaction block",
                );
            }
            // Whatever follows the token is ours to write: the binding is made here.
            let token = value.split('#').next().unwrap_or_default();
            return match verify_token(token) {
                Ok((tenant, expires)) => {
                    if !interned_for_check(&tenant) {
                        return false;
                    }
                    let bound = format!("{token}#{}#{expires}", transaction_id());
                    // PostgreSQL 15 keeps GUC strings in malloc'd memory.
                    let copy = CString::new(bound).expect("tokens have no NUL");
                    let bytes = copy.as_bytes_with_nul();
                    let p = malloc(bytes.len()) as *mut std::ffi::c_char;
                    if p.is_null() {
                        pg_sys::GUC_check_errcode(
                            pgrx::PgSqlErrorCode::ERRCODE_OUT_OF_MEMORY as i32,
                        );
                        return false;
                    }
                    std::ptr::copy_nonoverlapping(
                        bytes.as_ptr() as *const std::ffi::c_char,
                        p,
                        bytes.len(),
                    );
                    free(*newval as *mut std::ffi::c_void);
                    *newval = p;
                    true
                }
                Err(e) => refuse_token(&format!("invalid tenant token: {e}")),
            };
        }
        if SETTING_ALLOWED.with(|a| a.get()) || pg_sys::InitializingParallelWorker {
            return interned_for_check(&value);
        }
        pg_sys::GUC_check_errcode(pgrx::PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE as i32);
        pg_sys::GUC_check_errmsg_string =
            pg_sys::pstrdup(c"encml.tenant can only be set by encml.set_tenant()".as_ptr());
        pg_sys::GUC_check_errhint_string =
            pg_sys::pstrdup(c"Call encml.set_tenant(tenant) as a member of that tenant.".as_ptr());
        false
    }
}

/// Interns `name` for the assign hook; allocates here, in the check hook, where failing is
/// allowed (false, with the out-of-memory error code set).
fn interned_for_check(name: &str) -> bool {
    if intern(name).is_null() {
        // SAFETY: GUC_check_errcode only stores the code in a backend global for the GUC check
        // in progress; it cannot ERROR.
        unsafe { pg_sys::GUC_check_errcode(pgrx::PgSqlErrorCode::ERRCODE_OUT_OF_MEMORY as i32) };
        return false;
    }
    true
}

extern "C" {
    fn malloc(size: usize) -> *mut std::ffi::c_void;
    fn free(p: *mut std::ffi::c_void);
}

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_OFFSET_US: i64 = 946_684_800 * 1_000_000;

fn refuse_token(message: &str) -> bool {
    // SAFETY: called only from check_tenant, a #[pg_guard] check hook: the GUC_check_*
    // globals belong to the check in progress; `msg` outlives pstrdup, which copies it (and the
    // static hint) into the current memory context, where the GUC code reads them after the
    // hook returns.
    unsafe {
        pg_sys::GUC_check_errcode(pgrx::PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE as i32);
        let msg = CString::new(message).unwrap_or_default();
        pg_sys::GUC_check_errmsg_string = pg_sys::pstrdup(msg.as_ptr());
        pg_sys::GUC_check_errhint_string = pg_sys::pstrdup(
            c"Only encml.set_tenant(tenant, true) on the Citus coordinator issues tenant tokens."
                .as_ptr(),
        );
    }
    false
}

/// (role, database, now) that a tenant token is bound to here.
fn token_binding() -> (String, String, i64) {
    // SAFETY: guarded bindings reading backend state; MyDatabaseId is a plain global of this
    // single-threaded backend. get_database_name returns NULL for a missing database (tested)
    // or a palloc'd string in the current memory context, copied at once.
    unsafe {
        let role = crate::pg::roles::role_name(pg_sys::GetUserId());
        let db = pg_sys::get_database_name(pg_sys::MyDatabaseId);
        let db = if db.is_null() {
            String::new()
        } else {
            CStr::from_ptr(db).to_string_lossy().into_owned()
        };
        (role, db, pg_sys::GetCurrentTimestamp() + PG_EPOCH_OFFSET_US)
    }
}

/// How long a tenant token is accepted after the coordinator issued it, in µs
/// (`encml.tenant_token_lifetime`, seconds). A transaction that uses the tenant on a worker
/// later than this fails closed there (no tenant).
fn token_lifetime_us() -> i64 {
    crate::pg::gucs::TENANT_TOKEN_LIFETIME.get() as i64 * 1_000_000
}

/// The tenant a token names and when it expires, if it verifies for this role and database.
fn verify_token(token: &str) -> Result<(String, i64), encml_core::tenant_token::TokenError> {
    let (role, db, now) = token_binding();
    let keys = crate::keys::provider::master_keys();
    let lifetime = token_lifetime_us();
    let tenant = encml_core::tenant_token::verify(&keys, token, &role, &db, now, lifetime)?;
    let issued = encml_core::tenant_token::issued_of(token).unwrap_or(now);
    Ok((tenant, issued + lifetime))
}

/// Whether the current role may act for `tenant` by this node's catalog (a member, a tenant
/// admin or a superuser): a role removed with revoke_tenant can no longer use a token it holds.
fn member_now(tenant: &str) -> bool {
    // SAFETY: GetUserId takes no arguments and only returns a backend global; it cannot ERROR.
    let role = unsafe { pg_sys::GetUserId() };
    crate::keys::tenants::may_act_for(tenant, role)
}

/// On a Citus coordinator, inside a transaction block: sends the tenant to the workers of this
/// transaction as a token, through a `SET LOCAL` that Citus forwards (it forwards only parsed
/// SET LOCAL statements, with citus.propagate_set_commands = 'local').
fn forward_to_citus_workers(tenant: &str) {
    // SAFETY: IsTransactionBlock takes no arguments and only reads the transaction state.
    if unsafe { !pg_sys::IsTransactionBlock() } {
        return;
    }
    let (role, db, now) = token_binding();
    let keys = crate::keys::provider::master_keys();
    let Some(key) = keys.first() else { return };
    let token = encml_core::tenant_token::issue(key, tenant, &role, &db, now);
    set_local_through_citus(&token);
}

/// `SET LOCAL encml.tenant = value` as a parsed statement, the only form Citus forwards to the
/// workers of the transaction. `value` is a token or empty: only [A-Za-z0-9._-], no quoting
/// needed, and nothing of the master key.
fn set_local_through_citus(value: &str) {
    pgrx::Spi::run(&format!("SET LOCAL encml.tenant = '{value}'"))
        .or_spi_failed("could not pass the tenant to the Citus workers");
}

pub fn register() {
    // SAFETY: define_string_guc_with_hooks needs hooks that cannot let a Rust panic escape
    // into C: check_tenant and assign_tenant are both #[pg_guard] functions. TENANT is a
    // 'static GucSetting, as Postgres keeps a pointer to its storage.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"encml.tenant",
            c"The current tenant; set only by encml.set_tenant().",
            c"Read it with encml.current_tenant(). SET, set_config() and per-role or per-database \
              settings of it are refused.",
            &TENANT,
            GucContext::Userset,
            GucFlags::DISALLOW_IN_FILE | GucFlags::DISALLOW_IN_AUTO_FILE,
            Some(check_tenant),
            Some(assign_tenant),
            None,
        );
    }
    GucRegistry::define_enum_guc(
        c"encml.tenant_scope",
        c"Whether encml.set_tenant may set the tenant for the session or only for the transaction.",
        c"Set it to transaction (ALTER ROLE ... SET, superuser) for the login role of a \
          transaction-pooling connection pooler: a session-level tenant would pass to the next \
          client of the server connection, so only set_tenant(tenant, true) is accepted.",
        &TENANT_SCOPE,
        GucContext::Suset,
        GucFlags::default(),
    );
}

/// The current tenant, if any.
pub fn current() -> Option<String> {
    with_current(|t| t.map(str::to_string))
}

struct AllowGuard;

impl Drop for AllowGuard {
    fn drop(&mut self) {
        SETTING_ALLOWED.with(|a| a.set(false));
    }
}

/// Sets the tenant (the caller has checked membership). `local` scopes it to the transaction.
pub fn set(tenant: &str, local: bool) {
    if !local && TENANT_SCOPE.get() == TenantScope::Transaction {
        crate::pg::errors::raise_full(
            pgrx::PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "a session-level tenant is refused: encml.tenant_scope is transaction",
            Some(
                "Behind a transaction-pooling connection pooler the next transaction on this \
                 server connection may belong to another client."
                    .into(),
            ),
            Some("Call encml.set_tenant(tenant, true) inside the transaction.".into()),
        );
    }
    let value = CString::new(tenant).unwrap_or_else(|_| {
        crate::pg::errors::raise(
            pgrx::PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "tenant names cannot contain NUL",
        )
    });
    SETTING_ALLOWED.with(|a| a.set(true));
    let _guard = AllowGuard;
    apply(&value, local);
    if crate::pg::citus::in_database() {
        if local {
            forward_to_citus_workers(tenant);
        } else {
            pgrx::warning!(
                "a session-level tenant does not reach the Citus workers: on Citus call \
                 encml.set_tenant(tenant, true) inside BEGIN ... COMMIT (docs/citus.md)"
            );
        }
    }
}

/// Clears the tenant for the session (and, on a Citus coordinator inside a transaction block,
/// for the workers of the transaction too).
pub fn reset() {
    apply(c"", false);
    // SAFETY: IsTransactionBlock takes no arguments and only reads the transaction state.
    if crate::pg::citus::in_database() && unsafe { pg_sys::IsTransactionBlock() } {
        set_local_through_citus("");
    }
}

fn apply(value: &CStr, local: bool) {
    // SAFETY: both strings are NUL-terminated and outlive the call (set_config_option copies
    // the value with guc_strdup); with elevel ERROR a refusal is raised through pgrx's guarded
    // binding as a Rust panic, so `set`'s AllowGuard still resets SETTING_ALLOWED.
    unsafe {
        pg_sys::set_config_option(
            c"encml.tenant".as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            if local {
                pg_sys::GucAction::GUC_ACTION_LOCAL
            } else {
                pg_sys::GucAction::GUC_ACTION_SET
            },
            true,
            pgrx::PgLogLevel::ERROR as i32,
            false,
        );
    }
}
