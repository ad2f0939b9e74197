"""The compiled LSTM/GRU kernels (bioseqnn/csrc/rnn.c) as differentiable torch functions.

The extension is built when the package is installed (setup.py) and is optional: where
it could not be built, or for float64, or with ``BIOSEQNN_NATIVE=0`` in the environment,
recurrent.py uses its kernels written with torch operations instead, which compute the
same thing more slowly.

The C functions run the whole time loop of one direction; ctypes releases the GIL
around each call, so concurrent directions and batch slices (runtime.run_concurrently)
use every core. In training, the input projections of all steps are one matrix product
before the loop (the kernels' own); after it, in the backward pass, so are the input
weights' gradients (torch's). Inference projects a block of steps at a time (_blocks).
The LSTM's backward pass writes its gradients over the gates the forward pass saved, so
a training step holds one (T, B, 4H) buffer per direction, not two.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import torch

# Loading the library needs no torch (bioseqnn --version reports it): bioseqnn.kernels.
from ..kernels import ABI, _load, available, instruction_set, library  # noqa: E402,F401


def usable(*tensors: torch.Tensor) -> bool:
    """Whether these tensors can go through the kernels: float32 on the CPU."""
    return all(t.dtype == torch.float32 and t.device.type == "cpu" for t in tensors) and (
        available()
    )


def _ptr(t: torch.Tensor) -> int:
    return t.data_ptr()


class _Buffers:
    """Storage for a training step's input projections, (T * B, G) floats, kept from
    one step to the next.

    It is the largest allocation of a step (26 MB a direction for 64 x 200 nt, hidden
    128; five times that at 1000 nt). Freed and allocated again every step, it came back
    from the kernel as fresh pages, zeroed on first touch: 7-8% of a BiLSTM training
    step. A buffer is taken by the forward pass and given back when the kernel is done
    with it (the LSTM: after its backward pass, since its gates and their gradients live
    there; the GRU: after the forward pass). A graph dropped without a backward pass
    frees its buffer as before. Inference allocates as before: its batches are larger,
    and keeping their storage through training would raise the peak.
    """

    KEEP = 4  # free buffers kept; a step of a bidirectional layer in two slices uses 4

    def __init__(self) -> None:
        self._free: list[torch.Tensor] = []
        self._lock = threading.Lock()

    def _smallest(self, indices: list[int] | range) -> int:
        return min(indices, key=lambda i: self._free[i].numel())

    def take(self, need: int, like: torch.Tensor) -> torch.Tensor:
        """A kept 1-D buffer of at least ``need`` floats (the smallest), or a new one."""
        with self._lock:
            fits = [i for i, b in enumerate(self._free) if b.numel() >= need]
            if fits:
                return self._free.pop(self._smallest(fits))
        return like.new_empty(need)

    def give(self, buf: torch.Tensor) -> None:
        """Keep ``buf`` (from :meth:`take`) for a later step; nothing may use it after."""
        with self._lock:
            self._free.append(buf)
            if len(self._free) > self.KEEP:  # let the smallest go
                self._free.pop(self._smallest(range(len(self._free))))

    def clear(self) -> None:
        with self._lock:
            self._free.clear()


_BUFFERS = _Buffers()


def free_buffers() -> None:
    """Let go of the storage kept between training steps (train.fit calls this when it
    ends)."""
    _BUFFERS.clear()


def _states(like: torch.Tensor, steps: int, b: int, hid: int) -> torch.Tensor:
    """(steps, B, H) storage for states that the kernel fills, but for the zero initial
    state (zero-filling the whole of it costs a pass over memory)."""
    out = like.new_empty((steps, b, hid))
    out[0].zero_()
    return out


def _time_major(x: torch.Tensor) -> torch.Tensor:
    """(B, T, C) -> contiguous (T * B, C). (reshape alone may give a strided view: a
    lone sequence whose channels are not its last dimension in memory, as after a
    convolution.)"""
    b, steps, c = x.shape
    return x.transpose(0, 1).reshape(steps * b, c).contiguous()


def _transposed(w: torch.Tensor) -> torch.Tensor:
    """A weight matrix (G, K) as the kernels take it: contiguous (K, G)."""
    return w.detach().t().contiguous()


def _project(rows: torch.Tensor, wt: torch.Tensor, bias: torch.Tensor, out: torch.Tensor) -> None:
    """out[: len(rows)] = rows @ wt + bias, by the kernels' own product: rows (M, K)
    contiguous, wt (K, G) from _transposed, bias (G) contiguous."""
    m, k = rows.shape
    library().bsnn_projection(m, wt.shape[1], k, _ptr(rows), _ptr(wt), _ptr(bias), _ptr(out))


def _projections(
    x_tm: torch.Tensor, w_ih: torch.Tensor, bias: torch.Tensor, buf: torch.Tensor | None = None
) -> torch.Tensor:
    """x W_ih^T + bias for all steps at once, in ``buf`` (1-D, large enough) if given.

    By the kernels' own product rather than torch.addmm, whose last bits depend on how
    many rows there are (and so on the other sequences of a batch): a prediction must
    not depend on the company its sequence keeps."""
    m = x_tm.shape[0]
    g = w_ih.shape[0]
    out = x_tm.new_empty((m, g)) if buf is None else buf[: m * g].view(m, g)
    _project(x_tm.contiguous(), _transposed(w_ih), bias.detach().contiguous(), out)
    return out


def _input_grads(
    ctx: Any,
    dxg: torch.Tensor,
    x_tm: torch.Tensor,
    w_ih: torch.Tensor,
    shape: torch.Size,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Gradients of x and W_ih in the input projection xg = x W_ih^T + bias, given dxg
    (T * B, G).

    dW_ih is computed as (x^T dxg)^T: torch's product of dxg^T with a narrow x (C = 4 for
    one-hot DNA) is more than ten times slower, a third of a whole training step.
    """
    b, steps, c = shape
    dx = None
    if ctx.needs_input_grad[0]:
        dx = (dxg @ w_ih).view(steps, b, c).transpose(0, 1)
    return dx, (x_tm.t() @ dxg).t()


