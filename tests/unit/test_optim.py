"""The training loop's AdamW: torch.optim.AdamW(fused=True)'s steps and state, bit for bit,
without torch.optim's import of torch._dynamo."""

from __future__ import annotations

import pytest
import torch

from bioseqnn.engine.optim import FusedAdamW, _fused_kernel, adamw

pytestmark = pytest.mark.skipif(
    not _fused_kernel([torch.nn.Parameter(torch.zeros(1))]),
    reason="this torch has no fused AdamW kernel for the CPU (before 2.4)",
)


def _net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv1d(4, 6, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(48, 2)
    )


def _grads(net: torch.nn.Module, step: int, skip: int | None = None) -> None:
    """Deterministic gradients of every scale, None for parameter ``skip`` (a frozen
    part, or one the batch did not reach)."""
    g = torch.Generator().manual_seed(100 + step)
    for i, p in enumerate(net.parameters()):
        p.grad = None if i == skip else torch.randn(p.shape, generator=g) * 10.0 ** (i - 2)


def _same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def _same_state(a: dict, b: dict) -> None:
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for index, state in a["state"].items():
        assert state.keys() == b["state"][index].keys()
        for name, value in state.items():
            other = b["state"][index][name]
            assert value.dtype == other.dtype and torch.equal(value, other), (index, name)


def test_steps_and_state_are_torchs_bit_for_bit() -> None:
    ours_net, torch_net = _net(0), _net(0)
    ours = FusedAdamW(ours_net.parameters(), lr=3e-3, weight_decay=0.05)
    theirs = torch.optim.AdamW(torch_net.parameters(), lr=3e-3, weight_decay=0.05, fused=True)
    before = [p.detach().clone() for p in ours_net.parameters()]
    for step in range(6):
        for opt, net in ((ours, ours_net), (theirs, torch_net)):
            opt.param_groups[0]["lr"] = 3e-3 / (1 + step)  # as the schedules set it
            _grads(net, step, skip=1 if step < 2 else None)  # bias 1 joins at step 3
            opt.step()
            opt.zero_grad()
        _same(ours_net, torch_net)
    _same_state(ours.state_dict(), theirs.state_dict())
    assert all(p.grad is None for p in ours_net.parameters())
    moved = [not torch.equal(p, q) for p, q in zip(ours_net.parameters(), before, strict=True)]
    assert all(moved)
    steps = [float(s["step"]) for s in ours.state_dict()["state"].values()]
    assert steps == [6.0, 4.0, 6.0, 6.0]  # the skipped bias counts only its own steps


@pytest.mark.parametrize("direction", ["torch to ours", "ours to torch"])
def test_a_saved_state_resumes_in_either(direction: str) -> None:
    """A checkpoint written with torch.optim (before) resumes here and the other way."""
    first, resumed, reference = _net(1), _net(1), _net(1)
    make_ours = lambda net: FusedAdamW(net.parameters(), lr=1e-2, weight_decay=0.01)  # noqa: E731
    make_torch = lambda net: torch.optim.AdamW(  # noqa: E731
        net.parameters(), lr=1e-2, weight_decay=0.01, fused=True
    )
    make_first, make_next = (
        (make_torch, make_ours) if direction == "torch to ours" else (make_ours, make_torch)
    )
    opt, ref = make_first(first), make_first(reference)
    for step in range(3):
        for o, net in ((opt, first), (ref, reference)):
            _grads(net, step)
            o.step()
    saved = opt.state_dict()
    saved = {  # through a checkpoint's JSON: tuples come back as lists
        "state": {i: {k: v.clone() for k, v in s.items()} for i, s in saved["state"].items()},
        "param_groups": [
            {k: list(v) if isinstance(v, tuple) else v for k, v in g.items()}
            for g in saved["param_groups"]
        ],
    }
    resumed.load_state_dict(first.state_dict())
    nxt = make_next(resumed)
    nxt.load_state_dict(saved)
    for step in range(3, 6):
        for o, net in ((nxt, resumed), (ref, reference)):
            _grads(net, step)
            o.step()
    _same(resumed, reference)


def test_load_refuses_other_parameters() -> None:
    opt = FusedAdamW(_net(0).parameters(), lr=1e-3, weight_decay=0.0)
    other = torch.optim.AdamW(torch.nn.Linear(2, 2).parameters(), fused=True)
    with pytest.raises(ValueError, match="other parameter groups"):
        opt.load_state_dict(other.state_dict())


def test_adamw_uses_the_fused_kernel_on_the_cpu() -> None:
    assert isinstance(adamw(_net(0), 1e-3, 0.01), FusedAdamW)
    ints = torch.nn.Module()
    ints.register_parameter("n", torch.nn.Parameter(torch.zeros(2, dtype=torch.int64), False))
    assert isinstance(adamw(ints, 1e-3, 0.01), torch.optim.AdamW)  # no fused integer kernel


def test_gradscaler_skips_a_step_with_an_infinite_gradient() -> None:
    """16-mixed hands the optimizer to torch.amp.GradScaler, which must unscale its
    gradients and skip the step when one is not finite (CPU scaler; same code as CUDA's)."""
    net = _net(2)
    opt = FusedAdamW(net.parameters(), lr=1e-2, weight_decay=0.0)
    scaler = torch.amp.GradScaler("cpu", init_scale=8.0)
    before = [p.detach().clone() for p in net.parameters()]
    loss = net(torch.randn(3, 4, 10)).sum()
    scaler.scale(loss).backward()
    next(net.parameters()).grad[0, 0, 0] = float("inf")
    scaler.unscale_(opt)
    scaler.step(opt)
    scaler.update()
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), before, strict=True))
    assert opt.state == {} and scaler.get_scale() == 4.0
    opt.zero_grad()
    scaler.scale(net(torch.randn(3, 4, 10)).sum()).backward()
    scaled = [p.grad.clone() for p in net.parameters()]
    scaler.unscale_(opt)
    assert torch.allclose(next(net.parameters()).grad * 4.0, scaled[0])
    scaler.step(opt)
    assert not torch.equal(next(net.parameters()), before[0])
