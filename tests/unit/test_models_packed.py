"""The packed-sequence path (used on CUDA with cuDNN) gives the padded path's results."""

from __future__ import annotations

import pytest
import torch

from bioseqnn.models import ModelConfig, SequenceModel


@pytest.mark.parametrize("arch", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("pooling", ["last", "mean", "max", "attention"])
def test_packed_equals_padded_outputs_and_gradients(
    arch: str, bidirectional: bool, pooling: str
) -> None:
    torch.manual_seed(0)
    config = ModelConfig(
        arch=arch, hidden_size=12, layers=2, bidirectional=bidirectional, pooling=pooling
    )
    model = SequenceModel(config, in_channels=4, n_outputs=3).eval()
    lengths = torch.tensor([5, 40, 1, 17, 40, 9])
    x = torch.rand(len(lengths), 40, 4)
    x = x * (torch.arange(40)[None, :, None] < lengths[:, None, None])

    results = []
    for pack in (False, True):
        model.backbone.pack_sequences = pack
        model.zero_grad()
        out = model(x, lengths)
        out.pow(2).sum().backward()
        grads = [p.grad.clone() for p in model.parameters()]
        results.append((out.detach(), grads))
    (out_pad, g_pad), (out_pack, g_pack) = results
    torch.testing.assert_close(out_pack, out_pad, atol=1e-5, rtol=1e-5)
    for a, b in zip(g_pack, g_pad, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_packing_is_automatic_only_on_cuda() -> None:
    model = SequenceModel(ModelConfig(arch="lstm", hidden_size=4), 4, 1)
    assert model.backbone.pack_sequences is None  # auto: packed on CUDA, padded on CPU


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_packed_matches_cpu() -> None:
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(arch="lstm", hidden_size=16, bidirectional=True), 4, 2)
    model.eval()
    lengths = torch.tensor([3, 50, 20])
    x = torch.rand(3, 50, 4) * (torch.arange(50)[None, :, None] < lengths[:, None, None])
    cpu = model(x, lengths)
    gpu = model.cuda()(x.cuda(), lengths.cuda()).cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-4, rtol=1e-4)
