"""DeepLIFT's rules for every operation bioseqnn's networks use.

Captum's ``DeepLift`` runs the network once on a batch ``[inputs; references]`` and
replaces the gradient of each nonlinear step by a *multiplier*: the step's output
difference over its input difference. Captum gives such rules to ``nn.Module``
activations only. bioseqnn's networks call their nonlinearities as functions, and their
LSTM, GRU and attention layers multiply two input-dependent tensors, which no rescale
rule covers. While an attribution runs, :class:`DeepLiftMode` (a torch function mode)
gives every such call its rule:

- an elementwise nonlinearity (relu, tanh, sigmoid, exp, log, sqrt, rsqrt, reciprocal,
  square): the *rescale* rule, multiplier ``(f(x) - f(r)) / (x - r)``, the derivative
  where ``x`` and ``r`` (nearly) coincide;
- a product of two input-dependent tensors (elementwise, matrix, ``einsum``: the gates
  of an LSTM or GRU, attention's scores and weighted sums): the *Shapley* rule of a
  bilinear form, ``f(a, b) - f(a', b') = f(a - a', (b + b') / 2) + f((a + a') / 2,
  b - b')``, the rule Arras et al. (2017) and the DeepLIFT authors give for gates;
- a division by an input-dependent tensor: a product with its reciprocal;
- softmax, log-softmax and layer norm: written with those steps (the exponentials of
  the inputs less a shift shared by both halves, their sum, its reciprocal or log; the
  mean, the centred square, its inverse square root).

Each rule's multipliers sum exactly to the step's output difference, so by the chain
rule the attributions sum to ``f(x) - f(r)`` (DeepLIFT's summation-to-delta) up to
float rounding. The one exception is a maximum over positions or windows (the cnn's
max-pooling, ``--pooling max``), which keeps DeepLIFT's default for max-pooling, the
gradient rule: close to, not exactly at, the output difference.

Which tensors depend on the input: the parameters are frozen during the attribution
(:func:`frozen`), so a tensor that requires a gradient derives from the input. An
operation with one such operand is linear in it and runs unchanged. The halves are the
first and second half of the batch axis (axis 0), where Captum puts them.

Recurrent layers and the transformer hide their nonlinearities in fused kernels: they
run step by step with plain operations while :func:`bioseqnn.models.base.stepwise` is
on (same parameters, same equations).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

Slope = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

NEAR = 1e-6
"""Input differences below this take the derivative instead of the ratio."""


def _dual(t: Any) -> bool:
    """True for an input-dependent tensor with its [inputs; references] halves."""
    return isinstance(t, torch.Tensor) and t.requires_grad and t.dim() > 0 and t.shape[0] % 2 == 0


def _mid(t: torch.Tensor) -> torch.Tensor:
    """Both halves replaced by their mean (the Shapley rule's other factor)."""
    first, second = t.chunk(2)
    mean = (first + second) / 2
    return torch.cat([mean, mean])


class _Rescale(torch.autograd.Function):
    """An elementwise nonlinearity whose backward pass multiplies by (f(x) - f(r)) /
    (x - r), or by its derivative where x ~ r (equal infinities included)."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, fn: Callable[..., torch.Tensor], slope: Slope
    ) -> torch.Tensor:
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
        near = (dx.abs() < NEAR) | (xi == xr)
        ratio = (yi - yr) / torch.where(near, torch.ones_like(dx), dx)
        mult = torch.where(near, ctx.slope(xi, yi), ratio)
        return grad * torch.cat([mult, mult]), None, None


class _Product(torch.autograd.Function):
    """``fn(a, b)``, bilinear in two input-dependent tensors, with the Shapley rule:
    the multipliers of ``a`` are those of ``fn(., mid(b))`` and vice versa."""

    @staticmethod
    def forward(
        ctx: Any,
        a: torch.Tensor,
        b: torch.Tensor,
        fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        ctx.save_for_backward(a, b)
        ctx.fn = fn
        return fn(a, b)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (grad,) = grads
        a, b = (t.detach() for t in ctx.saved_tensors)
        fn = ctx.fn
        if fn is torch.mul:  # the common case, without a second pass through autograd
            ga = (grad * _mid(b)).sum_to_size(a.shape)
            gb = (grad * _mid(a)).sum_to_size(b.shape)
            return ga, gb, None
        with torch.enable_grad():
            a_ = a.detach().requires_grad_()
            b_ = b.detach().requires_grad_()
            (ga,) = torch.autograd.grad(fn(a_, _mid(b)), a_, grad)
            (gb,) = torch.autograd.grad(fn(_mid(a), b_), b_, grad)
        return ga, gb, None


class _Max(torch.autograd.Function):
    """The maximum along ``dim`` (kept), with an exact rule: the change of the maximum,
    ``max(x) - max(r)``, is credited to the position of the larger of the two maxima
    (the input's where it grew, the reference's where it fell), whose own change is at
    least as large: its multiplier lies between 0 and 1."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        values, index = x.max(dim=dim, keepdim=True)
        ctx.save_for_backward(x, values, index)
        ctx.dim = dim
        ctx.mark_non_differentiable(index)
        return values, index

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grad = grads[0]
        x, values, index = ctx.saved_tensors
        dim = ctx.dim
        xi, xr = x.chunk(2)
        yi, yr = values.chunk(2)
        ki, kr = index.chunk(2)
        gi, gr = grad.chunk(2)
        k = torch.where(yi >= yr, ki, kr)
        dxk = xi.gather(dim, k) - xr.gather(dim, k)
        near = dxk.abs() < NEAR
        mult = torch.where(
            near, torch.ones_like(dxk), (yi - yr) / torch.where(near, torch.ones_like(dxk), dxk)
        )
        out_i = torch.zeros_like(xi).scatter_(dim, k, gi * mult)
        out_r = torch.zeros_like(xr).scatter_(dim, kr, gr)
        return torch.cat([out_i, out_r]), None


def maximum(x: torch.Tensor, dim: int, keepdim: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, indices) of the maximum along ``dim``, with _Max's rule on a dual
    tensor."""
    if not _dual(x) or dim % x.dim() == 0:
        return x.max(dim=dim, keepdim=keepdim)
    values, index = _Max.apply(x, dim)
    if not keepdim:
        values, index = values.squeeze(dim), index.squeeze(dim)
    return values, index


def _max_call(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """torch.max/amax over one axis of a dual tensor; None where another form is used."""
    x = args[0]
    dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
    keepdim = bool(kwargs.get("keepdim", args[2] if len(args) > 2 else False))
    if isinstance(dim, (tuple, list)) and len(dim) == 1:
        dim = dim[0]
    if not _dual(x) or not isinstance(dim, int) or isinstance(dim, bool):
        return None
    values, index = maximum(x, dim, keepdim)
    if func in (torch.amax, torch.Tensor.amax):
        return values
    return torch.return_types.max((values, index))


def rescale(
    x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor], slope: Slope
) -> torch.Tensor:
    return _Rescale.apply(x, fn, slope) if _dual(x) else fn(x)


def product(a: Any, b: Any, fn: Callable[[Any, Any], torch.Tensor] = torch.mul) -> torch.Tensor:
    """``fn(a, b)``, bilinear: the Shapley rule where both depend on the input."""
    if _dual(a) and _dual(b) and a.shape[0] == b.shape[0]:
        return _Product.apply(a, b, fn)
    return fn(a, b)


def _relu_slope(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x > 0).to(x.dtype)


UNARY: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], Slope]] = {
    "relu": (torch.relu, _relu_slope),
    "tanh": (torch.tanh, lambda x, y: 1 - y * y),
    "sigmoid": (torch.sigmoid, lambda x, y: y * (1 - y)),
    "exp": (torch.exp, lambda x, y: y),
    "log": (torch.log, lambda x, y: 1 / x),
    "sqrt": (torch.sqrt, lambda x, y: 0.5 / y),
    "rsqrt": (torch.rsqrt, lambda x, y: -0.5 * y * y * y),
    "reciprocal": (torch.reciprocal, lambda x, y: -y * y),
    "square": (torch.square, lambda x, y: 2 * x),
}


def unary(name: str, x: torch.Tensor) -> torch.Tensor:
    fn, slope = UNARY[name]
    return rescale(x, fn, slope)


def softmax(x: torch.Tensor, dim: int, log: bool = False) -> torch.Tensor:
    """Softmax (or log-softmax) as exponentials, a sum and a reciprocal (or log).

    The shift that keeps the exponentials finite is shared by a row and its reference,
    so it is a constant of the pair and changes no difference."""
    with torch.no_grad():
        top = x.amax(dim=dim, keepdim=True)
        top = top.masked_fill(~torch.isfinite(top), 0)
        first, second = top.chunk(2)
        shared = torch.maximum(first, second)
        shift = torch.cat([shared, shared])
    e = unary("exp", x - shift)
    total = e.sum(dim=dim, keepdim=True)
    if log:
        return x - shift - unary("log", total)
    return product(e, unary("reciprocal", total))


def layer_norm(
    x: torch.Tensor,
    shape: Any,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Layer norm as a mean, the centred square, its inverse square root and a product."""
    dims = tuple(range(-len(tuple(shape)), 0))
    centred = x - x.mean(dim=dims, keepdim=True)
    var = unary("square", centred).mean(dim=dims, keepdim=True)
    y = product(centred, unary("rsqrt", var + eps))
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def _divide(a: Any, b: Any) -> torch.Tensor:
    if not _dual(b):
        return torch.div(a, b)
    recip = unary("reciprocal", b)
    return product(a, recip) if isinstance(a, torch.Tensor) else recip * a


def _einsum(*args: Any) -> Any:
    equation, operands = args[0], list(args[1:])
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = list(operands[0])
    if len(operands) == 2 and _dual(operands[0]) and _dual(operands[1]):
        return product(operands[0], operands[1], lambda a, b: torch.einsum(equation, a, b))
    return torch.einsum(equation, *operands)


def _dim(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    return int(kwargs["dim"] if "dim" in kwargs else args[1])


def _softmax_call(args: tuple[Any, ...], kwargs: dict[str, Any], log: bool) -> torch.Tensor:
    x = args[0]
    dtype = kwargs.get("dtype")
    if dtype is not None:
        x = x.to(dtype)
    return softmax(x, _dim(args, kwargs), log=log)


def _layer_norm_call(*args: Any, **kwargs: Any) -> torch.Tensor:
    names = ("input", "normalized_shape", "weight", "bias", "eps")
    bound = dict(zip(names, args, strict=False))
    bound.update(kwargs)
    return layer_norm(
        bound["input"],
        bound["normalized_shape"],
        bound.get("weight"),
        bound.get("bias"),
        float(bound.get("eps", 1e-5)),
    )


def _addcmul(inp: torch.Tensor, t1: Any, t2: Any, *, value: float = 1) -> torch.Tensor:
    return inp + value * product(t1, t2)


_UNARY_FUNCS: dict[Any, str] = {
    getattr(owner, name): name
    for name in UNARY
    for owner in (torch, torch.Tensor, F)
    if hasattr(owner, name)
}

_BINARY: dict[Any, Callable[..., Any]] = {
    torch.mul: product,
    torch.Tensor.mul: product,
    torch.Tensor.__mul__: product,
    torch.Tensor.__rmul__: lambda a, b: product(b, a),
    torch.matmul: lambda a, b: product(a, b, torch.matmul),
    torch.Tensor.matmul: lambda a, b: product(a, b, torch.matmul),
    torch.Tensor.__matmul__: lambda a, b: product(a, b, torch.matmul),
    torch.Tensor.__rmatmul__: lambda a, b: product(b, a, torch.matmul),
    torch.bmm: lambda a, b: product(a, b, torch.bmm),
    torch.Tensor.bmm: lambda a, b: product(a, b, torch.bmm),
    torch.div: _divide,
    torch.Tensor.div: _divide,
    torch.true_divide: _divide,
    torch.Tensor.__truediv__: _divide,
    torch.Tensor.__rtruediv__: lambda a, b: _divide(b, a),
}
_MAX = {torch.max, torch.Tensor.max, torch.amax, torch.Tensor.amax}
_SOFTMAX = {torch.softmax, torch.Tensor.softmax, F.softmax}
_LOG_SOFTMAX = {torch.log_softmax, torch.Tensor.log_softmax, F.log_softmax}


class DeepLiftMode(torch.overrides.TorchFunctionMode):
    """Gives each operation of the list above its DeepLIFT rule while active."""

    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if not torch.is_grad_enabled() or kwargs.get("out") is not None:
            return func(*args, **kwargs)
        if func in _UNARY_FUNCS and args and not kwargs.get("inplace", False):
            return unary(_UNARY_FUNCS[func], args[0])
        if func in _BINARY and len(args) == 2 and not kwargs:
            return _BINARY[func](*args)
        if func in _SOFTMAX and _dual(args[0]):
            return _softmax_call(args, kwargs, log=False)
        if func in _LOG_SOFTMAX and _dual(args[0]):
            return _softmax_call(args, kwargs, log=True)
        if func is F.layer_norm and args and _dual(args[0]):
            return _layer_norm_call(*args, **kwargs)
        if func is torch.einsum:
            return _einsum(*args)
        if func in (torch.addcmul, torch.Tensor.addcmul) and len(args) == 3:
            return _addcmul(*args, **kwargs)
        if func in _MAX and args:
            done = _max_call(func, args, kwargs)
            if done is not None:
                return done
        return func(*args, **kwargs)


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """The parameters without gradients, so that only input-dependent tensors require
    one (see the module docstring)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)
