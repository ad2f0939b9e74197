"""The compiled LSTM/GRU kernels alone, timed through ctypes on one thread, for one or
more built checkouts side by side, and checked for the same numbers to the bit.

A kernel change is easier to see here than in ``bench_ab.py``'s training rows, where two
threads, autograd and memory traffic blur it. Each checkout must be built first
(``python setup.py build_ext --inplace`` in it) and speak this script's kernel ABI. The
checkouts run in turn within each round (fresh buffers, the same random inputs), and
the table gives the fastest of the rounds: the forward pass, then the backward pass,
with the GFLOP/s of their products. The forward time of one build moves by up to a
quarter from one process to the next with the placement of its buffers, so compare
builds in one run, and run it twice.

    python benchmarks/bench_kernels.py /path/to/before /path/to/after
    python benchmarks/bench_kernels.py . --channels 128 --isa avx2
    python benchmarks/bench_kernels.py . --inference --batch 256
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import os
import sys
import time
from pathlib import Path

import numpy as np

ABI = 11
"""The kernel ABI (bsnn_abi()) whose signatures this script calls."""


def load(checkout: Path) -> ctypes.CDLL:
    found = glob.glob(str(checkout / "bioseqnn" / "_rnn*.so"))
    if not found:
        sys.exit(f"{checkout}: no bioseqnn/_rnn*.so; run python setup.py build_ext --inplace")
    lib = ctypes.CDLL(found[0])
    if lib.bsnn_abi() != ABI:
        sys.exit(f"{checkout}: kernel ABI {lib.bsnn_abi()}, this script calls ABI {ABI}")
    i, p, n = ctypes.c_int, ctypes.c_void_p, ctypes.c_long
    lib.bsnn_lstm_forward.argtypes = [i, i, i, i, *[p] * 7, i, i]
    lib.bsnn_lstm_backward.argtypes = [i, i, i, i, p, n, n, *[p] * 13, i, i, p]
    lib.bsnn_gru_forward.argtypes = [i, i, i, i, *[p] * 11, i, i]
    lib.bsnn_gru_backward.argtypes = [i, i, i, i, p, n, n, *[p] * 16, i, i, p]
    lib.bsnn_isa()  # pick the instruction set now (BIOSEQNN_ISA is read here)
    return lib


def ptr(a: np.ndarray | None) -> int | None:
    return None if a is None else a.ctypes.data


class Layer:
    """One direction's inputs, weights and every buffer the kernels write."""

    def __init__(self, cell: str, t: int, b: int, h: int, k: int, rng: np.random.Generator):
        def f32(*shape: int, scale: float = 0.1) -> np.ndarray:
            return (rng.standard_normal(shape) * scale).astype(np.float32)

        self.cell, self.t, self.b, self.h, self.k = cell, t, b, h, k
        g = self.g = (4 if cell == "lstm" else 3) * h
        self.x, self.dout = f32(t, b, k, scale=1.0), f32(t, b, h, scale=0.01)
        self.wih, self.wt = f32(k, g), f32(h, g)  # transposed, as the forward kernels take them
        self.w, self.wih_rows = np.ascontiguousarray(self.wt.T), np.ascontiguousarray(self.wih.T)
        self.b1, self.b2 = f32(g), f32(g)
        self.hs = np.zeros((t + 1, b, h), np.float32)
        # a first layer's input (one-hot, few channels) needs no gradient
        self.dx = np.zeros((t, b, k), np.float32) if k >= 16 else None
        self.dw, self.dwih = np.zeros((g, h), np.float32), np.zeros((k, g), np.float32)
        self.db1, self.db2 = np.zeros(g, np.float32), np.zeros(g, np.float32)
        self.dh, self.dc = np.zeros((b, h), np.float32), np.zeros((b, h), np.float32)
        self.cuts = np.array([0, b], np.int32)  # one piece (the kernels' PIECES)
        if cell == "lstm":
            self.cs = np.zeros((t + 1, b, h), np.float32)
            self.act = np.zeros((t, b, g), np.float32)
            self.dpre = np.zeros((2, b, g), np.float32)
        else:
            self.rz = np.zeros((t, b, 2 * h), np.float32)
            self.n, self.hgn = np.zeros((t, b, h), np.float32), np.zeros((t, b, h), np.float32)
            self.work = np.zeros((4, b, g), np.float32)

    def forward(self, lib: ctypes.CDLL, keep: int) -> None:
        t, b, h, k = self.t, self.b, self.h, self.k
        if self.cell == "lstm":
            self.cs[0] = 0
            lib.bsnn_lstm_forward(
                t,
                b,
                h,
                k,
                ptr(self.x),
                ptr(self.wih),
                ptr(self.b1),
                ptr(self.wt),
                ptr(self.hs),
                ptr(self.cs),
                ptr(self.act),
                keep,
                0,
            )
        else:
            lib.bsnn_gru_forward(
                t,
                b,
                h,
                k,
                ptr(self.x),
                ptr(self.wih),
                ptr(self.b1),
                ptr(self.wt),
                ptr(self.b2),
                ptr(self.hs),
                ptr(self.rz),
                ptr(self.n),
                ptr(self.hgn),
                ptr(self.work[0]),
                ptr(self.work[1]),
                keep,
                0,
            )

    def backward(self, lib: ctypes.CDLL) -> None:
        for a in (self.dw, self.dwih, self.db1, self.db2):
            a.fill(0)
        t, b, h, k = self.t, self.b, self.h, self.k
        if self.cell == "lstm":
            lib.bsnn_lstm_backward(
                t,
                b,
                h,
                k,
                ptr(self.dout),
                b * h,
                h,
                ptr(self.w),
                ptr(self.hs),
                ptr(self.act),
                ptr(self.cs),
                ptr(self.x),
                ptr(self.wih_rows),
                ptr(self.dx),
                ptr(self.dpre),
                ptr(self.dw),
                ptr(self.dwih),
                ptr(self.db1),
                ptr(self.dh),
                ptr(self.dc),
                0,
                1,
                ptr(self.cuts),
            )
        else:
            lib.bsnn_gru_backward(
                t,
                b,
                h,
                k,
                ptr(self.dout),
                b * h,
                h,
                ptr(self.w),
                ptr(self.hs),
                ptr(self.rz),
                ptr(self.n),
                ptr(self.hgn),
                ptr(self.x),
                ptr(self.wih_rows),
                ptr(self.dx),
                ptr(self.dw),
                ptr(self.dwih),
                ptr(self.db1),
                ptr(self.db2),
                ptr(self.work[2]),
                ptr(self.work[3]),
                ptr(self.dh),
                ptr(self.dc),
                0,
                1,
                ptr(self.cuts),
            )

    def results(self, backward: bool) -> list[np.ndarray]:
        out: list[np.ndarray] = [self.hs.copy()]
        if backward:
            out += [
                a.copy() for a in (self.dx, self.dw, self.dwih, self.db1, self.db2) if a is not None
            ]
        return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "checkouts", nargs="+", type=Path, help="built checkouts, the first the reference"
    )
    p.add_argument("--cells", default="lstm,gru")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--channels", type=int, default=4, help="input channels (4: one-hot DNA)")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--inference", action="store_true", help="forward only, nothing kept")
    p.add_argument("--isa", choices=["avx2", "baseline"], help="a narrower instruction set")
    args = p.parse_args(argv)
    if args.isa:
        os.environ["BIOSEQNN_ISA"] = args.isa
    libs = [load(c) for c in args.checkouts]
    t, b, h, k = args.steps, args.batch, args.hidden, args.channels
    print(
        f"one thread, {b} sequences x {t} steps, hidden {h}, {k} input channels, "
        f"{'inference' if args.inference else 'training'}, fastest of {args.rounds} rounds; "
        f"instruction set {args.isa or 'the widest the CPU has'}"
    )
    print("\n| cell | checkout | forward ms | GFLOP/s | backward ms | GFLOP/s | same bits |")
    print("|---|---|---:|---:|---:|---:|---|")
    for cell in args.cells.split(","):
        layer = Layer(cell, t, b, h, k, np.random.default_rng(0))
        best = [[float("inf"), float("inf")] for _ in libs]
        same: list[str] = []
        ref: list[np.ndarray] = []
        for r in range(args.rounds):
            for j, lib in enumerate(libs):
                start = time.perf_counter()
                layer.forward(lib, 0 if args.inference else 1)
                mid = time.perf_counter()
                if not args.inference:
                    layer.backward(lib)
                end = time.perf_counter()
                best[j] = [min(best[j][0], mid - start), min(best[j][1], end - mid)]
                if r == 0:
                    got = layer.results(not args.inference)
                    ref = got if j == 0 else ref
                    equal = all(np.array_equal(a, c) for a, c in zip(ref, got, strict=True))
                    same.append("" if j == 0 else "yes" if equal else "NO")
        g = layer.g
        flop_f = 2.0 * t * b * g * (h + k)
        flop_b = 2.0 * t * b * g * (2 * h + k + (k if layer.dx is not None else 0))
        for j, c in enumerate(args.checkouts):
            f, bw = best[j]
            back = ("", "") if args.inference else (f"{bw * 1e3:.1f}", f"{flop_b / bw / 1e9:.0f}")
            print(
                f"| {cell} | {c} | {f * 1e3:.1f} | {flop_f / f / 1e9:.0f} | {back[0]} | "
                f"{back[1]} | {same[j]} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
