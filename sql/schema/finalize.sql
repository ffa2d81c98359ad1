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
    'Creates a data key (purpose aead, deterministic, ore, fpe or hmac; optional tenant) wrapped by the master key; returns its id';
COMMENT ON FUNCTION rotate_key(uuid) IS
    'Adds a new version of a key and makes it current for encryption; older versions keep decrypting. Returns the new version';
COMMENT ON FUNCTION retire_key_version(uuid, integer, boolean) IS
    'Erases the material of a non-current key version; refuses while values of this database still use it (encrypted columns, jsonb fields, materialized views, large objects), unless force';
COMMENT ON FUNCTION destroy_key(uuid) IS
    'Crypto-shredding: erases the material of every version of a key; its values become unrecoverable. Returns versions erased';
COMMENT ON FUNCTION export_key(uuid, bytea, integer) IS
    'Wraps a data key version (current by default) for the holder of an X25519 private key with HPKE (X25519, HKDF-SHA256, AES-256-GCM); admins of the key only; audited outside the transaction';
COMMENT ON FUNCTION grant_key(uuid, regrole, text) IS
    'Grants a per-key privilege (encrypt, decrypt or admin) to a role and, through inheritance, its members; admins of the key only; effective in every session at its next statement';
COMMENT ON FUNCTION revoke_key(uuid, regrole, text) IS
    'Revokes a privilege granted with grant_key (implicit holders such as the creator keep theirs); admins of the key only';
COMMENT ON FUNCTION label_key(uuid, text) IS
    'Adds a classification label (pii, phi, pci, secret, ...) to a key: decrypting with it then needs a clearance for the label; admins of the key only';
COMMENT ON FUNCTION unlabel_key(uuid, text) IS
    'Removes a classification label from a key; admins of the key only';
COMMENT ON FUNCTION key_labels(uuid) IS
    'The classification labels of a key (encml.label_key)';
COMMENT ON FUNCTION grant_clearance(regrole, text) IS
    'Clears a role and, through inheritance, its members to decrypt with keys of a label; superuser or encml_key_admin; effective in every session at its next statement';
COMMENT ON FUNCTION revoke_clearance(regrole, text) IS
    'Withdraws a clearance given with grant_clearance; superuser or encml_key_admin';
COMMENT ON FUNCTION set_clearance_condition(text, text[], int4range, text[], text) IS
    'Sets the context conditions of a label, checked at every decryption with its keys: allowed client networks (cidr), hours of the day [from,to) in a time zone, allowed application_name values; all NULL removes them';
COMMENT ON FUNCTION auth_failures() IS
    'The (role, client address) pairs with failed logins in encml.auth_failure_window or locked now (needs shared_preload_libraries)';
COMMENT ON FUNCTION unlock(text, text) IS
    'Ends the login lockouts of a role (from one client address, or ''local'', or all) and forgets its failures; returns the pairs released; superuser or encml_security_admin';
COMMENT ON FUNCTION forward_security_events() IS
    'Moves security events raised before a database was connected (lockouts) or in databases without the extension from shared memory to this audit log; returns how many';
COMMENT ON FUNCTION security_summary(interval) IS
    'Security events per severity and kind over the last interval (forwards queued events first)';
COMMENT ON FUNCTION metrics(boolean) IS
    'Security and key metrics in the Prometheus text exposition format (decrypts per key, refusals, events, login failures and lockouts, decrypt rates, privacy budgets, keys overdue for rotation, audit chain status)';
COMMENT ON FUNCTION rotate_master_key() IS
    'Rewraps every data key wrapped under an older master key with the current one (first line of the provider); returns the count';


-- ML payloads: encrypted tensors
COMMENT ON FUNCTION encrypt_tensor(real[], uuid, text) IS
    'Encrypts a real[] as a tensor: dtype and shape in a clear, authenticated descriptor, values packed little-endian (4 bytes each) under AES-256-GCM';
COMMENT ON FUNCTION encrypt_tensor(double precision[], uuid, text) IS
    'Encrypts a float8[] as a tensor (8 bytes per value); dtype and shape in a clear, authenticated descriptor';
COMMENT ON FUNCTION encrypt_tensor(smallint[], uuid, text) IS
    'Encrypts a smallint[] as a tensor (2 bytes per value); dtype and shape in a clear, authenticated descriptor';
COMMENT ON FUNCTION encrypt_tensor(integer[], uuid, text) IS
    'Encrypts an integer[] as a tensor (4 bytes per value); dtype and shape in a clear, authenticated descriptor';
COMMENT ON FUNCTION decrypt_tensor_real(enc_bytea, text) IS
    'Decrypts a float32 tensor to real[] with its original shape and lower bounds; ERROR on another dtype';
COMMENT ON FUNCTION decrypt_tensor_float8(enc_bytea, text) IS
    'Decrypts a float64 tensor to float8[] with its original shape and lower bounds; ERROR on another dtype';
COMMENT ON FUNCTION decrypt_tensor_smallint(enc_bytea, text) IS
    'Decrypts an int16 tensor to smallint[] with its original shape and lower bounds; ERROR on another dtype';
COMMENT ON FUNCTION decrypt_tensor_int(enc_bytea, text) IS
    'Decrypts an int32 tensor to integer[] with its original shape and lower bounds; ERROR on another dtype';
COMMENT ON FUNCTION tensor_info(enc_bytea) IS
    'Dtype, shape, lower bounds, element count and key of an encrypted tensor, read from its clear descriptor without the key: unverified until the value is decrypted';

-- ML payloads: jsonb documents with encrypted fields
COMMENT ON FUNCTION encrypt_jsonb(jsonb, uuid, text[], text) IS
    'Replaces the values at the given paths (each a text[] literal such as ''{layers,*,bias}'' with * as wildcard, or a top-level key) by "encml:v1:" ciphertext strings bound to their path and the optional aad; the rest stays plain';
COMMENT ON FUNCTION decrypt_jsonb(jsonb, text) IS
    'Restores every encrypted value of a document the caller may use (values of destroyed keys or of another tenant stay encrypted); the aad must match';
COMMENT ON FUNCTION reencrypt_jsonb(jsonb, text) IS
    'Moves every encrypted value of a document to the current version of its key (others unchanged), for rotation; the aad must match';
COMMENT ON FUNCTION jsonb_is_encrypted(jsonb, text[]) IS
    'True when every value at the given paths is an encml ciphertext string, for CHECK constraints that keep fields out of clear text';

-- ML payloads: encrypted large objects (checkpoints)
COMMENT ON FUNCTION lo_encrypt(oid, uuid, integer) IS
    'Encrypts a large object into a new one chunk by chunk (STREAM over AES-256-GCM, per-object key), in memory bounded by the chunk size; returns the new oid';
COMMENT ON FUNCTION lo_decrypt(oid) IS
    'Decrypts an encrypted large object into a new one, writing only authenticated chunks; truncation, reordering, swapped or removed chunks are errors';
COMMENT ON FUNCTION lo_reencrypt(oid) IS
    'Re-encrypts an encrypted large object under the current version of its key into a new one (returns the source if already current), for rotation';
COMMENT ON FUNCTION lo_decrypt_range(oid, bigint, integer) IS
    'Up to length plaintext bytes from offset of an encrypted large object (fewer at its end), decrypting only the chunks that hold them';
COMMENT ON FUNCTION lo_encryption_info(oid) IS
    'Key, plaintext size and chunking of an encrypted large object, from its clear header (unverified until a chunk is decrypted)';

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
-- Masking functions (src/api/masking/)
COMMENT ON FUNCTION mask_partial(text, integer, integer, text) IS
    'Masks all but the first keep_prefix and last keep_suffix characters with pad, character by character (multi-byte safe); never shows more than half of the value';
COMMENT ON FUNCTION mask_pan(text, integer) IS
    'Card number showing only its last four digits (and the first keep_first, at most 6); separators kept';
