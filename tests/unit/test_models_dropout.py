"""The CPU dropout of bioseqnn.models.base.Dropout: its masks, scale and gradient."""

from __future__ import annotations

import torch

from bioseqnn import runtime
from bioseqnn.models import ModelConfig, SequenceModel
from bioseqnn.models.base import DROP_LEVELS, Dropout

SCALE_02 = DROP_LEVELS / (DROP_LEVELS - 6554)  # p = 0.2 drops 6,554 of 32,768 levels


def _drop(x: torch.Tensor, p: float, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    return Dropout(p).train()(x)


def test_a_fifth_is_dropped_and_the_rest_scaled_so_the_mean_holds() -> None:
    y = _drop(torch.ones(1_000_000), 0.2)
    kept = y != 0
    # binomial standard deviation: sqrt(0.2 * 0.8 / 1e6) = 0.0004
    assert abs(float(kept.float().mean()) - 26214 / 32768) < 0.002
    assert torch.equal(y[kept], torch.full_like(y[kept], SCALE_02))
    assert abs(float(y.mean()) - 1.0) < 0.003


def test_the_two_values_of_one_draw_are_independent() -> None:
    # Each 32-bit draw gives an even and an odd value: both kept 0.5 * 0.5 of the time.
    kept = _drop(torch.ones(1_000_000), 0.5) != 0
    pairs = kept.view(-1, 2)
    both = float((pairs[:, 0] & pairs[:, 1]).float().mean())
    assert abs(both - 0.25) < 0.004
    assert abs(float(pairs[:, 0].float().mean()) - 0.5) < 0.004
    assert abs(float(pairs[:, 1].float().mean()) - 0.5) < 0.004


def test_the_gradient_is_the_same_mask_and_scale() -> None:
    x = (torch.rand(64, 128, 67) + 0.5).requires_grad_()
    y = _drop(x, 0.2)
    g = torch.randn_like(y)
    y.backward(g)
    kept = y.detach() != 0
    assert x.grad is not None
    assert torch.equal(x.grad, g * kept * SCALE_02)
    assert torch.equal(y.detach(), x.detach() * kept * SCALE_02)


def test_a_strided_input_is_masked_value_by_value() -> None:
    base = torch.rand(67, 64, 128) + 0.5
    x = base.transpose(0, 1)  # (B, T, H) view of time-major storage, as a recurrent layer's
    y = _drop(x, 0.3)
    kept = y != 0
    assert y.shape == x.shape
    assert torch.allclose(y[kept], x[kept] * (DROP_LEVELS / (DROP_LEVELS - 9830)))
    assert 0.68 < float(kept.float().mean()) < 0.72


def test_masks_follow_the_seed_and_not_the_thread_count() -> None:
    x = torch.ones(300_001)
    with runtime.threads_kept():
        runtime.set_threads(1)
        one = _drop(x, 0.2, seed=7)
        runtime.set_threads(2)
        two = _drop(x, 0.2, seed=7)
    assert torch.equal(one, two)
    assert not torch.equal(one, _drop(x, 0.2, seed=8))


def test_evaluation_zero_and_one_rates() -> None:
    x = torch.rand(10, 20)
    assert torch.equal(Dropout(0.2).eval()(x), x)
    assert _drop(x, 0.0) is x
    assert torch.equal(_drop(x, 1.0), torch.zeros_like(x))
    # below half a level the rate rounds to zero: nothing is dropped
    assert _drop(x, 0.4 / DROP_LEVELS) is x


def test_the_networks_use_it_wherever_they_drop_out() -> None:
    for arch in ("lstm", "cnn", "cnn-gru"):
        model = SequenceModel(ModelConfig(arch=arch, dropout=0.2, layers=2), 4, 1)
        drops = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
        assert drops
        assert all(isinstance(m, Dropout) for m in drops), arch
