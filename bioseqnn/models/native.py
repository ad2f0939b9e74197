"""The compiled LSTM/GRU kernels (bioseqnn/csrc/rnn.c) as differentiable torch functions.

The extension is built when the package is installed (setup.py) and is optional: where
it could not be built, or for float64, or with ``BIOSEQNN_NATIVE=0`` in the environment,
recurrent.py uses its kernels written with torch operations instead, which compute the
same thing more slowly.

The C functions run the whole time loop of one direction; ctypes releases the GIL
around each call, so concurrent directions and batch slices (runtime.run_concurrently)
use every core. Each step's input projection is made inside the step, where the
recurrent product and the gates find it in cache; likewise each backward step adds its
share of the input weights' gradient and writes its inputs' gradient, so no (T, B, 4H)
array of gradients is written to memory and read back. A training step keeps one such
array per direction, the LSTM's gates (or the GRU's gates and candidates).
"""

from __future__ import annotations

import threading
from typing import Any

import torch

# Loading the library needs no torch (bioseqnn --version reports it): bioseqnn.kernels.
from .. import kernels
from ..kernels import ABI, _load, available, conv_fits, instruction_set, library  # noqa: E402,F401


def usable(*tensors: torch.Tensor) -> bool:
    """Whether these tensors can go through the kernels: float32 on the CPU."""
    return all(t.dtype == torch.float32 and t.device.type == "cpu" for t in tensors) and (
        available()
    )


def _ptr(t: torch.Tensor) -> int:
    return t.data_ptr()


class _Buffers:
    """Storage for what a training step keeps for its backward pass (_kept: the LSTM's
    gates and cell states, the GRU's gates, candidates and recurrent projections),
    kept from one step to the next.

    It is the largest allocation of a step (33 MB a direction for 64 x 200 nt, hidden
    128; five times that at 1000 nt). Freed and allocated again every step, it came back
    from the kernel as fresh pages, zeroed on first touch: 7-8% of a BiLSTM training
    step. A buffer is taken by the forward pass and given back after the backward pass,
    which reads from it. A graph dropped without a backward pass frees its buffer as
    before. Inference needs no such buffer: without gradients the kernel keeps one
    step's gates.
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


def _states(like: torch.Tensor, steps: int, b: int, hid: int, reverse: bool) -> torch.Tensor:
    """(steps, B, H) storage for states that the kernel fills, but for the zero initial
    state, first (or last for a kernel run in reverse; zero-filling the whole of it costs
    a pass over memory)."""
    out = like.new_empty((steps, b, hid))
    out[-1 if reverse else 0].zero_()
    return out


def _outputs(hs: torch.Tensor, reverse: bool) -> torch.Tensor:
    """The (T, B, H) outputs in the inputs' order among a kernel's T + 1 states."""
    return hs[:-1] if reverse else hs[1:]


def _time_major(x: torch.Tensor) -> torch.Tensor:
    """(B, T, C) -> contiguous (T * B, C). (reshape alone may give a strided view: a
    lone sequence whose channels are not its last dimension in memory, as after a
    convolution.)"""
    b, steps, c = x.shape
    return x.transpose(0, 1).reshape(steps * b, c).contiguous()


def _transposed(w: torch.Tensor) -> torch.Tensor:
    """A weight matrix (G, K) as the kernels take it: contiguous (K, G)."""
    return w.detach().t().contiguous()


def _batch_first(dx: torch.Tensor | None) -> torch.Tensor | None:
    """The kernels' (T, B, C) input gradient as the (B, T, C) of the layer's input."""
    return None if dx is None else dx.transpose(0, 1)


def _lstm_steps(
    x_tm: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    bias: torch.Tensor,
    hs: torch.Tensor,
    cs: torch.Tensor,
    act: torch.Tensor,
    keep: bool,
    reverse: bool,
) -> None:
    """The LSTM kernel over every step of x_tm ((T * B, C) from _time_major), from the
    zero states in hs[0] (hs[T] with ``reverse``, which runs backwards in time) and
    cs[0]; bias is b_ih + b_hh. Each step's input projection is made inside the step.
    With ``keep`` it writes every step's cell states and gates (cs (T + 1, B, H), act
    (T, B, 4H)); otherwise cs and act hold two steps' and one step's."""
    b, hid = hs.shape[1], hs.shape[2]
    steps = x_tm.shape[0] // b if b else 0
    # named, so that they outlive the call: a temporary's storage would be freed first
    wih_t, bias, wt = _transposed(w_ih), bias.detach().contiguous(), _transposed(w_hh)
    library().bsnn_lstm_forward(
        steps,
        b,
        hid,
        x_tm.shape[1],
        _ptr(x_tm),
        _ptr(wih_t),
        _ptr(bias),
        _ptr(wt),
        _ptr(hs),
        _ptr(cs),
        _ptr(act),
        int(keep),
        int(reverse),
    )


def _gru_steps(
    x_tm: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
    hs: torch.Tensor,
    rz: torch.Tensor,
    n: torch.Tensor,
    hgn: torch.Tensor,
    work: torch.Tensor,
    keep: bool,
    reverse: bool,
) -> None:
    """The GRU kernel over every step of x_tm ((T * B, C) from _time_major), from the
    zero state in hs[0] (hs[T] with ``reverse``); work is (2, B, 3H). Each step's input
    projection is made inside the step. With ``keep`` it writes every step's gates,
    candidates and recurrent projections; otherwise one step's."""
    b, hid = hs.shape[1], hs.shape[2]
    steps = x_tm.shape[0] // b if b else 0
    # named, so that they outlive the call: a temporary's storage would be freed first
    wih_t, wt = _transposed(w_ih), _transposed(w_hh)
    b_ih, b_hh = b_ih.detach().contiguous(), b_hh.detach().contiguous()
    library().bsnn_gru_forward(
        steps,
        b,
        hid,
        x_tm.shape[1],
        _ptr(x_tm),
        _ptr(wih_t),
        _ptr(b_ih),
        _ptr(wt),
        _ptr(b_hh),
        _ptr(hs),
        _ptr(rz),
        _ptr(n),
        _ptr(hgn),
        _ptr(work[0]),
        _ptr(work[1]),
        int(keep),
        int(reverse),
    )


