-- Keys across nodes: a key created on the coordinator is used by the workers, which run the
-- encrypt and decrypt calls of pushed-down queries; rotation and destruction reach every node
-- in the same transaction.
SET client_min_messages = error;
SELECT encml.create_key('citus-pii') AS k \gset
RESET client_min_messages;
-- Every node has the key (the catalog is a reference table).
SELECT success, result FROM run_command_on_all_nodes(
    format($$SELECT count(*) FROM encml.data_key_versions WHERE key_id = %L$$, :'k'));

CREATE TABLE patients (id bigint, name encml.enc_bytea, note encml.enc_bytea);
SELECT create_distributed_table('patients', 'id', shard_count => 8);
-- Plaintext arrives in a co-located staging table; INSERT ... SELECT encrypts on the workers,
-- shard by shard, without pulling rows to the coordinator.
CREATE TABLE patients_staging (id bigint, name text);
SELECT create_distributed_table('patients_staging', 'id', colocate_with => 'patients');
INSERT INTO patients_staging SELECT i, 'name ' || i FROM generate_series(1, 1000) i;
SELECT * FROM plan(format($$INSERT INTO patients (id, name) SELECT id, encml.encrypt(name, %L) FROM patients_staging$$, :'k'));
INSERT INTO patients (id, name) SELECT id, encml.encrypt(name, :'k') FROM patients_staging;
-- The decryption runs on the workers (inside each task's query), not on rows pulled back.
SELECT * FROM plan('SELECT count(*) FILTER (WHERE encml.decrypt_text(name) LIKE ''name 1%'') FROM patients');
SELECT count(*) FILTER (WHERE encml.decrypt_text(name) LIKE 'name 1%') AS matching, count(*) FROM patients;
-- Values came from every worker.
SELECT result AS rows_per_worker FROM run_command_on_workers($$SELECT count(*) FROM pg_class WHERE relname LIKE 'patients_%' AND relkind = 'r'$$);
-- Each node counts the AES-GCM encryptions it made (docs/keys.md "Encryption counts"): the
-- workers made the 1000 above, the coordinator none.
SELECT encryptions AS on_coordinator FROM encml.key_usage WHERE key_id = :'k' AND version = 1;
SELECT sum(result::bigint) AS on_all_nodes, count(*) FILTER (WHERE result::bigint > 0) AS nodes_counting
  FROM run_command_on_all_nodes(
    format($$SELECT encryptions FROM encml.key_usage WHERE key_id = %L AND version = 1$$, :'k'));

-- Rotation: the new version is written on every node in the same transaction; new values use
-- it, old ones still decrypt.
SELECT encml.rotate_key(:'k') AS v2;
SELECT success, result FROM run_command_on_all_nodes(
    format($$SELECT max(version) FROM encml.data_key_versions WHERE key_id = %L$$, :'k'));
INSERT INTO patients (id, name) SELECT i, encml.encrypt('name ' || i, :'k') FROM generate_series(1001, 1100) i;
SELECT encml.key_version(name) AS version, count(*) FROM patients GROUP BY 1 ORDER BY 1;
SELECT count(*) FILTER (WHERE encml.decrypt_text(name) = 'name ' || id) AS round_trips FROM patients;

-- A re-encryption job on a distributed table: the coordinator's lifecycle worker runs each batch
-- on every shard placement, as the role that queued it, and shows the progress. (The helper is
-- the session's own: Citus warns that a temporary function stays local.)
SET client_min_messages = error;
CREATE FUNCTION pg_temp.wait_jobs() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..600 LOOP
        IF NOT EXISTS (SELECT FROM encml.reencryption_jobs WHERE state IN ('queued', 'running')) THEN
            RETURN 'idle';
        END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN 'timeout';
END
$$;
RESET client_min_messages;
SELECT table_name, target_version FROM encml.reencrypt_table('patients', 'name');
SELECT pg_temp.wait_jobs();
SELECT column_name, state, rows_done, rows_left, error FROM encml.reencryption_progress;
SELECT encml.key_version(name) AS version, count(*),
       count(*) FILTER (WHERE encml.decrypt_text(name) = 'name ' || id) AS round_trips
  FROM patients GROUP BY 1 ORDER BY 1;
-- reencrypt_key finds the distributed table (its rows are counted through a distributed query).
SELECT encml.rotate_key(:'k') AS v3;
SELECT table_name, column_name FROM encml.reencrypt_key(:'k');
SELECT pg_temp.wait_jobs();
SELECT encml.key_version(name) AS version, count(*) FROM patients GROUP BY 1 ORDER BY 1;
-- Reference tables are refused (one UPDATE moves them).
CREATE TABLE ref_secrets (id int PRIMARY KEY, s encml.enc_bytea);
SELECT create_reference_table('ref_secrets');
SELECT try('SELECT * FROM encml.reencrypt_table(''ref_secrets'', ''s'')');
DROP TABLE ref_secrets;

-- A rotation that fails rolls back everywhere.
BEGIN;
SELECT encml.rotate_key(:'k') IS NOT NULL AS rotated;
ROLLBACK;
SELECT success, result FROM run_command_on_all_nodes(
    format($$SELECT max(version) FROM encml.data_key_versions WHERE key_id = %L$$, :'k'));

-- COPY into the distributed table: ciphertext text in, routed by id, decrypted on the workers.
CREATE TEMP TABLE copied AS SELECT id + 5000 AS id, name FROM patients WHERE id <= 10;
COPY copied TO '/tmp/encml_citus_copy.txt';
COPY patients (id, name) FROM '/tmp/encml_citus_copy.txt';
SELECT id, encml.decrypt_text(name) FROM patients WHERE id BETWEEN 5001 AND 5003 ORDER BY id;

-- Destruction (crypto-shredding) reaches every node at commit. The workers' pooled
-- connections have the key cached from the queries above; they must drop it.
SELECT count(*) FROM patients WHERE encml.decrypt_text(name) IS NOT NULL;
SET client_min_messages = warning;
SELECT encml.destroy_key(:'k') >= 0 AS destroyed;
RESET client_min_messages;
SELECT try('SELECT count(*) FROM patients WHERE encml.decrypt_text(name) IS NOT NULL');
SELECT try(format($$INSERT INTO patients (id, name) VALUES (1, encml.encrypt('x', %L))$$, :'k'));
SELECT success, result FROM run_command_on_all_nodes(
    format($$SELECT count(*) FILTER (WHERE wrapped_key IS NULL) || '/' || count(*) FROM encml.data_key_versions WHERE key_id = %L$$, :'k'));

-- Per-key grants hold on the workers too (roles are propagated by Citus).
SET client_min_messages = error;
CREATE ROLE citus_analyst LOGIN;
SELECT encml.create_key('citus-granted') AS g \gset
RESET client_min_messages;
CREATE TABLE notes (id int, body encml.enc_bytea);
SELECT create_distributed_table('notes', 'id', shard_count => 4);
INSERT INTO notes SELECT i, encml.encrypt('note ' || i, :'g') FROM generate_series(1, 100) i;
GRANT SELECT ON notes TO citus_analyst;
SET ROLE citus_analyst;
SELECT try('SELECT count(encml.decrypt_text(body)) FROM notes');
RESET ROLE;
SELECT encml.grant_key(:'g', 'citus_analyst', 'decrypt');
SET ROLE citus_analyst;
SELECT count(encml.decrypt_text(body)) FROM notes;
RESET ROLE;
SELECT encml.revoke_key(:'g', 'citus_analyst', 'decrypt');
SET ROLE citus_analyst;
SELECT try('SELECT count(encml.decrypt_text(body)) FROM notes');
RESET ROLE;
SELECT catalog_in_sync();
