#!/usr/bin/env bash
# Audio decoding speed (issue 18), side by side in one run: tessera-audio (own WAV reader,
# symphonia for the rest) against soundfile (libsndfile 1.2) and librosa.load, on the 97
# real Medley-solos-DB clips (44.1 kHz mono, 2.97 s each) as WAV and converted here by
# soundfile to FLAC (16-bit), Ogg Vorbis, MP3 (LAME) and Ogg Opus (resampled to 48 kHz
# first, as Opus requires; both sides decode it with libopus). Rounds alternate between sides;
# each line is the best of REPEAT passes over a folder.
# Usage: benchmarks/audio_decode.sh [rounds] [repeat]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
repeat=${2:-3}
DATA=${DATA:-../shared/data/audio/medley_solos_db_small/wav}
OUT=${OUT:-runs/audio_decode}
py=benchmarks/.venv/bin/python
mkdir -p "$OUT"
for fmt in wav flac ogg mp3 opus; do
  [ -d "$OUT/$fmt" ] && continue
  mkdir -p "$OUT/$fmt"
  $py - "$DATA" "$OUT/$fmt" "$fmt" <<'PY'
import os, sys
import soundfile as sf
src, dst, fmt = sys.argv[1:]
kw = {"wav": dict(subtype="PCM_16"), "flac": dict(subtype="PCM_16"),
      "ogg": dict(format="OGG", subtype="VORBIS"), "mp3": dict(format="MP3", subtype="MPEG_LAYER_III"),
      "opus": dict(format="OGG", subtype="OPUS")}[fmt]
for f in sorted(os.listdir(src)):
    x, sr = sf.read(os.path.join(src, f), dtype="float32")
    if fmt == "opus" and sr != 48000:
        from scipy.signal import resample_poly
        from math import gcd
        g = gcd(48000, sr)
        x, sr = resample_poly(x, 48000 // g, sr // g, axis=0).astype("float32"), 48000
    sf.write(os.path.join(dst, f[:-4] + "." + fmt), x, sr, **kw)
PY
done
cargo build --release -q -p tessera-audio --example decode_bench
ex="${CARGO_TARGET_DIR:-target}/release/examples/decode_bench"
dirs=("$OUT/wav" "$OUT/flac" "$OUT/ogg" "$OUT/mp3" "$OUT/opus")
echo "side,folder,files,samples,seconds"
for r in $(seq "$rounds"); do
  "$ex" "$repeat" "${dirs[@]}" | sed 's/^/tessera,/'
  $py benchmarks/audio_decode.py soundfile "$repeat" "${dirs[@]}" | sed 's/^/soundfile,/'
  $py benchmarks/audio_decode.py librosa "$repeat" "${dirs[@]}" | sed 's/^/librosa,/'
done
