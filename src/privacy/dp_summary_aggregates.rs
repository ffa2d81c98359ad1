//! The quantile and variance aggregates without privacy units (`dp_percentile`,
//! `dp_percentiles`, `dp_median`, `dp_var_pop`, `dp_stddev_pop` in their (epsilon) and
//! (epsilon, delta) forms) keep their exact state in `encml.dp_summary`, a varlena type, rather
//! than `internal`, so that Citus aggregates each shard on its worker (`worker_partial_agg`)
//! and combines one summary per shard on the coordinator, where the final function charges and
//! adds the noise once, as for `dp_state` (`dp_state_aggregates`).
//!
//! Inside an aggregate the summary is a read-write expanded object (`pg::expanded`) holding the
//! same `Agg<Bounded<_>>` as the internal forms, updated in place; it is flattened only when it
//! leaves the aggregate (a parallel worker's result, Citus's text). Its flat form is
//! `Bounded::serialize` (which names its kind and version); its text form is always sealed
//! (`encml_core::dp_seal::SUMMARY`, docs/formats.md): the exact summary never leaves a backend.
//! There is no initial value: a shard without rows sends NULL, and the coordinator's final
//! function releases an empty input with the parameters charged when its query started.

use super::dp_aggregates::{agg_context, Agg, ExactState};
use super::dp_bounded_aggregates::{
    add_row, release_bounded, release_one, Layout, MEDIAN, MOMENTS, PERCENTILE, PERCENTILES,
};
use super::dp_state_aggregates::in_agg_node;
use crate::pg::c_functions;
use crate::pg::errors::{dp_error, raise, raise_full};
use crate::pg::expanded::{self, FlatForm};
use crate::pg::varlena::{arg_bytes, OwnedVarlena};
use crate::privacy::own;
use crate::privacy::start;
use encml_dp::bounded::{self, Bounded, Exact};
use encml_dp::moments::Moments;
use encml_dp::quantile::Histogram;
use encml_dp::DpError;
use pgrx::datum::IntoDatum;
use pgrx::fcinfo::{pg_arg_is_null, pg_getarg_datum_raw, pg_return_null};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};

/// The kind of a summary: a bounded aggregate's exact summary.
trait Kind: Exact + 'static {}

impl Kind for Histogram {}

impl Kind for Moments {}

/// The expanded object's value: the aggregate state of one group.
struct Summary<A: Kind>(Agg<Bounded<A>>);

impl<A: Kind> Summary<A> {
    /// The flat form is `Bounded::serialize`, which names its kind (`Exact::TAG`) and version.
    fn from_flat(bytes: &[u8]) -> Result<Self, DpError> {
        Ok(Summary(Agg {
            state: Bounded::<A>::from_bytes(bytes)?,
            fixed_args: None,
        }))
    }

    fn flat(&self) -> Vec<u8> {
        self.0.state.to_bytes()
    }
}

impl FlatForm for Summary<Histogram> {
    fn to_bytes(&self) -> Vec<u8> {
        self.flat()
    }
    fn methods() -> &'static pg_sys::ExpandedObjectMethods {
        static METHODS: pg_sys::ExpandedObjectMethods = expanded::methods::<Summary<Histogram>>();
        &METHODS
    }
}

impl FlatForm for Summary<Moments> {
    fn to_bytes(&self) -> Vec<u8> {
        self.flat()
    }
    fn methods() -> &'static pg_sys::ExpandedObjectMethods {
        static METHODS: pg_sys::ExpandedObjectMethods = expanded::methods::<Summary<Moments>>();
        &METHODS
    }
}

