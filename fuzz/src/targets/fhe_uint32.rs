//! fhe_uint32 / fhe_bool values and server material (encml-fhe, feature `uint32`): the header
//! checks `uint32::key_id_of`, `check_value` and `is_server_material`.
//!
//! (The bodies are tfhe-rs's own serialization; a real value is ~260 kB, beyond this corpus.)
//! Checks: the three agree on the header (magic, key id, a non-empty body).

use encml_fhe::uint32;

pub fn init() {}

pub fn run(data: &[u8]) {
    let id = uint32::key_id_of(data);
    let as_uint = uint32::check_value(data, true);
    let as_bool = uint32::check_value(data, false);
    let server = uint32::is_server_material(data);
    assert!(as_uint.is_err() || as_bool.is_err(), "one magic per value");
    if let Ok(k) = &as_uint {
        assert_eq!(id.as_ref(), Ok(k));
    }
    if let Ok(k) = &as_bool {
        assert_eq!(id.as_ref(), Ok(k));
    }
    if server {
        assert!(id.is_ok() && as_uint.is_err() && as_bool.is_err());
    }
    if let Ok(k) = id {
        assert!(data.len() > 20);
        assert_eq!(k[..], data[4..20]);
        assert!(server || as_uint.is_ok() || as_bool.is_ok());
    }
}
