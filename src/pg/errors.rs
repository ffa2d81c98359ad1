//! Errors to SQLSTATEs, in one place: the core, dp and FHE crates' errors, SPI failures, and the
//! internal errors (XX000) no user can cause (tests/architecture/internal_errors.txt). Messages
//! name key ids and fingerprints, never key material.

use encml_core::Error;
use encml_dp::DpError;
use encml_fhe::FheError;
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

/// Raises XX000 (internal_error) for a condition that no caller's input, rights, data or timing
/// can bring about: a bug, or a helper process or catalog broken outside the extension's control
/// (Postgres itself raises "lost connection to parallel worker" this way). Every call site is
/// listed, with why no user can cause it, in tests/architecture/internal_errors.txt, which `make
/// test` checks; a condition a user can cause gets the SQLSTATE that says what to do instead.
pub fn internal(message: impl Into<String>) -> ! {
    internal_full(message, None, None)
}

/// `internal` with a detail and a hint.
pub fn internal_full(
    message: impl Into<String>,
    detail: Option<String>,
    hint: Option<String>,
) -> ! {
    raise_full(
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        message,
        detail,
        hint,
    )
}

/// Raises a failed SPI call of the extension's own queries (not the caller's SQL: errors of the
/// statements themselves, such as a lock timeout or a permission error, arrive as the
/// statement's own ERROR and never reach here) as an internal error, after what was being read
/// or written. pgrx reports only SPI's own failures this way (an unconnected SPI, a bad column
/// number or type), which are bugs.
pub fn spi_failed(context: &str, e: pgrx::spi::SpiError) -> ! {
    let message = if context.is_empty() {
        e.to_string()
    } else {
        format!("{context}: {e}")
    };
    internal(message)
}

/// `.or_spi_failed("what")` on an SPI result: its value, or `spi_failed("what", e)`.
pub trait OrSpiFailed<T> {
    fn or_spi_failed(self, context: &str) -> T;
}

impl<T> OrSpiFailed<T> for Result<T, pgrx::spi::SpiError> {
    fn or_spi_failed(self, context: &str) -> T {
        self.unwrap_or_else(|e| spi_failed(context, e))
    }
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
        Error::MasterKeyFormat(_) | Error::UnknownMasterKey { .. } | Error::Token(_) => {
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

/// Raises an error of the differential-privacy crate with its SQLSTATE.
pub fn dp_error(e: DpError) -> ! {
    let code = match e {
        DpError::InvalidParameter(_) | DpError::ParameterChanged(_) => {
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE
        }
        DpError::CorruptState(_) => PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
        DpError::NotFinite => PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
        // OpenDP refuses parameters it cannot calibrate noise for (an infinite scale from a
        // tiny epsilon and wide bounds): the caller's parameters.
        DpError::OpenDp(_) => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
    };
    raise(code, e.to_string())
}

/// Raises an error of the FHE crate with its SQLSTATE.
pub fn fhe_error(e: FheError) -> ! {
    let code = match e {
        // Bytes a client handed in (bodies are checked when first read), as for core ciphertexts.
        FheError::Malformed(_) => PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
        FheError::Mismatch(_) | FheError::Duplicate => {
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE
        }
        FheError::OutOfRange(_) => PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
        // A proof that does not verify: the update is refused as data, whatever its cause.
        FheError::Invalid(_) => PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
    };
    raise(code, e.to_string())
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

/// The elements of an array argument `what`, or ERROR 22004 if one is NULL. Functions take such
/// arrays as `Vec<Option<T>>`: pgrx's conversion to `Vec<T>` raises an internal error on a NULL
/// element, before the function's own checks run.
pub fn no_nulls<T>(values: Vec<Option<T>>, what: &str) -> Vec<T> {
    values
        .into_iter()
        .map(|v| {
            v.unwrap_or_else(|| {
                raise(
                    PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                    format!("{what} must not contain NULL"),
                )
            })
        })
        .collect()
}
