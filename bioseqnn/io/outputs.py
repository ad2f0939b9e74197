"""Outputs that appear only complete (a temporary file beside the target, then rename),
compressed by their suffix; checks that an output is writable and is not an input.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import gzip
import io
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from ..errors import DataError, UsageError
from .files import STDIO, SUFFIXES, _xopen, display_name

_made: list[Path] = []
"""The folders make_folder created in this command, for remove_made_folders."""


def make_folder(path: str | os.PathLike[str]) -> Path:
    """Create an output folder (and its missing parents), remembering which it created,
    so that a command that fails takes them away again while they are empty
    (:func:`remove_made_folders`). OSError as :meth:`Path.mkdir` raises it."""
    folder = Path(path)
    missing = []
    step = folder
    while not step.exists() and step.parent != step:
        missing.append(step)
        step = step.parent
    folder.mkdir(parents=True, exist_ok=True)
    _made.extend(missing)
    return folder


def remove_made_folders() -> None:
    """Remove the folders :func:`make_folder` created that are still empty (deepest
    first): a command that failed leaves no empty plot or checkpoint folder behind."""
    for folder in sorted(_made, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):  # not empty: something was written there
            folder.rmdir()
    _made.clear()


def forget_made_folders() -> None:
    """Start a command: the folders made before are kept."""
    _made.clear()


@contextlib.contextmanager
def made_folders_removed_on_failure() -> Iterator[None]:
    """A command of the Python API: the output folders it made and left empty go when
    it fails, as :func:`bioseqnn.cli.main` does for a command."""
    forget_made_folders()
    try:
        yield
    except BaseException:
        remove_made_folders()
        raise
    finally:
        _made.clear()


def table_delimiter(path: str | os.PathLike[str]) -> str:
    lower = str(path).lower().removesuffix(".gz")
    return "," if lower.endswith(".csv") else "\t"


def silence_stdout() -> None:
    """Point stdout at /dev/null once its reader has gone (a broken pipe), so that the
    interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def check_one_stdin(**inputs: str | os.PathLike[str] | None) -> None:
    """Standard input can be read once: at most one input may be '-'."""
    named = [name for name, value in inputs.items() if value is not None and str(value) == STDIO]
    if len(named) > 1:
        raise UsageError(
            f"only one input can be '-' (standard input); {' and '.join(named)} both are"
        )


Inputs = Mapping[str, "str | os.PathLike[str] | None"]
"""The inputs of a command that an output must not be: what each is (e.g. 'SEQUENCES',
'--val-labels') -> its path (None: not given)."""


def check_output_path(path: str | os.PathLike[str], inputs: Inputs | None = None) -> None:
    """Fail early (before hours of training) when an output cannot be created, or when it
    is one of the command's ``inputs`` (writing it would destroy that input)."""
    if str(path) == STDIO:
        return
    if inputs:
        check_not_an_input(path, inputs)
    if str(path).endswith(("/", os.sep)):
        raise UsageError(f"{path}: names a directory; give a file name (e.g. {path}out.tsv)")
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        problem = "is not a directory" if parent.exists() else "does not exist"
        raise UsageError(f"{path}: cannot write: directory {str(parent)!r} {problem}")
    if target.is_dir():
        raise UsageError(f"{path}: cannot write: it is a directory")
    if target.is_symlink():
        try:
            target.stat()
        except OSError as exc:  # a loop: there is no file to replace, and the link stays
            if exc.errno == errno.ELOOP:
                raise UsageError(f"{path}: cannot write: {exc.strerror}") from None
    if not os.access(parent, os.W_OK) and not is_special(target):
        raise UsageError(f"{path}: cannot write: directory {str(parent)!r} is not writable")


