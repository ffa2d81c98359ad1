-- Auditing a distributed table: the row trigger runs on the shards (Citus creates triggers on
-- distributed tables only with citus.enable_unsafe_triggers), each change lands in the audit
-- log of the node that holds the shard, and audit_verify checks each node's chain.
CREATE TABLE accounts (id int, email text, balance int);
SELECT create_distributed_table('accounts', 'id', shard_count => 4);
SELECT try($$SELECT encml.audit_enable('accounts', '{email}')$$) AS without_unsafe_triggers;
SET citus.enable_unsafe_triggers = on;
SELECT encml.audit_enable('accounts', '{email}');
RESET citus.enable_unsafe_triggers;
INSERT INTO accounts SELECT i, 'user' || i || '@example.com', 100 FROM generate_series(1, 20) i;
UPDATE accounts SET balance = balance + 1 WHERE id <= 5;
DELETE FROM accounts WHERE id = 20;
-- 20 inserts, 5 updates, 1 delete, spread over the workers' logs.
SELECT sum(result::int) AS row_changes_logged
  FROM run_command_on_workers($$SELECT count(*) FROM encml.audit_log WHERE kind = 'row' AND table_name LIKE '%accounts%'$$);
-- The workers' logs name the distributed table, with the shard in the detail (4 shards).
SELECT result AS logged_as
  FROM run_command_on_workers($$SELECT string_agg(DISTINCT table_name || ' ' || regexp_replace(detail::text, '[0-9]+', 'N'), ', ') FROM encml.audit_log WHERE kind = 'row'$$);
SELECT sum(result::int) AS shards_logged
  FROM run_command_on_workers($$SELECT count(DISTINCT detail->>'citus_shard') FROM encml.audit_log WHERE kind = 'row'$$);
-- The email is redacted in every log.
SELECT bool_and(result::int = 0) AS no_plain_email
  FROM run_command_on_workers($$SELECT count(*) FROM encml.audit_log WHERE concat(old_row::text, new_row::text, detail::text) LIKE '%@example.com%'$$);
SELECT sum(result::int) AS emails_redacted
  FROM run_command_on_workers($$SELECT count(*) FROM encml.audit_log WHERE new_row ? 'email' AND new_row->>'email' NOT LIKE '%@%'$$);
-- Each node's chain verifies.
SELECT nodeid, success, result FROM run_command_on_all_nodes($$SELECT ok FROM encml.audit_verify()$$) ORDER BY nodeid;
