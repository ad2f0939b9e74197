"""Publication figures: formats and resolution, titles, the PR curve's first point, many
classes, journal sizes; through the commands and through bioseqnn.plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from PIL import Image  # noqa: E402  (matplotlib's own dependency)

from bioseqnn import metrics, plots  # noqa: E402
from bioseqnn.ops.evaluate import Evaluation  # noqa: E402
from bioseqnn.tasks import TaskSpec  # noqa: E402

MAGIC = {
    "png": lambda b: b.startswith(b"\x89PNG\r\n\x1a\n"),
    "pdf": lambda b: b.startswith(b"%PDF-") and b"%%EOF" in b[-32:],
    "svg": lambda b: b"<svg" in b[:1000] and b.rstrip().endswith(b"</svg>"),
}


def multiclass_evaluation(k: int, n: int = 400, seed: int = 0) -> Evaluation:
    """A k-class evaluation with informative but imperfect scores, named as the command
    names its inputs."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 1.5
    out = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    task = TaskSpec("multiclass", ["family"], [f"class_{i}" for i in range(k)])
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y, out.argmax(axis=1)), 1)
    ev = Evaluation(
        task,
        "test.fasta + test.csv",
        "runs/2024/fam_model.bsnn",
        [f"r{i}" for i in range(n)],
        y,
        out,
        metrics.classification_metrics(y, out),
        confusion=confusion,
        sources=["data/sets/test.fasta.gz", "data/sets/test.csv"],
    )
    return ev


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list:
    """The figures the plotting functions save (written all the same)."""
    figures: list = []
    save = plots.common.save_figure

    def keep(fig, path, dpi=plots.DPI, fmt=None):
        figures.append(fig)
        return save(fig, path, dpi, fmt)

    monkeypatch.setattr(plots.common, "save_figure", keep)
    return figures


def texts(fig) -> list:
    return [
        t
        for t in fig.findobj(lambda o: hasattr(o, "get_fontsize") and hasattr(o, "get_text"))
        if t.get_text().strip()
    ]


@pytest.mark.parametrize("fmt", ["png", "pdf", "svg"])
@pytest.mark.slow
def test_evaluate_writes_the_format_asked_for(
    cli, hemolytic_model, examples, tmp_path, fmt
) -> None:
    folder = tmp_path / "figs"
    result = cli(
        "evaluate",
        hemolytic_model,
        examples / "hemolytic.fasta",
        examples / "hemolytic.csv",
        "-o",
        tmp_path / "m.json",
        "--plots",
        folder,
        "--format",
        fmt,
        "--dpi",
        "120",
    )
    assert result.code == 0, result.err
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"confusion.{fmt}", f"pr.{fmt}", f"roc.{fmt}"]
    for name in names:
        assert MAGIC[fmt]((folder / name).read_bytes()), name
        assert f"wrote {folder / name}" in result.err
    if fmt == "png":  # a single-column figure, 3.5 in at 120 dpi, and the PNG says so
        with Image.open(folder / "roc.png") as img:
            assert img.size[0] == round(plots.COLUMN * 120)
            assert img.info["dpi"] == pytest.approx((120, 120), abs=0.5)


def test_png_default_resolution_is_300_dpi(tmp_path) -> None:
    ev = multiclass_evaluation(3)
    path = plots.roc_plot(ev, tmp_path / "roc.png")
    with Image.open(path) as img:
        assert img.info["dpi"] == pytest.approx((300, 300), abs=0.5)
        assert img.size[0] == round(plots.COLUMN * 300)
    assert plots.DPI == 300
    small = plots.roc_plot(ev, tmp_path / "roc72.png", dpi=72)
    with Image.open(small) as img:
        assert img.size[0] == round(plots.COLUMN * 72)


def test_figure_options_are_checked(cli, hemolytic_model, examples, tmp_path) -> None:
    ev = multiclass_evaluation(3)
    with pytest.raises(plots.UsageError, match="choose png, pdf or svg"):
        plots.evaluation_plots(ev, tmp_path, fmt="jpg")
    with pytest.raises(plots.UsageError, match="out of range"):
        plots.evaluation_plots(ev, tmp_path, dpi=10)
    assert list(tmp_path.iterdir()) == []
    result = cli(
        "evaluate",
        hemolytic_model,
        examples / "hemolytic.fasta",
        examples / "hemolytic.csv",
        "--plots",
        tmp_path / "p",
        "--format",
        "jpg",
    )
    assert result.code == 2 and "--format" in result.err
    result = cli(
        "evaluate",
        hemolytic_model,
        examples / "hemolytic.fasta",
        examples / "hemolytic.csv",
        "--plots",
        tmp_path / "p",
        "--dpi",
        "5000",
    )
    assert result.code == 2 and "--dpi" in result.err


