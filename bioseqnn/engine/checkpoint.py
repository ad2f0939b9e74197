"""Training checkpoints: one safetensors file per run directory, replaced atomically.

Tensors (model, best weights, optimiser moments, RNG states) are raw safetensors
entries; everything else (epoch, history, schedule counters, optimiser settings, numpy
state) is JSON in the header. Nothing executable is stored, so loading a checkpoint can
never run code, and a kill at any moment leaves the previous checkpoint whole: the new
one is written beside it and renamed over it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..errors import TrainingError, UsageError
from ..io.outputs import make_folder, write_bytes_atomic

FORMAT = "bioseqnn-checkpoint"
FORMAT_VERSION = 1
FILE_NAME = "checkpoint.safetensors"
LOCK_NAME = "bioseqnn.lock"
"""Held by the run that writes a checkpoint folder (hold_checkpoint_dir)."""
META_KEY = "bioseqnn_checkpoint"

log = logging.getLogger("bioseqnn")


@dataclass
class Checkpoint:
    """A run's state after ``epoch`` complete epochs."""

    epoch: int
    run: dict[str, Any]
    """What must match for a resume: data fingerprint, task, model and training settings."""
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    schedule: dict[str, Any]
    rng_torch: torch.Tensor
    rng_cuda: list[torch.Tensor] = field(default_factory=list)
    scaler: dict[str, Any] | None = None
    best_model: dict[str, torch.Tensor] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best: dict[str, Any] = field(default_factory=dict)
    best_value: float | None = None
    waited: int = 0
    done: bool = False
    """Training ended here (last epoch or early stop): resuming only writes the model."""


def checkpoint_path(directory: str | os.PathLike[str]) -> Path:
    return Path(directory) / FILE_NAME


def prepare_checkpoint_dir(directory: str | os.PathLike[str]) -> None:
    """Create the checkpoint folder before training, so that a bad path is a usage error
    at once rather than after the first epoch."""
    if Path(directory).exists() and not Path(directory).is_dir():
        raise UsageError(f"--checkpoint-dir {directory}: is a file, not a directory")
    try:
        make_folder(directory)
    except OSError as exc:
        raise UsageError(f"--checkpoint-dir {directory}: cannot create: {exc.strerror}") from None
    if not os.access(directory, os.W_OK):
        raise UsageError(f"--checkpoint-dir {directory}: cannot write: not writable")


@contextlib.contextmanager
def hold_checkpoint_dir(directory: str | os.PathLike[str] | None) -> Iterator[None]:
    """Hold the checkpoint folder for the length of a run: a second process given the
    same folder (a rule run twice, one folder named for many jobs) stops at once with a
    usage error naming the holder, instead of writing over this run's checkpoints.

    An advisory ``flock`` on ``DIR/bioseqnn.lock``, a file that exists while the run
    does: the system drops the lock when the process ends, however it ends, so a killed
    run never leaves the folder locked. Linux NFS clients pass it to the server; a file
    system without locks runs unguarded."""
    if directory is None:
        yield
        return
    try:
        import fcntl
    except ImportError:  # no flock (Windows): unguarded
        yield
        return
    path = Path(directory) / LOCK_NAME
    fd = _lock(path, fcntl, directory)
    if fd is not None:
        # a checkpoint half-written by a run that was killed (kill -9, a node lost): with
        # the folder held, no other run can be writing it
        for stale in Path(directory).glob(f".{FILE_NAME}.*.part"):
            with contextlib.suppress(OSError):
                stale.unlink()
    try:
        yield
    finally:
        if fd is not None:
            # removed while still held: a process that opened it meanwhile finds, once
            # it has the lock, that the file is no longer there, and starts again
            with contextlib.suppress(OSError):
                path.unlink()
            os.close(fd)


def _lock(path: Path, fcntl: Any, directory: str | os.PathLike[str]) -> int | None:
    """The open, locked lock file; None where the file system has no locks."""
    while True:
        try:
            # never through a link: the file is written to, and must not be an input
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symbolic link
                raise UsageError(_not_a_lock(directory)) from None
            raise UsageError(
                f"--checkpoint-dir {directory}: cannot write {LOCK_NAME}: {exc.strerror}"
            ) from None
        seen = os.fstat(fd)
        if seen.st_nlink == 0:  # the holder removed it as it finished: open the new one
            os.close(fd)
            continue
        if not stat.S_ISREG(seen.st_mode) or seen.st_nlink > 1 or seen.st_size > 4096:
            os.close(fd)
            raise UsageError(_not_a_lock(directory))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip()
            os.close(fd)
            raise UsageError(
                f"--checkpoint-dir {directory}: another training run is using it"
                + (f" (process {holder})" if holder else "")
                + "; wait for it to end, or give each run its own --checkpoint-dir"
            ) from None
        except OSError as exc:  # ENOLCK, EOPNOTSUPP: a file system without locks
            log.debug("--checkpoint-dir %s: no lock (%s)", directory, exc.strerror)
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        try:
            here = os.stat(path)
        except FileNotFoundError:
            here = None
        if here is not None and (here.st_dev, here.st_ino) == (seen.st_dev, seen.st_ino):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} on {socket.gethostname()}\n".encode())
            return fd
        os.close(fd)  # the holder removed it as it finished: lock the new one


