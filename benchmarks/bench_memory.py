"""Peak memory of ``bioseqnn predict`` and ``bioseqnn train`` on generated data.

    python benchmarks/bench_memory.py predict                      # 10^4 and 10^6 sequences
    python benchmarks/bench_memory.py predict --sizes 2000,50000
    python benchmarks/bench_memory.py train --mb 50,250            # FASTA sizes in MB
    python benchmarks/bench_memory.py long --long 300000,3000000  # one long record

Every figure is the peak resident set size (``ru_maxrss``) of a real ``bioseqnn``
subprocess, read with ``os.wait4``. Not part of the test suite (the sizes take minutes);
tests/unit/test_data_memory.py checks the same flatness on a small scale.

- predict: a small LSTM model (hidden 32) predicts random DNA records of length 100;
  the peak should not depend on the number of records (streaming, chunk by chunk).
- train: one epoch of a tiny CNN on random DNA records of length 1000 with binary
  labels. Sequences are held as uint8 codes (one byte per residue), so the peak grows
  by about one byte per residue plus per-record bookkeeping (id, label row); the
  report fits that line through the measured sizes and extrapolates it to 1 GB.
- long: a DNA language model (GRU, hidden 8) evaluates and scores 3,000 records of 50 nt
  with one record of the given length among them; the peak should follow the residues,
  not the records times the longest record.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LETTERS = np.frombuffer(b"ACGT", dtype=np.uint8)


@dataclass
class Run:
    seconds: float
    peak_mib: float
    code: int
    stderr: str


_MEASURE = """
import os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(time.perf_counter() - start, usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def run_cli(args: list[str]) -> Run:
    """Run ``python -m bioseqnn ARGS`` and measure its peak RSS (MiB) and wall time.

    A small intermediate interpreter starts the command: Linux counts the image of a
    forked child before its exec in ru_maxrss, so forking the command straight from this
    process (grown by generating data) would report this process's size.
    """
    with tempfile.TemporaryFile() as err:
        proc = subprocess.run(
            [sys.executable, "-c", _MEASURE, sys.executable, "-m", "bioseqnn", *args],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            check=True,
        )
        err.seek(0)
        text = err.read().decode(errors="replace")
    seconds, kib, code = proc.stdout.split()
    return Run(float(seconds), int(kib) / 1024, int(code), text)


def write_records(
    fasta: Path, n: int, length: int, seed: int = 0, labels: Path | None = None, width: int = 60
) -> int:
    """``n`` random DNA records of ``length`` (and a binary label CSV); the FASTA size."""
    rng = np.random.default_rng(seed)
    label_fh = open(labels, "w", encoding="ascii") if labels else None  # noqa: SIM115
    try:
        if label_fh is not None:
            label_fh.write("id,y\n")
        with open(fasta, "wb") as fh:
            step = max(1, 20_000_000 // length)
            for start in range(0, n, step):
                k = min(step, n - start)
                seq = LETTERS[rng.integers(0, 4, k * length)].tobytes()
                out = []
                for j in range(k):
                    s = seq[j * length : (j + 1) * length]
                    out.append(b">seq%d\n" % (start + j))
                    out.extend(s[i : i + width] + b"\n" for i in range(0, length, width))
                fh.write(b"".join(out))
                if label_fh is not None:
                    ys = rng.integers(0, 2, k)
                    label_fh.write(
                        "".join(f"seq{start + j},{'ab'[y]}\n" for j, y in enumerate(ys.tolist()))
                    )
    finally:
        if label_fh is not None:
            label_fh.close()
    return fasta.stat().st_size


def small_model(tmp: Path) -> Path:
    fasta, labels, model = tmp / "small.fa", tmp / "small.csv", tmp / "small.bsnn"
    write_records(fasta, 256, 100, seed=1, labels=labels)
    run = run_cli(
        [
            "train",
            str(fasta),
            str(labels),
            "-o",
            str(model),
            "--arch",
            "lstm",
            "--hidden-size",
            "32",
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--quiet",
        ]
    )
    if run.code != 0:
        raise SystemExit(f"training the small model failed:\n{run.stderr}")
    return model


def bench_predict(sizes: list[int], tmp: Path, extra: list[str]) -> list[tuple[int, Run]]:
    model = small_model(tmp)
    print("## Peak RSS of `bioseqnn predict` (LSTM hidden 32, DNA length 100)")
    print("| sequences | FASTA MB | peak RSS MiB | seconds |")
    print("|---:|---:|---:|---:|")
    results = []
    for n in sizes:
        fasta = tmp / f"predict{n}.fa"
        size = write_records(fasta, n, 100, seed=n)
        run = run_cli(
            [
                "predict",
                str(model),
                str(fasta),
                "-o",
                str(tmp / "out.tsv"),
                "--device",
                "cpu",
                "--quiet",
                *extra,
            ]
        )
        fasta.unlink()
        status = "" if run.code == 0 else f" (exit {run.code}: {run.stderr.strip()[-200:]})"
        print(
            f"| {n:,} | {size / 1e6:.0f} | {run.peak_mib:.0f}{status} | {run.seconds:.1f} |",
            flush=True,
        )
        results.append((n, run))
    if len(results) > 1:
        low, high = results[0][1].peak_mib, results[-1][1].peak_mib
        print(f"growth from {sizes[0]:,} to {sizes[-1]:,} sequences: {high - low:+.0f} MiB")
    return results


def bench_train(mbs: list[float], tmp: Path, extra: list[str]) -> list[tuple[float, Run]]:
    length = 1000
    print(f"## Peak RSS of `bioseqnn train` (one epoch, CNN 8 channels, DNA length {length})")
    print("| FASTA MB | records | peak RSS MiB | seconds |")
    print("|---:|---:|---:|---:|")
    results = []
    for mb in mbs:
        n = max(64, int(mb * 1e6 / (length * 61 / 60 + 12)))
        fasta, labels = tmp / "train.fa", tmp / "train.csv"
        size = write_records(fasta, n, length, seed=7, labels=labels)
        run = run_cli(
            [
                "train",
                str(fasta),
                str(labels),
                "-o",
                str(tmp / "big.bsnn"),
                "--arch",
                "cnn",
                "--channels",
                "8",
                "--kernel-sizes",
                "9",
                "--dilations",
                "1",
                "--pool-sizes",
                "4",
                "--epochs",
                "1",
                "--batch-size",
                "256",
                "--device",
                "cpu",
                "--quiet",
                *extra,
            ]
        )
        status = "" if run.code == 0 else f" (exit {run.code}: {run.stderr.strip()[-200:]})"
        print(
            f"| {size / 1e6:.0f} | {n:,} | {run.peak_mib:.0f}{status} | {run.seconds:.0f} |",
            flush=True,
        )
        results.append((size / 1e6, run))
        fasta.unlink()
        labels.unlink()
    if len(results) > 1:
        (x0, r0), (x1, r1) = results[0], results[-1]
        slope = (r1.peak_mib - r0.peak_mib) / (x1 - x0)
        at_gb = r1.peak_mib + slope * (1000 - x1)
        print(
            f"slope {slope:.2f} MiB per MB of FASTA; a straight line through the measured "
            f"points gives about {at_gb / 1024:.1f} GiB for a 1 GB FASTA"
        )
    return results


def write_with_long_record(fasta: Path, n: int, short: int, long: int, seed: int = 7) -> None:
    """``n`` random DNA records of ``short`` with one of ``long`` in the middle."""
    rng = np.random.default_rng(seed)
    with open(fasta, "wb") as fh:
        for i in range(n):
            fh.write(b">s%d\n" % i + LETTERS[rng.integers(0, 4, short)].tobytes() + b"\n")
            if i == n // 2:
                fh.write(b">long\n" + LETTERS[rng.integers(0, 4, long)].tobytes() + b"\n")


def bench_long(longs: list[int], tmp: Path, extra: list[str]) -> list[tuple[int, Run, Run]]:
    train_fa, model = tmp / "lm_train.fa", tmp / "lm.bsnn"
    write_records(train_fa, 300, 50, seed=3)
    run = run_cli(
        [
            "train",
            str(train_fa),
            "--task",
            "language-model",
            "--arch",
            "gru",
            "--hidden-size",
            "8",
            "--epochs",
            "1",
            "-o",
            str(model),
            "--device",
            "cpu",
            "--quiet",
        ]
    )
    if run.code != 0:
        raise SystemExit(f"training the language model failed:\n{run.stderr}")
    print("## Peak RSS with one long record among 3,000 of 50 nt (DNA language model, GRU 8)")
    print("| longest record | evaluate MiB | seconds | predict MiB | seconds |")
    print("|---:|---:|---:|---:|---:|")
    results = []
    for long in longs:
        fasta = tmp / "long.fa"
        write_with_long_record(fasta, 3_000, 50, long)
        ev = run_cli(
            [
                "evaluate",
                str(model),
                str(fasta),
                "-o",
                str(tmp / "ev.json"),
                "--device",
                "cpu",
                "--quiet",
                *extra,
            ]
        )
        pr = run_cli(
            [
                "predict",
                str(model),
                str(fasta),
                "-o",
                str(tmp / "out.tsv"),
                "--device",
                "cpu",
                "--quiet",
                *extra,
            ]
        )
        cells = []
        for r in (ev, pr):
            status = "" if r.code == 0 else f" (exit {r.code}: {r.stderr.strip()[-200:]})"
            cells.append(f"{r.peak_mib:.0f}{status} | {r.seconds:.1f}")
        print(f"| {long:,} | {' | '.join(cells)} |", flush=True)
        results.append((long, ev, pr))
        fasta.unlink()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/bench_memory.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("what", choices=("predict", "train", "long"))
    parser.add_argument(
        "--sizes", default="10000,1000000", help="predict: numbers of sequences, comma-separated"
    )
    parser.add_argument("--mb", default="50,250", help="train: FASTA sizes in MB")
    parser.add_argument(
        "--long",
        default="300000,3000000",
        help="long: lengths of the one long record, comma-separated",
    )
    parser.add_argument("--tmp", default=None, help="folder for the generated files")
    args, extra = parser.parse_known_args(argv)
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        if args.what == "predict":
            bench_predict([int(x) for x in args.sizes.split(",")], Path(tmp), extra)
        elif args.what == "train":
            bench_train([float(x) for x in args.mb.split(",")], Path(tmp), extra)
        else:
            bench_long([int(x) for x in args.long.split(",")], Path(tmp), extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
