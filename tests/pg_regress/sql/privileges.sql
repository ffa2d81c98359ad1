-- What a role without special rights can and cannot do. Key material (raw, wrapped or master)
-- must not be reachable through any table, view, function, setting or error message.
CREATE ROLE encml_regress_analyst NOLOGIN;
CREATE ROLE encml_regress_other NOLOGIN;
CREATE ROLE encml_regress_admin NOLOGIN IN ROLE encml_key_admin;
GRANT USAGE ON SCHEMA encml TO encml_regress_analyst, encml_regress_other, encml_regress_admin;
SELECT encml.create_key('regress-priv-owned-by-postgres') AS pk \gset

SET ROLE encml_regress_analyst;
-- The catalog tables are closed; the views show metadata only.
SELECT try('SELECT * FROM encml.data_key_versions');
SELECT try('SELECT * FROM encml.data_keys');
SELECT try('SELECT * FROM encml.master_key_rotations');
SELECT count(*) > 0 AS sees_key_metadata FROM encml.keys;
SELECT string_agg(column_name, ', ' ORDER BY ordinal_position) AS keys_columns
  FROM information_schema.columns WHERE table_schema = 'encml' AND table_name = 'keys';
SELECT string_agg(column_name, ', ' ORDER BY ordinal_position) AS key_versions_columns
  FROM information_schema.columns WHERE table_schema = 'encml' AND table_name = 'key_versions';
-- The provider settings and the key file are out of reach.
SELECT try('SHOW encml.master_key_file');
SELECT try('SHOW encml.master_key_command');
SELECT count(*) AS provider_settings_visible FROM pg_settings WHERE name LIKE 'encml.master_key%';
SELECT try($$SELECT pg_read_file('pg_encrypt_ml/master.key')$$);
SELECT try($$SELECT pg_ls_dir('pg_encrypt_ml')$$);
-- Rotating the master key and administering another role's key are refused.
SELECT try('SELECT encml.rotate_master_key()');
SELECT replace(try(format('SELECT encml.rotate_key(%L)', :'pk')), :'pk', '<pk>');
SELECT replace(try(format('SELECT encml.destroy_key(%L)', :'pk')), :'pk', '<pk>');
SELECT replace(try(format('SELECT encml.retire_key_version(%L, 1)', :'pk')), :'pk', '<pk>');
-- The analyst may create, use and administer a key of its own.
SELECT encml.create_key('regress-priv-analyst') AS ak \gset
SELECT encml.decrypt_text(encml.encrypt('mine', :'ak')) AS own_key_works;
SELECT encml.rotate_key(:'ak') AS own_rotation;
SELECT created_by::text FROM encml.keys WHERE id = :'ak';
-- Caught refusals leave the session as the analyst, with its own search_path.
SELECT current_user, current_setting('search_path') AS search_path;
RESET ROLE;

-- Another ordinary role may not touch the analyst's key; a key admin may.
SET ROLE encml_regress_other;
SELECT replace(try(format('SELECT encml.rotate_key(%L)', :'ak')), :'ak', '<ak>');
RESET ROLE;
SET ROLE encml_regress_admin;
SELECT encml.rotate_key(:'ak') AS admin_rotation;
SELECT try('SELECT encml.rotate_master_key()');
RESET ROLE;

-- A caller's search_path cannot redirect the extension's catalog work: an operator planted in a
-- schema searched first is never called while the extension runs as the catalog owner.
CREATE SCHEMA evil;
GRANT USAGE ON SCHEMA evil TO PUBLIC;
CREATE FUNCTION evil.uuid_eq(uuid, uuid) RETURNS boolean LANGUAGE plpgsql AS
$$BEGIN RAISE EXCEPTION 'planted operator ran as %', current_user; END$$;
CREATE OPERATOR evil.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = evil.uuid_eq);
CREATE FUNCTION evil.text_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS
$$BEGIN RAISE EXCEPTION 'planted operator ran as %', current_user; END$$;
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.text_eq);
SET ROLE encml_regress_analyst;
SET search_path = evil, pg_catalog, public;
SELECT encml.create_key('regress-priv-search-path') IS NOT NULL AS created;
SELECT encml.rotate_key(:'ak') AS rotated;
RESET search_path;
RESET ROLE;
DROP SCHEMA evil CASCADE;

-- Every function of the extension has a comment, and its markings are as documented.
SELECT p.oid::regprocedure AS function,
       CASE p.provolatile WHEN 'i' THEN 'immutable' WHEN 's' THEN 'stable' ELSE 'volatile' END AS volatility,
       p.proisstrict AS strict,
       CASE p.proparallel WHEN 's' THEN 'safe' WHEN 'r' THEN 'restricted' ELSE 'unsafe' END AS parallel,
       p.prosecdef AS security_definer,
       obj_description(p.oid, 'pg_proc') IS NOT NULL AS commented,
       (SELECT string_agg(CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, ',' ORDER BY 1)
          FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
         WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner) AS execute_granted_to
  FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
 WHERE d.refclassid = 'pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_encrypt_ml')
 ORDER BY p.oid::regprocedure::text;
-- Catalog tables are dumped by pg_dump as extension configuration.
SELECT c.relname FROM pg_extension e, unnest(e.extconfig) AS t(oid) JOIN pg_class c ON c.oid = t.oid
 WHERE e.extname = 'pg_encrypt_ml' ORDER BY 1;

DROP OWNED BY encml_regress_analyst, encml_regress_other, encml_regress_admin;
DROP ROLE encml_regress_analyst, encml_regress_other, encml_regress_admin;
