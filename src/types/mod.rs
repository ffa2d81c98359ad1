//! SQL types, each with hand-written varlena I/O (pgrx's derived types would store CBOR).
pub mod ciphertext;
pub mod det_text;
pub mod enc_bytea;
pub mod fhe_uint32;
pub mod fhe_vector;
pub mod identity;
pub mod jsonb;
pub mod num_array;
pub mod ore;
pub mod reg;
