"""The compiled LSTM/GRU kernels (bioseqnn/csrc/rnn.c) as differentiable torch functions.

The extension is built when the package is installed (setup.py) and is optional: where
it could not be built, or for float64, or with ``BIOSEQNN_NATIVE=0`` in the environment,
recurrent.py uses its kernels written with torch operations instead, which compute the
same thing more slowly.

The C functions run the whole time loop of one direction; ctypes releases the GIL
around each call, so concurrent directions and batch slices (runtime.run_concurrently)
use every core. Before the loop, the input projections of all steps are one matrix
product; after it, in the backward pass, so are the recurrent weight gradients.
"""

from __future__ import annotations

import ctypes
import importlib.util
import math
import os
import threading
from typing import Any

import torch

ABI = 3
"""bsnn_abi() of the C code this module was written for."""

_lib: ctypes.CDLL | None = None
_tried = False


def _load() -> ctypes.CDLL | None:
    global _lib, _tried
    if _tried:
        return _lib
    _tried = True
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
    lib.bsnn_projection.argtypes = [ctypes.c_long, i, i, p, p, p, p]
    lib.bsnn_lstm_forward.argtypes = [i, i, i, p, p, p, p, p, i]
    lib.bsnn_lstm_backward.argtypes = [i, i, i, p, p, p, p, p, p, p, p, p]
    lib.bsnn_gru_forward.argtypes = [i, i, i, p, p, p, p, p, p, p, p, i]
    lib.bsnn_gru_backward.argtypes = [i, i, i, p, p, p, p, p, p, p, p, p, p, p, p]
    for fn in (lib.bsnn_projection, lib.bsnn_lstm_forward, lib.bsnn_lstm_backward,
               lib.bsnn_gru_forward, lib.bsnn_gru_backward):
        fn.restype = None
    _lib = lib
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


def usable(*tensors: torch.Tensor) -> bool:
    """Whether these tensors can go through the kernels: float32 on the CPU."""
    return all(t.dtype == torch.float32 and t.device.type == "cpu" for t in tensors) and (
        available()
    )


def _ptr(t: torch.Tensor) -> int:
    return t.data_ptr()


def _lib_or_raise() -> ctypes.CDLL:
    lib = _load()
    if lib is None:  # pragma: no cover - callers check available() first
        raise RuntimeError("the compiled recurrent kernels are not built")
    return lib


