//! One module per parser family; see the crate documentation.

pub mod dp_seal;
pub mod dp_state;
pub mod export;
#[cfg(feature = "fhe-uint32")]
pub mod fhe_uint32;
#[cfg(feature = "fhe")]
pub mod fhe_vector;
pub mod format;
pub mod fpe;
pub mod json_fields;
pub mod master_keys;
pub mod ore;
pub mod stream;
pub mod tenant_token;
pub mod tensor;
pub mod wrap;

/// A target's name, `init` and `run`.
pub type Target = (&'static str, fn(), fn(&[u8]));

/// Every target, for the corpus replay.
pub const ALL: &[Target] = &[
    ("format", format::init, format::run),
    ("ore", ore::init, ore::run),
    ("tensor", tensor::init, tensor::run),
    ("json_fields", json_fields::init, json_fields::run),
    ("tenant_token", tenant_token::init, tenant_token::run),
    ("dp_seal", dp_seal::init, dp_seal::run),
    ("master_keys", master_keys::init, master_keys::run),
    ("export", export::init, export::run),
    ("stream", stream::init, stream::run),
    ("wrap", wrap::init, wrap::run),
    ("fpe", fpe::init, fpe::run),
    ("dp_state", dp_state::init, dp_state::run),
    #[cfg(feature = "fhe")]
    ("fhe_vector", fhe_vector::init, fhe_vector::run),
    #[cfg(feature = "fhe-uint32")]
    ("fhe_uint32", fhe_uint32::init, fhe_uint32::run),
];
