//! Auditing: row changes of audited tables and security events go to `encml.audit_log`; a
//! sealing step chains them with a keyed MAC in commit order, so writers never wait for each
//! other; `audit_verify` checks the chain and the newest witness of its head.
//!
//! - [`row`]: the trigger on audited tables (old/new rows as jsonb, redaction, changed columns);
//! - [`chain`]: sealing, verification, the head and purging;
//! - [`events`], [`detached`]: security events, refusals written outside the transaction;
//! - [`guard`]: the append-only trigger on the log;
//! - [`writer`]: inserting log rows with the extension owner's rights through saved plans.

pub mod chain;
pub mod decrypts;
pub mod detached;
pub mod events;
pub mod guard;
pub mod row;
pub mod writer;

/// The labels whose columns are redacted in the log by default.
pub const SENSITIVE_LABELS: [&str; 4] = ["pii", "phi", "pci", "secret"];

pgrx::extension_sql_file!("../../sql/audit.sql", name = "audit_log");
pgrx::extension_sql_file!(
    "../../sql/compliance.sql",
    name = "compliance_report",
    requires = ["audit_log"]
);
