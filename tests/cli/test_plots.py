"""Figures: written by the real commands, opened, measured and checked for content."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib import image  # noqa: E402

from bioseqnn import plots  # noqa: E402


def check_png(path: Path, min_width: int, min_height: int) -> np.ndarray:
    """Open the PNG: big enough to read, small on disk for its size, and not blank."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = image.imread(str(path))
    height, width = img.shape[:2]
    assert width >= min_width and height >= min_height, (width, height)
    assert path.stat().st_size < min(600_000, 0.12 * width * height), path.stat().st_size
    rgb = img[..., :3]
    ink = float((rgb < 0.85).any(axis=-1).mean())
    assert 0.01 < ink < 0.7, ink  # drawn on, but not a solid block
    colours = len(np.unique((rgb * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    assert colours > 20
    return img


@pytest.mark.slow
def test_evaluate_writes_roc_pr_and_confusion(cli, hemolytic_model, examples, tmp_path) -> None:
    folder = tmp_path / "report" / "plots"  # created when missing
    result = cli(
        "evaluate",
        hemolytic_model,
        examples / "hemolytic.fasta",
        examples / "hemolytic.csv",
        "-o",
        tmp_path / "m.json",
        "--plots",
        folder,
    )
    assert result.code == 0, result.err
    assert sorted(p.name for p in folder.iterdir()) == ["confusion.png", "pr.png", "roc.png"]
    for name in ("roc.png", "pr.png", "confusion.png"):
        check_png(folder / name, 500, 450)
        assert f"wrote {folder / name}" in result.err


@pytest.mark.slow
def test_evaluate_regression_writes_the_scatter(cli, promoter_model, examples, tmp_path) -> None:
    result = cli(
        "evaluate",
        promoter_model,
        examples / "promoters.fasta",
        examples / "promoters.csv",
        "-o",
        tmp_path / "m.json",
        "--plots",
        tmp_path,
    )
    assert result.code == 0, result.err
    check_png(tmp_path / "scatter.png", 500, 450)
    assert not (tmp_path / "roc.png").exists()


@pytest.mark.slow
def test_train_plots_and_plot_history(cli, examples, tmp_path) -> None:
    fasta = tmp_path / "some.fasta"
    records = (examples / "hemolytic.fasta").read_text().split(">")[1:]
    fasta.write_text("".join(">" + r for r in records[::3]))  # both classes, 368 records
    model = tmp_path / "m.bsnn"
    result = cli(
        "train",
        fasta,
        examples / "hemolytic.csv",
        "-o",
        model,
        "--epochs",
        "3",
        "--hidden-size",
        "8",
        "--ignore-unmatched",
        "--plots",
        tmp_path / "curves",
        "--format",
        "svg",
    )
    assert result.code == 0, result.err
    assert [p.name for p in (tmp_path / "curves").iterdir()] == ["learning_curves.svg"]
    svg = (tmp_path / "curves" / "learning_curves.svg").read_bytes()
    assert b"<svg" in svg[:1000] and b"some \xe2\x80\x94 m" in svg  # 'some — m'

    log = tmp_path / "m.log.tsv"
    history = plots.read_history(log)
    assert [row["epoch"] for row in history] == [1.0, 2.0, 3.0]
    result = cli("plot-history", log, "-o", tmp_path / "again.png", "--metric", "auroc")
    assert result.code == 0, result.err
    img = check_png(tmp_path / "again.png", 900, 400)
    assert img.shape[1] > img.shape[0]  # two panels side by side

    result = cli("plot-history", log, "-o", tmp_path / "x.png", "--metric", "nonsense")
    assert result.code == 2 and "no metric 'nonsense'" in result.err
    result = cli("plot-history", examples / "hemolytic.csv", "-o", tmp_path / "x.png")
    assert result.code == 1 and "not a bioseqnn training log" in result.err
    assert not (tmp_path / "x.png").exists()


def test_train_plots_without_matplotlib_fails_before_training(
    cli, examples, tmp_path, monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    model = tmp_path / "m.bsnn"
    result = cli(
        "train",
        examples / "hemolytic.fasta",
        examples / "hemolytic.csv",
        "-o",
        model,
        "--plots",
        tmp_path / "curves",
    )
    assert result.code == 2
    assert "plots need matplotlib" in result.err and "bioseqnn[plots]" in result.err
    assert not model.exists() and "epoch" not in result.err


@pytest.mark.slow
def test_explain_plot_draws_one_logo_per_sequence(cli, hemolytic_model, examples, tmp_path) -> None:
    result = cli(
        "explain",
        hemolytic_model,
        examples / "hemolytic.fasta",
        "-o",
        tmp_path / "a.tsv",
        "--plot",
        tmp_path / "logos",
        "--max-plots",
        "3",
    )
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


@pytest.mark.parametrize(
    ("length", "rows", "per_row"),
    [
        (1, 1, 1),
        (50, 1, 50),
        (120, 1, 120),
        (121, 2, 61),
        (300, 3, 100),
        (601, 6, 101),
    ],
)
def test_logo_rows_are_filled_evenly(length, rows, per_row) -> None:
    assert plots.logo_layout(length) == (rows, per_row)
    # every row full but the last, which lacks fewer positions than there are rows
    assert 0 <= rows * per_row - length < rows
    assert plots.logo_layout(length, per_row=40)[1] <= 40


@pytest.mark.slow
def test_logos_fit_the_sequence_length(tmp_path) -> None:
    rng = np.random.default_rng(0)
    seq = "".join(rng.choice(list("ACGT"), 300))
    scores = rng.normal(size=300)
    long = check_png(
        plots.logo_plot(seq, scores, tmp_path / "long.png", "300 positions"), 2000, 700
    )
    short = check_png(plots.logo_plot(seq[:100], scores[:100], tmp_path / "short.png"), 1000, 200)
    tiny = check_png(plots.logo_plot(seq[:12], scores[:12], tmp_path / "tiny.png"), 500, 200)
    # 300 positions: three rows of 100 at the double-column width (7.2 in at 300 dpi);
    # 12 positions: a single-column figure (3.5 in), not a wide strip of empty axis
    assert long.shape[1] == short.shape[1] == round(plots.DOUBLE_COLUMN * plots.DPI)
    assert tiny.shape[1] == round(plots.COLUMN * plots.DPI)
    assert long.shape[0] > 2.5 * (short.shape[0] - 0.3 * plots.DPI)
    # the last row is as full as the first: ink in its right-most tenth
    third = long[-long.shape[0] // 3 :, int(0.9 * long.shape[1]) : -20, :3]
    assert (third < 0.6).any(axis=-1).mean() > 0.01
    with pytest.raises(plots.DataError):
        plots.logo_plot(seq, scores[:5], tmp_path / "bad.png")


def test_safe_file_names_from_record_ids() -> None:
    taken: set[str] = set()
    assert plots.safe_filename("sp|P12345|ABC_HUMAN", taken) == "sp_P12345_ABC_HUMAN.png"
    assert plots.safe_filename("sp/P12345/ABC:HUMAN", taken) == "sp_P12345_ABC_HUMAN_2.png"
    assert plots.safe_filename("../..", taken) == "record.png"


# --------------------------------------------------------------------------- plot-history


@pytest.fixture(scope="module")
def jsonl_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ``train --log NAME.jsonl`` run (a tiny CNN, 2 epochs): the folder it wrote."""
    from conftest import EXAMPLES

    from bioseqnn.cli import main

    folder = tmp_path_factory.mktemp("jsonl")
    records = (EXAMPLES / "hemolytic.fasta").read_text().split(">")[1:]
    (folder / "some.fasta").write_text("".join(">" + r for r in records[::3]))
    code = main(
        [
            "train",
            str(folder / "some.fasta"),
            str(EXAMPLES / "hemolytic.csv"),
            "-o",
            str(folder / "js.bsnn"),
            "--log",
            str(folder / "js.jsonl"),
            "--epochs",
            "2",
            "--arch",
            "cnn",
            "--channels",
            "8,8",
            "--ignore-unmatched",
            "--quiet",
        ]
    )
    assert code == 0
    return folder


def ensemble_logs(jsonl_run: Path, folder: Path) -> tuple[Path, Path]:
    """The same two-member ensemble records written by train's own log writer, as the TSV
    and as JSON lines (the records are those of the real run, tagged as train tags them)."""
    import json

    from bioseqnn.io.metrics_log import EpochLog

    lines = (jsonl_run / "js.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    paths = folder / "ens.log.tsv", folder / "ens.jsonl"
    for path in paths:
        writer = EpochLog(path)
        for member in (1, 2):
            for record in records:
                writer({"member": member, **record, "train_loss": record["train_loss"] * member})
        writer.close()
    return paths


def no_leftovers(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".part")]


@pytest.mark.slow
def test_plot_history_reads_the_jsonl_log_that_train_writes(cli, jsonl_run, tmp_path) -> None:
    log = jsonl_run / "js.jsonl"
    history = plots.read_history(log)
    assert [row["epoch"] for row in history] == [1.0, 2.0]
    assert {"train_loss", "val_loss", "val_accuracy"} <= set(history[0])
    assert all(isinstance(v, float) for row in history for v in row.values())
    result = cli("plot-history", log, "-o", tmp_path / "lc.png")
    assert result.code == 0, result.err
    assert f"wrote {tmp_path / 'lc.png'}" in result.err
    check_png(tmp_path / "lc.png", 900, 400)
    no_leftovers(tmp_path)


@pytest.mark.slow
def test_jsonl_ensemble_logs_read_like_the_tsv(cli, jsonl_run, tmp_path) -> None:
    tsv, jsonl = ensemble_logs(jsonl_run, tmp_path)
    from_tsv, from_jsonl = plots.read_history(tsv), plots.read_history(jsonl)
    assert [(r["member"], r["epoch"]) for r in from_jsonl] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert [list(r) for r in from_jsonl] == [list(r) for r in from_tsv]
    for a, b in zip(from_jsonl, from_tsv, strict=True):
        assert a == pytest.approx(b, rel=1e-5)  # the TSV keeps 6 significant digits
    for log in (tsv, jsonl):
        result = cli("plot-history", log, "-o", tmp_path / f"{log.name}.png")
        assert result.code == 0, result.err
        check_png(tmp_path / f"{log.name}.png", 900, 400)


def test_ensemble_curves_draw_each_member_apart(jsonl_run, tmp_path, monkeypatch) -> None:
    """One line per member and curve: no line runs from the last epoch of member 1 back to
    the first epoch of member 2."""
    history = plots.read_history(ensemble_logs(jsonl_run, tmp_path)[1])
    figures = []
    monkeypatch.setattr(
        plots.common, "save_figure", lambda fig, path, *_: figures.append(fig) or Path(path)
    )
    plots.learning_curves(history, tmp_path / "e.png", "ens")
    loss, metric = figures[0].axes[:2]
    curves = [line for line in loss.lines if len(line.get_xdata()) > 1]
    assert len(curves) == 4  # training and validation loss of each member
    for line in [*curves, *metric.lines]:
        assert list(line.get_xdata()) == sorted(line.get_xdata())
    train_1, train_2 = (c for c in curves if c.get_linestyle() == "-")
    assert list(train_2.get_ydata()) == pytest.approx(2 * np.array(train_1.get_ydata()))
    assert "ensemble of 2: best epochs" in figures[0].get_suptitle()


def test_cv_fold_curves_are_drawn_apart(tmp_path, monkeypatch) -> None:
    """A --cv log names its models in a 'fold' column: one curve per fold, not one line
    running back from fold 1's last epoch to fold 2's first."""
    history = [
        {"fold": f, "epoch": e, "train_loss": f / e, "val_loss": f / e + 0.1, "elapsed_s": 1.0}
        for f in (1, 2)
        for e in (1, 2, 3)
    ]
    figures = []
    monkeypatch.setattr(
        plots.common, "save_figure", lambda fig, path, *_: figures.append(fig) or Path(path)
    )
    plots.learning_curves(history, tmp_path / "cv.png", "cv")
    curves = [line for line in figures[0].axes[0].lines if len(line.get_xdata()) > 1]
    assert len(curves) == 4  # training and validation loss of each fold
    assert all(list(c.get_xdata()) == [1.0, 2.0, 3.0] for c in curves)
    assert {c.get_label() for c in curves} >= {"fold 1", "fold 2"}
    assert "2 folds: best epochs" in figures[0].get_suptitle()


@pytest.mark.parametrize(
    ("suffix", "check"),
    [
        (".png", lambda data: data.startswith(b"\x89PNG\r\n\x1a\n")),
        (".pdf", lambda data: data.startswith(b"%PDF") and b"%%EOF" in data[-32:]),
        (".PDF", lambda data: data.startswith(b"%PDF")),
        (".svg", lambda data: b"<svg" in data[:1000] and data.rstrip().endswith(b"</svg>")),
    ],
)
def test_plot_history_writes_the_format_its_name_asks_for(
    cli, jsonl_run, tmp_path, suffix, check
) -> None:
    out = tmp_path / f"lc{suffix}"
    out.write_bytes(b"old")  # replaced whole, through a temporary file
    result = cli("plot-history", jsonl_run / "js.jsonl", "-o", out)
    assert result.code == 0, result.err
    assert check(out.read_bytes()), out.read_bytes()[:16]
    no_leftovers(tmp_path)


@pytest.mark.parametrize("name", ["lc.jpg", "lc.png.gz", "lc.tsv"])
def test_plot_history_refuses_formats_it_cannot_write(cli, jsonl_run, tmp_path, name) -> None:
    result = cli("plot-history", jsonl_run / "js.jsonl", "-o", tmp_path / name)
    assert result.code == 2
    assert f"{tmp_path / name}: cannot write a {Path(name).suffix} figure" in result.err
    assert ".png, .pdf or .svg" in result.err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_plot_history_reads_stdin(jsonl_run, tmp_path) -> None:
    import gzip

    from conftest import run_bioseqnn

    data = (jsonl_run / "js.jsonl").read_bytes()
    for name, stdin in (("plain.png", data), ("gzip.svg", gzip.compress(data))):
        proc = run_bioseqnn("plot-history", "-", "-o", tmp_path / name, stdin=stdin)
        assert proc.returncode == 0, proc.stderr.decode()
        assert proc.stdout == b""
    check_png(tmp_path / "plain.png", 900, 400)
    assert b"<svg" in (tmp_path / "gzip.svg").read_bytes()[:1000]


def test_plot_history_of_a_model_file_says_what_to_give(cli, jsonl_run, tmp_path) -> None:
    result = cli("plot-history", jsonl_run / "js.bsnn", "-o", tmp_path / "x.png")
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err, result.err
    assert f"{jsonl_run / 'js.bsnn'}: cannot read the training log" in lines[0]
    assert "a bioseqnn model file, not a text log" in lines[0]
    assert "NAME.log.tsv that train writes beside the model" in lines[0]
    assert "codec" not in lines[0]
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"epoch": 1, "train_loss": 0.5}\n{"epoch": 2, "train_loss": 0.4\n',
            "log.jsonl: line 2: not a JSON object",
        ),
        (
            '{"epoch": 1, "train_loss": 0.5}\n{"epoch": 2, "train_loss": "low"}\n',
            "log.jsonl: line 2: a value is not a number",
        ),
        ('{"epoch": 1, "train_loss": 0.5}\n[1, 2]\n', "log.jsonl: line 2: not an epoch record"),
        ('{\n  "accuracy": 0.9\n}\n', "log.jsonl: not a bioseqnn training log"),
        ('{"accuracy": 0.9}\n', "log.jsonl: not a bioseqnn training log"),
        ("\n\n", "log.jsonl: not a bioseqnn training log"),
        ("epoch\ttrain_loss\n", "log.jsonl: the training log has no epochs"),
    ],
)
def test_damaged_jsonl_logs_name_the_line(tmp_path, text, message) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text(text)
    with pytest.raises(plots.DataError) as err:
        plots.read_history(log)
    assert str(err.value).startswith(str(tmp_path / message))


def test_jsonl_nulls_and_nans_read_as_nan(tmp_path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text(
        '{"epoch": 1, "train_loss": 0.5, "val_loss": NaN}\n\n'
        '{"epoch": 2, "train_loss": 0.4, "val_loss": null, "lr": 0.1}\n'
    )
    first, second = plots.read_history(log)
    assert list(first) == list(second) == ["epoch", "train_loss", "val_loss", "lr"]
    assert np.isnan(first["val_loss"]) and np.isnan(second["val_loss"])
    assert np.isnan(first["lr"]) and second["lr"] == 0.1


@pytest.mark.slow
def test_explain_draws_a_long_sequence_as_a_mutation_map(cli, hemolytic_model, tmp_path) -> None:
    """ISM on a 700-residue protein: beyond LOGO_MAX_POSITIONS the figure is the mutation
    map (four rows of 200 positions x 20 letters on two journal columns), not a logo; a
    short record keeps its logo. Both sizes follow from the layout at --dpi 100."""
    from bioseqnn.plots import LOGO_MAX_POSITIONS

    rng = np.random.default_rng(3)
    long_seq = "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 700))
    assert len(long_seq) > LOGO_MAX_POSITIONS
    (tmp_path / "two.fa").write_text(f">long\n{long_seq}\n>short\nGLFDIVKKVVGALGSL\n")
    r = cli(
        "explain",
        hemolytic_model,
        tmp_path / "two.fa",
        "--method",
        "ism",
        "-o",
        tmp_path / "a.tsv",
        "--plot",
        tmp_path / "figs",
        "--dpi",
        "100",
    )
    assert r.code == 0, r.err
    heatmap = image.imread(str(tmp_path / "figs" / "long.png"))
    rows = 4  # ceil(700 / 200)
    assert heatmap.shape[:2] == (round((rows * (0.09 * 20 + 0.45) + 0.6) * 100), 720)
    # the heatmap's colours: the diverging map's reds and blues, which logos never use
    rgb = heatmap[..., :3]
    assert ((rgb[..., 0] > 0.6) & (rgb[..., 2] < 0.45)).mean() > 0.001
    logo = image.imread(str(tmp_path / "figs" / "short.png"))
    assert logo.shape[1] == 350  # one journal column


@pytest.mark.parametrize("command", ["train", "ism-map"])
def test_a_figure_folder_that_is_a_file_is_named(cli, tmp_path, command) -> None:
    """ism-map --plot FILE said '--plots needs a folder', an option it does not have."""
    taken = tmp_path / "figs.png"
    taken.write_bytes(b"x")
    (tmp_path / "s.fa").write_text(">a\nACGTACGTAC\n>b\nTTGACCGTAA\n")
    argv = (
        ["train", tmp_path / "s.fa", tmp_path / "s.fa", "--plots", taken]
        if command == "train"
        else ["ism-map", tmp_path / "none.bsnn", tmp_path / "s.fa", "--plot", taken]
    )
    r = cli(*argv)
    assert r.code == 2
    assert r.err.splitlines()[-1] == (
        f"bioseqnn: error: {taken}: the figures go into a folder, and this is a file"
    )
    assert taken.read_bytes() == b"x"


@pytest.mark.slow
def test_text_with_dollar_signs_is_drawn_as_written(tmp_path, monkeypatch) -> None:
    """A class, file or run name is text, not a formula: matplotlib's mathtext failed on
    '$^$' with a parser error (every plot of such a model was 'unexpected ValueError')
    and drew '$\\alpha$' as a Greek letter."""
    history = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1 / e + 0.1, "elapsed_s": 1.0}
        for e in (1, 2, 3)
    ]
    figures = []
    save = plots.common.save_figure
    monkeypatch.setattr(
        plots.common,
        "save_figure",
        lambda fig, path, *a: figures.append(fig) or save(fig, path, *a),
    )
    for name in ("r$^$", "$\\alpha$"):
        out = tmp_path / "h.png"
        plots.learning_curves(history, out, name)
        check_png(out, 500, 300)
        assert name in figures[-1].get_suptitle()
        assert not figures[-1]._suptitle.get_parse_math()
