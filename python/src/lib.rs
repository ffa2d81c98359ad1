//! Python bindings of pg_encrypt_ml's FHE client: the functions the `pg_encrypt_ml-fhe` tool
//! runs (`encml_fhe`), for key holders and contributors that work in Python (docs/fhe.md,
//! "Python client"). Values come in and go out as NumPy arrays; keys, CRS, updates and sums are
//! `bytes` in the formats of docs/formats.md, so they move between the tool, Python and the
//! database unchanged. The long computations (a CRS, proofs, decryption) release the GIL.

// No unsafe code of our own (PyO3 and numpy hold the FFI).
#![forbid(unsafe_code)]

use encml_fhe::client::{bytes_from_text, id_string, write_secret_file};
use encml_fhe::keys::{generate, PublicKey, SecretKey};
use encml_fhe::params::Encoding;
use encml_fhe::proven::{self, Crs};
use encml_fhe::vector::EncryptedVector;
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::path::PathBuf;
use zeroize::Zeroizing;

fn value_error(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// A vector key set: its id (what `encml.fhe_register_keyset` returns), public key, secret key
/// and, for proven rounds, the CRS.
#[pyclass(frozen, module = "pg_encrypt_ml_fhe")]
struct KeySet {
    #[pyo3(get)]
    id: String,
    public_key: Vec<u8>,
    secret_key: Zeroizing<Vec<u8>>,
    crs: Option<Vec<u8>>,
}

#[pymethods]
impl KeySet {
    /// The public key (`encml.fhe_register_keyset(name, public_key, crs)`; contributors encrypt
    /// with it).
    #[getter]
    fn public_key<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.public_key)
    }

    /// The CRS proofs are made and checked with, or None for a key set without proofs.
    #[getter]
    fn crs<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.crs.as_ref().map(|c| PyBytes::new(py, c))
    }

    /// The secret key: it decrypts every update under this key set, so it stays with the
    /// party that decrypts round sums. A method, not an attribute, so that printing the key set
    /// does not show it.
    fn secret_key<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.secret_key)
    }

    /// Writes the files `pg_encrypt_ml-fhe keygen` writes into `directory`: secret.key (mode
    /// 0600, never overwritten), public.key and crs.bin.
    fn save(&self, directory: PathBuf) -> PyResult<()> {
        std::fs::create_dir_all(&directory)?;
        write_secret_file(&directory.join("secret.key"), &self.secret_key).map_err(value_error)?;
        std::fs::write(directory.join("public.key"), &self.public_key)?;
        if let Some(crs) = &self.crs {
            std::fs::write(directory.join("crs.bin"), crs)?;
        }
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!(
            "KeySet(id='{}', proofs={})",
            self.id,
            if self.crs.is_some() { "True" } else { "False" }
        )
    }
}

/// Generates a vector key set. With `proofs`, also its CRS for rounds of up to
/// `max_contributions` updates of `value_bits`-bit values, `values_per_proof` values per proof
/// (a power of two from 64 to 2048; about a minute at 2048). As `pg_encrypt_ml-fhe keygen
/// --proofs`.
#[pyfunction]
#[pyo3(signature = (proofs = true, value_bits = 16, max_contributions = 1000, values_per_proof = 2048))]
fn keygen(
    py: Python<'_>,
    proofs: bool,
    value_bits: u8,
    max_contributions: u64,
    values_per_proof: usize,
) -> PyResult<KeySet> {
    py.allow_threads(|| {
        let crs = proofs
            .then(|| Crs::for_rounds(value_bits, max_contributions, values_per_proof))
            .transpose()
            .map_err(value_error)?;
        let (sk, pk) = generate();
        Ok(KeySet {
            id: id_string(&pk.key_id),
            public_key: pk.to_bytes(),
            secret_key: sk.to_bytes(),
            crs: crs.map(|c| c.to_bytes()),
        })
    })
}

