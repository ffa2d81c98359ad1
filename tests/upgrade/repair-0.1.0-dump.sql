-- After restoring a dump taken with 0.1.0 into 0.1.0 and updating (docs/upgrading.md, "Dump and
-- restore"): the steps the documentation gives, as this test's database needs them.
\set ON_ERROR_STOP 1
-- 0.1.0 did not dump these sequences: move them past the restored ids.
SELECT setval('encml.privacy_charges_id_seq', max(id)) FROM encml.privacy_charges HAVING max(id) IS NOT NULL;
SELECT setval('encml.consents_id_seq', max(id)) FROM encml.consents HAVING max(id) IS NOT NULL;
-- 0.1.0 named audited and classified tables by oid: rows that resolve to no table (or to another
-- one) are stale. Delete them, then classify and audit the restored tables again.
DELETE FROM encml.audited_tables a WHERE NOT EXISTS (SELECT FROM pg_trigger t
                                                      WHERE t.tgrelid = a.table_oid AND t.tgname = 'encml_audit_row');
DELETE FROM encml.column_classes c WHERE NOT EXISTS (SELECT FROM pg_attribute a
                                                      WHERE a.attrelid = c.table_oid AND a.attnum = c.attnum AND NOT a.attisdropped);
SELECT encml.classify('public.up_patients', 'ssn', 'pii');
SELECT encml.audit_enable('public.up_patients');
SELECT encml.audit_enable('public.up_visits');
