"""A known answer on a real genome: a motif planted at known places, intervals to learn it
from, and variants that destroy it or lie elsewhere.

    python example_data/genome/make_planted.py OUTDIR [--seed 0]

Reads ``reference.fa`` beside this script (two real sequences; see README.md) and writes
to OUTDIR:

- ``planted.fa``: the reference with the motif TAGCGGCCGCTA (a palindrome, so either
  strand reads it the same) written over the genome at every site;
- ``sites.bed``: where (0-based, half-open; one line per site);
- ``peaks.bed``: 100-base intervals, BED6 plus a ``bound`` column named by a ``#``
  header: ``pos_N`` holds a site at a random offset (``bound`` 1, score 1000), ``neg_N``
  lies midway between two sites, so that a 200-base window around it holds none
  (``bound`` 0, score 0); strands at random;
- ``labels.csv``: ``id,bound`` for the same intervals;
- ``variants.vcf``: SNVs and indels on ``planted.fa`` (REF as there), with an INFO field
  ``KIND``: ``motif`` (an SNV in the motif's core, or a deletion of two core bases, which
  destroys it), ``flank`` (40-60 bases beside a site: the motif stays in the window),
  ``background`` (in a ``neg`` interval); one record has two alternate alleles (one of
  them symbolic, ``<DEL>``, which bioseqnn skips).

Everything follows from the sequence and the seed: the same command writes the same files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

MOTIF = "TAGCGGCCGCTA"
CORE = range(3, 9)  # GCGGCC: the motif's middle
HERE = Path(__file__).resolve().parent
SPACING = 600  # bases between sites (at random within +-100)
WIDTH = 100  # bases per interval


def read_fasta(path: Path) -> dict[str, tuple[str, str]]:
    """name -> (description, sequence)."""
    records: dict[str, tuple[str, list[str]]] = {}
    name = ""
    for line in path.read_text().splitlines():
        if line.startswith(">"):
            name, _, desc = line[1:].partition(" ")
            records[name] = (desc, [])
        elif line.strip():
            records[name][1].append(line.strip())
    return {k: (d, "".join(s)) for k, (d, s) in records.items()}


def make(outdir: str | Path, seed: int = 0) -> dict[str, Path]:
    """Write the planted genome, intervals, labels and variants to ``outdir``."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    genome = read_fasta(HERE / "reference.fa")
    planted: dict[str, str] = {}
    sites: list[tuple[str, int]] = []
    peaks: list[tuple[str, int, str, int]] = []  # chrom, start, name, bound
    variants: list[tuple[str, int, str, str, str]] = []  # chrom, pos (1-based), ref, alt, kind
    for chrom, (_, seq) in genome.items():
        bases = list(seq)
        starts = [s + int(rng.integers(-100, 101))
                  for s in range(SPACING, len(seq) - SPACING, SPACING)]
        for s in starts:
            bases[s : s + len(MOTIF)] = MOTIF
            sites.append((chrom, s))
        planted[chrom] = seq = "".join(bases)
        for s in starts:  # a positive interval: the site at a random offset in it
            lo = s - int(rng.integers(0, WIDTH - len(MOTIF) + 1))
            peaks.append((chrom, lo, f"pos_{len(peaks)}", 1))
        for a, b in zip(starts[:-1], starts[1:], strict=True):  # a negative between sites
            centre = (a + len(MOTIF) + b) // 2 + int(rng.integers(-20, 21))
            peaks.append((chrom, centre - WIDTH // 2, f"neg_{len(peaks)}", 0))
        for k, s in enumerate(starts):
            if k % 4 == 0:  # motif-destroying SNV in the core
                p = s + int(rng.choice(list(CORE)))
                alt = str(rng.choice([b for b in "ACGT" if b != seq[p]]))
                variants.append((chrom, p + 1, seq[p], alt, "motif"))
            elif k % 4 == 1:  # a flank SNV: the motif stays in the window
                p = s + int(rng.choice([-1, 1])) * int(rng.integers(40, 61))
                p += len(MOTIF) if p > s else 0
                alt = str(rng.choice([b for b in "ACGT" if b != seq[p]]))
                variants.append((chrom, p + 1, seq[p], alt, "flank"))
            elif k % 4 == 2 and k % 8 == 2:  # a deletion of two core bases (anchor before)
                p = s + CORE.start
                variants.append((chrom, p + 1, seq[p : p + 3], seq[p], "motif"))
    for chrom, lo, name, bound in list(peaks):
        if bound:
            continue
        seq = planted[chrom]
        p = lo + int(rng.integers(10, WIDTH - 10))
        if rng.random() < 0.2:  # an insertion of three bases after p
            ins = "".join(rng.choice(list("ACGT"), 3))
            variants.append((chrom, p + 1, seq[p], seq[p] + ins, "background"))
        else:
            alt = str(rng.choice([b for b in "ACGT" if b != seq[p]]))
            variants.append((chrom, p + 1, seq[p], alt, "background"))
    order = {c: i for i, c in enumerate(genome)}
    variants.sort(key=lambda v: (order[v[0]], v[1]))
    peaks.sort(key=lambda p: (order[p[0]], p[1]))
    first_motif = next(i for i, v in enumerate(variants) if v[4] == "motif" and len(v[2]) == 1)
    chrom, pos, ref, alt, kind = variants[first_motif]
    variants[first_motif] = (chrom, pos, ref, f"{alt},<DEL>", kind)

    paths = {name: out / name for name in ("planted.fa", "sites.bed", "peaks.bed",
                                            "labels.csv", "variants.vcf")}
    with open(paths["planted.fa"], "w") as fh:
        for chrom, (desc, _) in genome.items():
            fh.write(f">{chrom} {desc}, motif {MOTIF} planted (bioseqnn example)\n")
            seq = planted[chrom]
            fh.writelines(seq[i : i + 60] + "\n" for i in range(0, len(seq), 60))
    with open(paths["sites.bed"], "w") as fh:
        fh.writelines(f"{c}\t{s}\t{s + len(MOTIF)}\tsite_{i}\n" for i, (c, s) in enumerate(sites))
    strands = rng.choice(["+", "-"], len(peaks))
    with open(paths["peaks.bed"], "w") as fh:
        fh.write("#chrom\tstart\tend\tname\tscore\tstrand\tbound\n")
        fh.writelines(f"{c}\t{lo}\t{lo + WIDTH}\t{name}\t{1000 * b}\t{strand}\t{b}\n"
                      for (c, lo, name, b), strand in zip(peaks, strands, strict=True))
    with open(paths["labels.csv"], "w") as fh:
        fh.write("id,bound\n")
        fh.writelines(f"{name},{b}\n" for _, _, name, b in peaks)
    with open(paths["variants.vcf"], "w") as fh:
        fh.write("##fileformat=VCFv4.2\n")
        fh.writelines(f"##contig=<ID={c},length={len(s)}>\n" for c, s in planted.items())
        fh.write('##INFO=<ID=KIND,Number=1,Type=String,Description="motif: destroys a '
                 'planted motif; flank: beside one; background: far from any">\n')
        fh.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        fh.writelines(f"{c}\t{p}\tv{i}\t{r}\t{a}\t.\tPASS\tKIND={k}\n"
                      for i, (c, p, r, a, k) in enumerate(variants))
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for path in make(args.outdir, args.seed).values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
