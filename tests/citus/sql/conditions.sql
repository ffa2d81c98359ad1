-- Clearance conditions on the client (docs/zero-trust.md) on Citus: the workers see Citus's
-- connection, not the client, so such conditions fail closed in pushed-down queries and are
-- met on the coordinator.
SET client_min_messages = error;
CREATE ROLE citus_clinician LOGIN;
SELECT encml.create_key('citus-phi') AS pk \gset
RESET client_min_messages;
SELECT encml.label_key(:'pk', 'phi');
SELECT encml.grant_clearance('citus_clinician', 'phi');
SELECT encml.grant_key(:'pk', 'citus_clinician', 'decrypt');
SELECT encml.set_clearance_condition('phi', application_names => '{ward-app}');
CREATE TABLE charts (id int, diagnosis encml.enc_bytea);
SELECT create_distributed_table('charts', 'id', shard_count => 4);
INSERT INTO charts SELECT i, encml.encrypt('diagnosis ' || i, :'pk') FROM generate_series(1, 40) i;
GRANT SELECT ON charts TO citus_clinician;
SET ROLE citus_clinician;
SET application_name = 'ward-app';
-- Pushed down: the workers cannot know the client's application_name; refused.
SELECT try('SELECT count(encml.decrypt_text(diagnosis)) FROM charts');
-- Ciphertext gathered first (a materialized CTE), decrypted on the coordinator: allowed.
WITH c AS MATERIALIZED (SELECT diagnosis FROM charts)
SELECT count(encml.decrypt_text(diagnosis)) AS decrypted FROM c;
-- From another application the coordinator refuses too.
SET application_name = 'notebook';
SELECT try('WITH c AS MATERIALIZED (SELECT diagnosis FROM charts) SELECT count(encml.decrypt_text(diagnosis)) FROM c');
RESET application_name;
RESET ROLE;
-- Withdrawing clearances, conditions and labels reaches every node.
SELECT encml.set_clearance_condition('phi', hours => '[0,24)');
SELECT encml.set_clearance_condition('phi');
SELECT encml.revoke_clearance('citus_clinician', 'phi');
SELECT encml.unlabel_key(:'pk', 'phi');
SELECT encml.rotate_key(:'pk');
SELECT encml.retire_key_version(:'pk', 1, force => true);
SELECT catalog_in_sync();
