"""File mechanics for the store and the reports: lossless writes, locks, lean JSON reads.

No torch, no perfguard types: bytes, paths and JSON values only.

* :func:`atomic_write_chunks` writes a file so that a reader (or a crash at any instant)
  sees the old file or the new one, whole: a temporary file in the same folder, fsync,
  rename, fsync of the folder. It writes *through* a symlink (the link stays, its target is
  replaced), keeps an existing file's permission bits, gives a new file the umask's mode,
  removes its temporary file on any exception, and removes temporary files that killed
  writers left behind. It replaces only a regular file: a directory, a device, a FIFO or a
  socket at the path (or at a symlink's end) is refused with :class:`NotAFile`.
  :func:`atomic_write` writes a report's text that way, raising :class:`FileError`.
* :func:`open_for_reading` opens a file to read, refusing what is not a regular file (a FIFO
  would block, ``/dev/zero`` never ends) and files over :data:`MAX_FILE_BYTES`;
  :func:`loads` refuses JSON nested deeper than :data:`MAX_DEPTH` and integers outside
  64 bits, so that hostile input is an error, never a ``RecursionError`` or ``MemoryError``.
* :func:`locked` serialises read-merge-write cycles of one file across processes.
* :func:`read_document` reads a big JSON document without holding it in memory: for a file
  laid out the way perfguard writes it, the elements of its big lists are found by their
  indentation (a JSON string cannot hold a raw newline, so ``\\n`` + N spaces + ``{`` at a
  line's start is always structure) and left in the file as :class:`Span` s, read one at a
  time. Anything else (hand-formatted, minified) is parsed whole: slower, same result.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import stat
import time
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import IO, Any

#: Bytes gathered before each ``os.write`` (and read per chunk when scanning).
CHUNK_SIZE = 1 << 20
#: A temporary file of an unlocked writer (reports) older than this is a killed writer's.
STALE_TEMP_SECONDS = 60.0
#: The largest file perfguard reads: about three times a 50,000-test suite's results.json.
MAX_FILE_BYTES = 1 << 30
#: The deepest JSON nesting perfguard reads (its own files nest about 8 deep).
MAX_DEPTH = 64
#: The integers perfguard's files hold (counts, sizes, versions) fit in 64 bits.
INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1


class InvalidNumber(ValueError):
    """``NaN``, an infinity (not JSON, though Python reads them) or an integer outside
    64 bits in a JSON text."""


class TooDeep(ValueError):
    """JSON nested deeper than :data:`MAX_DEPTH`."""


class NotAFile(OSError):
    """A path to read or replace that is not a regular file (a directory, a device, a FIFO,
    a socket); ``strerror`` says what it is. Perfguard never reads or replaces one."""


class FileTooLarge(OSError):
    """A file over :data:`MAX_FILE_BYTES`."""


class FileError(OSError):
    """A file perfguard cannot write (a report, an export); the message names the file and
    the reason. An ``OSError``, so that whoever handles write errors handles it too."""


def _reject_constant(name: str) -> Any:
    raise InvalidNumber(
        f"{name} is not a number JSON allows (only finite numbers are valid)")


def int64(literal: str) -> int:
    """A JSON integer literal's value; :class:`InvalidNumber` when it does not fit 64 bits
    (checked on the text first: Python refuses to convert literals of 4,300+ digits)."""
    if len(literal) <= 19 or (len(literal) == 20 and literal[0] == "-"):
        value = int(literal)
        if INT_MIN <= value <= INT_MAX:
            return value
    raise InvalidNumber(f"the integer {shorten_digits(literal)} is out of range (numbers in "
                        "perfguard's files fit in 64 bits)")


def shorten_digits(literal: str) -> str:
    digits = len(literal.lstrip("-"))
    return literal if digits <= 24 else f"{literal[:12]}...({digits} digits)"


#: A JSON string (with its escapes), removed before counting brackets.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
#: ``[`` and ``{`` become 1, ``]`` and ``}`` become -1 (read as signed bytes), the rest goes.
_BRACKETS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[{]}"))


def check_depth(data: str | bytes) -> None:
    """Raise :class:`TooDeep` when ``data`` nests deeper than :data:`MAX_DEPTH` (counted on
    the text, before parsing: Python's parser would end in a ``RecursionError``)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return
    brackets = _STRING.sub(b"", raw).translate(_BRACKETS, _NOT_BRACKETS)
    if brackets and max(accumulate(array("b", brackets))) > MAX_DEPTH:
        raise TooDeep(f"JSON nested deeper than {MAX_DEPTH} levels, the most perfguard reads "
                      "(its own files nest about 8 deep)")


def loads(data: str | bytes) -> Any:
    """``json.loads`` that rejects NaN, infinities and integers outside 64 bits while
    parsing (:class:`InvalidNumber`), and nesting deeper than :data:`MAX_DEPTH`
    (:class:`TooDeep`), instead of reading them."""
    check_depth(data)
    return json.loads(data, parse_constant=_reject_constant, parse_int=int64)


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "a special file"


def not_a_file(path: Path, mode: int, doing: str) -> NotAFile:
    return NotAFile(errno.EINVAL, f"{_file_kind(mode)}, not a regular file (perfguard "
                                  f"{doing} only regular files)", str(path))


def check_replaceable(target: Path) -> None:
    """Raise :class:`NotAFile` when ``target`` exists and is not a regular file."""
    try:
        mode = os.stat(target).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    if not stat.S_ISREG(mode):
        raise not_a_file(target, mode, "writes")


def open_for_reading(path: Path) -> IO[bytes]:
    """Open a regular file to read. Raises ``FileNotFoundError`` (and other ``OSError`` s),
    :class:`NotAFile` for anything else, without opening it (a FIFO would block, a device
    may not end or may act on being opened), :class:`FileTooLarge` past the limit."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise not_a_file(path, mode, "reads")
    # (O_NONBLOCK: a FIFO swapped in since the stat cannot block the open.)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
                 | getattr(os, "O_BINARY", 0))
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):
            raise not_a_file(path, found.st_mode, "reads")
        check_size(found.st_size, path)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_size(size: int, path: Path | None = None) -> None:
    """Raise :class:`FileTooLarge` when ``size`` bytes are over :data:`MAX_FILE_BYTES`."""
    if size > MAX_FILE_BYTES:
        raise FileTooLarge(errno.EFBIG, f"larger than {MAX_FILE_BYTES >> 20} MiB, the most "
                                        "perfguard reads", str(path or ""))


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
    written (the symlink's target when ``path`` is a link). Raises :class:`OSError`
    (:class:`NotAFile` when the target exists and is not a regular file)."""
    target = resolve_target(Path(path))
    check_replaceable(target)
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


def atomic_write(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` with :func:`atomic_write_chunks` (for reports).
    Raises :class:`FileError` naming the file when it cannot be written."""
    path = Path(path)
    try:
        atomic_write_chunks(path, [text.encode("utf-8")])
    except OSError as exc:
        raise FileError(f"{path}: cannot write here: {exc.strerror or exc}") from exc


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
                 bad_number: str = "") -> None:
        self.handle = handle
        self.value = value
        #: Whether spans were found (the fast path); False: ``value`` is the whole document.
        self.laid_out = laid_out
        #: Why the document is not valid when it holds NaN, an infinity or an integer outside
        #: 64 bits: it is read anyway, so that validation can name the field; the reader
        #: reports this if not.
        self.bad_number = bad_number

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
        except (json.JSONDecodeError, UnicodeDecodeError, InvalidNumber, TooDeep):
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

    Raises ``json.JSONDecodeError``/``UnicodeDecodeError`` for text that is not JSON,
    :class:`TooDeep`, and :class:`FileTooLarge` for a file that grew past the limit. A NaN,
    an infinity or an integer outside 64 bits is read (Python's way) and noted in
    :attr:`Document.bad_number` (:class:`InvalidNumber` when even Python cannot read it).
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
            except (json.JSONDecodeError, UnicodeDecodeError, InvalidNumber):
                pass  # fooled by the layout, or a NaN: parse it whole, which says where
    handle.seek(0)
    data = handle.read(MAX_FILE_BYTES + 1)
    check_size(len(data))
    try:
        return Document(handle, loads(data), laid_out=False)
    except InvalidNumber as exc:
        try:
            value = json.loads(data)
        except ValueError:  # an integer of 4,300+ digits: Python refuses to read it
            raise exc from None
        return Document(handle, value, laid_out=False, bad_number=str(exc))


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
            check_size(base + len(buf))
            keep = start
            pos = max(pos, len(buf) - margin)
            start = 0
        buf, base, pos = buf[keep:], base + keep, pos - keep
        chunk = handle.read(CHUNK_SIZE)
        eof = not chunk
        buf += chunk
