-- Format-preserving encryption (FF1, NIST SP 800-38G) and card-number tokens (docs/tokenization.md).
SELECT encml.create_key('regress-fpe', 'fpe') AS fk \gset
SELECT encml.create_key('regress-fpe-next', 'fpe') AS fk2 \gset
SELECT encml.create_key('regress-fpe-aead') AS ak \gset
CREATE FUNCTION luhn_ok(t text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT sum(CASE WHEN n % 2 = 0 THEN (2 * d::int) / 10 + (2 * d::int) % 10 ELSE d::int END) % 10 = 0
      FROM regexp_split_to_table(reverse(regexp_replace(t, '[^0-9]', '', 'g')), '') WITH ORDINALITY AS x(d, n)
$$;
SELECT luhn_ok('4111 1111 1111 1111') AS luhn_of_a_test_card, luhn_ok('4111 1111 1111 1112') AS luhn_of_a_typo;

-- FF1 keeps the length and the alphabet, is deterministic and decrypts.
SELECT encml.fpe_encrypt('0123456789', :'fk') ~ '^[0-9]{10}$' AS ten_digits,
       encml.fpe_encrypt('0123456789', :'fk') = encml.fpe_encrypt('0123456789', :'fk') AS deterministic,
       encml.fpe_encrypt('0123456789', :'fk') <> '0123456789' AS changed,
       encml.fpe_encrypt('0123456789', :'fk') <> encml.fpe_encrypt('0123456789', :'fk2') AS key_dependent,
       encml.fpe_decrypt(encml.fpe_encrypt('0123456789', :'fk'), :'fk') AS round_trip;
SELECT encml.fpe_encrypt('0123456789', :'fk', tweak => 'column a')
       <> encml.fpe_encrypt('0123456789', :'fk', tweak => 'column b') AS tweak_changes_output,
       encml.fpe_decrypt(encml.fpe_encrypt('0123456789', :'fk', tweak => 'column a'), :'fk', tweak => 'column a') AS tweak_round_trip;
-- Any alphabet, multi-byte characters included.
SELECT char_length(encml.fpe_encrypt('αβγδεζηθ', :'fk', 'αβγδεζηθικ')) AS greek_length,
       encml.fpe_decrypt(encml.fpe_encrypt('αβγδεζηθ', :'fk', 'αβγδεζηθικ'), :'fk', 'αβγδεζηθικ') AS greek_round_trip,
       encml.fpe_decrypt(encml.fpe_encrypt('Zürich-2024', :'fk', 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZäöüÄÖÜ0123456789-'), :'fk',
                         'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZäöüÄÖÜ0123456789-') AS mixed_round_trip;
SELECT encml.fpe_encrypt(NULL, :'fk') IS NULL AS null_stays_null;
-- Refused: a domain under NIST's minimum of 10^6, characters outside the alphabet, bad alphabets,
-- a key of another purpose.
SELECT try(format('SELECT encml.fpe_encrypt(%L, %L)', '12345', :'fk')) AS five_digits;
SELECT try(format('SELECT encml.fpe_encrypt(%L, %L, %L)', 'abcd', :'fk', 'abcdefghijklmnopqrstuvwxyz')) AS four_letters;
SELECT try(format('SELECT encml.fpe_encrypt(%L, %L)', '12a456', :'fk')) AS outside_alphabet;
SELECT try(format('SELECT encml.fpe_encrypt(%L, %L, %L)', '010101', :'fk', '001')) AS repeated_character;
SELECT try(format('SELECT encml.fpe_encrypt(%L, %L, %L)', '000000', :'fk', '0')) AS one_character;
SELECT replace(try(format('SELECT encml.fpe_encrypt(%L, %L)', '0123456789', :'ak')), :'ak', '<key>') AS aead_key;
SELECT try(format('SELECT encml.fpe_encrypt(%L, NULL)', '0123456789')) AS null_key;
-- FF1's cost grows with the square of the length and cannot be interrupted: values and tweaks
-- longer than 4,096 characters (bytes) are refused (issue 27: 150,000 digits ran 16.7 s past a
-- 2 s statement_timeout).
SELECT length(encml.fpe_encrypt(repeat('7', 4096), :'fk')) AS at_the_limit;
SELECT try(format('SELECT encml.fpe_encrypt(%L, %L)', repeat('7', 4097), :'fk')) AS beyond_the_limit;
SELECT try(format('SELECT encml.fpe_encrypt(%L, %L, tweak => %L)', '1234567', :'fk', repeat('t', 4097))) AS tweak_beyond_the_limit;

-- Card-number tokens keep the length, the separators, the last four (and, asked, the first
-- six) digits, fail the Luhn check, and detokenize to the card number.
CREATE TABLE cards (pan text, keep int);
INSERT INTO cards VALUES ('4111 1111 1111 1111', 0), ('4111-1111-1111-1111', 0), ('5500005555555559', 0),
    ('378282246310005', 0), ('6011000990139424', 0), ('4222222222222', 0),
    ('4000 0566 5566 5556 783', 6), ('4000056655665556783', 6);
SELECT pan, keep,
       length(t) = length(pan) AS same_length,
       regexp_replace(t, '[0-9]', '#', 'g') = regexp_replace(pan, '[0-9]', '#', 'g') AS same_separators,
       right(t, 4) = right(pan, 4) AS last_four_kept,
       left(t, keep) = left(pan, keep) AS first_kept,
       t <> pan AS hidden,
       luhn_ok(pan) AS card_luhn, luhn_ok(t) AS token_luhn,
       encml.detokenize_pan(t, :'fk', keep) = pan AS round_trip,
       encml.tokenize_pan(pan, :'fk', keep) = t AS deterministic
  FROM (SELECT pan, keep, encml.tokenize_pan(pan, :'fk', keep) AS t FROM cards) s ORDER BY pan;
-- Refused: too few digits left to encrypt (keep_first = 6 on 16 digits leaves 10^5), a number
-- failing Luhn (it could not be restored), other characters, keep_first other than 0 or 6, and
-- a card number given to detokenize.
SELECT try(format('SELECT encml.tokenize_pan(%L, %L, 6)', '4111111111111111', :'fk')) AS domain_too_small;
SELECT try(format('SELECT encml.tokenize_pan(%L, %L)', '4111111111111112', :'fk')) AS not_luhn_valid;
-- A NULL key is an error, not a NULL token (issue 27: STRICT made retokenize_pan(t, k, NULL)
-- NULL, and an UPDATE with it wiped every token); a NULL card number or token stays NULL.
SELECT try(format('SELECT encml.tokenize_pan(%L, NULL)', '4111111111111111')) AS tokenize_null_key;
SELECT try(format('SELECT encml.detokenize_pan(%L, NULL)', '4111111111111111')) AS detokenize_null_key;
SELECT try(format('SELECT encml.retokenize_pan(%L, %L, NULL)', '4111111111111111', :'fk')) AS retokenize_null_new_key;
SELECT try(format('SELECT encml.retokenize_pan(NULL, %L, NULL)', :'fk')) AS retokenize_null_token_null_key;
SELECT try(format('SELECT encml.tokenize_pan(%L, %L, NULL)', '4111111111111111', :'fk')) AS null_keep_first;
SELECT try(format('SELECT encml.tokenize_pan(%L, %L, -1)', '4111111111111111', :'fk')) AS negative_keep_first;
SELECT encml.tokenize_pan(NULL, :'fk') IS NULL AS null_pan_stays_null,
       encml.retokenize_pan(NULL, :'fk', :'fk') IS NULL AS null_token_stays_null;
SELECT try(format('SELECT encml.tokenize_pan(%L, %L)', '4111.1111.1111.1111', :'fk')) AS dots;
SELECT try(format('SELECT encml.tokenize_pan(%L, %L, 4)', '4111111111111111', :'fk')) AS keep_four;
SELECT try(format('SELECT encml.detokenize_pan(%L, %L)', '4111111111111111', :'fk')) AS card_number_as_token;
-- Rotation: tokens carry no key version, so keys of purpose 'fpe' are not rotated in place;
-- retokenize_pan moves a token to a new key.
SELECT replace(try(format('SELECT encml.rotate_key(%L)', :'fk')), :'fk', '<key>') AS rotate_fpe_key;
SELECT encml.tokenize_pan('4111 1111 1111 1111', :'fk') AS t1 \gset
SELECT encml.retokenize_pan(:'t1', :'fk', :'fk2') <> :'t1' AS new_token,
       encml.detokenize_pan(encml.retokenize_pan(:'t1', :'fk', :'fk2'), :'fk2') AS under_new_key,
       encml.retokenize_pan(:'t1', :'fk', :'fk2') = encml.tokenize_pan('4111 1111 1111 1111', :'fk2') AS same_as_fresh;

-- Grants: tokenizing needs encrypt on the key, detokenizing needs decrypt.
SET client_min_messages = warning;
CREATE ROLE encml_regress_tokenizer;
RESET client_min_messages;
SET ROLE encml_regress_tokenizer;
SELECT replace(try(format('SELECT encml.tokenize_pan(%L, %L)', '4111111111111111', :'fk')), :'fk', '<key>') AS without_grant;
RESET ROLE;
SELECT encml.grant_key(:'fk', 'encml_regress_tokenizer', 'encrypt');
SET ROLE encml_regress_tokenizer;
SELECT encml.tokenize_pan('4111 1111 1111 1111', :'fk') = :'t1' AS tokenizes_with_encrypt;
SELECT replace(try(format('SELECT encml.detokenize_pan(%L, %L)', :'t1', :'fk')), :'fk', '<key>') AS detokenize_without_decrypt;
RESET ROLE;
DROP OWNED BY encml_regress_tokenizer;
DROP ROLE encml_regress_tokenizer;
DROP TABLE cards;
DROP FUNCTION luhn_ok(text);
