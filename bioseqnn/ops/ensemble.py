"""The ensemble command: model files that agree on alphabet and task combined into one
ensemble model file.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..arguments import checked
from ..bundle import Bundle, load_bundle, save_bundle
from ..errors import UsageError
from ..io.files import STDIO, display_name
from ..io.outputs import (
    check_not_an_input,
    check_output_path,
)
from ..modelfile import MAX_MEMBERS
from ..models.base import (
    Ensemble,
    SequenceModel,
    count_parameters,
)
from ..tasks import TaskSpec

log = logging.getLogger("bioseqnn")


def _length_policy(limit: int | None) -> str:
    """The manifest's words for what happens to a sequence longer than the model takes."""
    if limit is None:
        return "none: any length is read whole"
    return f"error: sequences longer than {limit} are rejected"


@checked
def combine(
    models: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str]
) -> dict[str, Any]:
    """Write the model files ``models`` (single models or ensembles) as one ensemble.

    They must share alphabet and task (classes, targets and target scaling); members
    trained separately (other seeds, other machines, parallel pipeline jobs) or of other
    architectures (a CNN with an LSTM) are combined this way. Settings that are not the
    network's (training settings such as the strand-averaging default, the seed) are the
    first file's. Returns the new manifest.
    """
    _check_files(models, output)
    bundles = [load_bundle(m) for m in models]
    members, records = _gather_members(models, bundles)
    if len(members) > MAX_MEMBERS:
        raise UsageError(
            f"an ensemble holds at most {MAX_MEMBERS} members, these files hold {len(members)}"
        )
    first = bundles[0].manifest
    manifest = _ensemble_manifest(first, bundles, members, records)
    model = Ensemble(members, TaskSpec.from_dict(first["task"]).kind)
    manifest["max_length_policy"] = _length_policy(model.max_length)
    written = save_bundle(output, model, manifest, _training_digests(bundles))
    kinds = len({json.dumps(c, sort_keys=True) for c in written.get("member_models", [])})
    log.info(
        "wrote %s: an ensemble of %d members from %d model files%s",
        output,
        len(members),
        len(models),
        f", of {kinds} network configurations" if kinds > 1 else "",
    )
    return written


def _check_files(models: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str]) -> None:
    """Refuse fewer than two model files, or an output that is stdout or one of them; warn
    of a model file given more than once."""
    if isinstance(models, (str, os.PathLike)) or not isinstance(models, Sequence):
        raise UsageError(f"models: expected a list of model files; got {models!r}")
    if len(models) < 2:
        raise UsageError("an ensemble needs two or more model files")
    if str(output) == STDIO:
        raise UsageError("the model file needs a path (-o ensemble.bsnn), not '-'")
    check_output_path(output)
    for path in models:
        check_not_an_input(output, {"one of the MODELS": path})
    resolved = [Path(m).resolve() for m in models]
    if len(set(resolved)) < len(resolved):
        log.warning(
            "the same model file is given more than once: its members count that "
            "many times in the mean"
        )


def _gather_members(
    models: Sequence[str | os.PathLike[str]], bundles: list[Bundle]
) -> tuple[list[SequenceModel], list[dict[str, Any]]]:
    """Check each model file against the first, and gather the networks of all with a
    record for each (its source file, seed and metrics)."""
    first, base = bundles[0].manifest, str(models[0])
    members: list[SequenceModel] = []
    records: list[dict[str, Any]] = []
    for path, bundle in zip(models, bundles, strict=True):
        m = bundle.manifest
        for key, what in (
            ("alphabet", "alphabet"),
            ("input", "input (numeric series channels or their normalisation)"),
            ("structure", "RNA structure input (--structure)"),
            ("task", "task (classes, targets or target scaling)"),
            ("per_position", "task"),
        ):
            if _compared(m, key) != _compared(first, key):
                raise UsageError(
                    f"{display_name(path)} and {display_name(base)} differ in "
                    f"{what}; ensemble members must share them"
                )
        if isinstance(bundle.model, Ensemble):
            members += list(bundle.model.members)  # type: ignore[arg-type]
            records += [
                {"source": display_name(path), **r} for r in m["metrics"].get("members", [])
            ]
        else:
            members.append(bundle.model)
            records.append(
                {
                    "source": display_name(path),
                    "seed": m.get("seed"),
                    **{k: v for k, v in m.get("metrics", {}).items() if k != "members"},
                }
            )
    return members, records


def _ensemble_manifest(
    first: dict[str, Any],
    bundles: list[Bundle],
    members: list[SequenceModel],
    records: list[dict[str, Any]],
) -> dict[str, Any]:
    """The ensemble's manifest: the first file's, with its own time, parameter count,
    member count and members' metrics; a note (and a warning) when the members were
    trained on different data."""
    manifest = dict(first)  # save_bundle sets the format fields and the member count
    manifest["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    manifest["parameters"] = sum(count_parameters(m) for m in members)
    manifest["training"] = {**first.get("training", {}), "ensemble": len(members)}
    averaged = [bool(b.manifest.get("training", {}).get("rc_average")) for b in bundles]
    if len(set(averaged)) > 1:  # a prediction-time default: one for the whole ensemble
        log.warning(
            "the model files differ in --rc-average (%d of %d average both strands): the "
            "ensemble takes the first file's, %s (predict --rc-average or --no-rc-average "
            "chooses for a run)",
            sum(averaged),
            len(averaged),
            "averaging both strands" if averaged[0] else "the strand given",
        )
    fingerprints = {b.manifest.get("data", {}).get("fingerprint_sha256") for b in bundles}
    if len(fingerprints) > 1:
        manifest["data"] = {
            **first.get("data", {}),
            "note": "members trained on other data; see metrics.members for each member's source",
        }
        log.warning("the members were trained on different data (fingerprints differ)")
    manifest["metrics"] = {
        "monitor": first.get("metrics", {}).get("monitor", "val_loss"),
        "members": records,
    }
    return manifest


def _training_digests(bundles: list[Bundle]) -> np.ndarray | None:
    """The digests of every file's training sequences together, or None when a file keeps
    none."""
    digests = [b.train_digest for b in bundles]
    if any(d is None for d in digests):
        return None
    return np.concatenate([d for d in digests if d is not None])


def _compared(manifest: dict[str, Any], key: str) -> Any:
    """A manifest field as ensemble members must share it (a series' id column is only the
    table's column name, which ``predict --id-column`` overrides anyway)."""
    value = manifest.get(key)
    if key == "input" and isinstance(value, dict):
        return {k: v for k, v in value.items() if k != "id_column"}
    if key == "structure" and isinstance(value, dict):
        return value.get("kind")  # members folded by other ViennaRNA versions still agree
    if key == "task" and isinstance(value, dict):
        # class weights shaped the training loss, not what a member predicts: members
        # trained with and without them average alike (tune --ensemble-top mixes them)
        return {k: v for k, v in value.items() if k != "class_weights"}
    return value
