"""Architectures, pooling and the registry: padding invariance, shapes, lengths, limits."""

from __future__ import annotations

import pytest
import torch

from bioseqnn.alphabets import ALPHABETS
from bioseqnn.encoding import Encoder, pad_codes
from bioseqnn.errors import DataError, UsageError
from bioseqnn.models import (
    REGISTRY,
    ModelConfig,
    SequenceModel,
    check_lengths,
    count_parameters,
    describe,
    native,
    resolve_pooling,
)
from bioseqnn.models.base import Pooling
from bioseqnn.models.conv import ConvStack, MaskedBatchNorm, window_max
from bioseqnn.models.inputs import OneHot

ARCHS = ("rnn", "lstm", "gru", "cnn", "cnn-lstm", "cnn-gru", "transformer")
# Small, deliberately awkward settings: two layers, both directions, dropout (off in eval),
# an even kernel, dilation, and pooling windows longer than the shortest sequences.
SMALL = {
    "hidden_size": 12,
    "layers": 2,
    "bidirectional": True,
    "dropout": 0.3,
    "channels": [8, 10],
    "kernel_sizes": [5, 4],
    "dilations": [1, 2],
    "pool_sizes": [3, 2],
    "d_model": 16,
    "heads": 2,
    "ff_size": 24,
}
CASES = [(name, pool) for name in ARCHS for pool in REGISTRY[name].poolings]


def random_onehot(length: int, gen: torch.Generator, channels: int = 4) -> torch.Tensor:
    codes = torch.randint(0, channels, (length,), generator=gen)
    return torch.nn.functional.one_hot(codes, channels).float()


def test_registry_has_every_architecture() -> None:
    assert set(ARCHS) <= set(REGISTRY)
    for name in ARCHS:
        arch = REGISTRY[name]
        assert arch.default_pooling in arch.poolings
        assert arch.summary


@pytest.mark.parametrize(("arch", "pooling"), CASES, ids=[f"{a}-{p}" for a, p in CASES])
def test_padding_never_changes_a_prediction(arch: str, pooling: str) -> None:
    """Each sequence alone and in a batch with much longer ones agrees within 1e-5."""
    torch.manual_seed(1)
    model = SequenceModel(ModelConfig(arch=arch, pooling=pooling, **SMALL), 4, 3).eval()
    gen = torch.Generator().manual_seed(2)
    lengths = [1, 2, 5, 7, 13, 400, 333]
    seqs = [random_onehot(n, gen) for n in lengths]
    with torch.no_grad():
        alone = torch.cat([model(s[None], torch.tensor([len(s)])) for s in seqs])
        batch = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True)
        together = model(batch, torch.tensor(lengths))
        # the same short sequences again, now padded to 3x the longest
        wide = torch.nn.functional.pad(batch, (0, 0, 0, 800))
        wider = model(wide, torch.tensor(lengths))
    assert together.shape == (len(lengths), 3)
    assert torch.allclose(alone, together, atol=1e-5, rtol=0)
    assert torch.allclose(alone, wider, atol=1e-5, rtol=0)
    # and the outputs do depend on the input (not a constant model)
    assert (alone[0] - alone[5]).abs().max() > 1e-4


@pytest.mark.parametrize("arch", ARCHS)
def test_unidirectional_single_layer_is_padding_invariant(arch: str) -> None:
    torch.manual_seed(3)
    config = ModelConfig(
        arch=arch,
        hidden_size=8,
        channels=[6],
        kernel_sizes=[3],
        dilations=[1],
        pool_sizes=[1],
        d_model=8,
        heads=1,
        ff_size=8,
    )
    model = SequenceModel(config, 4, 1).eval()
    gen = torch.Generator().manual_seed(4)
    short, long = random_onehot(9, gen), random_onehot(300, gen)
    with torch.no_grad():
        alone = model(short[None], torch.tensor([9]))
        batch = torch.nn.utils.rnn.pad_sequence([short, long], batch_first=True)
        together = model(batch, torch.tensor([9, 300]))
    assert torch.allclose(alone[0], together[0], atol=1e-5, rtol=0)


