"""Recurrent backbones: Elman RNN, LSTM and GRU, stacked and optionally bidirectional.

Batches are right-padded. The forward direction never sees padding (it comes after
every real position). The backward direction runs on each sequence reversed *within
its own length*, so it too starts at the sequence's true end. This keeps predictions
independent of padding without pack_padded_sequence, whose backward pass on CPU is
dozens of times slower than a padded batch.

On CPU, every direction of every LSTM/GRU layer (and, with spare threads, every slice
of the batch) is an independent recurrence, run concurrently on worker threads
(``_fast_layer``, runtime.run_concurrently). Each runs through, in order of preference:

- the compiled kernels (native.py, bioseqnn/csrc/rnn.c), built at install time: the
  whole time loop in C, one register-blocked product and one fused gate pass per step;
- without them (no compiler at install, float64, ``BIOSEQNN_NATIVE=0``): torch's fused
  ``torch.lstm`` for the LSTM, and for the GRU ``recurrent_scan`` below, a recurrence
  written with torch operations and a hand-derived backward pass (torch has no fused
  CPU GRU, and its generic one builds ~15 autograd nodes per step).

The equations are exactly those of ``nn.LSTM``/``nn.GRU`` (same gate order, same
biases), and the parameters live in ordinary ``nn.LSTM``/``nn.GRU`` modules, so model
files keep their parameter names. On CUDA the cuDNN kernels are used unchanged.
tests/unit/test_models_recurrent.py and tests/unit/test_models_native.py check outputs and
gradients against torch.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..runtime import (
    concurrency,
    map_on_workers,
    one_thread,
    run_concurrently,
    threads_free,
)
from . import native
from .base import Backbone, Dropout, ModelConfig, exporting, register, stepwise

_CELLS: dict[str, Any] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


def reverse_index(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """(B, width) index that reverses positions < length and leaves padding in place."""
    pos = torch.arange(width, device=lengths.device)[None, :]
    last = (lengths - 1)[:, None]
    return torch.where(pos <= last, last - pos, pos)


def _rows(h: torch.Tensor) -> torch.Tensor | None:
    """h (B, T, C) as a (T * B, C) view of time-major rows, if its storage allows."""
    try:
        return h.transpose(0, 1).view(h.shape[0] * h.shape[1], h.shape[2])
    except RuntimeError:
        return None


def _reversed(h: torch.Tensor, rev: torch.Tensor) -> torch.Tensor:
    """``h.gather(1, rev.expand(...))``, as whole rows. A time-major view (the recurrent
    kernels' output, or a slice of it) is read and written as (T * B, C) rows, anything
    else as (B * T, C) rows: the result keeps its layout, so no transposing copy is
    made. A row copy is about four times faster than torch's element-wise gather,
    which was a tenth of a BiLSTM training step."""
    b, steps, c = h.shape
    r = rev.reshape(b, steps)
    seqs = torch.arange(b, device=h.device)[:, None]
    rows = _rows(h) if b > 1 else None
    if rows is not None:
        picked = rows.index_select(0, (r * b + seqs).t().reshape(-1))
        return picked.view(steps, b, c).transpose(0, 1)
    rows = h.contiguous().view(b * steps, c)
    return rows.index_select(0, (r + seqs * steps).reshape(-1)).view(b, steps, c)


class _Reverse(torch.autograd.Function):
    """A within-length reversal, whose gradient is the same reversal: it is its own
    inverse. torch's gradient of gather is a generic scatter_add, a twentieth of a
    BiLSTM training step on long sequences."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, rev: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(rev)
        return _reversed(h, rev)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (rev,) = ctx.saved_tensors
        return _reversed(grad, rev), None


def reverse_within(h: torch.Tensor, rev: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of ``h`` (B, T, C) within its length; rev from reverse_index,
    with a trailing unit axis."""
    return _Reverse.apply(h, rev)


# --------------------------------------------------------------------------- CPU kernels
#
# Shapes: D directions (1 or 2), T steps, B sequences, H hidden units, G = 4H (LSTM) or
# 3H (GRU). Stored sequences are (D, T, B, .): step t is the slice [:, t], and each
# direction's (T * B, .) block is contiguous, so the weight gradients are one batched
# matrix product over all steps without a copy. Every per-step result is written into
# preallocated storage (out=); the per-step derivative factors are computed inside the
# backward loop on small, cache-resident slices rather than as whole-sequence arrays,
# which would cost more in memory traffic than they save in calls.
#
# tanh is computed as 2 sigmoid(2x) - 1: torch's CPU tanh is about eight times slower
# than its sigmoid. The factor 2 of the gate pre-activations is folded into the weights
# before the kernels run (exact in floating point), so the kernels see doubled
# pre-activations for the gates that take a tanh.


def _lstm_forward(
    xg: torch.Tensor, w_hh: torch.Tensor, keep: bool
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """One LSTM layer over all steps.

    xg: (D, T, B, 4H) input projections with both biases added; w_hh: (D, 4H, H); the
    cell-gate (g) rows of both are doubled. Returns hs (D, T + 1, B, H) with hs[:, 0] = 0
    and, when ``keep``, what the backward pass needs: the gates after their
    nonlinearity, the cell states (D, T + 1, B, H) and tanh of the cell states.
    """
    d, steps, b, g4 = xg.shape
    hid = g4 // 4
    w_t = w_hh.transpose(1, 2)
    hs = xg.new_zeros((d, steps + 1, b, hid))
    n_keep = steps if keep else 1
    act = xg.new_empty((d, n_keep, b, g4))
    cs = xg.new_zeros((d, steps + 1 if keep else 2, b, hid))
    tcs = xg.new_empty((d, n_keep, b, hid))
    pre = xg.new_empty((d, b, g4))
    fc = xg.new_empty((d, b, hid))
    minus1 = xg.new_full((), -1.0)
    for t in range(steps):
        k = t if keep else 0
        a, tc = act[:, k], tcs[:, k]
        c_prev, c = (cs[:, t], cs[:, t + 1]) if keep else (cs[:, t % 2], cs[:, (t + 1) % 2])
        torch.baddbmm(xg[:, t], hs[:, t], w_t, out=pre)
        torch.sigmoid(pre, out=a)
        g = a[..., 2 * hid : 3 * hid]
        torch.add(minus1, g, alpha=2, out=g)  # tanh of the undoubled pre-activation
        torch.mul(a[..., hid : 2 * hid], c_prev, out=fc)
        torch.addcmul(fc, a[..., :hid], g, out=c)
        torch.mul(c, 2, out=fc)
        torch.sigmoid(fc, out=tc)
        torch.add(minus1, tc, alpha=2, out=tc)  # tanh(c)
        torch.mul(a[..., 3 * hid :], tc, out=hs[:, t + 1])
    return hs, ((act, cs, tcs) if keep else ())


def _lstm_backward(
    dout: torch.Tensor,
    w_hh: torch.Tensor,
    hs: torch.Tensor,
    act: torch.Tensor,
    cs: torch.Tensor,
    tcs: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients for xg and w_hh given dout (D, T, B, H), the gradient of hs[:, 1:]."""
    d, steps, b, g4 = act.shape
    hid = g4 // 4
    one, half = act.new_full((), 1.0), act.new_full((), 0.5)
    dpre = torch.empty_like(act)
    dh = dout[:, steps - 1].clone()
    dc = act.new_zeros((d, b, hid))
    tmp = act.new_empty((d, b, hid))
    for t in range(steps - 1, -1, -1):
        a, dp, tc = act[:, t], dpre[:, t], tcs[:, t]
        i, g, o = a[..., :hid], a[..., 2 * hid : 3 * hid], a[..., 3 * hid :]
        if t < steps - 1:
            torch.baddbmm(dout[:, t], dpre[:, t + 1], w_hh, out=dh)
            dc.mul_(act[:, t + 1, :, hid : 2 * hid])
        # dc += dh * o * (1 - tanh(c)^2)
        torch.addcmul(one, tc, tc, value=-1, out=tmp)
        tmp.mul_(o)
        dc.addcmul_(dh, tmp)
        # sigmoid' = s (1 - s) for i, f, o (the g slice is overwritten below)
        torch.addcmul(a, a, a, value=-1, out=dp)
        dp[..., 3 * hid :].mul_(tc).mul_(dh)
        dp[..., :hid].mul_(g)
        dp[..., hid : 2 * hid].mul_(cs[:, t])
        dp[..., : 2 * hid].unflatten(-1, (2, hid)).mul_(dc.unsqueeze(-2))
        # the g pre-activation is doubled: d g / d pre = (1 - g^2) / 2
        dg = dp[..., 2 * hid : 3 * hid]
        torch.addcmul(half, g, g, value=-0.5, out=dg)
        dg.mul_(i).mul_(dc)
    dw = torch.bmm(
        dpre.view(d, steps * b, g4).transpose(1, 2), hs[:, :-1].reshape(d, steps * b, hid)
    )
    return dpre, dw


def _gru_forward(
    xg: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor, keep: bool
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """One GRU layer over all steps.

    xg: (D, T, B, 3H) input projections with b_ih; w_hh: (D, 3H, H); b_hh: (D, 3H); the
    candidate (n) rows of all three are doubled. Returns hs (D, T + 1, B, H) with
    hs[:, 0] = 0 and, when ``keep``, the reset/update gates, the candidate states and
    the recurrent projections (whose n part is 2 (W_hn h + b_hn)).
    """
    d, steps, b, g3 = xg.shape
    hid = g3 // 3
    w_t = w_hh.transpose(1, 2)
    bias = b_hh.unsqueeze(1)
    hs = xg.new_empty((d, steps + 1, b, hid))
    hs[:, 0].zero_()
    n_keep = steps if keep else 1
    rzs = xg.new_empty((d, n_keep, b, 2 * hid))
    ns = xg.new_empty((d, n_keep, b, hid))
    hgs = xg.new_empty((d, n_keep, b, g3))
    if keep:  # every step's projection starts from the bias: one copy, not one a step
        hgs.copy_(bias.unsqueeze(1).expand_as(hgs))
    diff = xg.new_empty((d, b, hid))
    minus1 = xg.new_full((), -1.0)
    with one_thread():
        for t in range(steps):
            k = t if keep else 0
            rz, n, hg = rzs[:, k], ns[:, k], hgs[:, k]
            if keep:
                hg.baddbmm_(hs[:, t], w_t)
            else:
                torch.baddbmm(bias, hs[:, t], w_t, out=hg)
            torch.add(xg[:, t, :, : 2 * hid], hg[..., : 2 * hid], out=rz)
            torch.sigmoid(rz, out=rz)
            torch.addcmul(xg[:, t, :, 2 * hid :], rz[..., :hid], hg[..., 2 * hid :], out=n)
            torch.sigmoid(n, out=n)
            torch.add(minus1, n, alpha=2, out=n)  # tanh of the undoubled pre-activation
            torch.sub(hs[:, t], n, out=diff)
            torch.addcmul(n, rz[..., hid:], diff, out=hs[:, t + 1])
    return hs, ((rzs, ns, hgs) if keep else ())


def _gru_backward(
    dout: torch.Tensor,
    w_hh: torch.Tensor,
    hs: torch.Tensor,
    rzs: torch.Tensor,
    ns: torch.Tensor,
    hgs: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients for xg, w_hh and b_hh given dout (D, T, B, H), the gradient of hs[:, 1:]."""
    d, steps, b, hid = ns.shape
    half = ns.new_full((), 0.5)
    dhg = torch.empty_like(hgs)  # gradient of the recurrent projections
    dn = torch.empty_like(ns)  # gradient of the (doubled) candidate pre-activation
    dh = dout[:, steps - 1].clone()
    tmp = ns.new_empty((d, b, hid))
    with one_thread():
        for t in range(steps - 1, -1, -1):
            rz, n, dg = rzs[:, t], ns[:, t], dhg[:, t]
            r, z = rz[..., :hid], rz[..., hid:]
            if t < steps - 1:
                dh = torch.addcmul(dout[:, t], dh, rzs[:, t + 1, :, hid:])
                dh.baddbmm_(dhg[:, t + 1], w_hh)
            # h = n + z (h_prev - n): candidate, then through the doubled tanh
            torch.addcmul(half, n, n, value=-0.5, out=tmp)
            tmp.mul_(dh)
            torch.addcmul(tmp, tmp, z, value=-1, out=dn[:, t])
            # sigmoid' = s (1 - s) for r and z
            torch.addcmul(rz, rz, rz, value=-1, out=dg[..., : 2 * hid])
            torch.sub(hs[:, t], n, out=tmp)
            dg[..., hid : 2 * hid].mul_(tmp).mul_(dh)
            dg[..., :hid].mul_(hgs[:, t, :, 2 * hid :]).mul_(dn[:, t])
            torch.mul(dn[:, t], r, out=dg[..., 2 * hid :])
    dw = torch.bmm(
        dhg.view(d, steps * b, 3 * hid).transpose(1, 2), hs[:, :-1].reshape(d, steps * b, hid)
    )
    db = dhg.sum(dim=(1, 2))
    # the input projections' gradient is dhg with dn for its n part: written over dhg
    dhg[..., 2 * hid :] = dn
    return dhg, dw, db


class _LSTMScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, xg: torch.Tensor, w_hh: torch.Tensor) -> torch.Tensor:
        hs, saved = _lstm_forward(xg, w_hh, keep=True)
        ctx.save_for_backward(w_hh, hs, *saved)
        return hs[:, 1:]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w_hh, hs, act, cs, tcs = ctx.saved_tensors
        return _lstm_backward(dout.contiguous(), w_hh, hs, act, cs, tcs)


class _GRUScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, xg: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
        hs, saved = _gru_forward(xg, w_hh, b_hh, keep=True)
        ctx.save_for_backward(w_hh, hs, *saved)
        return hs[:, 1:]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        w_hh, hs, rzs, ns, hgs = ctx.saved_tensors
        return _gru_backward(dout.contiguous(), w_hh, hs, rzs, ns, hgs)


def recurrent_scan(
    cell: str,
    x: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
) -> torch.Tensor:
    """Run D independent LSTM or GRU layers (zero initial state) over time-major inputs.

    x: (D, T, B, C); w_ih: (D, G, C); w_hh: (D, G, H); b_ih, b_hh: (D, G), with the
    gate order and meaning of ``nn.LSTM``/``nn.GRU``. Returns (D, T, B, H).

    Under autocast it still runs in the weights' precision, as the compiled kernels do:
    its steps write into storage of that precision, which a lower-precision product
    cannot fill.
    """
    with torch.autocast(x.device.type, enabled=False):
        return _scan(cell, x.to(w_ih.dtype), w_ih, w_hh, b_ih, b_hh)


def _scan(
    cell: str,
    x: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
) -> torch.Tensor:
    d, steps, b, c = x.shape
    hid = w_hh.shape[2]
    # Double the rows that feed a tanh (see the note above _lstm_forward).
    scale = x.new_ones(w_hh.shape[1])
    scale[2 * hid : 3 * hid if cell == "lstm" else None] = 2.0
    bias = (b_ih + b_hh if cell == "lstm" else b_ih) * scale
    w_ih, w_hh, b_hh = w_ih * scale[:, None], w_hh * scale[:, None], b_hh * scale
    xg = torch.baddbmm(bias.unsqueeze(1), x.reshape(d, steps * b, c), w_ih.transpose(1, 2))
    xg = xg.unflatten(1, (steps, b))
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (xg, w_hh, b_hh))
    if cell == "lstm":
        if grad:
            return _LSTMScan.apply(xg, w_hh)
        return _lstm_forward(xg, w_hh, keep=False)[0][:, 1:]
    if grad:
        return _GRUScan.apply(xg, w_hh, b_hh)
    return _gru_forward(xg, w_hh, b_hh, keep=False)[0][:, 1:]


class RecurrentBackbone(Backbone):
    def __init__(self, cell: str, config: ModelConfig, in_channels: int) -> None:
        super().__init__()
        cls = _CELLS[cell]
        self.cell = cell
        hidden, layers = config.hidden_size, config.layers
        self.directions = 2 if config.bidirectional else 1
        self.out_dim = hidden * self.directions
        kwargs: dict[str, Any] = {"nonlinearity": "tanh"} if cell == "rnn" else {}
        sizes = [in_channels] + [self.out_dim] * (layers - 1)
        self.forward_layers = nn.ModuleList(
            cls(size, hidden, batch_first=True, **kwargs) for size in sizes
        )
        self.backward_layers = (
            nn.ModuleList(cls(size, hidden, batch_first=True, **kwargs) for size in sizes)
            if config.bidirectional
            else nn.ModuleList()
        )
        self.between = Dropout(config.dropout)
        # The hand-written CPU kernels; False falls back to nn.LSTM/nn.GRU (for comparison).
        self.fast_cpu = cell in ("lstm", "gru")
        # Packed sequences: None = on CUDA only, where cuDNN's packed kernels skip the
        # padding; on CPU packing makes training dozens of times slower.
        self.pack_sequences: bool | None = None

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = x
        rev = None
        if self.directions == 2:
            rev = reverse_index(lengths, x.shape[1]).unsqueeze(-1)
        # exporting: nn.LSTM/nn.GRU (same equations), which trace to ONNX LSTM/GRU nodes
        fast = self.fast_cpu and x.device.type == "cpu" and not exporting()
        pack = self.pack_sequences
        if pack is None:
            pack = x.device.type == "cuda" and not exporting()
        run = _packed_run(lengths, x.shape[1]) if pack else _padded_run
        # every sequence fills the width: the backward direction is a reversal in time
        # (asked only on the kernels' path: an export must not read the lengths' values)
        flip = (
            fast
            and not pack
            and rev is not None
            and lengths.numel() > 0
            and int(lengths.min()) == x.shape[1]
        )
        for i, fwd in enumerate(self.forward_layers):
            if i:
                h = self.between(h)
            if stepwise():
                h = self._stepwise_layer(i, h, rev)
                continue
            if fast and not pack:
                h = self._fast_layer(i, h, rev, flip)
                continue
            out_f = run(fwd, h)
            if rev is not None:
                h_rev = h.gather(1, rev.expand(-1, -1, h.shape[2]))
                out_b = run(self.backward_layers[i], h_rev)
                out_b = out_b.gather(1, rev.expand(-1, -1, out_b.shape[2]))
                h = torch.cat([out_f, out_b], dim=2)
            else:
                h = out_f
        return h, lengths

    def _fast_layer(
        self, i: int, h: torch.Tensor, rev: torch.Tensor | None, flip: bool
    ) -> torch.Tensor:
        """Layer ``i`` on CPU: every direction, and with spare threads every slice of the
        batch, is an independent recurrence run concurrently (runtime.run_concurrently).
        A backward-direction job reverses its own input and output on its worker thread
        (or, with ``flip``, runs backwards in time: see _direction), and the directions'
        outputs are joined by the worker threads too (_join): on the calling thread these
        copies were a sixth of a BiLSTM training step."""
        directions = 1 if rev is None else 2
        threads = concurrency() // directions
        if self.cell == "gru" and rev is None and not native.usable(h):
            # recurrent_scan's steps are many small torch calls that hold the GIL, so
            # halves of the batch on two threads mostly wait for each other (a GRU of 128
            # units on 200 nt: about 675 sequences/s in halves, 1,000-1,100 in one piece
            # on the calling thread, torch's threads doing the products outside the time
            # loop). Two directions keep a thread each: one loop over both as a batch was
            # no faster.
            threads = 1
        chunks = _batch_chunks(h.shape[0], threads)
        sums = 1
        if chunks > 1 and not threads_free() and native.usable(h):
            # One thread runs this step (the machine is busy: engine.train): the whole
            # batch in one call, its pieces' weight gradients summed apart, gives the
            # bits of the pieces on their threads without their smaller products.
            chunks, sums = 1, chunks
        pieces = h.tensor_split(chunks)
        fwd = _weights(self.forward_layers[i])
        jobs: list[tuple[Any, ...]] = [(piece, *fwd) for piece in pieces]
        if rev is not None:
            bwd = _weights(self.backward_layers[i])
            revs = rev.tensor_split(chunks)
            jobs += [(piece, *bwd, r) for piece, r in zip(pieces, revs, strict=True)]
        cell = partial(
            _direction,
            _lstm_layer if self.cell == "lstm" else _gru_layer,
            flip=flip,
            pieces=sums,
        )
        outs = run_concurrently(cell, jobs)
        if len(outs) == 1:
            return outs[0]
        # The kernels write time-major (T, B, H) storage: join the pieces that way, a
        # copy of contiguous rows, and hand on a (B, T, H * directions) view of the
        # result. A batch-major join cost a transposing copy (3.4 ms of a 55 ms BiLSTM
        # step).
        return _join([o.transpose(0, 1) for o in outs], directions).transpose(0, 1)

    def _stepwise_layer(self, i: int, h: torch.Tensor, rev: torch.Tensor | None) -> torch.Tensor:
        """Layer ``i`` one step at a time with plain operations (models.base.stepwise)."""
        out = stepwise_direction(self.cell, h, self.forward_layers[i])
        if rev is None:
            return out
        back = stepwise_direction(self.cell, reverse_within(h, rev), self.backward_layers[i])
        return torch.cat([out, reverse_within(back, rev)], dim=2)


def stepwise_direction(cell: str, x: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """One direction of one layer, batch-first (B, T, C) -> (B, T, H), zero initial
    state, written step by step with the equations of nn.RNN (tanh), nn.LSTM and nn.GRU:
    every nonlinearity and every product is a separate torch call."""
    w_ih, w_hh, b_ih, b_hh = (
        getattr(module, f"{name}_l0") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    )
    xg = nn.functional.linear(x, w_ih, b_ih)
    h = x.new_zeros((x.shape[0], w_hh.shape[1]))
    c = h
    outs = []
    for t in range(x.shape[1]):
        hg = nn.functional.linear(h, w_hh, b_hh)
        if cell == "lstm":
            i, f, g, o = (xg[:, t] + hg).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        elif cell == "gru":
            xr, xz, xn = xg[:, t].chunk(3, dim=1)
            hr, hz, hn = hg.chunk(3, dim=1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
            h = (1 - z) * n + z * h
        else:
            h = torch.tanh(xg[:, t] + hg)
        outs.append(h)
    return torch.stack(outs, dim=1)


def _padded_run(module: nn.Module, h: torch.Tensor) -> torch.Tensor:
    return module(h)[0]


def _packed_run(lengths: torch.Tensor, width: int) -> Any:
    """Run a recurrent module on packed sequences: each one for exactly its length.

    The backward direction's input is already reversed within each length, so packing
    it gives the same states at every real position as the padded path.
    """
    cpu_lengths = lengths.detach().cpu()

    def run(module: nn.Module, h: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(h, cpu_lengths, batch_first=True, enforce_sorted=False)
        out, _ = module(packed)
        return pad_packed_sequence(out, batch_first=True, total_length=width)[0]

    return run


MIN_CHUNK = 16
"""Fewest sequences per concurrent slice of a batch: smaller slices waste the matrix units."""


def _batch_chunks(batch: int, threads: int) -> int:
    return max(1, min(threads, batch // MIN_CHUNK))


def _weights(mod: Any) -> tuple[torch.Tensor, ...]:
    """A one-layer nn.LSTM/nn.GRU's (w_ih, w_hh, b_ih, b_hh)."""
    return (mod.weight_ih_l0, mod.weight_hh_l0, mod.bias_ih_l0, mod.bias_hh_l0)


def _direction(
    layer: Any,
    x: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
    rev: torch.Tensor | None = None,
    flip: bool = False,
    pieces: int = 1,
) -> torch.Tensor:
    """``layer`` (_lstm_layer or _gru_layer), over each sequence reversed within its
    length when ``rev`` (from reverse_index) is given: a backward direction, its output
    in the input's order. With ``flip`` every sequence fills x's width, so that reversal
    is one in time, which the layer makes itself (the compiled kernels run the steps
    backwards): the same numbers without copying the inputs, the outputs and their
    gradient (7% of a BiLSTM training step). ``pieces``: see native.lstm_layer."""
    if rev is None:
        return layer(x, w_ih, w_hh, b_ih, b_hh, pieces=pieces)
    if flip:
        return layer(x, w_ih, w_hh, b_ih, b_hh, reverse=True, pieces=pieces)
    return reverse_within(layer(reverse_within(x, rev), w_ih, w_hh, b_ih, b_hh, pieces=pieces), rev)


class _Join(torch.autograd.Function):
    """Time-major pieces (T, B_i, H): ``directions`` groups of batch slices, joined into
    (T, B, H * directions) (slices along B, groups along the features), the copy split
    by steps among the worker threads. The gradient of each piece is a view of the
    joined gradient."""

    @staticmethod
    def forward(ctx: Any, directions: int, *parts: torch.Tensor) -> torch.Tensor:
        k = len(parts) // directions
        steps, hid = parts[0].shape[0], parts[0].shape[2]
        batch = sum(p.shape[1] for p in parts[:k])
        out = parts[0].new_empty((steps, batch, hid * directions))
        places = []
        for d in range(directions):
            b0 = 0
            for p in parts[d * k : (d + 1) * k]:
                places.append((b0, b0 + p.shape[1], d * hid, (d + 1) * hid))
                b0 += p.shape[1]
        ctx.places = places

        def copy(t0: int, t1: int) -> None:
            for p, (b0, b1, f0, f1) in zip(parts, places, strict=True):
                out[t0:t1, b0:b1, f0:f1].copy_(p[t0:t1])

        threads = max(1, min(concurrency(), steps))
        cuts = [steps * j // threads for j in range(threads + 1)]
        map_on_workers(copy, list(zip(cuts, cuts[1:], strict=False)))
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        return (None, *(grad[:, b0:b1, f0:f1] for b0, b1, f0, f1 in ctx.places))


def _join(parts: list[torch.Tensor], directions: int) -> torch.Tensor:
    """_Join: time-major pieces (T, B_i, H), ``directions`` groups of batch slices, into
    (T, B, H * directions)."""
    return _Join.apply(directions, *parts)


def _lstm_layer(
    x: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
    reverse: bool = False,
    pieces: int = 1,
) -> torch.Tensor:
    """One LSTM direction, batch-first (B, T, C) -> (B, T, H), zero initial state; with
    ``reverse``, backwards in time (outputs in x's order).

    The compiled kernel when built (native.py; ``pieces`` as there); otherwise torch's
    own CPU LSTM (a fused oneDNN kernel), which is faster than any Python-level loop.
    """
    if native.usable(x, w_hh):
        return native.lstm_layer(x, w_ih, w_hh, b_ih, b_hh, reverse, pieces)
    if reverse:
        return _lstm_layer(x.flip(1), w_ih, w_hh, b_ih, b_hh).flip(1)
    h0 = x.new_zeros((1, x.shape[0], w_hh.shape[1]))
    train = torch.is_grad_enabled() and any(t.requires_grad for t in (x, w_ih, w_hh, b_ih, b_hh))
    return torch.lstm(x, (h0, h0), [w_ih, w_hh, b_ih, b_hh], True, 1, 0.0, train, False, True)[0]


def _gru_layer(
    x: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
    reverse: bool = False,
    pieces: int = 1,
) -> torch.Tensor:
    """One GRU direction, batch-first (B, T, C) -> (B, T, H), zero initial state (with
    ``reverse``, backwards in time): the compiled kernel when built (native.py;
    ``pieces`` as there), otherwise recurrent_scan."""
    if native.usable(x, w_hh):
        return native.gru_layer(x, w_ih, w_hh, b_ih, b_hh, reverse, pieces)
    if reverse:
        return _gru_layer(x.flip(1), w_ih, w_hh, b_ih, b_hh).flip(1)
    out = recurrent_scan(
        "gru",
        x.transpose(0, 1).unsqueeze(0),
        w_ih.unsqueeze(0),
        w_hh.unsqueeze(0),
        b_ih.unsqueeze(0),
        b_hh.unsqueeze(0),
    )
    return out[0].transpose(0, 1)


@register("rnn")
def _rnn(config: ModelConfig, in_channels: int) -> Backbone:
    return RecurrentBackbone("rnn", config, in_channels)


@register("lstm")
def _lstm(config: ModelConfig, in_channels: int) -> Backbone:
    return RecurrentBackbone("lstm", config, in_channels)


@register("gru")
def _gru(config: ModelConfig, in_channels: int) -> Backbone:
    return RecurrentBackbone("gru", config, in_channels)
