//! Scalar encrypted arithmetic on tfhe-rs's high-level `FheUint32` (radix ciphertexts with
//! programmable bootstrapping, tfhe-rs default 128-bit parameters): additions, sums and
//! comparisons by the server under a server (evaluation) key; encryption and decryption with the
//! client key, which stays with its owner. Each operation bootstraps, so this is for a few values
//! (hundreds of ms per addition); vectors of numbers go through [`crate::vector`].
//!
//! Formats (tfhe-rs's versioned `safe_serialize` after our header; little-endian):
//! - client key: `"EKC" 0x01 | key_id[16] | ClientKey`
//! - server material (what the database stores): `"EKU" 0x01 | key_id[16] | CompressedServerKey`
//! - fhe_uint32: `"EU" | 1 | 0 | key_id[16] | FheUint32`
//! - fhe_bool: `"EB" | 1 | 0 | key_id[16] | FheBool`

use crate::keys::KeyId;
use crate::FheError;
use tfhe::prelude::*;
use tfhe::safe_serialization::{safe_deserialize, safe_deserialize_conformant, safe_serialize};
use tfhe::{
    ClientKey, CompressedServerKey, ConfigBuilder, FheBool, FheUint32, FheUint32ConformanceParams,
    ServerKey,
};

/// Largest serialized key accepted (a compressed server key is about 60 MB).
const SIZE_LIMIT: u64 = 1 << 30;
/// Largest serialized fhe_uint32 accepted from a client (one is about 260 kB). tfhe-rs warns
/// that a short message can claim a huge deserialized size, so values get their own bound.
const VALUE_SIZE_LIMIT: u64 = 1 << 24;
const CLIENT_MAGIC: &[u8; 4] = b"EKC\x01";
const SERVER_MAGIC: &[u8; 4] = b"EKU\x01";
const UINT_MAGIC: &[u8; 4] = b"EU\x01\x00";
const BOOL_MAGIC: &[u8; 4] = b"EB\x01\x00";
const HEADER_LEN: usize = 20;

pub struct ClientKeySet {
    pub key_id: KeyId,
    key: ClientKey,
}

#[derive(Clone)]
pub struct ServerKeySet {
    pub key_id: KeyId,
    key: ServerKey,
}

fn malformed(what: &str) -> FheError {
    FheError::Malformed(format!("not a {what} of this format"))
}

fn with_header(magic: &[u8; 4], key_id: &KeyId, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(magic);
    out.extend_from_slice(key_id);
    body(&mut out);
    out
}

fn split<'a>(magic: &[u8; 4], bytes: &'a [u8], what: &str) -> Result<(KeyId, &'a [u8]), FheError> {
    if bytes.len() <= HEADER_LEN || &bytes[..4] != magic {
        return Err(malformed(what));
    }
    Ok((bytes[4..20].try_into().unwrap(), &bytes[HEADER_LEN..]))
}

fn serialize<T: serde::Serialize + tfhe::named::Named + tfhe::Versionize>(
    value: &T,
    out: &mut Vec<u8>,
) {
    safe_serialize(value, &mut *out, SIZE_LIMIT).expect("serializing into memory cannot fail");
}

fn deserialize<T>(bytes: &[u8], what: &str) -> Result<T, FheError>
where
    T: serde::de::DeserializeOwned + tfhe::named::Named + tfhe::Unversionize,
{
    safe_deserialize(bytes, SIZE_LIMIT).map_err(|e| FheError::Malformed(format!("{what}: {e}")))
}

/// A fresh key set: the client key and the server material to register in the database.
pub fn generate() -> (ClientKeySet, Vec<u8>) {
    let key = ClientKey::generate(ConfigBuilder::default().build());
    let server = CompressedServerKey::new(&key);
    let key_id: KeyId = tfhe::core_crypto::prelude::new_seeder()
        .seed()
        .0
        .to_le_bytes();
    let material = with_header(SERVER_MAGIC, &key_id, |o| serialize(&server, o));
    (ClientKeySet { key_id, key }, material)
}

impl ClientKeySet {
    pub fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        zeroize::Zeroizing::new(with_header(CLIENT_MAGIC, &self.key_id, |o| {
            serialize(&self.key, o)
        }))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FheError> {
        let (key_id, body) = split(CLIENT_MAGIC, bytes, "client key")?;
        Ok(ClientKeySet {
            key_id,
            key: deserialize(body, "client key")?,
        })
    }

