//! The extension's roles, created by its install script (sql/schema/*.sql): one place for their
//! names, so that every layer checks membership in the same role.

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
