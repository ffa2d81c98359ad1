//! The extension's roles, created by its install script (sql/schema/*.sql): one place for their
//! names, so that every layer checks membership in the same role.

/// Creates, rotates, exports and grants keys (docs/keys.md).
pub const KEY_ADMIN: &str = "encml_key_admin";
/// Creates tenants, binds keys to them and adds their members (docs/tenancy.md).
pub const TENANT_ADMIN: &str = "encml_tenant_admin";
/// Registers data subjects and uses their keys (docs/gdpr.md).
pub const SUBJECT_PROCESSOR: &str = "encml_subject_processor";
/// Runs subject access, export and erasure requests (docs/gdpr.md).
pub const DPO: &str = "encml_dpo";
/// Sets privacy budgets and protects tables (docs/privacy.md).
pub const PRIVACY_ADMIN: &str = "encml_privacy_admin";
/// Unlocks logins and reads the security views (docs/zero-trust.md).
pub const SECURITY_ADMIN: &str = "encml_security_admin";
/// Purges the audit log (docs/audit.md).
pub const AUDIT_ADMIN: &str = "encml_audit_admin";
/// Reads the audit log and its reports (docs/audit.md).
pub const AUDITOR: &str = "encml_auditor";
/// Opens and closes FHE rounds (docs/fhe.md).
pub const FHE_ADMIN: &str = "encml_fhe_admin";
/// Submits encrypted updates to FHE rounds.
pub const FHE_CONTRIBUTOR: &str = "encml_fhe_contributor";
/// Decrypts the sums of closed FHE rounds.
pub const FHE_DECRYPTOR: &str = "encml_fhe_decryptor";
