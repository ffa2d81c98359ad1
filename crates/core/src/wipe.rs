//! Key-derived state of library types that do not zeroize themselves. hmac 0.12 and hkdf 0.12
//! (the versions aes-gcm's generation of RustCrypto uses) keep the inner and outer hash states
//! of a keyed HMAC (enough to compute MACs without the key) and leave them in memory when
//! dropped. `Wiped` overwrites such a value's bytes with zeros (through `zeroize`, so the
//! writes are not optimised away) when it is dropped.

use hkdf::Hkdf;
use hmac::Hmac;
use sha2::Sha256;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use zeroize::Zeroize;

/// Types whose whole state lives inline: fixed-size arrays and integers, no pointer to memory
/// elsewhere and no drop logic. Zeroing their bytes after dropping them erases the state.
///
/// # Safety
/// Implement only for types with that property.
pub unsafe trait InlineState {}

// SAFETY: Hmac<Sha256> is CoreWrapper<HmacCore<Sha256>>: two SHA-256 cores (arrays of u32 and a
// block counter) and a BlockBuffer (a byte array and a position); no heap, no Drop impl.
unsafe impl InlineState for Hmac<Sha256> {}
// SAFETY: Hkdf<Sha256> holds one HmacCore<Sha256> (as above) and a PhantomData.
unsafe impl InlineState for Hkdf<Sha256> {}

/// A value of an `InlineState` type, zeroed when dropped.
pub struct Wiped<T: InlineState>(ManuallyDrop<T>);

impl<T: InlineState> Wiped<T> {
    pub fn new(value: T) -> Self {
        Wiped(ManuallyDrop::new(value))
    }
}

impl<T: InlineState + Clone> Clone for Wiped<T> {
    fn clone(&self) -> Self {
        Wiped::new((*self.0).clone())
    }
}

impl<T: InlineState> Deref for Wiped<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: InlineState> DerefMut for Wiped<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: InlineState> Drop for Wiped<T> {
    fn drop(&mut self) {
        let ptr = &mut *self.0 as *mut T as *mut u8;
        // SAFETY: the value is dropped first (a no-op for InlineState types) and never used
        // again; its bytes are then plain memory this struct owns, size_of::<T>() long.
        unsafe {
            ManuallyDrop::drop(&mut self.0);
            std::slice::from_raw_parts_mut(ptr, std::mem::size_of::<T>()).zeroize();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::Mac;

    #[test]
    fn a_wiped_hmac_still_computes_and_its_bytes_are_zeroed_on_drop() {
        let key = [0x5a_u8; 32];
        let mut m = Wiped::new(<Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap());
        m.update(b"abc");
        let expected = <Hmac<Sha256> as Mac>::new_from_slice(&key)
            .unwrap()
            .chain_update(b"abc")
            .finalize()
            .into_bytes();
        assert_eq!((*m).clone().finalize().into_bytes(), expected);
        // Drop in place inside a buffer we keep, then look at the bytes left behind.
        let mut slot = std::mem::MaybeUninit::<Wiped<Hmac<Sha256>>>::uninit();
        slot.write(m);
        let bytes = slot.as_ptr() as *const u8;
        let size = std::mem::size_of::<Wiped<Hmac<Sha256>>>();
        // SAFETY: the slot holds an initialised value, dropped once; its storage outlives the
        // reads below.
        unsafe {
            assert!(std::slice::from_raw_parts(bytes, size)
                .iter()
                .any(|b| *b != 0));
            std::ptr::drop_in_place(slot.as_mut_ptr());
            assert!(std::slice::from_raw_parts(bytes, size)
                .iter()
                .all(|b| *b == 0));
        }
    }
}
