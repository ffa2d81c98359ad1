//! Encrypted tensor descriptors: `tensor::TensorDescriptor::decode` and `of_value`.
//!
//! Checks: a decoded descriptor re-encodes to the input; `byte_len` agrees with the shape;
//! `of_value` of an own described value with a decoded descriptor gives it back.

use crate::fixtures;
use encml_core::aead::{AeadKey, Parts};
use encml_core::tensor::{TensorDescriptor, MAX_NDIM};

thread_local! {
    static AEAD: AeadKey = fixtures::aead();
}

pub fn init() {
    AEAD.with(|_| ());
}

pub fn run(data: &[u8]) {
    if let Ok(d) = TensorDescriptor::decode(data) {
        assert!(d.dims.len() <= MAX_NDIM);
        assert_eq!(d.encode(), data, "descriptor re-encodes to itself");
        assert_eq!(d.encoded_len(), data.len());
        let count = d.element_count().expect("decode checked the element count");
        if !d.dims.is_empty() {
            let exact = d.dims.iter().map(|x| x.len as u128).product::<u128>();
            assert_eq!(exact, count as u128);
        }
        if let Ok(b) = d.byte_len() {
            assert_eq!(b as u128, count as u128 * d.dtype.size() as u128);
            // A value of this shape, sealed and read back, when small.
            if b <= 1 << 16 {
                let ct =
                    AEAD.with(|k| k.seal_described(&fixtures::NONCE, data, &vec![7u8; b], b""));
                assert_eq!(TensorDescriptor::of_value(&ct), Ok(d.clone()));
                // One byte more or less does not match the shape.
                let short =
                    AEAD.with(|k| k.seal_described(&fixtures::NONCE, data, &vec![7u8; b + 1], b""));
                assert!(TensorDescriptor::of_value(&short).is_err());
            }
        }
    }
    if let Ok(d) = TensorDescriptor::of_value(data) {
        let p = Parts::parse(data).expect("of_value parsed it");
        assert_eq!(
            p.descriptor.map(TensorDescriptor::decode),
            Some(Ok(d.clone()))
        );
        assert_eq!(d.byte_len(), Ok(p.body.len()));
    }
}
