"""Two checkouts of bioseqnn side by side: training throughput and end-to-end training
time, the two versions alternating in the same minutes.

This machine's speed moves from hour to hour, so a change is measured against the code
before it in one run: each round runs every row with the first checkout, then with the
second, and the table gives the median of the rounds and their ratio. Each measurement
is a fresh process whose ``PYTHONPATH`` is the checkout (build its kernels first:
``python setup.py build_ext --inplace`` in it).

- ``fit`` rows: sequences/s of ``engine.train.fit`` (the median epoch after a warm-up,
  as ``bench.py --only train``: batch 64, hidden 128, one layer, two threads unless
  ``--threads``), random DNA of one length.
- ``cli`` rows: wall seconds of ``bioseqnn train`` on the data of ``bench_keras.py``
  (6,400 x 200 nt, 3 epochs, hidden 128, ``--pooling last``), start-up included.

    python benchmarks/bench_ab.py /path/to/before /path/to/after --rounds 3 \\
        --fit lstm:200,bilstm:200 --cli bilstm
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import bench_keras  # noqa: E402  (beside this script: the rows and data of the Keras comparison)

FIT = r"""
import sys
sys.path.insert(0, sys.argv[1] + "/benchmarks")
import numpy as np
import bench
from bioseqnn.runtime import tune
tune()
name, length, threads = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
n = bench.THREAD_LENGTHS.get(length, 1024) * (2 if length <= 200 else 1)
settings = bench.Settings(quick=False, threads=threads, out=print)
data = bench.random_codes(np.random.default_rng(0), np.full(n, length))
print(n / bench.fit_epoch_seconds(bench.build_model(name, length), data, settings))
"""


def _env(checkout: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(checkout)}


def fit_rate(checkout: Path, name: str, length: int, threads: int) -> float:
    cmd = [sys.executable, "-c", FIT, str(checkout), name, str(length), str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(checkout))
    if done.returncode != 0:
        sys.exit(f"failed in {checkout}:\n{done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def cli_seconds(checkout: Path, name: str, data: tuple[Path, Path], out: Path) -> float:
    cmd = [sys.executable, "-m", "bioseqnn", "train", str(data[0]), str(data[1]), "-o"]
    cmd += [str(out), *bench_keras.ROWS[name], "--hidden-size", "128", "--pooling", "last"]
    cmd += ["--epochs", "3"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(checkout))
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed in {checkout}:\n{done.stderr[-2000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("before", type=Path, help="checkout of the code before the change")
    p.add_argument("after", type=Path, help="checkout of the code after it")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--fit", default="lstm:200,gru:200,bilstm:200,lstm:1000,gru:1000,bilstm:1000")
    p.add_argument("--cli", default="lstm,gru,bilstm", help="'' for none")
    args = p.parse_args(argv)
    fits = [(r.split(":")[0], int(r.split(":")[1])) for r in args.fit.split(",") if r]
    clis = [r for r in args.cli.split(",") if r]
    sides = (args.before.resolve(), args.after.resolve())
    print(f"before: {sides[0]}\nafter: {sides[1]}\n{args.rounds} rounds, {os.getloadavg()}")
    rates: dict[tuple[str, int], list[list[float]]] = {r: [[], []] for r in fits}
    walls: dict[str, list[list[float]]] = {r: [[], []] for r in clis}
    with tempfile.TemporaryDirectory() as tmp:
        data = None
        if clis:
            data = bench_keras.write_data(Path(tmp), bench_keras.N_TRAIN, 0, "train")
        for _ in range(args.rounds):
            for row in fits:
                for side, checkout in enumerate(sides):
                    rates[row][side].append(fit_rate(checkout, *row, args.threads))
            for name in clis:
                assert data is not None
                for side, checkout in enumerate(sides):
                    out = Path(tmp) / f"{name}{side}.bsnn"
                    walls[name][side].append(cli_seconds(checkout, name, data, out))
    if fits:
        print("\n| model, length | before (seq/s) | after (seq/s) | after / before |")
        print("|---|---:|---:|---:|")
        for (name, length), (old, new) in rates.items():
            a, b = statistics.median(old), statistics.median(new)
            print(f"| {name}, {length} | {a:.0f} | {b:.0f} | {b / a:.2f}x |")
        for (name, length), (old, new) in rates.items():
            pairs = ", ".join(f"{x:.0f}/{y:.0f}" for x, y in zip(old, new, strict=True))
            print(f"rounds, {name} {length} (before/after): {pairs}")
    if clis:
        print("\n| `bioseqnn train`, 3 epochs | before (s) | after (s) | before / after |")
        print("|---|---:|---:|---:|")
        for name, (old, new) in walls.items():
            a, b = statistics.median(old), statistics.median(new)
            print(f"| {name} | {a:.1f} | {b:.1f} | {a / b:.2f}x |")
        for name, (old, new) in walls.items():
            pairs = ", ".join(f"{x:.1f}/{y:.1f}" for x, y in zip(old, new, strict=True))
            print(f"rounds, {name} (before/after): {pairs}")
    print(f"\nload average at the end {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