/// Encrypts `values` (a one-dimensional float64 array) for round `round` and proves every value
/// lies in the CRS's range at `frac_bits` fractional bits; returns the proven update to pass to
/// `encml.fhe_submit_proven(round, update)`. As `pg_encrypt_ml-fhe encrypt --crs --round`.
#[pyfunction]
fn encrypt_and_prove<'py>(
    py: Python<'py>,
    values: PyReadonlyArray1<'py, f64>,
    public_key: &[u8],
    crs: &[u8],
    round: i64,
    frac_bits: u8,
) -> PyResult<Bound<'py, PyBytes>> {
    let values = values.as_slice().map_err(value_error)?.to_vec();
    let pk = PublicKey::from_bytes(public_key).map_err(value_error)?;
    let crs = Crs::from_bytes_trusted(crs).map_err(value_error)?;
    let update = py
        .allow_threads(|| proven::encrypt_and_prove(&pk, &crs, &values, frac_bits, round))
        .map_err(value_error)?;
    Ok(PyBytes::new(py, &update))
}

/// Encrypts `values` without proofs, for rounds opened with `unproven => true` (every
/// contributor trusted with the secret key; docs/fhe.md). As `pg_encrypt_ml-fhe encrypt`.
#[pyfunction]
#[pyo3(signature = (values, public_key, value_bits = 16, frac_bits = 8, max_terms = 1000))]
fn encrypt<'py>(
    py: Python<'py>,
    values: PyReadonlyArray1<'py, f64>,
    public_key: &[u8],
    value_bits: u8,
    frac_bits: u8,
    max_terms: u64,
) -> PyResult<Bound<'py, PyBytes>> {
    let values = values.as_slice().map_err(value_error)?.to_vec();
    let pk = PublicKey::from_bytes(public_key).map_err(value_error)?;
    let encoding = Encoding::for_sums(value_bits, frac_bits, max_terms).map_err(value_error)?;
    let v = py
        .allow_threads(|| EncryptedVector::encrypt(&pk, &values, encoding))
        .map_err(value_error)?;
    Ok(PyBytes::new(py, &v.to_bytes()))
}

/// Decrypts a round sum (`encml.fhe_round_sum(round)`: bytes, or its base64 text) with the
/// secret key; returns a float64 array. As `pg_encrypt_ml-fhe decrypt`.
#[pyfunction]
fn decrypt<'py>(
    py: Python<'py>,
    vector: &Bound<'py, PyAny>,
    secret_key: &[u8],
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let input: Vec<u8> = match vector.extract::<String>() {
        Ok(text) => text.into_bytes(),
        Err(_) => vector.extract::<Vec<u8>>()?,
    };
    let bytes = bytes_from_text(&input).map_err(value_error)?;
    let sk = SecretKey::from_bytes(secret_key).map_err(value_error)?;
    let values = py
        .allow_threads(|| EncryptedVector::from_bytes(&bytes).and_then(|v| v.decrypt(&sk)))
        .map_err(value_error)?;
    Ok(values.into_pyarray(py))
}

/// The header of a proven update: key set, round, dimension and encoding (nothing verified).
/// As `pg_encrypt_ml-fhe info`.
#[pyfunction]
fn info<'py>(py: Python<'py>, update: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let h = proven::header(update).map_err(value_error)?;
    let d = PyDict::new(py);
    d.set_item("keyset", id_string(&h.key_id))?;
    d.set_item("round", h.round)?;
    d.set_item("dim", h.dim)?;
    d.set_item("value_bits", h.encoding.value_bits)?;
    d.set_item("frac_bits", h.encoding.frac_bits)?;
    d.set_item("message_bits", h.encoding.message_bits)?;
    d.set_item("values_per_proof", h.chunk)?;
    Ok(d)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<KeySet>()?;
    m.add_function(wrap_pyfunction!(keygen, m)?)?;
    m.add_function(wrap_pyfunction!(encrypt_and_prove, m)?)?;
    m.add_function(wrap_pyfunction!(encrypt, m)?)?;
    m.add_function(wrap_pyfunction!(decrypt, m)?)?;
    m.add_function(wrap_pyfunction!(info, m)?)?;
    Ok(())
}
