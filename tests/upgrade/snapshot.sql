-- Prints the stored state of a database as "object | rows | md5 of the rows": every non-empty
-- configuration table of pg_encrypt_ml and the sequences behind them, the fill's own tables, and
-- large objects. An upgrade and a dump/restore must not change a line. Reads only.
\set ON_ERROR_STOP 1
\if :{?names}
\else
\set names off
\endif
-- With :audit_through = N, only audit rows up to id N count (a restore logs its own DDL on
-- audited tables after them) and the log's id sequence is left out.
\if :{?audit_through}
\else
\set audit_through ''
\endif
\pset format unaligned
\pset tuples_only on
\pset fieldsep ' | '
SET search_path = pg_catalog, pg_temp;
-- With :names = off, reg* values print as the oids stored (an upgrade that turns an oid column
-- into a regclass changes no stored bit); with :names = on, as the names they stand for (a
-- restored database has other oids for the same tables).
CREATE FUNCTION pg_temp.digest(t regclass, names boolean, audit_through text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE cols text; r text;
BEGIN
    SELECT string_agg(CASE WHEN names OR NOT (ty.typname ~ '^reg' OR coalesce(e.typname ~ '^reg', false))
                           THEN format('x.%I::text', a.attname)
                           WHEN e.oid IS NOT NULL THEN format('x.%I::oid[]::text', a.attname)
                           ELSE format('x.%I::oid::text', a.attname) END, ', ' ORDER BY a.attnum)
      INTO cols
      FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid
      LEFT JOIN pg_type e ON e.oid = ty.typelem AND ty.typcategory = 'A'
     WHERE a.attrelid = t AND a.attnum > 0 AND NOT a.attisdropped
       -- Columns an upgrade adds (a constant default, or derived from the catalog: after.sql
       -- reads them); the stored state is what the older release had.
       AND (t::text, a.attname::text) NOT IN (('encml.audited_tables', 'reads'),
                                                ('encml.column_classes', 'column_name'),
                                                ('encml.subject_columns', 'attnum'),
                                                ('encml.fhe_keysets', 'proof_crs'),
                                                ('encml.fhe_rounds', 'proven'),
                                                ('encml.fhe_rounds', 'decryptor'),
                                                ('encml.fhe_rounds', 'dp_epsilon'),
                                                ('encml.fhe_rounds', 'dp_delta'),
                                                ('encml.fhe_rounds', 'dp_sigma'),
                                                ('encml.privacy_budgets', 'accounting'),
                                                ('encml.privacy_budgets', 'rho_total'),
                                                ('encml.privacy_budgets', 'rho_spent'),
                                                ('encml.privacy_charges', 'rho'));
    EXECUTE format('SELECT count(*) || '' | '' || coalesce(md5(string_agg(r, E''\n'' ORDER BY r)), ''-'')
                      FROM (SELECT ROW(%s)::text AS r FROM %s x WHERE %s) s', cols, t,
                   CASE WHEN t = 'encml.audit_log'::regclass AND audit_through <> ''
                        THEN format('x.id <= %s', audit_through::bigint) ELSE 'true' END)
       INTO r;
    RETURN r;
END
$$;
CREATE FUNCTION pg_temp.sequence_state(s regclass) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
    EXECUTE format('SELECT last_value || '' called '' || is_called FROM %s', s) INTO r;
    RETURN r;
END
$$;

WITH config AS (
    SELECT c.oid AS rel, c.relkind
      FROM pg_extension e, unnest(e.extconfig) cfg JOIN pg_class c ON c.oid = cfg
     WHERE e.extname = 'pg_encrypt_ml'
), tables AS (
    -- A partition of a configuration table counts as the whole table (the audit log's rows are
    -- in its partitions from 0.2.0 on).
    SELECT coalesce(pg_partition_root(rel), rel) AS rel FROM config WHERE relkind IN ('r', 'p')
    UNION
    SELECT c.oid FROM pg_class c
     WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND c.relname LIKE 'up\_%'
), sequences AS (
    SELECT rel FROM config WHERE relkind = 'S'
    UNION
    -- Identity and serial sequences of those tables (their values are data too).
    SELECT d.objid FROM pg_depend d JOIN tables t ON d.refobjid = t.rel
     WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
       AND d.deptype IN ('a', 'i') AND (SELECT relkind FROM pg_class WHERE oid = d.objid) = 'S'
)
SELECT * FROM (
    SELECT 'table ' || rel::regclass::text AS object, pg_temp.digest(rel, :'names', :'audit_through') AS state FROM tables
    UNION ALL
    SELECT 'sequence ' || rel::regclass::text, pg_temp.sequence_state(rel) FROM sequences
     WHERE NOT (rel = 'encml.audit_log_id_seq'::regclass AND :'audit_through' <> '')
    UNION ALL
    SELECT 'large object ' || m.oid, md5(lo_get(m.oid)) FROM pg_largeobject_metadata m
) s
WHERE state NOT LIKE '0 | %'
  -- A sequence never used (a new table's, created by the upgrade) holds nothing yet.
  AND state <> '1 called false'
  -- Derived from the log (an upgrade fills it); verification, which reads it, is checked instead.
  AND object <> 'table encml.audit_markers'
ORDER BY object COLLATE "C";
