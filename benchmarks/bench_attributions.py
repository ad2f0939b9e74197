"""Attribution throughput (sequences per second) per method on CPU, and peak memory of
``bioseqnn explain`` on one long sequence.

    python benchmarks/bench_attributions.py                   # 200 x 200 nt, 100 kb
    python benchmarks/bench_attributions.py --n 500 --length 500 --long 1000000

Models are trained for one epoch on random DNA with the real API (the weights do not
change the cost): a CNN (two convolutions, 64 channels, kernels 9 and 5) and a GRU
(hidden 32). Throughput is measured in-process with :func:`bioseqnn.ops.explain.explain_bundle`
(the sequences batched by 256, after one warm-up call); deeplift-shap uses 10 dinucleotide
shuffles per sequence and integrated-gradients 50 path points against one uniform reference
(the defaults). The peak memory is the ``ru_maxrss`` of a real ``bioseqnn explain``
subprocess (see bench_memory.py) on a FASTA holding one record of ``--long`` residues.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_memory import run_cli, write_records  # noqa: E402

METHODS = ("saliency", "grad-input", "ism", "integrated-gradients", "deeplift-shap")


def cpu_name() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def train_model(tmp: Path, arch: str) -> Path:
    from bioseqnn.api import train
    from bioseqnn.config import RunConfig

    fasta, labels = tmp / "train.fa", tmp / "train.csv"
    if not fasta.exists():
        write_records(fasta, 256, 200, seed=1, labels=labels)
    cfg = RunConfig()
    cfg.model.arch = arch
    if arch == "cnn":
        cfg.model.channels, cfg.model.kernel_sizes = [64, 64], [9, 5]
        cfg.model.dilations, cfg.model.pool_sizes = [1, 1], [1, 1]
    else:
        cfg.model.hidden_size = 32
    cfg.training.epochs, cfg.training.device = 1, "cpu"
    out = tmp / f"{arch}.bsnn"
    with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
        train(fasta, labels, out, cfg)
    return out


def throughput(model: Path, fasta: Path, method: str) -> float:
    from bioseqnn.bundle import load_bundle
    from bioseqnn.data.reading import read_inputs
    from bioseqnn.ops.explain import explain_bundle

    bundle = load_bundle(model)
    data, _, _ = read_inputs(fasta, bundle.input, "error")
    explain_bundle(bundle, data.subset(np.arange(8)), method)  # warm-up
    start = time.perf_counter()
    explain_bundle(bundle, data, method)
    return len(data) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/bench_attributions.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--n", type=int, default=200, help="sequences timed")
    parser.add_argument("--length", type=int, default=200, help="their length")
    parser.add_argument(
        "--long", type=int, default=100_000, help="length of the record for the peak memory"
    )
    args = parser.parse_args(argv)
    import torch

    print(f"CPU: {cpu_name()}; torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    with tempfile.TemporaryDirectory(prefix="bioseqnn-bench-") as name:
        tmp = Path(name)
        fasta = tmp / "timed.fa"
        write_records(fasta, args.n, args.length, seed=2)
        long_fa = tmp / "long.fa"
        write_records(long_fa, 1, args.long, seed=3)
        print(f"\nThroughput, {args.n} sequences of {args.length} nt (sequences/second):\n")
        print("| method | cnn | gru |\n|---|---:|---:|")
        models = {arch: train_model(tmp, arch) for arch in ("cnn", "gru")}
        for method in METHODS:
            cells = []
            for model in models.values():
                cells.append(f"{throughput(model, fasta, method):.1f}")
            print(f"| {method} | {' | '.join(cells)} |", flush=True)
        print(f"\nPeak memory of `bioseqnn explain` (cnn) on one record of {args.long:,} nt:\n")
        print("| method | seconds | peak RSS (MiB) |\n|---|---:|---:|")
        for method in METHODS:
            if method == "ism" and args.long > 20_000:
                continue  # 3 x L mutants of length L: quadratic work, not a memory figure
            run = run_cli(
                [
                    "explain",
                    str(models["cnn"]),
                    str(long_fa),
                    "--method",
                    method,
                    "-o",
                    str(tmp / "out.tsv"),
                    "--device",
                    "cpu",
                ]
            )
            if run.code != 0:
                print(f"| {method} | failed ({run.stderr.strip()[-200:]}) | |")
                continue
            print(f"| {method} | {run.seconds:.1f} | {run.peak_mib:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