def _kept(cell: str, steps: int, b: int, hid: int) -> int:
    """Floats a training step keeps for the backward pass in one buffer: the LSTM's
    gates (4H a step) and cell states (H a step, and the initial one), the GRU's gates,
    candidates and recurrent projections (4H a step). At 1000 nt (64 sequences, hidden
    128) each of these arrays is larger than glibc's largest mapping threshold (32
    MiB), so allocated afresh it was mapped and faulted in again every step."""
    cells = (steps + 1) * b * hid if cell == "lstm" else 0
    return steps * b * 4 * hid + cells


def _rows_of(dout: torch.Tensor) -> torch.Tensor:
    """The (T, B, H) gradient of a layer's outputs as the backward kernels read it: in
    place when each (step, sequence) row is contiguous, as in the slice of the joined
    directions' gradient that _Join hands back (a copy of it was 1.4 ms of a BiLSTM
    step, on each direction's thread)."""
    return dout if dout.stride(2) == 1 else dout.contiguous()


def _layer_input(ctx: Any, x_tm: torch.Tensor) -> torch.Tensor:
    """The (B, T, C) input of the layer whose backward pass ``ctx`` serves, from its
    saved time-major rows."""
    b, steps, c = ctx.shape
    return x_tm.view(steps, b, c).transpose(0, 1)


