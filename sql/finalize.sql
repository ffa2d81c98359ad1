-- pg_encrypt_ml finalize: comments and privileges on every function. Runs after all generated SQL.

COMMENT ON FUNCTION enc_bytea_in(cstring) IS 'enc_bytea text input: base64 of the binary value, structure checked';
COMMENT ON FUNCTION enc_bytea_out(enc_bytea) IS 'enc_bytea text output: base64 of the binary value';
COMMENT ON FUNCTION enc_bytea_recv(internal) IS 'enc_bytea binary input, structure checked';
COMMENT ON FUNCTION enc_bytea_send(enc_bytea) IS 'enc_bytea binary output: the value''s bytes';
COMMENT ON FUNCTION enc_bytea_from_bytea(bytea) IS 'Cast bytea to enc_bytea after a structural check (for client-side ciphertexts)';

COMMENT ON FUNCTION encrypt(bytea, uuid, text) IS
    'Encrypts bytes with AES-256-GCM under the current version of a key of purpose aead; optional AAD binds the value to a context';
COMMENT ON FUNCTION encrypt(text, uuid, text) IS
    'Encrypts text (its bytes in the server encoding) with AES-256-GCM under the current version of a key of purpose aead; optional AAD';
COMMENT ON FUNCTION decrypt(enc_bytea, text) IS
    'Decrypts an enc_bytea to bytea; the AAD must match the one given to encrypt';
COMMENT ON FUNCTION decrypt_text(enc_bytea, text) IS
    'Decrypts an enc_bytea to text (checked against the server encoding); the AAD must match';
COMMENT ON FUNCTION reencrypt(enc_bytea, text) IS
    'Re-encrypts a value under the current version of its key (unchanged if already current), for UPDATE-based rotation';
COMMENT ON FUNCTION key_id(enc_bytea) IS 'The key id in an enc_bytea header (not authenticated until decryption)';
COMMENT ON FUNCTION key_version(enc_bytea) IS 'The key version in an enc_bytea header (not authenticated until decryption)';

COMMENT ON FUNCTION create_key(text, text, text) IS
    'Creates a data key (purpose aead, deterministic, ore or hmac; optional tenant) wrapped by the master key; returns its id';
COMMENT ON FUNCTION rotate_key(uuid) IS
    'Adds a new version of a key and makes it current for encryption; older versions keep decrypting. Returns the new version';
COMMENT ON FUNCTION retire_key_version(uuid, integer, boolean) IS
    'Erases the material of a non-current key version; refuses while enc_bytea columns of this database still use it, unless force';
COMMENT ON FUNCTION destroy_key(uuid) IS
    'Crypto-shredding: erases the material of every version of a key; its values become unrecoverable. Returns versions erased';
COMMENT ON FUNCTION rotate_master_key() IS
    'Rewraps every data key wrapped under an older master key with the current one (first line of the provider); returns the count';

REVOKE EXECUTE ON FUNCTION rotate_master_key() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION rotate_master_key() TO encml_key_admin;

-- det_text (deterministic encryption)
COMMENT ON FUNCTION det_text_in(cstring) IS 'det_text text input: base64 of the binary value, structure checked';
COMMENT ON FUNCTION det_text_out(det_text) IS 'det_text text output: base64 of the binary value';
COMMENT ON FUNCTION det_text_recv(internal) IS 'det_text binary input, structure checked';
COMMENT ON FUNCTION det_text_send(det_text) IS 'det_text binary output: the value''s bytes';
COMMENT ON FUNCTION det_text_from_bytea(bytea) IS 'Cast bytea to det_text after a structural check (for client-side ciphertexts)';
COMMENT ON FUNCTION det_text_eq(det_text, det_text) IS 'det_text equality: equal ciphertexts, i.e. equal plaintexts under the same key version';
COMMENT ON FUNCTION det_text_ne(det_text, det_text) IS 'det_text inequality';
COMMENT ON FUNCTION det_text_lt(det_text, det_text) IS 'Arbitrary but consistent ciphertext order, for btree indexes and merge joins (not plaintext order)';
COMMENT ON FUNCTION det_text_le(det_text, det_text) IS 'Arbitrary but consistent ciphertext order, for btree indexes and merge joins (not plaintext order)';
COMMENT ON FUNCTION det_text_gt(det_text, det_text) IS 'Arbitrary but consistent ciphertext order, for btree indexes and merge joins (not plaintext order)';
COMMENT ON FUNCTION det_text_ge(det_text, det_text) IS 'Arbitrary but consistent ciphertext order, for btree indexes and merge joins (not plaintext order)';
COMMENT ON FUNCTION det_text_cmp(det_text, det_text) IS 'btree support: ciphertext byte order';
COMMENT ON FUNCTION det_text_sortsupport(internal) IS 'btree sort support: ciphertext byte order';
COMMENT ON FUNCTION det_text_hash(det_text) IS 'hash support for det_text';
COMMENT ON FUNCTION det_text_hash_extended(det_text, bigint) IS 'extended hash support for det_text';
COMMENT ON FUNCTION det_encrypt(text, uuid) IS
    'Deterministic AES-SIV encryption under the current version of a key of purpose deterministic: equal values give equal det_text';
COMMENT ON FUNCTION det_encrypt(bytea, uuid) IS
    'Deterministic AES-SIV encryption of bytes under the current version of a key of purpose deterministic';
COMMENT ON FUNCTION det_decrypt(det_text) IS 'Decrypts a det_text to text (checked against the server encoding)';
COMMENT ON FUNCTION det_decrypt_bytea(det_text) IS 'Decrypts a det_text to bytea';
COMMENT ON FUNCTION det_reencrypt(det_text) IS 'Re-encrypts a det_text under the current version of its key (unchanged if already current)';
COMMENT ON FUNCTION det_encrypt_all_versions(text, uuid) IS
    'The value under every usable version of the key, newest first: search during a rotation with col = ANY(...)';
COMMENT ON FUNCTION key_id(det_text) IS 'The key id in a det_text header (not authenticated until decryption)';
COMMENT ON FUNCTION key_version(det_text) IS 'The key version in a det_text header (not authenticated until decryption)';
