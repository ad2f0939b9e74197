"""The generate command: sequences sampled from a language model."""

from __future__ import annotations

import logging
import os

from ..arguments import checked
from ..bundle import load_bundle
from ..engine.predict import (
    resolve_device,
)
from ..errors import UsageError
from ..io.files import STDIO, display_name
from ..io.outputs import (
    atomic_output,
    check_output_path,
)
from ..runtime import configure_threads, keeps_threads
from ..variants.lm import Sampling, sample

log = logging.getLogger("bioseqnn")


@keeps_threads
@checked
def generate(
    model: str | os.PathLike[str],
    output: str | os.PathLike[str] = STDIO,
    n: int = 10,
    *,
    sampling: Sampling | None = None,
    prefix: str = "",
    seed: int = 0,
    id_prefix: str = "sample_",
    batch_size: int = 64,
    device: str | None = None,
    threads: int = 0,
) -> int:
    """Sample ``n`` sequences from a language model and write them as FASTA (records
    ``id_prefix``1, 2, ...). Returns how many were written."""
    if not id_prefix or any(c.isspace() for c in id_prefix) or id_prefix.startswith(">"):
        raise UsageError(
            f"--id-prefix {id_prefix!r}: record names need text without "
            "spaces that does not start with '>'"
        )
    check_output_path(output, {"MODEL": model})
    configure_threads(threads)
    dev = resolve_device(device)
    bundle = load_bundle(model, dev)
    samples = sample(
        bundle, n, sampling=sampling, prefix=prefix, seed=seed, batch_size=batch_size, device=dev
    )
    written = 0
    with atomic_output(output) as fh:
        for seq in samples:
            written += 1
            fh.write(f">{id_prefix}{written}\n{seq}\n")
    log.info("sampled %d sequence(s) from %s", written, display_name(model))
    return written
