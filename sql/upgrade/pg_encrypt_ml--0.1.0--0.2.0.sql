-- pg_encrypt_ml 0.1.0 -> 0.2.0, run by ALTER EXTENSION pg_encrypt_ml UPDATE with search_path set
-- to the extension's schema. Written by hand (pgrx generates install scripts only); tests/upgrade
-- proves that a database upgraded with it equals a fresh install of 0.2.0. Once 0.2.0 is
-- released this file is never edited again: later changes go into the next upgrade script.
\echo Use "ALTER EXTENSION pg_encrypt_ml UPDATE TO '0.2.0'" to load this file. \quit

-- The version of the loaded library, next to pg_extension.extversion (the schema's).
CREATE FUNCTION @extschema@.library_version() RETURNS text
STRICT STABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'library_version_wrapper';
COMMENT ON FUNCTION @extschema@.library_version() IS
    'The version of the loaded pg_encrypt_ml library; pg_extension.extversion holds the installed schema''s, older until ALTER EXTENSION pg_encrypt_ml UPDATE';
-- As in a fresh install (finalize.sql revokes every function from PUBLIC, then grants).
REVOKE ALL ON FUNCTION @extschema@.library_version() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.library_version() TO PUBLIC;

-- Fixed: a restored dump lost which tables are audited and which columns are classified (their
-- oids pointed at nothing, or at another table). A regclass is dumped as the table's name; oid and
-- regclass are binary compatible, so nothing is rewritten. The view over column_classes depends
-- on the column's type, so it is dropped and created again as it was, with the privileges the
-- database's administrators gave on it.
-- Every lock first, strongest at once: taking a weaker one to read and ACCESS EXCLUSIVE later
-- could deadlock with sessions that audit or classify meanwhile. Held until the update commits.
LOCK TABLE @extschema@.audited_tables, @extschema@.column_classes, @extschema@.classified_columns
    IN ACCESS EXCLUSIVE MODE;
-- (The audit log is rebuilt at the end of this script.)
LOCK TABLE @extschema@.audit_log IN ACCESS EXCLUSIVE MODE;
DO $$
DECLARE
    view_oid oid := '@extschema@.classified_columns'::pg_catalog.regclass;
    dependents text;
    stale text;
    saved_acl aclitem[];
    saved_init aclitem[];
    has_init boolean;
    new_acl aclitem[];
    g record;
BEGIN
    -- Objects of the database's own built on what changes make the ALTER fail: say which.
    SELECT pg_catalog.string_agg(DISTINCT pg_catalog.pg_describe_object(d.classid, d.objid, 0), ', ')
      INTO dependents
      FROM pg_catalog.pg_depend d
     WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
       AND d.refobjid IN ('@extschema@.audited_tables'::pg_catalog.regclass,
                          '@extschema@.column_classes'::pg_catalog.regclass, view_oid)
       AND d.deptype = 'n'
       -- Not the parts of those three relations (constraints, the view's rule), which the
       -- statements below carry along, and not the extension's own objects.
       AND NOT coalesce(
               CASE d.classid
                   WHEN 'pg_catalog.pg_rewrite'::pg_catalog.regclass
                       THEN (SELECT r.ev_class FROM pg_catalog.pg_rewrite r WHERE r.oid = d.objid)
                   WHEN 'pg_catalog.pg_constraint'::pg_catalog.regclass
                       THEN (SELECT c.conrelid FROM pg_catalog.pg_constraint c WHERE c.oid = d.objid)
                   WHEN 'pg_catalog.pg_trigger'::pg_catalog.regclass
                       THEN (SELECT t.tgrelid FROM pg_catalog.pg_trigger t WHERE t.oid = d.objid)
                   WHEN 'pg_catalog.pg_policy'::pg_catalog.regclass
                       THEN (SELECT p.polrelid FROM pg_catalog.pg_policy p WHERE p.oid = d.objid)
                   WHEN 'pg_catalog.pg_attrdef'::pg_catalog.regclass
                       THEN (SELECT a.adrelid FROM pg_catalog.pg_attrdef a WHERE a.oid = d.objid)
                   WHEN 'pg_catalog.pg_class'::pg_catalog.regclass
                       THEN (SELECT i.indrelid FROM pg_catalog.pg_index i WHERE i.indexrelid = d.objid)
               END IN ('@extschema@.audited_tables'::pg_catalog.regclass,
                       '@extschema@.column_classes'::pg_catalog.regclass, view_oid), false)
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend e
                        WHERE e.classid = d.classid AND e.objid = d.objid AND e.deptype = 'e');
    IF dependents IS NOT NULL THEN
        RAISE EXCEPTION 'pg_encrypt_ml 0.2.0 changes encml.audited_tables, encml.column_classes and encml.classified_columns, which these objects depend on: %', dependents
              USING ERRCODE = 'dependent_objects_still_exist',
                    HINT = 'Drop them, run ALTER EXTENSION pg_encrypt_ml UPDATE, and create them again.';
    END IF;

    -- A database restored from a 0.1.0 dump holds oids of the original database: name the rows
    -- that point at no table, at a table without the audit trigger, or at no column.
    SELECT pg_catalog.string_agg(x.what, '; ' ORDER BY x.what) INTO stale
      FROM (SELECT pg_catalog.format('audited table oid %s: no such table', a.table_oid) AS what
              FROM @extschema@.audited_tables a
             WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid = a.table_oid)
            UNION ALL
            SELECT pg_catalog.format('audited table oid %s (%s): no encml_audit_row trigger', a.table_oid, c.relname)
              FROM @extschema@.audited_tables a JOIN pg_catalog.pg_class c ON c.oid = a.table_oid
             WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_trigger t
                                WHERE t.tgrelid = a.table_oid AND t.tgname = 'encml_audit_row')
            UNION ALL
            SELECT DISTINCT pg_catalog.format('classified column %s of table oid %s: no such column', cc.attnum, cc.table_oid)
              FROM @extschema@.column_classes cc
             WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_attribute at
                                WHERE at.attrelid = cc.table_oid AND at.attnum = cc.attnum
                                  AND NOT at.attisdropped)) x;
    IF stale IS NOT NULL THEN
        RAISE WARNING 'pg_encrypt_ml: audited_tables or column_classes do not match this database, probably restored from a 0.1.0 dump: %', stale
              USING HINT = 'Run encml.audit_enable and encml.classify again for the restored tables, then delete the stale rows (docs/upgrading.md).';
    END IF;

    SELECT c.relacl, ip.initprivs, ip.objoid IS NOT NULL INTO saved_acl, saved_init, has_init
      FROM pg_catalog.pg_class c
      LEFT JOIN pg_catalog.pg_init_privs ip
        ON ip.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass AND ip.objoid = c.oid AND ip.objsubid = 0
     WHERE c.oid = view_oid;

    DROP VIEW @extschema@.classified_columns;
    ALTER TABLE @extschema@.audited_tables ALTER COLUMN table_oid TYPE pg_catalog.regclass;
    ALTER TABLE @extschema@.column_classes ALTER COLUMN table_oid TYPE pg_catalog.regclass;
    CREATE VIEW @extschema@.classified_columns AS
    SELECT c.table_oid::regclass AS table_name, a.attname AS column_name,
           pg_catalog.format_type(a.atttypid, a.atttypmod) AS data_type, c.label
      FROM @extschema@.column_classes c
      JOIN pg_catalog.pg_attribute a ON a.attrelid = c.table_oid AND a.attnum = c.attnum AND NOT a.attisdropped;
    COMMENT ON VIEW @extschema@.classified_columns IS 'pg_encrypt_ml: classified columns with their current names and types';
    GRANT SELECT ON @extschema@.classified_columns TO encml_auditor;
    view_oid := '@extschema@.classified_columns'::pg_catalog.regclass;

    -- The privileges the view had, given and taken away again on the new one; then its initial
    -- privileges (pg_dump dumps the difference to them) as they were: grants made inside an
    -- extension script would otherwise count as initial and no longer be dumped.
    SELECT c.relacl INTO new_acl FROM pg_catalog.pg_class c WHERE c.oid = view_oid;
    FOR g IN SELECT e.grantee, e.privilege_type, e.is_grantable FROM pg_catalog.aclexplode(saved_acl) e
             EXCEPT SELECT e.grantee, e.privilege_type, e.is_grantable FROM pg_catalog.aclexplode(new_acl) e
    LOOP
        EXECUTE pg_catalog.format('GRANT %s ON @extschema@.classified_columns TO %s%s', g.privilege_type,
                                  CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE g.grantee::regrole::text END,
                                  CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
    FOR g IN SELECT e.grantee, e.privilege_type FROM pg_catalog.aclexplode(new_acl) e
             EXCEPT SELECT e.grantee, e.privilege_type FROM pg_catalog.aclexplode(saved_acl) e
    LOOP
        EXECUTE pg_catalog.format('REVOKE %s ON @extschema@.classified_columns FROM %s', g.privilege_type,
                                  CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE g.grantee::regrole::text END);
    END LOOP;
    IF has_init THEN
        UPDATE pg_catalog.pg_init_privs SET initprivs = saved_init
         WHERE classoid = 'pg_catalog.pg_class'::pg_catalog.regclass AND objoid = view_oid AND objsubid = 0;
    ELSE
        DELETE FROM pg_catalog.pg_init_privs
         WHERE classoid = 'pg_catalog.pg_class'::pg_catalog.regclass AND objoid = view_oid AND objsubid = 0;
    END IF;
END
$$;

-- Fixed: the identity sequences of the privacy ledger and the consent history were not dumped,
-- so after a restore they handed out ids already taken (the next charge or consent failed).
SELECT pg_catalog.pg_extension_config_dump('@extschema@.privacy_charges_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.consents_id_seq', '');

-- compliance_report(): new checks audit_state (audit triggers and event triggers as they must be)
-- and, last, extension_version (schema older than the library); sensitive_unaudited by the
-- audited tables rather than by a trigger's name.
CREATE OR REPLACE FUNCTION @extschema@.compliance_report()
RETURNS TABLE (check_name text, status text, detail text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    days integer := coalesce(nullif(current_setting('encml.key_rotation_days', true), '')::integer, 90);
    n bigint;
    list text;
    n_policy bigint;
    list_policy text;
    v record;
    col record;
    destroyed uuid[];
    hits text[] := '{}';
BEGIN
    PERFORM encml.audit_seal();  -- also loads the library, so its settings are defined

    check_name := 'ssl';
    IF current_setting('ssl') = 'on' THEN
        status := 'pass'; detail := 'ssl = on';
    ELSE
        status := 'fail'; detail := 'ssl = off: client connections are not encrypted';
    END IF;
    RETURN NEXT;

    -- Encryption in transit (docs/zero-trust.md): the protocol floor, pg_hba.conf lines that
    -- admit the network in the clear, services without client certificates, live connections.
    check_name := 'tls_min_protocol';
    list := current_setting('ssl_min_protocol_version');
    IF list IN ('TLSv1.3') THEN
        status := 'pass'; detail := 'ssl_min_protocol_version = TLSv1.3';
    ELSIF list = 'TLSv1.2' THEN
        status := 'warn'; detail := 'ssl_min_protocol_version = TLSv1.2: raise it to TLSv1.3 once every client supports it';
    ELSE
        status := 'fail'; detail := format('ssl_min_protocol_version = %s: TLS below 1.2 is broken; set TLSv1.3 (or TLSv1.2)', coalesce(nullif(list, ''), 'any'));
    END IF;
    RETURN NEXT;

    check_name := 'hba_remote_tls';
    SELECT string_agg(format('line %s: %s %s %s', r.line_number, r.type, r.address, r.auth_method), '; ' ORDER BY r.line_number)
      INTO list
      FROM pg_hba_file_rules r
     WHERE r.error IS NULL AND r.type IN ('host', 'hostnossl', 'hostnogssenc') AND r.auth_method <> 'reject'
       AND NOT encml.hba_rule_is_loopback(r.address, r.netmask);
    IF list IS NULL THEN
        status := 'pass'; detail := 'pg_hba.conf admits the network only through hostssl or hostgssenc lines';
    ELSE
        status := 'fail'; detail := 'lines admitting the network without encryption: ' || list;
    END IF;
    RETURN NEXT;

    check_name := 'tls_service_roles';
    SELECT string_agg(format('%s (line %s: %s %s %s)', m.role, r.line_number, r.type, r.address, r.auth_method), '; '
                      ORDER BY m.role::text, r.line_number),
           (SELECT count(*) FROM encml.tls_service_roles)
      INTO list, n
      FROM encml.tls_service_roles m
      JOIN pg_hba_file_rules r
        ON r.error IS NULL AND r.type <> 'local' AND r.auth_method <> 'reject'
       AND NOT encml.hba_rule_is_loopback(r.address, r.netmask)
       AND EXISTS (SELECT FROM unnest(r.user_name) u
                    WHERE u = 'all' OR u = m.role::text
                       OR (left(u, 1) = '+' AND EXISTS (SELECT FROM pg_roles g WHERE g.rolname = substr(u, 2)
                                                          AND pg_has_role(m.role, g.oid, 'MEMBER'))))
     WHERE NOT (r.type = 'hostssl' AND (r.auth_method = 'cert' OR coalesce('clientcert=verify-full' = ANY (r.options), false)));
    IF n = 0 THEN
        status := 'pass'; detail := 'no role is marked as a service (encml.mark_tls_service_role)';
    ELSIF list IS NULL THEN
        status := 'pass'; detail := format('%s service role(s) admitted from the network only with a verified client certificate', n);
    ELSE
        status := 'fail'; detail := 'service roles admitted without clientcert=verify-full: ' || list;
    END IF;
    RETURN NEXT;

    check_name := 'tls_connections';
    SELECT count(*), string_agg(format('%s from %s', a.usename, a.client_addr), ', ' ORDER BY a.pid)
      INTO n, list
      FROM pg_stat_activity a
      JOIN pg_stat_ssl s ON s.pid = a.pid
      JOIN pg_stat_gssapi g ON g.pid = a.pid
     WHERE a.backend_type = 'client backend' AND a.client_addr IS NOT NULL AND NOT s.ssl AND NOT g.encrypted;
    IF n = 0 THEN
        status := 'pass'; detail := 'no connection over the network without TLS';
    ELSE
        status := 'warn'; detail := format('%s connection(s) over the network without TLS: %s', n, list);
    END IF;
    RETURN NEXT;

    check_name := 'password_encryption';
    SELECT count(*) INTO n FROM pg_authid WHERE rolpassword LIKE 'md5%';
    IF current_setting('password_encryption') <> 'scram-sha-256' THEN
        status := 'fail'; detail := format('password_encryption = %s', current_setting('password_encryption'));
    ELSIF n > 0 THEN
        status := 'warn'; detail := format('%s role(s) still have MD5 passwords', n);
    ELSE
        status := 'pass'; detail := 'scram-sha-256';
    END IF;
    RETURN NEXT;

    check_name := 'master_key_source';
    IF coalesce(current_setting('encml.master_key_pkcs11_module', true), '') <> '' THEN
        status := 'pass'; detail := 'a PKCS#11 token (encml.master_key_pkcs11_module): the master keys never leave it';
    ELSIF coalesce(current_setting('encml.master_key_command', true), '') <> '' THEN
        status := 'pass'; detail := 'a command (encml.master_key_command)';
    ELSIF coalesce(current_setting('encml.master_key_file', true), '') <> '' THEN
        status := 'pass'; detail := 'a file (encml.master_key_file)';
    ELSE
        status := 'fail';
        detail := 'the development master key in the data directory (encml.allow_development_master_key): it travels with every backup of the data; set encml.master_key_command';
    END IF;
    RETURN NEXT;

    -- Keys with a rotation policy (encml.set_rotation_policy) are judged by it: behind it by
    -- more than an hour, or with an error on the policy, is a failure (the lifecycle worker is
    -- not running or cannot act). Other keys by encml.key_rotation_days.
    check_name := 'key_rotation';
    SELECT count(*) FILTER (WHERE p.key_id IS NULL),
           string_agg(format('%s (%s)', k.name, k.id), ', ' ORDER BY v2.created_at) FILTER (WHERE p.key_id IS NULL),
           count(*) FILTER (WHERE p.key_id IS NOT NULL),
           string_agg(format('%s (%s)%s', k.name, k.id, coalesce(': ' || p.last_error, '')), ', ' ORDER BY v2.created_at)
               FILTER (WHERE p.key_id IS NOT NULL)
      INTO n, list, n_policy, list_policy
      FROM encml.data_keys k
      JOIN encml.data_key_versions v2 ON v2.key_id = k.id AND v2.version = k.current_version
      LEFT JOIN encml.rotation_policies p ON p.key_id = k.id
     WHERE k.destroyed_at IS NULL
       AND CASE WHEN p.key_id IS NULL THEN v2.created_at < now() - make_interval(days => days)
                ELSE p.last_error IS NOT NULL OR v2.created_at + p.rotate_every < now() - interval '1 hour' END;
    IF n_policy > 0 THEN
        status := 'fail';
        detail := format('%s key(s) behind their rotation policy (is pg_encrypt_ml in shared_preload_libraries, or encml.run_key_lifecycle() scheduled?): %s', n_policy, left(list_policy, 500));
    ELSIF n > 0 THEN
        status := 'warn'; detail := format('%s key(s) not rotated for %s days: %s (encml.set_rotation_policy rotates keys on a schedule)', n, days, left(list, 500));
    ELSE
        status := 'pass'; detail := format('every live key rotated within %s days or as its rotation policy says', days);
    END IF;
    RETURN NEXT;

    check_name := 'key_compromises';
    SELECT count(*), string_agg(format('%s v%s (reported %s)', c.key_id, c.version, c.reported_at), ', ' ORDER BY c.reported_at)
      INTO n, list
      FROM encml.key_compromises c
      JOIN encml.data_keys k ON k.id = c.key_id
     WHERE c.cleared_at IS NULL AND k.destroyed_at IS NULL;
    IF n > 0 THEN
        status := 'fail';
        detail := format('%s compromised key version(s) still protect values (see encml.reencryption_progress): %s', n, left(list, 500));
    ELSE
        status := 'pass'; detail := 'no value depends on a compromised key version';
    END IF;
    RETURN NEXT;

    check_name := 'key_nonce_budget';
    SELECT count(*), string_agg(format('%s v%s (%s)', u.key_id, u.version, u.encryptions), ', ' ORDER BY u.encryptions DESC)
      INTO n, list
      FROM encml.key_usage u
     WHERE u.status = 'active' AND u.encryptions >= 2147483648;
    IF n > 0 THEN
        status := 'fail';
        detail := format('%s key version(s) past 2^31 AES-GCM encryptions (the random-nonce limit is 2^32): rotate them: %s', n, left(list, 500));
    ELSIF NOT 'pg_encrypt_ml' = ANY (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ',')) THEN
        status := 'warn';
        detail := 'pg_encrypt_ml is not in shared_preload_libraries: encryptions are counted per backend and mostly not recorded';
    ELSE
        status := 'pass'; detail := 'every active key version below 2^31 encryptions';
    END IF;
    RETURN NEXT;

    check_name := 'tenant_isolation';
    SELECT count(*), string_agg(c.oid::regclass::text, ', ' ORDER BY c.oid::regclass::text)
      INTO n, list
      FROM pg_class c
      JOIN pg_namespace s ON s.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p')
       AND s.nspname NOT IN ('pg_catalog', 'information_schema', 'encml') AND s.nspname NOT LIKE 'pg\_%'
       AND EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname IN ('tenant_id', 'tenant')
                      AND NOT a.attisdropped AND a.attnum > 0)
       AND NOT (c.relrowsecurity AND c.relforcerowsecurity
                AND EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = c.oid
                               AND pg_get_expr(p.polqual, p.polrelid) LIKE '%current_tenant()%'));
    IF n > 0 THEN
        status := 'fail'; detail := format('%s table(s) with a tenant column but no tenant isolation: %s', n, left(list, 500));
    ELSE
        status := 'pass'; detail := 'every table with a tenant column is isolated';
    END IF;
    RETURN NEXT;

    check_name := 'sensitive_plaintext';
    SELECT count(*), string_agg(format('%s.%I (%s, %s)', table_name, column_name, label, data_type), ', '
                                ORDER BY table_name::text, column_name)
      INTO n, list
      FROM encml.classified_columns
     WHERE label IN ('pii', 'phi', 'pci', 'secret')
       AND data_type NOT IN ('encml.enc_bytea', 'encml.det_text', 'encml.ore_int8', 'encml.ore_float8',
                             'encml.ore_timestamptz', 'enc_bytea', 'det_text', 'ore_int8', 'ore_float8',
                             'ore_timestamptz');
    IF n > 0 THEN
        status := 'fail'; detail := format('%s sensitive column(s) stored in clear: %s', n, left(list, 500));
    ELSE
        status := 'pass'; detail := 'every sensitive column is encrypted';
    END IF;
    RETURN NEXT;

    check_name := 'sensitive_unaudited';
    SELECT count(*), string_agg(t::text, ', ' ORDER BY t::text)
      INTO n, list
      FROM (SELECT DISTINCT c.table_oid::regclass AS t FROM encml.column_classes c
             WHERE c.label IN ('pii', 'phi', 'pci', 'secret')
               -- Audited itself or through a partitioned table above it (the state of its
               -- triggers is the audit_state check).
               AND NOT EXISTS (SELECT FROM encml.audited_tables a
                                WHERE a.table_oid = c.table_oid
                                   OR a.table_oid::oid IN (SELECT pg_partition_ancestors(c.table_oid)))) s;
    IF n > 0 THEN
        status := 'fail'; detail := format('%s table(s) with sensitive columns are not audited: %s', n, left(list, 500));
    ELSE
        status := 'pass'; detail := 'every table with sensitive columns is audited';
    END IF;
    RETURN NEXT;

    check_name := 'audit_chain';
    SELECT CASE WHEN r.ok THEN 'pass' ELSE 'fail' END,
           CASE WHEN r.first_bad_id IS NULL THEN r.detail ELSE format('row %s: %s', r.first_bad_id, r.detail) END
      INTO status, detail FROM encml.audit_verify() r;
    RETURN NEXT;

    -- Audit triggers as audit_enable made them, event triggers enabled ALWAYS.
    check_name := 'audit_state';
    SELECT count(*), string_agg(coalesce(a.table_name || ': ', '') || a.problem, '; ')
      INTO n, list FROM encml.audit_state() a;
    IF n > 0 THEN
        status := 'fail'; detail := format('%s deviation(s): %s', n, left(list, 1000));
    ELSE
        status := 'pass'; detail := 'every audited table has its audit triggers enabled as configured; event triggers enabled';
    END IF;
    RETURN NEXT;

    check_name := 'destroyed_keys_referenced';
    SELECT array_agg(id) INTO destroyed FROM encml.data_keys WHERE destroyed_at IS NOT NULL;
    IF destroyed IS NOT NULL THEN
        FOR col IN
            SELECT a.attrelid::regclass AS tbl, a.attname
              FROM pg_attribute a
              JOIN pg_class c ON c.oid = a.attrelid AND c.relkind IN ('r', 'p', 'm')
              JOIN pg_namespace s ON s.oid = c.relnamespace
             WHERE a.attnum > 0 AND NOT a.attisdropped
               AND s.nspname NOT IN ('pg_catalog', 'information_schema', 'encml')
               AND a.atttypid IN ('encml.enc_bytea'::regtype, 'encml.det_text'::regtype, 'encml.ore_int8'::regtype,
                                  'encml.ore_float8'::regtype, 'encml.ore_timestamptz'::regtype)
        LOOP
            EXECUTE format('SELECT count(*) FROM %s WHERE encml.key_id(%I) = ANY ($1)', col.tbl, col.attname)
               INTO n USING destroyed;
            IF n > 0 THEN
                hits := hits || format('%s.%I (%s)', col.tbl, col.attname, n);
            END IF;
        END LOOP;
    END IF;
    IF cardinality(hits) > 0 THEN
        status := 'warn';
        detail := format('values under destroyed keys (unreadable; erase or drop them): %s', array_to_string(hits, ', '));
    ELSE
        status := 'pass'; detail := 'no value refers to a destroyed key';
    END IF;
    RETURN NEXT;

    -- Crypto-shredding (destroy_key, forget_tenant, subject_forget) reaches backups only once
    -- the master key that wrapped the destroyed keys is replaced and removed.
    check_name := 'erasure_in_backups';
    -- (the test of the keys view's awaiting_master_key_rotation: a rotation to the same master
    -- key does not count)
    SELECT count(*) INTO n FROM encml.data_keys k
     WHERE k.destroyed_at IS NOT NULL
       AND NOT EXISTS (
           SELECT FROM encml.master_key_rotations r
            WHERE r.rotated_at > k.destroyed_at
              AND r.master_key_fingerprint NOT IN (
                  SELECT kv.master_key_fingerprint FROM encml.data_key_versions kv
                   WHERE kv.key_id = k.id AND kv.master_key_fingerprint IS NOT NULL));
    IF n > 0 THEN
        status := 'warn';
        detail := format('%s key(s) destroyed but still unwrappable by the master key of older backups: move to a new master key with encml.rotate_master_key() and remove the old one', n);
    ELSE
        status := 'pass'; detail := 'every destroyed key''s master key was replaced since';
    END IF;
    RETURN NEXT;

    -- Clearances restrict decryption by the labels of keys: a column classified L whose values
    -- use a key without label L is readable by anyone holding the key grant.
    check_name := 'classified_keys_labeled';
    hits := '{}';
    FOR col IN
        SELECT c.table_oid::regclass AS tbl, a.attname, c.label
          FROM encml.column_classes c
          JOIN pg_attribute a ON a.attrelid = c.table_oid AND a.attnum = c.attnum AND NOT a.attisdropped
         WHERE a.atttypid IN ('encml.enc_bytea'::regtype, 'encml.det_text'::regtype, 'encml.ore_int8'::regtype,
                              'encml.ore_float8'::regtype, 'encml.ore_timestamptz'::regtype)
    LOOP
        EXECUTE format('SELECT count(DISTINCT k) FROM (SELECT encml.key_id(%I) AS k FROM %s) s
                         WHERE k IS NOT NULL
                           AND NOT EXISTS (SELECT FROM encml.key_labels l WHERE l.key_id = s.k AND l.label = $1)',
                       col.attname, col.tbl)
           INTO n USING col.label;
        IF n > 0 THEN
            hits := hits || format('%s.%I (%s: %s key(s) without the label)', col.tbl, col.attname, col.label, n);
        END IF;
    END LOOP;
    IF cardinality(hits) > 0 THEN
        status := 'warn';
        detail := format('classified columns whose keys are not labelled, so no clearance is needed to decrypt them (encml.label_key): %s',
                         left(array_to_string(hits, ', '), 500));
    ELSE
        status := 'pass'; detail := 'the keys of every classified encrypted column carry its label';
    END IF;
    RETURN NEXT;

    -- One library serves every installed schema version: until ALTER EXTENSION ... UPDATE, the
    -- schema lacks what the library's release added and fixed (docs/upgrading.md).
    check_name := 'extension_version';
    SELECT e.extversion INTO list FROM pg_extension e WHERE e.extname = 'pg_encrypt_ml';
    IF list = encml.library_version() THEN
        status := 'pass'; detail := format('schema and library at %s', list);
    ELSE
        status := 'warn';
        detail := format('the schema is at %s, the library at %s: run ALTER EXTENSION pg_encrypt_ml UPDATE',
                         list, encml.library_version());
    END IF;
    RETURN NEXT;
