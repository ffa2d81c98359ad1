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
