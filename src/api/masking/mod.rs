//! Masking for display (docs/masking.md):
//! - [`masks`]: the masking functions (mask_pan, mask_email, mask_phone, mask_partial,
//!   mask_date_to_year), and the SQL expression of the mask a rule names;
//! - [`views`]: masking rules per column (`set_masking_rule`) and the masked views made from
//!   them (`apply_masking`).

pub mod masks;
pub mod views;
