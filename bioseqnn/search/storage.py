"""The Optuna study of ``bioseqnn tune``: its storage (a journal file or a database), made,
continued or joined by several processes, and the trials a stopped run left running.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from ..engine.schedules import minimised
from ..errors import UsageError, shorten

log = logging.getLogger("bioseqnn")


STUDY_NAME = "bioseqnn-tune"

INSTALL_HINT = "tune needs optuna: pip install 'bioseqnn[tune]'"

RDB_ATTEMPTS = 3

CONNECT_TIMEOUT_S = 10
"""Seconds a database server has to accept a connection (_engine)."""

JOIN_WAIT_S = 30.0
"""How long a process that joins a new study waits for its maker to write the settings."""


def import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # tune logs one line per trial
    return optuna


def _storage(optuna: Any, study: str | None, journal: Path) -> tuple[Any, str]:
    """An Optuna storage: a database URL as it is, anything else a journal file."""
    if study and "://" in study:
        shown = study.split("://", 1)[0] + "://..."
        for attempt in range(RDB_ATTEMPTS):
            try:
                return optuna.storages.RDBStorage(study, engine_kwargs=_engine(study)), shown
            except ImportError as exc:
                raise UsageError(
                    f"--study {shown}: its database driver is not installed ({exc})"
                ) from None
            except Exception as exc:  # sqlalchemy's errors: a bad URL, no server, a race
                if attempt + 1 == RDB_ATTEMPTS:
                    raise UsageError(
                        f"--study {shown}: cannot open the storage: {str(exc).splitlines()[0]}"
                    ) from None
                # processes that start together on a new database all create Optuna's
                # tables, and all but one fail on PostgreSQL: the tables exist on the
                # next attempt
                time.sleep(1.0 + attempt)
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage

    path = Path(study) if study else journal
    # an open(O_EXCL) lock file rather than a symlink one: it works on NFS and Lustre
    backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
    return JournalStorage(backend), str(path)


def _engine(url: str) -> dict[str, Any]:
    """SQLAlchemy engine settings for a database URL: a connection timeout for the
    PostgreSQL and MySQL drivers that take one, unless the URL sets its own. Without one
    a server that drops packets (down, or behind a firewall) held each attempt for the
    system's TCP timeout, two minutes on Linux."""
    scheme = url.split("://", 1)[0].lower()
    drivers = ("postgresql", "postgresql+psycopg2", "postgresql+psycopg", "mysql")
    if (scheme in drivers or scheme.startswith("mysql+")) and "connect_timeout" not in url:
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
    return {}


def check_journal(study: str | None, journal: Path) -> None:
    """Before anything is written: a journal file (``study``, not a database URL, else
    ``journal``) that exists must be a regular file of Optuna's JSON lines. A folder, a
    device, a pipe or a file of something else is refused from its first bytes (Optuna
    would read /dev/zero until memory ran out, and append to whatever it was given)."""
    if study and "://" in study:
        return
    path = Path(study) if study else journal
    if path.is_dir():
        raise UsageError(f"--study {path}: a folder; give a journal file name")
    if not path.exists():
        return
    if not path.is_file():
        raise UsageError(
            f"--study {path}: not a regular file; a journal is a file that trials are appended to"
        )
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16).lstrip()
    except OSError as exc:
        raise UsageError(f"--study {path}: cannot read: {exc.strerror or exc}") from None
    first = head.split(b"\n", 1)[0]
    if head and not (first.startswith(b"{") and b'"op_code"' in first):
        raise UsageError(
            f"--study {path}: not an Optuna journal (it starts with "
            f"{shorten(repr(first[:40]))}); give a new file name, or the journal of a "
            "study to continue"
        )


