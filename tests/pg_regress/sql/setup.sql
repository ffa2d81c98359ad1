-- Installs the extension into the regression database. The first key of a new cluster creates the
-- development master key file with a WARNING; keep it out of the expected output.
CREATE EXTENSION pg_encrypt_ml;
SET client_min_messages = error;
SELECT encml.create_key('regress-warmup') IS NOT NULL AS created;
RESET client_min_messages;
SELECT extname, extversion = encml.library_version() AS library_version, nspname AS schema, extrelocatable
  FROM pg_extension JOIN pg_namespace n ON n.oid = extnamespace
 WHERE extname = 'pg_encrypt_ml';
-- A helper for expected errors: returns SQLSTATE and message instead of aborting the test.
CREATE FUNCTION public.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
