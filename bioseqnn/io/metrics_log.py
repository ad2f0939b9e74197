"""The per-epoch metrics log of a training run: TSV (one row per epoch) or JSON lines for a
.jsonl/.json name, flushed as training goes so that a running job can be watched.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any


def default_log_path(output: str | os.PathLike[str]) -> Path:
    """model.bsnn -> model.log.tsv, beside the model."""
    p = Path(output)
    return p.with_name(p.stem + ".log.tsv") if p.suffix else p.with_name(p.name + ".log.tsv")


class EpochLog:
    """The per-epoch metrics log, flushed as training goes: TSV, one row per epoch, or
    JSON lines (one object per epoch) when the name ends in .jsonl or .json."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.handle: IO[str] | None = None
        self.columns: list[str] = []
        self.jsonl = path is not None and path.suffix in (".jsonl", ".json")

    def __call__(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        if self.handle is None:
            self.handle = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115
            self.columns = list(record)
            if not self.jsonl:
                self.handle.write("\t".join(self.columns) + "\n")
        if self.jsonl:
            self.handle.write(json.dumps(record, allow_nan=True) + "\n")
            self.handle.flush()
            return
        cells = [_fmt(record.get(c, "")) for c in self.columns]
        self.handle.write("\t".join(cells) + "\n")
        self.handle.flush()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
