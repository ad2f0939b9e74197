"""The CPU speed path of the recurrent backbone computes exactly what torch's modules do.

RecurrentBackbone runs LSTM/GRU layers through hand-written kernels and concurrent
per-direction / per-slice recurrences (``fast_cpu``); ``fast_cpu = False`` runs the same
parameters through nn.LSTM/nn.GRU. Outputs and gradients (inputs and every parameter)
must agree, with one thread and with several, for training and inference.
"""

from __future__ import annotations

import pytest
import torch

from bioseqnn.models import ModelConfig, SequenceModel
from bioseqnn.models.recurrent import _join, recurrent_scan
from bioseqnn.runtime import run_concurrently


@pytest.fixture
def threads():
    saved = torch.get_num_threads()
    yield lambda n: torch.set_num_threads(n)
    torch.set_num_threads(saved)


def _run(model: SequenceModel, x: torch.Tensor, lengths: torch.Tensor, fast: bool):
    model.backbone.fast_cpu = fast
    model.zero_grad()
    x = x.detach().clone().requires_grad_(True)
    y = model(x, lengths)
    weights = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)
    (y * weights).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    with torch.inference_mode():
        y_inf = model(x.detach(), lengths)
    return y.detach(), x.grad, grads, y_inf


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("arch", ["lstm", "gru"])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_same_outputs_and_gradients_as_torch(
    arch, bidirectional, layers, n_threads, dtype, tol, threads
):
    threads(n_threads)
    torch.manual_seed(layers * 10 + bidirectional)
    config = ModelConfig(
        arch=arch,
        bidirectional=bidirectional,
        layers=layers,
        hidden_size=24,
        pooling="mean",
        dropout=0.0,
    )
    model = SequenceModel(config, 4, 3).to(dtype)
    x = torch.randn(40, 17, 4, dtype=dtype)
    lengths = torch.randint(1, 18, (40,))
    lengths[0] = 17
    fast = _run(model, x, lengths, True)
    ref = _run(model, x, lengths, False)
    torch.testing.assert_close(fast[0], ref[0], atol=tol, rtol=tol)
    torch.testing.assert_close(fast[3], ref[0], atol=tol, rtol=tol)
    torch.testing.assert_close(fast[1], ref[1], atol=tol, rtol=tol)
    assert fast[2].keys() == ref[2].keys()
    for name in ref[2]:
        torch.testing.assert_close(fast[2][name], ref[2][name], atol=tol, rtol=tol, msg=name)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("arch", ["lstm", "gru"])
