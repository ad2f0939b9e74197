"""PNG figures: written by the real commands, opened, measured and checked for content."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib import image  # noqa: E402

from bioseqnn import plots  # noqa: E402


def check_png(path: Path, min_width: int, min_height: int) -> np.ndarray:
    """Open the PNG: big enough to read, small on disk, and not blank."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = image.imread(str(path))
    height, width = img.shape[:2]
    assert width >= min_width and height >= min_height, (width, height)
    assert path.stat().st_size < 150_000
    rgb = img[..., :3]
    ink = float((rgb < 0.85).any(axis=-1).mean())
    assert 0.01 < ink < 0.7, ink  # drawn on, but not a solid block
    colours = len(np.unique((rgb * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    assert colours > 20
    return img


def test_evaluate_writes_roc_pr_and_confusion(cli, hemolytic_model, examples,
                                              tmp_path) -> None:
    folder = tmp_path / "report" / "plots"  # created when missing
    result = cli("evaluate", hemolytic_model, examples / "hemolytic.fasta",
                 examples / "hemolytic.csv", "-o", tmp_path / "m.json", "--plots", folder)
    assert result.code == 0, result.err
    assert sorted(p.name for p in folder.iterdir()) == ["confusion.png", "pr.png", "roc.png"]
    for name in ("roc.png", "pr.png", "confusion.png"):
        check_png(folder / name, 500, 450)
        assert f"wrote {folder / name}" in result.err


def test_evaluate_regression_writes_the_scatter(cli, promoter_model, examples,
                                                tmp_path) -> None:
    result = cli("evaluate", promoter_model, examples / "promoters.fasta",
                 examples / "promoters.csv", "-o", tmp_path / "m.json", "--plots", tmp_path)
    assert result.code == 0, result.err
    check_png(tmp_path / "scatter.png", 500, 450)
    assert not (tmp_path / "roc.png").exists()


def test_train_plots_and_plot_history(cli, examples, tmp_path) -> None:
    fasta = tmp_path / "some.fasta"
    records = (examples / "hemolytic.fasta").read_text().split(">")[1:]
    fasta.write_text("".join(">" + r for r in records[::3]))  # both classes, 368 records
    model = tmp_path / "m.bsnn"
    result = cli("train", fasta, examples / "hemolytic.csv", "-o", model, "--epochs", "3",
                 "--hidden-size", "8", "--ignore-unmatched", "--plots", tmp_path / "curves")
    assert result.code == 0, result.err
    img = check_png(tmp_path / "curves" / "learning_curves.png", 900, 400)
    assert img.shape[1] > img.shape[0]  # two panels side by side

    log = tmp_path / "m.log.tsv"
    history = plots.read_history(log)
    assert [row["epoch"] for row in history] == [1.0, 2.0, 3.0]
    result = cli("plot-history", log, "-o", tmp_path / "again.png", "--metric", "auroc")
    assert result.code == 0, result.err
    check_png(tmp_path / "again.png", 900, 400)

    result = cli("plot-history", log, "-o", tmp_path / "x.png", "--metric", "nonsense")
    assert result.code == 2 and "no metric 'nonsense'" in result.err
    result = cli("plot-history", examples / "hemolytic.csv", "-o", tmp_path / "x.png")
    assert result.code == 1 and "not a bioseqnn training log" in result.err
    assert not (tmp_path / "x.png").exists()


def test_train_plots_without_matplotlib_fails_before_training(cli, examples, tmp_path,
                                                              monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    model = tmp_path / "m.bsnn"
    result = cli("train", examples / "hemolytic.fasta", examples / "hemolytic.csv", "-o", model,
                 "--plots", tmp_path / "curves")
    assert result.code == 2
    assert "plots need matplotlib" in result.err and "bioseqnn[plots]" in result.err
    assert not model.exists() and "epoch" not in result.err


def test_explain_plot_draws_one_logo_per_sequence(cli, hemolytic_model, examples,
                                                  tmp_path) -> None:
    result = cli("explain", hemolytic_model, examples / "hemolytic.fasta", "-o",
                 tmp_path / "a.tsv", "--plot", tmp_path / "logos", "--max-plots", "3")
    assert result.code == 0, result.err
    names = sorted(p.name for p in (tmp_path / "logos").iterdir())
    assert names == ["peptide_pm_1.png", "peptide_pm_2.png", "peptide_pm_3.png"]
    for name in names:
        check_png(tmp_path / "logos" / name, 480, 150)
    assert "first 3 of 1104" in result.err


def test_logo_letters_are_as_tall_as_their_scores() -> None:
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    plots.draw_letter(ax, "G", 3, 0.0, 0.5)
    plots.draw_letter(ax, "W", 4, 0.0, -0.25)
    up, down = (p.get_path().get_extents() for p in ax.patches)
    assert (up.y0, up.y1) == pytest.approx((0.0, 0.5))
    assert (up.x0, up.x1) == pytest.approx((3 - 0.44, 3 + 0.44))
    assert (down.y0, down.y1) == pytest.approx((-0.25, 0.0))
    assert plots.letter_color("g") == plots.letter_color("G") != plots.letter_color("A")


def test_long_logos_wrap_into_readable_rows(tmp_path) -> None:
    rng = np.random.default_rng(0)
    seq = "".join(rng.choice(list("ACGT"), 300))
    scores = rng.normal(size=300)
    img = check_png(plots.logo_plot(seq, scores, tmp_path / "long.png", "300 positions"),
                    1000, 400)
    short = check_png(plots.logo_plot(seq[:100], scores[:100], tmp_path / "short.png"),
                      1000, 150)
    # three rows of 100 positions, each about 10 px per position at 100% zoom
    assert img.shape[1] == short.shape[1]
    assert img.shape[0] > 2.5 * (short.shape[0] - 70)
    with pytest.raises(plots.DataError):
        plots.logo_plot(seq, scores[:5], tmp_path / "bad.png")


def test_safe_file_names_from_record_ids() -> None:
    taken: set[str] = set()
    assert plots.safe_filename("sp|P12345|ABC_HUMAN", taken) == "sp_P12345_ABC_HUMAN.png"
    assert plots.safe_filename("sp/P12345/ABC:HUMAN", taken) == "sp_P12345_ABC_HUMAN_2.png"
    assert plots.safe_filename("../..", taken) == "record.png"