def check_not_an_input(output: str | os.PathLike[str], inputs: Inputs) -> None:
    """Refuse an output that is one of ``inputs``: the same file (device and inode),
    whatever the names, after following symbolic links; a hard link is the same file too.
    Standard input and output, /dev/null and other outputs that are no regular file are
    written directly and destroy nothing, so they are not compared."""
    if str(output) == STDIO:
        return
    try:
        out = os.stat(output)
    except (OSError, ValueError):
        out = None
    if out is None:
        # not there yet: an input of that name is not there either (a genome's index,
        # which reading builds, say) and is refused by its name
        for what, path in inputs.items():
            if path is not None and str(path) != STDIO and same_path(path, output):
                raise UsageError(
                    f"{output}: cannot write: it is named as an input ({what}): choose "
                    "another output name"
                )
        return
    if not stat.S_ISREG(out.st_mode):
        return
    for what, path in inputs.items():
        if path is None:
            continue
        try:  # '-': whatever standard input reads, a file given with '<' say
            found = os.fstat(0) if str(path) == STDIO else os.stat(path)
        except (OSError, ValueError):
            continue
        if (found.st_dev, found.st_ino) == (out.st_dev, out.st_ino):
            same = (
                ""
                if os.path.abspath(path) == os.path.abspath(output)
                else f" {display_name(path)}, the same file"
            )
            raise UsageError(
                f"{output}: cannot write: it is an input ({what}{same}); writing "
                "it would destroy it: choose another output name"
            )


def same_path(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two names lead to one path (after symbolic links), whether or not a file
    is there yet."""
    try:
        return os.path.realpath(a) == os.path.realpath(b)
    except (OSError, ValueError):
        return False


def is_special(target: Path) -> bool:
    """True for an existing output that is no regular file: /dev/null, a FIFO, a terminal."""
    try:
        return not stat.S_ISREG(target.stat().st_mode)
    except OSError:
        return False


def beside_nothing(output: str | os.PathLike[str]) -> bool:
    """Whether no file may be named after ``output`` beside it (a metrics log, the
    out-of-fold table): an output that is no regular file (/dev/null, a FIFO), or one
    named in /dev or /proc (/dev/stdout, a regular file where the shell redirected it,
    would put model.log.tsv in /dev)."""
    named = os.path.abspath(output)
    return is_special(Path(output)) or named.startswith(("/dev/", "/proc/"))


class _KeepOpen:
    """A binary sink whose close() only flushes (Bio.bgzf closes the handle it writes)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw

    def write(self, data: bytes) -> int:
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()

    def close(self) -> None:
        self.raw.flush()


@contextlib.contextmanager
def _encoded(raw: IO[bytes], name: str, binary: bool, bgzip: bool = False) -> Iterator[IO[Any]]:
    """Wrap a binary sink: gzip when ``name`` ends in .gz (BGZF blocks with ``bgzip``,
    which tabix and htslib can index), bzip2, xz or zstd for .bz2, .xz, .zst; UTF-8 text
    unless ``binary``."""
    sink: IO[Any] = raw
    gz: Any = None
    fmt = SUFFIXES.get(os.path.splitext(name)[1].lower())
    if fmt is not None:
        gz = _xopen(_KeepOpen(raw), "wb", fmt)
        sink = gz
    elif name.endswith(".gz") and bgzip:
        from Bio import bgzf

        gz = bgzf.BgzfWriter(fileobj=_KeepOpen(raw))
        sink = gz
    elif name.endswith(".gz"):
        gz = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0)
        sink = gz  # type: ignore[assignment]
    text = None
    if not binary:
        text = io.TextIOWrapper(sink, encoding="utf-8", newline="")  # type: ignore[arg-type]
        sink = text
    yield sink
    if text is not None:
        text.flush()
        text.detach()
    if gz is not None:
        gz.close()
    raw.flush()


class _Closed(io.TextIOBase):
    """Standard output of a process started with it closed (``>&-``): Python leaves
    sys.stdout None, and the first write failed as 'unexpected TypeError'. Writing
    here is the one-line error of an output that cannot be written."""

    def writable(self) -> bool:
        return True

    def write(self, text: Any) -> int:
        raise DataError("<stdout>: cannot write: standard output is closed")

    @property
    def buffer(self) -> _Closed:
        return self