def test_titles_name_the_data_set_and_the_model_not_paths(drawn, tmp_path) -> None:
    assert plots.data_name("data/sets/test.fasta.gz") == "test"
    assert plots.data_name("/abs/m.v2.bsnn") == "m.v2"
    assert plots.data_name("-") == "stdin"
    ev = multiclass_evaluation(3)
    plots.evaluation_plots(ev, tmp_path)
    assert len(drawn) == 3
    for fig in drawn:
        title = fig.get_suptitle()
        assert title.splitlines()[0] == "test \u2014 fam_model"
        assert "/" not in title and ".fasta" not in title
    plots.roc_plot(ev, tmp_path / "own.png", title="Figure 2b")
    assert drawn[-1].get_suptitle().splitlines()[0] == "Figure 2b"


@pytest.mark.slow
def test_evaluate_title_option_and_default(cli, hemolytic_model, examples, tmp_path, drawn) -> None:
    result = cli(
        "evaluate",
        hemolytic_model,
        examples / "hemolytic.fasta",
        examples / "hemolytic.csv",
        "-o",
        tmp_path / "m.json",
        "--plots",
        tmp_path,
    )
    assert result.code == 0, result.err
    model = Path(hemolytic_model).stem
    assert drawn[0].get_suptitle().splitlines()[0] == f"hemolytic \u2014 {model}"
    result = cli(
        "evaluate",
        hemolytic_model,
        examples / "hemolytic.fasta",
        examples / "hemolytic.csv",
        "-o",
        tmp_path / "m.json",
        "--plots",
        tmp_path,
        "--title",
        "Hemolysis, held out",
    )
    assert result.code == 0, result.err
    assert drawn[-1].get_suptitle().splitlines()[0] == "Hemolysis, held out"


@pytest.mark.parametrize(
    ("truth", "score", "first"),
    [
        ([0, 1, 1, 0, 1], [0.9, 0.8, 0.7, 0.2, 0.1], 0.0),  # top-ranked record is a negative
        ([1, 0, 1, 0, 0], [0.9, 0.8, 0.7, 0.2, 0.1], 1.0),  # a positive
        ([1, 0, 1, 0, 0], [0.9, 0.9, 0.7, 0.2, 0.1], 0.5),  # a tie at the top: its precision
    ],
)
def test_pr_curve_starts_at_the_top_ranked_precision(truth, score, first) -> None:
    truth, score = np.array(truth), np.array(score)
    recall, precision = plots.pr_points(truth, score)
    assert (recall[0], precision[0]) == (0.0, first)
    assert (recall[1:] > 0).all()  # no second point at recall 0: no drop at the axis
    assert np.all(np.diff(recall) >= 0) and recall[-1] == 1.0
    # the points are the metric's own thresholds
    p_ref, r_ref, _ = metrics.pr_curve(truth, score)
    assert set(zip(recall[1:], precision[1:], strict=True)) <= set(zip(r_ref, p_ref, strict=True))


def test_the_drawn_pr_curve_has_no_drop_at_recall_zero(drawn, tmp_path) -> None:
    ev = multiclass_evaluation(3)
    plots.pr_plot(ev, tmp_path / "pr.png")
    (ax,) = drawn[0].axes
    curves = [line for line in ax.lines if len(line.get_xdata()) > 2]
    assert len(curves) == 3
    for i, line in enumerate(curves):
        x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        top = int(np.argmax(ev.out[:, i]))
        assert x[0] == 0.0 and y[0] == float(ev.y[top] == i)
        assert np.count_nonzero(x == 0.0) <= 2  # the start and its step, nothing else


@pytest.mark.slow
def test_many_classes_get_averages_and_small_multiples(drawn, tmp_path) -> None:
    ev = multiclass_evaluation(13)
    for draw in (plots.roc_plot, plots.pr_plot):
        draw(ev, tmp_path / f"{draw.__name__}.png")
        fig = drawn[-1]
        visible = [a for a in fig.get_axes() if a.axison]
        assert len(visible) == 1 + 13  # the averages, then one panel per class
        legend = [t.get_text() for t in visible[0].get_legend().get_texts()]
        assert any(t.startswith("micro average") for t in legend)
        assert any(t.startswith("macro average") for t in legend)
        assert len(legend) <= 4  # a legend that fits, not 13 entries
        assert [a.get_title().splitlines()[0] for a in visible[1:]] == ev.task.classes
        assert fig.get_size_inches()[0] == pytest.approx(plots.DOUBLE_COLUMN)
    # the macro AUROC is the mean of the per-class AUROCs, as evaluate reports it
    roc_title = drawn[0].get_suptitle()
    assert f"macro {ev.metrics['auroc']:.3f}" in roc_title
    # six classes or fewer: one single-column panel with a legend entry per class
    plots.roc_plot(multiclass_evaluation(6), tmp_path / "six.png")
    fig = drawn[-1]
    assert len(fig.get_axes()) == 1
    assert fig.get_size_inches()[0] == pytest.approx(plots.COLUMN)
    assert len(fig.axes[0].get_legend().get_texts()) == 7  # chance and six classes