def open_study(
    optuna: Any,
    study: str | None,
    journal: Path,
    space: dict[str, Any],
    resolved_monitor: str,
    monitor: str,
    seed: int,
    resume: bool,
    join: bool,
    defaults_arch: str | None,
) -> tuple[Any, str, str]:
    """Create or load the study: (study, the monitor it optimises, where it is).
    ``defaults_arch``: the architecture train's defaults build, for a new study to start
    with them where it is among the families searched; None for no defaults trial."""
    storage, where = _storage(optuna, study, journal)
    names = optuna.study.get_all_study_names(storage)
    exists = STUDY_NAME in names
    if exists and not (resume or join):
        raise UsageError(
            f"a tune study exists in {where}: continue it with --resume (or "
            "give another --study, or remove that file)"
        )
    if resume and not exists:
        raise UsageError(f"--resume: no tune study in {where} to continue")
    direction = "minimize" if minimised(resolved_monitor) else "maximize"
    # one process: the sampler's seed is --seed, so the same command proposes the same
    # trials; processes joining one study each get their own proposals
    sampler_seed = seed if not join else (seed * 1_000_003 + os.getpid()) % 2**32
    sampler = optuna.samplers.TPESampler(seed=sampler_seed)
    # a trial is compared with the median of the others' at the same epoch from its
    # second epoch on, once three trials have finished
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
    try:
        # parallel processes (--join) all try to create the study; the storage lets one
        # of them, and that one alone writes its settings and queues the default trial
        created = optuna.create_study(
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            study_name=STUDY_NAME,
            direction=direction,
            load_if_exists=resume,
        )
        made_here = not exists
    except optuna.exceptions.DuplicatedStudyError:  # another process made it first
        if not join:
            raise UsageError(
                f"a tune study exists in {where}: continue it with --resume, or "
                "start parallel processes with --join"
            ) from None
        created = optuna.load_study(
            storage=storage, sampler=sampler, pruner=pruner, study_name=STUDY_NAME
        )
        made_here = False
    # --resume takes over a study whose maker stopped before writing its settings
    stored = created.user_attrs if made_here or resume else _settings_of(created, where)
    if "monitor" in stored:
        if monitor != "auto" and stored["monitor"] != resolved_monitor:
            raise UsageError(
                f"the study in {where} optimises {stored['monitor']}, not "
                f"{resolved_monitor}: drop --monitor or start another study"
            )
        if stored.get("space") != space:
            raise UsageError(
                f"the study in {where} was made with another search space: "
                "give the same --space to continue it"
            )
        resolved_monitor = stored["monitor"]
    else:
        # the monitor is written last: a process that joins waits for it (_settings_of)
        created.set_user_attr("space", space)
        if defaults_arch is not None and defaults_arch not in space["families"]:
            # families: [cnn, gru] had the default cnn-gru win a search that was to try
            # only those two
            log.info(
                "no trial of train's defaults: their architecture (%s) is not among the "
                "families searched",
                defaults_arch,
            )
        elif defaults_arch is not None:
            # the first trial is what 'bioseqnn train' gives with no options (with the
            # space's fixed values, e.g. its epochs): a search reports no worse a
            # validation figure than the default, and its table shows the default's
            created.enqueue_trial({}, user_attrs={"defaults": True, "note": "train's defaults"})
        created.set_user_attr("monitor", resolved_monitor)
    if resume and fail_running(optuna, created, None, None, alone=True):
        log.warning("trials that a stopped run left running are recorded as failed")
    done = len(created.get_trials(deepcopy=False))
    if done and not join:
        # a resumed study's sampler starts from another seed: the same one would propose
        # the first run's random start-up trials again
        created.sampler = optuna.samplers.TPESampler(seed=(seed + done) % 2**32)
    return created, resolved_monitor, where


def _settings_of(created: Any, where: str) -> dict[str, Any]:
    """The settings (monitor, space) of a study another process made: it writes them just
    after making the study, so a process that joins at the same moment waits for them."""
    deadline = time.monotonic() + JOIN_WAIT_S
    while True:
        stored: dict[str, Any] = created.user_attrs
        if "monitor" in stored:
            return stored
        if time.monotonic() > deadline:
            raise UsageError(
                f"the study in {where} has no settings after {JOIN_WAIT_S:.0f} s: the "
                "process that made it stopped at once; remove it and start again"
            )
        time.sleep(0.2)


def fail_running(
    optuna: Any, study: Any, trial: Any, exc: BaseException | None, alone: bool
) -> int:
    """Record as failed the trials a stopped process leaves 'running' in the storage
    (Optuna records a trial that Ctrl-C stops, not one that SIGTERM stops, nor one
    stopped while Optuna itself writes). ``alone``: no other process works on the study,
    so every running trial is a stopped one; otherwise only this process's ``trial``."""
    why = (
        "interrupted"
        if isinstance(exc, KeyboardInterrupt)
        else "terminated"
        if exc is not None
        else "left running by a stopped run"
    )
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    stale = [t for t in running if alone or (trial is not None and t.number == trial.number)]
    for t in stale:
        # the reason goes where the table reads it (a finished trial takes no attributes)
        study._storage.set_trial_user_attr(t._trial_id, "error", why)
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
    return len(stale)
