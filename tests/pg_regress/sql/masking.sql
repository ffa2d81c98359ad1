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
SELECT try($$SELECT encml.mask_partial('abc', -1, 0)$$) AS negative_prefix;
SELECT try($$SELECT encml.mask_pan('4111111111111111', 8)$$) AS more_than_six;
-- Usable in an index expression and a generated column.
CREATE TABLE contacts (id int, email text, email_shown text GENERATED ALWAYS AS (encml.mask_email(email)) STORED);
CREATE INDEX ON contacts (encml.mask_phone(email));
INSERT INTO contacts (id, email) VALUES (1, 'ann@example.com');
SELECT email_shown FROM contacts;
DROP TABLE contacts;
