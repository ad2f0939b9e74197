"""Training progress for people: one line per epoch through the ``bioseqnn`` logger, and
a progress bar (Rich: a terminal, or a Jupyter notebook with ipywidgets) when asked."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("bioseqnn")


def console(**options: Any) -> Any:
    """A Rich console (``options`` as for ``rich.console.Console``) that a reader going
    away does not end with exit 1, as Rich's own does: on stderr (progress, tables) the
    rest of its output is dropped and the work goes on; on stdout it raises
    BrokenPipeError, which the command line ends quietly with exit 0."""
    return _console_class()(**options)


@functools.cache
def _console_class() -> Any:
    from rich.console import Console  # loaded when a bar or table is shown

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            if not self.stderr:
                raise BrokenPipeError

    return _Console


def epoch_line(record: dict[str, Any], epochs: int, headline: str, monitor: str) -> str:
    """One epoch's figures in a line: epoch, losses, the headline metric, MCC, r2, ...
    (the figures that expose a constant predictor beside the usual ones: MCC and the
    majority-class rate for classes, Pearson r for regression)."""
    parts = [f"epoch {record['epoch']}/{epochs}", f"train_loss {record['train_loss']:.4f}"]
    for tag in ("member", "fold"):
        if tag in record:
            parts.insert(0, f"{tag} {record[tag]}")
    shown = ("val_loss", f"val_{headline}", "val_mcc", "val_r2", "val_pearson", monitor)
    for key in dict.fromkeys(k for k in shown if k != "train_loss"):  # shown first
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
        self.shown = 0.0  # when a notebook's bar was last drawn (see start)

    def start(self, epochs: int, batches: int, monitor: str = "val_loss") -> None:
        self.epochs, self.monitor = epochs, monitor
        if self.bar and self.progress is None and log.isEnabledFor(logging.INFO):
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            shown = console(stderr=True)
            self.progress = Progress(
                TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
                BarColumn(),
                TextColumn("loss {task.fields[loss]:.4f}"),
                TimeElapsedColumn(),
                console=shown,
                transient=True,
                # a notebook's bar is an output widget, and while Rich's refresh thread
                # draws it, everything the cell prints goes into the widget, to be
                # cleared at the next draw: an epoch's log line written then was lost.
                # There the bar is drawn here, between the lines (see batch).
                auto_refresh=not shown.is_jupyter,
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
            if not self.progress.live.auto_refresh and time.monotonic() - self.shown > 0.1:
                self.shown = time.monotonic()
                self.progress.refresh()

    def epoch(self, record: dict[str, Any]) -> None:
        log.info("%s", epoch_line(record, self.epochs, self.headline, self.monitor))
        if self.progress is not None:
            self.progress.reset(self.task)

    def finish(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


class WorkLog:
    """A long job's progress for people, through the ``bioseqnn`` logger at INFO: its
    size when it starts (with ``size``, what the ``total`` units are of: "what: size,
    total units to predict"), then, once ``settle`` seconds of work show the rate, the
    time left where that is more than a minute (with ``hint``: how to ask for less), and
    a line every ``period`` seconds after that. A job of a few seconds says nothing more
    than its size."""

    def __init__(
        self,
        what: str,
        total: int,
        unit: str,
        hint: str = "",
        settle: float = 10.0,
        period: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        size: str = "",
    ) -> None:
        self.what, self.total, self.unit, self.hint = what, max(total, 0), unit, hint
        self.settle, self.period, self.clock = settle, period, clock
        if size:
            log.info("%s: %s, %s %s to predict", what, size, f"{self.total:,}", unit)
        self.done = 0
        self.started = clock()
        self.next_line: float | None = None  # None: the rate is not known yet

    def advance(self, n: int) -> None:
        self.done += n
        elapsed = self.clock() - self.started
        if self.done <= 0 or self.done >= self.total or elapsed < self.settle:
            return
        if self.next_line is not None and elapsed < self.next_line:
            return
        rate = self.done / elapsed
        left = (self.total - self.done) / rate
        if self.next_line is None:
            self.next_line = elapsed + self.period
            if left > 60:
                log.info(
                    "%s: about %s left (%s %s/s)%s",
                    self.what,
                    duration_text(left),
                    f"{rate:,.0f}",
                    self.unit,
                    f"; {self.hint}" if self.hint else "",
                )
            return
        self.next_line = elapsed + self.period
        log.info(
            "%s: %.0f%% done, about %s left",
            self.what,
            100 * self.done / self.total,
            duration_text(left),
        )


def duration_text(seconds: float) -> str:
    """'45 s', '12 min', '3.5 h', '2.1 days': a duration for people."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