def _grad_storage(
    ctx: Any, x_tm: torch.Tensor, w_hh: torch.Tensor, g: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """What a backward kernel fills for a layer's weights and input: the recurrent
    weights' gradient (P, G, H) and the input weights' gradient transposed (P, K, G),
    one of each for each of the P pieces of the batch, zeroed for the kernel to add to,
    and the (T, B, K) input gradient, written whole, when the input needs one; then the
    pieces' first rows and B (int32, P + 1): those of ``tensor_split(P)``, as
    models.recurrent cuts a batch for its threads."""
    b, steps, k = ctx.shape
    dx = x_tm.new_empty((steps, b, k)) if ctx.needs_input_grad[0] else None
    p = ctx.pieces
    sizes = [len(piece) for piece in torch.arange(b).tensor_split(p)]
    cuts = torch.tensor([0, *sizes], dtype=torch.int32).cumsum(0, dtype=torch.int32)
    return w_hh.new_zeros((p, *w_hh.shape)), w_hh.new_zeros((p, k, g)), dx, cuts


def _fold(acc: torch.Tensor) -> torch.Tensor:
    """acc[0] + acc[1] + ... in that order: how runtime.run_concurrently adds the
    gradients of pieces run on separate threads, so one call gives the same bits."""
    total = acc[0]
    for part in acc[1:]:
        total = total + part
    return total


def _give_back(ctx: Any) -> None:
    """Return the storage a training step kept (ctx.buffer) for the next step."""
    if ctx.buffer is not None:
        _BUFFERS.give(ctx.buffer)
        ctx.buffer = None


def _lstm_forward(
    x: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
    reverse: bool,
    buf: torch.Tensor | None = None,
) -> tuple[torch.Tensor, ...]:
    """Run the LSTM kernel for training: (x_tm, hs, cs, act), every step's cell states
    and gates kept for the backward pass. The gates and cell states go in ``buf`` (1-D,
    of at least _kept("lstm", steps, b, hid) floats) if given."""
    b, steps, _ = x.shape
    hid = w_hh.shape[1]
    x_tm = _time_major(x)
    need = _kept("lstm", steps, b, hid)
    kept = x_tm.new_empty(need) if buf is None else buf[:need]
    act = kept[: steps * b * 4 * hid].view(steps, b, 4 * hid)
    cs = kept[steps * b * 4 * hid :].view(steps + 1, b, hid)
    cs[0].zero_()
    hs = _states(x_tm, steps + 1, b, hid, reverse)
    _lstm_steps(x_tm, w_ih, w_hh, b_ih + b_hh, hs, cs, act, keep=True, reverse=reverse)
    return x_tm, hs, cs, act


def _gru_forward(
    x: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
    reverse: bool,
    buf: torch.Tensor | None = None,
) -> tuple[torch.Tensor, ...]:
    """Run the GRU kernel for training: (x_tm, hs, rz, n, hgn), the last three for every
    step (the backward pass needs them), in ``buf`` (1-D, of at least _kept("gru",
    steps, b, hid) floats) if given."""
    b, steps, _ = x.shape
    hid = w_hh.shape[1]
    x_tm = _time_major(x)
    hs = _states(x_tm, steps + 1, b, hid, reverse)
    need = _kept("gru", steps, b, hid)
    kept = x_tm.new_empty(need) if buf is None else buf[:need]
    rz, n, hgn = kept.split([steps * b * 2 * hid, steps * b * hid, steps * b * hid])
    rz, n, hgn = rz.view(steps, b, 2 * hid), n.view(steps, b, hid), hgn.view(steps, b, hid)
    work = x_tm.new_empty((2, b, 3 * hid))
    _gru_steps(x_tm, w_ih, w_hh, b_ih, b_hh, hs, rz, n, hgn, work, keep=True, reverse=reverse)
    return x_tm, hs, rz, n, hgn


class _LSTM(torch.autograd.Function):
    """nn.LSTM's single-direction layer: (x, w_ih, w_hh, b_ih, b_hh, reverse) -> (T, B,
    H)."""

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        w_ih: torch.Tensor,
        w_hh: torch.Tensor,
        b_ih: torch.Tensor,
        b_hh: torch.Tensor,
        reverse: bool,
        pieces: int,
    ) -> torch.Tensor:
        b, steps, _ = x.shape
        buf = _BUFFERS.take(_kept("lstm", steps, b, w_hh.shape[1]), x)
        x_tm, hs, cs, act = _lstm_forward(x, w_ih, w_hh, b_ih, b_hh, reverse, buf=buf)
        ctx.save_for_backward(x_tm, w_ih, w_hh, b_ih, b_hh, hs, cs, act)
        ctx.shape, ctx.reverse, ctx.pieces = x.shape, reverse, pieces
        ctx.buffer = buf  # given back by backward: the gates live in it until then
        return _outputs(hs, reverse)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x_tm, w_ih, w_hh, b_ih, b_hh, hs, cs, act = ctx.saved_tensors
        if ctx.buffer is None:
            # A second backward pass (retain_graph=True): the first gave the storage
            # of the gates and cell states back for the next step, so compute them
            # again (the same numbers).
            x = _layer_input(ctx, x_tm)
            cs, act = _lstm_forward(x, w_ih, w_hh, b_ih, b_hh, ctx.reverse)[2:]
        steps, b, g = act.shape
        hid, k = g // 4, x_tm.shape[1]
        dout, w_hh, w_ih = _rows_of(dout), w_hh.contiguous(), w_ih.contiguous()
        dw, dwih_t, dx, cuts = _grad_storage(ctx, x_tm, w_hh, g)
        db = w_hh.new_zeros((ctx.pieces, g))
        work = act.new_empty(2 * b * g + 2 * b * hid)
        dpre, dh, dc = work.split([2 * b * g, b * hid, b * hid])
        library().bsnn_lstm_backward(
            steps,
            b,
            hid,
            k,
            _ptr(dout),
            dout.stride(0),
            dout.stride(1),
            _ptr(w_hh),
            _ptr(hs),
            _ptr(act),
            _ptr(cs),
            _ptr(x_tm),
            _ptr(w_ih),
            None if dx is None else _ptr(dx),
            _ptr(dpre),
            _ptr(dw),
            _ptr(dwih_t),
            _ptr(db),
            _ptr(dh),
            _ptr(dc),
            int(ctx.reverse),
            ctx.pieces,
            _ptr(cuts),
        )
        _give_back(ctx)
        db = _fold(db)
        return _batch_first(dx), _fold(dwih_t).t().contiguous(), _fold(dw), db, db, None, None


