//! The keyed HMAC and HKDF states the library keeps (ORE's MAC key, audit, tenant tokens, sub-key
//! and master-key derivation) are zeroed when dropped: hmac 0.13 / hkdf 0.13 over sha2 0.11 with
//! their "zeroize" features. The library forbids unsafe code; this test, a crate of its own, uses
//! some to look at the memory a dropped value leaves behind.

use hkdf::Hkdf;
use hmac::digest::block_api::{Buffer, CoreProxy};
use hmac::{Hmac, HmacReset, KeyInit, Mac};
use sha2::Sha256;
use std::mem::MaybeUninit;

fn assert_zeroize_on_drop<T: zeroize::ZeroizeOnDrop>() {}

#[test]
fn the_parts_of_a_keyed_hmac_are_zeroize_on_drop() {
    // The SHA-256 core: HmacCore's inner and outer (and HmacReset's saved inner) states.
    assert_zeroize_on_drop::<<Sha256 as CoreProxy>::Core>();
    assert_zeroize_on_drop::<sha2::block_api::Sha256VarCore>();
    // The block buffer of the Hmac/HmacReset wrapper (message bytes not yet compressed).
    assert_zeroize_on_drop::<Buffer<hmac::block_api::HmacCore<Sha256>>>();
    assert_zeroize_on_drop::<Buffer<hmac::block_api::HmacResetCore<Sha256>>>();
    // Hmac<Sha256> itself does not declare the trait (its macro leaves it out for MACs); that
    // its fields' Drop impls do erase it is shown by the tests below.
}

/// SHA-256's initial state (FIPS 180-4, 5.3.3).
const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// The in-memory bytes of the SHA-256 state after compressing `key ^ pad` (key up to 64 bytes):
/// what a keyed HMAC holds that lets anyone compute MACs without the key.
fn midstate(key: &[u8], pad: u8) -> Vec<u8> {
    let mut block = [pad; 64];
    block.iter_mut().zip(key).for_each(|(b, k)| *b ^= k);
    let mut state = IV;
    sha2::block_api::compress256(&mut state, &[block]);
    state.iter().flat_map(|w| w.to_ne_bytes()).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The bytes of `value` in place, then the bytes left behind once it is dropped there.
fn bytes_before_and_after_drop<T>(value: T) -> (Vec<u8>, Vec<u8>) {
    let mut slot = MaybeUninit::<T>::uninit();
    slot.write(value);
    let size = std::mem::size_of::<T>();
    let read = |slot: &MaybeUninit<T>| {
        // SAFETY: the slot's storage is `size` bytes and outlives the read. Bytes the value
        // does not define (padding, the unused tail of the block buffer before the drop) are
        // read as whatever is there; only the defined 32-byte states are looked for in them.
        unsafe { std::slice::from_raw_parts(slot.as_ptr().cast::<u8>(), size) }.to_vec()
    };
    let before = read(&slot);
    // SAFETY: the slot holds an initialised value, dropped once here and never used again.
    unsafe { slot.as_mut_ptr().drop_in_place() };
    let after = read(&slot);
    (before, after)
}

/// Checks that `secrets` are in the value before it is dropped and gone after, and that at most
/// the padding of an 8-aligned struct (under 8 bytes) is left non-zero.
fn check_erased<T>(value: T, secrets: &[&[u8]]) {
    let (before, after) = bytes_before_and_after_drop(value);
    for (i, s) in secrets.iter().enumerate() {
        assert!(contains(&before, s), "secret {i} is in the live value");
        assert!(!contains(&after, s), "secret {i} is left after the drop");
    }
    let left = after.iter().filter(|b| **b != 0).count();
    assert!(left < 8, "{left} non-zero bytes left after the drop");
}

const KEY: [u8; 32] = [0x5a; 32];
const PENDING: &[u8] = b"bytes still in the block buffer";

#[test]
fn a_dropped_hmac_reset_leaves_no_keyed_state_or_message_bytes() {
    // What ORE, the audit chain and tenant tokens use.
    let mut m = HmacReset::<Sha256>::new_from_slice(&KEY).unwrap();
    m.update(PENDING);
    let expected = Hmac::<Sha256>::new_from_slice(&KEY)
        .unwrap()
        .chain_update(PENDING)
        .finalize()
        .into_bytes();
    assert_eq!(m.clone().finalize_reset().into_bytes(), expected);
    let inner = midstate(&KEY, 0x36);
    let outer = midstate(&KEY, 0x5c);
    check_erased(m, &[&inner, &outer, PENDING]);
}

#[test]
fn a_dropped_hmac_leaves_no_keyed_state_or_message_bytes() {
    let mut m = Hmac::<Sha256>::new_from_slice(&KEY).unwrap();
    m.update(PENDING);
    let inner = midstate(&KEY, 0x36);
    let outer = midstate(&KEY, 0x5c);
    check_erased(m, &[&inner, &outer, PENDING]);
}

#[test]
fn a_dropped_hkdf_leaves_no_keyed_state() {
    // What sub-key, stream and master-key derivation use: HMAC keyed with the PRK.
    let ikm = [0x17_u8; 32];
    let prk = Hmac::<Sha256>::new_from_slice(&[0u8; 32])
        .unwrap()
        .chain_update(ikm)
        .finalize()
        .into_bytes();
    let hk = Hkdf::<Sha256>::new(None, &ikm);
    let inner = midstate(&prk, 0x36);
    let outer = midstate(&prk, 0x5c);
    check_erased(hk, &[&inner, &outer]);
}
