"""Loading the compiled code (built at install as ``bioseqnn._rnn``) through ctypes,
without torch: ``bioseqnn --version`` reports it before any torch import. It holds the
LSTM/GRU kernels and the convolutions' inference kernel (bioseqnn/csrc/rnn.c), which
bioseqnn.models.native wraps as torch functions and bioseqnn.engine.light calls from
numpy, and the FASTA block cutter (bioseqnn/csrc/fasta.c), which bioseqnn.io.fasta
calls. ``BIOSEQNN_NATIVE=0`` in the environment turns all of it off.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import threading
from typing import Any

ABI = 11
"""bsnn_abi() of the C code this module was written for."""

_lib: ctypes.CDLL | None = None
_tried = False


_load_lock = threading.Lock()


def _load() -> ctypes.CDLL | None:
    global _lib, _tried
    if _tried:
        return _lib
    with _load_lock:
        if not _tried:
            _lib = _open()
            _tried = True
    return _lib


def _open() -> ctypes.CDLL | None:
    spec = importlib.util.find_spec("bioseqnn._rnn")
    if spec is None or not spec.origin:
        return None
    try:
        lib = ctypes.CDLL(spec.origin)
    except OSError:
        return None
    if lib.bsnn_abi() != ABI:
        return None
    i, p = ctypes.c_int, ctypes.c_void_p
    lib.bsnn_lstm_forward.argtypes = [i, i, i, i, p, p, p, p, p, p, p, i, i]
    c_long = ctypes.c_long
    lib.bsnn_lstm_backward.argtypes = [i, i, i, i, p, c_long, c_long, *[p] * 13, i, i, p]
    lib.bsnn_gru_forward.argtypes = [i, i, i, i, p, p, p, p, p, p, p, p, p, p, p, i, i]
    lib.bsnn_gru_backward.argtypes = [i, i, i, i, p, c_long, c_long, *[p] * 16, i, i, p]
    lib.bsnn_fasta_cut.argtypes = [ctypes.c_char_p, c_long, c_long, i, i, p, p, p, c_long, p]
    lib.bsnn_fasta_cut.restype = ctypes.c_long
    lib.bsnn_translate.argtypes = [p, c_long, p, p]
    lib.bsnn_translate.restype = ctypes.c_long
    lib.bsnn_conv_forward.argtypes = [i, i, i, i, i, c_long, c_long, *[p] * 7]
    lib.bsnn_conv_forward.restype = None
    lib.bsnn_conv_scratch.argtypes = [i, i]
    lib.bsnn_conv_scratch.restype = c_long
    lib.bsnn_norm_fold.argtypes = [i, p, p, p, p, ctypes.c_float, p, p]
    lib.bsnn_norm_fold.restype = None
    for fn in (
        lib.bsnn_lstm_forward,
        lib.bsnn_lstm_backward,
        lib.bsnn_gru_forward,
        lib.bsnn_gru_backward,
    ):
        fn.restype = None
    # Pick the instruction set now, on one thread: the CPU-feature probe is not safe to
    # run from two threads at once, and a thread that read it half-done ran the plain-C
    # kernels (no FMA), whose last bits differ, so predictions varied from run to run.
    lib.bsnn_isa()
    return lib


INT_MAX = (1 << 31) - 1


def conv_fits(kernel: int, channels: int, filters: int) -> bool:
    """Whether bsnn_conv_forward takes a convolution of this shape: its window (kernel x
    channels inputs) and its filters each within a C int (ctypes would wrap larger
    numbers silently)."""
    return kernel * channels <= INT_MAX and filters <= INT_MAX


def conv_taps(kernel: int, dilation: int, width: int) -> tuple[int, int]:
    """bsnn_conv_forward's dilation and left padding for a batch ``width`` positions
    wide: 'same' output length, an even span's extra position on the right (as
    models.conv pads). A dilation beyond 2 width + 2 is taken as 2 width + 2: the same
    taps stay inside every sequence (an odd kernel's centre), at the same offsets, and
    the kernel's position arithmetic stays small."""
    d = min(dilation, 2 * width + 2)
    return d, (kernel - 1) * d // 2


def norm_fold(weight: Any, bias: Any, mean: Any, var: Any, eps: float) -> tuple[Any, Any]:
    """A batch norm in inference (its affine weights and running statistics, numpy
    arrays of its features) as the float32 (scale, shift) that :func:`conv_forward`
    applies, computed by bsnn_norm_fold."""
    import numpy as np

    parts = [np.ascontiguousarray(a, np.float32) for a in (weight, bias, mean, var)]
    scale, shift = np.empty_like(parts[0]), np.empty_like(parts[0])
    library().bsnn_norm_fold(
        len(scale), *(a.ctypes.data for a in parts), eps, scale.ctypes.data, shift.ctypes.data
    )
    return scale, shift


def conv_forward(
    x: Any, lengths: Any, packed: Any, scale: Any, shift: Any, dilation: int, out: Any
) -> None:
    """One convolution with its folded batch norm and ReLU (bsnn_conv_forward) on numpy
    arrays: x (B, L, C) float32 and lengths (B,) int32, both contiguous; packed, the
    weights as (Kw, C, F) contiguous; out (B, L, F) is written. models.native (torch's
    inference, on views of its tensors) and engine.light (numpy) both call this."""
    import numpy as np

    b, width, c = x.shape
    kw, _, f = packed.shape
    lib = library()
    dil, pad_left = conv_taps(kw, dilation, width)
    cols = np.empty(lib.bsnn_conv_scratch(kw, c), np.float32)
    lib.bsnn_conv_forward(
        b, width, c, f, kw, dil, pad_left, x.ctypes.data, lengths.ctypes.data,
        packed.ctypes.data, scale.ctypes.data, shift.ctypes.data, cols.ctypes.data,
        out.ctypes.data,
    )  # fmt: skip


def library() -> ctypes.CDLL:
    """The compiled code; callers check :func:`available` first."""
    lib = _load()
    if lib is None:  # pragma: no cover - callers check available() first
        raise RuntimeError("the compiled kernels are not built")
    return lib


def available() -> bool:
    """Whether the compiled kernels are built and enabled."""
    if os.environ.get("BIOSEQNN_NATIVE", "1").strip() in ("0", "false", "no", "off"):
        return False
    return _load() is not None


def instruction_set() -> str:
    """The vector instructions the kernels use on this CPU, or 'none' when not built."""
    lib = _load()
    if lib is None:
        return "none"
    return {2: "AVX-512", 1: "AVX2"}.get(lib.bsnn_isa(), "baseline")