    /// The tfhe-rs key itself (benchmarks compare against tfhe-rs directly).
    pub fn tfhe_key(&self) -> &ClientKey {
        &self.key
    }

    pub fn encrypt(&self, value: u32) -> Vec<u8> {
        let ct = FheUint32::encrypt(value, &self.key);
        with_header(UINT_MAGIC, &self.key_id, |o| serialize(&ct, o))
    }

    pub fn decrypt(&self, bytes: &[u8]) -> Result<u32, FheError> {
        let ct = self.ciphertext::<FheUint32>(UINT_MAGIC, bytes, "fhe_uint32")?;
        Ok(ct.decrypt(&self.key))
    }

    pub fn decrypt_bool(&self, bytes: &[u8]) -> Result<bool, FheError> {
        let ct = self.ciphertext::<FheBool>(BOOL_MAGIC, bytes, "fhe_bool")?;
        Ok(ct.decrypt(&self.key))
    }

    fn ciphertext<T>(&self, magic: &[u8; 4], bytes: &[u8], what: &str) -> Result<T, FheError>
    where
        T: serde::de::DeserializeOwned + tfhe::named::Named + tfhe::Unversionize,
    {
        let (key_id, body) = split(magic, bytes, what)?;
        if key_id != self.key_id {
            return Err(FheError::Mismatch(format!(
                "the {what} is not under this key set"
            )));
        }
        deserialize(body, what)
    }
}

/// The key set id in a server material, fhe_uint32 or fhe_bool value, without parsing the rest.
pub fn key_id_of(bytes: &[u8]) -> Result<KeyId, FheError> {
    for magic in [SERVER_MAGIC, UINT_MAGIC, BOOL_MAGIC] {
        if let Ok((id, _)) = split(magic, bytes, "") {
            return Ok(id);
        }
    }
    Err(malformed("tfhe value"))
}

/// Checks the header of an fhe_uint32 (`uint`) or fhe_bool value (the body is checked when it
/// is deserialized for an operation).
pub fn check_value(bytes: &[u8], uint: bool) -> Result<KeyId, FheError> {
    let (magic, what) = if uint {
        (UINT_MAGIC, "fhe_uint32")
    } else {
        (BOOL_MAGIC, "fhe_bool")
    };
    split(magic, bytes, what).map(|(id, _)| id)
}

/// Whether `bytes` look like server material (header only).
pub fn is_server_material(bytes: &[u8]) -> bool {
    split(SERVER_MAGIC, bytes, "").is_ok()
}

/// Comparisons the server can evaluate.
#[derive(Clone, Copy, Debug)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// The right-hand side of an operation: a ciphertext or a clear value.
pub enum Operand<'a> {
    Encrypted(&'a [u8]),
    Clear(u32),
}

impl ServerKeySet {
    /// Deserializes and decompresses server material (seconds: do it once per process).
    pub fn from_material(bytes: &[u8]) -> Result<Self, FheError> {
        let (key_id, body) = split(SERVER_MAGIC, bytes, "server key")?;
        let compressed: CompressedServerKey = deserialize(body, "server key")?;
        Ok(ServerKeySet {
            key_id,
            key: compressed.decompress(),
        })
    }

    /// Makes this the key tfhe-rs evaluates with on this thread (cheap: the key is shared).
    fn install(&self) {
        tfhe::set_server_key(self.key.clone());
    }

    /// An uploaded value, checked against the key set's parameters (tfhe-rs's conformance check:
    /// block count, LWE dimension, moduli, noise level and degree metadata), so a client cannot
    /// hand the server a ciphertext that is not one the key set could have produced.
    fn value(&self, bytes: &[u8]) -> Result<FheUint32, FheError> {
        let (key_id, body) = split(UINT_MAGIC, bytes, "fhe_uint32")?;
        if key_id != self.key_id {
            return Err(FheError::Mismatch(
                "the fhe_uint32 values are under different key sets".into(),
            ));
        }
        safe_deserialize_conformant(
            body,
            VALUE_SIZE_LIMIT,
            &FheUint32ConformanceParams::from(&self.key),
        )
        .map_err(|e| FheError::Malformed(format!("fhe_uint32: {e}")))
    }

    fn out_uint(&self, ct: &FheUint32) -> Vec<u8> {
        with_header(UINT_MAGIC, &self.key_id, |o| serialize(ct, o))
    }