COMMENT ON FUNCTION mask_email(text) IS
    'E-mail address with only the first character of the local part and of the domain, and the top-level domain, shown';
COMMENT ON FUNCTION mask_phone(text, integer) IS
    'Phone number showing only its last keep_last digits; formatting kept';
COMMENT ON FUNCTION mask_date_to_year(date) IS
    'The first day of the date''s year (generalization to the year)';
COMMENT ON FUNCTION apply_masking(regclass, boolean) IS
    'Creates or replaces the security-barrier view <table>_masked showing each ruled column masked unless the reader is a superuser or in its unmasked roles (encrypted columns decrypted for those); with stored => true the masks of plain columns are precomputed in generated columns <col>__masked (table rewrite; faster reads); returns the view''s name';
-- GDPR data-subject rights (src/api/subjects/, src/api/consent.rs, docs/gdpr.md)
COMMENT ON FUNCTION register_subject_column(regclass, text, uuid, text, text) IS
    'Declares a column holding a data subject''s identifier (plain, det_text under id_key, or an FF1 token under id_key over id_alphabet) and what subject_forget does to the rows (delete or anonymize); the table''s owner only';
COMMENT ON FUNCTION unregister_subject_column(regclass, text) IS
    'Removes a subject-identifier registration; true if there was one; the table''s owner only';
COMMENT ON FUNCTION subject_key(text, text) IS
    'The data subject''s own key for a purpose, made on first use and owned by the extension; usable by encml_subject_processor members; destroyed by subject_forget';
COMMENT ON FUNCTION subject_export(text) IS
    'Right of access and portability: every registered row of the subject (decrypted where the caller may) and its consent history as jsonb (format encml.subject_export/1, docs/formats.md); audited';
COMMENT ON FUNCTION subject_forget(text) IS
    'Right to erasure: deletes or anonymizes the subject''s rows in registered tables, destroys its keys and consent records, logs an erasure record without its data; returns the receipt (encml_dpo)';
COMMENT ON FUNCTION in_subject_erasure() IS
    'True in code that a subject erasure runs (an owner''s trigger on a registered table), for triggers that must leave its statements alone: an updated_at stamp fails an anonymizing erasure';
COMMENT ON FUNCTION record_consent(text, text, boolean, text) IS
    'Records a consent decision (grant or withdrawal) of a subject for a purpose, kept in the history with who, when and the source; returns its id';
COMMENT ON FUNCTION has_consent(text, text) IS
    'Whether the subject''s latest consent decision for the purpose is a grant (false without one); cached per session, fast enough for RLS policies';
-- Format-preserving encryption and card-number tokens (src/api/tokenize.rs)
COMMENT ON FUNCTION fpe_encrypt(text, uuid, text, text) IS
    'FF1 (NIST SP 800-38G, AES-256) of a value over an alphabet under a key of purpose fpe: same length and alphabet, deterministic; refuses domains below 10^6 (docs/tokenization.md)';
COMMENT ON FUNCTION fpe_decrypt(text, uuid, text, text) IS
    'Inverse of fpe_encrypt (same key, alphabet and tweak); needs the decrypt privilege on the key';
COMMENT ON FUNCTION tokenize_pan(text, uuid, integer) IS
    'Card-number token: FF1 of the hidden digits, keeping length, separators, the last four and the first keep_first (0 or 6) digits; fails the Luhn check';
COMMENT ON FUNCTION detokenize_pan(text, uuid, integer) IS
    'The card number of a tokenize_pan token (same key and keep_first); needs the decrypt privilege on the key';
COMMENT ON FUNCTION retokenize_pan(text, uuid, uuid, integer) IS
    'Moves a card-number token from old_key to new_key (rotation: tokens carry no key version)';
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

