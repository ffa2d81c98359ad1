#!/usr/bin/env bash
# The upgrade test (docs/upgrading.md, "How upgrades are tested"). For every released version:
# install it from its frozen script, fill it with one of everything (fill-*.sql), then
# ALTER EXTENSION pg_encrypt_ml UPDATE and prove that nothing changed and nothing is missing:
#   - the stored state (snapshot.sql) is the same before and after the upgrade, and in a pg_dump
#     of the upgraded database restored into a new one;
#   - the extension's catalog (catalog.sql: every member object with its definition, owner,
#     privileges, initial privileges, comment and dependencies, and the roles the extension
#     creates) equals a fresh install of the current version, also after the restore;
#   - everything reads back (checks.sql) and keeps working (after.sql) as expected/ says, and
#     every btree index still checks out with amcheck;
#   - a dump taken with the old release restores into the current one (with the documented repair).
# Also: released scripts are unchanged and installed as committed, and every C symbol they name
# is exported by the installed library. Two private clusters (scripts/cluster.sh, preloaded
# library): U for the upgrades, F for the fresh install, so that the roles an upgrade creates are
# compared with those a fresh install creates. Needs `make install-dev`.
set -euo pipefail
cd "$(dirname "$0")/../.."
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
HERE=tests/upgrade
OUT=target/upgrade
PRIVATE=${ENCML_UPGRADE_DIR:-/tmp/pg_encrypt_ml-upgrade}
rm -rf "$OUT" && mkdir -p "$OUT"
CURRENT=$(bash scripts/version.sh)
EXTDIR="$("$PG_CONFIG" --sharedir)/extension"
PSQL=(psql -X -q -v ON_ERROR_STOP=1)
fail() { echo "FAIL: $*" >&2; exit 1; }
same() { # same WHAT EXPECTED ACTUAL: files must be equal
  if ! diff -u "$2" "$3" > "$OUT/diff" 2>&1; then
    head -n 150 "$OUT/diff" >&2
    fail "$1 ($2 vs $3)"
  fi
  echo "ok: $1"
}
cluster() { # cluster u|f start|stop|destroy
  local port=54421; [ "$1" = f ] && port=54422
  ENCML_CLUSTER_DIR="$PRIVATE/$1" ENCML_PORT=$port bash scripts/cluster.sh "$2" >/dev/null
}
on() { # on u|f: point libpq at that cluster
  export PGHOST="$PRIVATE/$1/sock" PGUSER=postgres PGPORT=54421
  [ "$1" = f ] && PGPORT=54422
  return 0
}
# Runs a script the way pg_regress does (statements echoed), for the expected/ files.
# (Without the development master key's warning, which the first statement that uses a key in
# each session prints: the Citus clusters use a key file.)
run_echoed() {
  "${PSQL[@]}" -a -d "$1" -f "$2" > "$3.raw" 2>&1 || { tail -n 30 "$3.raw" >&2; fail "$2 on $1"; }
  grep -v -e 'WARNING:  pg_encrypt_ml is using the development master key' \
    -e '^HINT:  encml.allow_development_master_key is on' "$3.raw" > "$3" || true
}
version_of() { psql -X -At -d "$1" -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_encrypt_ml'"; }
amcheck() { # every btree index of the extension and of the test's tables is consistent
  "${PSQL[@]}" -d "$1" -c "CREATE EXTENSION IF NOT EXISTS amcheck" -At -c "
    SELECT count(bt_index_check(i.indexrelid, true))
      FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
     WHERE am.amname = 'btree' AND c.relkind = 'i' AND c.relnamespace IN ('encml'::regnamespace, 'public'::regnamespace)" > "$OUT/amcheck"
  echo "ok: $2 ($(cat "$OUT/amcheck") btree indexes pass amcheck with heapallindexed)"
}

# 1. Released scripts are never edited, and PostgreSQL runs the committed copies.
sha256sum --quiet -c "$HERE/released.sha256" || fail "a released script changed (tests/upgrade/released.sha256)"
for f in sql/install/pg_encrypt_ml--*.sql sql/upgrade/pg_encrypt_ml--*.sql; do
  grep -q " $f\$" "$HERE/released.sha256" || case "$f" in
    *--"$CURRENT".sql) ;;  # the upgrade script to the version being developed is still open
    *) fail "$f is released but not listed in tests/upgrade/released.sha256" ;;
  esac
  cmp -s "$f" "$EXTDIR/$(basename "$f")" || fail "$EXTDIR/$(basename "$f") differs from $f: run make install-dev"
