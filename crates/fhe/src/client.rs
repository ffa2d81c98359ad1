//! What the client programs share, the `pg_encrypt_ml-fhe` tool and the Python package
//! (`python/`): key set ids as text, secret key files, and values handed in as bytes or text.

use crate::keys::KeyId;
use crate::FheError;
use base64::Engine;
use std::io::Write;
use std::path::Path;

/// A key set id as the database shows it (a uuid).
pub fn id_string(id: &KeyId) -> String {
    let h: String = id.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Writes a secret key file readable by its owner only (mode 0600), refusing to overwrite one.
pub fn write_secret_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(bytes).map_err(|e| e.to_string())
}

/// A value given as raw bytes (an `fhe_vector`, proven update, `fhe_uint32` or `fhe_bool`),
/// base64 text (psql's output of the type) or psql's `\x` hex (its bytea cast).
pub fn bytes_from_text(input: &[u8]) -> Result<Vec<u8>, FheError> {
    if input.starts_with(b"EV")
        || input.starts_with(b"EZ\x01")
        || input.starts_with(b"EU\x01")
        || input.starts_with(b"EB\x01")
    {
        return Ok(input.to_vec());
    }
    let text = std::str::from_utf8(input)
        .map_err(|_| FheError::Malformed("input is neither binary nor text".into()))?
        .trim();
    if let Some(hex) = text.strip_prefix("\\x") {
        return (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| FheError::Malformed("bad hex input".into()));
    }
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| {
            FheError::Malformed("input is not an fhe_vector (binary, base64 or \\x hex)".into())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_as_bytes_base64_or_hex() {
        let raw = b"EV\x02\x00rest".to_vec();
        assert_eq!(bytes_from_text(&raw).unwrap(), raw);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
        assert_eq!(bytes_from_text(b64.as_bytes()).unwrap(), raw);
        assert_eq!(bytes_from_text(b"\\x45560200").unwrap(), b"EV\x02\x00");
        assert!(bytes_from_text(b"\\x4").is_err());
        assert!(bytes_from_text(b"not base64!").is_err());
        assert_eq!(
            id_string(&[0x12; 16]),
            "12121212-1212-1212-1212-121212121212"
        );
    }
}
