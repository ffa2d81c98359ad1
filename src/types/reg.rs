//! Arguments of SQL types pgrx does not map: object identifiers given by name (`regrole`,
//! `regclass`), an oid here, and identifiers of type `name`, a string here.

use pgrx::callconv::{Arg, ArgAbi};
use pgrx::datum::FromDatum;
use pgrx::nullable::Nullable;
use pgrx::pg_sys;

macro_rules! oid_argument {
    ($(#[$doc:meta])* $name:ident, $sql:literal, $type_oid:expr) => {
        $(#[$doc])*
        pub struct $name(pub pg_sys::Oid);

        pgrx::impl_sql_translatable!($name, $sql);

        impl FromDatum for $name {
            unsafe fn from_polymorphic_datum(
                datum: pg_sys::Datum,
                is_null: bool,
                _: pg_sys::Oid,
            ) -> Option<Self> {
                (!is_null).then(|| $name(pg_sys::Oid::from(datum.value() as u32)))
            }
        }

        impl pgrx::datum::IntoDatum for $name {
            fn into_datum(self) -> Option<pg_sys::Datum> {
                Some(pg_sys::Datum::from(self.0))
            }

            fn type_oid() -> pg_sys::Oid {
                $type_oid
            }
        }

        // SAFETY: returns the oid as a by-value datum of the function's declared result type
        // $sql, an oid alias.
        unsafe impl pgrx::callconv::BoxRet for $name {
            unsafe fn box_into<'fcx>(
                self,
                fcinfo: &mut pgrx::callconv::FcInfo<'fcx>,
            ) -> pgrx::datum::Datum<'fcx> {
                // SAFETY: a by-value datum needs no memory context.
                unsafe { fcinfo.return_raw_datum(pg_sys::Datum::from(self.0)) }
            }
        }

        // SAFETY: $sql is an oid alias type, passed by value: the datum's low 32 bits are the
        // oid, which is all FromDatum above reads (it dereferences nothing and borrows nothing).
        unsafe impl<'fcx> ArgAbi<'fcx> for $name {
            unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
                // SAFETY: the argument's SQL type is $sql, the by-value oid $name reads.
                unsafe { arg.unbox_arg_using_from_datum::<$name>() }
                    .expect(concat!($sql, " argument must not be NULL"))
            }

            unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Self> {
                // SAFETY: as above; a NULL gives None.
                unsafe { arg.unbox_arg_using_from_datum::<$name>() }.into()
            }
        }
    };
}

oid_argument!(
    /// A role (`regrole`).
    RegRole,
    "regrole",
    pg_sys::REGROLEOID
);
oid_argument!(
    /// A table or other relation (`regclass`).
    RegClass,
    "regclass",
    pg_sys::REGCLASSOID
);

/// An identifier argument of SQL type `name` (NAMEDATALEN bytes, NUL-terminated), as a string.
pub struct SqlName(pub String);

pgrx::impl_sql_translatable!(SqlName, "name");

impl FromDatum for SqlName {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _: pg_sys::Oid,
    ) -> Option<Self> {
        // SAFETY: a non-NULL `name` datum points to a NameData, NUL-terminated within its
        // NAMEDATALEN bytes (Postgres's namein truncates and terminates every name), living for
        // the call.
        (!is_null).then(|| unsafe {
            let name = datum.cast_mut_ptr::<pg_sys::NameData>();
            SqlName(
                std::ffi::CStr::from_ptr((*name).data.as_ptr())
                    .to_string_lossy()
                    .into_owned(),
            )
        })
    }
}

// SAFETY: unboxes through `from_datum` above, which reads only a valid NameData.
unsafe impl<'fcx> ArgAbi<'fcx> for SqlName {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        // SAFETY: the caller (pgrx's wrapper) passes this call's argument.
        unsafe { arg.unbox_arg_using_from_datum::<SqlName>() }
            .expect("name argument must not be NULL")
    }

    unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Self> {
        // SAFETY: as above.
        unsafe { arg.unbox_arg_using_from_datum::<SqlName>() }.into()
    }
}
