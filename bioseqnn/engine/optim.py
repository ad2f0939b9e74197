"""AdamW as one fused kernel per step, without torch.optim's start-up cost.

``torch.optim.Optimizer`` wraps its methods in ``torch._disable_dynamo``, which imports
``torch._dynamo`` (and with it sympy and the compiler's stack) the first time a method
runs: 0.85-1.3 s of every training process on a 2-core machine, about a third of a small
``bioseqnn train``. :class:`FusedAdamW` calls torch's fused AdamW kernel itself and keeps
torch.optim's state layout, so its steps, ``state_dict`` and ``load_state_dict`` are
those of ``torch.optim.AdamW(fused=True)`` bit for bit (tests/unit/test_optim.py), and a
checkpoint written by either resumes in the other.

Where this torch has no fused kernel for the device or dtype (CPU before torch 2.4, some
accelerators), :func:`adamw` returns ``torch.optim.AdamW`` instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


class FusedAdamW:
    """AdamW (decoupled weight decay) on one parameter group, one kernel per step."""

    # torch.amp.GradScaler unscales the gradients itself and skips a step with inf/NaN.
    _step_supports_amp_scaling = False

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float,
        weight_decay: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.param_groups: list[dict[str, Any]] = [
            {
                "params": list(params),
                "lr": lr,
                "betas": betas,
                "eps": eps,
                "weight_decay": weight_decay,
                "amsgrad": False,
                "foreach": None,
                "maximize": False,
                "capturable": False,
                "differentiable": False,
                "fused": True,
                "decoupled_weight_decay": True,
            }
        ]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def zero_grad(self) -> None:
        """Drop every gradient (torch.optim's zero_grad with set_to_none=True)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            # Tensors grouped by (device, dtype), as the fused kernel takes one of each.
            lists: dict[tuple[torch.device, torch.dtype], tuple[list[torch.Tensor], ...]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("AdamW does not support sparse gradients")
                state = self.state.get(p)
                if not state:
                    state = self.state[p] = _fresh_state(p)
                parts = lists.setdefault((p.device, p.dtype), ([], [], [], [], []))
                tensors = (p, p.grad, state["exp_avg"], state["exp_avg_sq"], state["step"])
                for part, tensor in zip(parts, tensors, strict=True):
                    part.append(tensor)
            beta1, beta2 = group["betas"]
            for params, grads, avgs, squares, steps in lists.values():
                torch._foreach_add_(steps, 1)
                torch._fused_adamw_(
                    params,
                    grads,
                    avgs,
                    squares,
                    [],
                    steps,
                    amsgrad=False,
                    lr=float(group["lr"]),
                    beta1=float(beta1),
                    beta2=float(beta2),
                    weight_decay=float(group["weight_decay"]),
                    eps=float(group["eps"]),
                    maximize=False,
                    grad_scale=None,
                    found_inf=None,
                )

    def state_dict(self) -> dict[str, Any]:
        """torch.optim's layout: parameters by their index, groups without tensors."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {index[id(p)]: s for p, s in self.state.items()}
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        groups = saved["param_groups"]
        sizes = [len(g["params"]) for g in groups]
        if sizes != [len(mine["params"]) for mine in self.param_groups]:
            raise ValueError("the saved optimizer state has other parameter groups")
        by_index = {
            i: p
            for g, mine in zip(groups, self.param_groups, strict=True)
            for i, p in zip(g["params"], mine["params"], strict=True)
        }
        self.state = {}
        for key, values in saved["state"].items():
            p = by_index[int(key)]
            self.state[p] = {
                name: (
                    value.to(device=p.device, dtype=torch.float32)
                    if name == "step"
                    else value.to(device=p.device, dtype=p.dtype)
                )
                for name, value in values.items()
            }
        for g, mine in zip(groups, self.param_groups, strict=True):
            for key, value in g.items():
                if key != "params":
                    mine[key] = tuple(value) if key == "betas" else value


def _fresh_state(p: torch.Tensor) -> dict[str, torch.Tensor]:
    return {
        "step": torch.zeros((), dtype=torch.float32, device=p.device),
        "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
        "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
    }


def _fused_kernel(params: list[torch.nn.Parameter]) -> bool:
    """Whether torch's fused AdamW kernel runs on these parameters' devices and dtypes
    (one step tried on one element of each kind: an unsupported device raises)."""
    if not hasattr(torch, "_fused_adamw_"):
        return False
    for device, dtype in {(p.device, p.dtype) for p in params}:
        if not dtype.is_floating_point:
            return False
        trial = torch.nn.Parameter(torch.zeros(1, device=device, dtype=dtype))
        trial.grad = torch.zeros_like(trial)
        try:
            FusedAdamW([trial], lr=1e-3, weight_decay=0.0).step()
        except (RuntimeError, NotImplementedError):
            return False
    return True


Optimizer = FusedAdamW | torch.optim.Optimizer


def adamw(model: torch.nn.Module, lr: float, weight_decay: float) -> Optimizer:
    """AdamW over the model's parameters: :class:`FusedAdamW` where torch's fused kernel
    runs on them, else torch.optim's loop form (about 1 ms a step more for 10^5
    parameters on a CPU)."""
    params = list(model.parameters())
    if _fused_kernel(params):
        return FusedAdamW(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
