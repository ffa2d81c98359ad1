//! Encrypted tensors: the clear descriptor of a described enc_bytea (algorithm 4) that holds a
//! dense array of numbers. The values are the GCM plaintext, packed little-endian in row-major
//! (C) order with nothing else inside, so a float32 tensor costs 4 bytes per value plus a fixed
//! header. The descriptor (dtype and shape) is readable without the key; it is authenticated
//! only when the value is opened, so until then it is a claim.
//!
//! ```text
//! descriptor (after the 24-byte header and its 2-byte length)
//! offset  size  field
//!      0     1  descriptor type: 1 = tensor
//!      1     1  tensor descriptor version (1)
//!      2     1  dtype: 1 float32, 2 float64, 3 int16, 4 int32
//!      3     1  ndim (0 = empty array)
//!      4  8*nd  per dimension: length (u32, big-endian), lower bound (i32, big-endian)
//! ```

use crate::error::{Error, Result};

pub const DESCRIPTOR_TENSOR: u8 = 1;
pub const TENSOR_VERSION: u8 = 1;
/// Dimensions a descriptor may declare (Postgres arrays have at most 6).
pub const MAX_NDIM: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    Float32,
    Float64,
    Int16,
    Int32,
}

impl DType {
    pub const ALL: [DType; 4] = [DType::Float32, DType::Float64, DType::Int16, DType::Int32];

    pub fn code(self) -> u8 {
        match self {
            DType::Float32 => 1,
            DType::Float64 => 2,
            DType::Int16 => 3,
            DType::Int32 => 4,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.code() == code)
    }

