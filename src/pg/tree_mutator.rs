//! PostgreSQL 15 declares its tree mutators' callback as a C function pointer without a
//! prototype (`Node *(*)()`); Rust callbacks have the real one.

use pgrx::pg_sys;
use std::ffi::c_void;

/// A mutator callback, `(Node *, void *) -> Node *`.
pub type Mutate = unsafe extern "C-unwind" fn(*mut pg_sys::Node, *mut c_void) -> *mut pg_sys::Node;

/// `f` as the function-pointer type `expression_tree_mutator` and `query_tree_mutator` take.
pub fn callback(f: Mutate) -> Option<unsafe extern "C-unwind" fn() -> *mut pg_sys::Node> {
    // SAFETY: the mutators call it with (Node *, void *) and use its Node * result, which is
    // `Mutate`'s signature; only the Rust type of the pointer changes.
    Some(unsafe {
        std::mem::transmute::<Mutate, unsafe extern "C-unwind" fn() -> *mut pg_sys::Node>(f)
    })
}