class _GRU(torch.autograd.Function):
    """nn.GRU's single-direction layer: (x, w_ih, w_hh, b_ih, b_hh, reverse) -> (T, B,
    H)."""

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        w_ih: torch.Tensor,
        w_hh: torch.Tensor,
        b_ih: torch.Tensor,
        b_hh: torch.Tensor,
        reverse: bool,
        pieces: int,
    ) -> torch.Tensor:
        b, steps, _ = x.shape
        buf = _BUFFERS.take(_kept("gru", steps, b, w_hh.shape[1]), x)
        x_tm, hs, rz, n, hgn = _gru_forward(x, w_ih, w_hh, b_ih, b_hh, reverse, buf=buf)
        ctx.save_for_backward(x_tm, w_ih, w_hh, b_ih, b_hh, hs, rz, n, hgn)
        ctx.shape, ctx.reverse, ctx.pieces = x.shape, reverse, pieces
        ctx.buffer = buf  # given back by backward, as the LSTM's
        return _outputs(hs, reverse)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x_tm, w_ih, w_hh, b_ih, b_hh, hs, rz, n, hgn = ctx.saved_tensors
        if ctx.buffer is None:  # a second backward pass, as the LSTM's
            x = _layer_input(ctx, x_tm)
            rz, n, hgn = _gru_forward(x, w_ih, w_hh, b_ih, b_hh, ctx.reverse)[2:]
        steps, b, hid = n.shape
        g, k = 3 * hid, x_tm.shape[1]
        dout, w_hh, w_ih = _rows_of(dout), w_hh.contiguous(), w_ih.contiguous()
        dw, dwih_t, dx, cuts = _grad_storage(ctx, x_tm, w_hh, g)
        db_ih, db_hh = w_hh.new_zeros((ctx.pieces, g)), w_hh.new_zeros((ctx.pieces, g))
        work = n.new_empty(2 * b * g + 2 * b * hid)
        dxw, dhg, dh, carry = work.split([b * g, b * g, b * hid, b * hid])
        library().bsnn_gru_backward(
            steps,
            b,
            hid,
            k,
            _ptr(dout),
            dout.stride(0),
            dout.stride(1),
            _ptr(w_hh),
            _ptr(hs),
            _ptr(rz),
            _ptr(n),
            _ptr(hgn),
            _ptr(x_tm),
            _ptr(w_ih),
            None if dx is None else _ptr(dx),
            _ptr(dw),
            _ptr(dwih_t),
            _ptr(db_ih),
            _ptr(db_hh),
            _ptr(dxw),
            _ptr(dhg),
            _ptr(dh),
            _ptr(carry),
            int(ctx.reverse),
            ctx.pieces,
            _ptr(cuts),
        )
        _give_back(ctx)
        return (
            _batch_first(dx),
            _fold(dwih_t).t().contiguous(),
            _fold(dw),
            _fold(db_ih),
            _fold(db_hh),
            None,
            None,
        )


