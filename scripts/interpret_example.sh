#!/usr/bin/env bash
# The worked example of docs/guide/interpret.md: a CNN on the E. coli promoters of
# Wang et al. 2020 (HaochenW/Deep_promoter, MIT licence), its motifs, a motif insertion
# and a mutation map; copies the figures into docs/images/. Needs the interpret and plots
# extras. Usage: scripts/interpret_example.sh DATA_DIR (holding promoters.fasta and
# expression.csv). About 15 minutes on one CPU core.
set -euo pipefail
data=${1:?usage: scripts/interpret_example.sh DATA_DIR}
cd "$(dirname "$0")/.."
img=docs/images
work=${WORK:-$(mktemp -d)}

bioseqnn train "$data/promoters.fasta" "$data/expression.csv" --target log2_expression \
    --arch cnn --channels 32,32 --kernel-sizes 9,5 --epochs 8 --seed 1 \
    -o "$work/promoters.bsnn" --quiet

# a small hand-written database: consensus sequences of E. coli sites as PWMs (0.85 for
# the consensus letter, W = A or T, N = any)
python - "$work/sigma70.meme" <<'PY'
import sys
sites = {"sigma70_minus10": "TATAAT", "sigma70_minus35": "TTGACA",
         "sigma70_extended_minus10": "TGNTATAAT", "CRP": "TGTGANNNNNNTCACA",
         "LexA": "CTGTNNNNNNNNACAG", "Fur": "GATAATGATAATCATTATC",
         "UP_element_proximal": "AAAAAARNR", "IHF": "WATCAANNNNTTR"}
codes = {"A": "A", "C": "C", "G": "G", "T": "T", "W": "AT", "R": "AG", "N": "ACGT"}
with open(sys.argv[1], "w") as fh:
    fh.write("MEME version 4\n\nALPHABET= ACGT\n\nstrands: + -\n\n")
    for name, site in sites.items():
        fh.write(f"MOTIF {name}\nletter-probability matrix: alength= 4 w= {len(site)}\n")
        for c in site:
            allowed = codes[c]
            p = 1.0 / len(allowed) if len(allowed) > 1 else 0.85
            rest = (1 - p * len(allowed)) / (4 - len(allowed)) if len(allowed) < 4 else 0
            fh.write(" ".join(f"{p if b in allowed else rest:.3f}" for b in "ACGT") + "\n")
        fh.write("\n")
PY

head -n 400 "$data/promoters.fasta" > "$work/first200.fasta"
head -n 2 "$data/promoters.fasta" > "$work/one.fasta"
bioseqnn motifs "$work/promoters.bsnn" "$data/promoters.fasta" -o "$work/report" \
    --database "$work/sigma70.meme" --window 10 --flank 3 --dpi 150
bioseqnn insert "$work/promoters.bsnn" --motif TATAAT --background "$work/first200.fasta" \
    -o "$work/insert.tsv" --plot "$img/interpret_insert.png" --dpi 150
bioseqnn ism-map "$work/promoters.bsnn" "$work/one.fasta" --plot "$work/maps" --dpi 150
cp "$work/maps/"*.png "$img/interpret_ism_map.png"
for f in pos_1.png pos_1.contrib.png neg_2.contrib.png; do
    cp "$work/report/logos/$f" "$img/interpret_$f"
done
cat "$work/report/report.md"
