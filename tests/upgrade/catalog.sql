-- Prints every object of the extension pg_encrypt_ml as sorted lines "object | property | value",
-- without OIDs, so that two databases can be compared with diff: an upgraded one and a fresh
-- install must print the same lines. Covers each member object's definition, owner, privileges
-- (current and initial, which pg_dump compares), comment, security labels and dependencies;
-- tables with their columns (in order), defaults, constraints, indexes, triggers, policies and
-- options; types, operators, operator classes and families with their members, casts,
-- aggregates and event triggers; the extension row (version, owner, configuration tables and
-- their dump conditions), its schema with default privileges, the roles its scripts create, and
-- objects an extension script left outside the extension.
\set ON_ERROR_STOP 1
\pset format unaligned
\pset tuples_only on
\pset fieldsep ' | '
\pset null '<null>'
SET search_path = pg_catalog, pg_temp;

-- (No temporary objects: on a Citus worker, Citus refuses to create them.)
WITH member AS (
    SELECT d.classid, d.objid, d.objsubid,
           pg_describe_object(d.classid, d.objid, d.objsubid) AS object
      FROM pg_depend d
      JOIN pg_extension e ON e.oid = d.refobjid
     WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
       AND e.extname = 'pg_encrypt_ml'
), lines(object, property, value) AS (
    -- The extension itself.
    SELECT 'extension pg_encrypt_ml', 'version', extversion FROM pg_extension WHERE extname = 'pg_encrypt_ml'
    UNION ALL
    SELECT 'extension pg_encrypt_ml', 'schema / relocatable',
           extnamespace::regnamespace::text || ' / ' || extrelocatable
      FROM pg_extension WHERE extname = 'pg_encrypt_ml'
    UNION ALL
    SELECT 'extension pg_encrypt_ml', 'owner / comment',
           extowner::regrole::text || ' / ' || coalesce(obj_description(oid, 'pg_extension'), '<none>')
      FROM pg_extension WHERE extname = 'pg_encrypt_ml'
    UNION ALL
    SELECT 'extension pg_encrypt_ml', 'config table ' || c.cfg::regclass::text,
           coalesce(e.extcondition[c.n], '<none>')
      FROM pg_extension e, unnest(e.extconfig) WITH ORDINALITY AS c(cfg, n)
     WHERE e.extname = 'pg_encrypt_ml'
    UNION ALL
    -- Every member: its kind, comment and initial privileges (pg_init_privs).
    SELECT m.object, 'member', 'yes' FROM member m
    UNION ALL
    SELECT m.object, 'comment', coalesce(obj_description(m.objid, m.classid::regclass::name), '<none>')
      FROM member m
    UNION ALL
    SELECT m.object, 'initial privileges', (CASE WHEN ip.initprivs IS NULL THEN '<default>' ELSE coalesce((SELECT string_agg(acl_item::text, ' ' ORDER BY acl_item::text) FROM unnest(ip.initprivs) acl_item), '{}') END)
      FROM member m JOIN pg_init_privs ip
        ON ip.classoid = m.classid AND ip.objoid = m.objid AND ip.objsubid = 0
    UNION ALL
    SELECT m.object || ' column ' || a.attname, 'initial privileges', (CASE WHEN ip.initprivs IS NULL THEN '<default>' ELSE coalesce((SELECT string_agg(acl_item::text, ' ' ORDER BY acl_item::text) FROM unnest(ip.initprivs) acl_item), '{}') END)
      FROM member m
      JOIN pg_init_privs ip ON ip.classoid = m.classid AND ip.objoid = m.objid AND ip.objsubid > 0
      JOIN pg_attribute a ON a.attrelid = ip.objoid AND a.attnum = ip.objsubid
    UNION ALL
    -- The extension's schema (CREATE EXTENSION makes it; it is not a member) and its default
    -- privileges.
    SELECT 'schema ' || n.nspname, 'owner / privileges / comment',
           concat_ws(' / ', n.nspowner::regrole::text, (CASE WHEN n.nspacl IS NULL THEN '<default>' ELSE coalesce((SELECT string_agg(acl_item::text, ' ' ORDER BY acl_item::text) FROM unnest(n.nspacl) acl_item), '{}') END),
                     coalesce(obj_description(n.oid, 'pg_namespace'), '<none>'))
      FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_encrypt_ml'
    UNION ALL
    SELECT 'schema ' || n.nspname, 'initial privileges', (CASE WHEN ip.initprivs IS NULL THEN '<default>' ELSE coalesce((SELECT string_agg(acl_item::text, ' ' ORDER BY acl_item::text) FROM unnest(ip.initprivs) acl_item), '{}') END)
      FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
      JOIN pg_init_privs ip ON ip.classoid = 'pg_namespace'::regclass AND ip.objoid = n.oid
     WHERE e.extname = 'pg_encrypt_ml'
    UNION ALL
    SELECT 'schema ' || n.nspname, 'default privileges ' || d.defaclobjtype::text || ' for ' || d.defaclrole::regrole::text,
           (CASE WHEN d.defaclacl IS NULL THEN '<default>' ELSE coalesce((SELECT string_agg(acl_item::text, ' ' ORDER BY acl_item::text) FROM unnest(d.defaclacl) acl_item), '{}') END)
      FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
      JOIN pg_default_acl d ON d.defaclnamespace = n.oid
     WHERE e.extname = 'pg_encrypt_ml'
    UNION ALL
    -- Extension-made initial privileges of objects that are no longer members (left behind).
    SELECT pg_describe_object(ip.classoid, ip.objoid, ip.objsubid), 'initial privileges of a non-member',
           (CASE WHEN ip.initprivs IS NULL THEN '<default>' ELSE coalesce((SELECT string_agg(acl_item::text, ' ' ORDER BY acl_item::text) FROM unnest(ip.initprivs) acl_item), '{}') END)
      FROM pg_init_privs ip
     WHERE ip.privtype = 'e' AND ip.objoid >= 16384
       AND NOT EXISTS (SELECT FROM member m WHERE m.classid = ip.classoid AND m.objid = ip.objoid)
       AND NOT EXISTS (SELECT FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
                        WHERE e.extname = 'pg_encrypt_ml' AND ip.classoid = 'pg_namespace'::regclass
                          AND ip.objoid = n.oid)
       -- Other extensions' objects (amcheck in the test databases).
       AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = ip.classoid AND d.objid = ip.objoid
                          AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e')
    UNION ALL
    -- Security labels on members.
    SELECT m.object, 'security label ' || sl.provider, sl.label
      FROM member m JOIN pg_seclabel sl ON sl.classoid = m.classid AND sl.objoid = m.objid
    UNION ALL
    -- What each member depends on besides the extension (a view on a function, a function on a
    -- type, a sequence owned by a column, ...); a view's dependencies are those of its rule.
    SELECT DISTINCT m.object, 'depends (' || d.deptype::text || ') on ' || pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid), ''
      FROM pg_depend d
      LEFT JOIN pg_rewrite rw ON d.classid = 'pg_rewrite'::regclass AND rw.oid = d.objid
      JOIN member m ON m.classid = CASE WHEN rw.oid IS NULL THEN d.classid ELSE 'pg_class'::regclass END
                   AND m.objid = coalesce(rw.ev_class, d.objid)
     WHERE d.deptype IN ('n', 'a') AND d.refclassid <> 'pg_extension'::regclass
       AND NOT (rw.oid IS NOT NULL AND d.refclassid = 'pg_class'::regclass AND d.refobjid = rw.ev_class)
    UNION ALL
    -- The roles the extension's scripts create: attributes, comment, memberships.
    SELECT 'role ' || r.rolname, 'role',
           concat_ws(' ', 'login ' || r.rolcanlogin, 'inherit ' || r.rolinherit, 'superuser ' || r.rolsuper,
                     'createrole ' || r.rolcreaterole, 'createdb ' || r.rolcreatedb,
                     'replication ' || r.rolreplication, 'bypassrls ' || r.rolbypassrls,
                     'comment ' || coalesce(shobj_description(r.oid, 'pg_authid'), '<none>'),
                     'member of ' || coalesce((SELECT string_agg(g.roleid::regrole::text || CASE WHEN g.admin_option THEN ' (admin)' ELSE '' END,
                                                                 ',' ORDER BY g.roleid::regrole::text)
                                                 FROM pg_auth_members g WHERE g.member = r.oid), '-'))
      FROM pg_roles r WHERE r.rolname ~ '^encml_' AND r.rolname !~ '^encml_up_'
    UNION ALL
    -- Schemas that are members.
    SELECT m.object, 'owner / privileges', n.nspowner::regrole::text || ' / ' || (CASE WHEN n.nspacl IS NULL THEN '<default>' ELSE coalesce((SELECT string_agg(acl_item::text, ' ' ORDER BY acl_item::text) FROM unnest(n.nspacl) acl_item), '{}') END)
      FROM member m JOIN pg_namespace n ON m.classid = 'pg_namespace'::regclass AND n.oid = m.objid
    UNION ALL
    -- Functions and procedures: the full definition (language, volatility, strictness, parallel
    -- safety, security, cost, settings, body).
    SELECT m.object, 'definition', pg_get_functiondef(p.oid)
      FROM member m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
     WHERE p.prokind <> 'a'
    UNION ALL
    SELECT m.object, 'owner / privileges', p.proowner::regrole::text || ' / ' || (CASE WHEN p.proacl IS NULL THEN '<default>' ELSE coalesce((SELECT string_agg(acl_item::text, ' ' ORDER BY acl_item::text) FROM unnest(p.proacl) acl_item), '{}') END)
      FROM member m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
    UNION ALL
    -- Aggregates.
    SELECT m.object, 'aggregate',
           concat_ws(' ', 'args(' || pg_get_function_arguments(p.oid) || ')',
                     'returns ' || pg_get_function_result(p.oid),
                     'kind ' || a.aggkind::text, 'direct ' || a.aggnumdirectargs,
                     'sfunc ' || a.aggtransfn::regprocedure::text,
                     'stype ' || a.aggtranstype::regtype::text,
                     'sspace ' || a.aggtransspace,
                     'finalfunc ' || a.aggfinalfn::regprocedure::text,
                     'finalextra ' || a.aggfinalextra, 'finalmodify ' || a.aggfinalmodify::text,
                     'combinefunc ' || a.aggcombinefn::regprocedure::text,
                     'serialfunc ' || a.aggserialfn::regprocedure::text,
                     'deserialfunc ' || a.aggdeserialfn::regprocedure::text,
                     'msfunc ' || a.aggmtransfn::regprocedure::text,
                     'minvfunc ' || a.aggminvtransfn::regprocedure::text,
                     'mfinalfunc ' || a.aggmfinalfn::regprocedure::text,
                     'mstype ' || a.aggmtranstype::regtype::text,
                     'sortop ' || a.aggsortop::regoperator::text,
                     'initcond ' || coalesce(a.agginitval, '<null>'),
                     'minitcond ' || coalesce(a.aggminitval, '<null>'),
                     'volatile ' || p.provolatile::text, 'parallel ' || p.proparallel::text,
                     'strict ' || p.proisstrict)
      FROM member m
      JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
      JOIN pg_aggregate a ON a.aggfnoid = p.oid
    UNION ALL
    -- Relations: kind, owner, privileges, options, row security, persistence.
    SELECT m.object, 'relation',
           concat_ws(' ', 'kind ' || c.relkind::text, 'persistence ' || c.relpersistence::text,
                     'owner ' || c.relowner::regrole::text, 'privileges ' || (CASE WHEN c.relacl IS NULL THEN '<default>' ELSE coalesce((SELECT string_agg(acl_item::text, ' ' ORDER BY acl_item::text) FROM unnest(c.relacl) acl_item), '{}') END),
                     'options ' || coalesce(c.reloptions::text, '{}'),
                     'rls ' || c.relrowsecurity, 'force_rls ' || c.relforcerowsecurity,
                     'replica_identity ' || c.relreplident::text,
                     'tablespace ' || coalesce((SELECT spcname FROM pg_tablespace WHERE oid = c.reltablespace), '<default>'),
                     'access_method ' || coalesce((SELECT amname FROM pg_am WHERE oid = c.relam), '<none>'))
      FROM member m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
    UNION ALL
    -- Columns in their order (a column added by an upgrade must be added last in the install
    -- source too, so that SELECT * and COPY see the same table).
    SELECT m.object, 'column ' || lpad(row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum)::text, 3, '0'),
           concat_ws(' ', a.attname, format_type(a.atttypid, a.atttypmod),
                     CASE WHEN a.attnotnull THEN 'NOT NULL' END,
                     CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
                          THEN 'COLLATE ' || a.attcollation::regcollation::text END,
                     CASE a.attidentity WHEN 'a' THEN 'GENERATED ALWAYS AS IDENTITY'
                                        WHEN 'd' THEN 'GENERATED BY DEFAULT AS IDENTITY' END,
                     CASE WHEN a.attgenerated = 's' THEN 'GENERATED ALWAYS AS (' || pg_get_expr(ad.adbin, ad.adrelid) || ') STORED'
                          WHEN ad.adbin IS NOT NULL THEN 'DEFAULT ' || pg_get_expr(ad.adbin, ad.adrelid) END,
                     'storage ' || a.attstorage::text,
                     CASE WHEN a.attcompression <> '' THEN 'compression ' || a.attcompression::text END,
                     -- (This server build keeps a per-column pg_attver option of its own.)
                     'options ' || (SELECT string_agg(o, ',' ORDER BY o) FROM unnest(a.attoptions) o
                                     WHERE o NOT LIKE 'pg\_attver=%'),
                     CASE WHEN a.attstattarget >= 0 THEN 'statistics ' || a.attstattarget END,
                     CASE WHEN a.attacl IS NOT NULL THEN 'privileges ' || (CASE WHEN a.attacl IS NULL THEN '<default>' ELSE coalesce((SELECT string_agg(acl_item::text, ' ' ORDER BY acl_item::text) FROM unnest(a.attacl) acl_item), '{}') END) END,
                     CASE WHEN col_description(c.oid, a.attnum) IS NOT NULL
                          THEN 'comment ' || col_description(c.oid, a.attnum) END)
      FROM member m
      JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      JOIN pg_type t ON t.oid = a.atttypid
      LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
    UNION ALL
    -- Identity sequences' parameters (not their current values, which are data).
    SELECT m.object, 'identity sequence of ' || a.attname,
           concat_ws(' ', format_type(s.seqtypid, NULL), 'start ' || s.seqstart, 'increment ' || s.seqincrement,
                     'min ' || s.seqmin, 'max ' || s.seqmax, 'cache ' || s.seqcache, 'cycle ' || s.seqcycle)
      FROM member m
      JOIN pg_attribute a ON m.classid = 'pg_class'::regclass AND a.attrelid = m.objid
                         AND a.attidentity <> '' AND NOT a.attisdropped
      JOIN pg_sequence s ON s.seqrelid = pg_get_serial_sequence(m.objid::regclass::text, a.attname)::regclass
    UNION ALL
    -- Sequences that are members themselves.
    SELECT m.object, 'sequence',
           concat_ws(' ', format_type(s.seqtypid, NULL), 'start ' || s.seqstart, 'increment ' || s.seqincrement,
                     'min ' || s.seqmin, 'max ' || s.seqmax, 'cache ' || s.seqcache, 'cycle ' || s.seqcycle)
      FROM member m JOIN pg_sequence s ON m.classid = 'pg_class'::regclass AND s.seqrelid = m.objid
    UNION ALL
    SELECT m.object, 'constraint ' || co.conname, pg_get_constraintdef(co.oid)
           || CASE WHEN co.condeferrable THEN ' DEFERRABLE' ELSE '' END
           || CASE WHEN co.condeferred THEN ' INITIALLY DEFERRED' ELSE '' END
           || CASE WHEN NOT co.convalidated THEN ' NOT VALID' ELSE '' END
      FROM member m JOIN pg_constraint co ON m.classid = 'pg_class'::regclass AND co.conrelid = m.objid
    UNION ALL
    SELECT m.object, 'index ' || i.indexrelid::regclass::text,
           pg_get_indexdef(i.indexrelid)
           || coalesce(' comment ' || obj_description(i.indexrelid, 'pg_class'), '')
      FROM member m JOIN pg_index i ON m.classid = 'pg_class'::regclass AND i.indrelid = m.objid
    UNION ALL
    SELECT m.object, 'trigger ' || tg.tgname,
           pg_get_triggerdef(tg.oid) || ' enabled ' || tg.tgenabled::text
      FROM member m JOIN pg_trigger tg ON m.classid = 'pg_class'::regclass AND tg.tgrelid = m.objid
     WHERE NOT tg.tgisinternal
    UNION ALL
    SELECT m.object, 'policy ' || po.polname,
           concat_ws(' ', 'command ' || po.polcmd::text, CASE WHEN po.polpermissive THEN 'permissive' ELSE 'restrictive' END,
                     'roles ' || (SELECT string_agg(n, ',' ORDER BY n)
                                    FROM (SELECT CASE WHEN r = 0 THEN 'public' ELSE r::regrole::text END AS n
                                            FROM unnest(po.polroles) r) rn),
                     'using ' || pg_get_expr(po.polqual, po.polrelid),
                     'check ' || pg_get_expr(po.polwithcheck, po.polrelid))
      FROM member m JOIN pg_policy po ON m.classid = 'pg_class'::regclass AND po.polrelid = m.objid
    UNION ALL
    SELECT m.object, 'rule ' || r.rulename, pg_get_ruledef(r.oid)
      FROM member m JOIN pg_rewrite r ON m.classid = 'pg_class'::regclass AND r.ev_class = m.objid
     WHERE r.rulename <> '_RETURN'
    UNION ALL
    SELECT m.object, 'view definition', pg_get_viewdef(m.objid)
      FROM member m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
     WHERE c.relkind IN ('v', 'm')
    UNION ALL
    -- Types (base, composite, domain, enum, range).
    SELECT m.object, 'type',
           concat_ws(' ', 'kind ' || t.typtype::text, 'len ' || t.typlen, 'byval ' || t.typbyval,
                     'category ' || t.typcategory::text, 'preferred ' || t.typispreferred,
                     'delim ' || t.typdelim::text, 'align ' || t.typalign::text, 'storage ' || t.typstorage::text,
                     'input ' || t.typinput::regprocedure::text, 'output ' || t.typoutput::regprocedure::text,
                     'receive ' || t.typreceive::regprocedure::text, 'send ' || t.typsend::regprocedure::text,
                     'modin ' || t.typmodin::regprocedure::text, 'modout ' || t.typmodout::regprocedure::text,
                     'analyze ' || t.typanalyze::regprocedure::text,
                     'subscript ' || t.typsubscript::regprocedure::text,
                     'element ' || t.typelem::regtype::text,
                     'array ' || CASE WHEN t.typarray = 0 THEN '<none>' ELSE t.typarray::regtype::text END,
                     'base ' || CASE WHEN t.typbasetype = 0 THEN '<none>' ELSE format_type(t.typbasetype, t.typtypmod) END,
                     'notnull ' || t.typnotnull, 'default ' || coalesce(t.typdefault, '<none>'),
                     'collation ' || CASE WHEN t.typcollation = 0 THEN '<none>' ELSE t.typcollation::regcollation::text END,
                     'owner ' || t.typowner::regrole::text, 'privileges ' || (CASE WHEN t.typacl IS NULL THEN '<default>' ELSE coalesce((SELECT string_agg(acl_item::text, ' ' ORDER BY acl_item::text) FROM unnest(t.typacl) acl_item), '{}') END))
      FROM member m JOIN pg_type t ON m.classid = 'pg_type'::regclass AND t.oid = m.objid
    UNION ALL
    SELECT m.object, 'enum labels', string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder)
      FROM member m JOIN pg_enum e ON m.classid = 'pg_type'::regclass AND e.enumtypid = m.objid
     GROUP BY m.object
    UNION ALL
    SELECT m.object, 'attribute ' || lpad(a.attnum::text, 3, '0'),
           a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
      FROM member m
      JOIN pg_type t ON m.classid = 'pg_type'::regclass AND t.oid = m.objid AND t.typtype = 'c'
      JOIN pg_attribute a ON a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT m.object, 'domain constraint ' || co.conname, pg_get_constraintdef(co.oid)
      FROM member m JOIN pg_constraint co ON m.classid = 'pg_type'::regclass AND co.contypid = m.objid
    UNION ALL
    -- Operators.
    SELECT m.object, 'operator',
           concat_ws(' ', 'kind ' || o.oprkind::text, 'left ' || o.oprleft::regtype::text,
                     'right ' || o.oprright::regtype::text, 'result ' || o.oprresult::regtype::text,
                     'function ' || o.oprcode::regprocedure::text,
                     'commutator ' || o.oprcom::regoperator::text, 'negator ' || o.oprnegate::regoperator::text,
                     'restrict ' || o.oprrest::regprocedure::text, 'join ' || o.oprjoin::regprocedure::text,
                     'merges ' || o.oprcanmerge, 'hashes ' || o.oprcanhash,
                     'owner ' || o.oprowner::regrole::text)
      FROM member m JOIN pg_operator o ON m.classid = 'pg_operator'::regclass AND o.oid = m.objid
    UNION ALL
    -- Operator classes and families, with every operator and support function of the family.
    SELECT m.object, 'operator class',
           concat_ws(' ', 'method ' || am.amname, 'type ' || oc.opcintype::regtype::text,
                     'default ' || oc.opcdefault,
                     'family ' || pg_describe_object('pg_opfamily'::regclass, oc.opcfamily, 0),
                     'storage ' || CASE WHEN oc.opckeytype = 0 THEN '<none>' ELSE oc.opckeytype::regtype::text END,
                     'owner ' || oc.opcowner::regrole::text)
      FROM member m
      JOIN pg_opclass oc ON m.classid = 'pg_opclass'::regclass AND oc.oid = m.objid
      JOIN pg_am am ON am.oid = oc.opcmethod
    UNION ALL
    SELECT m.object, 'owner', f.opfowner::regrole::text
      FROM member m JOIN pg_opfamily f ON m.classid = 'pg_opfamily'::regclass AND f.oid = m.objid
    UNION ALL
    SELECT pg_describe_object('pg_opfamily'::regclass, f.oid, 0),
           'operator ' || ao.amopstrategy || ' (' || ao.amoplefttype::regtype || ', ' || ao.amoprighttype::regtype || ')',
           concat_ws(' ', ao.amopopr::regoperator::text, 'purpose ' || ao.amoppurpose::text,
                     CASE WHEN ao.amopsortfamily <> 0
                          THEN 'order by ' || pg_describe_object('pg_opfamily'::regclass, ao.amopsortfamily, 0) END)
      FROM member m
      JOIN pg_opfamily f ON f.oid = CASE WHEN m.classid = 'pg_opfamily'::regclass THEN m.objid
                                         WHEN m.classid = 'pg_opclass'::regclass
                                         THEN (SELECT opcfamily FROM pg_opclass WHERE oid = m.objid) END
      JOIN pg_amop ao ON ao.amopfamily = f.oid
    UNION ALL
    SELECT pg_describe_object('pg_opfamily'::regclass, f.oid, 0),
           'function ' || ap.amprocnum || ' (' || ap.amproclefttype::regtype || ', ' || ap.amprocrighttype::regtype || ')',
           ap.amproc::regprocedure::text
      FROM member m
      JOIN pg_opfamily f ON f.oid = CASE WHEN m.classid = 'pg_opfamily'::regclass THEN m.objid
                                         WHEN m.classid = 'pg_opclass'::regclass
                                         THEN (SELECT opcfamily FROM pg_opclass WHERE oid = m.objid) END
      JOIN pg_amproc ap ON ap.amprocfamily = f.oid
    UNION ALL
    -- Casts.
    SELECT m.object, 'cast',
           concat_ws(' ', 'function ' || CASE WHEN ca.castfunc = 0 THEN '<none>' ELSE ca.castfunc::regprocedure::text END,
                     'context ' || ca.castcontext::text, 'method ' || ca.castmethod::text)
      FROM member m JOIN pg_cast ca ON m.classid = 'pg_cast'::regclass AND ca.oid = m.objid
    UNION ALL
    -- Event triggers.
    SELECT m.object, 'event trigger',
           concat_ws(' ', 'event ' || et.evtevent, 'function ' || et.evtfoid::regprocedure::text,
                     'enabled ' || et.evtenabled::text, 'tags ' || coalesce(et.evttags::text, '<all>'),
                     'owner ' || et.evtowner::regrole::text)
      FROM member m JOIN pg_event_trigger et ON m.classid = 'pg_event_trigger'::regclass AND et.oid = m.objid
    UNION ALL
    -- Objects in the extension's schema that are not members (an upgrade script must not leave
    -- any behind, and neither may an install).
    SELECT 'schema encml', 'non-member ' || pg_describe_object(x.classid, x.objid, 0), 'present'
      FROM (SELECT 'pg_class'::regclass AS classid, c.oid AS objid FROM pg_class c
             WHERE c.relnamespace = 'encml'::regnamespace AND c.relkind NOT IN ('i', 'I', 't')
                AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                   AND d.deptype IN ('a', 'i') AND d.refclassid = 'pg_class'::regclass)
            UNION ALL SELECT 'pg_proc'::regclass, p.oid FROM pg_proc p WHERE p.pronamespace = 'encml'::regnamespace
            UNION ALL SELECT 'pg_type'::regclass, t.oid FROM pg_type t
                       WHERE t.typnamespace = 'encml'::regnamespace AND t.typrelid = 0
                         AND NOT EXISTS (SELECT FROM pg_type b WHERE b.typarray = t.oid)
            UNION ALL SELECT 'pg_operator'::regclass, o.oid FROM pg_operator o
                       WHERE o.oprnamespace = 'encml'::regnamespace) x
     WHERE NOT EXISTS (SELECT FROM member m WHERE m.classid = x.classid AND m.objid = x.objid)
    UNION ALL
    -- Objects made after initdb in pg_catalog or outside any schema that belong to no extension
    -- (an extension script that put them there without making them members).
    SELECT 'database', 'non-member ' || pg_describe_object(x.classid, x.objid, 0), 'present'
      FROM (SELECT 'pg_proc'::regclass AS classid, p.oid AS objid FROM pg_proc p WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.oid >= 16384
            UNION ALL SELECT 'pg_operator'::regclass, o.oid FROM pg_operator o WHERE o.oprnamespace = 'pg_catalog'::regnamespace AND o.oid >= 16384
            -- (Not array types and row types of relations, nor indexes: they come with their
            -- type or relation.)
            UNION ALL SELECT 'pg_type'::regclass, t.oid FROM pg_type t
                       WHERE t.typnamespace = 'pg_catalog'::regnamespace AND t.oid >= 16384
                         AND NOT EXISTS (SELECT FROM pg_type b WHERE b.typarray = t.oid)
                         AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
            UNION ALL SELECT 'pg_class'::regclass, c.oid FROM pg_class c
                       WHERE c.relnamespace = 'pg_catalog'::regnamespace AND c.oid >= 16384
                         AND c.relkind NOT IN ('i', 'I', 't', 'c')
            UNION ALL SELECT 'pg_cast'::regclass, ca.oid FROM pg_cast ca WHERE ca.oid >= 16384
            UNION ALL SELECT 'pg_opclass'::regclass, oc.oid FROM pg_opclass oc WHERE oc.oid >= 16384
            UNION ALL SELECT 'pg_opfamily'::regclass, f.oid FROM pg_opfamily f WHERE f.oid >= 16384
            UNION ALL SELECT 'pg_event_trigger'::regclass, et.oid FROM pg_event_trigger et) x
     WHERE NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = x.classid AND d.objid = x.objid
                          AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e')
)
SELECT object, property, value FROM lines ORDER BY object COLLATE "C", property COLLATE "C", value COLLATE "C";