def test_pooling_modes_use_real_positions_only() -> None:
    states = torch.tensor(
        [[[1.0, 10.0], [3.0, 20.0], [99.0, 99.0]], [[-1.0, 4.0], [99.0, 99.0], [99.0, 99.0]]]
    )
    lengths = torch.tensor([2, 1])
    mean = Pooling("mean", 2, 1)(states, lengths)
    assert torch.equal(mean, torch.tensor([[2.0, 15.0], [-1.0, 4.0]]))
    high = Pooling("max", 2, 1)(states, lengths)
    assert torch.equal(high, torch.tensor([[3.0, 20.0], [-1.0, 4.0]]))
    last = Pooling("last", 2, 1)(states, lengths)
    assert torch.equal(last, torch.tensor([[3.0, 20.0], [-1.0, 4.0]]))


def test_last_pooling_of_two_directions_takes_each_direction_where_it_ends() -> None:
    # state = [forward half | backward half]; the backward pass ends at position 0
    states = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [0.0, 0.0]]])
    last = Pooling("last", 2, 2)(states, torch.tensor([3]))
    assert torch.equal(last, torch.tensor([[5.0, 2.0]]))


def test_last_pooling_of_two_directions_passes_gradients_to_those_positions_only() -> None:
    torch.manual_seed(0)
    states = torch.randn(3, 5, 6, requires_grad=True)
    lengths = torch.tensor([5, 2, 1])
    pooled = Pooling("last", 6, 2)(states, lengths)
    weights = torch.randn_like(pooled)
    (grad,) = torch.autograd.grad((pooled * weights).sum(), states)
    want = torch.zeros(3, 5, 6)
    for row, length in enumerate(lengths.tolist()):
        want[row, length - 1, :3] = weights[row, :3]  # forward half where it ends
        want[row, 0, 3:] = weights[row, 3:]  # backward half at position 0
    assert torch.equal(grad, want)
    with torch.no_grad():
        assert torch.equal(Pooling("last", 6, 2)(states, lengths), pooled)


def test_attention_weights_ignore_padding() -> None:
    torch.manual_seed(0)
    pool = Pooling("attention", 3, 1)
    real = torch.randn(1, 4, 3)
    padded = torch.cat([real, torch.full((1, 6, 3), 1e4)], dim=1)
    a = pool(real, torch.tensor([4]))
    b = pool(padded, torch.tensor([4]))
    assert torch.allclose(a, b, atol=1e-6)
    # a weighted average: inside the range of the real states
    assert bool((a >= real.amin(dim=1) - 1e-6).all() and (a <= real.amax(dim=1) + 1e-6).all())


@pytest.mark.parametrize(("arch", "bad"), [("cnn", "last"), ("transformer", "last")])
def test_pooling_that_makes_no_sense_is_a_usage_error(arch: str, bad: str) -> None:
    with pytest.raises(UsageError, match=f"pooling '{bad}' is not available for {arch}"):
        resolve_pooling(ModelConfig(arch=arch, pooling=bad))


def test_default_poolings() -> None:
    expected = {
        "rnn": "last",
        "lstm": "last",
        "gru": "last",
        "cnn": "max",
        "cnn-lstm": "max",
        "cnn-gru": "max",
        "transformer": "mean",
    }
    for arch, mode in expected.items():
        assert resolve_pooling(ModelConfig(arch=arch)) == mode


def test_unknown_architecture_names_the_choices() -> None:
    with pytest.raises(UsageError, match="unknown architecture 'resnet'; choose one of: rnn"):
        SequenceModel(ModelConfig(arch="resnet"), 4, 2)


