#!/usr/bin/env bash
# Builds the fuzz targets with AFL++ (cargo-afl, stable Rust) and fuzzes each for a while;
# fails if any target crashes (a panic is a crash) or hangs, printing each such input in hex
# with the panic message and backtrace of its replay.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]      (default: 5 seconds, every target)
#
# Environment:
#   CARGO_TARGET_DIR   build directory (default: fuzz/target)
#   FUZZ_OUT           AFL++ output directory, kept afterwards (default: a fresh temporary one)
#   FUZZ_FEATURES      extra cargo features: "fhe-uint32" adds the fhe_uint32 target (slow build)
#   FUZZ_TIMEOUT_MS    per-input time limit before AFL++ calls it a hang (default: 5000)
#   FUZZ_NICE          niceness of the build and the fuzzers (default: 0)
# Runs as root on a clean machine: installs cargo-afl (which builds AFL++ from its bundled
# source with the system's cc and make) when missing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}

secs=${1:-5}
shift || true
case $secs in '' | *[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2 ;; esac
features="afl ${FUZZ_FEATURES:-}"
timeout_ms=${FUZZ_TIMEOUT_MS:-5000}
nice_n=${FUZZ_NICE:-0}
AFL_VERSION=0.18.2

if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=(format ore tensor json_fields tenant_token dp_seal master_keys export stream wrap fpe dp_state fhe_vector)
    case " $features " in *" fhe-uint32 "*) targets+=(fhe_uint32) ;; esac
fi

# cargo-afl, and AFL++ built for this toolchain (the install builds it; `config --build`
# builds it if that failed, and refuses harmlessly when it is there).
if ! cargo afl --version 2>/dev/null | grep -q "$AFL_VERSION"; then
    echo "== installing cargo-afl $AFL_VERSION"
    nice -n "$nice_n" cargo install --locked --force cargo-afl --version "$AFL_VERSION"
fi
if ! compgen -G "$HOME/.local/share/afl.rs/rustc-*/afl.rs-$AFL_VERSION/afl/bin/afl-fuzz" >/dev/null; then
    nice -n "$nice_n" cargo afl config --build --force
fi

echo "== building ${targets[*]} (features: $features)"
start=$(date +%s)
bins=()
for t in "${targets[@]}"; do bins+=(--bin "$t"); done
# Full checks in our crates, the dev profile's in the others (see rustc-wrapper.sh).
RUSTC_WRAPPER=$here/rustc-wrapper.sh \
    nice -n "$nice_n" cargo afl build --release --locked --features "$features" "${bins[@]}"
echo "== build: $(($(date +%s) - start)) s"

out=${FUZZ_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/encml-fuzz.XXXXXX")}
mkdir -p "$out"
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1
# A crashing seed counts as a crash (saved in crashes/ like the fuzzer's own finds).
export AFL_CRASHING_SEEDS_AS_NEW_CRASH=1 AFL_FAST_CAL=1 AFL_NO_WARN_INSTABILITY=1
# The fuzzer's workers must not inherit cargo's or the shell's RUST_BACKTRACE (slow panics).
unset RUST_BACKTRACE

# Prints an input in hex and what its replay outside AFL++ says: the panic message and the
# backtrace down to the harness, in full for the first input of each panic location, one line
# for the others.
declare -A seen
report() {
    local bin=$1 file=$2 replay where
    replay=$(RUST_BACKTRACE=1 timeout 60 "$bin" <"$file" 2>&1 || true)
    where=$(printf '%s\n' "$replay" | grep -m1 -o 'panicked at .*' || echo "no panic (exit status only)")
    echo "--- input $(basename "$file") ($(wc -c <"$file") bytes), $where"
    od -An -v -tx1 "$file" | tr -d ' \n' | fold -w 128
    echo
    if [ -z "${seen[$where]:-}" ]; then
        seen[$where]=1
        printf '%s\n' "$replay" | grep -v '^fuzz/run.sh: line' |
            sed -n '1,/encml_fuzz::targets\|at \.\/src\/targets\//p' | head -n 40
    fi
}

failed=()
for t in "${targets[@]}"; do
    bin=$CARGO_TARGET_DIR/release/$t
    rm -rf "${out:?}/$t"
    echo "== fuzzing $t for ${secs}s"
    start=$(date +%s)
    status=0
    nice -n "$nice_n" cargo afl fuzz -V "$secs" -t "${timeout_ms}+" -i "corpus/$t" -o "$out/$t" -- "$bin" \
        >"$out/$t.log" 2>&1 || status=$?
    stats=$out/$t/default/fuzzer_stats
    if [ -f "$stats" ]; then
        awk -F' *: *' '$1 ~ /^(execs_done|execs_per_sec|corpus_count|bitmap_cvg|saved_crashes|saved_hangs)$/ {printf "%s=%s ", $1, $2}' "$stats"
        echo "($(($(date +%s) - start)) s)"
    fi
    if [ $status -ne 0 ]; then
        echo "!! afl-fuzz failed on $t (exit $status):"
        tail -n 30 "$out/$t.log"
        # Seeds that crash or hang, if that is why it stopped.
        for f in "corpus/$t"/*; do
            if ! timeout 60 "$bin" <"$f" >/dev/null 2>&1; then report "$bin" "$f"; fi
        done
        failed+=("$t")
        continue
    fi
    found=0
    for f in "$out/$t"/default/crashes/id:* "$out/$t"/default/hangs/id:*; do
        [ -e "$f" ] || continue
        found=1
        case $f in */hangs/*) echo "!! $t: HANG (over ${timeout_ms} ms)" ;; *) echo "!! $t: CRASH" ;; esac
        report "$bin" "$f"
    done
    [ $found -eq 0 ] || failed+=("$t")
done

echo "== AFL++ output in $out"
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
echo "all ${#targets[@]} targets ran ${secs}s each without a crash or hang"
