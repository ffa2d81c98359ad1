-- Masking functions: what each keeps, multi-byte text, and their markings (IMMUTABLE, so they
-- can be used in views, generated columns and index expressions).
SELECT encml.mask_pan('4111 1111 1111 1111') AS pan,
       encml.mask_pan('4111-1111-1111-1111', 6) AS pan_first_six,
       encml.mask_email('jane.doe@example.org') AS email,
       encml.mask_email('émile@café.fr') AS email_multibyte,
       encml.mask_phone('+1 (555) 123-4567') AS phone,
       encml.mask_phone('+1 (555) 123-4567', 2) AS phone_last_two;
SELECT encml.mask_partial('Jonathan', 2, 1) AS name,
       encml.mask_partial('東京都千代田区', 1, 2, '＊') AS japanese,
       encml.mask_partial('Ünïcödé', 2, 1, '·') AS accents,
       encml.mask_partial('abc', 5, 5) AS never_more_than_half,
       encml.mask_partial('', 1, 1) AS empty;
SELECT encml.mask_date_to_year('1987-06-15') AS birth_year, encml.mask_date_to_year('infinity') AS infinite;
SELECT encml.mask_pan(NULL) IS NULL AS null_stays_null;
-- Digits of every script are masked (issue 27: Arabic-Indic and full-width digits came back
-- unchanged).
SELECT encml.mask_pan('٤١١١١١١١١١١١١١١١') AS arabic_indic_pan,
       encml.mask_pan('４１１１ １１１１ １１１１ １１１１', 6) AS full_width_pan,
       encml.mask_phone('+١ (٥٥٥) ١٢٣-٤٥٦٧') AS arabic_indic_phone;
SELECT try($$SELECT encml.mask_partial('abc', -1, 0)$$) AS negative_prefix;
-- A long pad multiplies the length: a result over 1 GB is refused before it is built (54000), not
-- an internal error (attacker pass of issue 29).
SELECT try($$SELECT length(encml.mask_partial(repeat('a', 6000000), 0, 0, repeat('x', 200)))$$) AS over_1gb;
SELECT try($$SELECT encml.mask_pan('4111111111111111', 8)$$) AS more_than_six;
-- Usable in an index expression and a generated column.
CREATE TABLE contacts (id int, email text, email_shown text GENERATED ALWAYS AS (encml.mask_email(email)) STORED);
CREATE INDEX ON contacts (encml.mask_phone(email));
INSERT INTO contacts (id, email) VALUES (1, 'ann@example.com');
SELECT email_shown FROM contacts;
DROP TABLE contacts;

-- Dynamic masking: rules per column, a security-barrier view <table>_masked, readers outside
-- the unmasked roles see masks; encrypted columns decrypt only for unmasked readers.
SET client_min_messages = warning;
CREATE ROLE encml_mask_analyst;
CREATE ROLE encml_mask_support;
CREATE ROLE encml_mask_owner;
RESET client_min_messages;
SELECT encml.create_key('regress-mask') AS mk \gset
SELECT encml.grant_key(:'mk', 'encml_mask_support', 'decrypt');
CREATE TABLE customers (id int, name text, email text, card text, phone text, born date, notes encml.enc_bytea);
INSERT INTO customers VALUES
    (1, 'Jonathan Smith', 'jonathan@example.com', '4111 1111 1111 1111', '+1 (555) 123-4567', '1987-06-15', encml.encrypt('vip customer', :'mk')),
    (2, '山田太郎', 'taro@例え.jp', '5500-0055-5555-5559', '03-1234-5678', '1990-01-31', encml.encrypt('prefers email', :'mk'));
