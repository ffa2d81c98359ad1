"""Client of pg_encrypt_ml's homomorphic aggregation rounds (docs/fhe.md, "Python client").

The same Rust code as the ``pg_encrypt_ml-fhe`` tool:

- ``keygen(proofs=True, value_bits=16, max_contributions=1000, values_per_proof=2048)``:
  a ``KeySet`` (``id``, ``public_key``, ``crs``, ``secret_key()``, ``save(dir)``);
- ``encrypt_and_prove(values, public_key, crs, round, frac_bits)``: a proven update (bytes)
  for ``encml.fhe_submit_proven(round, update)``;
- ``encrypt(values, public_key, value_bits=16, frac_bits=8, max_terms=1000)``: an unproven
  update for ``encml.fhe_submit`` in rounds opened with ``unproven => true``;
- ``decrypt(sum, secret_key)``: the values of ``encml.fhe_round_sum(round)`` (bytes or base64
  text) as a float64 NumPy array;
- ``info(update)``: a proven update's header.
"""
from ._native import KeySet, decrypt, encrypt, encrypt_and_prove, info, keygen

__all__ = ["KeySet", "keygen", "encrypt_and_prove", "encrypt", "decrypt", "info"]