    /// a + b (wrapping at 2^32, as FheUint32 does).
    pub fn add(&self, a: &[u8], b: Operand<'_>) -> Result<Vec<u8>, FheError> {
        let a = self.value(a)?;
        self.install();
        let r = match b {
            Operand::Encrypted(b) => &a + &self.value(b)?,
            Operand::Clear(b) => &a + b,
        };
        Ok(self.out_uint(&r))
    }

    /// The sum of many values through tfhe-rs's parallel `Sum` (one carry propagation at the end).
    pub fn sum<'a>(&self, values: impl Iterator<Item = &'a [u8]>) -> Result<Vec<u8>, FheError> {
        let cts = values
            .map(|v| self.value(v))
            .collect::<Result<Vec<_>, _>>()?;
        self.install();
        let s: FheUint32 = cts.iter().sum();
        Ok(self.out_uint(&s))
    }

    /// An encrypted boolean: a `cmp` b.
    pub fn compare(&self, a: &[u8], cmp: Cmp, b: Operand<'_>) -> Result<Vec<u8>, FheError> {
        let a = self.value(a)?;
        self.install();
        let r = match b {
            Operand::Encrypted(b) => {
                let b = self.value(b)?;
                match cmp {
                    Cmp::Eq => a.eq(&b),
                    Cmp::Ne => a.ne(&b),
                    Cmp::Lt => a.lt(&b),
                    Cmp::Le => a.le(&b),
                    Cmp::Gt => a.gt(&b),
                    Cmp::Ge => a.ge(&b),
                }
            }
            Operand::Clear(b) => match cmp {
                Cmp::Eq => a.eq(b),
                Cmp::Ne => a.ne(b),
                Cmp::Lt => a.lt(b),
                Cmp::Le => a.le(b),
                Cmp::Gt => a.gt(b),
                Cmp::Ge => a.ge(b),
            },
        };
        Ok(with_header(BOOL_MAGIC, &self.key_id, |o| serialize(&r, o)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_sum_compare_round_trip() {
        let (ck, material) = generate();
        let ck = ClientKeySet::from_bytes(&ck.to_bytes()).unwrap();
        let sk = ServerKeySet::from_material(&material).unwrap();
        let a = ck.encrypt(40);
        let b = ck.encrypt(2);
        assert_eq!(
            ck.decrypt(&sk.add(&a, Operand::Encrypted(&b)).unwrap())
                .unwrap(),
            42
        );
        assert_eq!(
            ck.decrypt(&sk.add(&a, Operand::Clear(u32::MAX)).unwrap())
                .unwrap(),
            39
        );
        let vals: Vec<Vec<u8>> = (1..=5).map(|v| ck.encrypt(v)).collect();
        assert_eq!(
            ck.decrypt(&sk.sum(vals.iter().map(|v| v.as_slice())).unwrap())
                .unwrap(),
            15
        );
        assert!(ck
            .decrypt_bool(&sk.compare(&a, Cmp::Gt, Operand::Encrypted(&b)).unwrap())
            .unwrap());
        assert!(!ck
            .decrypt_bool(&sk.compare(&a, Cmp::Lt, Operand::Clear(40)).unwrap())
            .unwrap());
        assert!(ck
            .decrypt_bool(&sk.compare(&a, Cmp::Eq, Operand::Clear(40)).unwrap())
            .unwrap());
        // Damaged and foreign values are errors, not panics.
        assert!(ck.decrypt(&a[..a.len() - 10]).is_err());
        let (other, _) = generate();
        assert!(matches!(other.decrypt(&a), Err(FheError::Mismatch(_))));
        // A ciphertext made under other parameters (1-bit blocks: another block count and LWE
        // dimension) with this key set's header deserializes as an FheUint32 but is not
        // conformant: the server refuses it instead of computing on it.
        let foreign = ClientKey::generate(
            ConfigBuilder::with_custom_parameters(
                tfhe::shortint::parameters::v1_8::V1_8_PARAM_MESSAGE_1_CARRY_1_KS_PBS_GAUSSIAN_2M128,
            )
            .build(),
        );
        let forged = with_header(UINT_MAGIC, &ck.key_id, |o| {
            serialize(&FheUint32::encrypt(7u32, &foreign), o)
        });
        assert!(deserialize::<FheUint32>(&forged[HEADER_LEN..], "fhe_uint32").is_ok());
        assert!(matches!(
            sk.add(&forged, Operand::Clear(1)),
            Err(FheError::Malformed(_))
        ));
        assert!(matches!(
            sk.sum([a.as_slice(), forged.as_slice()].into_iter()),
            Err(FheError::Malformed(_))
        ));
    }
}