def test_a_batch_of_full_length_sequences_gives_what_torch_does(arch, n_threads, threads):
    """Every sequence fills the width: the backward direction runs backwards in time in
    the kernels instead of reversing copies (_direction's flip)."""
    threads(n_threads)
    torch.manual_seed(3)
    config = ModelConfig(arch=arch, bidirectional=True, layers=2, hidden_size=24, dropout=0.0)
    model = SequenceModel(config, 4, 3)
    x = torch.randn(40, 17, 4)
    lengths = torch.full((40,), 17)
    fast = _run(model, x, lengths, True)
    ref = _run(model, x, lengths, False)
    for got, want in zip(fast[:2], ref[:2], strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast[3], ref[0], atol=1e-5, rtol=1e-5)
    for name in ref[2]:
        torch.testing.assert_close(fast[2][name], ref[2][name], atol=1e-5, rtol=1e-5, msg=name)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_scan_matches_modules_for_both_directions_in_lockstep(cell):
    """recurrent_scan with D = 2 runs two independent layers side by side."""
    torch.manual_seed(1)
    cls = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
    mods = [cls(5, 8, batch_first=True).double() for _ in range(2)]
    xs = [torch.randn(3, 11, 5, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
    params = [torch.stack([getattr(m, n) for m in mods]) for n in names]
    out = recurrent_scan(cell, torch.stack([x.transpose(0, 1) for x in xs]), *params)
    refs = [m(x)[0] for m, x in zip(mods, xs, strict=True)]
    for d in range(2):
        torch.testing.assert_close(out[d].transpose(0, 1), refs[d])
    weights = torch.randn(out.shape, dtype=torch.float64)
    got = torch.autograd.grad((out * weights).sum(), [*xs, *params])
    want = torch.autograd.grad(
        sum((r * weights[d].transpose(0, 1)).sum() for d, r in enumerate(refs)),
        [*xs, *[getattr(m, n) for n in names for m in mods]],
    )
    for g, w in zip(got[:2], want[:2], strict=True):
        torch.testing.assert_close(g, w)
    for k in range(4):
        torch.testing.assert_close(got[2 + k], torch.stack(want[2 + 2 * k : 4 + 2 * k]))


def test_padding_never_changes_a_prediction(threads):
    """Each sequence alone and inside a batch with much longer ones agrees within 1e-5."""
    threads(2)
    torch.manual_seed(3)
    for arch in ("lstm", "gru"):
        config = ModelConfig(arch=arch, bidirectional=True, layers=2, dropout=0.0)
        model = SequenceModel(config, 4, 2).eval()
        lengths = torch.tensor([5, 300, 17, 120, 1, 64] * 6)
        x = torch.randn(len(lengths), 300, 4)
        x[torch.arange(300)[None, :] >= lengths[:, None]] = 0
        with torch.inference_mode():
            batch = model(x, lengths)
            for i in range(6):
                alone = model(x[i : i + 1, : lengths[i]], lengths[i : i + 1])
                torch.testing.assert_close(alone[0], batch[i], atol=1e-5, rtol=1e-5)


def test_run_concurrently_sums_shared_gradients(threads):
    threads(2)
    w = torch.randn(4, 4, dtype=torch.float64, requires_grad=True)
    a = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    outs = run_concurrently(lambda x, m: torch.tanh(x @ m), [(a, w), (b, w)])
    (outs[0].sum() + 2 * outs[1].sum()).backward()
    got = (a.grad, b.grad, w.grad)
    a.grad = b.grad = w.grad = None
    (torch.tanh(a @ w).sum() + 2 * torch.tanh(b @ w).sum()).backward()
    for g, want in zip(got, (a.grad, b.grad, w.grad), strict=True):
        torch.testing.assert_close(g, want)


@pytest.mark.parametrize("count", [1, 2, 4])
def test_pieces_are_joined_by_the_worker_threads_as_torch_cat_would(threads, count):
    """Batch slices of two directions, joined by the worker threads (split by steps,
    here 7 among ``count`` threads): the values of two torch.cat calls, each piece's
    gradient the matching part of the joined one, and the same under inference mode."""
    threads(count)
    torch.manual_seed(8)
    sizes = [3, 5]
    pieces = [torch.randn(7, b, 6, requires_grad=True) for b in sizes * 2]
    joined = _join(pieces, 2)
    want = torch.cat([torch.cat(pieces[:2], dim=1), torch.cat(pieces[2:], dim=1)], dim=2)
    assert torch.equal(joined, want)
    weights = torch.randn_like(want)
    got = torch.autograd.grad((joined * weights).sum(), pieces)
    expected = torch.autograd.grad((want * weights).sum(), pieces)
    for g, w in zip(got, expected, strict=True):
        assert torch.equal(g, w)
    with torch.inference_mode():
        plain = [p.detach() for p in pieces]
        assert torch.equal(_join(plain, 2), want.detach())
        assert torch.equal(_join(plain[:2], 1), torch.cat(plain[:2], dim=1))


@pytest.mark.parametrize("arch", ["lstm", "gru", "rnn", "cnn-lstm", "transformer"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_stepwise_operations_give_the_same_outputs(arch: str, bidirectional: bool) -> None:
    """DeepLIFT runs recurrences step by step and the transformer with plain operations
    (models.base.stepwise): the same equations as the fused kernels."""
    from bioseqnn.models.base import stepwise, stepwise_operations

    torch.manual_seed(0)
    config = ModelConfig(
        arch=arch,
        hidden_size=8,
        channels=[8, 8],
        kernel_sizes=[5, 3],
        dropout=0.0,
        bidirectional=bidirectional,
        layers=2,
    )
    model = SequenceModel(config, 4, 2).eval()
    lengths = torch.tensor([30, 22, 30, 7, 15])
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (5, 30)), 4).float()
    x[torch.arange(30)[None, :] >= lengths[:, None]] = 0
    with torch.no_grad():
        fused = model(x, lengths)
        with stepwise_operations():
            assert stepwise()
            plain = model(x, lengths)
    assert not stepwise()
    torch.testing.assert_close(plain, fused, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_scan_under_bfloat16_autocast_runs_in_the_weights_precision(cell):
    """Under autocast (train --precision bf16 without the compiled kernels) the scan
    gives the float32 results and gradients, from a bfloat16 input too."""
    torch.manual_seed(2)
    module = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(5, 8, batch_first=True)
    names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
    params = [getattr(module, n).unsqueeze(0) for n in names]
    x = torch.randn(1, 9, 3, 5).bfloat16().float()
    want = recurrent_scan(cell, x, *params)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = recurrent_scan(cell, x.bfloat16(), *params)
    assert got.dtype == torch.float32
    assert torch.equal(got, want)
    grads = torch.autograd.grad(got.sum(), [module.weight_hh_l0])
    assert torch.equal(grads[0], torch.autograd.grad(want.sum(), [module.weight_hh_l0])[0])
