"""The per-epoch metrics log of a training run: TSV (one row per epoch) or JSON lines for a
.jsonl/.json name, flushed as training goes so that a running job can be watched.
"""

from __future__ import annotations

import json
import os
import stat
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
        self.failed = False

    def __call__(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        try:
            self._write(record)
        except OSError as exc:  # a full disk, /dev/full, a pipe whose reader went away
            raise self._failed(exc) from None

    def _write(self, record: dict[str, Any]) -> None:
        assert self.path is not None
        if self.handle is None:
            self.handle = _open_held(self.path)
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
        """Close the log; what it could not write is an error once (close runs after a
        failed write too, and must not hide that error)."""
        handle, self.handle = self.handle, None
        if handle is None:
            return
        try:
            handle.close()
        except OSError as exc:
            if not self.failed:
                raise self._failed(exc) from None

    def _failed(self, exc: OSError) -> Exception:
        from ..errors import DataError

        self.failed = True
        return DataError(f"{self.path}: cannot write the metrics log: {exc.strerror or exc}")


def _open_held(path: Path) -> IO[str]:
    """The log opened empty for this run alone. Two runs given one model name (a rule
    started twice) wrote their rows into one file, torn lines included; the second now
    stops with a usage error. An advisory flock, taken before the file is emptied, held
    while the run lives (the system drops it when the process ends, a kill included);
    where there are no locks (Windows, some network file systems) the log is unguarded.
    A log that is no regular file (/dev/stdout, a named pipe) is written as it is."""
    from ..errors import UsageError

    handle = open(path, "a", encoding="utf-8", newline="")  # noqa: SIM115
    if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
        return handle
    try:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:
        pass
    except BlockingIOError:
        handle.close()
        raise UsageError(
            f"{path}: another training run is writing this log (the same -o or --log "
            "given twice?); give this run another output name"
        ) from None
    except OSError:  # ENOLCK, EOPNOTSUPP: a file system without locks
        pass
    handle.seek(0)
    handle.truncate()
    return handle


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