def guard_closed_stdout() -> None:
    """Stand in for a closed standard output (see :class:`_Closed`); a command that
    never writes to it runs as usual."""
    if sys.stdout is None:
        sys.stdout = _Closed()


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike[str], binary: bool = False, bgzip: bool = False
) -> Iterator[IO[Any]]:
    """Yield a handle whose content appears at ``path`` only if the block succeeds.

    '-' yields stdout (never closed). A name ending in .gz is gzip-compressed (in BGZF
    blocks with ``bgzip``: binary output only, e.g. a VCF for tabix), one ending in .bz2,
    .xz or .zst bzip2-, xz- or zstd-compressed. A
    symbolic link is followed (the file it points to is replaced, the link kept); an
    existing output that is no regular file (/dev/null, a named pipe) is written directly.
    Failing writes (disk full, file too large) raise :class:`DataError` naming the output.
    """
    if str(path) == STDIO:
        stream: IO[Any] = sys.stdout.buffer if binary else sys.stdout
        try:
            yield stream
            stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise DataError(f"<stdout>: cannot write: {exc.strerror or exc}") from None
        return
    check_output_path(path)
    if is_special(Path(path)):
        try:
            with open(path, "wb") as raw, _encoded(raw, str(path), binary, bgzip) as sink:
                yield sink
        except BrokenPipeError:  # -o /dev/stdout (or a named pipe) whose reader went away:
            raise  # as for '-', the command stops quietly
        except OSError as exc:
            raise DataError(f"{path}: cannot write: {exc.strerror or exc}") from None
        return
    target = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(target), suffix=".part", dir=target.parent)
    except OSError as exc:
        raise DataError(f"{path}: cannot write: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as raw:
            with _encoded(raw, target.name, binary, bgzip) as sink:
                yield sink
            os.fsync(raw.fileno())
        os.chmod(tmp, _mode_for(target))
        os.replace(tmp, target)
    except OSError as exc:
        _remove(tmp)
        raise DataError(f"{path}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        _remove(tmp)
        raise


_RANDOM_PART = 8 + len(".part")
"""What tempfile.mkstemp adds to the prefix: eight random characters and the suffix."""


def _temp_prefix(target: Path) -> str:
    """The temporary file's prefix, '.NAME.', with NAME cut so that the temporary name
    fits the file system's limit on a name (255 bytes on most): the output's own name
    may use all of it, and the temporary one must not fail where the output would not."""
    try:
        limit = os.pathconf(target.parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    name = os.fsencode(target.name)[: max(1, limit - _RANDOM_PART - 2)]
    return "." + os.fsdecode(name) + "."  # a character cut in two is still bytes


def _mode_for(target: Path) -> int:
    """The permissions of a file written to ``target``: an existing file's (a private
    0600 one stays private), else what the umask leaves of 0666, as open() gives."""
    try:
        existing = os.stat(target)
    except OSError:
        return 0o666 & ~_umask()
    return stat.S_IMODE(existing.st_mode) if stat.S_ISREG(existing.st_mode) else 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read without changing it where the system says it (Linux
    4.7 on): os.umask can only be read by setting it, and a file another thread
    creates in that moment (a notebook's, a worker's) would be made with umask 0."""
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)  # the fallback's moment errs on the private side
    os.umask(mask)
    return mask


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_output(path, binary=True) as fh:
        fh.write(data)


def write_table(
    output: str | os.PathLike[str], header: list[str], rows: Iterable[list[str]]
) -> None:
    """A header and rows as TSV (CSV for a .csv name), written atomically.

    The first row is made before anything is written, so an input refused at its first
    chunk (wrong alphabet, an invalid symbol, no records) leaves stdout empty too."""
    rows = iter(rows)
    first = next(rows, None)
    with atomic_output(output) as fh:
        writer = csv.writer(fh, delimiter=table_delimiter(output), lineterminator="\n")
        writer.writerow(header)
        if first is not None:
            writer.writerow(first)
        writer.writerows(rows)