def _wants_grad(*tensors: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def lstm_layer(
    x: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
    reverse: bool = False,
    pieces: int = 1,
) -> torch.Tensor:
    """One LSTM direction as nn.LSTM computes it, batch-first (B, T, C) -> (B, T, H);
    with ``reverse``, over each sequence backwards in time (the backward direction of a
    bidirectional layer whose sequences all fill the T steps), outputs in x's order.
    With ``pieces``, training gives the bits of that many calls on the pieces of
    ``x.tensor_split(pieces)`` whose weight gradients are added in order (the kernels'
    PIECES), in one call."""
    if _wants_grad(x, w_ih, w_hh, b_ih, b_hh):
        return _LSTM.apply(x, w_ih, w_hh, b_ih, b_hh, reverse, pieces).transpose(0, 1)
    return _lstm_infer(x, w_ih, w_hh, b_ih, b_hh, reverse)


def gru_layer(
    x: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
    reverse: bool = False,
    pieces: int = 1,
) -> torch.Tensor:
    """One GRU direction as nn.GRU computes it, batch-first (B, T, C) -> (B, T, H);
    ``reverse`` and ``pieces`` as for lstm_layer."""
    if _wants_grad(x, w_ih, w_hh, b_ih, b_hh):
        return _GRU.apply(x, w_ih, w_hh, b_ih, b_hh, reverse, pieces).transpose(0, 1)
    return _gru_infer(x, w_ih, w_hh, b_ih, b_hh, reverse)


def _lstm_infer(
    x: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
    reverse: bool,
) -> torch.Tensor:
    """One LSTM direction without gradients, batch-first (B, T, C) -> (B, T, H): the
    kernel keeps one step's gates and two steps' cell states, so memory does not grow
    with the length beyond the inputs and outputs."""
    b, steps, _ = x.shape
    hid = w_hh.shape[1]
    hs = _states(x, steps + 1, b, hid, reverse)
    cs, act = x.new_zeros((2, b, hid)), x.new_empty((b, 4 * hid))
    _lstm_steps(_time_major(x), w_ih, w_hh, b_ih + b_hh, hs, cs, act, False, reverse)
    return _outputs(hs, reverse).transpose(0, 1)


def _gru_infer(
    x: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
    reverse: bool,
) -> torch.Tensor:
    """One GRU direction without gradients, batch-first (B, T, C) -> (B, T, H)."""
    b, steps, _ = x.shape
    hid = w_hh.shape[1]
    hs = _states(x, steps + 1, b, hid, reverse)
    rz, n, hgn = x.new_empty((b, 2 * hid)), x.new_empty((b, hid)), x.new_empty((b, hid))
    work = x.new_empty((2, b, 3 * hid))
    _gru_steps(_time_major(x), w_ih, w_hh, b_ih, b_hh, hs, rz, n, hgn, work, False, reverse)
    return _outputs(hs, reverse).transpose(0, 1)


# -------------------------------------------------------------------------- convolution


def conv_layer_infer(
    x: torch.Tensor,
    lengths: torch.Tensor,
    weight: torch.Tensor,
    norm: torch.nn.BatchNorm1d,
    dilation: int,
) -> torch.Tensor:
    """One convolution of models.conv.ConvStack in inference, with its batch norm (the
    running statistics) and ReLU, batch-first (B, L, C) -> (B, L, F): the compiled
    kernel (bsnn_conv_forward), which bioseqnn.engine.light calls too, so both give the
    same bits. Positions at or past a sequence's length read as 0 and come out 0. The
    batch is split over the worker threads by sequences, which leaves each sequence's
    values as they are."""
    from ..runtime import concurrency, map_on_workers

    x, lengths = x.contiguous(), lengths.to(torch.int32).contiguous()
    b, width, _ = x.shape
    xs, lens = x.numpy(), lengths.numpy()
    packed = weight.detach().permute(2, 1, 0).contiguous().numpy()  # (Kw, C, F)
    assert norm.running_mean is not None and norm.running_var is not None
    scale, shift = kernels.norm_fold(
        norm.weight.detach().numpy(),
        norm.bias.detach().numpy(),
        norm.running_mean.numpy(),
        norm.running_var.numpy(),
        float(norm.eps),
    )
    out = x.new_empty((b, width, packed.shape[2]))
    outs = out.numpy()

    def run(start: int, stop: int) -> None:
        kernels.conv_forward(
            xs[start:stop], lens[start:stop], packed, scale, shift, dilation, outs[start:stop]
        )

    parts = max(1, min(concurrency(), b))
    cuts = [b * i // parts for i in range(parts + 1)]
    map_on_workers(run, list(zip(cuts, cuts[1:], strict=False)))
    return out
