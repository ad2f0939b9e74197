"""Recreate the example subsets from the full datasets (../shared/data in the dev tree).

    python example_data/make_subsets.py PATH/TO/shared/data
"""

import csv
import random
import sys
from collections import defaultdict
from pathlib import Path

from Bio.SeqIO.FastaIO import SimpleFastaParser


def read_fasta(path):
    with open(path) as fh:
        return {t.split()[0]: s for t, s in SimpleFastaParser(fh)}


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def write(out, stem, seqs, rows, columns):
    with open(out / f"{stem}.fasta", "w") as fh:
        for r in rows:
            fh.write(f">{r['id']}\n{seqs[r['id']]}\n")
    with open(out / f"{stem}.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([r[c] for c in columns])


def per_class(rows, key, n, rng):
    groups = defaultdict(list)
    for r in rows:
        groups[r[key]].append(r)
    picked = []
    for label in sorted(groups):
        picked += rng.sample(groups[label], min(n, len(groups[label])))
    return picked


def main(shared):
    out = Path(__file__).parent
    rng = random.Random(20261122)
    d = shared / "hemolytic_peptides"
    rows = read_csv(d / "labels.csv")
    write(out, "hemolytic", read_fasta(d / "peptides.fasta"), rows, ["id", "hemolytic"])
    d = shared / "ncrna_families"
    for split, n in (("train", 60), ("test", 20)):
        rows = per_class(read_csv(d / f"{split}.csv"), "family", n, rng)
        write(out, f"ncrna_{split}", read_fasta(d / f"{split}.fasta"), rows, ["id", "family"])
    d = shared / "ecoli_promoters"
    rows = rng.sample(read_csv(d / "expression.csv"), 2000)
    rows.sort(key=lambda r: r["id"])
    write(out, "promoters", read_fasta(d / "promoters.fasta"), rows, ["id", "log2_expression"])


if __name__ == "__main__":
    main(Path(sys.argv[1]))