def _lstm_steps(
    steps: int,
    b: int,
    hid: int,
    xg: torch.Tensor,
    wt: torch.Tensor,
    hs: torch.Tensor,
    cs: torch.Tensor,
    act: torch.Tensor,
    keep: bool,
) -> None:
    """The LSTM kernel over ``steps`` steps of projections xg, from the states in hs[0]
    and cs[0] (the first rows of the storage given). With ``keep`` it writes every
    step's cell states and gates; otherwise cs and act hold two steps' and one step's."""
    library().bsnn_lstm_forward(
        steps, b, hid, _ptr(xg), _ptr(wt), _ptr(hs), _ptr(cs), _ptr(act), int(keep)
    )


def _gru_steps(
    steps: int,
    b: int,
    hid: int,
    xg: torch.Tensor,
    wt: torch.Tensor,
    b_hh: torch.Tensor,
    hs: torch.Tensor,
    rz: torch.Tensor,
    n: torch.Tensor,
    hgn: torch.Tensor,
    work: torch.Tensor,
    keep: bool,
) -> None:
    """The GRU kernel over ``steps`` steps of projections xg, from the state in hs[0].
    With ``keep`` it writes every step's gates, candidates and recurrent projections;
    otherwise one step's."""
    library().bsnn_gru_forward(
        steps,
        b,
        hid,
        _ptr(xg),
        _ptr(wt),
        _ptr(b_hh.detach().contiguous()),
        _ptr(hs),
        _ptr(rz),
        _ptr(n),
        _ptr(hgn),
        _ptr(work),
        int(keep),
    )


def _lstm_forward(
    x: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
    buf: torch.Tensor | None = None,
) -> tuple[torch.Tensor, ...]:
    """Run the LSTM kernel for training: (x_tm, hs, cs, act), every step's cell states
    and gates kept for the backward pass. The projections, which the kernel turns into
    the gates, go in ``buf`` if given (inference: _lstm_infer)."""
    b, steps, _ = x.shape
    hid = w_hh.shape[1]
    x_tm = _time_major(x)
    xg = _projections(x_tm, w_ih, b_ih + b_hh, buf)
    hs = _states(xg, steps + 1, b, hid)
    cs = _states(xg, steps + 1, b, hid)
    act = xg.view(steps, b, 4 * hid)  # the kernel turns xg into the gates in place
    _lstm_steps(steps, b, hid, xg, _transposed(w_hh), hs, cs, act, keep=True)
    return x_tm, hs, cs, act


