-- Data-subject rights over distributed tables: the export and the erasure run in a background
-- worker on the coordinator, whose statements Citus routes to the shards; the erasure deletes the
-- subject's rows on the workers and its keys everywhere (the key catalog is replicated), or
-- nothing at all.
SET client_min_messages = error;
CREATE ROLE citus_gdpr_dpo LOGIN IN ROLE encml_dpo;
SELECT encml.create_key('citus-gdpr-lookup', 'deterministic') AS lookup \gset
RESET client_min_messages;
CREATE TABLE gdpr_events (user_id text, at int, payload encml.enc_bytea);
SELECT create_distributed_table('gdpr_events', 'user_id', shard_count => 4);
CREATE TABLE gdpr_orders (id int, buyer encml.det_text, total numeric);
SELECT create_distributed_table('gdpr_orders', 'id', shard_count => 4);
CREATE TABLE gdpr_countries (user_id text, country text);
SELECT create_reference_table('gdpr_countries');
INSERT INTO gdpr_events VALUES
    ('alice', 1, encml.encrypt('event 1', encml.subject_key('alice'))),
    ('alice', 2, encml.encrypt('event 2', encml.subject_key('alice'))),
    ('bob', 3, encml.encrypt('event 3', encml.subject_key('bob'))),
    ('bob', 4, encml.encrypt('event 4', encml.subject_key('bob'))),
    ('carol', 5, encml.encrypt('event 5', encml.subject_key('carol')));
INSERT INTO gdpr_orders SELECT i, encml.det_encrypt(CASE WHEN i % 2 = 0 THEN 'alice' ELSE 'bob' END, :'lookup'), i * 10
  FROM generate_series(1, 10) i;
INSERT INTO gdpr_countries VALUES ('alice', 'FR'), ('bob', 'DE');
SELECT encml.register_subject_column('gdpr_events', 'user_id');
SELECT encml.register_subject_column('gdpr_orders', 'buyer', :'lookup');
SELECT encml.register_subject_column('gdpr_countries', 'user_id', NULL, 'anonymize');
GRANT SELECT, DELETE, UPDATE ON gdpr_events, gdpr_orders, gdpr_countries TO citus_gdpr_dpo;
SELECT encml.grant_key(:'lookup', 'citus_gdpr_dpo', 'encrypt');
-- The export finds the subject's rows on every shard (Alice's events are on one, her orders on
-- several) and the reference table's row.
SET ROLE citus_gdpr_dpo;
SELECT t->>'table' AS table, jsonb_array_length(t->'rows') AS rows
  FROM jsonb_array_elements(encml.subject_export('alice')->'tables') t ORDER BY 1;
-- The erasure: two events and five orders on the workers, the reference row anonymized.
SELECT t->>'table' AS table, t->>'action' AS action, t->>'rows' AS rows
  FROM jsonb_array_elements(encml.subject_forget('alice')->'tables') t ORDER BY 1;
RESET ROLE;
SELECT count(*) FILTER (WHERE user_id = 'alice') AS alice_events, count(*) AS events FROM gdpr_events;
SELECT count(*) AS orders_left FROM gdpr_orders;
SELECT user_id, country FROM gdpr_countries ORDER BY 2;
-- Gone from the shards themselves, on the workers.
SELECT sum(result::int) AS alice_rows_in_shards
  FROM run_command_on_shards('gdpr_events', $$SELECT count(*) FROM %s WHERE user_id = 'alice'$$);
SELECT sum(result::int) AS bob_rows_in_shards
  FROM run_command_on_shards('gdpr_events', $$SELECT count(*) FROM %s WHERE user_id = 'bob'$$);
-- Alice's subject key is destroyed on every node (the catalog is a reference table): her
-- ciphertexts copied anywhere are unreadable.
SELECT count(*) AS destroyed_subject_keys FROM encml.keys WHERE name LIKE 'subject_key:%' AND destroyed_at IS NOT NULL;
SELECT success, result AS destroyed_subject_keys FROM run_command_on_workers(
  $$SELECT count(*) FROM encml.keys WHERE name LIKE 'subject_key:%' AND destroyed_at IS NOT NULL$$);
-- Bob's events still decrypt; a second erasure of Alice finds nothing.
SELECT count(*) FILTER (WHERE encml.decrypt_text(payload) LIKE 'event %') AS bob_events_readable
  FROM gdpr_events WHERE user_id = 'bob';
SET ROLE citus_gdpr_dpo;
SELECT sum((t->>'rows')::int) AS again FROM jsonb_array_elements(encml.subject_forget('alice')->'tables') t;
RESET ROLE;
-- All or nothing across nodes: a missing right on a later table fails the erasure, and the
-- deletes already made on the shards of earlier tables roll back with it (the worker's
-- transaction is a transaction block, so Citus commits nothing on the workers before it ends).
REVOKE DELETE ON gdpr_orders FROM citus_gdpr_dpo;
SET ROLE citus_gdpr_dpo;
SELECT try($$SELECT encml.subject_forget('bob')$$) AS without_delete;
RESET ROLE;
SELECT count(*) FILTER (WHERE user_id = 'bob') AS bob_events_kept FROM gdpr_events;
DROP TABLE gdpr_events, gdpr_orders, gdpr_countries;
-- A role holding a key grant is not dropped; DROP OWNED BY removes the grant on every node.
SELECT try('DROP ROLE citus_gdpr_dpo') ~ '^2BP01' AS grant_holds_the_role;
DROP OWNED BY citus_gdpr_dpo;
DROP ROLE citus_gdpr_dpo;
SELECT count(*) AS grants_left FROM encml.key_grants WHERE key_id = :'lookup';
SELECT result AS grants_left_on_worker FROM run_command_on_workers(
    format('SELECT count(*) FROM encml.key_grants WHERE key_id = %L', :'lookup')) ORDER BY nodeport;