def test_conv_lengths_use_floor_division_and_keep_one_position() -> None:
    config = ModelConfig(
        arch="cnn", channels=[4, 4], kernel_sizes=[3, 2], dilations=[1, 3], pool_sizes=[3, 2]
    )
    stack = ConvStack(config, 4).eval()
    x = torch.zeros(4, 50, 4)
    states, lengths = stack(x, torch.tensor([50, 12, 5, 1]))
    # 50 // 3 = 16 -> 16 // 2 = 8; 12 -> 4 -> 2; 5 -> 1 -> 1 (never 0); 1 -> 1 -> 1
    assert lengths.tolist() == [8, 2, 1, 1]
    assert states.shape == (4, 8, 4)
    # a batch narrower than one pooling window still yields one position
    states, lengths = stack(torch.zeros(1, 2, 4), torch.tensor([2]))
    assert states.shape == (1, 1, 4) and lengths.tolist() == [1]


def test_even_kernels_keep_the_sequence_length() -> None:
    config = ModelConfig(
        arch="cnn", channels=[3, 3], kernel_sizes=[4, 2], dilations=[2, 1], pool_sizes=[1, 1]
    )
    states, lengths = ConvStack(config, 4)(torch.zeros(2, 11, 4), torch.tensor([11, 6]))
    assert states.shape == (2, 11, 3) and lengths.tolist() == [11, 6]


def test_masked_batch_norm_trains_on_real_positions_only() -> None:
    torch.manual_seed(0)
    norm = MaskedBatchNorm(2).train()
    real_a, real_b = torch.randn(2, 5), torch.randn(2, 3)
    h = torch.full((2, 2, 5), 50.0)  # padding filled with a large value
    h[0], h[1, :, :3] = real_a, real_b
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2]).unsqueeze(1)
    out = norm(h, mask)
    real = torch.cat([real_a, real_b], dim=1)  # (channels, 8 real positions)
    mean, var = real.mean(dim=1), real.var(dim=1, unbiased=False)
    expected = (real_a - mean[:, None]) / torch.sqrt(var[:, None] + norm.eps)
    assert torch.allclose(out[0], expected, atol=1e-5)
    assert torch.allclose(norm.running_mean, 0.1 * mean, atol=1e-6)
    assert torch.allclose(norm.running_var, 0.9 + 0.1 * real.var(dim=1, unbiased=True), atol=1e-6)


def test_masked_batch_norm_variance_survives_a_large_mean() -> None:
    """A channel whose mean is 10^4 times its spread: E[h^2] - mean^2 in float32 would
    lose the variance entirely; the two-pass statistics keep it."""
    torch.manual_seed(1)
    h = (1000.0 + 0.1 * torch.randn(3, 2, 50)).float()
    mask = torch.ones(3, 1, 50, dtype=torch.bool)
    mask[2, :, 30:] = False
    norm = MaskedBatchNorm(2, momentum=1.0).train()
    norm(h, mask)
    real = torch.cat([h[0], h[1], h[2, :, :30]], dim=1).double()
    assert torch.allclose(norm.running_var.double(), real.var(dim=1), rtol=1e-3)


def test_unpadded_batch_takes_the_fused_batch_norm_with_the_same_result() -> None:
    """A batch without padding skips the masks (ConvStack passes no mask): torch's own
    batch norm must give what the masked one gives with every position real."""
    torch.manual_seed(3)
    h = torch.randn(4, 6, 40) * 2 + 1.5
    fused, masked = MaskedBatchNorm(6).train(), MaskedBatchNorm(6).train()
    a = fused(h, None)
    b = masked(h, torch.ones(4, 1, 40, dtype=torch.bool))
    assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(fused.running_mean, masked.running_mean, atol=1e-6)
    assert torch.allclose(fused.running_var, masked.running_var, atol=1e-5)
    # and a whole CNN: the same batch padded by one column (masked path) trains alike
    config = ModelConfig(
        arch="cnn",
        channels=[8, 8],
        kernel_sizes=[5, 3],
        dilations=[1, 2],
        pool_sizes=[2, 1],
        dropout=0.0,
    )
    net = ConvStack(config, 4).train()
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (3, 30)), 4).float()
    lengths = torch.full((3,), 30)
    plain, _ = net(x, lengths)
    wider, _ = net(torch.cat([x, torch.zeros(3, 2, 4)], dim=1), lengths)
    assert torch.allclose(plain, wider[:, :15], atol=1e-5)


