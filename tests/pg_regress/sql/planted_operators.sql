-- Issue 27: the extension's SQL functions run under the caller's search_path. A reader who can
-- create objects plants operators ahead of pg_catalog; nothing of the extension may resolve
-- them. (Judged by behaviour: the planted operators return true for everything.)
SET client_min_messages = warning;
CREATE ROLE encml_plant_owner;
CREATE ROLE encml_plant_reader;
RESET client_min_messages;
GRANT CREATE ON SCHEMA public TO encml_plant_owner;
CREATE SCHEMA plant AUTHORIZATION encml_plant_reader;
SET ROLE encml_plant_owner;
CREATE TABLE public.plant_people (id int, g int, email text);
INSERT INTO public.plant_people VALUES (1, 1, 'ann@example.com'), (2, 2, 'bob@example.com');
SELECT encml.set_masking_rule('public.plant_people', 'email', 'email');
SELECT encml.apply_masking('public.plant_people');
GRANT SELECT ON public.plant_people_masked, public.plant_people TO encml_plant_reader;
RESET ROLE;

SET ROLE encml_plant_reader;
-- (True for the bootstrap superuser's name: the one row the check reads.)
CREATE FUNCTION plant.always(name, name) RETURNS boolean LANGUAGE sql STABLE
    AS 'SELECT $1 OPERATOR(pg_catalog.=) (SELECT rolname FROM pg_catalog.pg_roles WHERE oid OPERATOR(pg_catalog.=) 10)';
CREATE OPERATOR plant.= (LEFTARG = name, RIGHTARG = name, FUNCTION = plant.always);
CREATE FUNCTION plant.always(int, int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT true';
CREATE OPERATOR plant.= (LEFTARG = int, RIGHTARG = int, FUNCTION = plant.always);
SET search_path = plant, pg_catalog;
-- The masked view's "is this reader unmasked" check compared role names with `=`: the planted
-- one matched the superuser's row, and every masked column came back in clear.
SELECT id, email FROM public.plant_people_masked ORDER BY id;
-- dp_public_groups (privacy admins) compared each group key with the public list by `=`: every
-- group passed, one-person groups included.
RESET ROLE;
GRANT encml_privacy_admin TO encml_plant_reader;
SET ROLE encml_plant_reader;
SELECT g FROM public.plant_people GROUP BY g HAVING encml.dp_public_groups(g, ARRAY[1]) ORDER BY g;
RESET search_path;
RESET ROLE;

DROP SCHEMA plant CASCADE;
DROP VIEW public.plant_people_masked;
DROP TABLE public.plant_people;
REVOKE encml_privacy_admin FROM encml_plant_reader;
DROP OWNED BY encml_plant_owner, encml_plant_reader;
DROP ROLE encml_plant_owner, encml_plant_reader;
