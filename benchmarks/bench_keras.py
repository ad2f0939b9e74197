"""bioseqnn beside Keras: the same network trained end to end, and prediction throughput.

    python benchmarks/bench_keras.py --keras-python /path/to/tf-env/bin/python
    python benchmarks/bench_keras.py --keras-python ... --only lstm --rounds 3

Keras is not a dependency of bioseqnn. Give the interpreter of an environment that has
TensorFlow and Keras 3 (``pip install "tensorflow-cpu==2.21.*"``); bioseqnn runs in this
interpreter.

- train: 6,400 DNA sequences of 200 nt (a planted motif marks the positives), 3 epochs,
  hidden 128, batch 64, 10% held out for validation, Adam(W) at 1e-3, dropout 0.2 before
  the head; the network a user would write in Keras (one-hot input, ``LSTM(128)`` /
  ``GRU(128)`` / ``Bidirectional(LSTM(128))``, ``Dense(1, sigmoid)``) against ``bioseqnn
  train --arch lstm|gru [--bidirectional] --pooling last``. Wall time of the whole
  command (start-up, reading the FASTA, training, writing the model), runs alternating
  between the two; ``without C kernels`` is bioseqnn with ``BIOSEQNN_NATIVE=0`` (what an
  install without a compiler gets).
- predict: sequences per second of each trained model on 10,000 sequences of 200 nt, in
  process after loading (bioseqnn: ``engine.predict.predict_rows`` from the FASTA, batch
  256; Keras: ``model.predict`` on the one-hot array, batch 256, reading and encoding
  the FASTA included).

``--avx2`` runs every process as on a CPU without AVX-512: bioseqnn's kernels
(``BIOSEQNN_ISA=avx2``), oneDNN in torch and TensorFlow (``ONEDNN_MAX_CPU_ISA=AVX2``) and
MKL (``MKL_ENABLE_INSTRUCTIONS=AVX2``) stop at AVX2.

Prints Markdown tables; the median of ``--rounds`` runs is shown.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MOTIF = "TATAAT"
N_TRAIN, N_PREDICT, LENGTH = 6400, 10_000, 200

KERAS_TRAIN = r"""
import sys, time
import numpy as np
import keras
from keras import layers

fasta, labels, out, kind = sys.argv[1:5]

def read_fasta(path):
    ids, seqs, seq = [], [], []
    for line in open(path):
        if line.startswith(">"):
            if seq:
                seqs.append("".join(seq))
            ids.append(line[1:].split()[0])
            seq = []
        else:
            seq.append(line.strip())
    seqs.append("".join(seq))
    return ids, seqs

ids, seqs = read_fasta(fasta)
table = dict(line.strip().split(",") for line in list(open(labels))[1:])
y = np.array([float(table[i]) for i in ids], dtype="float32")
lookup = np.zeros(256, dtype="int64")
for k, c in enumerate(b"ACGT"):
    lookup[c] = k
codes = lookup[np.frombuffer("".join(seqs).encode(), dtype="uint8")].reshape(len(seqs), -1)
x = np.eye(4, dtype="float32")[codes]
rnn = {"lstm": layers.LSTM(128), "gru": layers.GRU(128),
       "bilstm": layers.Bidirectional(layers.LSTM(128))}[kind]
model = keras.Sequential([keras.Input((x.shape[1], 4)), rnn, layers.Dropout(0.2),
                          layers.Dense(1, activation="sigmoid")])
model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy", metrics=["accuracy"])
model.fit(x, y, batch_size=64, epochs=3, validation_split=0.1, verbose=0)
model.save(out)
"""

KERAS_PREDICT = r"""
import sys, time
import numpy as np
import keras

model_path, fasta = sys.argv[1:3]
model = keras.models.load_model(model_path)
start = time.perf_counter()
seqs, seq = [], []
for line in open(fasta):
    if line.startswith(">"):
        if seq:
            seqs.append("".join(seq))
        seq = []
    else:
        seq.append(line.strip())
seqs.append("".join(seq))
lookup = np.zeros(256, dtype="int64")
for k, c in enumerate(b"ACGT"):
    lookup[c] = k
codes = lookup[np.frombuffer("".join(seqs).encode(), dtype="uint8")].reshape(len(seqs), -1)
x = np.eye(4, dtype="float32")[codes]
p = model.predict(x, batch_size=256, verbose=0)
print(len(p) / (time.perf_counter() - start))
"""

BIOSEQNN_PREDICT = r"""
import sys, time
from bioseqnn.bundle import load_bundle
from bioseqnn.engine.predict import predict_rows
from bioseqnn.io.sniff import read_sequences
from bioseqnn.runtime import tune

