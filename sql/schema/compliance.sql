-- Compliance report over the live database (docs/audit.md). Runs with the extension owner's
-- rights (it reads the key catalog, pg_authid and every table using encrypted types); granted to
-- encml_auditor.
-- Whether a pg_hba.conf line's address admits only this machine: samehost, 127.0.0.0/8 (or
-- narrower), ::1/128. Host names, samenet and all admit the network.
CREATE FUNCTION hba_rule_is_loopback(address text, netmask text) RETURNS boolean
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
COMMENT ON FUNCTION hba_rule_is_loopback(text, text) IS
    'Whether a pg_hba.conf line (address, netmask as pg_hba_file_rules shows them) admits only this machine (compliance_report)';

CREATE FUNCTION compliance_report()
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