-- Order-revealing types (ore_int8, ore_float8, ore_timestamptz)
COMMENT ON FUNCTION ore_int8_in(cstring) IS 'ore_int8 text input: base64 of the binary value; structure and MAC checked (encml.verify_ore_input)';
COMMENT ON FUNCTION ore_int8_out(ore_int8) IS 'ore_int8 text output: base64 of the binary value';
COMMENT ON FUNCTION ore_int8_recv(internal) IS 'ore_int8 binary input; structure and MAC checked (encml.verify_ore_input)';
COMMENT ON FUNCTION ore_int8_send(ore_int8) IS 'ore_int8 binary output: the value''s bytes';
COMMENT ON FUNCTION ore_int8_from_bytea(bytea) IS 'Cast bytea to ore_int8 after checking its structure and MAC (encml.verify_ore_input)';
COMMENT ON FUNCTION ore_int8_cmp(ore_int8, ore_int8) IS 'btree support: order by key id, key version, then plaintext order';
COMMENT ON FUNCTION ore_int8_lt(ore_int8, ore_int8) IS 'Less than (plaintext order within one key version; by key and version across them)';
COMMENT ON FUNCTION ore_int8_le(ore_int8, ore_int8) IS 'Less than or equal (plaintext order within one key version)';
COMMENT ON FUNCTION ore_int8_eq(ore_int8, ore_int8) IS 'Equal plaintexts under the same key version';
COMMENT ON FUNCTION ore_int8_ne(ore_int8, ore_int8) IS 'Not equal';
COMMENT ON FUNCTION ore_int8_ge(ore_int8, ore_int8) IS 'Greater than or equal (plaintext order within one key version)';
COMMENT ON FUNCTION ore_int8_gt(ore_int8, ore_int8) IS 'Greater than (plaintext order within one key version)';
COMMENT ON FUNCTION ore_int8_sortsupport(internal) IS 'btree sort support: compares stored values without a function call each';
COMMENT ON FUNCTION ore_int8_smaller(ore_int8, ore_int8) IS 'The smaller of two values (min aggregate)';
COMMENT ON FUNCTION ore_int8_larger(ore_int8, ore_int8) IS 'The larger of two values (max aggregate)';
COMMENT ON FUNCTION key_id(ore_int8) IS 'The key id in a ore_int8 header (not authenticated until decryption)';
COMMENT ON FUNCTION key_version(ore_int8) IS 'The key version in a ore_int8 header (not authenticated until decryption)';
COMMENT ON FUNCTION ore_encrypt(bigint, uuid) IS 'Order-revealing encryption (CLWW) of a bigint under the current version of a key of purpose ore';
COMMENT ON FUNCTION ore_decrypt(ore_int8) IS 'Decrypts a ore_int8 (verifies its HMAC first)';
COMMENT ON FUNCTION ore_reencrypt(ore_int8) IS 'Re-encrypts a ore_int8 under the current version of its key (unchanged if already current)';
COMMENT ON FUNCTION ore_float8_in(cstring) IS 'ore_float8 text input: base64 of the binary value; structure and MAC checked (encml.verify_ore_input)';
COMMENT ON FUNCTION ore_float8_out(ore_float8) IS 'ore_float8 text output: base64 of the binary value';
COMMENT ON FUNCTION ore_float8_recv(internal) IS 'ore_float8 binary input; structure and MAC checked (encml.verify_ore_input)';
COMMENT ON FUNCTION ore_float8_send(ore_float8) IS 'ore_float8 binary output: the value''s bytes';
COMMENT ON FUNCTION ore_float8_from_bytea(bytea) IS 'Cast bytea to ore_float8 after checking its structure and MAC (encml.verify_ore_input)';
COMMENT ON FUNCTION ore_float8_cmp(ore_float8, ore_float8) IS 'btree support: order by key id, key version, then plaintext order';
COMMENT ON FUNCTION ore_float8_lt(ore_float8, ore_float8) IS 'Less than (plaintext order within one key version; by key and version across them)';
COMMENT ON FUNCTION ore_float8_le(ore_float8, ore_float8) IS 'Less than or equal (plaintext order within one key version)';
COMMENT ON FUNCTION ore_float8_eq(ore_float8, ore_float8) IS 'Equal plaintexts under the same key version';
COMMENT ON FUNCTION ore_float8_ne(ore_float8, ore_float8) IS 'Not equal';
COMMENT ON FUNCTION ore_float8_ge(ore_float8, ore_float8) IS 'Greater than or equal (plaintext order within one key version)';
COMMENT ON FUNCTION ore_float8_gt(ore_float8, ore_float8) IS 'Greater than (plaintext order within one key version)';
COMMENT ON FUNCTION ore_float8_sortsupport(internal) IS 'btree sort support: compares stored values without a function call each';
COMMENT ON FUNCTION ore_float8_smaller(ore_float8, ore_float8) IS 'The smaller of two values (min aggregate)';
COMMENT ON FUNCTION ore_float8_larger(ore_float8, ore_float8) IS 'The larger of two values (max aggregate)';
COMMENT ON FUNCTION key_id(ore_float8) IS 'The key id in a ore_float8 header (not authenticated until decryption)';
COMMENT ON FUNCTION key_version(ore_float8) IS 'The key version in a ore_float8 header (not authenticated until decryption)';
COMMENT ON FUNCTION ore_encrypt(double precision, uuid) IS 'Order-revealing encryption (CLWW) of a double precision under the current version of a key of purpose ore';
COMMENT ON FUNCTION ore_decrypt(ore_float8) IS 'Decrypts a ore_float8 (verifies its HMAC first)';
COMMENT ON FUNCTION ore_reencrypt(ore_float8) IS 'Re-encrypts a ore_float8 under the current version of its key (unchanged if already current)';
COMMENT ON FUNCTION ore_timestamptz_in(cstring) IS 'ore_timestamptz text input: base64 of the binary value; structure and MAC checked (encml.verify_ore_input)';
COMMENT ON FUNCTION ore_timestamptz_out(ore_timestamptz) IS 'ore_timestamptz text output: base64 of the binary value';
COMMENT ON FUNCTION ore_timestamptz_recv(internal) IS 'ore_timestamptz binary input; structure and MAC checked (encml.verify_ore_input)';
COMMENT ON FUNCTION ore_timestamptz_send(ore_timestamptz) IS 'ore_timestamptz binary output: the value''s bytes';
COMMENT ON FUNCTION ore_timestamptz_from_bytea(bytea) IS 'Cast bytea to ore_timestamptz after checking its structure and MAC (encml.verify_ore_input)';
COMMENT ON FUNCTION ore_timestamptz_cmp(ore_timestamptz, ore_timestamptz) IS 'btree support: order by key id, key version, then plaintext order';
COMMENT ON FUNCTION ore_timestamptz_lt(ore_timestamptz, ore_timestamptz) IS 'Less than (plaintext order within one key version; by key and version across them)';
COMMENT ON FUNCTION ore_timestamptz_le(ore_timestamptz, ore_timestamptz) IS 'Less than or equal (plaintext order within one key version)';
COMMENT ON FUNCTION ore_timestamptz_eq(ore_timestamptz, ore_timestamptz) IS 'Equal plaintexts under the same key version';
COMMENT ON FUNCTION ore_timestamptz_ne(ore_timestamptz, ore_timestamptz) IS 'Not equal';
COMMENT ON FUNCTION ore_timestamptz_ge(ore_timestamptz, ore_timestamptz) IS 'Greater than or equal (plaintext order within one key version)';
COMMENT ON FUNCTION ore_timestamptz_gt(ore_timestamptz, ore_timestamptz) IS 'Greater than (plaintext order within one key version)';
COMMENT ON FUNCTION ore_timestamptz_sortsupport(internal) IS 'btree sort support: compares stored values without a function call each';
COMMENT ON FUNCTION ore_timestamptz_smaller(ore_timestamptz, ore_timestamptz) IS 'The smaller of two values (min aggregate)';
COMMENT ON FUNCTION ore_timestamptz_larger(ore_timestamptz, ore_timestamptz) IS 'The larger of two values (max aggregate)';
COMMENT ON FUNCTION key_id(ore_timestamptz) IS 'The key id in a ore_timestamptz header (not authenticated until decryption)';
COMMENT ON FUNCTION key_version(ore_timestamptz) IS 'The key version in a ore_timestamptz header (not authenticated until decryption)';
COMMENT ON FUNCTION ore_encrypt(timestamptz, uuid) IS 'Order-revealing encryption (CLWW) of a timestamptz under the current version of a key of purpose ore';
COMMENT ON FUNCTION ore_decrypt(ore_timestamptz) IS 'Decrypts a ore_timestamptz (verifies its HMAC first)';
COMMENT ON FUNCTION ore_reencrypt(ore_timestamptz) IS 'Re-encrypts a ore_timestamptz under the current version of its key (unchanged if already current)';

-- Integer arguments: without these, ore_encrypt(50000, k) would resolve to the float8 overload
-- (float8 is the preferred numeric type) and give an ore_float8. Inlined SQL wrappers.
CREATE FUNCTION ore_encrypt(value integer, key uuid) RETURNS ore_int8
    LANGUAGE sql STABLE PARALLEL SAFE
    AS 'SELECT encml.ore_encrypt($1::bigint, $2)';
CREATE FUNCTION ore_encrypt(value smallint, key uuid) RETURNS ore_int8
    LANGUAGE sql STABLE PARALLEL SAFE
    AS 'SELECT encml.ore_encrypt($1::bigint, $2)';
COMMENT ON FUNCTION ore_encrypt(integer, uuid) IS 'Order-revealing encryption of an integer, as bigint (ore_int8)';
COMMENT ON FUNCTION ore_encrypt(smallint, uuid) IS 'Order-revealing encryption of a smallint, as bigint (ore_int8)';

-- Tenants and the tenant context
COMMENT ON FUNCTION create_tenant(text) IS 'Creates a tenant (superuser or encml_tenant_admin)';
COMMENT ON FUNCTION drop_tenant(text) IS 'Drops a tenant and its memberships (superuser or encml_tenant_admin)';
COMMENT ON FUNCTION grant_tenant(text, regrole) IS 'Lets a role (and roles inheriting from it) act for a tenant (superuser or encml_tenant_admin)';
COMMENT ON FUNCTION revoke_tenant(text, regrole) IS 'Takes back a role''s membership of a tenant (superuser or encml_tenant_admin)';
COMMENT ON FUNCTION set_tenant(text, boolean) IS
    'Sets the current tenant if the calling role acts for it (else 42501, unchanged); is_local scopes it to the transaction';
COMMENT ON FUNCTION current_tenant() IS 'The current tenant (NULL when unset); cheap and STABLE, for RLS policies';
COMMENT ON FUNCTION reset_tenant() IS 'Clears the current tenant';
COMMENT ON FUNCTION my_tenants() IS 'The tenants the calling role may act for';
COMMENT ON FUNCTION tenant_key(text) IS
    'The current tenant''s key for a purpose (default aead), made on first use; it belongs to the tenant, not to the member who called';
COMMENT ON FUNCTION forget_tenant(text) IS
    'GDPR erasure / off-boarding: crypto-shreds every key of a tenant and drops its memberships; returns the keys destroyed';
COMMENT ON FUNCTION create_tenant_schema(text, text) IS
    'Schema-per-tenant: creates a schema owned by encml_tenant_admin with USAGE for the tenant''s members only; returns its name';

-- Auditing (sql/schema/audit.sql, src/audit/)
COMMENT ON FUNCTION audit_enable(regclass, text[], boolean) IS
    'Audits INSERT, UPDATE, DELETE and TRUNCATE of a table (and the tables under it) into encml.audit_log, and with reads => true each statement reading it (library preloaded); listed and sensitive-classified columns are redacted to keyed hashes (table owner)';
COMMENT ON FUNCTION audit_disable(regclass) IS 'Stops auditing a table; the stop is logged (table owner)';
COMMENT ON FUNCTION classify(regclass, text, text) IS
    'Labels a column (pii, phi, pci, secret, ...); NULL removes the label; sensitive columns of audited tables are redacted (table owner)';
