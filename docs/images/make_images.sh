#!/usr/bin/env bash
# Regenerates the README figures from example_data with bioseqnn's own commands
# (needs the plots extra: pip install -e ".[plots]"). Takes a few minutes on a CPU.
# The figures are drawn at 150 dpi (the default is 300) to keep the site light.
set -euo pipefail
cd "$(dirname "$0")/../.."
img=docs/images
data=example_data
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ncRNA families, 13 classes: train on the training split, evaluate on the held-out test split.
bioseqnn train "$data/ncrna_train.fasta" "$data/ncrna_train.csv" -o "$work/ncrna.bsnn" \
    --arch cnn --epochs 20 --seed 0 --quiet --plots "$work/ncrna" --dpi 150
bioseqnn evaluate "$work/ncrna.bsnn" "$data/ncrna_test.fasta" "$data/ncrna_test.csv" \
    -o "$work/ncrna.json" --plots "$work/ncrna" --dpi 150 --quiet
cp "$work/ncrna/learning_curves.png" "$img/learning_curves.png"
cp "$work/ncrna/roc.png" "$img/roc.png"
cp "$work/ncrna/pr.png" "$img/pr.png"
cp "$work/ncrna/confusion.png" "$img/confusion.png"

# E. coli promoters, regression: the first 1600 records train, the last 400 test.
head -n 3200 "$data/promoters.fasta" > "$work/promoters_train.fasta"
tail -n 800 "$data/promoters.fasta" > "$work/promoters_test.fasta"
bioseqnn train "$work/promoters_train.fasta" "$data/promoters.csv" --ignore-unmatched \
    -o "$work/promoters.bsnn" --arch cnn --epochs 20 --seed 0 --quiet
bioseqnn evaluate "$work/promoters.bsnn" "$work/promoters_test.fasta" "$data/promoters.csv" \
    --ignore-unmatched -o "$work/promoters.json" --plots "$work/promoters" --dpi 150 --quiet
cp "$work/promoters/scatter.png" "$img/scatter.png"

# Which positions of a promoter drive its predicted expression: in-silico mutagenesis.
head -n 2 "$work/promoters_test.fasta" > "$work/one.fasta"
bioseqnn explain "$work/promoters.bsnn" "$work/one.fasta" --method ism -o "$work/ism.tsv" \
    --plot "$work/logos" --dpi 150 --quiet
cp "$work"/logos/*.png "$img/logo_ism.png"
ls -l "$img"/*.png
# the figures the README quotes
python - "$work" <<'PY'
import json, sys
work = sys.argv[1]
best = json.loads(open(f"{work}/ncrna.json").read())["metrics"]["accuracy"]
print(f"ncRNA test accuracy {best:.4f}")
print(f"promoters test Pearson r "
      f"{json.loads(open(f'{work}/promoters.json').read())['metrics']['pearson']:.4f}")
PY
bioseqnn info "$work/ncrna.bsnn" | grep "best epoch"
