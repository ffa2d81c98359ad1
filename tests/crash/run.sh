#!/usr/bin/env bash
# The crash tests (docs/operations.md "Crashes"): one throw-away cluster per script, each killing
# a backend, a background worker or the server at a pause point (src/pg/pause.rs).
set -euo pipefail
cd "$(dirname "$0")"
for t in rotate_key.sh rotate_master_key.sh destroy_key.sh audit_seal.sh privacy_charge.sh fhe_close_round.sh lo_encrypt.sh subject_forget.sh reencrypt_job.sh; do
  echo "== crash: $t"
  bash "./$t"
done
