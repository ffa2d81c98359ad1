//! Output text that does not depend on the writer's session, for redaction tokens and the
//! columns the audit log keeps as text (docs/audit.md, "Redaction"): a token is an HMAC of the
//! value's output text, and a timestamptz prints differently under another TimeZone, a regclass
//! under another search_path. Only the settings the row's column types depend on are pinned, and
//! only when the session's value differs: a GUC nest level per row costs more than the HMAC.

use pgrx::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::CStr;

/// The settings under which values are turned into text; bit i of a type's mask is entry i.
/// (DateStyle's order part only matters for input; ISO output is the same under any.)
const CANONICAL_OUTPUT: [(&CStr, &CStr); 7] = [
    (c"DateStyle", c"ISO, MDY"),
    (c"IntervalStyle", c"postgres"),
    (c"TimeZone", c"UTC"),
    (c"extra_float_digits", c"1"),
    (c"bytea_output", c"hex"),
    (c"lc_monetary", c"C"),
    // regclass, regproc and the other reg* types print names as seen from the search_path.
    (c"search_path", c"pg_catalog, pg_temp"),
];
const DATE_STYLE: u8 = 1;
const INTERVAL_STYLE: u8 = 1 << 1;
const TIME_ZONE: u8 = 1 << 2;
const FLOAT_DIGITS: u8 = 1 << 3;
const BYTEA_OUTPUT: u8 = 1 << 4;
const LC_MONETARY: u8 = 1 << 5;
const SEARCH_PATH: u8 = 1 << 6;
/// Types whose output we cannot vouch for (user-defined base types, composites, ranges).
const ALL: u8 = 0x7f;

thread_local! {
    /// The settings mask per type OID: cleared when any type changes (an OID can be reused).
    static MASKS: RefCell<HashMap<u32, u8>> = RefCell::new(HashMap::new());
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
}

#[pg_guard]
unsafe extern "C-unwind" fn forget_masks(_arg: pg_sys::Datum, _cache: std::ffi::c_int, _hash: u32) {
    MASKS.with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            m.clear();
        }
    });
}

/// Registers the invalidation of the masks (from _PG_init, once per process).
pub fn register() {
    if !REGISTERED.with(|r| r.replace(true)) {
        // SAFETY: registers a callback once per process, for a valid cache id.
        unsafe {
            pg_sys::CacheRegisterSyscacheCallback(
                pg_sys::SysCacheIdentifier::TYPEOID as i32,
                Some(forget_masks),
                pg_sys::Datum::from(0usize),
            )
        };
    }
}

/// Which of the settings change the output text of values of `typoid`.
fn mask(typoid: pg_sys::Oid) -> u8 {
    if let Some(known) = MASKS.with(|m| m.borrow().get(&typoid.to_u32()).copied()) {
        return known;
    }
    // SAFETY: syscache lookups by OID.
    let mask = unsafe { mask_uncached(typoid) };
    MASKS.with(|m| m.borrow_mut().insert(typoid.to_u32(), mask));
    mask
}

unsafe fn mask_uncached(typoid: pg_sys::Oid) -> u8 {
    // SAFETY: syscache lookups by OID, guarded; an unknown OID raises an ERROR.
    unsafe {
        let base = pg_sys::getBaseType(typoid);
        let element = pg_sys::get_element_type(base);
        if element != pg_sys::InvalidOid {
            return mask(element);
        }
        match base {
            pg_sys::TIMESTAMPTZOID => DATE_STYLE | TIME_ZONE,
            pg_sys::TIMESTAMPOID | pg_sys::DATEOID | pg_sys::TIMEOID | pg_sys::TIMETZOID => {
                DATE_STYLE
            }
            pg_sys::INTERVALOID => INTERVAL_STYLE,
            // The geometric types print their coordinates as floats.
            pg_sys::FLOAT4OID
            | pg_sys::FLOAT8OID
            | pg_sys::POINTOID
            | pg_sys::LSEGOID
            | pg_sys::PATHOID
            | pg_sys::BOXOID
            | pg_sys::POLYGONOID
            | pg_sys::LINEOID
            | pg_sys::CIRCLEOID => FLOAT_DIGITS,
            pg_sys::BYTEAOID => BYTEA_OUTPUT,
            pg_sys::MONEYOID => LC_MONETARY,
            pg_sys::REGCLASSOID
            | pg_sys::REGTYPEOID
            | pg_sys::REGPROCOID
            | pg_sys::REGPROCEDUREOID
            | pg_sys::REGOPEROID
            | pg_sys::REGOPERATOROID
            | pg_sys::REGCONFIGOID
            | pg_sys::REGDICTIONARYOID
            | pg_sys::REGNAMESPACEOID
            | pg_sys::REGROLEOID
            | pg_sys::REGCOLLATIONOID => SEARCH_PATH,
            _ => {
                let typtype = pg_sys::get_typtype(base) as u8;
                if typtype == pg_sys::TYPTYPE_ENUM {
                    0
                } else if base.to_u32() < pg_sys::FirstNormalObjectId
                    && typtype == pg_sys::TYPTYPE_BASE
                {
                    // The other built-in base types print the same in every session.
                    0
                } else {
                    ALL
                }
            }
        }
    }
}

/// Runs `f` (which calls output functions of values of `types`) with the settings those types
/// depend on pinned to the canonical ones, where the session has others.
pub fn with_canonical_output<R>(
    types: impl IntoIterator<Item = pg_sys::Oid>,
    f: impl FnOnce() -> R,
) -> R {
    let needed = types.into_iter().fold(0u8, |m, t| m | mask(t));
    let pinned: Vec<(&CStr, &CStr)> = CANONICAL_OUTPUT
        .iter()
        .enumerate()
        .filter(|(bit, setting)| needed & (1 << bit) != 0 && !already_canonical(1 << bit, setting))
        .map(|(_, setting)| *setting)
        .collect();
    if pinned.is_empty() {
        f()
    } else {
        crate::pg::identity::with_settings(&pinned, f)
    }
}

/// Whether the session's setting already gives the canonical output: read from the variables
/// the output functions read where they are exported (any ISO DateStyle, whatever its order; a
/// time zone of fixed offset 0, such as Etc/UTC; extra_float_digits above 0, which all print
/// the shortest exact form), else compared as text.
fn already_canonical(bit: u8, (name, value): &(&CStr, &CStr)) -> bool {
    // SAFETY: plain reads of this backend's setting variables, and guarded lookups (a time
    // zone's offset; a setting's text, valid until it changes and compared at once).
    unsafe {
        match bit {
            DATE_STYLE => pg_sys::DateStyle == pg_sys::USE_ISO_DATES as i32,
            INTERVAL_STYLE => pg_sys::IntervalStyle == pg_sys::INTSTYLE_POSTGRES as i32,
            FLOAT_DIGITS => pg_sys::extra_float_digits > 0,
            TIME_ZONE => {
                let tz = pg_sys::session_timezone;
                let mut offset: std::ffi::c_long = 1;
                !tz.is_null() && pg_sys::pg_get_timezone_offset(tz, &mut offset) && offset == 0
            }
            _ => {
                let current = pg_sys::GetConfigOption(name.as_ptr(), true, false);
                !current.is_null() && CStr::from_ptr(current) == *value
            }
        }
    }
}
