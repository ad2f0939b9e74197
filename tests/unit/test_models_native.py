"""The compiled LSTM/GRU kernels (bioseqnn/csrc/rnn.c) against torch's nn.LSTM/nn.GRU.

Shapes are chosen to reach every code path of the C kernels: hidden sizes below, at and
between vector widths (scalar tails), batches that are not multiples of the 4-row
register block, one time step, and inputs that require gradients (later layers).
"""

from __future__ import annotations

import os
import shutil
import sysconfig

import pytest
import torch

from bioseqnn.models import native

pytestmark = pytest.mark.skipif(
    not native.available() and shutil.which(sysconfig.get_config_var("CC") or "cc") is None,
    reason="no C compiler here, so the optional kernels were not built",
)
turned_off = pytest.mark.skipif(
    os.environ.get("BIOSEQNN_NATIVE", "1").strip() in ("0", "false", "no", "off"),
    reason="BIOSEQNN_NATIVE turns the kernels off in this run",
)


@turned_off
def test_kernels_are_built_and_enabled():
    """Where a compiler exists (CI), `pip install` must have built the extension."""
    assert native.available(), "bioseqnn._rnn was not built by pip install"
    assert native.instruction_set() in ("AVX-512", "AVX2", "baseline")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize(
    "batch,steps,channels,hidden",
    [
        (1, 1, 4, 5),
        (7, 50, 4, 100),
        (33, 20, 21, 128),
        (4, 9, 64, 16),
        (5, 13, 3, 37),
    ],
)
def test_outputs_and_gradients_match_torch(cell, batch, steps, channels, hidden):
    torch.manual_seed(batch * 100 + hidden)
    module = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(channels, hidden, batch_first=True)
    params = [module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0]
    x = torch.randn(batch, steps, channels, requires_grad=True)
    layer = native.lstm_layer if cell == "lstm" else native.gru_layer

    ref = module(x)[0]
    got = layer(x, *params)
    torch.testing.assert_close(got, ref, atol=2e-6, rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(layer(x, *params), ref, atol=2e-6, rtol=1e-5)

    weights = torch.randn_like(ref)
    want = torch.autograd.grad((ref * weights).sum(), [x, *params])
    have = torch.autograd.grad((got * weights).sum(), [x, *params])
    names = ["x", "weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    for name, h, w in zip(names, have, want, strict=True):
        # sums over all steps and sequences: float32 rounding grows with their size
        scale = float(w.abs().max())
        err = float((h - w).abs().max())
        assert err <= 2e-6 * scale + 1e-7, f"{name}: max error {err:.3g}, scale {scale:.3g}"


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_input_gradients_of_a_long_sequence_stay_close_to_torch(cell):
    """Each backward step adds its share of the input weights' gradient, as it does for
    the recurrent weights: over 1,000 steps both stay within float32 rounding of
    torch's, and the inputs' gradient (a product per step) stays as close as a step's."""
    torch.manual_seed(11)
    module = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(4, 32, batch_first=True)
    params = [module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0]
    x = torch.randn(16, 1000, 4, requires_grad=True)
    layer = native.lstm_layer if cell == "lstm" else native.gru_layer
    ref, got = module(x)[0], layer(x, *params)
    weights = torch.randn_like(ref)
    want = torch.autograd.grad((ref * weights).sum(), [x, *params])
    have = torch.autograd.grad((got * weights).sum(), [x, *params])
    errors = [float((h - w).abs().max() / w.abs().max()) for h, w in zip(have, want, strict=True)]
    assert errors[0] < 2e-6  # x
    assert max(errors[1:]) < 2e-5  # the weights and biases: sums of 16,000 terms
    assert errors[1] < 3 * errors[2] + 1e-6  # input weights no worse than recurrent ones


def test_input_without_gradient_gets_none():
    """First layers take one-hot input that needs no gradient; only the weights get one."""
    torch.manual_seed(0)
    module = torch.nn.LSTM(4, 8, batch_first=True)
    x = torch.randn(3, 6, 4)
    out = native.lstm_layer(
        x, module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0
    )
    out.sum().backward()
    assert x.grad is None
    assert module.weight_ih_l0.grad is not None
    assert float(module.weight_hh_l0.grad.abs().sum()) > 0


def test_environment_switch_turns_the_kernels_off(monkeypatch):
    monkeypatch.setenv("BIOSEQNN_NATIVE", "0")
    assert not native.available()
    assert not native.usable(torch.zeros(1))
    monkeypatch.setenv("BIOSEQNN_NATIVE", "1")
    assert native.available()


@turned_off
def test_float64_and_other_devices_are_not_for_the_kernels():
    assert native.usable(torch.zeros(2, dtype=torch.float32))
    assert not native.usable(torch.zeros(2, dtype=torch.float64))
    assert not native.usable(torch.zeros(2), torch.zeros(2, dtype=torch.float64))


def _cell(cell: str, hidden: int):
    """A torch module of 4 inputs, its parameters, and the kernel layer that runs it."""
    module = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(4, hidden, batch_first=True)
    params = [module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0]
    return module, params, native.lstm_layer if cell == "lstm" else native.gru_layer


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_backward_twice_with_retain_graph_gives_the_same_gradients(cell):
    # the LSTM's backward pass writes its gradients over the saved gates; a second pass
    # must compute them again rather than read the gradients as gates
    torch.manual_seed(0)
    _, params, layer = _cell(cell, 16)
    out = layer(torch.randn(8, 30, 4), *params)
    first = torch.autograd.grad(out.sum(), params, retain_graph=True)
    second = torch.autograd.grad(out.sum(), params)
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_inference_and_training_give_the_same_outputs():
    torch.manual_seed(0)
    module = torch.nn.LSTM(4, 16, batch_first=True)
    params = [module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0]
    x = torch.randn(8, 300, 4)
    with torch.inference_mode():
        inferred = native.lstm_layer(x, *params)
    trained = native.lstm_layer(x, *params)
    trained.sum().backward()
    torch.testing.assert_close(trained.detach(), inferred, atol=0, rtol=0)


@pytest.mark.slow
def test_predictions_are_the_same_in_every_process_and_from_gzip_stdin(hemolytic_model, examples):
    """Each process picks the kernels' instruction set once, on one thread; when two
    worker threads raced on the CPU-feature probe, one could run the plain-C kernels and
    predictions changed in the last digit from run to run."""
    import gzip

    from conftest import run_bioseqnn

    fasta = examples / "hemolytic.fasta"
    outputs = [run_bioseqnn("predict", hemolytic_model, fasta, "--threads", "2") for _ in range(3)]
    outputs.append(
        run_bioseqnn(
            "predict",
            hemolytic_model,
            "-",
            "--threads",
            "2",
            stdin=gzip.compress(fasta.read_bytes()),
        )
    )
    assert all(r.returncode == 0 for r in outputs), [r.stderr for r in outputs]
    assert len({r.stdout for r in outputs}) == 1
    assert outputs[0].stdout.count(b"\n") == 1105


ISA_PROBE = """
import torch
from bioseqnn.kernels import instruction_set
from bioseqnn.models.recurrent import RecurrentBackbone
from bioseqnn.models import ModelConfig
torch.manual_seed(0)
net = RecurrentBackbone("lstm", ModelConfig(arch="lstm", hidden_size=37), 4)
x = torch.randn(5, 30, 4)
out, _ = net(x, torch.full((5,), 30))
print(instruction_set())
print(" ".join(f"{v:.9g}" for v in out.flatten()[::97].tolist()))
"""


def _probe(isa: str | None) -> tuple[str, list[float]]:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "BIOSEQNN_ISA"}
    if isa is not None:
        env["BIOSEQNN_ISA"] = isa
    done = subprocess.run(
        [sys.executable, "-c", ISA_PROBE], capture_output=True, text=True, env=env, check=True
    )
    name, values = done.stdout.strip().split("\n")
    return name, [float(v) for v in values.split()]


def test_a_narrower_instruction_set_can_be_asked_for():
    """BIOSEQNN_ISA=avx2 or baseline runs the narrower kernels (what a CPU without
    AVX-512 gets), never a wider one, with the same results to float32 rounding."""
    best, reference = _probe(None)
    baseline, plain = _probe("baseline")
    assert baseline == "baseline"
    avx2, vector = _probe("avx2")
    assert avx2 == ("AVX2" if best in ("AVX-512", "AVX2") else "baseline")
    assert _probe("avx512")[0] == best  # not a choice: the CPU's own stays
    assert len(reference) > 10
    for values in (plain, vector):
        assert max(abs(a - b) for a, b in zip(values, reference, strict=True)) < 1e-5


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_storage_kept_between_steps_gives_the_same_results(cell):
    # a training step's projections go in storage kept for the next step; a smaller
    # step then reuses a larger step's storage, and two forward passes in flight (two
    # layers) must not share it
    torch.manual_seed(3)
    module, params, layer = _cell(cell, 24)
    native.free_buffers()
    for batch, steps in [(9, 40), (5, 17), (9, 40)]:
        x = torch.randn(batch, steps, 4)
        first, second = layer(x, *params), layer(x.flip(1), *params)
        assert torch.equal(first, layer(x, *params).detach())  # both passes in flight
        have = torch.autograd.grad(first.sum() + second.pow(2).sum(), params)
        ref = module(x)[0].sum() + module(x.flip(1))[0].pow(2).sum()
        for h, w in zip(have, torch.autograd.grad(ref, params), strict=True):
            torch.testing.assert_close(h, w, atol=1e-4, rtol=1e-4)
    native.free_buffers()
    assert not native._BUFFERS._free


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("steps", [1, 2, 37])
@pytest.mark.parametrize("hidden", [40, 32])
def test_inference_equals_the_training_path_bit_for_bit(cell: str, steps: int, hidden: int) -> None:
    """Without gradients the kernel keeps one step's gates and alternates the cell state
    between two slots (an odd and an even number of steps here); the outputs are those
    of the training path, which keeps every step's, bit for bit. (A hidden size of 32
    takes the LSTM's fused step with every instruction set, 40 the separate products
    with AVX-512.)"""
    torch.manual_seed(5)
    batch, channels = 6, 7
    module = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(channels, hidden, batch_first=True)
    params = [module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0]
    layer = native.lstm_layer if cell == "lstm" else native.gru_layer
    x = torch.randn(batch, steps, channels)
    whole = layer(x.clone().requires_grad_(), *params).detach()  # the training path
    with torch.no_grad():
        inferred = layer(x, *params)
    assert torch.equal(inferred, whole)
    torch.testing.assert_close(inferred, module(x)[0].detach(), atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_inference_reads_a_lone_strided_sequence_as_training_does(cell: str) -> None:
    """A lone sequence whose channels are not contiguous (a convolution's (1, C, T)
    output seen as (1, T, C)) flattens to a strided view; the kernels must be given its
    values, not its memory order."""
    torch.manual_seed(6)
    module = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(8, 12, batch_first=True)
    params = [module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0]
    layer = native.lstm_layer if cell == "lstm" else native.gru_layer
    x = torch.randn(1, 8, 30).transpose(1, 2)  # (1, T, C), C strided
    with torch.no_grad():
        got = layer(x, *params)
    assert torch.equal(got, layer(x.contiguous(), *params))
    torch.testing.assert_close(got, module(x)[0].detach(), atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("shape", [(0, 5, 4), (3, 0, 4)])
def test_inference_of_an_empty_batch_or_no_steps_is_empty(cell: str, shape: tuple) -> None:
    module = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(4, 8, batch_first=True)
    params = [module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0]
    layer = native.lstm_layer if cell == "lstm" else native.gru_layer
    with torch.no_grad():
        out = layer(torch.randn(*shape), *params)
    assert out.shape == (shape[0], shape[1], 8)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize(
    "batch,steps,channels,hidden",
    [(1, 1, 4, 5), (7, 50, 4, 100), (5, 13, 21, 37), (6, 30, 4, 32)],
)
def test_reverse_equals_the_flipped_sequences_bit_for_bit(cell, batch, steps, channels, hidden):
    """``reverse`` runs the steps backwards in time instead of flipping the inputs and
    the outputs (the backward direction of a bidirectional layer): the same outputs,
    gradients (inputs and weights) and inference outputs, bit for bit."""
    torch.manual_seed(steps + hidden)
    module = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(channels, hidden, batch_first=True)
    params = [module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0]
    layer = native.lstm_layer if cell == "lstm" else native.gru_layer
    x = torch.randn(batch, steps, channels, requires_grad=True)
    weights = torch.randn(batch, steps, hidden)

    flipped = layer(x.flip(1), *params).flip(1)
    got = layer(x, *params, reverse=True)
    assert torch.equal(got, flipped)
    want = torch.autograd.grad((flipped * weights).sum(), [x, *params])
    have = torch.autograd.grad((got * weights).sum(), [x, *params])
    for h, w in zip(have, want, strict=True):
        assert torch.equal(h, w)
    with torch.no_grad():
        assert torch.equal(layer(x, *params, reverse=True), flipped)
    ref = module(x.flip(1))[0].flip(1)
    torch.testing.assert_close(got, ref, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("batch,pieces", [(64, 2), (37, 3), (5, 5), (9, 1)])
def test_one_call_in_pieces_equals_the_pieces_added(cell, reverse, batch, pieces):
    """``pieces``: one call over the whole batch gives the outputs and every gradient of
    that many calls on ``tensor_split`` pieces whose weight gradients are added in order,
    as runtime.run_concurrently adds the pieces it ran on separate threads (what lets
    a step run on one thread or on several with the same results)."""
    torch.manual_seed(batch + pieces)
    channels, hidden, steps = 5, 24, 17
    module = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(channels, hidden, batch_first=True)
    params = [module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0]
    layer = native.lstm_layer if cell == "lstm" else native.gru_layer
    x = torch.randn(batch, steps, channels, requires_grad=True)
    weights = torch.randn(batch, steps, hidden)

    whole = layer(x, *params, reverse=reverse, pieces=pieces)
    have = torch.autograd.grad((whole * weights).sum(), [x, *params])

    outs, grads = [], []
    for xp, wp in zip(x.detach().tensor_split(pieces), weights.tensor_split(pieces), strict=True):
        xp = xp.clone().requires_grad_()
        out = layer(xp, *params, reverse=reverse)
        outs.append(out)
        grads.append(torch.autograd.grad((out * wp).sum(), [xp, *params]))
    assert torch.equal(whole, torch.cat(outs))
    assert torch.equal(have[0], torch.cat([g[0] for g in grads]))
    for i in range(1, 5):
        total = grads[0][i]
        for g in grads[1:]:
            total = total + g[i]
        assert torch.equal(have[i], total)
    if pieces > 1:  # and the pieces' sums do differ from one sum over the batch
        one = torch.autograd.grad((layer(x, *params, reverse=reverse) * weights).sum(), params)
        assert any(not torch.equal(a, b) for a, b in zip(one, have[1:], strict=True))


def _conv_stack(channels, kernels, dilations, pools, inputs=4, seed=0):
    """A ConvStack in inference, its batch norms given running statistics and affine
    weights away from their initial values (which would make the norms near identity)."""
    from bioseqnn.models import ModelConfig
    from bioseqnn.models.conv import ConvStack

    torch.manual_seed(seed)
    config = ModelConfig(
        arch="cnn", channels=channels, kernel_sizes=kernels, dilations=dilations, pool_sizes=pools
    )
    stack = ConvStack(config, inputs)
    for norm in stack.norms:
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.3, 3.0)
        norm.weight.data.uniform_(0.5, 1.5)
        norm.bias.data.uniform_(-0.3, 0.3)
    return stack.eval()


CONV_SHAPES = [
    # channels, kernel sizes, dilations, pooling windows: the default network, even
    # kernels (the extra position on the right), dilations, and widths that are not
    # multiples of a vector (the products' scalar columns)
    ([128, 128], [9, 5], [1, 1], [3, 1]),
    ([8, 5], [4, 2], [2, 1], [1, 2]),
    ([20, 13], [3, 7], [1, 3], [2, 3]),
    ([6], [1], [1], [1]),
    # a window of 64,004 inputs, more than the kernel's scratch for 96 positions holds:
    # one position a product
    ([3], [16001], [1], [1]),
]


@turned_off
@pytest.mark.parametrize(("channels", "kernels", "dilations", "pools"), CONV_SHAPES)
def test_compiled_convolutions_match_torchs(channels, kernels, dilations, pools):
    """ConvStack in inference (the compiled kernel: convolution, batch norm, ReLU) gives
    torch's values at every real position and torch's pooled lengths, for batches of
    mixed lengths, lengths shorter than a pooling window, and 300 positions (past the
    kernel's 96 positions a product)."""
    stack = _conv_stack(channels, kernels, dilations, pools)
    lengths = torch.tensor([300, 1, 2, 95, 96, 97, 150, 7])
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (8, 300)), 4).float()
    x *= (torch.arange(300)[None, :] < lengths[:, None]).unsqueeze(-1)
    with torch.no_grad():
        assert stack._compiled(x)
        got, got_lengths = stack(x, lengths)
    ref, ref_lengths = stack(x, lengths)  # with gradients: torch's own operations
    assert torch.equal(got_lengths, ref_lengths)
    assert got.shape == ref.shape
    real = (torch.arange(got.shape[1])[None, :] < got_lengths[:, None]).unsqueeze(-1)
    assert float(ref.detach().abs().max()) > 0.1  # values to compare, not all zero
    torch.testing.assert_close(got * real, ref.detach() * real, atol=2e-5, rtol=1e-5)


@turned_off
def test_compiled_convolutions_give_a_sequence_the_same_bits_in_any_company():
    """A sequence's states do not depend on its batch: alone, among longer sequences,
    split over one or two threads, bit for bit (the batch is split by sequences and each
    output sums in one order)."""
    stack = _conv_stack([32, 24], [9, 5], [1, 1], [3, 1])
    lengths = torch.tensor([200, 61, 140, 17])
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (4, 200)), 4).float()
    x *= (torch.arange(200)[None, :] < lengths[:, None]).unsqueeze(-1)
    threads = torch.get_num_threads()
    outs = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            with torch.no_grad():
                outs.append(stack(x, lengths))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(outs[0][0], outs[1][0])
    together, pooled = outs[0]
    with torch.no_grad():
        for i, n in enumerate(lengths.tolist()):
            alone, alone_len = stack(x[i : i + 1, :n], lengths[i : i + 1])
            m = int(pooled[i])
            assert int(alone_len[0]) == m
            assert torch.equal(alone[0, :m], together[i, :m])
    # positions past a sequence's length before any pooling read as 0 and come out 0
    stack = _conv_stack([16], [5], [1], [1])
    with torch.no_grad():
        out, _ = stack(x, lengths)
    assert float(out[1, 61:].abs().max()) == 0.0
    assert float(out[1, :61].abs().max()) > 0.0