def test_parameter_count_matches_the_layers() -> None:
    config = ModelConfig(arch="cnn", channels=[8], kernel_sizes=[3], dilations=[1], pool_sizes=[1])
    model = SequenceModel(config, 4, 2)
    # conv 8x4x3 (no bias: batch norm follows) + norm 2x8 + head 8x2+2
    assert count_parameters(model) == 96 + 16 + 18
    lstm = SequenceModel(ModelConfig(arch="lstm", hidden_size=5), 4, 1)
    # one LSTM layer: 4 gates x (5x4 input + 5x5 recurrent + 2x5 biases), head 5+1
    assert count_parameters(lstm) == 4 * (20 + 25 + 10) + 6


def test_transformer_rejects_sequences_longer_than_max_length() -> None:
    config = ModelConfig(arch="transformer", d_model=8, heads=2, ff_size=8, max_length=10)
    model = SequenceModel(config, 4, 2).eval()
    assert model.max_length == 10
    model(torch.zeros(1, 10, 4), torch.tensor([10]))  # exactly the limit is fine
    with pytest.raises(
        DataError, match="11 positions is longer than the transformer's max-length 10"
    ):
        model(torch.zeros(1, 11, 4), torch.tensor([11]))
    with pytest.raises(
        DataError,
        match=r"src: record 'b' has 12 positions, more than this "
        r"transformer model's max-length 10 \(2 record",
    ):
        check_lengths(model, ["a", "b", "c"], [3, 12, 40], "src")
    check_lengths(SequenceModel(ModelConfig(arch="cnn"), 4, 2), ["a"], [10**6], "src")


def test_per_position_head_keeps_every_position() -> None:
    model = SequenceModel(ModelConfig(arch="gru", hidden_size=4), 4, 3, per_position=True)
    assert model(torch.zeros(2, 7, 4), torch.tensor([7, 3])).shape == (2, 7, 3)


def test_describe_names_only_the_settings_an_architecture_reads() -> None:
    cnn = describe(ModelConfig(arch="cnn", pooling="max"))
    assert cnn == (
        "cnn, channels 128,128, kernel-sizes 9,5, dilations 1,1, pool-sizes 3,1, "
        "pooling max, dropout 0.2"
    )
    lstm = describe({**ModelConfig(arch="lstm", bidirectional=True).__dict__, "pooling": "last"})
    assert lstm == "lstm, hidden-size 128, layers 1, bidirectional True, pooling last, dropout 0.2"
    tagger = describe(ModelConfig(arch="gru", hidden_size=4), per_position=True)
    assert tagger == "gru, hidden-size 4, layers 1, bidirectional False, per position, dropout 0.2"