tune()
model_path, fasta = sys.argv[1:3]
bundle = load_bundle(model_path)
start = time.perf_counter()
n = sum(1 for _ in predict_rows(bundle, read_sequences(fasta), fasta, 256))
print(n / (time.perf_counter() - start))
"""

ROWS = {
    "lstm": ["--arch", "lstm"],
    "gru": ["--arch", "gru"],
    "bilstm": ["--arch", "lstm", "--bidirectional"],
}
NAMES = {"lstm": "LSTM", "gru": "GRU", "bilstm": "BiLSTM"}


def write_data(folder: Path, n: int, seed: int, name: str) -> tuple[Path, Path]:
    """n random DNA records of LENGTH nt; half carry MOTIF at a random place (label 1)."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    codes = letters[rng.integers(0, 4, size=(n, LENGTH))]
    y = rng.integers(0, 2, size=n)
    motif = np.frombuffer(MOTIF.encode(), dtype=np.uint8)
    for i in np.flatnonzero(y):
        at = rng.integers(0, LENGTH - len(motif))
        codes[i, at : at + len(motif)] = motif
    fasta, labels = folder / f"{name}.fa", folder / f"{name}.csv"
    with open(fasta, "w") as fh:
        for i in range(n):
            fh.write(f">s{i}\n{codes[i].tobytes().decode()}\n")
    labels.write_text("id,y\n" + "".join(f"s{i},{int(y[i])}\n" for i in range(n)))
    return fasta, labels


AVX2 = {"BIOSEQNN_ISA": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
"""What --avx2 sets in every process's environment."""


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env or os.environ)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return seconds


def measured(cmd: list[str]) -> float:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keras-python", required=True, help="python of an environment with Keras")
    p.add_argument("--only", default="lstm,gru,bilstm")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--records", type=int, default=N_TRAIN, help="training sequences")
    p.add_argument("--avx2", action="store_true", help="every process as on an AVX2 CPU")
    args = p.parse_args(argv)
    if args.avx2:
        os.environ.update(AVX2)
    kinds = args.only.split(",")
    versions = subprocess.run(
        [
            args.keras_python,
            "-c",
            "import keras, tensorflow as tf; print(keras.__version__, tf.__version__)",
        ],
        capture_output=True,
        text=True,
    ).stdout.split()
    import torch

    import bioseqnn
    from bioseqnn.kernels import instruction_set

    cpu = platform.processor()
    with open("/proc/cpuinfo") as info:
        cpu = next((x.split(":", 1)[1].strip() for x in info if x.startswith("model name")), cpu)
    print(
        f"{cpu}, {os.cpu_count()} cores; bioseqnn {bioseqnn.__version__} (kernels: "
        f"{instruction_set() or 'none'}), torch {torch.__version__}; Keras {versions[0]} on "
        f"TensorFlow {versions[1]}"
        + ("; every process limited to AVX2 (--avx2)" if args.avx2 else "")
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        fasta, labels = write_data(folder, args.records, 0, "train")
        new, _ = write_data(folder, N_PREDICT, 1, "new")
        train_rows, predict_rows = [], []
        for kind in kinds:
            times: dict[str, list[float]] = {"bioseqnn": [], "plain": [], "keras": []}
            speed: dict[str, list[float]] = {"bioseqnn": [], "keras": []}
            model, kmodel = folder / f"{kind}.bsnn", folder / f"{kind}.keras"
            base = [sys.executable, "-m", "bioseqnn", "train", str(fasta), str(labels), "-o"]
            flags = [*ROWS[kind], "--hidden-size", "128", "--pooling", "last", "--epochs", "3"]
            flags += ["--batch-size", "64", "--patience", "0", "--quiet"]
            plain_env = {**os.environ, "BIOSEQNN_NATIVE": "0"}
            for _ in range(args.rounds):
                times["bioseqnn"].append(timed([*base, str(model), *flags]))
                keras_cmd = [args.keras_python, "-c", KERAS_TRAIN, str(fasta), str(labels)]
                times["keras"].append(timed([*keras_cmd, str(kmodel), kind]))
                plain = folder / f"{kind}-plain.bsnn"
                times["plain"].append(timed([*base, str(plain), *flags], plain_env))
                speed["bioseqnn"].append(
                    measured([sys.executable, "-c", BIOSEQNN_PREDICT, str(model), str(new)])
                )
                speed["keras"].append(
                    measured([args.keras_python, "-c", KERAS_PREDICT, str(kmodel), str(new)])
                )
            med = {k: statistics.median(v) for k, v in times.items()}
            train_rows.append(
                f"| {NAMES[kind]} | {med['bioseqnn']:.1f} | {med['plain']:.1f} | "
                f"{med['keras']:.1f} | {med['keras'] / med['bioseqnn']:.2f}x | "
                f"{med['keras'] / med['plain']:.2f}x |"
            )
            fast = {k: statistics.median(v) for k, v in speed.items()}
            predict_rows.append(
                f"| {NAMES[kind]} | {fast['bioseqnn']:.0f} | {fast['keras']:.0f} | "
                f"{fast['bioseqnn'] / fast['keras']:.2f}x |"
            )
            print(f"{kind}: train {times}, predict {speed}", file=sys.stderr)
    print(
        f"\n## End to end: train, {args.records} x {LENGTH} nt, 3 epochs, hidden 128, batch 64 "
        f"(seconds, median of {args.rounds}, start-up included)\n"
    )
    header = ["model", "bioseqnn", "without C kernels", "Keras", "Keras / bioseqnn"]
    print("| " + " | ".join([*header, "Keras / without kernels"]) + " |")
    print("|---|---:|---:|---:|---:|---:|")
    print("\n".join(train_rows))
    print(
        f"\n## Prediction, {N_PREDICT} x {LENGTH} nt, batch 256 (sequences/s, reading included)\n"
    )
    print("| model | bioseqnn | Keras | bioseqnn / Keras |\n|---|---:|---:|---:|")
    print("\n".join(predict_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
