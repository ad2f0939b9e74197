"""Benchmarks of the real code paths, on the machine they run on.

    python benchmarks/bench.py            # full run, about 5 to 10 minutes on 2 cores
    python benchmarks/bench.py --quick    # about 2 minutes: fewer and smaller runs
    python benchmarks/bench.py --only train --only varlen

Not part of the test suite: timings depend on the machine and on whatever else runs on
it (the load average is printed). Every figure is the median of several timed runs after
a warm-up run. What is measured:

- parse: FASTA -> uint8 codes, the functions ``train`` uses (io.sniff.read_sequences and
  data.reading.read_encoded), plain and gzip, in MB of FASTA text per second;
- train: sequences per second of ``engine.train.fit`` (batching, collate, one-hot, forward,
  backward, optimiser step) for each architecture at lengths 200 and 1000, batch 64,
  hidden 128, one layer, float32; recurrent rows also with ``fast_cpu = False``
  (torch's nn.LSTM/nn.GRU, flush-denormal on) for comparison;
- threads: training sequences per second with one thread and with two (the default:
  small steps single-threaded, see runtime.SMALL_STEP) for every architecture at
  lengths 21, 200 and 1000, on a quiet machine and beside one busy process;
- varlen: lengths uniform in 100-1000 (LSTM), with the length bucketing of
  ``data.batches.batch_indices`` and with plain shuffled batches padded to their longest;
- predict: sequences per second of ``engine.predict.predict_rows`` from a FASTA file, beside
  ONNX Runtime running the model ``bioseqnn export`` wrote (same reader; needs the
  ``export`` extra);
- rss: peak resident memory of ``bioseqnn predict`` (a subprocess) on 10^4 and 10^6
  sequences (10^5 with --quick);
- startup: wall time of the commands that only describe (help, --version, config,
  info: no torch) and of ``bioseqnn predict`` on one sequence with a small model
  (interpreter start, imports, model load, first prediction);
- generate: residues per second of ``lm.sample`` (what ``bioseqnn generate`` runs), 64
  samples of exactly 200 and 1000 residues, an LSTM (its state carried step to step) and a
  transformer (its keys and values cached, each step attending to the ones before), width 128;
- series: numeric series tables (one row per time step, 6 channels): parse
  (data.read_inputs) in rows/s and MB/s, plain and gzip; prediction throughput
  (engine.predict.predict_rows from a table) and peak RSS of ``bioseqnn predict`` on 10^3 and
  10^5 series of 100 steps (10^4 with --quick);
- structure: RNA folding for ``--structure`` (structure.fold_codes, ViennaRNA) in
  sequences per second at lengths 100 and 300, mfe and bpp, in this process and in a
  pool of worker processes (one per core); skipped without ViennaRNA;
- variants: ``bioseqnn variants`` (a subprocess: start-up, reading, windows, batched
  prediction, writing) on 10^4 and 10^5 variants (10^4 only with --quick; 90% SNVs, 10%
  indels) on a random 2 x 5 Mb genome, a CNN in 1000- and 200-base windows: variants per
  second and peak RSS, TSV and bgzip VCF out; skipped without pysam.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gzip
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

# as the command line does before torch (and OpenMP) loads: see cli.process.OPENMP_SPIN
os.environ.setdefault("GOMP_SPINCOUNT", "1000")

import torch  # noqa: E402

from bioseqnn import runtime
from bioseqnn.alphabets import get_alphabet
from bioseqnn.config import RunConfig, TrainConfig
from bioseqnn.data.batches import batch_indices
from bioseqnn.data.reading import read_encoded
from bioseqnn.data.sets import SequenceSet
from bioseqnn.encoding import pad_codes
from bioseqnn.io.sniff import read_sequences
from bioseqnn.models import REGISTRY, ModelConfig, SequenceModel
from bioseqnn.models.inputs import OneHot
from bioseqnn.tasks import TaskSpec

runtime.tune()  # the command line's settings (flush-denormal) before any torch work

SECTIONS = (
    "parse",
    "train",
    "threads",
    "varlen",
    "predict",
    "rss",
    "startup",
    "generate",
    "series",
    "structure",
    "variants",
)

# Reference figures from the issue (2 cores, torch 2.13 CPU, float32, 2 threads, batch 64,
# hidden 128, one layer; sequences per second of training steps).
KERAS = {
    ("lstm", 200): 926,
    ("lstm", 1000): 184,
    ("gru", 200): 891,
    ("gru", 1000): 191,
    ("bilstm", 200): 753,
    ("bilstm", 1000): 156,
}
TORCH_FLUSH = {
    ("lstm", 200): 1085,
    ("lstm", 1000): 169,
    ("gru", 200): 780,
    ("gru", 1000): 128,
    ("bilstm", 200): 508,
    ("bilstm", 1000): 83,
}
TORCH_DEFAULT = {
    ("lstm", 200): 124,
    ("lstm", 1000): 22,
    ("gru", 200): 143,
    ("gru", 1000): 64,
    ("bilstm", 200): 59,
    ("bilstm", 1000): 12,
}

# name -> (arch, bidirectional)
MODELS = {
    "lstm": ("lstm", False),
    "gru": ("gru", False),
    "bilstm": ("lstm", True),
    "bigru": ("gru", True),
    "cnn": ("cnn", False),
    "cnn-lstm": ("cnn-lstm", False),
    "transformer": ("transformer", False),
}


@dataclass
class Settings:
    quick: bool
    threads: int
    out: Callable[[str], None]

    @property
    def reps(self) -> int:
        return 2 if self.quick else 3


def _say(text: str) -> None:
    print(text, flush=True)


def _load() -> str:
    try:
        one, five, fifteen = os.getloadavg()
        return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"
    except OSError:
        return "load average unknown"


# --------------------------------------------------------------------------- data


def random_codes(rng: np.random.Generator, lengths: np.ndarray) -> SequenceSet:
    """Random DNA (codes 1-4) with the given lengths and random binary targets."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    codes = rng.integers(1, 5, int(offsets[-1]), dtype=np.uint8)
    targets = rng.integers(0, 2, len(lengths)).astype(np.int64)
    return SequenceSet([f"s{i}" for i in range(len(lengths))], codes, offsets, targets)


