//! The schema version installed in the current database, next to the version of this library.
//!
//! One shared library (`module_pathname` is unversioned) serves every installed schema version:
//! after a new library is installed and before `ALTER EXTENSION pg_encrypt_ml UPDATE`, and in a
//! database deliberately kept at an older release. A function whose behaviour depends on an
//! object that only a newer schema has calls `require` first, so that an old schema gives a clear
//! error with the fix instead of a missing-object error from inside the function.

use crate::pg::errors::raise_full;
use pgrx::PgSqlErrorCode;

/// The version of this shared library (Cargo's package version, the release it belongs to).
pub const LIBRARY: &str = env!("CARGO_PKG_VERSION");

/// A release number `major.minor.patch`, ordered as released.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Release(pub u32, pub u32, pub u32);

impl Release {
    pub fn parse(s: &str) -> Option<Release> {
        let mut parts = s.split('.').map(|p| p.parse::<u32>().ok());
        let r = Release(parts.next()??, parts.next()??, parts.next()??);
        parts.next().is_none().then_some(r)
    }
}

impl std::fmt::Display for Release {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// `pg_extension.extversion` of pg_encrypt_ml in the current database (read at each call: an
/// ALTER EXTENSION in another session sends no invalidation this could cache against), or None
/// while the extension is not installed here (a preloaded library in another database).
pub fn installed() -> Option<String> {
    // Read-only SPI: pgrx's Spi::get_one assigns a transaction id, which a hot standby refuses.
    crate::pg::catalog_reads::select_one::<String>(
        "SELECT extversion FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'pg_encrypt_ml'",
        &[],
    )
}

/// Whether the installed schema is at least `min` (false without one).
pub fn at_least(min: Release) -> bool {
    installed()
        .as_deref()
        .and_then(Release::parse)
        .is_some_and(|v| v >= min)
}

/// Raises 55000 unless the installed schema is at least `min`; `what` names the feature.
pub fn require(min: Release, what: &str) {
    let installed = installed();
    if installed
        .as_deref()
        .and_then(Release::parse)
        .is_some_and(|v| v >= min)
    {
        return;
    }
    raise_full(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!(
            "{what} needs the pg_encrypt_ml schema {min} or later; this database has {}",
            installed.as_deref().unwrap_or("no pg_encrypt_ml installed")
        ),
        Some(format!("The loaded library is version {LIBRARY}.")),
        Some("Run ALTER EXTENSION pg_encrypt_ml UPDATE.".into()),
    )
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn releases_parse_and_order() {
        assert_eq!(Release::parse("0.10.2"), Some(Release(0, 10, 2)));
        assert!(Release::parse("0.2.0").unwrap() > Release::parse("0.1.9").unwrap());
        for bad in ["", "1.2", "1.2.3.4", "1.x.3", "-1.2.3"] {
            assert_eq!(Release::parse(bad), None, "{bad}");
        }
        assert!(Release::parse(LIBRARY).is_some());
    }

    #[pg_test]
    fn the_installed_schema_is_this_library_and_satisfies_its_own_release() {
        assert_eq!(installed().as_deref(), Some(LIBRARY));
        require(Release::parse(LIBRARY).unwrap(), "this test");
    }

    #[pg_test(
        error = "a later feature needs the pg_encrypt_ml schema 99.0.0 or later; this database has 0.1.0"
    )]
    fn an_older_schema_is_refused_with_the_fix() {
        // The test runs in a transaction that is rolled back: pretend the database is at 0.1.0.
        Spi::run("UPDATE pg_catalog.pg_extension SET extversion = '0.1.0' WHERE extname = 'pg_encrypt_ml'")
            .unwrap();
        require(Release(99, 0, 0), "a later feature");
    }
}