SELECT encml.set_masking_rule('customers', 'name', 'partial(1, 0)', '{encml_mask_support}');
SELECT encml.set_masking_rule('customers', 'email', 'email', '{encml_mask_support}');
SELECT encml.set_masking_rule('customers', 'card', 'pan');
SELECT encml.set_masking_rule('customers', 'phone', 'phone', '{encml_mask_support}');
SELECT encml.set_masking_rule('customers', 'born', 'year', '{encml_mask_support}');
SELECT encml.set_masking_rule('customers', 'notes', 'partial(0, 0)', '{encml_mask_support}');
SELECT try($$SELECT encml.set_masking_rule('customers', 'email', 'rot13')$$) AS unknown_mask;
SELECT try($$SELECT encml.set_masking_rule('customers', 'nope', 'email')$$) AS unknown_column;
SELECT try($$SELECT encml.set_masking_rule('customers', 'name', 'year')$$) AS year_on_text;
SELECT encml.apply_masking('customers');
-- Base table closed, the view granted (docs/masking.md).
REVOKE ALL ON customers FROM PUBLIC;
GRANT SELECT ON customers_masked TO encml_mask_analyst, encml_mask_support;
SET ROLE encml_mask_analyst;
SELECT * FROM customers_masked ORDER BY id;
SELECT try('SELECT * FROM customers') AS base_table;
RESET ROLE;
SET ROLE encml_mask_support;
SELECT * FROM customers_masked ORDER BY id;
RESET ROLE;
-- Only the owner sets rules.
SET ROLE encml_mask_analyst;
SELECT try($$SELECT encml.set_masking_rule('customers', 'email', 'null')$$) AS not_owner;
SELECT try($$SELECT encml.apply_masking('customers')$$) AS not_owner_apply;
RESET ROLE;
-- The unmasked check runs once per query, not per row.
EXPLAIN (COSTS OFF) SELECT email FROM customers_masked;
-- Stored masks: generated columns <col>__masked hold the masks of plain columns (encrypted and
-- null-masked columns need none); the view reads them instead of calling the masks, shows the
-- same values and keeps its grants.
SELECT encml.apply_masking('customers', stored => true);
SELECT attname, pg_get_expr(d.adbin, d.adrelid) AS generated_as
  FROM pg_attribute a JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = 'customers'::regclass AND a.attgenerated = 's' ORDER BY a.attnum;
SET ROLE encml_mask_analyst;
SELECT * FROM customers_masked ORDER BY id;
RESET ROLE;
SET ROLE encml_mask_support;
SELECT * FROM customers_masked ORDER BY id;
RESET ROLE;
EXPLAIN (COSTS OFF, VERBOSE) SELECT card FROM customers_masked;
-- New rows get their masks; a changed rule regenerates its column on the next apply.
INSERT INTO customers (id, name, email, card, phone, born)
    VALUES (3, 'Ann Lee', 'ann@example.com', '3782 822463 10005', '555 0100', '2001-12-24');
SELECT encml.set_masking_rule('customers', 'card', 'pan6');
SELECT encml.apply_masking('customers', true);
SET ROLE encml_mask_analyst;
SELECT id, email, card FROM customers_masked ORDER BY id;
RESET ROLE;
SELECT col, stored_as, stored_mask FROM encml.masking_rules WHERE tbl = 'customers'::regclass ORDER BY col;
SELECT try($$SELECT encml.set_masking_rule('customers', 'card__masked', 'null')$$) AS rule_on_mask_column;
-- Back to masks computed per value: the generated columns are dropped, the grants stay.
SELECT encml.apply_masking('customers');
SELECT count(*) AS generated_columns FROM pg_attribute WHERE attrelid = 'customers'::regclass AND attgenerated = 's';
SET ROLE encml_mask_analyst;
SELECT id, email, card FROM customers_masked ORDER BY id;
RESET ROLE;
-- A column of the table already using the name is not taken over.
ALTER TABLE customers ADD COLUMN email__masked text;
SELECT try($$SELECT encml.apply_masking('customers', true)$$) AS name_taken;
ALTER TABLE customers DROP COLUMN email__masked;
DROP VIEW customers_masked;
DROP TABLE customers;
DROP OWNED BY encml_mask_analyst, encml_mask_support, encml_mask_owner;
DROP ROLE encml_mask_analyst, encml_mask_support, encml_mask_owner;
