#!/usr/bin/env bash
# The upgrade test (docs/upgrading.md): for every released version, install it from its frozen
# script, fill it with one of everything (fill-*.sql), ALTER EXTENSION pg_encrypt_ml UPDATE, and
# prove that nothing changed and nothing is missing:
#   - the stored state (snapshot.sql) is the same before and after the upgrade, and in a
#     pg_dump of the upgraded database restored into a fresh one;
#   - the extension's catalog (catalog.sql: every member object with its definition, owner,
#     privileges and comment) equals a fresh install of the current version, also after restore;
#   - everything reads back (checks.sql) and keeps working (after.sql) as expected/ says.
# Also: released scripts are unchanged (released.sha256), and every C symbol they name is
# exported by the installed library. Needs the cluster of scripts/cluster.sh and `make install-dev`.
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(bash scripts/cluster.sh env)"
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
HERE=tests/upgrade
OUT=target/upgrade
rm -rf "$OUT" && mkdir -p "$OUT"
CURRENT=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
PSQL=(psql -X -q -v ON_ERROR_STOP=1)
fail() { echo "FAIL: $*" >&2; exit 1; }
same() { # same WHAT EXPECTED ACTUAL: files must be equal
  if ! diff -u "$2" "$3" > "$OUT/diff" 2>&1; then
    head -n 150 "$OUT/diff" >&2
    fail "$1 ($2 vs $3)"
  fi
  echo "ok: $1"
}
# Runs a script the way pg_regress does (statements echoed), for the expected/ files.
run_echoed() { "${PSQL[@]}" -a -d "$1" -f "$2" > "$3" 2>&1 || { tail -n 30 "$3" >&2; fail "$2 on $1"; }; }

# 1. Released scripts are never edited.
sha256sum --quiet -c "$HERE/released.sha256" || fail "a released script changed (tests/upgrade/released.sha256)"
for f in sql/install/pg_encrypt_ml--*.sql sql/upgrade/pg_encrypt_ml--*.sql; do
  grep -q " $f\$" "$HERE/released.sha256" || case "$f" in
    *--"$CURRENT".sql) ;;  # the upgrade script to the version being developed is still open
    *) fail "$f is released but not listed in tests/upgrade/released.sha256" ;;
  esac
done
echo "ok: released scripts unchanged"

