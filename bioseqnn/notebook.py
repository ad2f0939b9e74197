"""The Python API for notebooks and scripts: settings as keyword arguments, sequences and
labels from memory or files, results as values (DataFrames where pandas is installed).

``bioseqnn.train`` and ``bioseqnn.predict`` are the functions of this module. They hand
the work to the command-level functions of :mod:`bioseqnn.api` (what the command line
calls: files in, files out), so a run here and the same run on the command line train the
same model and predict the same rows.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import difflib
import logging
import math
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .arguments import checked
from .config import ModelConfig, RunConfig, TrainConfig, apply_overrides
from .errors import BioseqnnError, UsageError, shorten

log = logging.getLogger("bioseqnn")

_SECTIONS: dict[str, type] = {"model": ModelConfig, "training": TrainConfig}

_FILE_SETTINGS = ("val_fasta", "val_labels", "position_mask", "init_from")
"""The settings of :func:`train` that name files it reads."""

RUN_SETTINGS = (
    "id_column",
    "targets",
    "sequence_column",
    "task",
    "alphabet",
    "on_invalid",
    "ignore_unmatched",
    "val_fasta",
    "val_labels",
    "log_path",
    "resume",
    "position_mask",
    "series_columns",
    "genome",
)
"""Keyword settings of :func:`train` that are not config keys (the command line's
arguments of the same names)."""


def setting_sections() -> dict[str, list[str]]:
    """Each config key (a keyword of :func:`train`) -> the config sections that hold it."""
    found: dict[str, list[str]] = {}
    for section, cls in _SECTIONS.items():
        for f in dataclasses.fields(cls):
            found.setdefault(f.name, []).append(section)
    return found


def settings_to_config(settings: Mapping[str, Any], config: Any = None) -> RunConfig:
    """Keyword settings (config keys by their leaf names: ``arch``, ``epochs``, ``lr``...)
    applied over ``config`` (default: the defaults); ``config`` itself is not changed. It
    is a :class:`~bioseqnn.config.RunConfig`, a YAML config file's path (as ``bioseqnn
    train --config`` reads) or a dict of its sections (``{"training": {"epochs": 5}}``).

    Raises
    ------
    TypeError
        For a name that is no setting (naming the close matches) or one that two config
        sections share.
    UsageError
        For a value of the wrong type.
    """
    sections = setting_sections()
    overrides: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    for key, value in settings.items():
        where = sections.get(key)
        if where is None:
            raise TypeError(unknown_setting(key, [*sections, *RUN_SETTINGS]))
        if len(where) > 1:
            raise TypeError(
                f"setting {key!r} is in sections {' and '.join(where)}: give it "
                "in config=RunConfig(...)"
            )
        if isinstance(value, tuple):
            value = list(value)
        overrides[where[0]][key] = value
    base = _run_config(config)
    cfg = RunConfig(
        model=dataclasses.replace(base.model), training=dataclasses.replace(base.training)
    )
    return apply_overrides(cfg, overrides)


def _run_config(config: Any) -> RunConfig:
    """``config=`` as :func:`settings_to_config` takes it, as a RunConfig of its own."""
    from .config import config_from_dict, load_config

    if config is None:
        return RunConfig()
    if isinstance(config, RunConfig):
        return dataclasses.replace(config)
    if isinstance(config, (str, os.PathLike)):
        return load_config(os.fspath(config))
    if isinstance(config, Mapping):
        return config_from_dict(dict(config))
    raise UsageError(
        "config: expected a RunConfig, a YAML config file's path or a dict of its sections; "
        f"got {type(config).__name__}"
    )


def unknown_setting(key: str, known: Sequence[str]) -> str:
    """The message for a keyword that is no setting: the close matches, if any."""
    close = difflib.get_close_matches(key, list(known), n=3, cutoff=0.6)
    hint = (
        f"; did you mean {' or '.join(repr(c) for c in close)}?"
        if close
        else "; see bioseqnn.notebook.setting_sections() for the settings"
    )
    return f"unknown setting {key!r}{hint}"


class History(list):  # type: ignore[type-arg]
    """The per-epoch metrics records (a list of dicts), with :meth:`to_pandas`."""

    def to_pandas(self) -> Any:
        """The records as a pandas DataFrame, one row per epoch (needs pandas)."""
        return _pandas().DataFrame(list(self))


@dataclass
class Trained:
    """What :func:`train` returns.

    Attributes
    ----------
    model : Bundle
        The trained model with its manifest, as :func:`bioseqnn.load_bundle` gives it;
        :func:`predict` takes it (or this whole result); ``evaluate``, ``explain`` and
        ``export`` take the model file (``path``, or one written by :meth:`save`).
    history : History
        One dict per epoch (and per ensemble member or fold): losses and validation
        metrics; ``history.to_pandas()`` is a DataFrame.
    best : dict
        The validation metrics of the best epoch (of the ensemble or the pooled folds).
    path : Path or None
        The model file, when ``output`` was given or :meth:`save` has written one.
    log_path : Path or None
        The per-epoch metrics log, when ``output`` was given.
    outcome : TrainOutcome
        Everything the command-level :func:`bioseqnn.api.train` returned.
    """

    model: Any
    history: History
    best: dict[str, Any]
    path: Path | None
    log_path: Path | None
    outcome: Any = field(repr=False)
    inputs: dict[str, Any] = field(default_factory=dict, repr=False)
    """The files training read (sequences, labels, ...), which :meth:`save` may not replace."""

    @property
    def manifest(self) -> dict[str, Any]:
        """The model file's manifest: settings, data, task, metrics."""
        return self.model.manifest  # type: ignore[no-any-return]

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model file (for a model trained without ``output``); ``path`` then
        names it."""
        from .bundle import save_bundle
        from .io.outputs import check_output_path

        check_output_path(path, self.inputs)
        save_bundle(path, self.model.model, self.model.manifest, self.model.train_digest)
        self.path = Path(path)
        return self.path


def train(
    sequences: Any,
    labels: Any = None,
    output: str | os.PathLike[str] | None = None,
    *,
    config: RunConfig | str | os.PathLike[str] | Mapping[str, Any] | None = None,
    progress: bool | None = None,
    tensorboard: str | os.PathLike[str] | None = None,
    mlflow: str | bool | None = None,
    **settings: Any,
) -> Trained:
    """Train a model on sequences and their labels.

    Parameters
    ----------
    sequences
        A FASTA/FASTQ or table file (path), a list of sequence strings (ids ``"0"``,
        ``"1"``, ... by position), a dict of id -> sequence, a pandas Series (index: ids)
        or a pandas DataFrame holding a sequence column (``sequence_column``, default
        ``"sequence"``; ids from the ``id_column`` column or the index) and, when
        ``labels`` is None, the label columns.
    labels
        A labels table file, a list or 1-D array (by position, as the sequences), a dict
        of id -> label, a pandas Series (index: ids) or DataFrame (index or ``id_column``:
        ids; the other columns: targets). None for a DataFrame of sequences and labels or
        a language model.
    output
        The model file to write; None keeps the model in memory only (``Trained.save``
        writes it later).
    config
        Settings to start from: a RunConfig (e.g. :func:`bioseqnn.load_config` of a YAML
        file), a YAML config file's path, or a dict of its sections; the keyword settings
        override it.
    progress
        A progress bar while training: None shows one in a terminal or a notebook (where
        ipywidgets is installed), True or False decide. The per-epoch lines go to the
        ``bioseqnn`` logger either way.
    tensorboard
        Folder for TensorBoard event files (needs ``bioseqnn[tracking]``).
    mlflow
        Log the run to MLflow (needs ``bioseqnn[tracking]``): True for the local store
        (``sqlite:///mlflow.db`` beside the model file, or in the working directory), or
        a tracking URI (``http://server:5000``, ``sqlite:///runs.db``, a folder).
    **settings
        Config keys by name: ``arch``, ``hidden_size``, ``dropout``, ``epochs``, ``lr``,
        ``batch_size``, ``seed``, ... (``bioseqnn config`` lists them all), and the
        command line's arguments ``task``, ``targets``, ``id_column``,
        ``sequence_column``, ``alphabet``, ``on_invalid``, ``ignore_unmatched``,
        ``val_fasta``, ``val_labels`` (files or in-memory, as ``sequences`` and
        ``labels``), ``log_path``, ``resume``, ``position_mask``, ``series_columns``,
        ``genome``.

    Returns
    -------
    Trained
        The model (a Bundle), the history and the best metrics.

    Raises
    ------
    TypeError
        For a keyword that is no setting (the message names the close matches).
    bioseqnn.UsageError, bioseqnn.DataError
        For settings or data that cannot train (the command line's messages).

    Examples
    --------
    >>> run = bioseqnn.train(seqs, labels, arch="cnn", epochs=5)  # doctest: +SKIP
    >>> run.history.to_pandas()  # doctest: +SKIP
    """
    from .io.outputs import made_folders_removed_on_failure

    with made_folders_removed_on_failure():  # a failed run leaves no empty folder
        return _train(sequences, labels, output, config, progress, tensorboard, mlflow, settings)


def _train(
    sequences: Any,
    labels: Any,
    output: str | os.PathLike[str] | None,
    config: Any,
    progress: bool | None,
    tensorboard: str | os.PathLike[str] | None,
    mlflow: str | bool | None,
    settings: dict[str, Any],
) -> Trained:
    """:func:`train`'s work."""
    from .bundle import load_bundle
    from .ops.train import train as run_train
    from .tracking import Tracking

    run_args = {k: settings.pop(k) for k in list(settings) if k in RUN_SETTINGS}
    given = {
        "SEQUENCES": sequences,
        "LABELS": labels,
        **{f"--{k.replace('_', '-')}": {**settings, **run_args}.get(k) for k in _FILE_SETTINGS},
    }
    inputs = {k: v for k, v in given.items() if _is_path(v)}
    cfg = settings_to_config(settings, config)
    tracking = Tracking.open(tensorboard, mlflow, output)  # a missing library: fail now
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bioseqnn-")))
        fasta, table, seq_column = _training_inputs(folder, "", sequences, labels, run_args)
        if seq_column is not None:
            run_args["sequence_column"] = seq_column
        if "val_fasta" in run_args or "val_labels" in run_args:
            vf, vl, _ = _training_inputs(
                folder, "val_", run_args.get("val_fasta"), run_args.get("val_labels"), run_args
            )
            run_args["val_fasta"], run_args["val_labels"] = vf, vl
        model_path = Path(output) if output is not None else folder / "model.bsnn"
        keep_log = output is not None or "log_path" in run_args
        if output is None and "log_path" not in run_args:
            run_args["log_path"] = folder / "model.log.tsv"
        stack.enter_context(_logging_shown())
        stack.enter_context(_folder_hidden(folder))
        reporter = _reporter(progress, run_args.get("task"))
        try:
            outcome = run_train(
                fasta,
                table,
                model_path,
                cfg,
                reporter=reporter,
                on_epoch=tracking.epoch,
                source_names=_source_names(folder, fasta, table),
                **run_args,
            )
        except BioseqnnError as exc:
            tracking.fail()
            raise _without_folder(exc, folder) from None
        except BaseException:
            tracking.fail()
            raise
        tracking.finish(outcome)
        bundle = load_bundle(model_path)
    history = History(outcome.result.history)
    return Trained(
        model=bundle,
        history=history,
        best=dict(outcome.result.best),
        path=model_path if output is not None else None,
        log_path=outcome.log_path if keep_log else None,
        outcome=outcome,
        inputs=inputs,
    )


@checked
def predict(
    model: Any,
    sequences: Any,
    output: str | os.PathLike[str] | None = None,
    *,
    batch_size: int = 256,
    max_tokens: int = 0,
    device: str | None = None,
    threads: int = 0,
    on_invalid: str = "error",
    rc_average: bool | None = None,
    id_column: str | None = None,
    genome: Any = None,
) -> Any:
    """Predict each sequence and return the rows.

    Parameters
    ----------
    model
        A model file, a :class:`~bioseqnn.bundle.Bundle` or what :func:`train` returned.
    sequences
        A FASTA/FASTQ file (or a series table for a numeric series model), a list of
        files (``pathlib.Path``: their rows one after the other), a list of sequence
        strings (ids ``"0"``, ``"1"``, ...), a dict of id -> sequence or a pandas Series
        (index: ids).
    output
        Also write the rows there (TSV; CSV for a ``.csv`` name); nothing is written
        without it.
    batch_size, max_tokens, device, threads, on_invalid, rc_average, id_column, genome
        As for ``bioseqnn predict`` (see :func:`bioseqnn.api.predict`).

    Returns
    -------
    pandas.DataFrame or list of dict
        One row per record (per residue for a per-position model), in input order: the
        id, then the predicted class and each class's probability (``prob_<class>``) or
        each target's value. A list of dicts (the same columns) where pandas is not
        installed.
    """
    from .ops.predict import predict as run_predict

    bundle = model.model if isinstance(model, Trained) else model
    with tempfile.TemporaryDirectory(prefix="bioseqnn-") as tmp:
        folder = Path(tmp)
        paths = _sequence_files(folder, "", sequences)
        if output is not None:  # no input of the prediction may be replaced by it
            from .bundle import model_file
            from .io.outputs import check_output_path
            from .ops.predict import named_inputs
            from .variants.intervals import as_genome

            inputs = named_inputs(model_file(model), paths, as_genome(genome))
            check_output_path(output, inputs)
        table = folder / "predictions.tsv"
        try:
            with _logging_shown(), _folder_hidden(folder):
                run_predict(
                    bundle,
                    paths,
                    table,
                    batch_size=batch_size,
                    max_tokens=max_tokens,
                    device=device,
                    threads=threads,
                    on_invalid=on_invalid,
                    rc_average=rc_average,
                    id_column=id_column,
                    genome=genome,
                )
        except BioseqnnError as exc:
            raise _without_folder(exc, folder) from None
        rows = _read_rows(table)
        if output is not None:
            from .io.outputs import atomic_output, table_delimiter

            with atomic_output(output) as fh:
                writer = csv.writer(fh, delimiter=table_delimiter(output), lineterminator="\n")
                writer.writerows(rows)
    return _as_frame(rows)


def evaluate(model: Any, sequences: Any, labels: Any = None, **options: Any) -> Any:
    """Score a model on labelled sequences: :func:`bioseqnn.ops.evaluate.evaluate`, with
    the model and the data also as they are held in memory.

    ``model`` is a model file, a :class:`~bioseqnn.bundle.Bundle` or what :func:`train`
    returned; ``sequences`` and ``labels`` take what :func:`train` takes (files, lists,
    dicts, pandas Series or DataFrames); ``options`` are those of
    :func:`bioseqnn.ops.evaluate.evaluate` (``id_column``, ``batch_size``, ``threads``,
    ...). Returns the :class:`~bioseqnn.ops.evaluate.Evaluation`."""
    from .ops.evaluate import evaluate as run_evaluate

    with tempfile.TemporaryDirectory(prefix="bioseqnn-") as tmp:
        folder = Path(tmp)
        run_args = {"id_column": options.get("id_column") or "id"}
        if options.get("sequence_column"):
            run_args["sequence_column"] = options["sequence_column"]
        seq_file, label_file, column = _training_inputs(folder, "", sequences, labels, run_args)
        if column is not None:
            options = {**options, "sequence_column": column}
        try:
            with _logging_shown(), _folder_hidden(folder):
                return run_evaluate(model, seq_file, label_file, **options)
        except BioseqnnError as exc:
            raise _without_folder(exc, folder) from None


def explain(model: Any, sequences: Any, **options: Any) -> Any:
    """Per-position attributions: :func:`bioseqnn.ops.explain.explain`, with the model
    and the sequences also as they are held in memory (as :func:`predict` takes them:
    a file, a list of sequence strings, a dict of id -> sequence or a pandas Series).
    ``options`` are those of :func:`bioseqnn.ops.explain.explain` (``method``,
    ``target``, ...). Returns the :class:`~bioseqnn.ops.explain.Explanation`."""
    from .ops.explain import explain as run_explain

    with tempfile.TemporaryDirectory(prefix="bioseqnn-") as tmp:
        folder = Path(tmp)
        if _is_path(sequences):
            path = sequences
        else:
            path = _write_fasta(folder / "sequences.fasta", _ids_and_sequences(sequences))
        try:
            with _logging_shown(), _folder_hidden(folder):
                return run_explain(model, path, **options)
        except BioseqnnError as exc:
            raise _without_folder(exc, folder) from None


# ------------------------------------------------------------------- inputs from memory


def _source_names(folder: Path, *inputs: Any) -> list[str]:
    """The inputs as the model file names them: a file by its path, data given in memory
    as what it was (``sequences (in memory)``)."""
    names = []
    for path in inputs:
        if path is None:
            continue
        if isinstance(path, Path) and path.parent == folder:
            names.append(f"{path.stem} (in memory)")
        else:
            names.append(str(path))
    return names


class _FolderHidden(logging.Filter):
    """Log lines of a run on data given in memory name its temporary files as the
    arguments that held them ('detected from sequences'), as errors do (_without_folder)."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.prefix = f"{folder}{os.sep}"

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if self.prefix in text:
            record.msg, record.args = _memory_names(text, self.prefix), ()
        return True


@contextlib.contextmanager
def _folder_hidden(folder: Path) -> Iterator[None]:
    logger = logging.getLogger("bioseqnn")
    hidden = _FolderHidden(folder)
    logger.addFilter(hidden)
    try:
        yield
    finally:
        logger.removeFilter(hidden)


def _without_folder(exc: BioseqnnError, folder: Path) -> BioseqnnError:
    """The error with the temporary files of data given in memory named as the argument
    that held them, without their lines ('sequences: record '3' has no sequence', not
    'sequences.fasta: line 7: ...'): the records are named by their ids (a list's
    positions), and the files' lines mean nothing to the caller."""
    prefix = f"{folder}{os.sep}"
    return type(exc)(_memory_names(str(exc), prefix)) if prefix in str(exc) else exc


def _memory_names(text: str, prefix: str) -> str:
    """``text`` with each temporary file under ``prefix`` named as its argument."""
    text = text.replace(prefix, "")
    for pattern, name in _MEMORY_FILES:
        text = pattern.sub(name, text)
    return text


_MEMORY_FILES = [
    (re.compile(r"\b(\w*sequences)\.fasta(?:: line \d+(?:, column \d+)?)?"), r"\1"),
    (re.compile(r"\b(\w*labels)\.csv(?:(?::|,) line \d+(?:, column \d+)?)?"), r"\1"),
    (re.compile(r"\b(\w*table)\.csv(?:(?::|,) line \d+(?:, column \d+)?)?"), r"\1"),
]
"""The temporary files of data given in memory (see _training_inputs), with the line a
message gives, and the argument's name that replaces them."""


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


def _is_pandas(value: Any, kind: str) -> bool:
    """Whether ``value`` is a pandas ``kind`` (Series, DataFrame), without importing it."""
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(value, getattr(pd, kind))


def _ids_and_sequences(sequences: Any) -> list[tuple[str, str]]:
    """(id, sequence) pairs of sequences held in memory."""
    if isinstance(sequences, Mapping) or _is_pandas(sequences, "Series"):
        pairs = [(str(k), v) for k, v in sequences.items()]
    elif isinstance(sequences, Sequence) and not isinstance(sequences, (str, bytes)):
        pairs = [(str(i), v) for i, v in enumerate(sequences)]
    else:
        raise UsageError(
            f"sequences: expected a file, a list of sequences, a dict of id -> "
            f"sequence or a pandas Series; got {type(sequences).__name__}"
        )
    if not pairs:
        raise UsageError("sequences: no sequences given")
    for rid, seq in pairs:
        if not isinstance(seq, str):
            raise UsageError(
                f"sequences: the sequence of {rid!r} is a {type(seq).__name__}, not a string"
            )
        if "\n" in seq or "\r" in seq or seq.startswith(">"):
            raise UsageError(
                f"sequences: the sequence of {rid!r} holds a line break or starts with '>' "
                "(FASTA text?); give each sequence as its residues alone, or the FASTA "
                "file's path"
            )
        if not rid or any(c.isspace() for c in rid) or rid.startswith(">"):
            raise UsageError(
                f"sequences: id {rid!r} cannot name a record (ids need text "
                "without spaces that does not start with '>')"
            )
    return pairs


def _write_fasta(path: Path, pairs: list[tuple[str, str]]) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for rid, seq in pairs:
            fh.write(f">{rid}\n{seq}\n")
    return path


def _sequence_files(folder: Path, name: str, sequences: Any) -> list[Any]:
    """The files that hold ``sequences``: as given, or written to ``folder``."""
    if _is_path(sequences):
        return [sequences]
    if (
        isinstance(sequences, (list, tuple))
        and sequences
        and all(isinstance(s, os.PathLike) for s in sequences)
    ):
        return list(sequences)
    return [_write_fasta(folder / f"{name}sequences.fasta", _ids_and_sequences(sequences))]


def _training_inputs(
    folder: Path, name: str, sequences: Any, labels: Any, run_args: dict[str, Any]
) -> tuple[Any, Any, str | None]:
    """(sequences file, labels file, sequence column) for :func:`bioseqnn.api.train`."""
    id_column = run_args.get("id_column", "id")
    if sequences is None or _is_path(sequences):
        seq_file = sequences
        pairs = None
    elif _is_pandas(sequences, "DataFrame"):
        if labels is not None:
            raise UsageError(
                "a DataFrame of sequences holds the labels too: give labels=None "
                "(choose the label columns with targets=[...])"
            )
        column = run_args.get("sequence_column") or "sequence"
        if column not in sequences.columns:
            raise UsageError(
                f"the DataFrame has no column {column!r} of sequences (name it "
                "with sequence_column=...)"
            )
        return None, _write_frame(folder / f"{name}table.csv", sequences, id_column), column
    else:
        pairs = _ids_and_sequences(sequences)
        seq_file = _write_fasta(folder / f"{name}sequences.fasta", pairs)
    if labels is None or _is_path(labels):
        return seq_file, labels, None
    if _is_pandas(labels, "DataFrame"):
        return seq_file, _write_frame(folder / f"{name}labels.csv", labels, id_column), None
    if _is_pandas(labels, "Series"):
        column = str(labels.name) if labels.name is not None else "label"
        rows = [(str(k), v) for k, v in labels.items()]
    elif isinstance(labels, Mapping):
        column, rows = "label", [(str(k), v) for k, v in labels.items()]
    else:
        values = list(labels.tolist() if hasattr(labels, "tolist") else labels)
        if pairs is None:
            raise UsageError(
                "labels by position go with sequences in memory (a list, dict "
                "or Series); with a file of sequences give a dict of id -> "
                "label or a table"
            )
        if len(values) != len(pairs):
            raise UsageError(
                f"{len(values)} labels for {len(pairs)} sequences: give one "
                "label per sequence, in the same order"
            )
        column, rows = "label", [(rid, v) for (rid, _), v in zip(pairs, values, strict=True)]
    path = folder / f"{name}labels.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow([id_column, column])
        cells = _cells([v for _, v in rows])
        writer.writerows([rid, cell] for (rid, _), cell in zip(rows, cells, strict=True))
    return seq_file, path, None


def _cells(values: list[Any]) -> list[str]:
    """Labels as the labels table holds them (:func:`_cell`), numbers that are equal
    written alike: a list that mixes ints with floats (1 and 1.0) or numbers with bools
    (1 and True) gave one class per spelling ('1', '1.0', 'True'), so [1, 0, 1.0, 0.0]
    trained four classes. There an integral float is written as an int and a bool as
    1 or 0; a list of one kind is written as before."""
    values = [
        v.item() if type(v).__module__ == "numpy" and hasattr(v, "item") else v for v in values
    ]
    kinds = {_number_kind(v) for v in values} - {None}
    if len(kinds) > 1:
        values = [_plain_number(v) if _number_kind(v) else v for v in values]
    return [_cell(v) for v in values]


def _number_kind(value: Any) -> str | None:
    """'bool', 'int' or 'float' for a number (a NaN is a missing label, not a number)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float) and not math.isnan(value):
        return "float"
    return None


def _plain_number(value: Any) -> Any:
    """An int for a bool or an integral float, else the value."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _cell(value: Any) -> str:
    """One label as the labels table holds it."""
    if value is None:
        return ""  # missing: the label join names the records without a label
    if isinstance(value, float):  # numpy's float64 too, whose repr names its type
        return "" if math.isnan(value) else repr(float(value))
    if isinstance(value, (list, tuple)):
        raise UsageError(
            f"a label is one value, not {shorten(repr(value))} (several targets: a "
            "DataFrame with one column each)"
        )
    if isinstance(value, (dict, set, frozenset, bytes, bytearray)):
        raise UsageError(
            f"a label is a class name or a number, not {type(value).__name__} "
            f"{shorten(repr(value))}"
        )
    return str(value)


def _write_frame(path: Path, frame: Any, id_column: str) -> Path:
    """A DataFrame as CSV, its index as the id column unless it has one."""
    if id_column not in frame.columns:
        frame = frame.rename_axis(id_column).reset_index()
    frame.to_csv(path, index=False)
    return path


def _read_rows(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh, delimiter="\t"))


TEXT_COLUMNS = ("id", "predicted", "residue")


def _typed(column: str, values: list[str]) -> list[Any]:
    """A prediction column's cells as numbers, except the text columns."""
    if column in TEXT_COLUMNS:
        return values
    try:
        return [int(v) for v in values] if column == "position" else [float(v) for v in values]
    except ValueError:
        return values


def _as_frame(rows: list[list[str]]) -> Any:
    """Prediction rows (header first) as a DataFrame, or a list of dicts without pandas."""
    header, body = rows[0], rows[1:]
    columns = {name: _typed(name, [r[i] for r in body]) for i, name in enumerate(header)}
    try:
        pd = _pandas()
    except UsageError:
        return (
            [
                dict(zip(header, values, strict=True))
                for values in zip(*columns.values(), strict=True)
            ]
            if body
            else []
        )
    return pd.DataFrame(columns, columns=header)


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise UsageError("DataFrames need pandas: pip install 'bioseqnn[notebook]'") from None
    return pandas


# ------------------------------------------------------------------- progress and logs


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler that writes to whatever ``sys.stderr`` is when a record comes: a
    progress bar's redirection (Rich's, which prints lines above the bar) included."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


@contextlib.contextmanager
def _logging_shown() -> Iterator[None]:
    """The ``bioseqnn`` logger's INFO lines on stderr while a call runs, unless logging
    is configured (a handler here or on the root logger) or the logger's level is set:
    ``logging.getLogger("bioseqnn").setLevel(logging.WARNING)`` silences it."""
    logger = logging.getLogger("bioseqnn")
    kept = list(logger.handlers)
    # a handler left by an earlier command-line run in this process may write to a
    # stream that is closed since (a test's captured stderr): not a configuration
    live = [h for h in kept if not getattr(getattr(h, "stream", None), "closed", False)]
    level = logger.level
    try:  # a Ctrl-C landing in here leaves the logger as it was
        logger.handlers[:] = live
        if not live and not logging.getLogger().handlers:
            handler = _StderrHandler()
            handler.setFormatter(logging.Formatter("bioseqnn: %(message)s"))
            logger.addHandler(handler)
            if level == logging.NOTSET:
                logger.setLevel(logging.INFO)
        yield
    finally:
        logger.handlers[:] = kept
        logger.setLevel(level)


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel."""
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    kernel = get() if get is not None else None
    return kernel is not None and type(kernel).__name__ == "ZMQInteractiveShell"


def _reporter(progress: bool | None, task: str | None) -> Any:
    from .progress import EpochReporter

    if progress is None:
        progress = sys.stderr.isatty() or (in_notebook() and _has_widgets())
    return EpochReporter(
        bar=bool(progress), headline="perplexity" if task == "language-model" else "accuracy"
    )


def _has_widgets() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True
