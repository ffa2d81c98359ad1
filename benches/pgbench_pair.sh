# Sourced by the audit benchmarks: runs pgbench scripts "$dir/plain.sql" and "$dir/audited.sql"
# against $DB in $CHUNKS alternating chunks of $TX / $CHUNKS transactions from $CLIENTS clients
# (so the shared machine's slow moments hit both), and sets tps_p, tps_a (overall tps: chunks'
# harmonic mean), median (of the per-chunk audited / plain ratios) and range.
pgbench_pair() {
  local per_chunk=$((TX / CHUNKS / CLIENTS)) ratios=() sum_p=0 sum_a=0 c p a
  run() {  # tps of one chunk of script $1 (excluding connection setup)
    pgbench -n -c "$CLIENTS" -j 2 -t "$per_chunk" -f "$dir/$1.sql" "$DB" 2>/dev/null | awk '/^tps/ {print $3; exit}'
  }
  for c in $(seq 1 "$CHUNKS"); do
    p=$(run plain); a=$(run audited)
    ratios+=("$(awk -v a="$a" -v p="$p" 'BEGIN {print a / p}')")
    sum_p=$(awk -v s="$sum_p" -v x="$p" 'BEGIN {print s + 1 / x}'); sum_a=$(awk -v s="$sum_a" -v x="$a" 'BEGIN {print s + 1 / x}')
  done
  median=$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{a[NR]=$1} END {printf "%.2f", (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}')
  range=$(printf '%s\n' "${ratios[@]}" | sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {printf "%.2f-%.2f", lo, hi}')
  tps_p=$(awk -v s="$sum_p" -v n="$CHUNKS" 'BEGIN {printf "%.0f", n / s}')
  tps_a=$(awk -v s="$sum_a" -v n="$CHUNKS" 'BEGIN {printf "%.0f", n / s}')
}
