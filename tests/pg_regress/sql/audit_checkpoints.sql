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

-- Sealed rows live in ranges of seq (tables audit_log_s<first seq>, at least 10,000 seqs each):
-- purging drops whole ranges, giving their disk space back, and what is kept verifies.
CREATE TABLE public.c_bulk (id int);
SELECT encml.audit_enable('public.c_bulk');
INSERT INTO public.c_bulk SELECT generate_series(1, 12000);
SELECT encml.audit_seal() >= 12000 AS sealed;
SELECT count(*) AS ranges_before FROM pg_inherits WHERE inhparent = 'encml.audit_log_sealed'::regclass \gset
SELECT :ranges_before >= 2 AS several_ranges;
-- Each range is closed like the log: the guard refuses DELETE and TRUNCATE, nobody else reads it.
SELECT inhrelid::regclass AS first_range FROM pg_inherits
 WHERE inhparent = 'encml.audit_log_sealed'::regclass ORDER BY inhrelid LIMIT 1 \gset
SELECT try(format('DELETE FROM %s WHERE seq = (SELECT min(seq) FROM %1$s)', :'first_range')) AS delete_range,
       try(format('TRUNCATE %s', :'first_range')) AS truncate_range;
SELECT relacl IS NULL AS owner_only, oid AS first_oid FROM pg_class WHERE oid = :'first_range'::regclass \gset
SELECT :'owner_only' AS owner_only;
SELECT encml.audit_purge(clock_timestamp()) >= 12000 AS purged;
SELECT count(*) < :ranges_before AS ranges_dropped, count(*) FILTER (WHERE c.oid = :first_oid) = 0 AS first_gone
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = 'encml.audit_log_sealed'::regclass;
INSERT INTO public.c_bulk VALUES (0);
SELECT ok, detail ~ 'verified' AS verified FROM encml.audit_verify_full();
-- A range dropped by its owner (a superuser) is a gap verification names.
INSERT INTO public.c_bulk SELECT generate_series(1, 10);
BEGIN;
SELECT inhrelid::regclass AS kept_range FROM pg_inherits
 WHERE inhparent = 'encml.audit_log_sealed'::regclass ORDER BY inhrelid LIMIT 1 \gset
DROP TABLE :kept_range;
SELECT ok, detail ~ 'missing|deleted' AS gap_named FROM encml.audit_verify_full();
ROLLBACK;
DROP TABLE public.c_bulk;