/// A summary that arrived flat (a parallel worker's, a Citus shard's after its text input).
///
/// # Safety
/// As for `arg_bytes`: argument `n` is a non-NULL `dp_summary`.
unsafe fn parse<A: Kind>(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> Summary<A> {
    // SAFETY: as the caller guarantees; the bytes are copied into the parsed summary.
    unsafe { Summary::<A>::from_flat(arg_bytes(fcinfo, n)).unwrap_or_else(|e| dp_error(e)) }
}

/// The running summary in argument 0 and its datum: the aggregate's own read-write expanded
/// object, or a new one in the aggregate context (a group's first row, or a flat summary).
///
/// # Safety
/// `fcinfo` must be the call of one of this module's transition or combine functions for `A`,
/// argument 0 its `dp_summary`. The result must not outlive the aggregate nor be held beside
/// another reference to the same object.
unsafe fn running<'a, A: Kind>(
    fcinfo: pg_sys::FunctionCallInfo,
) -> (pg_sys::Datum, &'a mut Agg<Bounded<A>>)
where
    Summary<A>: FlatForm,
{
    // SAFETY: fcinfo is valid (the contract) and agg_context refuses calls outside an
    // aggregate (and window use) on a group's first row, where the state is NULL or flat; a
    // read-write expanded state in an Agg node is the object made then. A read-write expanded
    // dp_summary is only ever made here by
    // new_in::<Summary<A>>, and an aggregate's transition and combine functions all take the
    // same A (its SQL declaration), so value_mut reads a Summary<A>; a new object lives in a
    // child of the aggregate context. Argument 0 is read only after the NULL check.
    unsafe {
        let d = pg_getarg_datum_raw(fcinfo, 0);
        // Later rows of a group: the object made on its first row, in an Agg node (a node tag
        // read; the guarded AggCheckCallContext on every row cost 40% of dp_sum).
        if !pg_arg_is_null(fcinfo, 0) && expanded::is_read_write(d) && in_agg_node(fcinfo) {
            return (d, &mut expanded::value_mut::<Summary<A>>(d).0);
        }
        let ctx = agg_context(fcinfo);
        let d = if pg_arg_is_null(fcinfo, 0) {
            expanded::new_in(
                ctx,
                Summary::<A>(Agg {
                    state: Bounded::default(),
                    fixed_args: None,
                }),
            )
        } else if expanded::is_read_write(d) {
            d
        } else {
            expanded::new_in(ctx, parse::<A>(fcinfo, 0))
        };
        (d, &mut expanded::value_mut::<Summary<A>>(d).0)
    }
}

/// # Safety
/// Only as one of this module's transition C functions, `A` and `layout` those of its SQL
/// declaration: `fcinfo` is the call's.
unsafe fn transition<A: Kind>(fcinfo: pg_sys::FunctionCallInfo, layout: Layout) -> pg_sys::Datum
where
    Summary<A>: FlatForm,
{
    // SAFETY: fcinfo is this C call's (the contract), as running and add_row need.
    unsafe {
        let (d, agg) = running::<A>(fcinfo);
        // Whose aggregate this is was checked when the query started (`start`).
        start::require_preloaded();
        add_row(fcinfo, agg, layout);
        d
    }
}

/// # Safety
/// Only as one of this module's combine C functions, `A` matching: `fcinfo` is the call's.
unsafe fn combine<A: Kind>(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum
where
    Summary<A>: FlatForm,
{
    // SAFETY: fcinfo is this C call's (the contract), checked to run in an aggregate of ours.
    // Argument 1 is read only when not NULL; as a read-write expanded object it is a Summary<A>
    // made by running (the type's only expanded form), emptied through its R/W pointer; it is
    // another object than argument 0, so its reference is gone before running's.
    unsafe {
        agg_context(fcinfo);
        own::require(fcinfo);
        if pg_arg_is_null(fcinfo, 1) {
            return if pg_arg_is_null(fcinfo, 0) {
                pg_return_null(fcinfo)
            } else {
                pg_getarg_datum_raw(fcinfo, 0)
            };
        }
        let other = pg_getarg_datum_raw(fcinfo, 1);
        let other = if expanded::is_read_write(other) {
            std::mem::take(&mut expanded::value_mut::<Summary<A>>(other).0.state)
        } else {
            parse::<A>(fcinfo, 1).0.state
        };
        let (d, agg) = running::<A>(fcinfo);
        agg.state.merge_from(other).unwrap_or_else(|e| dp_error(e));
        d
    }
}

/// # Safety
/// Only as one of this module's final C functions, `A` matching: `fcinfo` is the call's.
unsafe fn finish<A: Kind, R: IntoDatum>(
    fcinfo: pg_sys::FunctionCallInfo,
    release: impl FnOnce(&Bounded<A>) -> Result<Option<R>, DpError>,
) -> pg_sys::Datum
where
    Summary<A>: FlatForm,
{
    // SAFETY: fcinfo is this C call's (the contract), checked to run in an aggregate of ours
    // (release_bounded asks own::require). A read-write expanded argument is a Summary<A> in a
    // child of the aggregate context, only read here; a flat one is parsed into an owned value.
    unsafe {
        agg_context(fcinfo);
        let parsed;
        let counted = if pg_arg_is_null(fcinfo, 0) {
            None
        } else {
            let d = pg_getarg_datum_raw(fcinfo, 0);
            if expanded::is_read_write(d) {
                Some(&expanded::value_mut::<Summary<A>>(d).0.state)
            } else {
                parsed = parse::<A>(fcinfo, 0);
                Some(&parsed.0.state)
            }
        };
        release_bounded(fcinfo, counted, release)
    }
}

/// Text output: sealed under the master key (`dp_seal::SUMMARY`).
///
/// # Safety
/// Only as the C function `encml_dp_summary_out` (`c_functions!`): `fcinfo` is the call's.
unsafe fn summary_out(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract); the function is STRICT, so argument 0 is
    // a non-NULL dp_summary (an expanded one is flattened by arg_bytes). pstrdup copies the text
    // into the current memory context, where an output function returns its string.
    unsafe {
        let bytes = arg_bytes(fcinfo, 0);
        let masters = crate::keys::provider::master_keys();
        let mut nonce = [0u8; 12];
        crate::pg::random::fill(&mut nonce);
        let sealed =
            encml_core::dp_seal::seal_as(&encml_core::dp_seal::SUMMARY, &masters[0], &nonce, bytes);
        let text = std::ffi::CString::new(sealed).expect("hex has no NUL");
        pg_sys::Datum::from(pg_sys::pstrdup(text.as_ptr()))
    }
}

/// Text input: only a summary sealed by a server with these master keys.
///
/// # Safety
/// Only as the C function `encml_dp_summary_in` (`c_functions!`): `fcinfo` is the call's.
unsafe fn summary_in(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is this C call's (the contract); the function is STRICT with a cstring
    // argument, so argument 0 is a NUL-terminated string valid for the call.
    unsafe {
        let text = std::ffi::CStr::from_ptr(pg_getarg_datum_raw(fcinfo, 0).cast_mut_ptr());
        let sealed = text
            .to_str()
            .ok()
            .filter(|t| t.starts_with(encml_core::dp_seal::SUMMARY.prefix));
        let opened = sealed.map(|t| {
            let masters = crate::keys::provider::master_keys();
            encml_core::dp_seal::open_as(&encml_core::dp_seal::SUMMARY, &masters, t, None)
        });
        let bytes = match opened {
            Some(Ok(b)) => b,
            Some(Err(encml_core::Error::UnknownMasterKey { fingerprint })) => raise_full(
                PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR,
                format!(
                    "the dp summary is sealed under master key {fingerprint}, which the master key provider does not offer"
                ),
                None,
                Some("Every node of a Citus cluster needs the same master keys (docs/citus.md).".into()),
            ),
            _ => raise(
                PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
                "invalid input syntax for type dp_summary: only a summary sealed by the server",
            ),
        };
        let valid = Summary::<Histogram>::from_flat(&bytes).is_ok()
            || Summary::<Moments>::from_flat(&bytes).is_ok();
        if !valid {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
                "invalid input syntax for type dp_summary",
            );
        }
        OwnedVarlena::from_slice(&bytes).into_datum()
    }
}

