//! Errors to SQLSTATEs, in one place. Messages name key ids and fingerprints, never key material.

use encml_core::Error;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

/// Raises an ERROR; never returns.
pub fn raise(code: PgSqlErrorCode, message: impl Into<String>) -> ! {
    raise_full(code, message, None, None)
}

pub fn raise_full(
    code: PgSqlErrorCode,
    message: impl Into<String>,
    detail: Option<String>,
    hint: Option<String>,
) -> ! {
    let mut report = ErrorReport::new(code, message.into(), "pg_encrypt_ml");
    if let Some(d) = detail {
        report = report.set_detail(d);
    }
    if let Some(h) = hint {
        report = report.set_hint(h);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

/// Raises a failed SPI query of the extension's own (not the caller's SQL) as an internal error,
/// after what was being read or written.
pub fn spi_failed(context: &str, e: pgrx::spi::SpiError) -> ! {
    let message = if context.is_empty() {
        e.to_string()
    } else {
        format!("{context}: {e}")
    };
    raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, message)
}

pub fn warning(message: impl Into<String>, hint: Option<String>) {
    let mut report = ErrorReport::new(
        PgSqlErrorCode::ERRCODE_WARNING,
        message.into(),
        "pg_encrypt_ml",
    );
    if let Some(h) = hint {
        report = report.set_hint(h);
    }
    report.report(PgLogLevel::WARNING);
}

pub fn notice(message: impl Into<String>, hint: Option<String>) {
    let mut report = ErrorReport::new(
        PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
        message.into(),
        "pg_encrypt_ml",
    );
    if let Some(h) = hint {
        report = report.set_hint(h);
    }
    report.report(PgLogLevel::NOTICE);
}

/// The SQLSTATE for each core error.
pub fn sqlstate(e: &Error) -> PgSqlErrorCode {
    match e {
        Error::Malformed(_) | Error::UnsupportedVersion { .. } | Error::UnsupportedAlgorithm(_) => {
            PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION
        }
        // 39000-class codes are for external routines; a failed tag is bad data handed to us.
        Error::AuthenticationFailed => PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
        Error::MasterKeyFormat(_) | Error::UnknownMasterKey { .. } => {
            PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR
        }
        Error::Random => PgSqlErrorCode::ERRCODE_SYSTEM_ERROR,
    }
}

pub fn raise_core(e: Error) -> ! {
    let hint = match &e {
        Error::UnknownMasterKey { .. } => Some(
            "Add the master key this data key was wrapped with as a further line of the master key \
             provider's output."
                .to_string(),
        ),
        Error::AuthenticationFailed => Some(
            "Check that the AAD passed to decrypt is the one used to encrypt the value.".to_string(),
        ),
        _ => None,
    };
    raise_full(sqlstate(&e), e.to_string(), None, hint)
}

/// Unwraps a core result or raises its ERROR.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for Result<T, Error> {
    fn or_raise(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => raise_core(e),
        }
    }
}

/// Writes `message` to the server log at LOG, without the `STATEMENT:` line Postgres adds to LOG
/// messages (the statement's text can hold the personal data being looked up; the extension's
/// events describe statements by their query id). Use through `log_event!`.
pub fn log_without_statement(message: &str) {
    use std::ffi::{c_char, c_int, CString};
    unsafe extern "C-unwind" {
        // The ereport primitives pgrx keeps to itself; errhidestmt has no pgrx equivalent.
        fn errstart(elevel: c_int, domain: *const c_char) -> bool;
        fn errfinish(filename: *const c_char, lineno: c_int, funcname: *const c_char);
        fn errmsg_internal(fmt: *const c_char, ...) -> c_int;
        fn errhidestmt(hide_stmt: bool) -> c_int;
    }
    let text = CString::new(message.replace('\0', "")).expect("NULs removed");
    // SAFETY: the elog protocol at LOG, which returns normally; the format is "%s" with one NUL
    // terminated argument that outlives the call, and the domain, file and function names are
    // static strings (ErrorData keeps pointers to them).
    unsafe {
        if errstart(pgrx::pg_sys::LOG as c_int, c"pg_encrypt_ml".as_ptr()) {
            errmsg_internal(c"%s".as_ptr(), text.as_ptr());
            errhidestmt(true);
            errfinish(c"pg_encrypt_ml".as_ptr(), 0, c"log_event".as_ptr());
        }
    }
}

/// `pgrx::log!` without the statement's text in the server log (see `log_without_statement`).
#[macro_export]
macro_rules! log_event {
    ($($arg:tt)*) => {
        $crate::pg::errors::log_without_statement(&format!($($arg)*))
    };
}

/// `value`, or ERROR 22004 naming `what` (an argument of a function that is not strict because
/// another of its arguments may be NULL).
pub fn not_null<T>(value: Option<T>, what: &str) -> T {
    value.unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            format!("{what} must not be NULL"),
        )
    })
}
