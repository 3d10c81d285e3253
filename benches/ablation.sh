#!/usr/bin/env bash
# The quality ablation on the bundled emoji set: the quickstart's defaults, then each switch
# off once (same seed), then other identifier shapes. Prints one markdown table (test R@1,
# R@10 and MRR@10 of the generator alone and of the fused score, validation R@1 of the best
# epoch) and keeps every run's full output in $OUT (default target/ablation).
#
#   bash benches/ablation.sh [--seed N] [--epochs N] [-- extra quickstart flags]
#
# Each run takes a few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
seed=0
epochs=""
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seed) seed="$2"; shift 2 ;;
    --epochs) epochs="--epochs $2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
OUT="${OUT:-target/ablation}"
mkdir -p "$OUT"
cargo build --release --example quickstart >&2
bin=target/release/examples/quickstart

runs=(
  "defaults|"
  "no dense head (28 epochs)|--no-dense-head"
  "no item-as-query rows|--item-queries 0"
  "no interpolation|--interpolation 0"
  "targets: raw e5 vectors|--raw-targets"
  "subtree prior on|--subtree-prior on"
  "targets, re-rank vectors and prior picked on validation|--targets auto --rerank-vectors auto"
  "dense head alone (transformer scale 0)|--transformer-scale 0"
  "ids from MiniLM (the item encoder)|--ids-from minilm"
  "relevance-aware ids (supervised centroids)|--ids-from supervised"
  "shape 64x2x32|--shape 64x2x32"
  "shape 128x2x16|--shape 128x2x16"
  "re-rank centroids without the validation pairs|--rerank-held-out"
  "no prefix-level ranking loss|--rank-weight 0"
)
if [ -n "${ONLY:-}" ]; then
  # ONLY="0 2 3": run a subset of the rows above, by index
  sel=()
  for i in $ONLY; do sel+=("${runs[$i]}"); done
  runs=("${sel[@]}")
fi

row() { # file, label prefix -> "R@1 | R@10 | MRR@10"
  grep -F "$2" "$1" | head -1 |
    sed -E 's/.*R@1 ([0-9.]+) +R@5 [0-9.]+ +R@10 ([0-9.]+) +MRR@10 ([0-9.]+).*/\1 | \2 | \3/'
}

echo "| run (seed $seed) | valid R@1 | gen R@1 | gen R@10 | gen MRR@10 | fused R@1 | fused R@10 | fused MRR@10 | s |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for r in "${runs[@]}"; do
  label="${r%%|*}"
  flags="${r#*|}"
  file="$OUT/$(echo "$label" | tr -c 'a-zA-Z0-9' '_')-seed$seed.txt"
  # shellcheck disable=SC2086
  "$bin" --quiet --seed "$seed" $epochs $flags "${extra[@]}" > "$file" 2>&1
  valid=$(grep -E "^best epoch" "$file" | sed -E 's/.*R@1 ([0-9.]+).*/\1/')
  case "$valid" in [0-9]*) ;; *) valid=$(grep -E "floor" "$file" | sed -E 's/.*: //') ;; esac
  total=$(grep -E "^total" "$file" | sed -E 's/total ([0-9.]+) s/\1/')
  echo "| $label | $valid | $(row "$file" "generator (CART)") | $(row "$file" "fused:") | $total |"
done
echo
echo "baselines (same in every run): $(grep -F "exact dense" "$file" | tr -s ' ')"
echo "                               $(grep -F "supervised dense" "$file" | tr -s ' ')"
