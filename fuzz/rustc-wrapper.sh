#!/usr/bin/env bash
# RUSTC_WRAPPER for `cargo afl build` (run.sh). cargo-afl's RUSTFLAGS turn on debug assertions,
# overflow checks and coverage instrumentation in every crate. Our own packages (encml-*) keep
# all three. Other packages get the extension's dev-profile settings (no debug assertions or
# overflow checks: with them tfhe-fft alone builds for over 25 minutes here), and the big
# numeric ones (tfhe*, pulp, opendp, dashu*) are not instrumented either: their coverage does
# not guide the parsers' fuzzing. The last -C flag of a kind wins, so appending is enough.
rustc=$1
shift
case ${CARGO_PKG_NAME:-} in
'' | encml-*) exec "$rustc" "$@" ;;
esac
strip=0
case $CARGO_PKG_NAME in tfhe* | pulp | opendp | dashu*) strip=1 ;; esac
args=()
for a in "$@"; do
    if [ $strip -eq 1 ] && [ ${#args[@]} -gt 0 ] && [ "${args[-1]}" = -C ]; then
        case $a in
        passes=sancov* | llvm-args=-sanitizer-coverage*)
            unset 'args[-1]'
            continue
            ;;
        esac
    fi
    args+=("$a")
done
exec "$rustc" "${args[@]}" -C debug-assertions=off -C overflow-checks=off
