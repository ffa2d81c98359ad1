-- pg_encrypt_ml demo: a key, an encrypted column, decryption, rotation, crypto-shredding.
\echo '== CREATE EXTENSION pg_encrypt_ml (schema encml)'
CREATE EXTENSION pg_encrypt_ml;

\echo '== A data key for the patients table, wrapped by the master key (never stored in the database)'
SELECT encml.create_key('patients') AS key \gset
SELECT id, name, purpose, version, status FROM encml.keys;

\echo '== An encrypted column: AES-256-GCM, bound to its row with AAD'
CREATE TABLE patients (
    id        int PRIMARY KEY,
    name      text,
    diagnosis encml.enc_bytea
);
INSERT INTO patients
SELECT i, 'patient ' || i, encml.encrypt(d, :'key', 'patients.diagnosis:' || i)
  FROM (VALUES (1, 'type 2 diabetes'), (2, 'hypertension'), (3, 'asthma')) AS v(i, d);
SELECT id, name, left(diagnosis::text, 40) || '...' AS stored_ciphertext FROM patients ORDER BY id;

\echo '== Decrypting (the AAD must match the row)'
SELECT id, encml.decrypt_text(diagnosis, 'patients.diagnosis:' || id) AS diagnosis
  FROM patients ORDER BY id;

\echo '== Swapping ciphertexts between rows is detected'
\set ON_ERROR_STOP 0
SELECT encml.decrypt_text((SELECT diagnosis FROM patients WHERE id = 1), 'patients.diagnosis:2');
\set ON_ERROR_STOP 1

\echo '== Key rotation: new values use version 2, old values still decrypt; then re-encrypt in place'
SELECT encml.rotate_key(:'key') AS new_version;
INSERT INTO patients VALUES (4, 'patient 4', encml.encrypt('migraine', :'key', 'patients.diagnosis:4'));
SELECT encml.key_version(diagnosis) AS version, count(*) FROM patients GROUP BY 1 ORDER BY 1;
UPDATE patients SET diagnosis = encml.reencrypt(diagnosis, 'patients.diagnosis:' || id)
 WHERE encml.key_version(diagnosis) < 2;
SELECT id, encml.key_version(diagnosis) AS version,
       encml.decrypt_text(diagnosis, 'patients.diagnosis:' || id) AS diagnosis
  FROM patients ORDER BY id;

\echo '== The catalog: versions and the master key fingerprint, never key material'
SELECT name, version, status, rotated_at IS NOT NULL AS rotated FROM encml.keys;
SELECT version, status, master_key_fingerprint FROM encml.key_versions ORDER BY version;

\echo '== Crypto-shredding (GDPR erasure): destroy the key, and every value under it is unrecoverable'
SELECT encml.destroy_key(:'key') AS versions_erased;
\set ON_ERROR_STOP 0
SELECT encml.decrypt_text(diagnosis, 'patients.diagnosis:' || id) FROM patients WHERE id = 1;
\set ON_ERROR_STOP 1
\echo '== A dump or base backup taken before the destroy still holds the wrapped key, readable with'
\echo '   the same master key: the key awaits a master-key rotation (new master key first in the'
\echo '   provider, encml.rotate_master_key(), then remove the old master key). See docs/keys.md.'
SELECT name, status, awaiting_master_key_rotation FROM encml.keys;