def write_fasta(path: Path, lengths: np.ndarray, seed: int = 0, width: int = 60) -> int:
    """Random DNA records wrapped at ``width``; returns the file size in bytes."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    with open(path, "wb") as fh:
        for start in range(0, len(lengths), 20000):
            part = lengths[start : start + 20000]
            seq = letters[rng.integers(0, 4, int(part.sum()))].tobytes()
            out, pos = [], 0
            for k, n in enumerate(part.tolist()):
                s = seq[pos : pos + n]
                pos += n
                out.append(b">seq%d\n" % (start + k))
                out.extend(s[i : i + width] + b"\n" for i in range(0, n, width))
            fh.write(b"".join(out))
    return path.stat().st_size


# --------------------------------------------------------------------------- timing


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def timed(fn: Callable[[], Any], reps: int, warmup: int = 1) -> float:
    """Median wall seconds of ``fn`` over ``reps`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return _median(times)


def fit_epoch_seconds(
    model: SequenceModel,
    data: SequenceSet,
    settings: Settings,
    batch_size: int = 64,
) -> float:
    """Median seconds per epoch of engine.train.fit (after one warm-up epoch)."""
    from bioseqnn.engine.train import fit

    cfg = TrainConfig(
        epochs=1 + settings.reps,
        batch_size=batch_size,
        val_fraction=0.0,
        patience=0,
        monitor="train_loss",  # no validation data here
        seed=0,
        device="cpu",
        threads=settings.threads,
    )
    task = TaskSpec("binary", ["y"], classes=["0", "1"])
    result = fit(model, task, OneHot(get_alphabet("dna")), data, None, cfg, torch.device("cpu"))
    elapsed = [r["elapsed_s"] for r in result.history]
    per_epoch = np.diff([0.0, *elapsed])[1:]
    return _median(list(per_epoch))


def build_model(name: str, length: int) -> SequenceModel:
    arch, bidirectional = MODELS[name]
    config = ModelConfig(
        arch=arch,
        hidden_size=128,
        layers=1,
        bidirectional=bidirectional,
        max_length=max(2048, length),
    )
    torch.manual_seed(0)
    return SequenceModel(config, 4, 1)


# --------------------------------------------------------------------------- sections


def bench_parse(settings: Settings, tmp: Path) -> None:
    settings.out("\n## FASTA parse + encode (io.sniff.read_sequences -> data.reading.read_encoded)")
    n = 20_000 if settings.quick else 100_000
    rng = np.random.default_rng(1)
    lengths = rng.integers(500, 1501, n)
    plain = tmp / "parse.fa"
    size = write_fasta(plain, lengths)
    packed = tmp / "parse.fa.gz"
    with open(plain, "rb") as src, gzip.open(packed, "wb", compresslevel=1) as dst:
        shutil.copyfileobj(src, dst, 1 << 22)

    def run(path: Path) -> None:
        read_encoded(read_sequences(path), str(path), "dna", "error")

    # as train reads its inputs: with glibc keeping freed memory for the next chunk
    runtime.tune_malloc_for_training()

    settings.out(f"{n} records of 500-1500 nt, 60 per line, {size / 1e6:.0f} MB of text")
    settings.out("| input | MB/s | without C code | target |")
    settings.out("|---|---:|---:|---:|")
    for label, path in (("plain", plain), ("gzip", packed)):
        seconds = timed(functools.partial(run, path), settings.reps)
        # the block cutter's Python form, as an install without a C compiler runs it
        with mock.patch.dict(os.environ, {"BIOSEQNN_NATIVE": "0"}):
            python = timed(functools.partial(run, path), settings.reps)
        target = 300 if label == "plain" else 200
        settings.out(
            f"| {label} | {size / 1e6 / seconds:.0f} | {size / 1e6 / python:.0f} | {target} |"
        )


def bench_train(settings: Settings, tmp: Path) -> None:
    settings.out(
        "\n## Training throughput (engine.train.fit, batch 64, hidden 128, one layer; sequences/s)"
    )
    names = ["lstm", "gru", "bilstm", "cnn", "cnn-lstm", "transformer"]
    settings.out(
        "| model | length | bioseqnn | without C kernels | torch modules | "
        "Keras 3 ref. | PyTorch + flush-denormal ref. | PyTorch default ref. | "
        "vs Keras |"
    )
    settings.out("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in names:
        arch = MODELS[name][0]
        if arch not in REGISTRY:
            settings.out(f"| {name} | - | not registered (skipped) | | | | | | |")
            continue
        for length in (200, 1000):
            n = 64 * (2 if settings.quick else 4)
            data = random_codes(np.random.default_rng(length), np.full(n, length))
            model = build_model(name, length)
            ours = n / fit_epoch_seconds(model, data, settings)
            plain = fallback = ""
            if arch in ("lstm", "gru"):
                # the same speed path with the compiled kernels switched off (native.py)
                with mock.patch.dict(os.environ, {"BIOSEQNN_NATIVE": "0"}):
                    model = build_model(name, length)
                    fallback = f"{n / fit_epoch_seconds(model, data, settings):.0f}"
                model = build_model(name, length)
                model.backbone.fast_cpu = False  # type: ignore[assignment]
                plain = f"{n / fit_epoch_seconds(model, data, settings):.0f}"
            key = (name, length)
            keras = KERAS.get(key)
            ratio = f"{ours / keras:.2f}x" if keras else ""
            settings.out(
                f"| {name} | {length} | {ours:.0f} | {fallback} | {plain} | {keras or ''} | "
                f"{TORCH_FLUSH.get(key, '')} | {TORCH_DEFAULT.get(key, '')} | {ratio} |"
            )


def _padded_positions(batches: list[np.ndarray], lengths: np.ndarray) -> int:
    return int(sum(len(b) * lengths[b].max() for b in batches))


def _shuffled_batches(
    lengths: np.ndarray,
    batch_size: int,
    rng: np.random.Generator | None = None,
    window: int = 50,
) -> list[np.ndarray]:
    """Batches without length bucketing: a plain shuffle, cut into batches."""
    order = (rng or np.random.default_rng(0)).permutation(len(lengths))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


THREAD_LENGTHS = {21: 4096, 200: 1024, 1000: 256}
"""Lengths of the threads section, and the sequences each epoch trains on."""


BUSY = "import os\nparent = os.getppid()\nwhile os.getppid() == parent: pass"
"""The busy neighbour of the threads section: a loop that ends with the benchmark (a
plain ``while True: pass`` outlived a benchmark stopped by SIGTERM)."""

THREAD_ROUNDS = 2
"""Rounds of the threads section, one thread then two, then two then one: the median of
each. One round's ratio moved by a fifth on a shared VM with the same code both ways."""


def _thread_rounds(settings: Settings) -> int:
    return 1 if settings.quick else THREAD_ROUNDS


def _thread_rates(name: str, length: int, settings: Settings) -> tuple[float, float]:
    """Training sequences/s of ``name`` at ``length`` on one thread and on two."""
    n = THREAD_LENGTHS[length] // (4 if name == "transformer" and length == 1000 else 1)
    n //= 2 if settings.quick else 1
    data = random_codes(np.random.default_rng(0), np.full(n, length))
    rates: dict[int, list[float]] = {1: [], 2: []}
    for r in range(_thread_rounds(settings)):
        for threads in (1, 2) if r % 2 == 0 else (2, 1):
            runtime.configure_threads(threads)
            seconds = fit_epoch_seconds(build_model(name, length), data, settings)
            rates[threads].append(n / seconds)
    runtime.configure_threads(settings.threads)
    return _median(rates[1]), _median(rates[2])


def bench_threads(settings: Settings, tmp: Path) -> None:
    settings.out(
        "\n## Threads (engine.train.fit sequences/s, batch 64, hidden 128; one thread and two, "
        f"quiet and beside one busy process; median of {_thread_rounds(settings)} alternating "
        "rounds)"
    )
    if (os.cpu_count() or 1) < 2:
        settings.out("one CPU: skipped")
        return
    settings.out(
        "| model | length | quiet, 1 thread | quiet, 2 | 2 / 1 | "
        "busy neighbour, 1 thread | busy neighbour, 2 | 2 / 1 |"
    )
    settings.out("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in ("lstm", "gru", "bilstm", "cnn", "cnn-lstm", "transformer"):
        for length in THREAD_LENGTHS:
            quiet = _thread_rates(name, length, settings)
            hog = subprocess.Popen([sys.executable, "-c", BUSY])
            try:
                busy = _thread_rates(name, length, settings)
            finally:
                hog.kill()
                hog.wait()
            settings.out(
                f"| {name} | {length} | {quiet[0]:.0f} | {quiet[1]:.0f} | "
                f"{quiet[1] / quiet[0]:.2f} | {busy[0]:.0f} | {busy[1]:.0f} | "
                f"{busy[1] / busy[0]:.2f} |"
            )


def bench_varlen(settings: Settings, tmp: Path) -> None:
    settings.out("\n## Variable lengths, uniform 100-1000 (LSTM, engine.train.fit; sequences/s)")
    n = 64 * (8 if settings.quick else 16)
    rng = np.random.default_rng(7)
    lengths = rng.integers(100, 1001, n)
    data = random_codes(rng, lengths)
    real = int(lengths.sum())
    plain_b = _shuffled_batches(lengths, 64, np.random.default_rng([0, 2, 1]))
    bucket_b = batch_indices(lengths, 64, np.random.default_rng([0, 2, 1]))
    padded_plain = _padded_positions(plain_b, lengths)
    padded_bucket = _padded_positions(bucket_b, lengths)
    with mock.patch("bioseqnn.engine.train.batch_indices", _shuffled_batches):
        plain = n / fit_epoch_seconds(build_model("lstm", 1000), data, settings)
    bucketed = n / fit_epoch_seconds(build_model("lstm", 1000), data, settings)
    ideal = padded_plain / padded_bucket
    settings.out(
        f"{n} sequences; padding is {1 - real / padded_plain:.1%} of the positions "
        f"without bucketing (no padding at all would allow "
        f"{padded_plain / real:.2f}x), {1 - real / padded_bucket:.1%} with"
    )
    settings.out("| batches | sequences/s | reference |")
    settings.out("|---|---:|---:|")
    settings.out(f"| shuffled, padded to the longest | {plain:.0f} | 167 |")
    settings.out(f"| length-bucketed (data.batches.batch_indices) | {bucketed:.0f} | 305 |")
    settings.out(
        f"speed-up {bucketed / plain:.2f}x; ideal for these batches (positions "
        f"processed) "
        f"{ideal:.2f}x; reached {bucketed / plain / ideal:.0%} of the ideal "
        "(target: at least 90%)"
    )


def _train_quietly(*args: Any, **kwargs: Any) -> None:
    """bioseqnn.api.train with its log (stderr) sent to /dev/null."""
    from bioseqnn.api import train

    with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
        train(*args, **kwargs)


def _small_model(tmp: Path, hidden: int, length: int, arch: str = "lstm") -> Path:
    """Train a small model file (an LSTM by default; one epoch on random data) with the
    real API; ``arch`` "auto" is train's default network, all its defaults."""

    rng = np.random.default_rng(3)
    fasta = tmp / f"small{hidden}.fa"
    write_fasta(fasta, np.full(128, length), seed=3)
    labels = tmp / f"small{hidden}.csv"
    labels.write_text(
        "id,y\n"
        + "".join(f"seq{i},{'ab'[int(v)]}\n" for i, v in enumerate(rng.integers(0, 2, 128)))
    )
    cfg = RunConfig()
    if arch != "auto":
        cfg.model.arch, cfg.model.hidden_size = arch, hidden
    cfg.training.epochs, cfg.training.device = 1, "cpu"
    out = tmp / f"small{hidden}_{arch}.bsnn"
    _train_quietly(fasta, labels, out, cfg)
    return out


def _onnx_session(model: Path, tmp: Path, threads: int) -> Any:
    """An ONNX Runtime session of ``model`` exported by bioseqnn (None without the
    export extra)."""
    try:
        import onnxruntime as ort

        from bioseqnn.ops.export import export
    except ImportError:
        return None
    path = tmp / "predict.onnx"
    export(model, path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _onnx_predict(session: Any, path: Path, batch: int = 256) -> None:
    """What a user of the exported model runs: the same reader and encoder, a one-hot
    batch, the session."""
    data, alphabet, _ = read_encoded(read_sequences(path), str(path), "dna", "error")
    table = alphabet.onehot_table()
    for start in range(0, len(data), batch):
        index = np.arange(start, min(start + batch, len(data)))
        codes, lengths = pad_codes(data.codes, data.offsets, index)
        session.run(
            None, {"onehot": table[codes].astype(np.float32), "lengths": lengths.astype(np.int64)}
        )


def bench_predict(settings: Settings, tmp: Path) -> None:
    from bioseqnn.bundle import load_bundle
    from bioseqnn.engine.predict import predict_rows

    settings.out("\n## Prediction throughput (from FASTA, LSTM hidden 128, batch 256; sequences/s)")
    model = _small_model(tmp, 128, 200)
    bundle = load_bundle(model)
    session = _onnx_session(model, tmp, torch.get_num_threads())
    settings.out(
        "| length | bioseqnn (engine.predict.predict_rows) | ONNX Runtime, the exported model |"
    )
    settings.out("|---:|---:|---:|")
    for length in (200, 1000):
        n = (1000 if settings.quick else 4000) * 200 // length
        fasta = tmp / f"pred{length}.fa"
        write_fasta(fasta, np.full(n, length), seed=length)

        def run(path: Path = fasta) -> None:
            for _ in predict_rows(bundle, read_sequences(path), str(path)):
                pass

        ours = n / timed(run, settings.reps)
        onnx = "not installed (pip install '.[export]')"
        if session is not None:
            seconds = timed(functools.partial(_onnx_predict, session, fasta), settings.reps)
            onnx = f"{n / seconds:.0f}"
        settings.out(f"| {length} | {ours:.0f} | {onnx} |")


_MEASURE = """
import resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)
"""


def _cli(args: list[str], env: dict[str, str] | None = None) -> tuple[float, int, int]:
    """Run ``bioseqnn`` in a subprocess: (wall seconds, peak RSS in MiB, exit code).

    A small intermediate interpreter starts the command and reads its peak RSS: Linux
    counts the pre-exec image of a forked child in ru_maxrss, so forking it straight
    from this (large) process would report this process's size.
    """
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, sys.executable, "-m", "bioseqnn", *args],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    wall, rss_kib, code = proc.stdout.split()
    return float(wall), int(rss_kib) // 1024, int(code)


def bench_rss(settings: Settings, tmp: Path) -> None:
    settings.out("\n## Peak memory of `bioseqnn predict` (subprocess; LSTM hidden 32, length 100)")
    model = _small_model(tmp, 32, 100)
    settings.out("| sequences | FASTA MB | peak RSS MiB | seconds |")
    settings.out("|---:|---:|---:|---:|")
    for n in (10_000, 100_000 if settings.quick else 1_000_000):
        fasta = tmp / f"rss{n}.fa"
        size = write_fasta(fasta, np.full(n, 100), seed=n)
        wall, rss, code = _cli(
            ["predict", str(model), str(fasta), "-o", str(tmp / "rss.tsv"), "--quiet"]
        )
        status = "" if code == 0 else f" (exit {code})"
        settings.out(f"| {n:,} | {size / 1e6:.0f} | {rss}{status} | {wall:.1f} |")
        fasta.unlink()


def bench_startup(settings: Settings, tmp: Path) -> None:
    settings.out("\n## Start-up (`bioseqnn` in a subprocess; median wall seconds after a cold run)")
    model = _small_model(tmp, 32, 100)
    default = _small_model(tmp, 128, 100, "auto")
    fasta = tmp / "one.fa"
    write_fasta(fasta, np.array([100]), seed=5)
    # a first training run: 100 records, one epoch of the default model
    small = tmp / "small.fa"
    write_fasta(small, np.full(100, 100), seed=6)
    (tmp / "small.csv").write_text("id,y\n" + "".join(f"seq{i},{i % 2}\n" for i in range(100)))
    # as in an installed copy, the package's modules are compiled once (the cold run) and
    # the bytecode reused, even where PYTHONDONTWRITEBYTECODE is set for this process
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    through_torch = {**env, "BIOSEQNN_LIGHT": "0"}
    predictions = [
        row
        for name, path in (("LSTM hidden 32", model), ("default network, cnn-gru", default))
        for row in (
            (f"predict one sequence ({name})", ["predict", str(path), str(fasta), "-q"], 1.5, env),
            (
                "the same through torch (BIOSEQNN_LIGHT=0)",
                ["predict", str(path), str(fasta), "-q"],
                None,
                through_torch,
            ),
        )
    ]
    settings.out("| command | seconds | target |")
    settings.out("|---|---:|---:|")
    for label, args, target, environ in (
        ("--help", ["--help"], 0.3, env),
        ("--version", ["--version"], 0.3, env),
        ("train --help", ["train", "--help"], 0.3, env),
        ("config", ["config"], 0.3, env),
        ("info (a small LSTM)", ["info", str(model)], 0.3, env),
        *predictions,
        (
            "train 100 x 100 nt, 1 epoch (default model)",
            ["train", str(small), str(tmp / "small.csv"), "-o", str(tmp / "s.bsnn"), "-q"]
            + ["--epochs", "1"],
            None,
            env,
        ),
    ):
        done = [_cli(args, environ) for _ in range(1 + settings.reps)]
        runs = [wall for wall, _, _ in done]
        codes = sorted({code for _, _, code in done} - {0})
        status = f" (exit {codes[0]})" if codes else ""
        goal = "" if target is None else target
        settings.out(
            f"| `{label}` | {_median(runs[1:]):.2f} (cold {runs[0]:.2f}){status} | {goal} |"
        )


def _language_model(tmp: Path, arch: str) -> Path:
    """A small language model file (one epoch on random DNA), trained with the real API."""

    fasta = tmp / "lm.fa"
    write_fasta(fasta, np.full(128, 200), seed=5)
    cfg = RunConfig()
    cfg.model.arch, cfg.model.hidden_size, cfg.model.d_model = arch, 128, 128
    cfg.model.ff_size, cfg.model.layers = 256, 1 if arch == "lstm" else 2
    cfg.training.epochs, cfg.training.device = 1, "cpu"
    out = tmp / f"lm_{arch}.bsnn"
    _train_quietly(fasta, None, out, cfg, task="language-model")
    return out


def bench_generate(settings: Settings, tmp: Path) -> None:
    from bioseqnn.bundle import load_bundle
    from bioseqnn.variants.lm import Sampling, sample

    settings.out("\n## Generation (lm.sample, 64 samples at once, width 128; residues/s)")
    settings.out("| model | 200 residues | 1000 residues |")
    settings.out("|---|---:|---:|")
    for arch, label in (
        ("lstm", "LSTM, 1 layer (state carried)"),
        ("transformer", "transformer, 2 layers (keys and values cached)"),
    ):
        bundle = load_bundle(_language_model(tmp, arch))
        cells = []
        for length in (200, 1000):
            if settings.quick and arch == "transformer" and length == 1000:
                cells.append("-")
                continue
            how = Sampling(min_length=length, max_length=length)

            def run(how: Sampling = how, bundle: Any = bundle) -> None:
                for _ in sample(bundle, 64, sampling=how, seed=1, batch_size=64):
                    pass

            cells.append(f"{64 * length / timed(run, settings.reps):.0f}")
        settings.out(f"| {label} | {' | '.join(cells)} |")


def bench_structure(settings: Settings, tmp: Path) -> None:
    try:
        import RNA
    except ImportError:
        settings.out(
            "\n## RNA folding: skipped (ViennaRNA is not installed: "
            "pip install 'bioseqnn[structure]')"
        )
        return
    from bioseqnn.structure import StructureInput, fold_codes

    cores = runtime.default_threads()
    settings.out(f"\n## RNA folding for --structure (ViennaRNA {RNA.__version__}; sequences/s)")
    settings.out(f"| kind | length | 1 process | {cores} worker processes |")
    settings.out("|---|---:|---:|---:|")
    rng = np.random.default_rng(3)
    n = 64 if settings.quick else 256
    for kind in ("mfe", "bpp"):
        spec = StructureInput(get_alphabet("rna"), kind)
        for length in (100, 300):
            data = random_codes(rng, np.full(n, length))
            cells = []
            for workers in (1, cores):
                run = functools.partial(fold_codes, data.codes, data.offsets, spec, workers)
                seconds = timed(run, 1 if settings.quick else 2, warmup=0)
                cells.append(f"{n / seconds:.0f}")
            settings.out(f"| {kind} | {length} | {' | '.join(cells)} |")


def write_series(path: Path, n: int, length: int, channels: int = 6, seed: int = 0) -> int:
    """``n`` random series of ``length`` steps as a long TSV; returns its size in bytes."""
    rng = np.random.default_rng(seed)
    header = "id\t" + "\t".join(f"ch{j}" for j in range(channels)) + "\n"
    with open(path, "w") as fh:
        fh.write(header)
        for start in range(0, n, 1000):
            block = rng.standard_normal((min(1000, n - start) * length, channels))
            text = np.char.mod("%.5g", block)
            ids = np.repeat([f"s{i}" for i in range(start, start + len(block) // length)], length)
            fh.write(
                "".join(f"{i}\t{chr(9).join(row)}\n" for i, row in zip(ids, text, strict=True))
            )
    return path.stat().st_size


def _series_model(tmp: Path) -> Path:
    """An LSTM (hidden 128) on 6-channel series, one epoch on random series."""

    table = tmp / "series_train.tsv"
    write_series(table, 128, 100, seed=3)
    labels = tmp / "series_train.csv"
    labels.write_text("id,y\n" + "".join(f"s{i},{'ab'[i % 2]}\n" for i in range(128)))
    cfg = RunConfig()
    cfg.model.arch, cfg.model.hidden_size = "lstm", 128
    cfg.training.epochs, cfg.training.device = 1, "cpu"
    out = tmp / "series.bsnn"
    _train_quietly(table, labels, out, cfg)
    return out


def bench_series(settings: Settings, tmp: Path) -> None:
    from bioseqnn.bundle import load_bundle
    from bioseqnn.data.reading import read_inputs
    from bioseqnn.engine.inputs import open_model_input
    from bioseqnn.engine.predict import predict_rows

    rows = 200_000 if settings.quick else 1_000_000
    settings.out(
        f"\n## Numeric series tables ({rows:,} rows of 6 channels, series of 500 "
        "steps; data.read_inputs)"
    )
    table = tmp / "series.tsv"
    size = write_series(table, rows // 500, 500)
    gz = tmp / "series.tsv.gz"
    with open(table, "rb") as src, gzip.open(gz, "wb", compresslevel=6) as dst:
        shutil.copyfileobj(src, dst)
    settings.out("| input | MB | rows/s | MB/s |")
    settings.out("|---|---:|---:|---:|")
    for label, path in (("plain", table), ("gzip", gz)):

        def parse(path: Path = path) -> None:
            read_inputs(path, None, "error")

        seconds = timed(parse, settings.reps)
        settings.out(
            f"| {label} | {size / 1e6:.0f} | {rows / seconds:,.0f} | {size / 1e6 / seconds:.1f} |"
        )
    table.unlink()
    gz.unlink()
    model = _series_model(tmp)
    bundle = load_bundle(model)
    n = 1000 if settings.quick else 4000
    pred = tmp / "series_pred.tsv"
    write_series(pred, n, 200, seed=7)

    def run() -> None:
        for _ in predict_rows(bundle, open_model_input(bundle, pred), str(pred)):
            pass

    settings.out(
        f"\nprediction (predict_rows from a table, LSTM hidden 128, 200 steps): "
        f"{n / timed(run, settings.reps):.0f} series/s"
    )
    settings.out(
        "\n| series (100 steps) | table MB | peak RSS of bioseqnn predict, MiB | seconds |"
    )
    settings.out("|---:|---:|---:|---:|")
    for count in (1_000, 10_000 if settings.quick else 100_000):
        big = tmp / f"series_rss{count}.tsv"
        size = write_series(big, count, 100, seed=count)
        wall, rss, code = _cli(
            ["predict", str(model), str(big), "-o", str(tmp / "series_rss.tsv"), "--quiet"]
        )
        status = "" if code == 0 else f" (exit {code})"
        settings.out(f"| {count:,} | {size / 1e6:.0f} | {rss}{status} | {wall:.1f} |")
        big.unlink()


def write_genome_and_vcf(
    tmp: Path, n: int, chrom_length: int = 5_000_000, seed: int = 0
) -> tuple[Path, Path]:
    """A random genome of two chromosomes and a sorted VCF of ``n`` variants on it (90%
    SNVs, 5% deletions and 5% insertions of 1-10 bases; REF as in the genome)."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    fasta, vcf = tmp / "genome.fa", tmp / f"variants{n}.vcf"
    seqs = {f"chr{i + 1}": letters[rng.integers(0, 4, chrom_length)].tobytes() for i in range(2)}
    if not fasta.exists():
        with open(fasta, "wb") as fh:
            for name, seq in seqs.items():
                fh.write(b">" + name.encode() + b"\n")
                fh.writelines(seq[i : i + 60] + b"\n" for i in range(0, len(seq), 60))
    with open(vcf, "w") as fh:
        fh.write(
            "##fileformat=VCFv4.2\n"
            + "".join(f"##contig=<ID={c},length={chrom_length}>\n" for c in seqs)
            + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        )
        for k, chrom in enumerate(seqs):
            bases = seqs[chrom].decode()
            count = n // 2 + (n % 2 if k == 0 else 0)
            positions = np.sort(
                rng.choice(np.arange(1000, chrom_length - 1000), count, replace=False)
            )
            kinds = rng.random(count)
            sizes = rng.integers(1, 11, count)
            rows = []
            for p, kind, size in zip(positions.tolist(), kinds, sizes.tolist(), strict=True):
                if kind < 0.9:
                    ref = bases[p]
                    alt = "ACGT"[("ACGT".index(ref) + 1 + int(kind * 30) % 3) % 4]
                elif kind < 0.95:
                    ref, alt = bases[p : p + 1 + size], bases[p]
                else:
                    ref, alt = bases[p], bases[p] + "".join(rng.choice(list("ACGT"), size))
                rows.append(f"{chrom}\t{p + 1}\tv{p}\t{ref}\t{alt}\t.\tPASS\t.\n")
            fh.writelines(rows)
    return fasta, vcf


def _window_model(tmp: Path, width: int) -> Path:
    """A CNN (channels 32,32, kernels 9,5, pooling 4,1) trained one epoch on random
    sequences of ``width`` bases, with the real API."""

    rng = np.random.default_rng(7)
    fasta = tmp / f"windows{width}.fa"
    write_fasta(fasta, np.full(256, width), seed=7)
    labels = tmp / f"windows{width}.csv"
    labels.write_text(
        "id,y\n"
        + "".join(f"seq{i},{'ab'[int(v)]}\n" for i, v in enumerate(rng.integers(0, 2, 256)))
    )
    cfg = RunConfig()
    cfg.model.arch, cfg.model.channels, cfg.model.kernel_sizes = "cnn", [32, 32], [9, 5]
    cfg.model.dilations, cfg.model.pool_sizes = [1, 1], [4, 1]
    cfg.training.epochs, cfg.training.device = 1, "cpu"
    out = tmp / f"windows{width}.bsnn"
    _train_quietly(fasta, labels, out, cfg)
    return out


def bench_variants(settings: Settings, tmp: Path) -> None:
    try:
        import pysam  # noqa: F401
    except ImportError:
        settings.out(
            "\n## Variant effects: skipped (pysam is not installed: pip install 'bioseqnn[genome]')"
        )
        return
    settings.out(
        "\n## Variant effects (`bioseqnn variants`, a subprocess: start-up, VCF "
        "reading, windows, batched prediction, writing; CNN channels 32,32, kernels "
        "9,5, pooling 4,1; batch 256)"
    )
    model = _window_model(tmp, 1000)
    settings.out("| variants | window | output | variants/s | peak RSS MiB | seconds |")
    settings.out("|---:|---:|---|---:|---:|---:|")
    sizes = (10_000,) if settings.quick else (10_000, 100_000)
    runs = [
        (n, width, suffix)
        for n in sizes
        for width in (1000, 200)
        for suffix in ((".tsv", ".vcf.gz") if n == sizes[-1] and width == 1000 else (".tsv",))
    ]
    for n, width, suffix in runs:
        fasta, vcf = write_genome_and_vcf(tmp, n)
        out = tmp / f"effects{suffix}"
        wall, rss, code = _cli(
            [
                "variants",
                str(model),
                str(vcf),
                "--genome",
                str(fasta),
                "--window",
                str(width),
                "-o",
                str(out),
                "--quiet",
                "--threads",
                str(settings.threads),
            ]
        )
        status = "" if code == 0 else f" (exit {code})"
        settings.out(
            f"| {n:,} | {width} | {suffix[1:]} | {n / wall:.0f}{status} | {rss} | {wall:.1f} |"
        )


RUNNERS: dict[str, Callable[[Settings, Path], None]] = {
    "parse": bench_parse,
    "train": bench_train,
    "threads": bench_threads,
    "varlen": bench_varlen,
    "predict": bench_predict,
    "rss": bench_rss,
    "startup": bench_startup,
    "generate": bench_generate,
    "series": bench_series,
    "structure": bench_structure,
    "variants": bench_variants,
}


@contextlib.contextmanager
def _tempdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bioseqnn-bench-") as tmp:
        yield Path(tmp)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    flags = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        words = next((ln for ln in fh if ln.startswith("flags")), "").split()
        flags = ", ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in words)
    gpu = (
        torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else "none (CUDA not available; all figures are CPU)"
    )
    from bioseqnn.models import native

    return (
        f"{cpu} ({flags}); {runtime.default_threads()} cores available, "
        f"{torch.get_num_threads()} torch threads; torch {torch.__version__}; "
        f"Python {platform.python_version()}; compiled recurrent kernels: "
        f"{native.instruction_set()}; THP_MEM_ALLOC_ENABLE="
        f"{os.environ.get('THP_MEM_ALLOC_ENABLE', '')}; GPU: {gpu}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/bench.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="fewer and smaller runs")
    parser.add_argument(
        "--only", action="append", choices=SECTIONS, help="run only this section (repeatable)"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads (0 = the cores available)"
    )
    args = parser.parse_args(argv)
    threads = runtime.configure_threads(args.threads)
    settings = Settings(args.quick, threads, _say)
    settings.out(f"# bioseqnn benchmarks{' (--quick)' if args.quick else ''}")
    settings.out(machine())
    settings.out(f"{_load()} at the start")
    started = time.perf_counter()
    with _tempdir() as tmp:
        for name in args.only or SECTIONS:
            section_start = time.perf_counter()
            RUNNERS[name](settings, tmp)
            settings.out(f"({name}: {time.perf_counter() - section_start:.0f} s, {_load()})")
    settings.out(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