COMMENT ON FUNCTION audit_seal() IS 'Chains the committed unsealed audit rows (HMAC-SHA256); returns how many were sealed (auditors)';
COMMENT ON FUNCTION audit_head() IS
    'Seals, then returns the chain head (id, MAC, seq) for an external system to record as a witness and pass to audit_verify(seq, mac) (auditors)';
COMMENT ON FUNCTION audit_verify(bigint, text) IS
    'Verifies the audit chain as audit_verify() does, and that it passes through a head recorded outside the database by audit_head() (seq, mac), also once that head is purged (auditors)';
COMMENT ON FUNCTION audit_verify_full() IS
    'Verifies the whole audit chain from its start (not from the latest checkpoint), and leaves a checkpoint for the next audit_verify() (auditors)';
COMMENT ON FUNCTION audit_verify(bigint) IS
    'Verifies the audit chain from the latest checkpoint (or from a row id), the newest seal witness and the audit state (auditors)';
COMMENT ON FUNCTION audit_state() IS
    'Deviations from what auditing needs: audit triggers of audited tables (and the tables under them) missing, disabled, replica-only, conditional, narrowed or redacting other columns; the extension''s event triggers missing or not ENABLE ALWAYS (auditors)';
COMMENT ON FUNCTION audit_purge(timestamptz) IS
    'Removes sealed audit rows logged before a time; an anchor row keeps the rest verifiable; logged (superuser or encml_audit_admin)';
COMMENT ON FUNCTION compliance_report() IS
    'Checks the live database against the security baseline (TLS floor, pg_hba.conf lines and connections in the clear, service roles without client certificates, passwords, master key source, key rotation and its policies, compromised key versions, tenant isolation, sensitive columns encrypted and audited, audit chain, destroyed keys still referenced) (auditors)';
COMMENT ON FUNCTION audit_log_guard() IS 'Trigger keeping encml.audit_log and encml.audit_witness append-only';
COMMENT ON FUNCTION audited_tables_changed() IS 'Trigger telling every backend that encml.audited_tables changed (its cache of audited relations)';
COMMENT ON FUNCTION column_classes_resolve() IS 'Trigger of encml.column_classes: a row naming its column takes that column''s attribute number (a restore), a row without a name gets it';
COMMENT ON FUNCTION audit_row_trigger() IS 'Trigger of audited tables (arguments: columns to redact)';

-- Homomorphic aggregation (sql/schema/fhe.sql, src/api/fhe.rs)
COMMENT ON FUNCTION fhe_vector_in(cstring) IS 'fhe_vector text input: base64 of the binary value, header and length checked';
COMMENT ON FUNCTION fhe_vector_out(fhe_vector) IS 'fhe_vector text output: base64 of the binary value';
COMMENT ON FUNCTION fhe_vector_recv(internal) IS 'fhe_vector binary input, header and length checked';
COMMENT ON FUNCTION fhe_vector_send(fhe_vector) IS 'fhe_vector binary output: the value''s bytes';
COMMENT ON FUNCTION fhe_vector_from_bytea(bytea) IS 'Cast bytea to fhe_vector after a header and length check (what the pg_encrypt_ml-fhe tool writes)';
COMMENT ON FUNCTION fhe_vector_info(fhe_vector) IS
    'Header of an fhe_vector: key set, dimension, number of vectors summed, fixed-point encoding (unauthenticated)';
COMMENT ON FUNCTION fhe_vector_sum_trans(fhe_sum_state, fhe_vector) IS 'fhe_vector_sum transition: adds a ciphertext (word-wise), refusing one seen before';
COMMENT ON FUNCTION fhe_vector_sum_combine(fhe_sum_state, fhe_sum_state) IS 'fhe_vector_sum combine function (parallel query, Citus shards): refuses a ciphertext counted in both states';
COMMENT ON FUNCTION fhe_vector_sum_final(fhe_sum_state) IS 'fhe_vector_sum final function: the encrypted sum';
COMMENT ON FUNCTION fhe_sum_state_in(cstring) IS 'fhe_sum_state text input: "es1:" and the serialized state in hex (validated)';
COMMENT ON FUNCTION fhe_sum_state_out(fhe_sum_state) IS 'fhe_sum_state text output: "es1:" and the serialized state in hex';
COMMENT ON AGGREGATE fhe_vector_sum(fhe_vector) IS
    'Homomorphic sum of encrypted vectors (same key set, dimension and encoding); no key needed, no bootstrapping; the same ciphertext twice is an error';
COMMENT ON FUNCTION fhe_register_keyset(text, bytea) IS
    'Registers an FHE key set from its public material (pg_encrypt_ml-fhe keygen); returns its id (encml_fhe_admin)';
COMMENT ON FUNCTION fhe_register_keyset(text, bytea, bytea) IS
    'Registers a vector key set whose rounds take proven updates only, with the CRS of its proofs (pg_encrypt_ml-fhe keygen --proofs; checked here); returns its id (encml_fhe_admin)';
COMMENT ON FUNCTION fhe_keyset_loads() IS 'How many times this backend loaded FHE key-set material (each key set once, then cached)';
COMMENT ON FUNCTION fhe_keygen() IS
    'TEST AND DEMO ONLY (needs encml.fhe_client_functions): a fresh key set (public material, secret key) as pg_encrypt_ml-fhe keygen writes it';
COMMENT ON FUNCTION fhe_encrypt(double precision[], uuid, integer, integer, integer) IS
    'TEST AND DEMO ONLY (needs encml.fhe_client_functions): encrypts values under a key set''s public key as the client tool does';
COMMENT ON FUNCTION fhe_decrypt(fhe_vector, bytea) IS
    'TEST AND DEMO ONLY (needs encml.fhe_client_functions): decrypts with a secret key passed in, which then has been inside the server';
COMMENT ON FUNCTION fhe_uint32_in(cstring) IS 'fhe_uint32 text input: base64 of the binary value, header checked';
COMMENT ON FUNCTION fhe_uint32_out(fhe_uint32) IS 'fhe_uint32 text output: base64 of the binary value';
COMMENT ON FUNCTION fhe_uint32_recv(internal) IS 'fhe_uint32 binary input, header checked';
COMMENT ON FUNCTION fhe_uint32_send(fhe_uint32) IS 'fhe_uint32 binary output: the value''s bytes';
COMMENT ON FUNCTION fhe_uint32_from_bytea(bytea) IS 'Cast bytea to fhe_uint32 after a header check';
COMMENT ON FUNCTION fhe_bool_in(cstring) IS 'fhe_bool text input: base64 of the binary value, header checked';
COMMENT ON FUNCTION fhe_bool_out(fhe_bool) IS 'fhe_bool text output: base64 of the binary value';
COMMENT ON FUNCTION fhe_bool_recv(internal) IS 'fhe_bool binary input, header checked';
COMMENT ON FUNCTION fhe_bool_send(fhe_bool) IS 'fhe_bool binary output: the value''s bytes';
COMMENT ON FUNCTION fhe_bool_from_bytea(bytea) IS 'Cast bytea to fhe_bool after a header check';
COMMENT ON FUNCTION fhe_add(fhe_uint32, fhe_uint32) IS 'Homomorphic a + b (wrapping at 2^32) under the values'' registered uint32 key set';
COMMENT ON FUNCTION fhe_add(fhe_uint32, bigint) IS 'Homomorphic a + a clear value in 0..2^32-1 (wrapping at 2^32)';
COMMENT ON FUNCTION fhe_compare(fhe_uint32, text, fhe_uint32) IS 'Encrypted result of a op b, op one of =, <>, <, <=, >, >=';
COMMENT ON FUNCTION fhe_compare(fhe_uint32, text, bigint) IS 'Encrypted result of a op a clear value, op one of =, <>, <, <=, >, >=';
COMMENT ON FUNCTION fhe_sum_trans(internal, fhe_uint32) IS 'fhe_sum transition: collects a ciphertext';
COMMENT ON FUNCTION fhe_sum_combine(internal, internal) IS 'fhe_sum combine function (parallel aggregation)';
COMMENT ON FUNCTION fhe_sum_serialize(internal) IS 'fhe_sum state serialization (parallel aggregation)';
COMMENT ON FUNCTION fhe_sum_deserialize(bytea, internal) IS 'fhe_sum state deserialization (parallel aggregation)';
COMMENT ON FUNCTION fhe_sum_final(internal) IS 'fhe_sum final function: one tfhe-rs parallel Sum over the collected ciphertexts';
COMMENT ON AGGREGATE fhe_sum(fhe_uint32) IS
    'Homomorphic sum of fhe_uint32 values (wrapping at 2^32) through tfhe-rs''s parallel Sum; bootstraps, so for tens of values, not millions';