@pytest.mark.parametrize("arch", ARCHS)
def test_models_accept_fractional_one_hot_from_the_encoder(arch: str) -> None:
    alphabet = ALPHABETS["dna"]
    codes, offsets, invalid = Encoder(alphabet).encode([b"ACGTNNRY", b"acg"])
    assert not invalid
    padded, lengths = pad_codes(codes, offsets, [0, 1])
    x = OneHot(alphabet)(torch.from_numpy(padded))
    assert torch.allclose(x[0, 4], torch.full((4,), 0.25))  # N is a quarter of each base
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(arch=arch, **SMALL), alphabet.size, 2).eval()
    out = model(x, torch.from_numpy(lengths))
    assert out.shape == (2, 2) and bool(torch.isfinite(out).all())
    alone = model(x[1:, :3], torch.tensor([3]))
    assert torch.allclose(out[1], alone[0], atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_training_step_under_bfloat16_autocast(arch: str) -> None:
    """What --precision bf16 / 16-mixed does on a GPU, with CPU autocast standing in:
    padded batches train (the masked batch norm keeps float32 statistics), and the
    gradients and running statistics stay finite float32."""
    torch.manual_seed(0)
    model = SequenceModel(
        ModelConfig(
            arch=arch,
            hidden_size=8,
            channels=[8, 8],
            kernel_sizes=[5, 3],
            pool_sizes=[2, 1],
            d_model=8,
            heads=2,
            ff_size=16,
        ),
        4,
        3,
    ).train()
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (4, 30)), 4).float()
    lengths = torch.tensor([30, 22, 9, 3])  # padding in three of four rows
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, lengths)
    loss = torch.nn.functional.cross_entropy(out.float(), torch.tensor([0, 1, 2, 1]))
    loss.backward()
    assert torch.isfinite(loss)
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.dtype == torch.float32, name
        assert torch.isfinite(p.grad).all(), name
    for module in model.modules():
        if isinstance(module, MaskedBatchNorm):
            assert module.running_mean is not None and module.running_var is not None
            assert module.running_mean.dtype == torch.float32
            assert torch.isfinite(module.running_var).all()
            assert int(module.num_batches_tracked) == 1


def test_auto_architecture_is_the_default_recipe_and_reads_left_to_right_for_a_lm() -> None:
    from bioseqnn.models.base import DEFAULT_ARCH, DEFAULT_CAUSAL_ARCH, resolve_model

    auto = ModelConfig(arch="auto")
    assert resolve_model(auto).arch == DEFAULT_ARCH == "cnn-gru"
    assert resolve_model(auto, causal=True).arch == DEFAULT_CAUSAL_ARCH == "gru"
    assert resolve_model(ModelConfig(arch="lstm"), causal=True).arch == "lstm"
    # empty pool sizes: 3 after the first convolution, none where positions must stay
    three = ModelConfig(
        arch="cnn", channels=[8, 8, 8], kernel_sizes=[3, 3, 3], dilations=[1, 1, 1], pool_sizes=[]
    )
    assert resolve_model(three).pool_sizes == [3, 1, 1]
    assert resolve_model(three, median_length=100).pool_sizes == [3, 1, 1]
    assert resolve_model(three, median_length=99.5).pool_sizes == [1, 1, 1]  # short: no pool
    assert resolve_model(three, per_position=True).pool_sizes == [1, 1, 1]
    assert resolve_model(ModelConfig(pool_sizes=[2, 2])).pool_sizes == [2, 2]  # given: kept
    model = SequenceModel(auto, 4, 2)
    assert model.config.arch == "cnn-gru" and resolve_pooling(auto) == "max"
    lm = SequenceModel(auto, 4, 5, causal=True)
    assert lm.config.arch == "gru" and lm.backbone.directions == 1


@pytest.mark.parametrize("arch", ARCHS)
def test_model_size_is_what_the_built_model_holds(arch: str) -> None:
    """model_size (what bounds a model before anything is built) counts exactly the
    tensors and numbers of the state dict, for random settings of every architecture."""
    import random

    from bioseqnn.models.base import model_size

    rng = random.Random(arch)
    for _ in range(40):
        n, heads = rng.randint(1, 3), rng.choice([1, 2, 3])
        config = ModelConfig(
            arch=arch,
            hidden_size=rng.randint(1, 9),
            layers=rng.randint(1, 3),
            bidirectional=rng.random() < 0.5 and arch != "cnn-lstm",
            pooling=rng.choice(["auto", *REGISTRY[arch].poolings]),
            channels=[rng.randint(1, 7) for _ in range(n)],
            kernel_sizes=[rng.randint(1, 5) for _ in range(n)],
            dilations=[1] * n,
            pool_sizes=[1] * n,
            d_model=heads * rng.randint(1, 4),
            heads=heads,
            ff_size=rng.randint(1, 9),
        )
        channels, outputs, per_position = (
            rng.choice([4, 20, 7]),
            rng.randint(1, 5),
            rng.random() < 0.3,
        )
        with torch.device("meta"):
            state = SequenceModel(config, channels, outputs, per_position).state_dict()
        size = model_size(config, channels, outputs, per_position)
        assert (size.tensors, size.weights) == (len(state), sum(t.numel() for t in state.values()))