@turned_off
def test_a_dilation_past_every_sequence_leaves_the_centre_tap():
    """A dilation wider than the batch (up to a model file's 2**40) keeps only the
    centre tap of an odd kernel inside the sequence: the compiled convolution then
    equals torch's convolution with that tap alone, without padding 2**40 positions;
    an even kernel has no tap left and gives ReLU(shift)."""
    from bioseqnn.kernels import conv_fits, conv_taps

    assert conv_taps(3, 2**40, 300) == (602, 602)
    assert conv_taps(9, 4, 300) == (4, 16) and conv_taps(4, 2, 300) == (2, 3)
    assert conv_fits(9, 128, 128) and not conv_fits(2**20, 2**11, 1)
    lengths = torch.tensor([300, 40, 1])
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (3, 300)), 4).float()
    x *= (torch.arange(300)[None, :] < lengths[:, None]).unsqueeze(-1)
    wide = _conv_stack([8], [3], [2**40], [1])
    centre = _conv_stack([8], [1], [1], [1])
    centre.convs[0].weight.data = wide.convs[0].weight.data[:, :, 1:2].clone()
    centre.norms.load_state_dict(wide.norms.state_dict())
    with torch.no_grad():
        got, _ = wide(x, lengths)
        assert torch.equal(got, _conv_stack([8], [3], [700], [1])(x, lengths)[0])
    ref, _ = centre(x, lengths)  # torch's own convolution (gradients on)
    real = (torch.arange(300)[None, :] < lengths[:, None]).unsqueeze(-1)
    torch.testing.assert_close(got * real, ref.detach() * real, atol=2e-5, rtol=1e-5)
    even = _conv_stack([8], [2], [2**40], [1])
    with torch.no_grad():
        out, _ = even(x, lengths)
    norm = even.norms[0]
    shift = norm.bias - norm.running_mean * norm.weight / torch.sqrt(norm.running_var + norm.eps)
    torch.testing.assert_close(out[0], torch.relu(shift.detach()).expand(300, 8))
