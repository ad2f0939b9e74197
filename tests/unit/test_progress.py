"""progress.WorkLog: a long job's size, time left and periodic lines, on a fake clock."""

from __future__ import annotations

import logging

import pytest

from bioseqnn.progress import WorkLog, duration_text, epoch_line


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "bioseqnn"]


def test_the_time_left_is_said_once_the_rate_is_known(caplog) -> None:
    caplog.set_level(logging.INFO, logger="bioseqnn")
    clock = Clock()
    work = WorkLog("ism", 1_000_000, "positions", "use --region", clock=clock)
    clock.now += 5
    work.advance(1_000)  # before settle (10 s): nothing yet
    assert _lines(caplog) == []
    clock.now += 5  # 10 s, 2,000 done: 200 positions/s, 998,000 left
    work.advance(1_000)
    assert _lines(caplog) == ["ism: about 83 min left (200 positions/s); use --region"]
    clock.now += 500
    work.advance(100_000)  # within the period (600 s): no new line
    assert len(_lines(caplog)) == 1
    clock.now += 100  # 610 s, 202,000 done (331/s): 798,000 left
    work.advance(100_000)
    assert _lines(caplog)[1] == "ism: 20% done, about 40 min left"


def test_a_short_job_says_nothing_but_its_size(caplog) -> None:
    """Under a minute left when the rate is known: no estimate, and none later."""
    caplog.set_level(logging.INFO, logger="bioseqnn")
    clock = Clock()
    work = WorkLog("ism-map", 10_000, "positions", clock=clock)
    for _ in range(4):  # 200 positions/s: 40 s left after the first 10 s
        clock.now += 10
        work.advance(2_000)
    assert _lines(caplog) == []


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(45, "45 s"), (89, "89 s"), (600, "10 min"), (5_400, "1.5 h"), (3 * 86_400, "3.0 days")],
)
def test_durations_read_as_people_say_them(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


def test_an_epoch_line_names_each_figure_once() -> None:
    record = {"epoch": 3, "train_loss": 0.5, "elapsed_s": 1.25}
    # no validation part: the monitor is the training loss, shown once
    assert epoch_line(record, 10, "accuracy", "train_loss") == (
        "epoch 3/10  train_loss 0.5000  1.2s"
    )
    record.update(val_loss=0.25, val_accuracy=0.75, val_majority=0.5, val_mcc=0.125)
    assert epoch_line({**record, "member": 2}, 10, "accuracy", "val_mcc") == (
        "member 2  epoch 3/10  train_loss 0.5000  val_loss 0.2500  val_accuracy 0.7500 "
        "(majority 0.5000)  val_mcc 0.1250  1.2s"
    )