c_functions! {
    encml_dp_summary_in, pg_finfo_encml_dp_summary_in => summary_in;
    encml_dp_summary_out, pg_finfo_encml_dp_summary_out => summary_out;
    /// dp_percentile(value, p, lower, upper, epsilon [, delta])
    encml_dp_percentile_summary_trans, pg_finfo_encml_dp_percentile_summary_trans =>
        // SAFETY: `f` is the FunctionCallInfo Postgres passed to this C function, declared in
        // sql/schema/dp.sql with dp_percentile's arguments.
        |f| unsafe { transition::<Histogram>(f, PERCENTILE) };
    /// dp_percentiles(value, p[], lower, upper, epsilon [, delta])
    encml_dp_percentiles_summary_trans, pg_finfo_encml_dp_percentiles_summary_trans =>
        // SAFETY: as above, for dp_percentiles.
        |f| unsafe { transition::<Histogram>(f, PERCENTILES) };
    /// dp_median(value, lower, upper, epsilon [, delta])
    encml_dp_median_summary_trans, pg_finfo_encml_dp_median_summary_trans =>
        // SAFETY: as above, for dp_median.
        |f| unsafe { transition::<Histogram>(f, MEDIAN) };
    /// dp_var_pop and dp_stddev_pop(value, lower, upper, epsilon [, delta])
    encml_dp_moments_summary_trans, pg_finfo_encml_dp_moments_summary_trans =>
        // SAFETY: as above, for dp_var_pop and dp_stddev_pop.
        |f| unsafe { transition::<Moments>(f, MOMENTS) };
    encml_dp_histogram_summary_combine, pg_finfo_encml_dp_histogram_summary_combine =>
        // SAFETY: as above, the combine function of the histogram summaries.
        |f| unsafe { combine::<Histogram>(f) };
    encml_dp_moments_summary_combine, pg_finfo_encml_dp_moments_summary_combine =>
        // SAFETY: as above, the combine function of the moments summaries.
        |f| unsafe { combine::<Moments>(f) };
    encml_dp_percentile_summary_final, pg_finfo_encml_dp_percentile_summary_final =>
        // SAFETY: as above, the final function of dp_percentile and dp_median.
        |f| unsafe { finish::<Histogram, f64>(f, release_one) };
    encml_dp_percentiles_summary_final, pg_finfo_encml_dp_percentiles_summary_final =>
        // SAFETY: as above, for dp_percentiles.
        |f| unsafe { finish::<Histogram, Vec<f64>>(f, bounded::release_percentiles) };
    encml_dp_var_pop_summary_final, pg_finfo_encml_dp_var_pop_summary_final =>
        // SAFETY: as above, for dp_var_pop.
        |f| unsafe { finish::<Moments, f64>(f, bounded::release_var_pop) };
    encml_dp_stddev_pop_summary_final, pg_finfo_encml_dp_stddev_pop_summary_final =>
        // SAFETY: as above, for dp_stddev_pop.
        |f| unsafe { finish::<Moments, f64>(f, bounded::release_stddev_pop) };
}