class _Buffers:
    """Storage for the kernels' large intermediate arrays, reused from batch to batch.

    A training step of a long-sequence LSTM needs several arrays of a hundred MB or more.
    Allocations that large are fresh pages from the kernel every time (glibc maps them
    and unmaps them on free), and faulting in and zeroing those pages took a third of the
    CPU time of a BiLSTM step at length 1000. Buffers taken here go back to the pool when
    the backward pass is done with them (or at once, for those only the forward needs);
    those of a graph that is never run backward are simply freed.
    """

    GRAIN = 1 << 18
    """Buffer sizes are rounded up to this many floats (1 MiB), so that batches of
    slightly different lengths reuse the same buffers."""
    KEEP = 16

    def __init__(self) -> None:
        self._free: list[torch.Tensor] = []
        self._lock = threading.Lock()

    def take(self, *shape: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A float32 array of this shape (uninitialised) and the buffer it is a view of."""
        need = math.prod(shape)
        with self._lock:
            fits = [i for i, buf in enumerate(self._free)
                    if need <= buf.numel() <= 2 * need + self.GRAIN]
            base = self._free.pop(min(fits, key=lambda i: self._free[i].numel())) \
                if fits else None
        if base is None:
            # a normal tensor even when taken in inference mode, so that it can serve
            # training later (an inference tensor cannot be written outside that mode)
            with torch.inference_mode(False):
                base = torch.empty(-(-need // self.GRAIN) * self.GRAIN, dtype=torch.float32)
        return base[:need].view(shape), base

    def give(self, *bases: torch.Tensor | None) -> None:
        with self._lock:
            self._free.extend(b for b in bases if b is not None)
            del self._free[: -self.KEEP]


_BUFFERS = _Buffers()


def _contiguous(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``t`` contiguous, in a pooled buffer when it has to be copied."""
    if t.is_contiguous():
        return t, None
    out, base = _BUFFERS.take(*t.shape)
    out.copy_(t)
    return out, base


def _released(ctx: Any) -> list[torch.Tensor]:
    bases: list[torch.Tensor] | None = ctx.bases
    if bases is None:
        raise RuntimeError("backward through bioseqnn's compiled LSTM/GRU kernel ran twice "
                           "(retain_graph=True); set BIOSEQNN_NATIVE=0 for that")
    ctx.bases = None
    return bases


def _states(like: torch.Tensor, steps: int, b: int, hid: int) -> torch.Tensor:
    """(steps, B, H) storage for states that the kernel fills, but for the zero initial
    state (zero-filling the whole of it costs a pass over memory)."""
    out = like.new_empty((steps, b, hid))
    out[0].zero_()
    return out


def _time_major(x: torch.Tensor) -> torch.Tensor:
    """(B, T, C) -> contiguous (T * B, C)."""
    b, steps, c = x.shape
    return x.transpose(0, 1).reshape(steps * b, c)


def _projections(
    x_tm: torch.Tensor, w_ih: torch.Tensor, bias: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """x W_ih^T + bias for all steps at once, into a pooled buffer (returned second).

    By the kernels' own product rather than torch.addmm, whose last bits depend on how
    many rows there are (and so on the other sequences of a batch): a prediction must
    not depend on the company its sequence keeps."""
    m, c = x_tm.shape
    g = w_ih.shape[0]
    out, base = _BUFFERS.take(m, g)
    wt = w_ih.detach().t().contiguous()
    x_tm = x_tm.contiguous()
    _lib_or_raise().bsnn_projection(m, g, c, _ptr(x_tm), _ptr(wt),
                                    _ptr(bias.detach().contiguous()), _ptr(out))
    return out, base


def _input_grads(
    ctx: Any, dxg: torch.Tensor, x_tm: torch.Tensor, w_ih: torch.Tensor, shape: torch.Size,
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """Gradients of the input projection xg = x W_ih^T + bias, given dxg (T * B, G).

    dW_ih is computed as (x^T dxg)^T: torch's product of dxg^T with a narrow x (C = 4 for
    one-hot DNA) is more than ten times slower, a third of a whole training step.
    """
    b, steps, c = shape
    dx = None
    if ctx.needs_input_grad[0]:
        dx = (dxg @ w_ih).view(steps, b, c).transpose(0, 1)
    return dx, (x_tm.t() @ dxg).t(), dxg.sum(0)


class _LSTM(torch.autograd.Function):
    """nn.LSTM's single-direction layer: (x, w_ih, w_hh, b_ih, b_hh) -> (T, B, H)."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor,
        b_ih: torch.Tensor, b_hh: torch.Tensor,
    ) -> torch.Tensor:
        b, steps, _ = x.shape
        hid = w_hh.shape[1]
        x_tm = _time_major(x)
        xg, xg_base = _projections(x_tm, w_ih, b_ih + b_hh)
        hs = _states(xg, steps + 1, b, hid)
        cs, cs_base = _BUFFERS.take(steps + 1, b, hid)
        cs[0].zero_()
        act = xg.view(steps, b, 4 * hid)  # the kernel turns xg into the gates in place
        wt = w_hh.t().contiguous()
        _lib_or_raise().bsnn_lstm_forward(steps, b, hid, _ptr(xg), _ptr(wt), _ptr(hs),
                                          _ptr(cs), _ptr(act), 1)
        ctx.save_for_backward(x_tm, w_ih, w_hh, hs, cs, act)
        ctx.shape = x.shape
        ctx.bases = [xg_base, cs_base]
        return hs[1:]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x_tm, w_ih, w_hh, hs, cs, act = ctx.saved_tensors
        bases = _released(ctx)
        steps, b, g = act.shape
        hid = g // 4
        dout, dout_base = _contiguous(dout)
        dpre, dpre_base = _BUFFERS.take(steps, b, g)
        dw = w_hh.new_zeros(w_hh.shape)
        work = act.new_empty((2, b, hid))
        _lib_or_raise().bsnn_lstm_backward(steps, b, hid, _ptr(dout), _ptr(w_hh.contiguous()),
                                           _ptr(hs), _ptr(act), _ptr(cs), _ptr(dpre), _ptr(dw),
                                           _ptr(work[0]), _ptr(work[1]))
        dx, dw_ih, db = _input_grads(ctx, dpre.view(steps * b, g), x_tm, w_ih, ctx.shape)
        _BUFFERS.give(*bases, dpre_base, dout_base)
        return dx, dw_ih, dw, db, db


class _GRU(torch.autograd.Function):
    """nn.GRU's single-direction layer: (x, w_ih, w_hh, b_ih, b_hh) -> (T, B, H)."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor,
        b_ih: torch.Tensor, b_hh: torch.Tensor,
    ) -> torch.Tensor:
        b, steps, _ = x.shape
        hid = w_hh.shape[1]
        x_tm = _time_major(x)
        xg, xg_base = _projections(x_tm, w_ih, b_ih)
        hs = _states(xg, steps + 1, b, hid)
        rz, rz_base = _BUFFERS.take(steps, b, 2 * hid)
        n, n_base = _BUFFERS.take(steps, b, hid)
        hgn, hgn_base = _BUFFERS.take(steps, b, hid)
        work = xg.new_empty((b, 3 * hid))
        wt = w_hh.t().contiguous()
        _lib_or_raise().bsnn_gru_forward(steps, b, hid, _ptr(xg), _ptr(wt),
                                         _ptr(b_hh.contiguous()), _ptr(hs), _ptr(rz), _ptr(n),
                                         _ptr(hgn), _ptr(work), 1)
        _BUFFERS.give(xg_base)
        ctx.save_for_backward(x_tm, w_ih, w_hh, hs, rz, n, hgn)
        ctx.shape = x.shape
        ctx.bases = [rz_base, n_base, hgn_base]
        return hs[1:]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x_tm, w_ih, w_hh, hs, rz, n, hgn = ctx.saved_tensors
        bases = _released(ctx)
        steps, b, hid = n.shape
        g = 3 * hid
        dout, dout_base = _contiguous(dout)
        dxg, dxg_base = _BUFFERS.take(steps, b, g)
        dw = w_hh.new_zeros(w_hh.shape)
        db_hh = w_hh.new_zeros(g)
        work = n.new_empty(b * (g + 2 * hid))
        dhg, dh, carry = work.split([b * g, b * hid, b * hid])
        _lib_or_raise().bsnn_gru_backward(steps, b, hid, _ptr(dout), _ptr(w_hh.contiguous()),
                                          _ptr(hs), _ptr(rz), _ptr(n), _ptr(hgn), _ptr(dxg),
                                          _ptr(dw), _ptr(db_hh), _ptr(dhg), _ptr(dh),
                                          _ptr(carry))
        dx, dw_ih, db_ih = _input_grads(ctx, dxg.view(steps * b, g), x_tm, w_ih, ctx.shape)
        _BUFFERS.give(*bases, dxg_base, dout_base)
        return dx, dw_ih, dw, db_ih, db_hh


def _wants_grad(*tensors: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def lstm_layer(
    x: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor,
    b_hh: torch.Tensor,
) -> torch.Tensor:
    """One LSTM direction as nn.LSTM computes it, batch-first (B, T, C) -> (B, T, H)."""
    if _wants_grad(x, w_ih, w_hh, b_ih, b_hh):
        return _LSTM.apply(x, w_ih, w_hh, b_ih, b_hh).transpose(0, 1)
    b, steps, _ = x.shape
    hid = w_hh.shape[1]
    xg, xg_base = _projections(_time_major(x), w_ih, b_ih + b_hh)
    hs = _states(xg, steps + 1, b, hid)
    cs = xg.new_zeros((2, b, hid))
    act = xg.new_empty((b, 4 * hid))
    wt = w_hh.t().contiguous()
    _lib_or_raise().bsnn_lstm_forward(steps, b, hid, _ptr(xg), _ptr(wt), _ptr(hs), _ptr(cs),
                                      _ptr(act), 0)
    _BUFFERS.give(xg_base)
    return hs[1:].transpose(0, 1)


def gru_layer(
    x: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor,
    b_hh: torch.Tensor,
) -> torch.Tensor:
    """One GRU direction as nn.GRU computes it, batch-first (B, T, C) -> (B, T, H)."""
    if _wants_grad(x, w_ih, w_hh, b_ih, b_hh):
        return _GRU.apply(x, w_ih, w_hh, b_ih, b_hh).transpose(0, 1)
    b, steps, _ = x.shape
    hid = w_hh.shape[1]
    xg, xg_base = _projections(_time_major(x), w_ih, b_ih)
    hs = _states(xg, steps + 1, b, hid)
    rz = xg.new_empty((b, 2 * hid))
    n = xg.new_empty((b, hid))
    hgn = xg.new_empty((b, hid))
    work = xg.new_empty((b, 3 * hid))
    wt = w_hh.t().contiguous()
    _lib_or_raise().bsnn_gru_forward(steps, b, hid, _ptr(xg), _ptr(wt),
                                     _ptr(b_hh.contiguous()), _ptr(hs), _ptr(rz), _ptr(n),
                                     _ptr(hgn), _ptr(work), 0)
    _BUFFERS.give(xg_base)
    return hs[1:].transpose(0, 1)