COMMENT ON FUNCTION fhe_keygen_uint32() IS
    'TEST AND DEMO ONLY (needs encml.fhe_client_functions): a fresh uint32 key set (server material, client key)';
COMMENT ON FUNCTION fhe_encrypt_uint32(bigint, bytea) IS
    'TEST AND DEMO ONLY (needs encml.fhe_client_functions): encrypts a value with a client key passed in';
COMMENT ON FUNCTION fhe_decrypt_uint32(fhe_uint32, bytea) IS
    'TEST AND DEMO ONLY (needs encml.fhe_client_functions): decrypts with a client key passed in';
COMMENT ON FUNCTION fhe_decrypt_bool(fhe_bool, bytea) IS
    'TEST AND DEMO ONLY (needs encml.fhe_client_functions): decrypts an encrypted boolean with a client key passed in';
COMMENT ON FUNCTION fhe_open_round(uuid, integer, integer, integer, integer, integer, boolean, regrole) IS
    'Opens an aggregation round for vectors of dim values with its fixed-point encoding and contribution limits; proven updates only unless unproven => true on a key set without CRS; decryptor: the only role its sum is released to; returns its id (encml_fhe_admin)';
COMMENT ON FUNCTION fhe_submit(bigint, fhe_vector) IS
    'Submits one encrypted update to an open unproven round (once per ciphertext); returns the round''s count (encml_fhe_contributor)';
COMMENT ON FUNCTION fhe_submit_proven(bigint, bytea) IS
    'Submits a proven update (pg_encrypt_ml-fhe encrypt --crs) to an open round, verified before it is stored; returns the round''s count (encml_fhe_contributor)';
COMMENT ON FUNCTION fhe_close_round(bigint) IS
    'Closes a round: sums its updates once and discards them; refuses below min_contributions (encml_fhe_admin)';
COMMENT ON FUNCTION fhe_close_round(bigint, double precision, double precision) IS
    'Closes a proven round with a differentially private sum: discrete Gaussian noise for (dp_epsilon, dp_delta) at L2 sensitivity 2^(value_bits-1)*sqrt(dim), added encrypted; each read of the sum is charged to the reader (encml_fhe_admin)';
COMMENT ON FUNCTION fhe_round_sum(bigint) IS
    'The encrypted sum of a closed round, to its decryptor only: the decrypting party''s only access to round data; a differentially private sum charges the reader''s privacy budget at each read (encml_fhe_decryptor)';

-- Differential privacy (sql/schema/dp.sql)
COMMENT ON FUNCTION set_privacy_budget(regrole, double precision, double precision, text, text) IS
    'Sets an analyst''s total privacy budget (epsilon, delta) in a scope, composed by accounting ''pure'', ''approx'' (epsilon and delta add up) or ''zcdp'' (rho adds up); what was spent stays spent (privacy admins)';
COMMENT ON FUNCTION zcdp_epsilon(double precision, double precision) IS
    'The epsilon that a total rho of zero-concentrated DP amounts to at delta (OpenDP''s conversion)';
COMMENT ON FUNCTION privacy_budget_remaining(regrole, text) IS
    'The epsilon an analyst has left in a scope (NULL without a budget); analysts read their own';
DO $$
DECLARE f regprocedure; what text;
BEGIN
    FOR f, what IN
        SELECT p.oid, CASE
            WHEN p.proname LIKE 'dp\_state\_%' THEN 'dp_state text input/output (docs/formats.md)'
            WHEN p.proname LIKE '%\_trans' THEN 'dp aggregate transition (exact state; refuses calls outside its aggregate)'
            WHEN p.proname LIKE '%\_combine' THEN 'dp aggregate combine function (parallel aggregation)'
            WHEN p.proname LIKE '%\_serialize' THEN 'dp aggregate state serialization (parallel aggregation)'
            WHEN p.proname LIKE '%\_deserialize' THEN 'dp aggregate state deserialization (parallel aggregation)'
            WHEN p.proname LIKE '%\_final' THEN 'dp aggregate final function: records the privacy charge, then adds noise once'
            END
          FROM pg_catalog.pg_proc p
         WHERE p.pronamespace = 'encml'::regnamespace AND p.proname LIKE 'dp\_%' AND p.prokind = 'f'
    LOOP
        EXECUTE pg_catalog.format('COMMENT ON FUNCTION %s IS %L', f, what);
    END LOOP;
