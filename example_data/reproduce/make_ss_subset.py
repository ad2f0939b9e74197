"""Recreate example_data/ss_*.fasta: a seeded subset of the FLIP secondary structure data.

    python example_data/reproduce/make_ss_subset.py ../shared/data

120 training and 30 test proteins of at most 150 residues, with their 3-state labels and
resolved-residue masks (J-SNACKKB/FLIP, splits/secondary_structure, AFL-3.0).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
from Bio.SeqIO.FastaIO import SimpleFastaParser


def read(path: Path) -> dict[str, str]:
    with open(path) as fh:
        return {title.split()[0]: seq for title, seq in SimpleFastaParser(fh)}


def main(data: Path) -> None:
    src = data / "secondary_structure"
    here = Path(__file__).resolve().parent.parent
    seqs, ss3, mask = (read(src / f) for f in
                       ("sequences.fasta", "ss3.fasta", "resolved_mask.fasta"))
    with open(src / "splits.csv", newline="") as fh:
        split = {r["id"]: r["split"] for r in csv.DictReader(fh)}
    rng = np.random.default_rng(9)
    for part, n in (("train", 120), ("test", 30)):
        ids = sorted(i for i in seqs if split.get(i) == part and len(seqs[i]) <= 150)
        chosen = [ids[k] for k in sorted(rng.choice(len(ids), n, replace=False))]
        for suffix, table in (("", seqs), ("_ss3", ss3), ("_mask", mask)):
            with open(here / f"ss_{part}{suffix}.fasta", "w") as fh:
                fh.writelines(f">{i}\n{table[i]}\n" for i in chosen)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
