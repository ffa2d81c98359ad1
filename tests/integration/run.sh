#!/usr/bin/env bash
# Runs every integration script (multi-session, provider, dump/restore, preload cases).
set -euo pipefail
cd "$(dirname "$0")"
for t in master_key.sh dump_restore.sh preload.sh threats.sh fhe_client.sh fhe_proven.sh python_client.sh ml_examples.sh ore_forgery.sh key_use_table.sh concurrent_gdpr.sh interop.sh refusals_kept.sh tls.sh replica.sh pooler.sh pkcs11.sh; do
  echo "== integration: $t"
  bash "./$t"
done
