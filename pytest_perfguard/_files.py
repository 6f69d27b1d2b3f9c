"""File mechanics for the store and the reports: lossless writes, locks, lean JSON reads.

No torch, no perfguard types: bytes, paths and JSON values only.

* :func:`atomic_write_chunks` writes a file so that a reader (or a crash at any instant)
  sees the old file or the new one, whole: a temporary file in the same folder, fsync,
  rename, fsync of the folder. It writes *through* a symlink (the link stays, its target is
  replaced), keeps an existing file's permission bits, gives a new file the umask's mode,
  removes its temporary file on any exception, and removes temporary files that killed
  writers left behind.
* :func:`locked` serialises read-merge-write cycles of one file across processes.
* :func:`read_document` reads a big JSON document without holding it in memory: for a file
  laid out the way perfguard writes it, the elements of its big lists are found by their
  indentation (a JSON string cannot hold a raw newline, so ``\\n`` + N spaces + ``{`` at a
  line's start is always structure) and left in the file as :class:`Span` s, read one at a
  time. Anything else (hand-formatted, minified) is parsed whole: slower, same result.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

#: Bytes gathered before each ``os.write`` (and read per chunk when scanning).
CHUNK_SIZE = 1 << 20
#: A temporary file of an unlocked writer (reports) older than this is a killed writer's.
STALE_TEMP_SECONDS = 60.0


class NonFiniteNumber(ValueError):
    """``NaN``, ``Infinity`` or ``-Infinity`` in a JSON text (not JSON, though Python reads it)."""


def _reject_constant(name: str) -> Any:
    raise NonFiniteNumber(
        f"{name} is not a number JSON allows (only finite numbers are valid)")


def loads(data: str | bytes) -> Any:
    """``json.loads`` that rejects NaN and infinities while parsing, instead of reading them."""
    return json.loads(data, parse_constant=_reject_constant)


# ----------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------


def resolve_target(path: Path) -> Path:
    """The file a write to ``path`` must replace: a symlink's target (followed through any
    chain of links; a dangling link's missing target is created), else ``path`` itself."""
    return Path(os.path.realpath(path))


def temp_prefix(target: Path) -> str:
    return f".{target.name}."