def _gru_forward(
    x: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
    buf: torch.Tensor | None = None,
) -> tuple[torch.Tensor, ...]:
    """Run the GRU kernel for training: (x_tm, hs, rz, n, hgn), the last three for every
    step (the backward pass needs them). The projections go in ``buf`` if given, free
    again when this returns (inference: _gru_infer)."""
    b, steps, _ = x.shape
    hid = w_hh.shape[1]
    x_tm = _time_major(x)
    xg = _projections(x_tm, w_ih, b_ih, buf)
    hs = _states(xg, steps + 1, b, hid)
    rz = xg.new_empty((steps, b, 2 * hid))
    n = xg.new_empty((steps, b, hid))
    hgn = xg.new_empty((steps, b, hid))
    work = xg.new_empty((b, 3 * hid))
    _gru_steps(steps, b, hid, xg, _transposed(w_hh), b_hh, hs, rz, n, hgn, work, keep=True)
    return x_tm, hs, rz, n, hgn


class _LSTM(torch.autograd.Function):
    """nn.LSTM's single-direction layer: (x, w_ih, w_hh, b_ih, b_hh) -> (T, B, H)."""

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        w_ih: torch.Tensor,
        w_hh: torch.Tensor,
        b_ih: torch.Tensor,
        b_hh: torch.Tensor,
    ) -> torch.Tensor:
        b, steps, _ = x.shape
        buf = _BUFFERS.take(steps * b * w_ih.shape[0], x)
        x_tm, hs, cs, act = _lstm_forward(x, w_ih, w_hh, b_ih, b_hh, buf=buf)
        ctx.save_for_backward(x_tm, w_ih, w_hh, b_ih, b_hh, hs, cs, act)
        ctx.shape = x.shape
        ctx.buffer = buf  # given back by backward: the gates live in it until then
        return hs[1:]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x_tm, w_ih, w_hh, b_ih, b_hh, hs, cs, act = ctx.saved_tensors
        if ctx.buffer is None:
            # A second backward pass (retain_graph=True): the first wrote its gradients
            # over the saved gates and gave their storage back, so compute them again
            # (the same numbers).
            b, steps, c = ctx.shape
            x = x_tm.view(steps, b, c).transpose(0, 1)
            act = _lstm_forward(x, w_ih, w_hh, b_ih, b_hh)[3]
        steps, b, g = act.shape
        hid = g // 4
        dout = dout.contiguous()
        dpre = act  # the kernel writes the gradients over the gates it has read
        dw = w_hh.new_zeros(w_hh.shape)
        db = w_hh.new_zeros(g)
        work = act.new_empty((2, b, hid))
        library().bsnn_lstm_backward(
            steps,
            b,
            hid,
            _ptr(dout),
            _ptr(w_hh.contiguous()),
            _ptr(hs),
            _ptr(act),
            _ptr(cs),
            _ptr(dpre),
            _ptr(dw),
            _ptr(db),
            _ptr(work[0]),
            _ptr(work[1]),
        )
        dx, dw_ih = _input_grads(ctx, dpre.view(steps * b, g), x_tm, w_ih, ctx.shape)
        if ctx.buffer is not None:
            _BUFFERS.give(ctx.buffer)
            ctx.buffer = None
        return dx, dw_ih, dw, db, db


class _GRU(torch.autograd.Function):
    """nn.GRU's single-direction layer: (x, w_ih, w_hh, b_ih, b_hh) -> (T, B, H)."""

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        w_ih: torch.Tensor,
        w_hh: torch.Tensor,
        b_ih: torch.Tensor,
        b_hh: torch.Tensor,
    ) -> torch.Tensor:
        b, steps, _ = x.shape
        buf = _BUFFERS.take(steps * b * w_ih.shape[0], x)
        x_tm, hs, rz, n, hgn = _gru_forward(x, w_ih, w_hh, b_ih, b_hh, buf=buf)
        _BUFFERS.give(buf)
        ctx.save_for_backward(x_tm, w_ih, w_hh, hs, rz, n, hgn)
        ctx.shape = x.shape
        return hs[1:]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x_tm, w_ih, w_hh, hs, rz, n, hgn = ctx.saved_tensors
        steps, b, hid = n.shape
        g = 3 * hid
        dout = dout.contiguous()
        dxg = n.new_empty((steps, b, g))
        dw = w_hh.new_zeros(w_hh.shape)
        db_hh = w_hh.new_zeros(g)
        work = n.new_empty(b * (g + 2 * hid))
        dhg, dh, carry = work.split([b * g, b * hid, b * hid])
        library().bsnn_gru_backward(
            steps,
            b,
            hid,
            _ptr(dout),
            _ptr(w_hh.contiguous()),
            _ptr(hs),
            _ptr(rz),
            _ptr(n),
            _ptr(hgn),
            _ptr(dxg),
            _ptr(dw),
            _ptr(db_hh),
            _ptr(dhg),
            _ptr(dh),
            _ptr(carry),
        )
        dx, dw_ih = _input_grads(ctx, dxg.view(steps * b, g), x_tm, w_ih, ctx.shape)
        return dx, dw_ih, dw, dxg.view(steps * b, g).sum(0), db_hh