END
$$;

-- Audit triggers cannot be silenced (docs/audit.md): the state auditing needs, checked by
-- audit_verify and compliance_report, and event triggers that log DDL on audited tables and
-- refuse a non-superuser's statement that weakens their audit triggers.
CREATE FUNCTION @extschema@."audit_state"() RETURNS TABLE (
	"table_name" TEXT,  /* Option < String > */
	"problem" TEXT  /* String */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'audit_state_wrapper';
COMMENT ON FUNCTION @extschema@.audit_state() IS
    'Deviations from what auditing needs: audit triggers of audited tables (and the tables under them) missing, disabled, replica-only, conditional, narrowed or redacting other columns; the extension''s event triggers missing or not ENABLE ALWAYS (auditors)';
REVOKE ALL ON FUNCTION @extschema@.audit_state() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.audit_state() TO encml_auditor;

CREATE FUNCTION @extschema@.audit_ddl_start() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'encml_audit_ddl_start';
CREATE FUNCTION @extschema@.audit_ddl_end() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'encml_audit_ddl_end';
CREATE FUNCTION @extschema@.audit_sql_drop() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'encml_audit_sql_drop';
CREATE FUNCTION @extschema@.audit_table_rewrite() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'encml_audit_table_rewrite';
REVOKE ALL ON FUNCTION @extschema@.audit_ddl_start(), @extschema@.audit_ddl_end(),
    @extschema@.audit_sql_drop(), @extschema@.audit_table_rewrite() FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.audit_ddl_start() IS
    'Event trigger function (ddl_command_start): notes the audited tables and audit triggers a DROP statement may remove, and logs a DETACH PARTITION ... CONCURRENTLY of an audited table''s partition before its first transaction commits';
COMMENT ON FUNCTION @extschema@.audit_ddl_end() IS
    'Event trigger function (ddl_command_end): logs DDL on audited tables, audits tables that join them, refuses weakening their audit triggers';
COMMENT ON FUNCTION @extschema@.audit_sql_drop() IS
    'Event trigger function (sql_drop): logs dropped audited tables and tables under them, refuses dropping audit triggers';
COMMENT ON FUNCTION @extschema@.audit_table_rewrite() IS
    'Event trigger function (table_rewrite): logs rewrites of audited tables';
CREATE EVENT TRIGGER encml_audit_ddl_start ON ddl_command_start
    EXECUTE FUNCTION @extschema@.audit_ddl_start();
CREATE EVENT TRIGGER encml_audit_ddl_end ON ddl_command_end EXECUTE FUNCTION @extschema@.audit_ddl_end();
CREATE EVENT TRIGGER encml_audit_sql_drop ON sql_drop EXECUTE FUNCTION @extschema@.audit_sql_drop();
CREATE EVENT TRIGGER encml_audit_table_rewrite ON table_rewrite
    EXECUTE FUNCTION @extschema@.audit_table_rewrite();
ALTER EVENT TRIGGER encml_audit_ddl_start ENABLE ALWAYS;
ALTER EVENT TRIGGER encml_audit_ddl_end ENABLE ALWAYS;
ALTER EVENT TRIGGER encml_audit_sql_drop ENABLE ALWAYS;
ALTER EVENT TRIGGER encml_audit_table_rewrite ENABLE ALWAYS;
ALTER EVENT TRIGGER encml_forget_dropped_tables ENABLE ALWAYS;

-- Fixed: partitions of an audited partitioned table had no TRUNCATE trigger (statement triggers
-- are not cloned), so TRUNCATE of a partition was not logged; inheritance children had neither
-- trigger. Add what is missing, as audit_enable now does (the row trigger's arguments are the
-- audited table's).
DO $$
DECLARE
    r record;
    fn oid := '@extschema@.audit_row_trigger()'::pg_catalog.regprocedure;
BEGIN
    FOR r IN
        WITH RECURSIVE tree(root, relid) AS (
            SELECT a.table_oid::oid, a.table_oid::oid FROM @extschema@.audited_tables a
             WHERE pg_catalog.to_regclass(a.table_oid::oid::text) IS NOT NULL
            UNION
            SELECT t.root, i.inhrelid FROM tree t JOIN pg_catalog.pg_inherits i ON i.inhparent = t.relid)
        SELECT t.relid::pg_catalog.regclass AS rel, c.relispartition,
               (SELECT g.tgargs FROM pg_catalog.pg_trigger g
                 WHERE g.tgrelid = t.root AND g.tgfoid = fn AND g.tgtype = 29 LIMIT 1) AS root_args,
               EXISTS (SELECT FROM pg_catalog.pg_trigger g WHERE g.tgrelid = t.relid AND g.tgfoid = fn
                          AND g.tgtype = 29) AS has_row,
               EXISTS (SELECT FROM pg_catalog.pg_trigger g WHERE g.tgrelid = t.relid AND g.tgfoid = fn
                          AND g.tgtype = 32) AS has_truncate
          FROM tree t JOIN pg_catalog.pg_class c ON c.oid = t.relid
         WHERE t.relid <> t.root
    LOOP
        IF NOT r.has_row AND NOT r.relispartition AND r.root_args IS NOT NULL THEN
            EXECUTE pg_catalog.format(
                'CREATE TRIGGER encml_audit_row AFTER INSERT OR UPDATE OR DELETE ON %s '
                'FOR EACH ROW EXECUTE FUNCTION @extschema@.audit_row_trigger(%s)',
                r.rel,
                (SELECT pg_catalog.string_agg(pg_catalog.quote_literal(a), ', ')
                   FROM pg_catalog.unnest(pg_catalog.string_to_array(
                            pg_catalog.rtrim(pg_catalog.encode(r.root_args, 'escape'), '\000'), '\000')) a
                  WHERE a <> ''));
        END IF;
        IF NOT r.has_truncate THEN
            EXECUTE pg_catalog.format(
                'CREATE TRIGGER encml_audit_truncate AFTER TRUNCATE ON %s '
                'FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.audit_row_trigger()', r.rel);
        END IF;
    END LOOP;
END
$$;

-- audit_head() also returns the head's seq (a new last column: the OUT columns of a function
-- cannot change in place), and audit_verify(expected_seq, expected_mac) checks the chain against
-- a head recorded outside the database.
DROP FUNCTION @extschema@.audit_head();
CREATE FUNCTION @extschema@."audit_head"() RETURNS TABLE (
	"id" bigint,  /* Option < i64 > */
	"mac" TEXT,  /* Option < String > */
	"seq" bigint  /* Option < i64 > */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'audit_head_with_seq_wrapper';
COMMENT ON FUNCTION @extschema@.audit_head() IS
    'Seals, then returns the chain head (id, MAC, seq) for an external system to record as a witness and pass to audit_verify(seq, mac) (auditors)';
REVOKE ALL ON FUNCTION @extschema@.audit_head() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.audit_head() TO encml_auditor;
CREATE FUNCTION @extschema@."audit_verify"(
	"expected_seq" bigint, /* i64 */
	"expected_mac" TEXT /* & str */
) RETURNS TABLE (
	"ok" bool,  /* bool */
	"rows_checked" bigint,  /* i64 */
	"first_bad_id" bigint,  /* Option < i64 > */
	"detail" TEXT  /* String */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'audit_verify_against_wrapper';
COMMENT ON FUNCTION @extschema@.audit_verify(bigint, text) IS
    'Verifies the audit chain as audit_verify() does, and that it passes through a head recorded outside the database by audit_head() (seq, mac), also once that head is purged (auditors)';
REVOKE ALL ON FUNCTION @extschema@.audit_verify(bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.audit_verify(bigint, text) TO encml_auditor;

-- Service keys (docs/formats.md): the audit chain's and redaction's keys leave the master key's
-- derivation for the catalog, wrapped by the master key and rewrapped by rotate_master_key(), so
-- that removing an old master key no longer makes the rows it sealed unverifiable. Created on
-- first use after this update, importing what every configured master key derived before.
CREATE TABLE @extschema@.service_keys (
    purpose                text NOT NULL CHECK (purpose IN ('audit-chain', 'audit-redact')),
    version                integer NOT NULL CHECK (version > 0),
    wrapped_key            bytea NOT NULL,
    master_key_fingerprint text NOT NULL,
    -- Imported: equal to what this master key derived for the purpose before 0.2.0.
    derived_from           text,
    created_at             timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (purpose, version)
);
COMMENT ON TABLE @extschema@.service_keys IS
    'pg_encrypt_ml: the extension''s own keys (audit chain, redaction), wrapped by the master key; never deleted';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.service_keys', '');
CREATE FUNCTION @extschema@.service_keys_guard() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'encml_service_keys_guard';
COMMENT ON FUNCTION @extschema@.service_keys_guard() IS 'Trigger refusing DELETE and TRUNCATE of encml.service_keys';
REVOKE ALL ON FUNCTION @extschema@.service_keys_guard() FROM PUBLIC;
CREATE TRIGGER service_keys_never_deleted BEFORE DELETE ON @extschema@.service_keys
    FOR EACH ROW EXECUTE FUNCTION @extschema@.service_keys_guard();
CREATE TRIGGER service_keys_never_truncated BEFORE TRUNCATE ON @extschema@.service_keys
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.service_keys_guard();

-- Read auditing: audit_enable(tbl, redact, reads => true) logs each statement that reads the
-- table (library preloaded). A new column of audited_tables, and audit_enable gets a third
-- parameter (dropped and created again: a function's parameters cannot change in place).
ALTER TABLE @extschema@.audited_tables ADD COLUMN reads boolean NOT NULL DEFAULT false;
DROP FUNCTION @extschema@.audit_enable(regclass, text[]);
CREATE FUNCTION @extschema@."audit_enable"(
	"tbl" regclass, /* RegClass */
	"redact" TEXT[] DEFAULT '{}', /* Vec < String > */
	"reads" bool DEFAULT false /* bool */
) RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'audit_enable_with_reads_wrapper';
COMMENT ON FUNCTION @extschema@.audit_enable(regclass, text[], boolean) IS
    'Audits INSERT, UPDATE, DELETE and TRUNCATE of a table (and the tables under it) into encml.audit_log, and with reads => true each statement reading it (library preloaded); listed and sensitive-classified columns are redacted to keyed hashes (table owner)';
REVOKE ALL ON FUNCTION @extschema@.audit_enable(regclass, text[], boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.audit_enable(regclass, text[], boolean) TO PUBLIC;

-- Incremental verification: audit_verify() starts at the latest checkpoint a verification left;
-- audit_verify_full() walks everything.
CREATE FUNCTION @extschema@."audit_verify_full"() RETURNS TABLE (
	"ok" bool,  /* bool */
	"rows_checked" bigint,  /* i64 */
	"first_bad_id" bigint,  /* Option < i64 > */
	"detail" TEXT  /* String */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'audit_verify_full_wrapper';
COMMENT ON FUNCTION @extschema@.audit_verify_full() IS
    'Verifies the whole audit chain from its start (not from the latest checkpoint), and leaves a checkpoint for the next audit_verify() (auditors)';
REVOKE ALL ON FUNCTION @extschema@.audit_verify_full() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.audit_verify_full() TO encml_auditor;
COMMENT ON FUNCTION @extschema@.audit_verify(bigint) IS
    'Verifies the audit chain from the latest checkpoint (or from a row id), the newest seal witness and the audit state (auditors)';

-- Where verification starts (the latest anchor and checkpoint), found without walking the log
-- (with no anchor, finding that there is none walked all of it). Filled from the log's anchors.
CREATE TABLE @extschema@.audit_markers (
    kind   text PRIMARY KEY CHECK (kind IN ('anchor', 'checkpoint')),
    seq    bigint NOT NULL,
    log_id bigint NOT NULL
);
COMMENT ON TABLE @extschema@.audit_markers IS 'pg_encrypt_ml: the seq of the latest purge anchor and verification checkpoint in encml.audit_log';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.audit_markers', '');
CREATE TRIGGER audit_markers_guard BEFORE UPDATE OR DELETE ON @extschema@.audit_markers
    FOR EACH ROW EXECUTE FUNCTION @extschema@.audit_log_guard();
CREATE TRIGGER audit_markers_no_truncate BEFORE TRUNCATE ON @extschema@.audit_markers
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.audit_log_guard();
GRANT SELECT ON @extschema@.audit_markers TO encml_auditor;
INSERT INTO @extschema@.audit_markers (kind, seq, log_id)
SELECT 'anchor', seq, id FROM @extschema@.audit_log
 WHERE kind = 'anchor' AND seq IS NOT NULL ORDER BY seq DESC LIMIT 1;
COMMENT ON TABLE @extschema@.audit_log IS
    'pg_encrypt_ml: append-only audit log; seq/mac chain each sealed row to the previous one (HMAC-SHA256 under the audit-chain service key that mac_key names)';

-- The audit log is partitioned by whether a row is sealed, and its sealed rows by ranges of seq,
-- so that audit_purge returns disk space instead of leaving dead rows (docs/formats.md, "Audit
-- log"). The 0.1.0 table's rows are copied (once, unchanged) into the new one: its sealed rows
-- into a first range (audit_log_s0, a table of the database like the ranges sealing creates,
-- not of the extension), its unsealed rows into the unsealed partition; ids continue in the new
-- table's identity sequence.
DO $$
DECLARE
    dependents text;
BEGIN
    -- Views of the database's own over the log would keep reading the old rows only: say which.
    SELECT pg_catalog.string_agg(DISTINCT pg_catalog.pg_describe_object(d.classid, d.objid, 0), ', ')
      INTO dependents
      FROM pg_catalog.pg_depend d
      JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
     WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
       AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
       AND d.refobjid = '@extschema@.audit_log'::pg_catalog.regclass
       AND r.ev_class <> '@extschema@.audit_log'::pg_catalog.regclass
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend e
                        WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                          AND e.objid = r.ev_class AND e.deptype = 'e');
    IF dependents IS NOT NULL THEN
        RAISE EXCEPTION 'pg_encrypt_ml 0.2.0 rebuilds encml.audit_log, which these objects depend on: %', dependents
              USING ERRCODE = 'dependent_objects_still_exist',
                    HINT = 'Drop them, run ALTER EXTENSION pg_encrypt_ml UPDATE, and create them again.';
    END IF;
END
$$;
ALTER TABLE @extschema@.audit_log RENAME TO audit_log_v010;
ALTER SEQUENCE @extschema@.audit_log_id_seq RENAME TO audit_log_v010_id_seq;
CREATE TABLE @extschema@.audit_log (
    id               bigint GENERATED ALWAYS AS IDENTITY,  -- unique by its sequence and the MAC
    logged_at        timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    xact_started_at  timestamptz NOT NULL DEFAULT pg_catalog.transaction_timestamp(),
    xact_id          xid8,
    session_role     text NOT NULL DEFAULT pg_catalog."session_user"(),
    effective_role   text NOT NULL,
    client_addr      inet DEFAULT pg_catalog.inet_client_addr(),
    application_name text DEFAULT pg_catalog.current_setting('application_name'),
    tenant           text,
    kind             text NOT NULL,  -- row | event | anchor | checkpoint (no CHECK: a parse per insert)
    operation        text NOT NULL,
    table_oid        oid,
    table_name       text,
    old_row          jsonb,
    new_row          jsonb,
    changed_columns  text[],
    detail           jsonb,
    seq              bigint,
    mac              bytea,
    mac_key          text
) PARTITION BY LIST ((seq IS NULL));
COMMENT ON TABLE @extschema@.audit_log IS
    'pg_encrypt_ml: append-only audit log; seq/mac chain each sealed row to the previous one (HMAC-SHA256 under the audit-chain service key that mac_key names)';
CREATE TABLE @extschema@.audit_log_unsealed PARTITION OF @extschema@.audit_log FOR VALUES IN (true);
COMMENT ON TABLE @extschema@.audit_log_unsealed IS 'pg_encrypt_ml: audit rows not sealed yet (part of encml.audit_log)';
CREATE TABLE @extschema@.audit_log_sealed PARTITION OF @extschema@.audit_log FOR VALUES IN (false) PARTITION BY RANGE (seq);
COMMENT ON TABLE @extschema@.audit_log_sealed IS
    'pg_encrypt_ml: sealed audit rows (part of encml.audit_log), in partitions audit_log_s<first seq> by ranges of seq, each unique on seq';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.audit_log_unsealed', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.audit_log_id_seq', '');
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON @extschema@.audit_log
    FOR EACH ROW EXECUTE FUNCTION @extschema@.audit_log_guard();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON @extschema@.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.audit_log_guard();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON @extschema@.audit_log_unsealed
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.audit_log_guard();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON @extschema@.audit_log_sealed
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.audit_log_guard();
GRANT SELECT ON @extschema@.audit_log TO encml_auditor;
SELECT pg_catalog.setval('@extschema@.audit_log_id_seq', last_value, is_called)
  FROM @extschema@.audit_log_v010_id_seq;
DO $$
DECLARE
    top bigint;
BEGIN
    SELECT pg_catalog.max(seq) INTO top FROM @extschema@.audit_log_v010;
    IF top IS NOT NULL THEN
        EXECUTE pg_catalog.format('CREATE TABLE @extschema@.audit_log_s0 PARTITION OF @extschema@.audit_log_sealed FOR VALUES FROM (MINVALUE) TO (%s)', top + 1);
        ALTER TABLE @extschema@.audit_log_s0 ADD CONSTRAINT audit_log_s0_seq_key UNIQUE (seq);
        CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON @extschema@.audit_log_s0
            FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.audit_log_guard();
        ALTER EXTENSION pg_encrypt_ml DROP TABLE @extschema@.audit_log_s0;
    END IF;
END
$$;
INSERT INTO @extschema@.audit_log OVERRIDING SYSTEM VALUE SELECT * FROM @extschema@.audit_log_v010;
CREATE OR REPLACE VIEW @extschema@.security_events AS
SELECT id, logged_at,
       coalesce(detail->>'severity', 'info') AS severity,
       operation AS kind,
       session_role, effective_role, client_addr, application_name, tenant, table_name,
       detail
  FROM @extschema@.audit_log
 WHERE kind = 'event';
ALTER EXTENSION pg_encrypt_ml DROP SEQUENCE @extschema@.audit_log_v010_id_seq;
ALTER EXTENSION pg_encrypt_ml DROP TABLE @extschema@.audit_log_v010;
DROP TABLE @extschema@.audit_log_v010;

-- Backends cache which relations are audited; a change of audited_tables made by other means
-- than audit_enable (a restore's COPY, the owner's own DML) reaches them through this trigger.
CREATE FUNCTION @extschema@.audited_tables_changed() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'encml_audited_tables_changed';
COMMENT ON FUNCTION @extschema@.audited_tables_changed() IS 'Trigger telling every backend that encml.audited_tables changed (its cache of audited relations)';
CREATE TRIGGER audited_tables_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.audited_tables
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.audited_tables_changed();
REVOKE ALL ON FUNCTION @extschema@.audited_tables_changed() FROM PUBLIC;

-- Classifications name their column too: a restored table has no dropped columns, so its
-- attribute numbers may differ from the dumped ones, and the name finds the column again.
ALTER TABLE @extschema@.column_classes ADD COLUMN column_name text;
CREATE FUNCTION @extschema@.column_classes_resolve() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    found_attnum smallint;
BEGIN
    IF NEW.column_name IS NULL THEN
        SELECT a.attname INTO NEW.column_name FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = NEW.table_oid AND a.attnum = NEW.attnum AND NOT a.attisdropped;
    ELSE
        SELECT a.attnum INTO found_attnum FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = NEW.table_oid AND a.attname = NEW.column_name::name
           AND a.attnum > 0 AND NOT a.attisdropped;
        IF found_attnum IS NOT NULL THEN
            NEW.attnum := found_attnum;
        END IF;
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION @extschema@.column_classes_resolve() IS 'Trigger of encml.column_classes: a row naming its column takes that column''s attribute number (a restore), a row without a name gets it';
REVOKE ALL ON FUNCTION @extschema@.column_classes_resolve() FROM PUBLIC;
CREATE TRIGGER column_classes_resolve BEFORE INSERT OR UPDATE ON @extschema@.column_classes
    FOR EACH ROW EXECUTE FUNCTION @extschema@.column_classes_resolve();
-- (Rows whose column no longer exists keep no name; the warning above named them.)
UPDATE @extschema@.column_classes SET column_name = NULL;

-- DP-only tables (issue 26): their catalog, the view that lists them, dp_protect, dp_unprotect
-- and dp_gate (as sql/schema/dp_only.sql and finalize.sql create them).
CREATE TABLE @extschema@.dp_protected_tables (
    table_oid regclass PRIMARY KEY,
    privacy_unit name NOT NULL,
    max_rows_per_unit integer NOT NULL CHECK (max_rows_per_unit > 0),
    enabled_row_security boolean NOT NULL,
    forced_row_security boolean NOT NULL,
    protected_by name NOT NULL,
    protected_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE @extschema@.dp_protected_tables IS
    'pg_encrypt_ml: DP-only tables (dp_protect): read by other roles only through dp aggregates bounded by the privacy unit; whether dp_protect enabled or forced row-level security (dp_unprotect restores it)';
REVOKE ALL ON @extschema@.dp_protected_tables FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('@extschema@.dp_protected_tables', '');
CREATE VIEW @extschema@.dp_protected AS
SELECT table_oid, privacy_unit, max_rows_per_unit, protected_by, protected_at FROM @extschema@.dp_protected_tables;
COMMENT ON VIEW @extschema@.dp_protected IS
    'pg_encrypt_ml: the DP-only tables, their privacy unit and the most rows one unit may contribute';
GRANT SELECT ON @extschema@.dp_protected TO PUBLIC;
CREATE FUNCTION @extschema@.dp_gate() RETURNS bool
STRICT STABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'dp_gate_wrapper';
CREATE FUNCTION @extschema@.dp_protect(
    "tbl" regclass,
    "privacy_unit" TEXT,
    "max_rows_per_unit" INT DEFAULT 1
) RETURNS void
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'dp_protect_wrapper';
CREATE FUNCTION @extschema@.dp_unprotect(
    "tbl" regclass
) RETURNS void
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'dp_unprotect_wrapper';
COMMENT ON FUNCTION @extschema@.dp_protect(regclass, text, integer) IS
    'Makes a table DP-only (its owner; library preloaded): roles that neither own it nor are privacy admins read it only through dp aggregates bounded by the privacy unit column; forces row-level security with the encml_dp_gate policy';
COMMENT ON FUNCTION @extschema@.dp_unprotect(regclass) IS
    'Makes a DP-only table ordinary again (its owner), restoring its row-level security settings';
COMMENT ON FUNCTION @extschema@.dp_gate() IS
    'Condition of the encml_dp_gate policy of DP-only tables: true where the library is preloaded (so statements reading them are checked)';
REVOKE ALL ON FUNCTION @extschema@.dp_gate(), @extschema@.dp_protect(regclass, text, integer),
    @extschema@.dp_unprotect(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.dp_gate(), @extschema@.dp_protect(regclass, text, integer),
    @extschema@.dp_unprotect(regclass) TO PUBLIC;

-- Issue 27: SQL functions run under the caller's search_path no longer resolve its operators.
CREATE OR REPLACE FUNCTION @extschema@.masking_unmasked(roles regrole[]) RETURNS boolean
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (SELECT r.rolsuper FROM pg_catalog.pg_roles r
             WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER)
        OR EXISTS (SELECT FROM pg_catalog.unnest(roles) u(role)
                    WHERE pg_catalog.pg_has_role(CURRENT_USER, u.role, 'MEMBER'))
$$;
CREATE OR REPLACE FUNCTION @extschema@.dp_public_groups_trans(state boolean, key anyelement, public_keys anyarray) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT coalesce(state, true) AND coalesce(key OPERATOR(pg_catalog.=) ANY (public_keys), false) $$;
-- Issue 27: a NULL key is an error, not a NULL token (STRICT turned retokenize_pan(t, k, NULL)
-- into NULL, and an UPDATE with it wiped every token).
ALTER FUNCTION @extschema@.tokenize_pan(text, uuid, integer) CALLED ON NULL INPUT;
ALTER FUNCTION @extschema@.detokenize_pan(text, uuid, integer) CALLED ON NULL INPUT;
ALTER FUNCTION @extschema@.retokenize_pan(text, uuid, uuid, integer) CALLED ON NULL INPUT;

-- Issue 27: ORE input checks the MAC under the key version the value names (forged values could
-- corrupt btree indexes); the result depends on the key catalog, so the input functions are STABLE.
ALTER FUNCTION @extschema@.ore_int8_in(cstring) STABLE;
ALTER FUNCTION @extschema@.ore_int8_recv(internal) STABLE;
ALTER FUNCTION @extschema@.ore_int8_from_bytea(bytea) STABLE;
COMMENT ON FUNCTION @extschema@.ore_int8_in(cstring) IS 'ore_int8 text input: base64 of the binary value; structure and MAC checked (encml.verify_ore_input)';
COMMENT ON FUNCTION @extschema@.ore_int8_recv(internal) IS 'ore_int8 binary input; structure and MAC checked (encml.verify_ore_input)';
COMMENT ON FUNCTION @extschema@.ore_int8_from_bytea(bytea) IS 'Cast bytea to ore_int8 after checking its structure and MAC (encml.verify_ore_input)';
ALTER FUNCTION @extschema@.ore_float8_in(cstring) STABLE;
ALTER FUNCTION @extschema@.ore_float8_recv(internal) STABLE;
ALTER FUNCTION @extschema@.ore_float8_from_bytea(bytea) STABLE;
COMMENT ON FUNCTION @extschema@.ore_float8_in(cstring) IS 'ore_float8 text input: base64 of the binary value; structure and MAC checked (encml.verify_ore_input)';
COMMENT ON FUNCTION @extschema@.ore_float8_recv(internal) IS 'ore_float8 binary input; structure and MAC checked (encml.verify_ore_input)';
COMMENT ON FUNCTION @extschema@.ore_float8_from_bytea(bytea) IS 'Cast bytea to ore_float8 after checking its structure and MAC (encml.verify_ore_input)';
ALTER FUNCTION @extschema@.ore_timestamptz_in(cstring) STABLE;
ALTER FUNCTION @extschema@.ore_timestamptz_recv(internal) STABLE;
ALTER FUNCTION @extschema@.ore_timestamptz_from_bytea(bytea) STABLE;
COMMENT ON FUNCTION @extschema@.ore_timestamptz_in(cstring) IS 'ore_timestamptz text input: base64 of the binary value; structure and MAC checked (encml.verify_ore_input)';
COMMENT ON FUNCTION @extschema@.ore_timestamptz_recv(internal) IS 'ore_timestamptz binary input; structure and MAC checked (encml.verify_ore_input)';
COMMENT ON FUNCTION @extschema@.ore_timestamptz_from_bytea(bytea) IS 'Cast bytea to ore_timestamptz after checking its structure and MAC (encml.verify_ore_input)';

-- Issue 27: the FHE round functions are executable by everyone and check membership inside, so
-- that a refusal leaves a security event (a refused EXECUTE grant left none).
REVOKE ALL ON FUNCTION @extschema@.fhe_register_keyset(text, bytea),
    @extschema@.fhe_open_round(uuid, integer, integer, integer, integer, integer),
    @extschema@.fhe_close_round(bigint), @extschema@.fhe_submit(bigint, @extschema@.fhe_vector),
    @extschema@.fhe_round_sum(bigint)
FROM encml_fhe_admin, encml_fhe_contributor, encml_fhe_decryptor;
GRANT EXECUTE ON FUNCTION @extschema@.fhe_register_keyset(text, bytea),
    @extschema@.fhe_open_round(uuid, integer, integer, integer, integer, integer),
    @extschema@.fhe_close_round(bigint), @extschema@.fhe_submit(bigint, @extschema@.fhe_vector),
    @extschema@.fhe_round_sum(bigint)
TO PUBLIC;

-- Issue 27: AES-GCM encryptions per data-key version against the random-nonce limit
-- (docs/keys.md "Encryption counts").
CREATE TABLE @extschema@.key_encryptions (
    key_id      uuid NOT NULL,
    version     integer NOT NULL CHECK (version > 0),
    encryptions bigint NOT NULL CHECK (encryptions >= 0),
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key_id, version)
);
COMMENT ON TABLE @extschema@.key_encryptions IS 'pg_encrypt_ml: AES-GCM encryptions recorded per data-key version (random-nonce limit 2^32)';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.key_encryptions', '');
REVOKE ALL ON @extschema@.key_encryptions FROM PUBLIC;

CREATE FUNCTION @extschema@.key_encryptions_unrecorded() RETURNS TABLE (
	"key_id" uuid,
	"version" INT,
	"unrecorded" bigint
)
STRICT VOLATILE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'key_encryptions_unrecorded_wrapper';
COMMENT ON FUNCTION @extschema@.key_encryptions_unrecorded() IS
    'Encryptions per key version of this database counted on this server and not yet recorded in encml.key_encryptions (read by the key_usage view)';
GRANT EXECUTE ON FUNCTION @extschema@.key_encryptions_unrecorded() TO PUBLIC;
CREATE VIEW @extschema@.key_usage WITH (security_barrier) AS
SELECT v.key_id, v.version, v.status,
       coalesce(e.encryptions, 0) + coalesce(u.unrecorded, 0) AS encryptions,
       coalesce(e.encryptions, 0) AS recorded,
       coalesce(u.unrecorded, 0) AS unrecorded,
       e.recorded_at,
       (coalesce(e.encryptions, 0) + coalesce(u.unrecorded, 0))::double precision / 4294967296 AS share_of_limit
  FROM @extschema@.key_versions v
  JOIN @extschema@.data_keys k ON k.id = v.key_id AND k.purpose = 'aead'
  LEFT JOIN @extschema@.key_encryptions e ON e.key_id = v.key_id AND e.version = v.version
  LEFT JOIN @extschema@.key_encryptions_unrecorded() u ON u.key_id = v.key_id AND u.version = v.version;
COMMENT ON VIEW @extschema@.key_usage IS
    'pg_encrypt_ml: AES-GCM encryptions per visible key version (recorded + unrecorded on this server) against the 2^32 random-nonce limit; warns at 2^31';
GRANT SELECT ON @extschema@.key_usage TO PUBLIC;

-- Registrations of subject-identifier columns know their column by number (issue 27, attacker
-- round 8: a typed table's column renamed by ALTER TYPE ... RENAME ATTRIBUTE, then a new column
-- added under the old name, was searched instead of the identifier).
ALTER TABLE @extschema@.subject_columns ADD COLUMN attnum smallint;
CREATE FUNCTION @extschema@.subject_columns_resolve() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    NEW.attnum := (SELECT a.attnum FROM pg_catalog.pg_attribute a
                    WHERE a.attrelid = NEW.tbl AND a.attname = NEW.col
                      AND a.attnum > 0 AND NOT a.attisdropped);
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION @extschema@.subject_columns_resolve() IS
    'pg_encrypt_ml: gives a registration of a subject-identifier column (a new one, or one restored by pg_restore) the number of the column it names';
REVOKE ALL ON FUNCTION @extschema@.subject_columns_resolve() FROM PUBLIC;
CREATE TRIGGER subject_columns_resolve BEFORE INSERT ON @extschema@.subject_columns
    FOR EACH ROW EXECUTE FUNCTION @extschema@.subject_columns_resolve();
UPDATE @extschema@.subject_columns s SET attnum = a.attnum
  FROM pg_catalog.pg_attribute a
 WHERE a.attrelid = s.tbl AND a.attname = s.col AND a.attnum > 0 AND NOT a.attisdropped;
-- Registrations of temporary tables outlived them (a session's end fires no event trigger) and
-- could name a later table given the same oid (issue 27, attacker round 12); 0.2.0 refuses
-- temporary tables.
DELETE FROM @extschema@.subject_columns s
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid = s.tbl);

-- Issue 28: proven updates. A vector key set registered with a CRS takes proven updates only;
-- rounds of a key set without one are opened with unproven => true (trusting every
-- contributor with the secret key, docs/fhe.md "Proven updates"). Rounds opened before the
-- upgrade stay unproven: their key sets have no CRS.
ALTER TABLE @extschema@.fhe_keysets ADD COLUMN proof_crs bytea,
    ADD CONSTRAINT fhe_keysets_proofs_vector CHECK (proof_crs IS NULL OR kind = 'vector');
ALTER TABLE @extschema@.fhe_rounds ADD COLUMN proven boolean NOT NULL DEFAULT false,
    ADD COLUMN decryptor regrole,
    ADD COLUMN dp_epsilon double precision,
    ADD COLUMN dp_delta double precision,
    ADD COLUMN dp_sigma double precision,
    ADD CONSTRAINT fhe_rounds_dp CHECK ((dp_epsilon IS NULL) = (dp_delta IS NULL)
                                        AND (dp_epsilon IS NULL) = (dp_sigma IS NULL));
CREATE OR REPLACE VIEW @extschema@.fhe_key_sets AS
SELECT id, name, kind, public_material, created_by, created_at, proof_crs FROM @extschema@.fhe_keysets;
CREATE OR REPLACE VIEW @extschema@.fhe_round_status AS
SELECT id, keyset, dim, value_bits, frac_bits, message_bits, min_contributions,
       max_contributions, contributions, status, opened_by, opened_at, closed_at, proven,
       decryptor, dp_epsilon, dp_delta, dp_sigma
  FROM @extschema@.fhe_rounds;
CREATE FUNCTION @extschema@.fhe_register_keyset("name" text, "public_material" bytea, "proof_crs" bytea)
RETURNS uuid
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'fhe_register_keyset_with_proofs_wrapper';
COMMENT ON FUNCTION @extschema@.fhe_register_keyset(text, bytea, bytea) IS
    'Registers a vector key set whose rounds take proven updates only, with the CRS of its proofs (pg_encrypt_ml-fhe keygen --proofs; checked here); returns its id (encml_fhe_admin)';
DROP FUNCTION @extschema@.fhe_open_round(uuid, integer, integer, integer, integer, integer);
CREATE FUNCTION @extschema@.fhe_open_round(
    "keyset" uuid, "dim" integer, "min_contributions" integer DEFAULT 10,
    "max_contributions" integer DEFAULT 1000, "value_bits" integer DEFAULT 16,
    "frac_bits" integer DEFAULT 8, "unproven" boolean DEFAULT false,
    "decryptor" regrole DEFAULT NULL
) RETURNS bigint
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'fhe_open_round_v2_wrapper';
COMMENT ON FUNCTION @extschema@.fhe_open_round(uuid, integer, integer, integer, integer, integer, boolean, regrole) IS
    'Opens an aggregation round for vectors of dim values with its fixed-point encoding and contribution limits; proven updates only unless unproven => true on a key set without CRS; decryptor: the only role its sum is released to; returns its id (encml_fhe_admin)';
CREATE FUNCTION @extschema@.fhe_close_round("round" bigint, "dp_epsilon" double precision, "dp_delta" double precision)
RETURNS integer
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'fhe_close_round_dp_wrapper';
COMMENT ON FUNCTION @extschema@.fhe_close_round(bigint, double precision, double precision) IS
    'Closes a proven round with a differentially private sum: discrete Gaussian noise for (dp_epsilon, dp_delta) at L2 sensitivity 2^(value_bits-1)*sqrt(dim), added encrypted; each read of the sum is charged to the reader (encml_fhe_admin)';
COMMENT ON FUNCTION @extschema@.fhe_round_sum(bigint) IS
    'The encrypted sum of a closed round, to its decryptor only: the decrypting party''s only access to round data; a differentially private sum charges the reader''s privacy budget at each read (encml_fhe_decryptor)';
CREATE FUNCTION @extschema@.fhe_submit_proven("round" bigint, "update" bytea) RETURNS integer
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'fhe_submit_proven_wrapper';
COMMENT ON FUNCTION @extschema@.fhe_submit(bigint, fhe_vector) IS
    'Submits one encrypted update to an open unproven round (once per ciphertext); returns the round''s count (encml_fhe_contributor)';
COMMENT ON FUNCTION @extschema@.fhe_submit_proven(bigint, bytea) IS
    'Submits a proven update (pg_encrypt_ml-fhe encrypt --crs) to an open round, verified before it is stored; returns the round''s count (encml_fhe_contributor)';
REVOKE ALL ON FUNCTION @extschema@.fhe_register_keyset(text, bytea, bytea),
    @extschema@.fhe_open_round(uuid, integer, integer, integer, integer, integer, boolean, regrole),
    @extschema@.fhe_close_round(bigint, double precision, double precision),
    @extschema@.fhe_submit_proven(bigint, bytea)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.fhe_register_keyset(text, bytea, bytea),
    @extschema@.fhe_open_round(uuid, integer, integer, integer, integer, integer, boolean, regrole),
    @extschema@.fhe_close_round(bigint, double precision, double precision),
    @extschema@.fhe_submit_proven(bigint, bytea)
TO PUBLIC;

-- Issue 27, attacker round 18: an anonymizing erasure keeps every column it does not clear as
-- it was, so owners' triggers that stamp rows (updated_at) need a way to leave its statements
-- alone.
CREATE FUNCTION @extschema@.in_subject_erasure() RETURNS boolean
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c
AS 'MODULE_PATHNAME', 'in_subject_erasure_wrapper';
COMMENT ON FUNCTION @extschema@.in_subject_erasure() IS
    'True in code that a subject erasure runs (an owner''s trigger on a registered table), for triggers that must leave its statements alone: an updated_at stamp fails an anonymizing erasure';
REVOKE ALL ON FUNCTION @extschema@.in_subject_erasure() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.in_subject_erasure() TO PUBLIC;

-- Issue 29: set_masking_rule is the C function itself, and the internal entry point it called,
-- masking_rule_set, leaves the SQL surface (its C symbol stays for 0.1.0's install script).
CREATE OR REPLACE FUNCTION @extschema@.set_masking_rule(tbl regclass, col name, mask text, unmasked_roles regrole[] DEFAULT '{}')
RETURNS void LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'set_masking_rule_wrapper';
DROP FUNCTION @extschema@.masking_rule_set(regclass, text, text, oid[]);

-- Issue 29: create_key's comment names every purpose it takes (fpe was missing).
COMMENT ON FUNCTION @extschema@.create_key(text, text, text) IS
    'Creates a data key (purpose aead, deterministic, ore, fpe or hmac; optional tenant) wrapped by the master key; returns its id';

-- Issue 30, encryption in transit: compliance_report() (replaced above) checks the TLS floor,
-- pg_hba.conf lines admitting the network in the clear, service roles without client
-- certificates and live connections without TLS; roles are marked as services here.
CREATE TABLE @extschema@.tls_service_roles (
    role regrole PRIMARY KEY,
    marked_by regrole NOT NULL,
    marked_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE @extschema@.tls_service_roles IS
    'pg_encrypt_ml: roles marked as services, which must connect with a verified client certificate (encml.mark_tls_service_role)';
REVOKE ALL ON @extschema@.tls_service_roles FROM PUBLIC;
GRANT SELECT ON @extschema@.tls_service_roles TO encml_security_admin, encml_auditor;
SELECT pg_catalog.pg_extension_config_dump('@extschema@.tls_service_roles', '');
CREATE FUNCTION @extschema@.hba_rule_is_loopback(address text, netmask text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN CASE
    WHEN address = 'samehost' THEN true
    WHEN address ~ '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$' AND netmask ~ '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$'
        THEN (address::inet & netmask::inet) <<= '127.0.0.0/8'::inet AND netmask::inet >= '255.0.0.0'::inet
    WHEN address ~ ':' AND netmask ~ ':'
        THEN address::inet = '::1'::inet AND netmask::inet = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'::inet
    ELSE false
END;
COMMENT ON FUNCTION @extschema@.hba_rule_is_loopback(text, text) IS
    'Whether a pg_hba.conf line (address, netmask as pg_hba_file_rules shows them) admits only this machine (compliance_report)';
REVOKE ALL ON FUNCTION @extschema@.hba_rule_is_loopback(text, text) FROM PUBLIC;
CREATE FUNCTION @extschema@.mark_tls_service_role(role regrole, service boolean DEFAULT true) RETURNS boolean
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'mark_tls_service_role_wrapper';
COMMENT ON FUNCTION @extschema@.mark_tls_service_role(regrole, boolean) IS
    'Marks a role as a service (service => false unmarks it): compliance_report() then requires every pg_hba.conf line admitting it from the network to be hostssl with clientcert=verify-full (encml_security_admin)';
REVOKE ALL ON FUNCTION @extschema@.mark_tls_service_role(regrole, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.mark_tls_service_role(regrole, boolean) TO encml_security_admin;
COMMENT ON FUNCTION @extschema@.compliance_report() IS
    'Checks the live database against the security baseline (TLS floor, pg_hba.conf lines and connections in the clear, service roles without client certificates, passwords, master key source, key rotation and its policies, compromised key versions, tenant isolation, sensitive columns encrypted and audited, audit chain, destroyed keys still referenced) (auditors)';

-- Issue 31, key lifecycle automation (docs/keys.md "Rotation policies and re-encryption jobs"):
-- rotation policies, re-encryption jobs run by the lifecycle worker, compromised key versions
-- (as sql/schema/lifecycle.sql and finalize.sql create them). compliance_report() (replaced
-- above) judges keys with a policy by it and fails while a compromised version protects values.

-- A key rotated every `rotate_every`, its older values re-encrypted by jobs (`reencrypt`), its
-- older versions retired once no value uses them and `retire_after` has passed since the
-- rotation that replaced them. `max_encryptions` rotates earlier when the current version has
-- made that many AES-GCM encryptions (encml.key_usage). The policy's actions run as `set_by`.
CREATE TABLE @extschema@.rotation_policies (
    key_id          uuid PRIMARY KEY,
    rotate_every    interval NOT NULL CHECK (rotate_every >= interval '1 minute'),
    reencrypt       boolean NOT NULL DEFAULT true,
    retire_after    interval CHECK (retire_after >= interval '0'),
    max_encryptions bigint CHECK (max_encryptions > 0),
    set_by          regrole NOT NULL,
    set_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- The last time the worker acted on the policy, and what went wrong then (NULL: nothing).
    checked_at      timestamptz,
    last_error      text
);
COMMENT ON TABLE @extschema@.rotation_policies IS 'pg_encrypt_ml: rotation policies of data keys (encml.set_rotation_policy)';

-- One job moves the values of one column that are under older versions of one key to a newer
-- version, in batches of heap blocks [next_block, next_block + batch): each batch is one
-- transaction that also advances next_block, so a job resumes after a crash where it stopped.
-- A pass ends at the table's last block; passes repeat until one finds nothing (rows moved
-- behind the cursor by concurrent updates). Runs as `run_as`, with its privileges and row
-- security: UPDATE on the table, decrypt and encrypt on the key.
CREATE TABLE @extschema@.reencryption_jobs (
    id             bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    table_oid      regclass NOT NULL,
    column_name    name NOT NULL,
    -- enc_bytea (tensors included), det_text, ore, jsonb (encrypt_jsonb fields), large_object
    -- (an oid column naming lo_encrypt objects).
    kind           text NOT NULL
                   CHECK (kind IN ('enc_bytea', 'det_text', 'ore', 'jsonb', 'large_object')),
    key_id         uuid NOT NULL,
    -- Values under versions below this one are re-encrypted (to the key's current version).
    target_version integer NOT NULL CHECK (target_version > 0),
    -- The AAD template of an enc_bytea or jsonb column ('patients.diagnosis:{id}'), NULL: none.
    aad            text,
    run_as         regrole NOT NULL,
    -- manual (reencrypt_table, reencrypt_key), policy, compromise (runs first).
    reason         text NOT NULL CHECK (reason IN ('manual', 'policy', 'compromise')),
    priority       integer NOT NULL DEFAULT 0,
    state          text NOT NULL DEFAULT 'queued'
                   CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    pass           integer NOT NULL DEFAULT 1 CHECK (pass > 0),
    next_block     bigint NOT NULL DEFAULT 0 CHECK (next_block >= 0),
    total_blocks   bigint,
    rows_done      bigint NOT NULL DEFAULT 0,
    -- Values moved in the current pass (a pass that moves none ends the job).
    pass_rows      bigint NOT NULL DEFAULT 0,
    -- Values still to do when the job started (counted then), for the progress view.
    rows_at_start  bigint,
    created_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    started_at     timestamptz,
    updated_at     timestamptz,
    finished_at    timestamptz,
    -- A batch that hit a transient error (a lock held elsewhere) is tried again after this,
    -- when other jobs are waiting.
    retry_after    timestamptz,
    error          text
);
-- One live job per column and key.
CREATE UNIQUE INDEX reencryption_jobs_live ON @extschema@.reencryption_jobs (table_oid, column_name, key_id)
    WHERE state IN ('queued', 'running');
CREATE INDEX reencryption_jobs_key ON @extschema@.reencryption_jobs (key_id, state);
COMMENT ON TABLE @extschema@.reencryption_jobs IS 'pg_encrypt_ml: re-encryption jobs (encml.reencrypt_table, encml.reencrypt_key, rotation policies, encml.compromise_key)';

-- Large objects a job replaced (and ones it created that no row took): unlinked when a job of
-- the column ends, once no oid column of the database names them.
CREATE TABLE @extschema@.reencryption_large_objects (
    job_id bigint NOT NULL,
    loid   oid NOT NULL,
    PRIMARY KEY (job_id, loid)
);
COMMENT ON TABLE @extschema@.reencryption_large_objects IS 'pg_encrypt_ml: large objects replaced by re-encryption jobs, to be unlinked when the job ends';

-- Versions reported compromised (encml.compromise_key): nothing new is encrypted under them, and
-- cleared_at says when no value in this database depended on them any more.
CREATE TABLE @extschema@.key_compromises (
    key_id      uuid NOT NULL,
    version     integer NOT NULL CHECK (version > 0),
    reason      text NOT NULL,
    reported_by regrole NOT NULL,
    reported_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    cleared_at  timestamptz,
    PRIMARY KEY (key_id, version)
);
COMMENT ON TABLE @extschema@.key_compromises IS 'pg_encrypt_ml: data-key versions reported compromised (encml.compromise_key)';

REVOKE ALL ON @extschema@.rotation_policies, @extschema@.reencryption_jobs, @extschema@.key_compromises,
    @extschema@.reencryption_large_objects FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('@extschema@.rotation_policies', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.reencryption_jobs', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.reencryption_jobs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.key_compromises', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.reencryption_large_objects', '');

-- In the style of pg_stat_progress_*: one row per job a role may see (its own jobs, jobs on
-- tables it owns; key admins see all).
CREATE VIEW @extschema@.reencryption_progress WITH (security_barrier) AS
SELECT j.id AS job,
       j.table_oid AS table_name,
       j.column_name,
       j.kind,
       j.key_id,
       j.target_version,
       j.reason,
       j.state,
       j.pass,
       j.next_block AS blocks_done,
       j.total_blocks,
       j.rows_done,
       CASE WHEN j.state = 'done' THEN 0::bigint
            ELSE greatest(coalesce(j.rows_at_start, 0) - j.rows_done, 0) END AS rows_left,
       CASE WHEN j.started_at IS NOT NULL
                 AND coalesce(j.finished_at, j.updated_at) > j.started_at
            THEN round((j.rows_done / extract(epoch FROM coalesce(j.finished_at, j.updated_at) - j.started_at))::numeric, 1)
       END AS rows_per_second,
       j.run_as,
       j.created_at,
       j.started_at,
       j.updated_at,
       j.finished_at,
       j.error
  FROM @extschema@.reencryption_jobs j
 WHERE pg_catalog.pg_has_role(current_user, j.run_as::oid, 'USAGE')
    OR pg_catalog.pg_has_role(current_user, 'encml_key_admin', 'USAGE')
    OR EXISTS (SELECT FROM pg_catalog.pg_class c
                WHERE c.oid = j.table_oid::oid
                  AND pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE'));
COMMENT ON VIEW @extschema@.reencryption_progress IS
    'pg_encrypt_ml re-encryption jobs with their progress (rows done and left, rate), as pg_stat_progress_* views show theirs';

CREATE VIEW @extschema@.rotation_policy_status WITH (security_barrier) AS
SELECT p.key_id, k.name, p.rotate_every, p.reencrypt, p.retire_after, p.max_encryptions,
       p.set_by, p.set_at,
       v.created_at AS current_version_since,
       v.created_at + p.rotate_every AS next_rotation,
       p.checked_at, p.last_error
  FROM @extschema@.rotation_policies p
  JOIN @extschema@.data_keys k ON k.id = p.key_id
  JOIN @extschema@.data_key_versions v ON v.key_id = k.id AND v.version = k.current_version
 WHERE p.key_id IN (SELECT id FROM @extschema@.keys);   -- the keys this role may see
COMMENT ON VIEW @extschema@.rotation_policy_status IS
    'pg_encrypt_ml rotation policies of the keys a role may see, with when each key rotates next and the last error';

CREATE VIEW @extschema@.compromised_key_versions WITH (security_barrier) AS
SELECT c.key_id, c.version, c.reason, c.reported_by, c.reported_at, c.cleared_at
  FROM @extschema@.key_compromises c
 WHERE c.key_id IN (SELECT id FROM @extschema@.keys);
COMMENT ON VIEW @extschema@.compromised_key_versions IS
    'pg_encrypt_ml data-key versions reported compromised, and when no value depended on them any more';

GRANT SELECT ON @extschema@.reencryption_progress, @extschema@.rotation_policy_status, @extschema@.compromised_key_versions TO PUBLIC;
CREATE FUNCTION @extschema@.reencrypt_table(
	"tbl" regclass,
	"col" name,
	"key" uuid DEFAULT NULL,
	"aad" TEXT DEFAULT NULL
) RETURNS TABLE (
	"job" bigint, 
	"table_name" regclass, 
	"key_id" uuid, 
	"target_version" INT 
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'reencrypt_table_wrapper';
CREATE FUNCTION @extschema@.reencrypt_table_now(
	"tbl" regclass,
	"col" name,
	"key" uuid DEFAULT NULL,
	"aad" TEXT DEFAULT NULL
) RETURNS bigint
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'reencrypt_table_now_wrapper';
CREATE FUNCTION @extschema@.reencrypt_key(
	"key" uuid
) RETURNS TABLE (
	"job" bigint, 
	"table_name" regclass, 
	"column_name" TEXT, 
	"target_version" INT 
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'reencrypt_key_wrapper';
CREATE FUNCTION @extschema@.cancel_reencryption(
	"job" bigint
) RETURNS bool
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'cancel_reencryption_wrapper';
CREATE FUNCTION @extschema@.set_rotation_policy(
	"key" uuid,
	"rotate_every" interval,
	"reencrypt" bool DEFAULT true,
	"retire_after" interval DEFAULT NULL,
	"max_encryptions" bigint DEFAULT NULL
) RETURNS void
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'set_rotation_policy_wrapper';
CREATE FUNCTION @extschema@.drop_rotation_policy(
	"key" uuid
) RETURNS bool
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'drop_rotation_policy_wrapper';
CREATE FUNCTION @extschema@.compromise_key(
	"key" uuid,
	"reason" TEXT
) RETURNS INT
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'compromise_key_wrapper';
CREATE FUNCTION @extschema@.run_key_lifecycle() RETURNS bool
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'run_key_lifecycle_wrapper';
REVOKE ALL ON FUNCTION @extschema@.reencrypt_table(regclass, name, uuid, text), @extschema@.reencrypt_table_now(regclass, name, uuid, text),
    @extschema@.reencrypt_key(uuid), @extschema@.cancel_reencryption(bigint),
    @extschema@.set_rotation_policy(uuid, interval, boolean, interval, bigint), @extschema@.drop_rotation_policy(uuid),
    @extschema@.compromise_key(uuid, text), @extschema@.run_key_lifecycle() FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.reencrypt_table(regclass, name, uuid, text) IS
    'Queues background jobs that move a column''s values under older key versions to the current ones in short batches (one job per leaf table and key; key => NULL finds the keys; aad => template like ''patients.diagnosis:{id}''; an oid column of lo_encrypt objects gets new objects and the replaced ones unlinked); batches run as the table''s owner; returns the jobs';
COMMENT ON FUNCTION @extschema@.reencrypt_table_now(regclass, name, uuid, text) IS
    'Moves a column''s values under older key versions to the current ones in one UPDATE in the caller''s transaction (for small tables); returns the values moved';
COMMENT ON FUNCTION @extschema@.retire_key_version(uuid, integer, boolean) IS
    'Erases the material of a non-current key version; refuses while values of this database still use it (encrypted columns, jsonb fields, materialized views, large objects), unless force';
COMMENT ON FUNCTION @extschema@.reencrypt_key(uuid) IS
    'Queues background jobs for every column of the database holding values under older versions of a key (enc_bytea, tensors, det_text, ORE, jsonb fields, large objects); the key''s administrators; returns the jobs';
COMMENT ON FUNCTION @extschema@.cancel_reencryption(bigint) IS
    'Cancels a queued or running re-encryption job (the batch in progress finishes); the job''s role, the table''s owner and key administrators';
COMMENT ON FUNCTION @extschema@.set_rotation_policy(uuid, interval, boolean, interval, bigint) IS
    'Sets a key''s rotation policy: rotate every interval (or after max_encryptions AES-GCM encryptions), re-encrypt older values in the background, retire versions no value uses after retire_after; the key''s administrators; acts as the caller';
COMMENT ON FUNCTION @extschema@.drop_rotation_policy(uuid) IS
    'Removes a key''s rotation policy (queued jobs go on); the key''s administrators';
COMMENT ON FUNCTION @extschema@.compromise_key(uuid, text) IS
    'Incident response: rotates the key at once, marks its earlier versions compromised (nothing new is encrypted under them), re-encrypts their values ahead of all other jobs and raises a critical event; returns the new version';
COMMENT ON FUNCTION @extschema@.run_key_lifecycle() IS
    'Starts this database''s key lifecycle worker now (due rotation policies, queued re-encryption jobs); for servers without the library preloaded; key administrators';
GRANT EXECUTE ON FUNCTION @extschema@.reencrypt_table(regclass, name, uuid, text),
    @extschema@.reencrypt_table_now(regclass, name, uuid, text), @extschema@.reencrypt_key(uuid),
    @extschema@.cancel_reencryption(bigint),
    @extschema@.set_rotation_policy(uuid, interval, boolean, interval, bigint), @extschema@.drop_rotation_policy(uuid),
    @extschema@.compromise_key(uuid, text)
TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.run_key_lifecycle() TO encml_key_admin;
GRANT SELECT ON @extschema@.rotation_policies, @extschema@.reencryption_jobs, @extschema@.key_compromises,
    @extschema@.reencryption_large_objects TO encml_key_admin, encml_auditor;
-- ORE bounds under a given key version, for range searches while a re-encryption job runs.
CREATE FUNCTION @extschema@.ore_encrypt(
	"value" bigint,
	"key" uuid,
	"version" INT
) RETURNS @extschema@.ore_int8
STABLE PARALLEL SAFE  
LANGUAGE c
AS 'MODULE_PATHNAME', 'ore_encrypt_int8_at_wrapper';
CREATE FUNCTION @extschema@.ore_encrypt(
	"value" double precision,
	"key" uuid,
	"version" INT
) RETURNS @extschema@.ore_float8
STABLE PARALLEL SAFE  
LANGUAGE c
AS 'MODULE_PATHNAME', 'ore_encrypt_float8_at_wrapper';
CREATE FUNCTION @extschema@.ore_encrypt(
	"value" timestamp with time zone,
	"key" uuid,
	"version" INT
) RETURNS @extschema@.ore_timestamptz
STABLE PARALLEL SAFE  
LANGUAGE c
AS 'MODULE_PATHNAME', 'ore_encrypt_timestamptz_at_wrapper';
REVOKE ALL ON FUNCTION @extschema@.ore_encrypt(bigint, uuid, integer), @extschema@.ore_encrypt(double precision, uuid, integer),
    @extschema@.ore_encrypt(timestamptz, uuid, integer) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.ore_encrypt(bigint, uuid, integer) IS
    'Order-revealing encryption of a bigint under the given active version of a key (not one reported compromised): bounds for range searches over a column being re-encrypted';
COMMENT ON FUNCTION @extschema@.ore_encrypt(double precision, uuid, integer) IS
    'Order-revealing encryption of a double precision under the given active version of a key (not one reported compromised)';
COMMENT ON FUNCTION @extschema@.ore_encrypt(timestamptz, uuid, integer) IS
    'Order-revealing encryption of a timestamptz under the given active version of a key (not one reported compromised)';
CREATE FUNCTION @extschema@.ore_encrypt(value integer, key uuid, version integer) RETURNS @extschema@.ore_int8
    LANGUAGE sql STABLE PARALLEL SAFE
    AS 'SELECT encml.ore_encrypt($1::bigint, $2, $3)';
CREATE FUNCTION @extschema@.ore_encrypt(value smallint, key uuid, version integer) RETURNS @extschema@.ore_int8
    LANGUAGE sql STABLE PARALLEL SAFE
    AS 'SELECT encml.ore_encrypt($1::bigint, $2, $3)';
COMMENT ON FUNCTION @extschema@.ore_encrypt(integer, uuid, integer) IS 'Order-revealing encryption of an integer under the given key version, as bigint (ore_int8)';
COMMENT ON FUNCTION @extschema@.ore_encrypt(smallint, uuid, integer) IS 'Order-revealing encryption of a smallint under the given key version, as bigint (ore_int8)';
GRANT EXECUTE ON FUNCTION @extschema@.ore_encrypt(bigint, uuid, integer), @extschema@.ore_encrypt(double precision, uuid, integer),
    @extschema@.ore_encrypt(timestamptz, uuid, integer), @extschema@.ore_encrypt(integer, uuid, integer),
    @extschema@.ore_encrypt(smallint, uuid, integer)
TO PUBLIC;

-- Quantiles and variance (issue 32; as sql/schema/dp.sql and finalize.sql create them).
-- Quantiles and variance (src/privacy/dp_bounded_aggregates.rs): an `internal` state, an exact
-- histogram over a 1024-point candidate grid or exact moments (docs/privacy.md).
CREATE FUNCTION @extschema@.dp_histogram_combine(internal, internal) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_histogram_combine';
CREATE FUNCTION @extschema@.dp_histogram_serialize(internal) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_histogram_serialize';
CREATE FUNCTION @extschema@.dp_histogram_deserialize(bytea, internal) RETURNS internal
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_histogram_deserialize';
CREATE FUNCTION @extschema@.dp_moments_combine(internal, internal) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_moments_combine';
CREATE FUNCTION @extschema@.dp_moments_serialize(internal) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_moments_serialize';
CREATE FUNCTION @extschema@.dp_moments_deserialize(bytea, internal) RETURNS internal
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_moments_deserialize';
-- Their forms without a privacy unit keep an `encml.dp_summary` instead (a varlena type,
-- sealed in text), so that Citus aggregates them on the shards (src/privacy/dp_summary_aggregates.rs).
CREATE TYPE @extschema@.dp_summary;
CREATE FUNCTION @extschema@.dp_summary_in(cstring) RETURNS @extschema@.dp_summary
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_summary_in';
CREATE FUNCTION @extschema@.dp_summary_out(@extschema@.dp_summary) RETURNS cstring
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_summary_out';
CREATE TYPE @extschema@.dp_summary (
    INPUT = @extschema@.dp_summary_in, OUTPUT = @extschema@.dp_summary_out,
    INTERNALLENGTH = VARIABLE, ALIGNMENT = int4, STORAGE = extended
);
CREATE FUNCTION @extschema@.dp_histogram_summary_combine(@extschema@.dp_summary, @extschema@.dp_summary) RETURNS @extschema@.dp_summary
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_histogram_summary_combine';
CREATE FUNCTION @extschema@.dp_moments_summary_combine(@extschema@.dp_summary, @extschema@.dp_summary) RETURNS @extschema@.dp_summary
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_moments_summary_combine';
CREATE FUNCTION @extschema@.dp_percentile_summary_final(@extschema@.dp_summary) RETURNS float8
    LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'encml_dp_percentile_summary_final';
CREATE FUNCTION @extschema@.dp_percentiles_summary_final(@extschema@.dp_summary) RETURNS float8[]
    LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'encml_dp_percentiles_summary_final';
CREATE FUNCTION @extschema@.dp_var_pop_summary_final(@extschema@.dp_summary) RETURNS float8
    LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'encml_dp_var_pop_summary_final';
CREATE FUNCTION @extschema@.dp_stddev_pop_summary_final(@extschema@.dp_summary) RETURNS float8
    LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'encml_dp_stddev_pop_summary_final';
CREATE FUNCTION @extschema@.dp_percentile_final(internal) RETURNS float8
    LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'encml_dp_percentile_final';
CREATE FUNCTION @extschema@.dp_percentiles_final(internal) RETURNS float8[]
    LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'encml_dp_percentiles_final';
CREATE FUNCTION @extschema@.dp_var_pop_final(internal) RETURNS float8
    LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'encml_dp_var_pop_final';
CREATE FUNCTION @extschema@.dp_stddev_pop_final(internal) RETURNS float8
    LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'encml_dp_stddev_pop_final';
CREATE FUNCTION @extschema@.dp_percentile_summary_trans(@extschema@.dp_summary, float8, float8, float8, float8, float8) RETURNS @extschema@.dp_summary
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_percentile_summary_trans';
CREATE AGGREGATE @extschema@.dp_percentile(value float8, percentile float8, lower float8, upper float8, epsilon float8) (
    SFUNC = @extschema@.dp_percentile_summary_trans, STYPE = @extschema@.dp_summary, FINALFUNC = @extschema@.dp_percentile_summary_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = @extschema@.dp_histogram_summary_combine,
    PARALLEL = SAFE
);
CREATE FUNCTION @extschema@.dp_percentile_summary_trans(@extschema@.dp_summary, float8, float8, float8, float8, float8, float8) RETURNS @extschema@.dp_summary
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_percentile_summary_trans';
CREATE AGGREGATE @extschema@.dp_percentile(value float8, percentile float8, lower float8, upper float8, epsilon float8, delta float8) (
    SFUNC = @extschema@.dp_percentile_summary_trans, STYPE = @extschema@.dp_summary, FINALFUNC = @extschema@.dp_percentile_summary_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = @extschema@.dp_histogram_summary_combine,
    PARALLEL = SAFE
);
CREATE FUNCTION @extschema@.dp_percentile_trans(internal, float8, float8, float8, float8, float8, float8, text, integer) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_percentile_trans';
CREATE AGGREGATE @extschema@.dp_percentile(value float8, percentile float8, lower float8, upper float8, epsilon float8, delta float8, privacy_unit text, max_rows_per_unit integer) (
    SFUNC = @extschema@.dp_percentile_trans, STYPE = internal, FINALFUNC = @extschema@.dp_percentile_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = @extschema@.dp_histogram_combine, SERIALFUNC = @extschema@.dp_histogram_serialize, DESERIALFUNC = @extschema@.dp_histogram_deserialize,
    PARALLEL = SAFE
);
CREATE FUNCTION @extschema@.dp_percentiles_summary_trans(@extschema@.dp_summary, float8, float8[], float8, float8, float8) RETURNS @extschema@.dp_summary
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_percentiles_summary_trans';
CREATE AGGREGATE @extschema@.dp_percentiles(value float8, percentiles float8[], lower float8, upper float8, epsilon float8) (
    SFUNC = @extschema@.dp_percentiles_summary_trans, STYPE = @extschema@.dp_summary, FINALFUNC = @extschema@.dp_percentiles_summary_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = @extschema@.dp_histogram_summary_combine,
    PARALLEL = SAFE
);
CREATE FUNCTION @extschema@.dp_percentiles_summary_trans(@extschema@.dp_summary, float8, float8[], float8, float8, float8, float8) RETURNS @extschema@.dp_summary
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_percentiles_summary_trans';
CREATE AGGREGATE @extschema@.dp_percentiles(value float8, percentiles float8[], lower float8, upper float8, epsilon float8, delta float8) (
    SFUNC = @extschema@.dp_percentiles_summary_trans, STYPE = @extschema@.dp_summary, FINALFUNC = @extschema@.dp_percentiles_summary_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = @extschema@.dp_histogram_summary_combine,
    PARALLEL = SAFE
);
CREATE FUNCTION @extschema@.dp_percentiles_trans(internal, float8, float8[], float8, float8, float8, float8, text, integer) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_percentiles_trans';
CREATE AGGREGATE @extschema@.dp_percentiles(value float8, percentiles float8[], lower float8, upper float8, epsilon float8, delta float8, privacy_unit text, max_rows_per_unit integer) (
    SFUNC = @extschema@.dp_percentiles_trans, STYPE = internal, FINALFUNC = @extschema@.dp_percentiles_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = @extschema@.dp_histogram_combine, SERIALFUNC = @extschema@.dp_histogram_serialize, DESERIALFUNC = @extschema@.dp_histogram_deserialize,
    PARALLEL = SAFE
);
CREATE FUNCTION @extschema@.dp_median_summary_trans(@extschema@.dp_summary, float8, float8, float8, float8) RETURNS @extschema@.dp_summary
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_median_summary_trans';
CREATE AGGREGATE @extschema@.dp_median(value float8, lower float8, upper float8, epsilon float8) (
    SFUNC = @extschema@.dp_median_summary_trans, STYPE = @extschema@.dp_summary, FINALFUNC = @extschema@.dp_percentile_summary_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = @extschema@.dp_histogram_summary_combine,
    PARALLEL = SAFE
);
CREATE FUNCTION @extschema@.dp_median_summary_trans(@extschema@.dp_summary, float8, float8, float8, float8, float8) RETURNS @extschema@.dp_summary
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_median_summary_trans';
CREATE AGGREGATE @extschema@.dp_median(value float8, lower float8, upper float8, epsilon float8, delta float8) (
    SFUNC = @extschema@.dp_median_summary_trans, STYPE = @extschema@.dp_summary, FINALFUNC = @extschema@.dp_percentile_summary_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = @extschema@.dp_histogram_summary_combine,
    PARALLEL = SAFE
);
CREATE FUNCTION @extschema@.dp_median_trans(internal, float8, float8, float8, float8, float8, text, integer) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_median_trans';
CREATE AGGREGATE @extschema@.dp_median(value float8, lower float8, upper float8, epsilon float8, delta float8, privacy_unit text, max_rows_per_unit integer) (
    SFUNC = @extschema@.dp_median_trans, STYPE = internal, FINALFUNC = @extschema@.dp_percentile_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = @extschema@.dp_histogram_combine, SERIALFUNC = @extschema@.dp_histogram_serialize, DESERIALFUNC = @extschema@.dp_histogram_deserialize,
    PARALLEL = SAFE
);
CREATE FUNCTION @extschema@.dp_moments_summary_trans(@extschema@.dp_summary, float8, float8, float8, float8) RETURNS @extschema@.dp_summary
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_moments_summary_trans';
CREATE AGGREGATE @extschema@.dp_var_pop(value float8, lower float8, upper float8, epsilon float8) (
    SFUNC = @extschema@.dp_moments_summary_trans, STYPE = @extschema@.dp_summary, FINALFUNC = @extschema@.dp_var_pop_summary_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = @extschema@.dp_moments_summary_combine,
    PARALLEL = SAFE
);
CREATE FUNCTION @extschema@.dp_moments_summary_trans(@extschema@.dp_summary, float8, float8, float8, float8, float8) RETURNS @extschema@.dp_summary
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_moments_summary_trans';
CREATE AGGREGATE @extschema@.dp_var_pop(value float8, lower float8, upper float8, epsilon float8, delta float8) (
    SFUNC = @extschema@.dp_moments_summary_trans, STYPE = @extschema@.dp_summary, FINALFUNC = @extschema@.dp_var_pop_summary_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = @extschema@.dp_moments_summary_combine,
    PARALLEL = SAFE
);
CREATE FUNCTION @extschema@.dp_moments_trans(internal, float8, float8, float8, float8, float8, text, integer) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_moments_trans';
CREATE AGGREGATE @extschema@.dp_var_pop(value float8, lower float8, upper float8, epsilon float8, delta float8, privacy_unit text, max_rows_per_unit integer) (
    SFUNC = @extschema@.dp_moments_trans, STYPE = internal, FINALFUNC = @extschema@.dp_var_pop_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = @extschema@.dp_moments_combine, SERIALFUNC = @extschema@.dp_moments_serialize, DESERIALFUNC = @extschema@.dp_moments_deserialize,
    PARALLEL = SAFE
);
CREATE AGGREGATE @extschema@.dp_stddev_pop(value float8, lower float8, upper float8, epsilon float8) (
    SFUNC = @extschema@.dp_moments_summary_trans, STYPE = @extschema@.dp_summary, FINALFUNC = @extschema@.dp_stddev_pop_summary_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = @extschema@.dp_moments_summary_combine,
    PARALLEL = SAFE
);
CREATE AGGREGATE @extschema@.dp_stddev_pop(value float8, lower float8, upper float8, epsilon float8, delta float8) (
    SFUNC = @extschema@.dp_moments_summary_trans, STYPE = @extschema@.dp_summary, FINALFUNC = @extschema@.dp_stddev_pop_summary_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = @extschema@.dp_moments_summary_combine,
    PARALLEL = SAFE
);
CREATE AGGREGATE @extschema@.dp_stddev_pop(value float8, lower float8, upper float8, epsilon float8, delta float8, privacy_unit text, max_rows_per_unit integer) (
    SFUNC = @extschema@.dp_moments_trans, STYPE = internal, FINALFUNC = @extschema@.dp_stddev_pop_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = @extschema@.dp_moments_combine, SERIALFUNC = @extschema@.dp_moments_serialize, DESERIALFUNC = @extschema@.dp_moments_deserialize,
    PARALLEL = SAFE
);
COMMENT ON TYPE @extschema@.dp_summary IS 'pg_encrypt_ml: exact partial summary (histogram or moments) of a quantile or variance dp aggregate without privacy units; sealed in text (docs/formats.md); released only through the aggregate''s final function';
COMMENT ON FUNCTION @extschema@.dp_summary_in(cstring) IS 'dp_summary text input: only a summary sealed by a server with these master keys (docs/formats.md)';
COMMENT ON FUNCTION @extschema@.dp_summary_out(@extschema@.dp_summary) IS 'dp_summary text output: sealed under the master key (docs/formats.md)';
COMMENT ON FUNCTION @extschema@.dp_histogram_summary_combine(@extschema@.dp_summary, @extschema@.dp_summary) IS 'dp aggregate combine function (parallel aggregation)';
COMMENT ON FUNCTION @extschema@.dp_moments_summary_combine(@extschema@.dp_summary, @extschema@.dp_summary) IS 'dp aggregate combine function (parallel aggregation)';
COMMENT ON FUNCTION @extschema@.dp_percentile_summary_final(@extschema@.dp_summary) IS 'dp aggregate final function: records the privacy charge, then adds noise once';
COMMENT ON FUNCTION @extschema@.dp_percentiles_summary_final(@extschema@.dp_summary) IS 'dp aggregate final function: records the privacy charge, then adds noise once';
COMMENT ON FUNCTION @extschema@.dp_var_pop_summary_final(@extschema@.dp_summary) IS 'dp aggregate final function: records the privacy charge, then adds noise once';
COMMENT ON FUNCTION @extschema@.dp_stddev_pop_summary_final(@extschema@.dp_summary) IS 'dp aggregate final function: records the privacy charge, then adds noise once';
COMMENT ON AGGREGATE @extschema@.dp_percentile(double precision, double precision, double precision, double precision, double precision) IS 'Noisy percentile (0 to 1) of values clamped to [lower, upper]: one of 1024 evenly spaced candidates, chosen by OpenDP''s noisy max over quantile scores (pure epsilon-DP; delta must be 0); charges epsilon';
COMMENT ON AGGREGATE @extschema@.dp_percentile(double precision, double precision, double precision, double precision, double precision, double precision) IS 'Noisy percentile (0 to 1) of values clamped to [lower, upper]: one of 1024 evenly spaced candidates, chosen by OpenDP''s noisy max over quantile scores (pure epsilon-DP; delta must be 0); charges epsilon (the delta form: Gaussian when delta > 0; percentiles take no delta)';
COMMENT ON AGGREGATE @extschema@.dp_percentile(double precision, double precision, double precision, double precision, double precision, double precision, text, integer) IS 'Noisy percentile (0 to 1) of values clamped to [lower, upper]: one of 1024 evenly spaced candidates, chosen by OpenDP''s noisy max over quantile scores (pure epsilon-DP; delta must be 0); charges epsilon (at most max_rows_per_unit rows per privacy unit)';
COMMENT ON AGGREGATE @extschema@.dp_percentiles(double precision, double precision[], double precision, double precision, double precision) IS 'Noisy percentiles (an array of 0 to 1) of values clamped to [lower, upper], epsilon split evenly between them; charges epsilon';
COMMENT ON AGGREGATE @extschema@.dp_percentiles(double precision, double precision[], double precision, double precision, double precision, double precision) IS 'Noisy percentiles (an array of 0 to 1) of values clamped to [lower, upper], epsilon split evenly between them; charges epsilon (the delta form: Gaussian when delta > 0; percentiles take no delta)';
COMMENT ON AGGREGATE @extschema@.dp_percentiles(double precision, double precision[], double precision, double precision, double precision, double precision, text, integer) IS 'Noisy percentiles (an array of 0 to 1) of values clamped to [lower, upper], epsilon split evenly between them; charges epsilon (at most max_rows_per_unit rows per privacy unit)';
COMMENT ON AGGREGATE @extschema@.dp_median(double precision, double precision, double precision, double precision) IS 'Noisy median of values clamped to [lower, upper] (dp_percentile at 0.5); charges epsilon';
COMMENT ON AGGREGATE @extschema@.dp_median(double precision, double precision, double precision, double precision, double precision) IS 'Noisy median of values clamped to [lower, upper] (dp_percentile at 0.5); charges epsilon (the delta form: Gaussian when delta > 0; percentiles take no delta)';
COMMENT ON AGGREGATE @extschema@.dp_median(double precision, double precision, double precision, double precision, double precision, text, integer) IS 'Noisy median of values clamped to [lower, upper] (dp_percentile at 0.5); charges epsilon (at most max_rows_per_unit rows per privacy unit)';
COMMENT ON AGGREGATE @extschema@.dp_var_pop(double precision, double precision, double precision, double precision) IS 'Noisy population variance of values clamped to [lower, upper]: noisy count, sum and sum of squares of centred values, a third of epsilon (and delta) each; charges epsilon';
COMMENT ON AGGREGATE @extschema@.dp_var_pop(double precision, double precision, double precision, double precision, double precision) IS 'Noisy population variance of values clamped to [lower, upper]: noisy count, sum and sum of squares of centred values, a third of epsilon (and delta) each; charges epsilon (the delta form: Gaussian when delta > 0)';
COMMENT ON AGGREGATE @extschema@.dp_var_pop(double precision, double precision, double precision, double precision, double precision, text, integer) IS 'Noisy population variance of values clamped to [lower, upper]: noisy count, sum and sum of squares of centred values, a third of epsilon (and delta) each; charges epsilon (at most max_rows_per_unit rows per privacy unit)';
COMMENT ON AGGREGATE @extschema@.dp_stddev_pop(double precision, double precision, double precision, double precision) IS 'Noisy population standard deviation (the square root of dp_var_pop''s release); charges epsilon';
COMMENT ON AGGREGATE @extschema@.dp_stddev_pop(double precision, double precision, double precision, double precision, double precision) IS 'Noisy population standard deviation (the square root of dp_var_pop''s release); charges epsilon (the delta form: Gaussian when delta > 0)';
COMMENT ON AGGREGATE @extschema@.dp_stddev_pop(double precision, double precision, double precision, double precision, double precision, text, integer) IS 'Noisy population standard deviation (the square root of dp_var_pop''s release); charges epsilon (at most max_rows_per_unit rows per privacy unit)';
COMMENT ON FUNCTION @extschema@.dp_histogram_combine(internal, internal) IS 'dp aggregate combine function (parallel aggregation)';
COMMENT ON FUNCTION @extschema@.dp_histogram_serialize(internal) IS 'dp aggregate state serialization (parallel aggregation)';
COMMENT ON FUNCTION @extschema@.dp_histogram_deserialize(bytea, internal) IS 'dp aggregate state deserialization (parallel aggregation)';
COMMENT ON FUNCTION @extschema@.dp_moments_combine(internal, internal) IS 'dp aggregate combine function (parallel aggregation)';
COMMENT ON FUNCTION @extschema@.dp_moments_serialize(internal) IS 'dp aggregate state serialization (parallel aggregation)';
COMMENT ON FUNCTION @extschema@.dp_moments_deserialize(bytea, internal) IS 'dp aggregate state deserialization (parallel aggregation)';
COMMENT ON FUNCTION @extschema@.dp_percentile_final(internal) IS 'dp aggregate final function: records the privacy charge, then adds noise once';
COMMENT ON FUNCTION @extschema@.dp_percentiles_final(internal) IS 'dp aggregate final function: records the privacy charge, then adds noise once';
COMMENT ON FUNCTION @extschema@.dp_var_pop_final(internal) IS 'dp aggregate final function: records the privacy charge, then adds noise once';
COMMENT ON FUNCTION @extschema@.dp_stddev_pop_final(internal) IS 'dp aggregate final function: records the privacy charge, then adds noise once';
COMMENT ON FUNCTION @extschema@.dp_percentile_summary_trans(@extschema@.dp_summary, double precision, double precision, double precision, double precision, double precision) IS 'dp aggregate transition (exact state; refuses calls outside its aggregate)';
COMMENT ON FUNCTION @extschema@.dp_percentile_summary_trans(@extschema@.dp_summary, double precision, double precision, double precision, double precision, double precision, double precision) IS 'dp aggregate transition (exact state; refuses calls outside its aggregate)';
COMMENT ON FUNCTION @extschema@.dp_percentile_trans(internal, double precision, double precision, double precision, double precision, double precision, double precision, text, integer) IS 'dp aggregate transition (exact state; refuses calls outside its aggregate)';
COMMENT ON FUNCTION @extschema@.dp_percentiles_summary_trans(@extschema@.dp_summary, double precision, double precision[], double precision, double precision, double precision) IS 'dp aggregate transition (exact state; refuses calls outside its aggregate)';
COMMENT ON FUNCTION @extschema@.dp_percentiles_summary_trans(@extschema@.dp_summary, double precision, double precision[], double precision, double precision, double precision, double precision) IS 'dp aggregate transition (exact state; refuses calls outside its aggregate)';
COMMENT ON FUNCTION @extschema@.dp_percentiles_trans(internal, double precision, double precision[], double precision, double precision, double precision, double precision, text, integer) IS 'dp aggregate transition (exact state; refuses calls outside its aggregate)';
COMMENT ON FUNCTION @extschema@.dp_median_summary_trans(@extschema@.dp_summary, double precision, double precision, double precision, double precision) IS 'dp aggregate transition (exact state; refuses calls outside its aggregate)';
COMMENT ON FUNCTION @extschema@.dp_median_summary_trans(@extschema@.dp_summary, double precision, double precision, double precision, double precision, double precision) IS 'dp aggregate transition (exact state; refuses calls outside its aggregate)';
COMMENT ON FUNCTION @extschema@.dp_median_trans(internal, double precision, double precision, double precision, double precision, double precision, text, integer) IS 'dp aggregate transition (exact state; refuses calls outside its aggregate)';
COMMENT ON FUNCTION @extschema@.dp_moments_summary_trans(@extschema@.dp_summary, double precision, double precision, double precision, double precision) IS 'dp aggregate transition (exact state; refuses calls outside its aggregate)';
COMMENT ON FUNCTION @extschema@.dp_moments_summary_trans(@extschema@.dp_summary, double precision, double precision, double precision, double precision, double precision) IS 'dp aggregate transition (exact state; refuses calls outside its aggregate)';
COMMENT ON FUNCTION @extschema@.dp_moments_trans(internal, double precision, double precision, double precision, double precision, double precision, text, integer) IS 'dp aggregate transition (exact state; refuses calls outside its aggregate)';
REVOKE ALL ON FUNCTION @extschema@.dp_histogram_combine(internal, internal) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_histogram_serialize(internal) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_histogram_deserialize(bytea, internal) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_moments_combine(internal, internal) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_moments_serialize(internal) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_moments_deserialize(bytea, internal) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_percentile_final(internal) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_percentiles_final(internal) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_var_pop_final(internal) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_stddev_pop_final(internal) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_percentile_summary_trans(@extschema@.dp_summary, double precision, double precision, double precision, double precision, double precision) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_percentile_summary_trans(@extschema@.dp_summary, double precision, double precision, double precision, double precision, double precision, double precision) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_percentile_trans(internal, double precision, double precision, double precision, double precision, double precision, double precision, text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_percentiles_summary_trans(@extschema@.dp_summary, double precision, double precision[], double precision, double precision, double precision) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_percentiles_summary_trans(@extschema@.dp_summary, double precision, double precision[], double precision, double precision, double precision, double precision) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_percentiles_trans(internal, double precision, double precision[], double precision, double precision, double precision, double precision, text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_median_summary_trans(@extschema@.dp_summary, double precision, double precision, double precision, double precision) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_median_summary_trans(@extschema@.dp_summary, double precision, double precision, double precision, double precision, double precision) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_median_trans(internal, double precision, double precision, double precision, double precision, double precision, text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_moments_summary_trans(@extschema@.dp_summary, double precision, double precision, double precision, double precision) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_moments_summary_trans(@extschema@.dp_summary, double precision, double precision, double precision, double precision, double precision) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_moments_trans(internal, double precision, double precision, double precision, double precision, double precision, text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_percentile(double precision, double precision, double precision, double precision, double precision) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_percentile(double precision, double precision, double precision, double precision, double precision, double precision) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_percentile(double precision, double precision, double precision, double precision, double precision, double precision, text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_percentiles(double precision, double precision[], double precision, double precision, double precision) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_percentiles(double precision, double precision[], double precision, double precision, double precision, double precision) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_percentiles(double precision, double precision[], double precision, double precision, double precision, double precision, text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_median(double precision, double precision, double precision, double precision) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_median(double precision, double precision, double precision, double precision, double precision) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_median(double precision, double precision, double precision, double precision, double precision, text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_var_pop(double precision, double precision, double precision, double precision) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_var_pop(double precision, double precision, double precision, double precision, double precision) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_var_pop(double precision, double precision, double precision, double precision, double precision, text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_stddev_pop(double precision, double precision, double precision, double precision) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_stddev_pop(double precision, double precision, double precision, double precision, double precision) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dp_stddev_pop(double precision, double precision, double precision, double precision, double precision, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.dp_percentile(double precision, double precision, double precision, double precision, double precision) TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.dp_percentile(double precision, double precision, double precision, double precision, double precision, double precision) TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.dp_percentile(double precision, double precision, double precision, double precision, double precision, double precision, text, integer) TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.dp_percentiles(double precision, double precision[], double precision, double precision, double precision) TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.dp_percentiles(double precision, double precision[], double precision, double precision, double precision, double precision) TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.dp_percentiles(double precision, double precision[], double precision, double precision, double precision, double precision, text, integer) TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.dp_median(double precision, double precision, double precision, double precision) TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.dp_median(double precision, double precision, double precision, double precision, double precision) TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.dp_median(double precision, double precision, double precision, double precision, double precision, text, integer) TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.dp_var_pop(double precision, double precision, double precision, double precision) TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.dp_var_pop(double precision, double precision, double precision, double precision, double precision) TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.dp_var_pop(double precision, double precision, double precision, double precision, double precision, text, integer) TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.dp_stddev_pop(double precision, double precision, double precision, double precision) TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.dp_stddev_pop(double precision, double precision, double precision, double precision, double precision) TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.dp_stddev_pop(double precision, double precision, double precision, double precision, double precision, text, integer) TO PUBLIC;

-- zCDP accounting (issue 32; as sql/schema/bootstrap.sql creates the tables and views).
ALTER TABLE @extschema@.privacy_budgets
    ADD COLUMN accounting text NOT NULL DEFAULT 'approx' CHECK (accounting IN ('pure', 'approx', 'zcdp')),
    ADD COLUMN rho_total float8 CHECK (rho_total >= 0 AND rho_total < 'infinity'),
    ADD COLUMN rho_spent float8 NOT NULL DEFAULT 0;
ALTER TABLE @extschema@.privacy_charges ADD COLUMN rho float8;
COMMENT ON TABLE @extschema@.privacy_budgets IS 'pg_encrypt_ml: privacy budget of each analyst and scope (pure, approximate or zCDP accounting)';
CREATE OR REPLACE VIEW @extschema@.privacy_budget WITH (security_barrier) AS
SELECT b.analyst, b.scope, b.epsilon_total, b.epsilon_spent,
       greatest(b.epsilon_total - b.epsilon_spent, 0) AS epsilon_remaining,
       b.delta_total, b.delta_spent,
       -- Under zcdp, half of delta converts rho; noisy thresholds spend the other half.
       greatest(CASE WHEN b.accounting = 'zcdp' THEN b.delta_total / 2 ELSE b.delta_total END
                - b.delta_spent, 0) AS delta_remaining,
       b.set_by, b.set_at, b.accounting, b.rho_total, b.rho_spent
  FROM @extschema@.privacy_budgets b
 WHERE b.analyst::oid = (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)
    OR pg_catalog.pg_has_role(current_user, 'encml_privacy_admin', 'USAGE');
CREATE OR REPLACE VIEW @extschema@.privacy_ledger WITH (security_barrier) AS
SELECT c.id, c.charged_at, c.analyst, c.scope, c.epsilon, c.delta, c.query_hash, c.granted, c.note,
       c.rho
  FROM @extschema@.privacy_charges c
 WHERE c.analyst::oid = (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)
    OR pg_catalog.pg_has_role(current_user, 'encml_privacy_admin', 'USAGE');
DROP FUNCTION @extschema@.set_privacy_budget(regrole, double precision, double precision, text);
CREATE FUNCTION @extschema@.set_privacy_budget(analyst regrole, epsilon double precision,
        delta double precision DEFAULT 0, scope text DEFAULT 'default', accounting text DEFAULT 'approx')
    RETURNS void LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'set_privacy_budget_wrapper';
CREATE  FUNCTION @extschema@."zcdp_epsilon"(
	"rho" double precision, /* f64 */
	"delta" double precision /* f64 */
) RETURNS double precision /* f64 */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'zcdp_epsilon_wrapper';
REVOKE ALL ON FUNCTION @extschema@.set_privacy_budget(regrole, double precision, double precision, text, text),
    @extschema@.zcdp_epsilon(double precision, double precision) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.set_privacy_budget(regrole, double precision, double precision, text, text) IS
    'Sets an analyst''s total privacy budget (epsilon, delta) in a scope, composed by accounting ''pure'', ''approx'' (epsilon and delta add up) or ''zcdp'' (rho adds up); what was spent stays spent (privacy admins)';
COMMENT ON FUNCTION @extschema@.zcdp_epsilon(double precision, double precision) IS
    'The epsilon that a total rho of zero-concentrated DP amounts to at delta (OpenDP''s conversion)';
GRANT EXECUTE ON FUNCTION @extschema@.zcdp_epsilon(double precision, double precision) TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.set_privacy_budget(regrole, double precision, double precision, text, text)
TO encml_privacy_admin;
-- Groups per privacy unit (issue 32): the privacy-unit form of dp_partition.
CREATE FUNCTION @extschema@.dp_partition_trans(internal, float8, float8, text, integer) RETURNS internal
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'encml_dp_partition_trans';
CREATE AGGREGATE @extschema@.dp_partition(epsilon float8, delta float8, privacy_unit text, max_groups_contributed integer) (
    SFUNC = @extschema@.dp_partition_trans, STYPE = internal, FINALFUNC = @extschema@.dp_partition_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = @extschema@.dp_i64_combine, SERIALFUNC = @extschema@.dp_i64_serialize, DESERIALFUNC = @extschema@.dp_i64_deserialize,
    PARALLEL = SAFE
);
REVOKE ALL ON FUNCTION @extschema@.dp_partition_trans(internal, double precision, double precision, text, integer),
    @extschema@.dp_partition(double precision, double precision, text, integer) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.dp_partition_trans(internal, double precision, double precision, text, integer) IS 'dp aggregate transition (exact state; refuses calls outside its aggregate)';
COMMENT ON AGGREGATE @extschema@.dp_partition(double precision, double precision, text, integer) IS 'Partition selection for HAVING with a privacy unit: true when the group''s count of units plus discrete Laplace noise passes the threshold for (epsilon, delta) / max_groups_contributed; the query is rewritten so that each unit''s rows reach at most max_groups_contributed groups, and every dp aggregate of the query adds its noise for a max_groups_contributed-th of its loss; charges (epsilon, delta) once per execution';
GRANT EXECUTE ON FUNCTION @extschema@.dp_partition(double precision, double precision, text, integer) TO PUBLIC;
-- The support functions over dp_summary are open, like those over dp_state: Citus checks that the
-- caller may execute them before it combines per-shard summaries; they refuse calls outside
-- their aggregates.
REVOKE ALL ON FUNCTION @extschema@.dp_summary_in(cstring), @extschema@.dp_summary_out(@extschema@.dp_summary) FROM PUBLIC;
DO $$
DECLARE f regprocedure;
BEGIN
    FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = '@extschema@'::regnamespace AND p.prokind = 'f'
                AND p.proname NOT LIKE 'dp\_summary\_%'
                AND '@extschema@.dp_summary'::regtype = ANY (p.proargtypes)
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO PUBLIC', f);
    END LOOP;
END
$$;