def _not_a_lock(directory: str | os.PathLike[str]) -> str:
    return (
        f"--checkpoint-dir {directory}: {LOCK_NAME} is not a lock file of bioseqnn's "
        "(a link, or not a small regular file); remove it or give another --checkpoint-dir"
    )


def save_checkpoint(directory: str | os.PathLike[str], ck: Checkpoint) -> Path:
    path = checkpoint_path(directory)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--checkpoint-dir {directory}: cannot create: {exc.strerror}") from None
    tensors: dict[str, torch.Tensor] = {}
    for name, t in ck.model.items():
        tensors[f"model/{name}"] = t
    for name, t in (ck.best_model or {}).items():
        tensors[f"best/{name}"] = t
    moments: dict[str, dict[str, Any]] = {}
    for index, state in ck.optimizer["state"].items():
        plain: dict[str, Any] = {}
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/{index}/{key}"] = value
            else:
                plain[key] = value
        moments[str(index)] = plain
    tensors["rng/torch"] = ck.rng_torch
    for i, state in enumerate(ck.rng_cuda):
        tensors[f"rng/cuda/{i}"] = state
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "epoch": ck.epoch,
        "run": ck.run,
        "optimizer": {"param_groups": ck.optimizer["param_groups"], "plain": moments},
        "schedule": ck.schedule,
        "scaler": ck.scaler,
        "history": ck.history,
        "best_epoch": ck.best_epoch,
        "best": ck.best,
        "best_value": ck.best_value,
        "waited": ck.waited,
        "done": ck.done,
        "has_best": ck.best_model is not None,
        "cuda_devices": len(ck.rng_cuda),
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    data = st_save(tensors, metadata={META_KEY: json.dumps(meta, allow_nan=True)})
    write_bytes_atomic(path, data)
    return path


def load_checkpoint(directory: str | os.PathLike[str]) -> Checkpoint | None:
    """The checkpoint in ``directory``, or None when there is none yet."""
    path = checkpoint_path(directory)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TrainingError(f"{path}: cannot read the checkpoint: {exc.strerror}") from None
    try:
        tensors = st_load(data)
        header_size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_size])
        meta = json.loads(header["__metadata__"][META_KEY])
    except (SafetensorError, ValueError, KeyError, TypeError):
        raise TrainingError(
            f"{path}: not a readable bioseqnn checkpoint (damaged?); remove it to start afresh"
        ) from None
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise TrainingError(f"{path}: not a bioseqnn checkpoint of format {FORMAT_VERSION}")
    state: dict[int, dict[str, Any]] = {
        int(i): dict(plain) for i, plain in meta["optimizer"]["plain"].items()
    }
    for key, value in tensors.items():
        if key.startswith("optim/"):
            _, index, name = key.split("/", 2)
            state.setdefault(int(index), {})[name] = value

    def part(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

    return Checkpoint(
        epoch=int(meta["epoch"]),
        run=meta["run"],
        model=part("model/"),
        optimizer={"state": state, "param_groups": meta["optimizer"]["param_groups"]},
        schedule=meta["schedule"],
        rng_torch=tensors["rng/torch"],
        rng_cuda=[tensors[f"rng/cuda/{i}"] for i in range(int(meta["cuda_devices"]))],
        scaler=meta["scaler"],
        best_model=part("best/") if meta["has_best"] else None,
        history=meta["history"],
        best_epoch=int(meta["best_epoch"]),
        best=meta["best"],
        best_value=meta["best_value"],
        waited=int(meta["waited"]),
        done=bool(meta["done"]),
    )


def run_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Settings that differ between a checkpoint's run and this one ('key: old -> new')."""
    out = []
    for key in sorted(set(saved) | set(current)):
        if saved.get(key) != current.get(key):
            old, new = saved.get(key), current.get(key)
            if isinstance(old, dict) and isinstance(new, dict):
                out += [f"{key}.{d}" for d in run_differences(old, new)]
            else:
                out.append(f"{key}: {_short(old)} -> {_short(new)}")
    return out


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 24 else text[:21] + "..."
