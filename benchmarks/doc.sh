#!/usr/bin/env bash
# Documents (issue 14). Pretraining pages: the PDFs that Debian documentation packages
# install (TeX Live docs and others under /usr/share/doc), first 8 pages of each, rendered at
# 100 dpi by `tessera-doc render`, plus the FUNSD and PubLayNet training pages (no test page).
# Then, image only (no OCR text):
# - FUNSD word-level entity labelling (header / question / answer / other) of every word box
#   on the 50 test pages: frozen box-pooled features + linear probe, and fine-tuned (token
#   classifier on 256 px windows of the 50 training pages), pretrained against random init
#   and the no-network `geometry` baseline (box position/size + ink densities);
# - PubLayNet layout (text, title, list, table, figure): per-patch probe, mIoU on 6 pages;
# - the physical-coordinate claim: probes fitted at the original resolution, scored on the
#   test pages re-written at 2x their resolution (`#dpi=` doubled).
# Usage: benchmarks/doc.sh [seed]      (DOC=../shared/data/document OUT=runs/doc)
set -euo pipefail
cd "$(dirname "$0")/.."
seed=${1:-0}
DOC=${DOC:-../shared/data/document}
OUT=${OUT:-runs/doc}
PY=${PY:-benchmarks/.venv/bin/python}
bin="${CARGO_TARGET_DIR:-target}/release/tessera-doc"
cargo build --release -q -p tessera-doc-cli
mkdir -p "$OUT"
[ -f "$OUT/texlive_pages/pages.csv" ] || {
  find /usr/share/doc -name '*.pdf' | sort > "$OUT/pdfs.txt"
  "$bin" render --data "$OUT/pdfs.txt" --out "$OUT/texlive_pages" --dpi 100 --max-pages 8 --skip-bad
}
python3 benchmarks/doc_make_manifest.py "$DOC" "$OUT/texlive_pages"
"$PY" benchmarks/doc_rescale.py "$OUT/funsd_words.csv" 2 "$OUT/funsd_x2"
"$PY" benchmarks/doc_rescale.py "$OUT/publaynet_regions.csv" 2 "$OUT/publaynet_x2"
run="$OUT/pre-tiny-s$seed"
[ -f "$run/done" ] || {
  "$bin" pretrain --preset doc-tiny-mae --config benchmarks/doc_pretrain.toml --seed "$seed" \
    --data "$OUT/pretrain.csv" --out "$run" && touch "$run/done"
}
res="$OUT/results"
for init in pretrained random; do
  if [ "$init" = pretrained ]; then src=(--checkpoint "$run" --name "doc-mae-s$seed"); else src=(--random-init --preset doc-tiny-mae --seed "$seed" --name random-init); fi
  "$bin" boxes "${src[@]}" --boxes "$OUT/funsd_words.csv" --task-name funsd-entity --out "$res"
  "$bin" boxes "${src[@]}" --boxes "$OUT/funsd_x2/boxes.csv" --task-name funsd-entity-test-x2 --out "$res"
  "$bin" boxes "${src[@]}" --boxes "$OUT/publaynet_regions.csv" --task patches --task-name publaynet-layout --out "$res"
  "$bin" boxes "${src[@]}" --boxes "$OUT/publaynet_x2/boxes.csv" --task patches --task-name publaynet-layout-test-x2 --out "$res"
done
for set in funsd_words:funsd-entity funsd_x2/boxes:funsd-entity-test-x2; do
  "$bin" boxes --baseline geometry --preset doc-tiny-mae --boxes "$OUT/${set%%:*}.csv" --task-name "${set##*:}" --out "$res"
done
"$bin" boxes --baseline geometry --preset doc-tiny-mae --boxes "$OUT/publaynet_regions.csv" --task patches --task-name publaynet-layout --out "$res"
# Fine-tuning on FUNSD: 200 steps of 16 windows, layer decay 0.75, label smoothing 0.1.
for init in pretrained random; do
  if [ "$init" = pretrained ]; then src=(--checkpoint "$run" --name "doc-mae-s$seed-ft"); else src=(--random-init --preset doc-tiny-mae --seed "$seed" --name random-init-ft); fi
  "$bin" boxes "${src[@]}" --finetune --steps 200 --batch-size 16 --boxes "$OUT/funsd_words.csv" --task-name funsd-entity --out "$res"
done