END
$$;
-- (After the loop above, which names the dp aggregates' support functions.)
COMMENT ON FUNCTION dp_summary_in(cstring) IS 'dp_summary text input: only a summary sealed by a server with these master keys (docs/formats.md)';
COMMENT ON FUNCTION dp_summary_out(dp_summary) IS 'dp_summary text output: sealed under the master key (docs/formats.md)';
COMMENT ON FUNCTION dp_protect(regclass, text, integer) IS
    'Makes a table DP-only (its owner; library preloaded): roles that neither own it nor are privacy admins read it only through dp aggregates bounded by the privacy unit column; forces row-level security with the encml_dp_gate policy';
COMMENT ON FUNCTION dp_unprotect(regclass) IS
    'Makes a DP-only table ordinary again (its owner), restoring its row-level security settings';
COMMENT ON FUNCTION dp_gate() IS
    'Condition of the encml_dp_gate policy of DP-only tables: true where the library is preloaded (so statements reading them are checked)';
COMMENT ON FUNCTION dp_public_groups_trans(boolean, anyelement, anyarray) IS 'dp_public_groups transition: whether every key of the group is in the public list';
COMMENT ON AGGREGATE dp_partition(double precision, double precision) IS 'Partition selection for HAVING: true when the group''s row count plus discrete Laplace noise passes the threshold that gives (epsilon, delta); charges them once per execution';
COMMENT ON AGGREGATE dp_partition(double precision, double precision, text, integer) IS 'Partition selection for HAVING with a privacy unit: true when the group''s count of units plus discrete Laplace noise passes the threshold for (epsilon, delta) / max_groups_contributed; the query is rewritten so that each unit''s rows reach at most max_groups_contributed groups, and every dp aggregate of the query adds its noise for a max_groups_contributed-th of its loss; charges (epsilon, delta) once per execution';
COMMENT ON AGGREGATE dp_public_groups(anyelement, anyarray) IS 'Partition selection for HAVING over a public list of keys: true when the group key is in the list (privacy admins; the list must not come from the data)';
COMMENT ON AGGREGATE dp_count(anyelement, double precision) IS 'Noisy count of non-NULL values (discrete Laplace, sensitivity 1); charges epsilon';
COMMENT ON AGGREGATE dp_count(anyelement, double precision, double precision) IS 'Noisy count of non-NULL values; discrete Gaussian when delta > 0; charges (epsilon, delta)';
COMMENT ON AGGREGATE dp_count(anyelement, double precision, double precision, text, integer) IS 'Noisy count with at most max_rows_per_unit rows per privacy unit (sensitivity max_rows_per_unit)';
COMMENT ON AGGREGATE dp_count_rows(double precision) IS 'Noisy count of rows (discrete Laplace); charges epsilon';
COMMENT ON AGGREGATE dp_count_rows(double precision, double precision) IS 'Noisy count of rows; discrete Gaussian when delta > 0';
COMMENT ON AGGREGATE dp_count_rows(double precision, double precision, text, integer) IS 'Noisy count of rows with at most max_rows_per_unit rows per privacy unit';
COMMENT ON AGGREGATE dp_sum(double precision, double precision, double precision, double precision) IS 'Noisy sum of values clamped to [lower, upper] (Laplace, sensitivity max(|lower|,|upper|)); charges epsilon';
COMMENT ON AGGREGATE dp_sum(double precision, double precision, double precision, double precision, double precision) IS 'Noisy clamped sum; Gaussian when delta > 0';
COMMENT ON AGGREGATE dp_sum(double precision, double precision, double precision, double precision, double precision, text, integer) IS 'Noisy clamped sum with at most max_rows_per_unit rows per privacy unit';
COMMENT ON AGGREGATE dp_sum(bigint, bigint, bigint, double precision) IS 'Noisy sum of bigints clamped to [lower, upper] (discrete Laplace); charges epsilon';
COMMENT ON AGGREGATE dp_sum(bigint, bigint, bigint, double precision, double precision) IS 'Noisy clamped bigint sum; discrete Gaussian when delta > 0';
COMMENT ON AGGREGATE dp_sum(bigint, bigint, bigint, double precision, double precision, text, integer) IS 'Noisy clamped bigint sum with at most max_rows_per_unit rows per privacy unit';
COMMENT ON AGGREGATE dp_avg(double precision, double precision, double precision, double precision) IS 'Noisy average: noisy clamped sum / noisy count, each with half the epsilon, clamped to the bounds';
COMMENT ON AGGREGATE dp_avg(double precision, double precision, double precision, double precision, double precision) IS 'Noisy average; Gaussian when delta > 0 (half of epsilon and delta each)';
COMMENT ON AGGREGATE dp_avg(double precision, double precision, double precision, double precision, double precision, text, integer) IS 'Noisy average with at most max_rows_per_unit rows per privacy unit';
COMMENT ON AGGREGATE dp_percentile(double precision, double precision, double precision, double precision, double precision) IS 'Noisy percentile (0 to 1) of values clamped to [lower, upper]: one of 1024 evenly spaced candidates, chosen by OpenDP''s noisy max over quantile scores (pure epsilon-DP; delta must be 0); charges epsilon';
COMMENT ON AGGREGATE dp_percentile(double precision, double precision, double precision, double precision, double precision, double precision) IS 'Noisy percentile (0 to 1) of values clamped to [lower, upper]: one of 1024 evenly spaced candidates, chosen by OpenDP''s noisy max over quantile scores (pure epsilon-DP; delta must be 0); charges epsilon (the delta form: Gaussian when delta > 0; percentiles take no delta)';
COMMENT ON AGGREGATE dp_percentile(double precision, double precision, double precision, double precision, double precision, double precision, text, integer) IS 'Noisy percentile (0 to 1) of values clamped to [lower, upper]: one of 1024 evenly spaced candidates, chosen by OpenDP''s noisy max over quantile scores (pure epsilon-DP; delta must be 0); charges epsilon (at most max_rows_per_unit rows per privacy unit)';
COMMENT ON AGGREGATE dp_percentiles(double precision, double precision[], double precision, double precision, double precision) IS 'Noisy percentiles (an array of 0 to 1) of values clamped to [lower, upper], epsilon split evenly between them; charges epsilon';
COMMENT ON AGGREGATE dp_percentiles(double precision, double precision[], double precision, double precision, double precision, double precision) IS 'Noisy percentiles (an array of 0 to 1) of values clamped to [lower, upper], epsilon split evenly between them; charges epsilon (the delta form: Gaussian when delta > 0; percentiles take no delta)';
COMMENT ON AGGREGATE dp_percentiles(double precision, double precision[], double precision, double precision, double precision, double precision, text, integer) IS 'Noisy percentiles (an array of 0 to 1) of values clamped to [lower, upper], epsilon split evenly between them; charges epsilon (at most max_rows_per_unit rows per privacy unit)';
COMMENT ON AGGREGATE dp_median(double precision, double precision, double precision, double precision) IS 'Noisy median of values clamped to [lower, upper] (dp_percentile at 0.5); charges epsilon';
COMMENT ON AGGREGATE dp_median(double precision, double precision, double precision, double precision, double precision) IS 'Noisy median of values clamped to [lower, upper] (dp_percentile at 0.5); charges epsilon (the delta form: Gaussian when delta > 0; percentiles take no delta)';
COMMENT ON AGGREGATE dp_median(double precision, double precision, double precision, double precision, double precision, text, integer) IS 'Noisy median of values clamped to [lower, upper] (dp_percentile at 0.5); charges epsilon (at most max_rows_per_unit rows per privacy unit)';
COMMENT ON AGGREGATE dp_var_pop(double precision, double precision, double precision, double precision) IS 'Noisy population variance of values clamped to [lower, upper]: noisy count, sum and sum of squares of centred values, a third of epsilon (and delta) each; charges epsilon';
COMMENT ON AGGREGATE dp_var_pop(double precision, double precision, double precision, double precision, double precision) IS 'Noisy population variance of values clamped to [lower, upper]: noisy count, sum and sum of squares of centred values, a third of epsilon (and delta) each; charges epsilon (the delta form: Gaussian when delta > 0)';
COMMENT ON AGGREGATE dp_var_pop(double precision, double precision, double precision, double precision, double precision, text, integer) IS 'Noisy population variance of values clamped to [lower, upper]: noisy count, sum and sum of squares of centred values, a third of epsilon (and delta) each; charges epsilon (at most max_rows_per_unit rows per privacy unit)';
COMMENT ON AGGREGATE dp_stddev_pop(double precision, double precision, double precision, double precision) IS 'Noisy population standard deviation (the square root of dp_var_pop''s release); charges epsilon';
COMMENT ON AGGREGATE dp_stddev_pop(double precision, double precision, double precision, double precision, double precision) IS 'Noisy population standard deviation (the square root of dp_var_pop''s release); charges epsilon (the delta form: Gaussian when delta > 0)';
COMMENT ON AGGREGATE dp_stddev_pop(double precision, double precision, double precision, double precision, double precision, text, integer) IS 'Noisy population standard deviation (the square root of dp_var_pop''s release); charges epsilon (at most max_rows_per_unit rows per privacy unit)';

COMMENT ON FUNCTION library_version() IS
    'The version of the loaded pg_encrypt_ml library; pg_extension.extversion holds the installed schema''s, older until ALTER EXTENSION pg_encrypt_ml UPDATE';

-- Privileges: every function is granted explicitly. PUBLIC gets what an application needs: the
-- types, encryption and decryption (the key checks happen inside, for the calling role), the
-- tenant context, and key functions that check ownership themselves. Administration goes to the
-- two admin roles. The catalog tables are closed (bootstrap.sql); the views filter by tenant.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA encml FROM PUBLIC;
GRANT USAGE ON SCHEMA encml TO PUBLIC;
GRANT USAGE ON TYPE enc_bytea, det_text, ore_int8, ore_float8, ore_timestamptz, fhe_vector, fhe_uint32,
    fhe_bool, dp_state, fhe_sum_state TO PUBLIC;
-- Type support: input/output, casts, operators, index and sort support of the types (and
-- fhe_vector_info and the fhe_vector_sum/fhe_sum support functions, which refuse direct calls).
DO $$
DECLARE f regprocedure;
BEGIN
    FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = 'encml'::regnamespace
                AND p.proname ~ '^(enc_bytea|det_text|ore_int8|ore_float8|ore_timestamptz|fhe_vector|fhe_uint32|fhe_bool|fhe_sum|dp_state)_'
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO PUBLIC', f);
    END LOOP;
END
$$;
GRANT EXECUTE ON FUNCTION
    encrypt(bytea, uuid, text), encrypt(text, uuid, text), decrypt(enc_bytea, text),
    decrypt_text(enc_bytea, text), reencrypt(enc_bytea, text),
    encrypt_tensor(real[], uuid, text), encrypt_tensor(double precision[], uuid, text),
    encrypt_tensor(smallint[], uuid, text), encrypt_tensor(integer[], uuid, text),
    decrypt_tensor_real(enc_bytea, text), decrypt_tensor_float8(enc_bytea, text),
    decrypt_tensor_smallint(enc_bytea, text), decrypt_tensor_int(enc_bytea, text),
    tensor_info(enc_bytea),
    encrypt_jsonb(jsonb, uuid, text[], text), decrypt_jsonb(jsonb, text), reencrypt_jsonb(jsonb, text),
    jsonb_is_encrypted(jsonb, text[]),
    lo_encrypt(oid, uuid, integer), lo_decrypt(oid), lo_reencrypt(oid), lo_decrypt_range(oid, bigint, integer),
    lo_encryption_info(oid),
    det_encrypt(text, uuid), det_encrypt(bytea, uuid), det_decrypt(det_text),
    det_decrypt_bytea(det_text), det_reencrypt(det_text), det_encrypt_all_versions(text, uuid),
    fpe_encrypt(text, uuid, text, text), fpe_decrypt(text, uuid, text, text),
    tokenize_pan(text, uuid, integer), detokenize_pan(text, uuid, integer),
    retokenize_pan(text, uuid, uuid, integer),
    mask_partial(text, integer, integer, text), mask_pan(text, integer), mask_email(text),
    mask_phone(text, integer), mask_date_to_year(date),
    -- Owner checks inside; views are created as the caller.
    set_masking_rule(regclass, name, text, regrole[]),
    apply_masking(regclass, boolean), masking_unmasked(regrole[]),
    -- Checks inside: table owner / caller's table rights / role membership.
    register_subject_column(regclass, text, uuid, text, text), unregister_subject_column(regclass, text),
    subject_export(text),
    subject_key(text, text), subject_forget(text), record_consent(text, text, boolean, text),
    has_consent(text, text),
    ore_encrypt(bigint, uuid), ore_encrypt(integer, uuid), ore_encrypt(smallint, uuid),
    ore_encrypt(double precision, uuid), ore_encrypt(timestamptz, uuid),
    ore_decrypt(ore_int8), ore_decrypt(ore_float8), ore_decrypt(ore_timestamptz),
    ore_reencrypt(ore_int8), ore_reencrypt(ore_float8), ore_reencrypt(ore_timestamptz),
    key_id(enc_bytea), key_id(det_text), key_id(ore_int8), key_id(ore_float8), key_id(ore_timestamptz),
    key_version(enc_bytea), key_version(det_text), key_version(ore_int8), key_version(ore_float8),
    key_version(ore_timestamptz),
    create_key(text, text, text), rotate_key(uuid), retire_key_version(uuid, integer, boolean),
    destroy_key(uuid), export_key(uuid, bytea, integer), grant_key(uuid, regrole, text),
    revoke_key(uuid, regrole, text), label_key(uuid, text), unlabel_key(uuid, text), key_labels(uuid),
    set_tenant(text, boolean), current_tenant(), reset_tenant(), my_tenants(), tenant_key(text),
    -- Invoker rights: ALTER TABLE needs ownership of the table.
    enable_tenant_isolation(regclass, name), disable_tenant_isolation(regclass, name),
    privacy_budget_remaining(regrole, text),
    -- Owner checks inside; the gate is every DP-only table's policy condition.
    dp_protect(regclass, text, integer), dp_unprotect(regclass), dp_gate(),
    -- Owner checks inside. The trigger function stays executable by table owners: Postgres
    -- checks it when it clones the row trigger onto a new partition. It refuses to fire except
    -- as audit_enable creates it, on audited tables, and the event triggers refuse another
    -- trigger with it on an audited table.
    audit_enable(regclass, text[], boolean), audit_disable(regclass), classify(regclass, text, text),
    audit_row_trigger()
TO PUBLIC;
GRANT EXECUTE ON FUNCTION audit_seal(), audit_head(), audit_verify(bigint), audit_verify(bigint, text), audit_verify_full(),
    audit_state(),
    compliance_report()
TO encml_auditor;
GRANT EXECUTE ON FUNCTION audit_purge(timestamptz) TO encml_audit_admin;
GRANT SELECT ON audit_log, audit_witness, audit_markers, audited_tables, column_classes, classified_columns TO encml_auditor;
-- The dp aggregates. Their support functions over `internal` stay closed. Those over dp_state
-- are open because Citus checks that the caller may execute them before it combines per-shard
-- states; they refuse calls outside an aggregate, and a dp_state holds only what the rows of the
-- caller's own query hold (src/privacy/dp_state_aggregates.rs).
DO $$
DECLARE a regprocedure;
BEGIN
    FOR a IN SELECT p.oid FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = 'encml'::regnamespace
                AND ((p.prokind = 'a' AND p.proname LIKE 'dp\_%' AND p.proname <> 'dp_public_groups')
                     OR (p.prokind = 'f' AND p.proname NOT LIKE 'dp\_state\_%'
                         AND 'encml.dp_state'::regtype = ANY (p.proargtypes))
                     OR (p.prokind = 'f' AND p.proname NOT LIKE 'dp\_summary\_%'
                         AND 'encml.dp_summary'::regtype = ANY (p.proargtypes)))
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO PUBLIC', a);
    END LOOP;
END
$$;
GRANT EXECUTE ON FUNCTION zcdp_epsilon(double precision, double precision) TO PUBLIC;
GRANT EXECUTE ON FUNCTION set_privacy_budget(regrole, double precision, double precision, text, text),
    dp_public_groups(anyelement, anyarray)
TO encml_privacy_admin;
GRANT EXECUTE ON FUNCTION auth_failures(), forward_security_events(), security_summary(interval), metrics(boolean)
TO encml_security_admin, encml_auditor;
-- Scrapers (postgres_exporter) usually run as members of pg_monitor.
GRANT EXECUTE ON FUNCTION metrics(boolean) TO pg_monitor;
GRANT EXECUTE ON FUNCTION unlock(text, text) TO encml_security_admin;
COMMENT ON FUNCTION mark_tls_service_role(regrole, boolean) IS
    'Marks a role as a service (service => false unmarks it): compliance_report() then requires every pg_hba.conf line admitting it from the network to be hostssl with clientcert=verify-full (encml_security_admin)';
GRANT EXECUTE ON FUNCTION mark_tls_service_role(regrole, boolean) TO encml_security_admin;
CREATE VIEW auth_failures AS SELECT * FROM auth_failures();
COMMENT ON VIEW auth_failures IS
    'pg_encrypt_ml: (role, client address) pairs with recent failed logins or locked now (needs shared_preload_libraries)';
GRANT SELECT ON auth_failures TO encml_security_admin, encml_auditor;

COMMENT ON FUNCTION key_encryptions_unrecorded() IS
    'Encryptions per key version of this database counted on this server and not yet recorded in encml.key_encryptions (read by the key_usage view)';
GRANT EXECUTE ON FUNCTION key_encryptions_unrecorded() TO PUBLIC;
-- Counts of the key versions a role may see (as encml.key_versions shows them): recorded plus
-- what this server counted since.
CREATE VIEW key_usage WITH (security_barrier) AS
SELECT v.key_id, v.version, v.status,
       coalesce(e.encryptions, 0) + coalesce(u.unrecorded, 0) AS encryptions,
       coalesce(e.encryptions, 0) AS recorded,
       coalesce(u.unrecorded, 0) AS unrecorded,
       e.recorded_at,
       (coalesce(e.encryptions, 0) + coalesce(u.unrecorded, 0))::double precision / 4294967296 AS share_of_limit
  FROM key_versions v
  JOIN data_keys k ON k.id = v.key_id AND k.purpose = 'aead'
  LEFT JOIN key_encryptions e ON e.key_id = v.key_id AND e.version = v.version
  LEFT JOIN key_encryptions_unrecorded() u ON u.key_id = v.key_id AND u.version = v.version;
COMMENT ON VIEW key_usage IS
    'pg_encrypt_ml: AES-GCM encryptions per visible key version (recorded + unrecorded on this server) against the 2^32 random-nonce limit; warns at 2^31';
GRANT SELECT ON key_usage TO PUBLIC;
GRANT EXECUTE ON FUNCTION rotate_master_key(), grant_clearance(regrole, text), revoke_clearance(regrole, text),
    set_clearance_condition(text, text[], int4range, text[], text)
TO encml_key_admin;
GRANT SELECT ON key_labels, clearances, clearance_conditions TO encml_key_admin, encml_auditor;
GRANT EXECUTE ON FUNCTION create_tenant(text), drop_tenant(text), grant_tenant(text, regrole),
    revoke_tenant(text, regrole), forget_tenant(text), create_tenant_schema(text, text)
TO encml_tenant_admin;
GRANT EXECUTE ON FUNCTION fhe_vector_sum(fhe_vector), fhe_sum(fhe_uint32), fhe_add(fhe_uint32, fhe_uint32),
    fhe_add(fhe_uint32, bigint), fhe_compare(fhe_uint32, text, fhe_uint32), fhe_compare(fhe_uint32, text, bigint)
TO PUBLIC;
GRANT EXECUTE ON FUNCTION fhe_keyset_loads(),
    -- Refuse unless a superuser enabled encml.fhe_client_functions.
    fhe_keygen(), fhe_encrypt(double precision[], uuid, integer, integer, integer), fhe_decrypt(fhe_vector, bytea),
    fhe_keygen_uint32(), fhe_encrypt_uint32(bigint, bytea), fhe_decrypt_uint32(fhe_uint32, bytea),
    fhe_decrypt_bool(fhe_bool, bytea)
TO PUBLIC;
-- Executable by everyone, checked inside (membership in encml_fhe_admin, _contributor or
-- _decryptor, and separation of duties): a refusal leaves a security event, which an EXECUTE
-- grant refused by Postgres before the function runs would not.
GRANT EXECUTE ON FUNCTION fhe_register_keyset(text, bytea), fhe_register_keyset(text, bytea, bytea),
    fhe_open_round(uuid, integer, integer, integer, integer, integer, boolean, regrole), fhe_close_round(bigint),
    fhe_close_round(bigint, double precision, double precision),
    fhe_submit(bigint, fhe_vector), fhe_submit_proven(bigint, bytea), fhe_round_sum(bigint)
TO PUBLIC;
GRANT EXECUTE ON FUNCTION library_version() TO PUBLIC;
GRANT EXECUTE ON FUNCTION in_subject_erasure() TO PUBLIC;

-- Key lifecycle automation (src/api/lifecycle/, docs/keys.md "Rotation policies and
-- re-encryption jobs"). Rights are checked inside (key administrators, the column's UPDATE
-- privilege, the key's decrypt and encrypt privileges), each refusal leaving an event.
COMMENT ON FUNCTION reencrypt_table(regclass, name, uuid, text) IS
    'Queues background jobs that move a column''s values under older key versions to the current ones in short batches (one job per leaf table and key; key => NULL finds the keys; aad => template like ''patients.diagnosis:{id}''; an oid column of lo_encrypt objects gets new objects and the replaced ones unlinked); batches run as the table''s owner; returns the jobs';
COMMENT ON FUNCTION reencrypt_table_now(regclass, name, uuid, text) IS
    'Moves a column''s values under older key versions to the current ones in one UPDATE in the caller''s transaction (for small tables); returns the values moved';
COMMENT ON FUNCTION reencrypt_key(uuid) IS
    'Queues background jobs for every column of the database holding values under older versions of a key (enc_bytea, tensors, det_text, ORE, jsonb fields, large objects); the key''s administrators; returns the jobs';
COMMENT ON FUNCTION cancel_reencryption(bigint) IS
    'Cancels a queued or running re-encryption job (the batch in progress finishes); the job''s role, the table''s owner and key administrators';
COMMENT ON FUNCTION set_rotation_policy(uuid, interval, boolean, interval, bigint) IS
    'Sets a key''s rotation policy: rotate every interval (or after max_encryptions AES-GCM encryptions), re-encrypt older values in the background, retire versions no value uses after retire_after; the key''s administrators; acts as the caller';
COMMENT ON FUNCTION drop_rotation_policy(uuid) IS
    'Removes a key''s rotation policy (queued jobs go on); the key''s administrators';
COMMENT ON FUNCTION compromise_key(uuid, text) IS
    'Incident response: rotates the key at once, marks its earlier versions compromised (nothing new is encrypted under them), re-encrypts their values ahead of all other jobs and raises a critical event; returns the new version';
COMMENT ON FUNCTION run_key_lifecycle() IS
    'Starts this database''s key lifecycle worker now (due rotation policies, queued re-encryption jobs); for servers without the library preloaded; key administrators';
-- ORE bounds under a given key version, for range searches while a job moves a column
-- (docs/searchable.md "Searching during a rotation"); integer and smallint as for ore_encrypt.
COMMENT ON FUNCTION ore_encrypt(bigint, uuid, integer) IS
    'Order-revealing encryption of a bigint under the given active version of a key (not one reported compromised): bounds for range searches over a column being re-encrypted';
COMMENT ON FUNCTION ore_encrypt(double precision, uuid, integer) IS
    'Order-revealing encryption of a double precision under the given active version of a key (not one reported compromised)';
COMMENT ON FUNCTION ore_encrypt(timestamptz, uuid, integer) IS
    'Order-revealing encryption of a timestamptz under the given active version of a key (not one reported compromised)';
CREATE FUNCTION ore_encrypt(value integer, key uuid, version integer) RETURNS ore_int8
    LANGUAGE sql STABLE PARALLEL SAFE
    AS 'SELECT encml.ore_encrypt($1::bigint, $2, $3)';
CREATE FUNCTION ore_encrypt(value smallint, key uuid, version integer) RETURNS ore_int8
    LANGUAGE sql STABLE PARALLEL SAFE
    AS 'SELECT encml.ore_encrypt($1::bigint, $2, $3)';
COMMENT ON FUNCTION ore_encrypt(integer, uuid, integer) IS 'Order-revealing encryption of an integer under the given key version, as bigint (ore_int8)';
COMMENT ON FUNCTION ore_encrypt(smallint, uuid, integer) IS 'Order-revealing encryption of a smallint under the given key version, as bigint (ore_int8)';
GRANT EXECUTE ON FUNCTION ore_encrypt(bigint, uuid, integer), ore_encrypt(double precision, uuid, integer),
    ore_encrypt(timestamptz, uuid, integer), ore_encrypt(integer, uuid, integer), ore_encrypt(smallint, uuid, integer)
TO PUBLIC;
GRANT EXECUTE ON FUNCTION reencrypt_table(regclass, name, uuid, text),
    reencrypt_table_now(regclass, name, uuid, text), reencrypt_key(uuid), cancel_reencryption(bigint),
    set_rotation_policy(uuid, interval, boolean, interval, bigint), drop_rotation_policy(uuid),
    compromise_key(uuid, text)
TO PUBLIC;
GRANT EXECUTE ON FUNCTION run_key_lifecycle() TO encml_key_admin;
GRANT SELECT ON rotation_policies, reencryption_jobs, key_compromises, reencryption_large_objects
    TO encml_key_admin, encml_auditor;