def _wants_grad(*tensors: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def lstm_layer(
    x: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
) -> torch.Tensor:
    """One LSTM direction as nn.LSTM computes it, batch-first (B, T, C) -> (B, T, H)."""
    if _wants_grad(x, w_ih, w_hh, b_ih, b_hh):
        return _LSTM.apply(x, w_ih, w_hh, b_ih, b_hh).transpose(0, 1)
    return _lstm_infer(x, w_ih, w_hh, b_ih, b_hh)


def gru_layer(
    x: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
) -> torch.Tensor:
    """One GRU direction as nn.GRU computes it, batch-first (B, T, C) -> (B, T, H)."""
    if _wants_grad(x, w_ih, w_hh, b_ih, b_hh):
        return _GRU.apply(x, w_ih, w_hh, b_ih, b_hh).transpose(0, 1)
    return _gru_infer(x, w_ih, w_hh, b_ih, b_hh)


BLOCK_BYTES = 1 << 20
"""Inference projects the inputs a block of steps at a time into one buffer of about
this size (half of one core's L2 cache here), instead of all steps at once.

All steps at once wrote (T, B, G) floats to fresh memory before the loop read them
back: 105 MB a direction for 256 sequences of 200 nt (hidden 128), which took longer
than the products of the recurrence itself."""


def _blocks(
    x: torch.Tensor, w_ih: torch.Tensor, bias: torch.Tensor
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """x (B, T, C)'s input projections a block of steps at a time: (first step, steps,
    projections), every block's in the same buffer.

    Blocks hold an even number of steps: the LSTM kernel without ``keep`` alternates
    the cell state between two slots, so after an even count it is back in the first,
    where the next block starts. Rows are projected by the same product as in one
    piece, so the kernels' outputs are those of one piece, bit for bit."""
    b, steps, _ = x.shape
    g = w_ih.shape[0]
    x_tm = _time_major(x)
    wt, bias = _transposed(w_ih), bias.detach().contiguous()
    block = max(2, BLOCK_BYTES // max(1, 4 * b * g) // 2 * 2)  # an empty batch: any
    xg = x_tm.new_empty((min(block, steps) * b, g))
    for t0 in range(0, steps, block):
        k = min(block, steps - t0)
        _project(x_tm[t0 * b : (t0 + k) * b], wt, bias, xg)
        yield t0, k, xg


def _lstm_infer(
    x: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
) -> torch.Tensor:
    """One LSTM direction without gradients, batch-first (B, T, C) -> (B, T, H): the
    kernel continues block after block from the states the previous one left."""
    b, steps, _ = x.shape
    hid = w_hh.shape[1]
    hs = _states(x, steps + 1, b, hid)
    cs, act = x.new_zeros((2, b, hid)), x.new_empty((b, 4 * hid))
    wt = _transposed(w_hh)
    for t0, k, xg in _blocks(x, w_ih, b_ih + b_hh):
        _lstm_steps(k, b, hid, xg, wt, hs[t0], cs, act, keep=False)
    return hs[1:].transpose(0, 1)


def _gru_infer(
    x: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
) -> torch.Tensor:
    """One GRU direction without gradients, batch-first (B, T, C) -> (B, T, H)."""
    b, steps, _ = x.shape
    hid = w_hh.shape[1]
    hs = _states(x, steps + 1, b, hid)
    rz, n, hgn = x.new_empty((b, 2 * hid)), x.new_empty((b, hid)), x.new_empty((b, hid))
    work = x.new_empty((b, 3 * hid))
    wt = _transposed(w_hh)
    for t0, k, xg in _blocks(x, w_ih, b_ih):
        _gru_steps(k, b, hid, xg, wt, b_hh, hs[t0], rz, n, hgn, work, keep=False)
    return hs[1:].transpose(0, 1)