    /// The NumPy name of the dtype (`numpy.dtype(name)` reads it back).
    pub fn name(self) -> &'static str {
        match self {
            DType::Float32 => "float32",
            DType::Float64 => "float64",
            DType::Int16 => "int16",
            DType::Int32 => "int32",
        }
    }

    pub fn size(self) -> usize {
        match self {
            DType::Float32 | DType::Int32 => 4,
            DType::Float64 => 8,
            DType::Int16 => 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dim {
    pub len: u32,
    pub lower: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorDescriptor {
    pub dtype: DType,
    pub dims: Vec<Dim>,
}

impl TensorDescriptor {
    /// A tensor of `shape` with lower bounds 1 (the Postgres default).
    pub fn new(dtype: DType, shape: &[u32]) -> Self {
        TensorDescriptor {
            dtype,
            dims: shape.iter().map(|&len| Dim { len, lower: 1 }).collect(),
        }
    }

    pub fn shape(&self) -> Vec<u32> {
        self.dims.iter().map(|d| d.len).collect()
    }

    /// Number of values: 0 for ndim 0 (the empty array), else the product of the lengths.
    pub fn element_count(&self) -> Result<usize> {
        if self.dims.is_empty() {
            return Ok(0);
        }
        self.dims
            .iter()
            .try_fold(1usize, |n, d| n.checked_mul(d.len as usize))
            .ok_or(Error::Malformed("tensor shape overflows"))
    }

    /// Bytes of packed values.
    pub fn byte_len(&self) -> Result<usize> {
        self.element_count()?
            .checked_mul(self.dtype.size())
            .ok_or(Error::Malformed("tensor shape overflows"))
    }

    pub fn encoded_len(&self) -> usize {
        4 + 8 * self.dims.len()
    }

    pub fn encode(&self) -> Vec<u8> {
        assert!(self.dims.len() <= MAX_NDIM, "too many dimensions");
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&[
            DESCRIPTOR_TENSOR,
            TENSOR_VERSION,
            self.dtype.code(),
            self.dims.len() as u8,
        ]);
        for d in &self.dims {
            out.extend_from_slice(&d.len.to_be_bytes());
            out.extend_from_slice(&d.lower.to_be_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < 4 || bytes[0] != DESCRIPTOR_TENSOR {
            return Err(Error::Malformed("not an encrypted tensor"));
        }
        if bytes[1] != TENSOR_VERSION {
            return Err(Error::UnsupportedVersion {
                format: "tensor descriptor",
                version: bytes[1],
            });
        }
        let dtype = DType::from_code(bytes[2]).ok_or(Error::Malformed("unknown tensor dtype"))?;
        let ndim = bytes[3] as usize;
        if ndim > MAX_NDIM || bytes.len() != 4 + 8 * ndim {
            return Err(Error::Malformed(
                "tensor descriptor length does not match ndim",
            ));
        }
        let dims = bytes[4..]
            .chunks_exact(8)
            .map(|c| Dim {
                len: u32::from_be_bytes(c[0..4].try_into().expect("4 bytes")),
                lower: i32::from_be_bytes(c[4..8].try_into().expect("4 bytes")),
            })
            .collect();
        let desc = TensorDescriptor { dtype, dims };
        desc.element_count()?;
        Ok(desc)
    }

    /// Parses the descriptor of an enc_bytea value and checks it against the body length.
    pub fn of_value(value: &[u8]) -> Result<Self> {
        let parts = crate::aead::Parts::parse(value)?;
        let desc = Self::decode(
            parts
                .descriptor
                .ok_or(Error::Malformed("not an encrypted tensor"))?,
        )?;
        if desc.byte_len()? != parts.body.len() {
            return Err(Error::Malformed("tensor shape does not match its length"));
        }
        Ok(desc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aead::AeadKey;

    fn le_f32(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn descriptor_round_trips() {
        for dims in [
            vec![],
            vec![Dim { len: 5, lower: 0 }],
            vec![
                Dim { len: 2, lower: 1 },
                Dim { len: 3, lower: -4 },
                Dim { len: 4, lower: 1 },
            ],
        ] {
            for dtype in DType::ALL {
                let d = TensorDescriptor {
                    dtype,
                    dims: dims.clone(),
                };
                let enc = d.encode();
                assert_eq!(enc.len(), d.encoded_len());
                assert_eq!(TensorDescriptor::decode(&enc).unwrap(), d);
            }
        }
        assert_eq!(
            TensorDescriptor::new(DType::Int16, &[])
                .element_count()
                .unwrap(),
            0
        );
        assert_eq!(
            TensorDescriptor::new(DType::Float64, &[2, 3, 4])
                .byte_len()
                .unwrap(),
            192
        );
    }

    #[test]
    fn bad_descriptors_are_refused() {
        let good = TensorDescriptor::new(DType::Float32, &[3]).encode();
        let mut v = good.clone();
        v[1] = 2;
        assert!(matches!(
            TensorDescriptor::decode(&v),
            Err(Error::UnsupportedVersion { .. })
        ));
        let mut v = good.clone();
        v[2] = 9;
        assert!(TensorDescriptor::decode(&v).is_err());
        assert!(TensorDescriptor::decode(&good[..good.len() - 1]).is_err());
        let huge = TensorDescriptor::new(DType::Float64, &[u32::MAX, u32::MAX, u32::MAX]);
        assert!(TensorDescriptor::decode(&huge.encode()).is_err());
    }

    /// Size promise: a float32 tensor is 4 bytes per value plus a header fixed by its ndim.
    #[test]
    fn sealed_tensor_layout_and_size() {
        let key = AeadKey::from_root(&[1; 32], [2; 16], 1);
        let values: Vec<f32> = (0..1000).map(|i| i as f32 * 0.5).collect();
        let desc = TensorDescriptor::new(DType::Float32, &[10, 100]);
        let ct = key.seal_described(&[3; 12], &desc.encode(), &le_f32(&values), b"");
        assert_eq!(ct.len(), 4 * 1000 + 24 + 2 + 20 + 12 + 16);
        assert_eq!(TensorDescriptor::of_value(&ct).unwrap(), desc);
        assert_eq!(key.open(&ct, b"").unwrap(), le_f32(&values));
        // A plain enc_bytea is not a tensor.
        let plain = key.seal(&[3; 12], b"abc", b"");
        assert_eq!(
            TensorDescriptor::of_value(&plain),
            Err(Error::Malformed("not an encrypted tensor"))
        );
    }
}
