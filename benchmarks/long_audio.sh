#!/usr/bin/env bash
# Long recordings (issue 18): one hour of real audio (the 97 Medley-solos-DB clips, 44.1 kHz
# mono, concatenated and repeated to 60 min) as WAV, FLAC and MP3, embedded by
# `tessera-audio embed --window 10` (360 windows read one at a time) against embedding the
# whole file (decoded whole, one centre crop), with peak RSS and wall time from /usr/bin/time; the peer reads the same file
# whole with soundfile and, streamed, with soundfile.blocks (10 s blocks), in one run.
# Usage: benchmarks/long_audio.sh [minutes]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-60}
DATA=${DATA:-../shared/data/audio/medley_solos_db_small/wav}
OUT=${OUT:-runs/long_audio}
py=benchmarks/.venv/bin/python
mkdir -p "$OUT"
if [ ! -f "$OUT/long.mp3" ]; then
  $py - "$DATA" "$OUT" "$minutes" <<'PY'
import os, sys
import numpy as np
import soundfile as sf
src, out, minutes = sys.argv[1], sys.argv[2], float(sys.argv[3])
clips = [sf.read(os.path.join(src, f), dtype="float32")[0] for f in sorted(os.listdir(src))]
one = np.concatenate(clips)
n = int(minutes * 60 * 44100)
x = np.tile(one, n // one.size + 1)[:n]
sf.write(os.path.join(out, "long.wav"), x, 44100, subtype="PCM_16")
sf.write(os.path.join(out, "long.flac"), x, 44100, subtype="PCM_16")
sf.write(os.path.join(out, "long.mp3"), x, 44100, format="MP3", subtype="MPEG_LAYER_III")
PY
fi
cargo build --release -q -p tessera-audio-cli
bin="${CARGO_TARGET_DIR:-target}/release/tessera-audio"
measure() { # label, command...
  local label=$1
  shift
  /usr/bin/time -f "%M %e" -o "$OUT/time.txt" "$@" > "$OUT/log.txt" 2>&1 || { cat "$OUT/log.txt"; exit 1; }
  read -r kb secs < "$OUT/time.txt"
  echo "$label,$((kb / 1024)),$secs"
}
echo "run,peak_rss_mb,seconds"
for f in wav flac mp3; do
  measure "tessera $f --window 10" "$bin" embed --random-init --preset audio-music-mae --threads 2 \
    --data "$OUT/long.$f" --window 10 --out "$OUT/emb-$f"
  measure "tessera $f whole" "$bin" embed --random-init --preset audio-music-mae --threads 2 \
    --data "$OUT/long.$f" --out "$OUT/whole-$f"
  measure "soundfile $f whole" $py -c "import soundfile as sf, sys; x = sf.read(sys.argv[1], dtype='float32')[0]; print(x.size)" "$OUT/long.$f"
  measure "soundfile $f blocks" $py -c "
import soundfile as sf, sys
n = 0
for b in sf.blocks(sys.argv[1], blocksize=441000, dtype='float32'):
    n += b.size
print(n)" "$OUT/long.$f"
done
