#!/usr/bin/env bash
# Data-parallel scaling on one machine (issue 16): FSDD pretraining of the frame-patch MAE
# for STEPS steps of 32 clips, in four set-ups run one after another for ROUNDS rounds:
#   p1-t1   1 process, 1 thread, the batch in 2 micro-batches (the data order of p2-t1)
#   p1-t2   1 process, 2 threads, 2 micro-batches
#   p2-t1   mpirun -np 2, 1 thread each, one micro-batch per process
#   whole   1 process, 2 threads, the batch undivided (today's default)
# Each line: set-up, round, samples/s and loss after STEPS steps (the same data and draws
# in the first three, so their losses agree to floating-point order).
# Needs a binary built with `--features mpi` and OpenMPI (scripts/setup.sh with
# TESSERA_SETUP_MPI=1).
# Usage: benchmarks/scaling.sh [STEPS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-60}
ROUNDS=${2:-3}
BIN=${BIN:-target/release/tessera-audio}
DATA=${FSDD:-../shared/data/audio/fsdd}/labels.csv
OUT=${OUT:-runs/scaling}
PRESET=${PRESET:-audio-tiny-mae-frames}
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none
        --mca btl_vader_single_copy_mechanism none -np 2)
mkdir -p "$OUT"
printf '[train]\nmicro_batches = 2\nbatch_size = 32\n' > "$OUT/micro2.toml"
printf '[train]\nbatch_size = 32\n' > "$OUT/whole.toml"
run() {
  local name=$1 round=$2 cfg=$3 threads=$4
  shift 4
  rm -rf "$OUT/$name"
  local line
  line=$("$@" "$BIN" pretrain --data "$DATA" --split-column official_split --preset "$PRESET" \
    --config "$OUT/$cfg.toml" --steps "$STEPS" --seed 0 --threads "$threads" \
    --out "$OUT/$name" 2>"$OUT/$name.log" | grep '^trained')
  # "trained steps 1..N in T s (S samples/s), final loss L; checkpoint ..."
  echo "$name $round $(sed -E 's/.*\(([0-9.]+) samples\/s\), final loss ([0-9.]+).*/\1 \2/' <<<"$line")"
}
echo "setup round samples_per_s loss"
for r in $(seq 1 "$ROUNDS"); do
  run p1-t1 "$r" micro2 1
  run p1-t2 "$r" micro2 2
  run p2-t1 "$r" micro2 1 "${MPIRUN[@]}"
  run whole "$r" whole 2
done
grep -h '^data-parallel' "$OUT"/p2-t1.log || true