def test_a_model_too_large_to_build_is_named_before_anything_is_built() -> None:
    from bioseqnn.models.base import MAX_TENSORS, MAX_WEIGHTS, too_large

    deep = ModelConfig(arch="lstm", hidden_size=8, layers=1_000_000)
    assert too_large([deep], 20, 1) == (
        "the model (lstm, hidden-size 8, layers 1000000) would hold 4,000,002 tensors, more "
        f"than bioseqnn builds ({MAX_TENSORS:,})"
    )
    wide = ModelConfig(arch="gru", hidden_size=100_000, bidirectional=True)
    assert too_large([wide] * 2, 4, 3) == (
        "the model (gru, hidden-size 100000, layers 1, 2 members) would hold "
        "120,008,400,006 weights, more than bioseqnn builds "
        f"({MAX_WEIGHTS:,}, 16 GiB as float32)"
    )
    assert too_large([ModelConfig()] * 64, 20, 1) is None  # the largest default ensemble


@pytest.mark.parametrize("arch", ["cnn", "cnn-gru"])
def test_a_lone_sequence_gets_the_same_prediction_as_in_a_batch(arch) -> None:
    # oneDNN convolves a batch of one by another algorithm on some CPUs (an Intel Xeon:
    # 3e-8 apart); the convolutions take a lone sequence as a pair, so equal-length
    # sequences get the same bits alone and in company
    if arch == "cnn-gru" and not native.usable(torch.zeros(1)):
        pytest.skip(
            "without the compiled kernels the GRU projects its inputs with torch's "
            "product, whose last bits depend on how many rows a batch has"
        )
    torch.manual_seed(0)
    model = SequenceModel(
        ModelConfig(arch=arch, hidden_size=16, channels=[32, 32], kernel_sizes=[9, 5]), 4, 1
    ).eval()
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (6, 200)), 4).float()
    lengths = torch.full((6,), 200)
    with torch.inference_mode():
        together = model(x, lengths)
        for i in range(6):
            assert torch.equal(model(x[i : i + 1], lengths[i : i + 1]), together[i : i + 1])


@pytest.mark.parametrize(("length", "pool"), [(200, 3), (199, 2), (201, 4), (3, 3)])
def test_window_max_matches_a_max_over_windows_and_its_first_max_gradient(
    length: int, pool: int
) -> None:
    """The conv stem's pooling: max_pool1d's values; the gradient goes to each window's
    first maximum (ties are common after a ReLU and in repeats), as a max with indices
    over a (windows, pool) view gives it; the tail past the last whole window gets none."""
    torch.manual_seed(0)
    base = torch.relu(torch.randn(8, 16, length)).round(decimals=1)  # many exact ties
    width = length // pool
    grad = torch.randn(8, 16, width)
    ref = base.clone().requires_grad_()
    got = base.clone().requires_grad_()
    expected = ref[:, :, : width * pool].unflatten(2, (width, pool)).max(dim=3).values
    out = window_max(got, pool)
    expected.backward(grad)
    out.backward(grad)
    assert torch.equal(out, expected)
    assert got.grad is not None and ref.grad is not None
    assert torch.equal(got.grad, ref.grad)
    assert int((got.grad != 0).sum(dim=2).max()) <= width  # one position per window
    with torch.no_grad():
        assert torch.equal(window_max(base, pool), expected)
