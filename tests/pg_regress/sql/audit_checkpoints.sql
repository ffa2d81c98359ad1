-- Incremental verification: a full walk (audit_verify_full, or an audit_verify that walked at
-- least 10,000 rows) leaves a chained checkpoint row; audit_verify() then starts at the latest
-- checkpoint, verifying its own MAC first. A checkpoint proves only what follows it: tampering
-- before it needs the full walk. Forged or deleted checkpoints are caught. In a read-only
-- transaction (as on a standby) verification seals and writes nothing.
CREATE TABLE public.c_t (id int, v text);
SELECT encml.audit_enable('public.c_t');
INSERT INTO public.c_t SELECT i, 'row ' || i FROM generate_series(1, 50) i;
SELECT ok, rows_checked > 50 AS walked_everything FROM encml.audit_verify_full();
SELECT kind, operation, (detail->>'full')::boolean AS full_walk, seq IS NOT NULL AS sealed
  FROM encml.audit_log ORDER BY id DESC LIMIT 1;
INSERT INTO public.c_t VALUES (51, 'after the checkpoint');
SELECT ok, rows_checked FROM encml.audit_verify();
-- 10,000 rows walked leave a checkpoint too.
INSERT INTO public.c_t SELECT i, 'bulk' FROM generate_series(100, 10100) i;
SELECT ok, rows_checked > 10000 AS long_walk FROM encml.audit_verify();
SELECT ok, rows_checked FROM encml.audit_verify();

SELECT max(id) AS before_cp FROM encml.audit_log WHERE kind = 'row' AND new_row->>'id' = '10' \gset
SET session_replication_role = replica;
BEGIN;  -- a row before the checkpoint edited: only the full walk sees it
UPDATE encml.audit_log SET operation = 'hidden' WHERE id = :before_cp;
SELECT ok AS incremental_ok FROM encml.audit_verify();
SELECT ok, first_bad_id = :before_cp AS at_the_row FROM encml.audit_verify_full();
ROLLBACK;
BEGIN;  -- a forged checkpoint (no key): its own MAC does not verify
INSERT INTO encml.audit_log (effective_role, kind, operation, detail, seq, mac, mac_key)
SELECT 'postgres', 'checkpoint', 'audit_verify', '{"verified_through_seq": 1}', max(seq) + 1,
       decode(repeat('11', 32), 'hex'), max(mac_key) FROM encml.audit_log;
SELECT ok, detail ~ 'modified, inserted or moved' AS forged_named FROM encml.audit_verify();
ROLLBACK;
BEGIN;  -- the latest checkpoint deleted: the walk starts earlier and sees rows gone
DELETE FROM encml.audit_log WHERE id = (SELECT max(id) FROM encml.audit_log WHERE kind = 'checkpoint');
SELECT ok, detail ~ 'deleted' AS deletion_named FROM encml.audit_verify();
ROLLBACK;
RESET session_replication_role;

-- Read-only: verifies, seals nothing, writes no checkpoint.
INSERT INTO public.c_t VALUES (52, 'unsealed');
SELECT count(*) AS rows_before FROM encml.audit_log \gset
BEGIN READ ONLY;
SELECT ok FROM encml.audit_verify_full();
COMMIT;
SELECT count(*) - :rows_before AS rows_written, count(*) FILTER (WHERE seq IS NULL) AS unsealed
  FROM encml.audit_log;
SELECT ok FROM encml.audit_verify();
DROP TABLE public.c_t;
