"""Training progress for people: one line per epoch through the ``bioseqnn`` logger, and
a progress bar (Rich: a terminal, or a Jupyter notebook with ipywidgets) when asked."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("bioseqnn")


def epoch_line(record: dict[str, Any], epochs: int, headline: str, monitor: str) -> str:
    """One epoch's figures in a line: epoch, losses, the headline metric, MCC, r2, ...
    (the figures that expose a constant predictor beside the usual ones: MCC and the
    majority-class rate for classes, Pearson r for regression)."""
    parts = [f"epoch {record['epoch']}/{epochs}", f"train_loss {record['train_loss']:.4f}"]
    for tag in ("member", "fold"):
        if tag in record:
            parts.insert(0, f"{tag} {record[tag]}")
    shown = ("val_loss", f"val_{headline}", "val_mcc", "val_r2", "val_pearson", monitor)
    for key in dict.fromkeys(shown):
        if isinstance(record.get(key), (int, float)):
            parts.append(f"{key} {record[key]:.4f}")
            if key == "val_accuracy" and "val_majority" in record:
                parts[-1] += f" (majority {record['val_majority']:.4f})"
    parts.append(f"{record['elapsed_s']:.1f}s")
    return "  ".join(parts)


class EpochReporter:
    """The library's reporter (bioseqnn.train): each epoch's line to the ``bioseqnn``
    logger at INFO, so ``logging.getLogger("bioseqnn").setLevel(logging.WARNING)``
    silences it; with ``bar``, a Rich progress bar of the epoch's batches on stderr."""

    def __init__(self, bar: bool = False, headline: str = "accuracy") -> None:
        self.bar = bar
        self.headline = headline
        self.epochs = 0
        self.monitor = "val_loss"
        self.progress: Any = None
        self.task: Any = None

    def start(self, epochs: int, batches: int, monitor: str = "val_loss") -> None:
        self.epochs, self.monitor = epochs, monitor
        if self.bar and self.progress is None and log.isEnabledFor(logging.INFO):
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
                BarColumn(),
                TextColumn("loss {task.fields[loss]:.4f}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task(
                "train", total=batches, epoch=1, epochs=epochs, loss=float("nan")
            )
        elif self.progress is not None:  # the next ensemble member or fold
            self.progress.reset(self.task, total=batches, epoch=1, epochs=epochs)

    def batch(self, epoch: int, loss: float) -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=1, epoch=epoch, loss=loss)

    def epoch(self, record: dict[str, Any]) -> None:
        log.info("%s", epoch_line(record, self.epochs, self.headline, self.monitor))
        if self.progress is not None:
            self.progress.reset(self.task)

    def finish(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