done
for f in "$EXTDIR"/pg_encrypt_ml--*.sql; do
  b=$(basename "$f")
  [ -f "sql/install/$b" ] || [ -f "sql/upgrade/$b" ] || [ "$b" = "pg_encrypt_ml--$CURRENT.sql" ] \
    || fail "$f is not part of this source tree (left from another build?): remove it"
done
echo "ok: released scripts unchanged and installed as committed"

# 2. One library serves every version: it exports each C symbol any install or upgrade script names.
SO="$("$PG_CONFIG" --pkglibdir)/pg_encrypt_ml.so"
nm -D --defined-only "$SO" | awk '{print $3}' | sort -u > "$OUT/exported"
cat sql/install/*.sql sql/upgrade/*.sql "$EXTDIR/pg_encrypt_ml--$CURRENT.sql" |
  grep -o "'MODULE_PATHNAME', *'[A-Za-z0-9_]*'" | sed "s/.*, *'\(.*\)'/\1/" | sort -u > "$OUT/referenced"
missing=$(comm -23 "$OUT/referenced" "$OUT/exported")
[ -z "$missing" ] || fail "C symbols referenced by install or upgrade scripts but not exported: $missing"
echo "ok: $(wc -l < "$OUT/referenced") C symbols of every script exported by the library"

for c in u f; do cluster "$c" destroy; cluster "$c" start; done
# Kept after a failure, for a look (PGHOST=$PRIVATE/u/sock PGPORT=54421); the next run replaces them.
trap 'rc=$?; if [ $rc -eq 0 ]; then for c in u f; do cluster "$c" destroy || true; done;
      else for c in u f; do cluster "$c" stop || true; done; echo "clusters kept in $PRIVATE" >&2; fi' EXIT

# 3. A fresh install of the current version, with the administrator's own changes to it
#    (customize.sql): the reference catalog.
on f
createdb encml_up_fresh
"${PSQL[@]}" -d encml_up_fresh -c "CREATE EXTENSION pg_encrypt_ml" -f "$HERE/customize.sql"
[ "$(version_of encml_up_fresh)" = "$CURRENT" ] || fail "a fresh install is not at $CURRENT"
"${PSQL[@]}" -d encml_up_fresh -f "$HERE/catalog.sql" > "$OUT/fresh.catalog"
echo "ok: fresh install of $CURRENT ($(wc -l < "$OUT/fresh.catalog") catalog lines)"

# 4. From every released version.
on u
for script in sql/install/pg_encrypt_ml--*.sql; do
  FROM=${script##*--}; FROM=${FROM%.sql}
  DB=encml_up_from_${FROM//./_}
  RESTORED=encml_up_restored_${FROM//./_}
  OLDDUMP=encml_up_olddump_${FROM//./_}
  echo "== upgrade from $FROM"
  [ -n "$(psql -X -At -d postgres -c "SELECT path FROM pg_extension_update_paths('pg_encrypt_ml')
                                        WHERE source = '$FROM' AND target = '$CURRENT'")" ] \
    || fail "no update path from $FROM to $CURRENT"
  createdb "$DB"
  "${PSQL[@]}" -d "$DB" -c "CREATE EXTENSION pg_encrypt_ml VERSION '$FROM'" -f "$HERE/customize.sql"
  # Fill with every fill script of a version up to FROM (each later one adds what its release added).
  for fill in $(ls "$HERE"/fill-*.sql | sort -V); do
    v=${fill##*/fill-}; v=${v%.sql}
    [ "$(printf '%s\n%s\n' "$v" "$FROM" | sort -V | tail -n1)" = "$FROM" ] || continue
    "${PSQL[@]}" -d "$DB" -f "$fill" > "$OUT/fill-$v.log" 2>&1 || { tail -n 20 "$OUT/fill-$v.log" >&2; fail "$fill"; }
  done
  run_echoed "$DB" "$HERE/checks.sql" "$OUT/$FROM-checks-before.out"
  same "$FROM: everything reads back before the upgrade" "$HERE/expected/checks.out" "$OUT/$FROM-checks-before.out"
  # (Dumping a classified table is a security event: dump before the snapshot.)
  pg_dump -Fc -d "$DB" -f "$OUT/$FROM-old.dump"
  "${PSQL[@]}" -d "$DB" -f "$HERE/snapshot.sql" > "$OUT/$FROM-before.snapshot"

  "${PSQL[@]}" -d "$DB" -c "ALTER EXTENSION pg_encrypt_ml UPDATE"
  [ "$(version_of "$DB")" = "$CURRENT" ] || fail "ALTER EXTENSION UPDATE from $FROM did not reach $CURRENT"
  "${PSQL[@]}" -d "$DB" -f "$HERE/snapshot.sql" > "$OUT/$FROM-after.snapshot"
  same "$FROM -> $CURRENT: stored state unchanged ($(wc -l < "$OUT/$FROM-after.snapshot") tables, sequences and objects)" \
    "$OUT/$FROM-before.snapshot" "$OUT/$FROM-after.snapshot"
  "${PSQL[@]}" -d "$DB" -f "$HERE/catalog.sql" > "$OUT/$FROM-upgraded.catalog"
  same "$FROM -> $CURRENT: upgraded catalog equals a fresh install" "$OUT/fresh.catalog" "$OUT/$FROM-upgraded.catalog"
  run_echoed "$DB" "$HERE/checks.sql" "$OUT/$FROM-checks-after.out"
  same "$FROM -> $CURRENT: everything reads back after the upgrade" "$HERE/expected/checks.out" "$OUT/$FROM-checks-after.out"
  amcheck "$DB" "$FROM -> $CURRENT: indexes"

  # pg_dump of the upgraded database, restored into a new one.
  # The restore's own DDL on audited tables (indexes, constraints, triggers) is logged after the
  # dumped rows: compare the rows up to the dumped ones, then check that only such events follow.
  through=$("${PSQL[@]}" -At -d "$DB" -c "SELECT coalesce(max(id), 0) FROM encml.audit_log")
  "${PSQL[@]}" -d "$DB" -v names=on -v audit_through="$through" -f "$HERE/snapshot.sql" > "$OUT/$FROM-dumped.snapshot"
  pg_dump -Fc -d "$DB" -f "$OUT/$FROM.dump"
  createdb "$RESTORED"
  pg_restore --exit-on-error -d "$RESTORED" "$OUT/$FROM.dump"
  "${PSQL[@]}" -d "$RESTORED" -v names=on -v audit_through="$through" -f "$HERE/snapshot.sql" > "$OUT/$FROM-restored.snapshot"
  same "$FROM -> $CURRENT: dump restored with the same stored state" "$OUT/$FROM-dumped.snapshot" "$OUT/$FROM-restored.snapshot"
  others=$("${PSQL[@]}" -At -d "$RESTORED" -c "SELECT count(*) FILTER (WHERE NOT (kind = 'event' AND operation = 'ddl'))
                                                   || ' ' || count(*) FROM encml.audit_log WHERE id > $through")
  [ "${others%% *}" = 0 ] && [ "${others##* }" -gt 0 ] \
    || fail "$FROM -> $CURRENT: the restore should log its DDL on audited tables and nothing else (other, all: $others)"
  echo "ok: $FROM -> $CURRENT: the restore logged its DDL on audited tables (${others##* } events)"
  "${PSQL[@]}" -d "$RESTORED" -f "$HERE/catalog.sql" > "$OUT/$FROM-restored.catalog"
  same "$FROM -> $CURRENT: restored catalog equals a fresh install" "$OUT/fresh.catalog" "$OUT/$FROM-restored.catalog"
  run_echoed "$RESTORED" "$HERE/checks.sql" "$OUT/$FROM-checks-restored.out"
  same "$FROM -> $CURRENT: everything reads back after restore" "$HERE/expected/checks.out" "$OUT/$FROM-checks-restored.out"

  for db in "$DB" "$RESTORED"; do
    run_echoed "$db" "$HERE/after.sql" "$OUT/$FROM-after-$db.out"
    same "$FROM -> $CURRENT: new operations on old data ($db)" "$HERE/expected/after.out" "$OUT/$FROM-after-$db.out"
  done

  # A dump taken with the old release, restored as docs/upgrading.md says: into that release,
  # then updated, then the documented repair (repair-<version>-dump.sql); then everything works
  # as after an upgrade.
  createdb "$OLDDUMP"
  "${PSQL[@]}" -d "$OLDDUMP" -c "CREATE EXTENSION pg_encrypt_ml VERSION '$FROM'"
  pg_restore -l "$OUT/$FROM-old.dump" | grep -v ' SCHEMA - encml ' > "$OUT/$FROM-old.list"
  pg_restore --exit-on-error -L "$OUT/$FROM-old.list" -d "$OLDDUMP" "$OUT/$FROM-old.dump"
  "${PSQL[@]}" -d "$OLDDUMP" -c "ALTER EXTENSION pg_encrypt_ml UPDATE" 2> "$OUT/$FROM-olddump-update.err"
  [ "$(version_of "$OLDDUMP")" = "$CURRENT" ] || fail "a $FROM dump did not restore into $CURRENT"
  "${PSQL[@]}" -d "$OLDDUMP" -f "$HERE/catalog.sql" > "$OUT/$FROM-olddump.catalog"
  same "$FROM dump -> $CURRENT: catalog equals a fresh install" "$OUT/fresh.catalog" "$OUT/$FROM-olddump.catalog"
  [ ! -f "$HERE/repair-$FROM-dump.sql" ] || "${PSQL[@]}" -d "$OLDDUMP" -f "$HERE/repair-$FROM-dump.sql" > /dev/null
  run_echoed "$OLDDUMP" "$HERE/after.sql" "$OUT/$FROM-after-olddump.out"
  same "$FROM dump -> $CURRENT: new operations on the restored data" "$HERE/expected/after.out" "$OUT/$FROM-after-olddump.out"
done

# 5. The 0.1.0 -> 0.2.0 script names catalog rows a restored 0.1.0 dump left pointing at nothing
#    or at another table, and refuses, naming them, when objects of the database's own depend on
#    what it changes (then nothing changed: the update is one transaction).
createdb encml_up_special
"${PSQL[@]}" -d encml_up_special -c "CREATE EXTENSION pg_encrypt_ml VERSION '0.1.0'" \
  -c "CREATE TABLE public.other (id int)" \
  -c "INSERT INTO encml.audited_tables (table_oid, enabled_by) VALUES (4000000000, 'restored'), ('public.other'::regclass, 'restored')" \
  -c "CREATE VIEW public.my_classes AS SELECT * FROM encml.classified_columns"
err=$("${PSQL[@]}" -d encml_up_special -c "ALTER EXTENSION pg_encrypt_ml UPDATE TO '0.2.0'" 2>&1 || true)
[[ "$err" == *"ERROR:  pg_encrypt_ml 0.2.0 changes encml.audited_tables, encml.column_classes and encml.classified_columns, which these objects depend on: rule _RETURN on view public.my_classes"* ]] \
  || fail "the update did not refuse over a dependent view: $err"
[ "$(version_of encml_up_special)" = 0.1.0 ] || fail "a refused update changed the version"
err=$("${PSQL[@]}" -d encml_up_special -c "DROP VIEW public.my_classes" \
  -c "CREATE VIEW public.my_log AS SELECT id, kind FROM encml.audit_log" \
  -c "ALTER EXTENSION pg_encrypt_ml UPDATE TO '0.2.0'" 2>&1 || true)
[[ "$err" == *"ERROR:  pg_encrypt_ml 0.2.0 rebuilds encml.audit_log, which these objects depend on: rule _RETURN on view public.my_log"* ]] \
  || fail "the update did not refuse over a view of the audit log: $err"
[ "$(version_of encml_up_special)" = 0.1.0 ] || fail "a refused update changed the version"
echo "ok: the update refuses, naming them, when the database's own views depend on what it changes"
warning=$("${PSQL[@]}" -d encml_up_special -c "DROP VIEW public.my_log" -c "ALTER EXTENSION pg_encrypt_ml UPDATE TO '0.2.0'" 2>&1)
[[ "$warning" == *"WARNING:  pg_encrypt_ml: audited_tables or column_classes do not match this database, probably restored from a 0.1.0 dump: "* ]] \
  && [[ "$warning" == *"audited table oid 4000000000: no such table"* ]] \
  && [[ "$warning" == *"(other): no encml_audit_row trigger"* ]] \
  || fail "the update did not name the stale rows: $warning"
echo "ok: the update names audit and classification rows a restored 0.1.0 dump left stale"
echo "==> upgrade tests passed"
