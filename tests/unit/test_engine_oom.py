"""Out-of-memory during inference: halve the batch, retry, log; give up at one sequence.
And --device auto without CUDA: the CPU, with a warning only when auto was asked for.

A GPU's memory limit is played by a real module whose forward raises a genuine
torch.OutOfMemoryError (the exception CUDA raises) for batches above a size, so the
retry logic runs on any machine.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from bioseqnn.alphabets import ALPHABETS
from bioseqnn.data.reading import SequenceEncoder
from bioseqnn.data.sets import SequenceSet
from bioseqnn.engine.predict import BatchLimit, both_strands, infer, resolve_device
from bioseqnn.errors import DataError
from bioseqnn.io.sniff import read_sequences
from bioseqnn.models.base import ModelConfig, SequenceModel
from bioseqnn.models.inputs import OneHot
from bioseqnn.strands import complement_table
from bioseqnn.tasks import TaskSpec

cuda_absent = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


class MemoryLimited(nn.Module):
    """A model that runs out of memory when a batch holds more than ``most`` sequences."""

    def __init__(self, model: nn.Module, most: int) -> None:
        super().__init__()
        self.model = model
        self.most = most
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.shape[0])
        if x.shape[0] > self.most:
            raise torch.OutOfMemoryError(
                f"CUDA out of memory. Tried to allocate {x.numel() * 4} bytes"
            )
        return self.model(x, lengths)


@pytest.fixture
def promoters(examples: Path) -> SequenceSet:
    """The first 50 promoter sequences (DNA, 50-150 positions)."""
    records = list(islice(read_sequences(examples / "promoters.fasta"), 50))
    encoder = SequenceEncoder("promoters.fasta", ALPHABETS["dna"], "error")
    kept, codes, offsets = encoder.encode_chunk(records)
    return SequenceSet([r.id for r in kept], codes, offsets)


@pytest.fixture
def model() -> SequenceModel:
    torch.manual_seed(1)
    return SequenceModel(ModelConfig(arch="gru", hidden_size=8, bidirectional=True), 4, 1).eval()


@pytest.fixture
def warnings_log() -> Iterator[list[str]]:
    """Messages of the 'bioseqnn' logger at warning level and above."""
    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger = logging.getLogger("bioseqnn")
    handler = Keep(logging.WARNING)
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    yield messages
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_oom_halves_the_batch_and_predicts_as_an_unconstrained_run(
    model: SequenceModel, promoters: SequenceSet, warnings_log: list[str]
) -> None:
    onehot = OneHot(ALPHABETS["dna"])
    cpu = torch.device("cpu")
    expected = infer(model, onehot, promoters, 64, cpu)
    limited = MemoryLimited(model, most=10)
    got = infer(limited, onehot, promoters, 64, cpu)  # type: ignore[arg-type]
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert warnings_log == [
        "out of memory on cpu with a batch of 50 sequences; retrying with 25",
        "out of memory on cpu with a batch of 25 sequences; retrying with 12",
        "out of memory on cpu with a batch of 12 sequences; retrying with 6",
    ]
    # three refused tries, then every sequence exactly once in batches of at most 6
    assert limited.batches[:3] == [50, 25, 12]
    assert limited.batches[3:] == [6] * 8 + [2]


def test_a_shared_limit_stays_halved_for_later_calls(
    model: SequenceModel, promoters: SequenceSet, warnings_log: list[str]
) -> None:
    """predict shares one limit over its chunks and both strands: the halving happens once."""
    onehot = OneHot(ALPHABETS["dna"])
    cpu = torch.device("cpu")
    task = TaskSpec("regression", ["log2_expression"], target_mean=[5.0], target_std=[2.0])
    rc = complement_table(ALPHABETS["dna"])
    expected = both_strands(model, onehot, task, promoters, 32, cpu, rc)
    limited = MemoryLimited(model, most=20)
    limit = BatchLimit(32)
    got = both_strands(limited, onehot, task, promoters, 32, cpu, rc, limit)  # type: ignore[arg-type]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert limit.size == 16
    assert warnings_log == ["out of memory on cpu with a batch of 32 sequences; retrying with 16"]
    assert max(limited.batches[1:]) == 16


def test_oom_with_one_sequence_is_an_error_naming_it(
    model: SequenceModel, promoters: SequenceSet, warnings_log: list[str]
) -> None:
    onehot = OneHot(ALPHABETS["dna"])
    data = promoters
    shortest = int(np.argmin(data.lengths))  # the first of the first (length-sorted) batch
    limited = MemoryLimited(model, most=0)
    with pytest.raises(DataError) as err:
        infer(limited, onehot, data, 4, torch.device("cpu"))  # type: ignore[arg-type]
    assert str(err.value) == (
        f"out of memory on cpu predicting record {data.ids[shortest]!r} "
        f"({int(data.lengths[shortest])} positions) on its own; split or trim the longest "
        "sequences"  # on a GPU: "use --device cpu, or split ..."
    )
    assert warnings_log == [
        "out of memory on cpu with a batch of 4 sequences; retrying with 2",
        "out of memory on cpu with a batch of 2 sequences; retrying with 1",
    ]
    assert limited.batches == [4, 2, 1]


@cuda_absent
def test_auto_without_cuda_is_the_cpu_and_warns_only_when_asked_for(
    warnings_log: list[str],
) -> None:
    assert resolve_device(None) == torch.device("cpu")
    assert warnings_log == []
    assert resolve_device("auto") == torch.device("cpu")
    assert len(warnings_log) == 1
    assert warnings_log[0].startswith("--device auto: ")
    assert warnings_log[0].endswith("; running on the CPU")


@cuda_absent
def test_cli_predict_device_auto_warns_on_stderr_only_when_given(
    cli, promoter_model: Path, examples: Path, tmp_path: Path
) -> None:
    fasta = tmp_path / "few.fasta"
    fasta.write_text(">" + ">".join((examples / "promoters.fasta").read_text().split(">")[1:4]))
    quiet = cli("predict", promoter_model, fasta)
    asked = cli("predict", promoter_model, fasta, "--device", "auto")
    assert quiet.code == 0 and asked.code == 0
    assert quiet.out == asked.out and len(asked.out.splitlines()) == 4
    assert "warning" not in quiet.err
    assert asked.err.startswith("bioseqnn: warning: --device auto: ")
    assert "running on the CPU" in asked.err


class CPUMemoryLimited(MemoryLimited):
    """Runs out of memory as the CPU does: torch's allocator raises a RuntimeError, numpy
    and Python a MemoryError."""

    def __init__(self, model: nn.Module, most: int, error: BaseException) -> None:
        super().__init__(model, most)
        self.error = error

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.shape[0])
        if x.shape[0] > self.most:
            raise self.error
        return self.model(x, lengths)


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't "
            "allocate memory: you tried to allocate 40000000000000 bytes. Error code 12 "
            "(Cannot allocate memory)"
        ),
        MemoryError(),
    ],
    ids=["torch-allocator", "MemoryError"],
)
def test_cpu_out_of_memory_is_handled_as_a_gpus(
    model: SequenceModel, promoters: SequenceSet, warnings_log: list[str], error: BaseException
) -> None:
    """Out of CPU memory was an 'unexpected' error: it is retried in halves and, for one
    record, names it, as on a GPU."""
    onehot = OneHot(ALPHABETS["dna"])
    expected = infer(model, onehot, promoters, 8, torch.device("cpu"))
    limited = CPUMemoryLimited(model, 3, error)
    got = infer(limited, onehot, promoters, 8, torch.device("cpu"))  # type: ignore[arg-type]
    # as the halving test above: without the compiled kernels the GRU's input projection
    # is torch's product, whose last bits depend on the batch's row count
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert warnings_log[:2] == [
        "out of memory on cpu with a batch of 8 sequences; retrying with 4",
        "out of memory on cpu with a batch of 4 sequences; retrying with 2",
    ]
    with pytest.raises(
        DataError,
        match="out of memory on cpu predicting record .* on its own; "
        "split or trim the longest sequences",
    ):
        infer(
            CPUMemoryLimited(model, 0, error),
            onehot,
            promoters,
            2,  # type: ignore[arg-type]
            torch.device("cpu"),
        )


def test_an_error_that_is_no_out_of_memory_is_not_retried(
    model: SequenceModel, promoters: SequenceSet
) -> None:
    onehot = OneHot(ALPHABETS["dna"])
    limited = CPUMemoryLimited(model, 0, RuntimeError("shapes do not match"))
    with pytest.raises(RuntimeError, match="shapes do not match"):
        infer(limited, onehot, promoters, 8, torch.device("cpu"))  # type: ignore[arg-type]
    assert limited.batches == [8]


def test_a_library_that_cannot_be_mapped_is_out_of_memory() -> None:
    """Under a memory ceiling an import can fail to map its shared library: that is
    memory running out (the error funnel says so), not an unexpected error."""
    from bioseqnn.engine.predict import out_of_memory

    mapped = ImportError("/x/_pydantic_core.so: failed to map segment from shared object")
    assert out_of_memory(mapped)
    assert not out_of_memory(ImportError("No module named 'captum'"))