# 2. One library serves every version: it exports each C symbol any install or upgrade script names.
SO="$("$PG_CONFIG" --pkglibdir)/pg_encrypt_ml.so"
nm -D --defined-only "$SO" | awk '{print $3}' | sort -u > "$OUT/exported"
cat sql/install/*.sql sql/upgrade/*.sql "$("$PG_CONFIG" --sharedir)/extension/pg_encrypt_ml--$CURRENT.sql" |
  grep -o "'MODULE_PATHNAME', *'[A-Za-z0-9_]*'" | sed "s/.*, *'\(.*\)'/\1/" | sort -u > "$OUT/referenced"
missing=$(comm -23 "$OUT/referenced" "$OUT/exported")
[ -z "$missing" ] || fail "C symbols referenced by install or upgrade scripts but not exported: $missing"
echo "ok: $(wc -l < "$OUT/referenced") C symbols of every script exported by the library"

# 3. A fresh install of the current version: the reference catalog.
FRESH=encml_up_fresh
dropdb --if-exists "$FRESH" && createdb "$FRESH"
"${PSQL[@]}" -d "$FRESH" -c "CREATE EXTENSION pg_encrypt_ml"
[ "$(psql -X -At -d "$FRESH" -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_encrypt_ml'")" = "$CURRENT" ] \
  || fail "a fresh install is not at $CURRENT"
"${PSQL[@]}" -d "$FRESH" -f "$HERE/catalog.sql" > "$OUT/fresh.catalog"
echo "ok: fresh install of $CURRENT ($(wc -l < "$OUT/fresh.catalog") catalog lines)"

# 4. From every released version.
for script in sql/install/pg_encrypt_ml--*.sql; do
  FROM=${script##*--}; FROM=${FROM%.sql}
  DB=encml_up_from_${FROM//./_}
  RESTORED=encml_up_restored_${FROM//./_}
  echo "== upgrade from $FROM"
  for db in "$DB" "$RESTORED"; do dropdb --if-exists "$db"; done
  createdb "$DB"
  "${PSQL[@]}" -d "$DB" -c "CREATE EXTENSION pg_encrypt_ml VERSION '$FROM'"
  # Fill with every fill script of a version up to FROM (each later one adds what its release added).
  for fill in $(ls "$HERE"/fill-*.sql | sort -V); do
    v=${fill##*/fill-}; v=${v%.sql}
    [ "$(printf '%s\n%s\n' "$v" "$FROM" | sort -V | tail -n1)" = "$FROM" ] || continue
    "${PSQL[@]}" -d "$DB" -f "$fill" > "$OUT/fill-$v.log" 2>&1 || { tail -n 20 "$OUT/fill-$v.log" >&2; fail "$fill"; }
  done
  run_echoed "$DB" "$HERE/checks.sql" "$OUT/$FROM-checks-before.out"
  same "$FROM: everything reads back before the upgrade" "$HERE/expected/checks.out" "$OUT/$FROM-checks-before.out"
  "${PSQL[@]}" -d "$DB" -f "$HERE/snapshot.sql" > "$OUT/$FROM-before.snapshot"

  "${PSQL[@]}" -d "$DB" -c "ALTER EXTENSION pg_encrypt_ml UPDATE"
  [ "$(psql -X -At -d "$DB" -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_encrypt_ml'")" = "$CURRENT" ] \
    || fail "ALTER EXTENSION UPDATE from $FROM did not reach $CURRENT"
  "${PSQL[@]}" -d "$DB" -f "$HERE/snapshot.sql" > "$OUT/$FROM-after.snapshot"
  same "$FROM -> $CURRENT: stored state unchanged ($(wc -l < "$OUT/$FROM-after.snapshot") tables, sequences and objects)" \
    "$OUT/$FROM-before.snapshot" "$OUT/$FROM-after.snapshot"
  "${PSQL[@]}" -d "$DB" -f "$HERE/catalog.sql" > "$OUT/$FROM-upgraded.catalog"
  same "$FROM -> $CURRENT: upgraded catalog equals a fresh install" "$OUT/fresh.catalog" "$OUT/$FROM-upgraded.catalog"
  run_echoed "$DB" "$HERE/checks.sql" "$OUT/$FROM-checks-after.out"
  same "$FROM -> $CURRENT: everything reads back after the upgrade" "$HERE/expected/checks.out" "$OUT/$FROM-checks-after.out"

  # pg_dump of the upgraded database, restored into a new one.
  "${PSQL[@]}" -d "$DB" -v names=on -f "$HERE/snapshot.sql" > "$OUT/$FROM-dumped.snapshot"
  pg_dump -Fc -d "$DB" -f "$OUT/$FROM.dump"
  createdb "$RESTORED"
  pg_restore --exit-on-error -d "$RESTORED" "$OUT/$FROM.dump"
  "${PSQL[@]}" -d "$RESTORED" -v names=on -f "$HERE/snapshot.sql" > "$OUT/$FROM-restored.snapshot"
  same "$FROM -> $CURRENT: dump restored with the same stored state" "$OUT/$FROM-dumped.snapshot" "$OUT/$FROM-restored.snapshot"
  "${PSQL[@]}" -d "$RESTORED" -f "$HERE/catalog.sql" > "$OUT/$FROM-restored.catalog"
  same "$FROM -> $CURRENT: restored catalog equals a fresh install" "$OUT/fresh.catalog" "$OUT/$FROM-restored.catalog"
  run_echoed "$RESTORED" "$HERE/checks.sql" "$OUT/$FROM-checks-restored.out"
  same "$FROM -> $CURRENT: everything reads back after restore" "$HERE/expected/checks.out" "$OUT/$FROM-checks-restored.out"

  for db in "$DB" "$RESTORED"; do
    run_echoed "$db" "$HERE/after.sql" "$OUT/$FROM-after-$db.out"
    same "$FROM -> $CURRENT: new operations on old data ($db)" "$HERE/expected/after.out" "$OUT/$FROM-after-$db.out"
  done
  dropdb "$DB"; dropdb "$RESTORED"
done
dropdb "$FRESH"

# 5. A database restored from a 0.1.0 dump holds oids of the original database in
#    audited_tables/column_classes: the upgrade names them (they cannot be mapped back).
STALE=encml_up_stale
dropdb --if-exists "$STALE" && createdb "$STALE"
"${PSQL[@]}" -d "$STALE" -c "CREATE EXTENSION pg_encrypt_ml VERSION '0.1.0'" \
  -c "INSERT INTO encml.audited_tables (table_oid, enabled_by) VALUES (4000000000, 'restored')"
warning=$("${PSQL[@]}" -d "$STALE" -c "ALTER EXTENSION pg_encrypt_ml UPDATE" 2>&1)
[[ "$warning" == *"WARNING:  pg_encrypt_ml: audited_tables or column_classes name tables that do not exist (oids 4000000000)"* ]] \
  || fail "the upgrade did not name the stale oid: $warning"
echo "ok: the upgrade names tables a restored 0.1.0 dump lost"
dropdb "$STALE"
echo "==> upgrade tests passed"
