//! The extension's roles, created by its install script (sql/schema/*.sql): one place for their
//! names, so that every layer checks membership in the same role. And the calling role: who it is
//! (`caller`, identified at entry, before any switch to the extension owner in `pg::identity`),
//! whether it is a superuser or has the privileges of one of these roles, and its name; with
//! `statement_start`, which identifies the statement it runs.

use pgrx::pg_sys;

/// Creates, rotates, exports and grants keys (docs/keys.md).
pub const KEY_ADMIN: &str = "encml_key_admin";
/// Creates tenants, binds keys to them and adds their members (docs/tenancy.md).
pub const TENANT_ADMIN: &str = "encml_tenant_admin";
/// The application's role for data subjects: their keys, consents and consent history
/// (docs/gdpr.md).
pub const SUBJECT_PROCESSOR: &str = "encml_subject_processor";
/// The data protection officer: erasure requests, consents and consent history (docs/gdpr.md).
pub const DPO: &str = "encml_dpo";
/// Sets analysts' privacy budgets and reads DP-only tables unrestricted (docs/privacy.md).
pub const PRIVACY_ADMIN: &str = "encml_privacy_admin";
/// Sees and clears login lockouts and reads the metrics (docs/zero-trust.md).
pub const SECURITY_ADMIN: &str = "encml_security_admin";
/// Purges the audit log (docs/audit.md).
pub const AUDIT_ADMIN: &str = "encml_audit_admin";
/// Reads the audit log and its reports (docs/audit.md).
pub const AUDITOR: &str = "encml_auditor";
/// Opens and closes FHE rounds (docs/fhe.md).
pub const FHE_ADMIN: &str = "encml_fhe_admin";
/// Submits encrypted updates to open FHE rounds (docs/fhe.md).
pub const FHE_CONTRIBUTOR: &str = "encml_fhe_contributor";
/// Reads the encrypted sums of closed FHE rounds, to decrypt them outside the database
/// (docs/fhe.md).
pub const FHE_DECRYPTOR: &str = "encml_fhe_decryptor";

/// The role calling us (current_user at entry: SET ROLE and SECURITY DEFINER callers count).
pub fn caller() -> pg_sys::Oid {
    // Called for every decrypted value: GetUserId only returns a variable and cannot raise, so
    // it is declared here without pgrx's error guard (a sigsetjmp per call).
    extern "C" {
        #[link_name = "GetUserId"]
        fn get_user_id_unguarded() -> pg_sys::Oid;
    }
    // SAFETY: GetUserId takes no arguments and returns the backend's CurrentUserId global (set
    // since backend start); it cannot ERROR, so there is no longjmp to guard against, and the
    // backend's only thread reads it.
    unsafe { get_user_id_unguarded() }
}

/// When the current statement started (statement_timestamp()): identifies the statement for
/// answers that hold per statement. Unguarded for the same reason as `caller`.
pub fn statement_start() -> i64 {
    extern "C" {
        #[link_name = "GetCurrentStatementStartTimestamp"]
        fn statement_start_unguarded() -> i64;
    }
    // SAFETY: GetCurrentStatementStartTimestamp takes no arguments and returns the backend's
    // stmtStartTimestamp global; it cannot ERROR, so no guard is needed.
    unsafe { statement_start_unguarded() }
}

pub fn is_superuser(role: pg_sys::Oid) -> bool {
    // SAFETY: superuser_arg takes any oid (a role that does not exist is not a superuser) and
    // does a syscache lookup in the current transaction; pgrx's wrapper guards its ERRORs.
    unsafe { pg_sys::superuser_arg(role) }
}

/// Whether `role` has the privileges of the role named `group` (inherited membership, as GRANT).
pub fn has_privs_of_role_named(role: pg_sys::Oid, group: &str) -> bool {
    let c = std::ffi::CString::new(group).expect("role names have no NUL");
    // SAFETY: `c` is a NUL-terminated string that outlives the call; missing_ok = true gives
    // InvalidOid for an unknown role; the call is guarded by pgrx's wrapper.
    let group_oid = unsafe { pg_sys::get_role_oid(c.as_ptr(), true) };
    // SAFETY: two role oids, looked up in the catalog (an unknown role has no privileges);
    // guarded by pgrx's wrapper.
    group_oid != pg_sys::InvalidOid && unsafe { pg_sys::has_privs_of_role(role, group_oid) }
}

/// Whether `role` has the privileges of `other` (inherited membership, as GRANT).
pub fn has_privs_of_role(role: pg_sys::Oid, other: pg_sys::Oid) -> bool {
    // SAFETY: two role oids, looked up in the catalog (an unknown role has no privileges);
    // guarded by pgrx's wrapper.
    unsafe { pg_sys::has_privs_of_role(role, other) }
}

pub fn role_name(role: pg_sys::Oid) -> String {
    // SAFETY: with noerr = true GetUserNameFromId returns NULL for an unknown role (checked)
    // or a palloc'd NUL-terminated copy in the current memory context, which is copied into a
    // Rust String before this returns.
    unsafe {
        let p = pg_sys::GetUserNameFromId(role, true);
        if p.is_null() {
            format!("role {}", role.to_u32())
        } else {
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}