def remove_stale_temps(target: Path, older_than: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Remove the temporary files killed writers of ``target`` left (``.NAME.*.tmp``) that
    are older than ``older_than`` seconds (0: all of them, for a writer holding the lock)."""
    removed: list[Path] = []
    prefix, now = temp_prefix(target), time.time()
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        if not (entry.name.startswith(prefix) and entry.name.endswith(".tmp")):
            continue
        try:
            if older_than and now - entry.stat(follow_symlinks=False).st_mtime < older_than:
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue  # another writer removed or renamed it
    return removed


def atomic_write_chunks(path: Path, chunks: Iterable[bytes], *,
                        stale_after: float = STALE_TEMP_SECONDS) -> Path:
    """Write ``chunks`` to ``path`` atomically (see the module docstring); return the file
    written (the symlink's target when ``path`` is a link). Raises :class:`OSError`."""
    target = resolve_target(Path(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target, stale_after)
    try:
        mode: int | None = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = target.parent / f"{temp_prefix(target)}{os.getpid()}-{secrets.token_hex(4)}.tmp"
        try:
            # 0o666 filtered by the umask: what a new file of any other tool gets.
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
    try:
        try:
            if mode is not None and hasattr(os, "fchmod"):  # (not on Windows before 3.13)
                os.fchmod(fd, mode)
            pending: list[bytes] = []
            size = 0
            for chunk in chunks:
                pending.append(chunk)
                size += len(chunk)
                if size >= CHUNK_SIZE:
                    _write_all(fd, b"".join(pending))
                    pending, size = [], 0
            if pending:
                _write_all(fd, b"".join(pending))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)
    return target


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (a crash right after it must not bring back the old
    name). Not every platform or file system can open a folder; then there is nothing to do."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(target: Path, timeout: float) -> Iterator[None]:
    """Hold ``TARGET.lock`` (next to the file) for a read-merge-write of ``target``.

    An OS-level lock (``fcntl``/``msvcrt`` via filelock): a killed holder releases it, so a
    lock file left on disk never blocks anyone. Raises ``TimeoutError`` after ``timeout``.
    """
    from filelock import FileLock, Timeout

    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(target.with_name(target.name + ".lock")), timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        raise TimeoutError(
            f"another process held {lock.lock_file} for {timeout:g} s (a perfguard update "
            "still running?)") from None
    try:
        yield
    finally:
        lock.release()


# ----------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """An element of a big list, left in the file: ``length`` bytes at ``offset``."""

    offset: int
    length: int


class NotLaidOut(Exception):
    """The fast reading was fooled by unusual formatting: read the document whole instead."""


#: Stands in for a span inside the skeleton text: a JSON string no document holds.
_PLACEHOLDER = "\x00perfguard-span:"


class Document:
    """A JSON document open for reading; ``value`` is the parsed document in which the
    elements of the big lists may be :class:`Span` s (see :meth:`element`)."""

    def __init__(self, handle: IO[bytes], value: Any, laid_out: bool,
                 nonfinite: str = "") -> None:
        self.handle = handle
        self.value = value
        #: Whether spans were found (the fast path); False: ``value`` is the whole document.
        self.laid_out = laid_out
        #: Why the document is not valid JSON when it holds NaN or an infinity: it is read
        #: anyway, so that validation can name the field; the reader reports this if not.
        self.nonfinite = nonfinite

    def element(self, value: Any) -> bytes:
        """The JSON text of one element: read from the file for a span, else re-encoded."""
        if isinstance(value, Span):
            self.handle.seek(value.offset)
            return self.handle.read(value.length)
        # (Spans nested in it are parsed; ASCII: a lone surrogate stays an escape.)
        return json.dumps(self.resolve(value)).encode()

    def resolve_span(self, value: Any) -> Any:
        """``value`` parsed if it is a span, else as it is. Raises :class:`NotLaidOut` when
        the span is not JSON (or holds a NaN): the caller reads the document whole."""
        if not isinstance(value, Span):
            return value
        try:
            return loads(self.element(value))
        except (json.JSONDecodeError, UnicodeDecodeError, NonFiniteNumber):
            raise NotLaidOut from None

    def resolve(self, value: Any) -> Any:
        """``value`` with every span in it parsed (for the small parts of a document)."""
        if isinstance(value, Span):
            return self.resolve_span(value)
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value


def read_document(handle: IO[bytes], element_indent: int, *, whole: bool = False) -> Document:
    """Parse the document in ``handle``, leaving objects that open a line indented by
    ``element_indent`` spaces in the file as spans. ``whole``: parse everything now.

    Raises ``json.JSONDecodeError``/``UnicodeDecodeError`` for text that is not JSON. A NaN
    or an infinity is read (Python's way) and noted in :attr:`Document.nonfinite`.
    """
    if not whole:
        handle.seek(0)
        scanned = _scan(handle, element_indent)
        if scanned is not None and scanned[1]:
            parts, spans = scanned
            try:
                skeleton = loads(b"".join(parts))
                used: set[int] = set()
                value = _put_spans(skeleton, spans, used)
                if len(used) == len(spans):
                    return Document(handle, value, laid_out=True)
            except (json.JSONDecodeError, UnicodeDecodeError, NonFiniteNumber):
                pass  # fooled by the layout, or a NaN: parse it whole, which says where
    handle.seek(0)
    data = handle.read()
    try:
        return Document(handle, loads(data), laid_out=False)
    except NonFiniteNumber as exc:
        return Document(handle, json.loads(data), laid_out=False, nonfinite=str(exc))


def _put_spans(value: Any, spans: list[Span], used: set[int]) -> Any:
    if isinstance(value, str) and value.startswith(_PLACEHOLDER):
        index = int(value[len(_PLACEHOLDER):])
        if index in used:
            raise json.JSONDecodeError("span used twice", "", 0)
        used.add(index)
        return spans[index]
    if isinstance(value, dict):
        return {k: _put_spans(v, spans, used) for k, v in value.items()}
    if isinstance(value, list):
        return [_put_spans(v, spans, used) for v in value]
    return value


def _scan(handle: IO[bytes], indent: int) -> tuple[list[bytes], list[Span]] | None:
    """Split the file into skeleton text and element spans, reading ``CHUNK_SIZE`` at a time.

    An element opens with a line that is exactly ``indent`` spaces and ``{`` and closes at
    the next line that starts with ``indent`` spaces and ``}``. Returns None when an element
    never closes. A span cut wrongly (by an unusual layout) is not a JSON value, or leaves
    the skeleton unbalanced: either way the caller then reads the document whole.
    """
    # Needles that end in a brace: the search skips ahead on the frequent newlines.
    opener = b"\n" + b" " * indent + b"{"
    closer = b"\n" + b" " * indent + b"}"
    margin = len(opener) + 1
    parts: list[bytes] = []
    spans: list[Span] = []
    buf, base, pos = b"", 0, 0
    start = -1  # index in buf where the open element's text starts, or -1
    eof = False
    while True:
        if start < 0:
            i = buf.find(opener, pos)
            if i >= 0 and i + len(opener) >= len(buf) and not eof:
                i = -1  # cannot see yet whether the line ends after the brace
            elif i >= 0 and buf[i + len(opener):i + len(opener) + 1] not in (b"\n", b"\r"):
                parts.append(buf[pos:i + len(opener)])
                pos = i + len(opener)  # "{" with more on its line: not an element
                continue
            if i >= 0:
                parts.append(buf[pos:i + 1])
                start, pos = i + 1, i + len(opener)
                continue
            if eof:
                parts.append(buf[pos:])
                return parts, spans
            if not spans and base > 4 * CHUNK_SIZE:
                return None  # megabytes without an element: not this layout
            keep = max(pos, len(buf) - margin)
            parts.append(buf[pos:keep])
        else:
            j = buf.find(closer, pos)
            if j >= 0:
                end = j + len(closer)
                spans.append(Span(base + start, end - start))
                parts.append(json.dumps(f"{_PLACEHOLDER}{len(spans) - 1}").encode())
                start, pos = -1, end
                continue
            if eof:
                return None
            keep = start
            pos = max(pos, len(buf) - margin)
            start = 0
        buf, base, pos = buf[keep:], base + keep, pos - keep
        chunk = handle.read(CHUNK_SIZE)
        eof = not chunk
        buf += chunk