@pytest.mark.slow
def test_hundreds_of_classes_get_averages_and_a_sparse_matrix(drawn, tmp_path) -> None:
    """200 classes: 200 panels and 40,000 cell counts were unreadable (and took 74 s and
    2.8 GB at 1200 dpi): above MAX_PANELS the ROC and PR figures show the averages alone,
    and above MAX_CELL_COUNTS the confusion matrix has no counts and a name every few
    classes. Up to the limits nothing changes."""
    many = multiclass_evaluation(200, n=1000)
    for draw in (plots.roc_plot, plots.pr_plot):
        draw(many, tmp_path / f"{draw.__name__}.png")
        visible = [a for a in drawn[-1].get_axes() if a.axison]
        assert len(visible) == 1
        assert visible[0].get_title() == "Averages over 200 classes (a panel each up to 36)"
    plots.roc_plot(multiclass_evaluation(plots.MAX_PANELS), tmp_path / "limit.png")
    assert len([a for a in drawn[-1].get_axes() if a.axison]) == 1 + plots.MAX_PANELS
    plots.confusion_plot(many, tmp_path / "confusion.png")
    ax = drawn[-1].axes[0]
    assert [t for t in ax.texts if t.get_text().isdigit()] == []
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert len(names) == 50 and names[:2] == ["class_0", "class_4"]
    plots.confusion_plot(multiclass_evaluation(plots.MAX_CELL_COUNTS), tmp_path / "c30.png")
    ax = drawn[-1].axes[0]
    assert len([t for t in ax.texts if t.get_text().isdigit()]) == plots.MAX_CELL_COUNTS**2
    assert len(ax.get_yticklabels()) == plots.MAX_CELL_COUNTS


@pytest.mark.slow
def test_sizes_fit_a_journal_column_and_leave_matplotlib_alone(drawn, tmp_path) -> None:
    import matplotlib

    before = dict(matplotlib.rcParams)
    plots.evaluation_plots(multiclass_evaluation(13), tmp_path, fmt="svg")
    plots.evaluation_plots(multiclass_evaluation(2), tmp_path / "two", fmt="pdf")
    assert dict(matplotlib.rcParams) == before  # the style lives in an rc context
    assert len(drawn) == 6
    for fig in drawn:
        width = fig.get_size_inches()[0]  # one column, two, or between (a confusion matrix)
        assert plots.COLUMN - 1e-9 <= width <= plots.DOUBLE_COLUMN + 1e-9, width
        sizes = [t.get_fontsize() for t in texts(fig)]
        assert sizes and min(sizes) >= 5 and max(sizes) <= 9, sizes


def test_explain_and_train_figures_take_the_options(
    cli, hemolytic_model, examples, tmp_path, monkeypatch
) -> None:
    result = cli(
        "explain",
        hemolytic_model,
        examples / "hemolytic.fasta",
        "-o",
        tmp_path / "a.tsv",
        "--plot",
        tmp_path / "logos",
        "--max-plots",
        "2",
        "--format",
        "svg",
    )
    assert result.code == 0, result.err
    names = sorted(p.name for p in (tmp_path / "logos").iterdir())
    assert names == ["peptide_pm_1.svg", "peptide_pm_2.svg"]
    svg = (tmp_path / "logos" / names[0]).read_bytes()
    assert MAGIC["svg"](svg)
    assert Path(hemolytic_model).stem.encode() in svg  # the model named in the title

    # plot-history: --format changes the default name; a contradicting name is refused
    log = tmp_path / "h.log.tsv"
    log.write_text(
        "epoch\ttrain_loss\tval_loss\tval_accuracy\n1\t0.7\t0.69\t0.5\n2\t0.6\t0.65\t0.6\n"
    )
    monkeypatch.chdir(tmp_path)
    result = cli("plot-history", log, "--format", "pdf", "--dpi", "100")
    assert result.code == 0, result.err
    assert MAGIC["pdf"]((tmp_path / "learning_curves.pdf").read_bytes())
    result = cli("plot-history", log, "-o", tmp_path / "x.png", "--format", "svg")
    assert result.code == 2 and "names a png figure, not svg" in result.err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.slow
def test_the_subprocess_writes_a_pdf(hemolytic_model, examples, tmp_path) -> None:
    from conftest import run_bioseqnn

    proc = run_bioseqnn(
        "evaluate",
        hemolytic_model,
        examples / "hemolytic.fasta",
        examples / "hemolytic.csv",
        "-o",
        tmp_path / "m.json",
        "--plots",
        tmp_path / "figs",
        "--plot-format",
        "pdf",
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert MAGIC["pdf"]((tmp_path / "figs" / "roc.pdf").read_bytes())
