"""DeepLIFT's rules for the operations bioseqnn's networks call as functions.

Captum's ``DeepLift`` gives its rules to ``nn.Module`` activations only; bioseqnn's
networks call ``torch.relu``/``torch.tanh``/``torch.sigmoid`` as functions, so a torch
function mode gives those the rescale rule while an attribution runs (see
:mod:`bioseqnn.interpret.attribution`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class _Rescale(torch.autograd.Function):
    """An elementwise nonlinearity on a batch of [inputs; references] halves, whose
    backward pass multiplies by (f(x) - f(r)) / (x - r) (its derivative where x ~ r)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, fn: Callable[..., torch.Tensor],
                slope: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        y = fn(x)
        ctx.save_for_backward(x, y)
        ctx.slope = slope
        return y

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (grad,) = grads
        x, y = ctx.saved_tensors
        xi, xr = x.chunk(2)
        yi, yr = y.chunk(2)
        dx = xi - xr
        near = dx.abs() < 1e-6
        ratio = (yi - yr) / torch.where(near, torch.ones_like(dx), dx)
        mult = torch.where(near, ctx.slope(xi, yi), ratio)
        return grad * torch.cat([mult, mult]), None, None


_SLOPES: dict[Any, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    torch.relu: lambda x, y: (x > 0).to(x.dtype),
    torch.nn.functional.relu: lambda x, y: (x > 0).to(x.dtype),
    torch.Tensor.relu: lambda x, y: (x > 0).to(x.dtype),
    torch.tanh: lambda x, y: 1 - y * y,
    torch.Tensor.tanh: lambda x, y: 1 - y * y,
    torch.sigmoid: lambda x, y: y * (1 - y),
    torch.Tensor.sigmoid: lambda x, y: y * (1 - y),
}
_PLAIN: dict[Any, Callable[[torch.Tensor], torch.Tensor]] = {
    torch.relu: torch.relu, torch.nn.functional.relu: torch.relu, torch.Tensor.relu: torch.relu,
    torch.tanh: torch.tanh, torch.Tensor.tanh: torch.tanh,
    torch.sigmoid: torch.sigmoid, torch.Tensor.sigmoid: torch.sigmoid,
}


class _RescaleMode(torch.overrides.TorchFunctionMode):
    """Gives the functional activations DeepLIFT's rescale rule while active."""

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if func in _SLOPES and args and isinstance(args[0], torch.Tensor) \
                and not kwargs.get("inplace", False) and args[0].shape[0] % 2 == 0:
            return _Rescale.apply(args[0], _PLAIN[func], _SLOPES[func])
        return func(*args, **kwargs)
