"""The history database: every recorded run, one SQLite file. No torch.

Why SQLite: it is in the standard library, one file that a CI cache can carry, safe for
several writers, and indexed, so a history of 100,000 runs answers in milliseconds.

Layout (schema version :data:`SCHEMA_VERSION`, kept in ``PRAGMA user_version`` and
upgraded by :data:`MIGRATIONS`; ``PRAGMA application_id`` marks the file as ours):

- ``runs``: one row per recorded run: commit, branch, dirty flag, when it ran.
- ``environments``, ``tests``: the fingerprints and measurement identities seen.
- ``measurements``: which test ran in which run and environment, with its verdict.
- ``series`` + ``metric_values``: the metrics as a long table, one row per run, test,
  environment and metric name, so a metric added later needs no migration. The view
  ``metrics`` joins them back to ``(run_id, commit_sha, test_id, name, environment_key,
  metric, value, status)`` for anyone who queries the file with ``sqlite3``.

Concurrency: WAL mode, a busy timeout, and every write in one ``BEGIN IMMEDIATE``
transaction, so two jobs appending at once both land and a reader never sees half a run.
A new file is built under a temporary name and linked into place, so an existing empty
file is never one of ours half-made: it is refused, like a file that is not an SQLite
database, belongs to another program, has a newer schema or fails the integrity check
(:data:`CHECKED_TABLES`); such a file raises :class:`HistoryError` and is never modified
or replaced. Reads work where the file cannot be written (a read-only mount or folder).

Identity: a measurement is ``(test_id, name)``, kept apart as the baseline keeps it (a
node id may contain ``::``, so the joined ``key`` is for display and search only).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

from ..results import RunResults
from .metrics import measurement_metrics

#: Version of the database layout; :data:`MIGRATIONS` reaches it from any older version.
SCHEMA_VERSION = 1
#: ``PRAGMA application_id`` of a perfguard history ("pfgh").
APPLICATION_ID = 0x70666768
DEFAULT_HISTORY = Path(".perfguard") / "history.sqlite"
#: How long a writer waits for another writer's transaction before giving up.
BUSY_TIMEOUT_SECONDS = 60.0

_SQLITE_HEADER = b"SQLite format 3\x00"

#: Tables checked with ``PRAGMA quick_check(table)`` each time the file is opened: the
#: small ones that every other row points into (a few ms for 10,000 runs). The two bulk
#: tables are left out: a full check costs about 0.8 s per 10,000 runs x 50 tests, and
#: damage to their pages surfaces as "malformed" when a query reaches it.
CHECKED_TABLES = ("runs", "tests", "environments", "series")

_CORRUPT_HINT = ("perfguard leaves it as it is: restore it from a backup or CI cache, or "
                 "move it aside to start a new history")

#: ``MIGRATIONS[n]`` takes a database from version ``n - 1`` to version ``n``.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            commit_sha TEXT NOT NULL,
            branch TEXT NOT NULL,
            dirty INTEGER NOT NULL CHECK (dirty IN (0, 1)),
            created TEXT NOT NULL,   -- when the run finished, ISO-8601 UTC
            recorded TEXT NOT NULL,  -- when it was appended here
            tool_version TEXT NOT NULL,
            source TEXT NOT NULL,    -- 'pytest' or the results file(s) it came from
            fingerprint TEXT NOT NULL UNIQUE  -- sha256 of commit + results: no double adds
        )""",
        "CREATE INDEX runs_by_time ON runs (created, id)",
        "CREATE INDEX runs_by_commit ON runs (commit_sha)",
        """CREATE TABLE environments (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,
            label TEXT NOT NULL,
            fields TEXT NOT NULL     -- the Environment as JSON
        )""",
        """CREATE TABLE tests (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL,       -- node id, or node id::name
            test_id TEXT NOT NULL,
            name TEXT NOT NULL,
            UNIQUE (test_id, name)
        )""",
        "CREATE INDEX tests_by_key ON tests (key)",
        """CREATE TABLE measurements (
            run INTEGER NOT NULL REFERENCES runs (id),
            test INTEGER NOT NULL REFERENCES tests (id),
            environment INTEGER NOT NULL REFERENCES environments (id),
            status TEXT NOT NULL,    -- the verdict: regressed, improved, new, unchanged, ...
            train INTEGER NOT NULL,
            PRIMARY KEY (run, test, environment)
        ) WITHOUT ROWID""",
        """CREATE TABLE series (
            id INTEGER PRIMARY KEY,
            test INTEGER NOT NULL REFERENCES tests (id),
            environment INTEGER NOT NULL REFERENCES environments (id),
            metric TEXT NOT NULL,
            UNIQUE (test, environment, metric)
        )""",
        # No declared type on value: integers stay integers, timings stay floats.
        """CREATE TABLE metric_values (
            series INTEGER NOT NULL REFERENCES series (id),
            run INTEGER NOT NULL REFERENCES runs (id),
            value NOT NULL,
            PRIMARY KEY (series, run)
        ) WITHOUT ROWID""",
        """CREATE VIEW metrics AS
            SELECT v.run AS run_id, r.commit_sha, r.branch, r.created, t.test_id, t.name,
                   t.key AS test_key, e.key AS environment_key, s.metric, v.value, m.status
            FROM metric_values v
            JOIN series s ON s.id = v.series
            JOIN runs r ON r.id = v.run
            JOIN tests t ON t.id = s.test
            JOIN environments e ON e.id = s.environment
            LEFT JOIN measurements m
                ON m.run = v.run AND m.test = s.test AND m.environment = s.environment""",
    ),
}


class HistoryError(ValueError):
    """A history database that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class RunInfo:
    """What identifies a run in the history besides its measurements."""

    commit: str
    branch: str = ""
    dirty: bool = False
    #: ISO-8601 time the run finished; the results file's ``created`` when empty.
    created: str = ""
    source: str = "pytest"


@dataclass(frozen=True)
class Run:
    id: int
    commit: str
    branch: str
    dirty: bool
    created: str

    @property
    def short(self) -> str:
        """Short commit, ``-dirty`` appended for a run of an uncommitted tree."""
        return short_commit(self.commit, self.dirty)


#: A measurement's identity, ``(test_id, name)``, as the baseline keys it.
Identity = tuple[str, str]


@dataclass(frozen=True)
class TestRef:
    id: int
    #: ``test_id``, plus ``::name`` unless "default": for display and search only, since
    #: two measurements can share it (see the module docstring).
    key: str
    test_id: str
    name: str

    @property
    def identity(self) -> Identity:
        return (self.test_id, self.name)


@dataclass(frozen=True)
class Series:
    id: int
    test: TestRef
    environment_key: str
    environment_label: str
    metric: str


#: One value of one series as SQLite returns it: (run id, commit, branch, dirty, created,
#: value). Plain tuples: ``show`` reads 100,000 of them and objects would triple its time.
Row = tuple[int, str, str, int, str, float]


def run_of(row: Row) -> Run:
    return Run(row[0], row[1], row[2], bool(row[3]), row[4])


@dataclass(frozen=True)
class AppendResult:
    run_id: int
    #: False when the same results were already recorded for the same commit.
    added: bool
    measurements: int


_HEX_DIGITS = "0123456789abcdefABCDEF"


def short_commit(commit: str, dirty: bool | int) -> str:
    """``0123456`` for a full SHA (other names as they are), ``-dirty`` for a dirty tree."""
    text = commit[:7] if len(commit) >= 7 and not commit.strip(_HEX_DIGITS) else commit
    return text + "-dirty" if dirty else text


def utc_iso(text: str) -> str:
    """``text`` (any ISO-8601 time) as UTC with seconds, so that text order is time order."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise HistoryError(f"not an ISO-8601 time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class HistoryStore:
    """An open history database. Use :meth:`open`; close it (or use ``with``) when done."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection

    # -- opening -----------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, *, create: bool = False) -> HistoryStore:
        """Open (with ``create``: create or upgrade) the database at ``path``.

        Raises :class:`HistoryError` for a missing file (without ``create``), a file that is
        not a perfguard history, a corrupt one, or one written by a newer perfguard. The
        file is checked before SQLite opens it, and nothing is written to a file that
        failed a check.
        """
        path = Path(path)
        _check_file(path, create=create)
        if create:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise HistoryError(f"{path}: cannot create its folder: "
                                   f"{exc.strerror or exc}") from exc
            if not path.exists():
                _create(path)
            elif not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
                # SQLite would say "unable to open database file" (its WAL index cannot be
                # made here), which does not say why.
                raise HistoryError(f"{path}: cannot record here: the file or its folder is "
                                   "read-only (reading it works)")
        try:
            connection = _connect(path, create=create)
        except sqlite3.Error as exc:
            raise HistoryError(f"{path}: cannot open the history database: {exc}") from exc
        store = cls(path, connection)
        try:
            store._prepare(create=create)
        except BaseException:
            connection.close()
            raise
        return store

    def _prepare(self, *, create: bool) -> None:
        version, app_id, tables = self._header()
        self._check_identity(version, app_id, tables)
        if not create and version == 0:
            raise HistoryError(f"{self.path}: an empty history database (no run recorded yet)")
        if create or version < SCHEMA_VERSION:
            with self._guard("cannot switch the history database to WAL mode"):
                self._db.execute("PRAGMA journal_mode=WAL")
        if version < SCHEMA_VERSION:
            self._migrate()
        self._check_integrity()
        with self._guard("cannot read the history database"):
            self._db.execute("PRAGMA foreign_keys=ON")

    def _check_integrity(self) -> None:
        """Refuse a file whose small tables are damaged (see :data:`CHECKED_TABLES`): a
        damaged ``runs`` page otherwise reads as wrong rows, or fails an append with
        "FOREIGN KEY constraint failed"."""
        if sqlite3.sqlite_version_info < (3, 33, 0):
            return  # quick_check(TABLE) is SQLite 3.33+; older ones check nothing here
        with self._guard("cannot check the history database"):
            for table in CHECKED_TABLES:
                report = "\n".join(row[0] for row in
                                   self._db.execute(f"PRAGMA quick_check({table})"))
                if report != "ok":
                    problems = [line for line in report.splitlines()
                                if line and not line.startswith("***")] or [report]
                    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                    self._corrupt(f"table {table}: {problems[0]}{more}")

    def _corrupt(self, problem: str) -> NoReturn:
        raise HistoryError(f"{self.path}: the history database is corrupt: {problem} "
                           f"({_CORRUPT_HINT})")

    def _header(self) -> tuple[int, int, list[str]]:
        with self._guard("cannot read the history database"):
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            app_id = int(self._db.execute("PRAGMA application_id").fetchone()[0])
            tables = [row[0] for row in self._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return version, app_id, tables

    def _check_identity(self, version: int, app_id: int, tables: list[str]) -> None:
        if app_id not in (0, APPLICATION_ID) or (app_id == 0 and (version or tables)):
            shown = ", ".join(tables[:6]) or "none"
            raise HistoryError(
                f"{self.path}: an SQLite database, but not a perfguard history (application "
                f"id {app_id:#x}, tables: {shown}); perfguard leaves it alone: point --db "
                "(or --perfguard-history) at another file"
            )
        if version > SCHEMA_VERSION:
            raise HistoryError(
                f"{self.path}: history schema {version} is newer than this perfguard "
                f"understands ({SCHEMA_VERSION}); upgrade pytest-torch-perfguard"
            )

    def _migrate(self) -> None:
        """Bring the schema to :data:`SCHEMA_VERSION` in one transaction (re-checked inside
        it, so two processes creating the same new file do not both create it)."""
        with self._guard("cannot upgrade the history database"):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                version, app_id, tables = self._header()
                self._check_identity(version, app_id, tables)
                for target in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in MIGRATIONS[target]:
                        self._db.execute(statement)
                if version < SCHEMA_VERSION:
                    self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
                    self._db.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")
                self._db.execute("COMMIT")
            except BaseException:
                _rollback(self._db)
                raise

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _guard(self, what: str) -> _Guard:
        return _Guard(self.path, what)

    # -- writing -----------------------------------------------------------------------

    def append(self, results: RunResults, info: RunInfo) -> AppendResult:
        """Record ``results`` as one run at ``info.commit``, all of it or nothing.

        The same results recorded twice for the same commit (a retried CI step) are
        recognised by their fingerprint and not added again.
        """
        if not info.commit.strip():
            raise HistoryError("a run needs a commit (give --commit SHA)")
        created = utc_iso(info.created or results.created or now_iso())
        fingerprint = hashlib.sha256(
            f"{info.commit}\0{info.dirty}\0".encode() + results.dumps().encode()
        ).hexdigest()
        db = self._db
        with self._guard("cannot append the run"):
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT id FROM runs WHERE fingerprint = ?",
                                 (fingerprint,)).fetchone()
                if row is not None:
                    db.execute("ROLLBACK")
                    return AppendResult(int(row[0]), added=False, measurements=0)
                run_id = int(db.execute(
                    "INSERT INTO runs (commit_sha, branch, dirty, created, recorded, "
                    "tool_version, source, fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (info.commit.strip(), info.branch, int(info.dirty), created, now_iso(),
                     results.tool_version, info.source, fingerprint),
                ).lastrowid or 0)
                measured, values = self._rows(results, run_id)
                db.executemany(
                    "INSERT OR REPLACE INTO measurements (run, test, environment, status, "
                    "train) VALUES (?, ?, ?, ?, ?)", measured)
                db.executemany(
                    "INSERT OR REPLACE INTO metric_values (series, run, value) VALUES (?, ?, ?)",
                    values)
                db.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                # Every id written here was just read or inserted: a dangling one means
                # the file's pages do not say what was written to them.
                _rollback(db)
                self._corrupt(f"{exc} while appending (an index and its table disagree)")
            except BaseException:
                _rollback(db)
                raise
        return AppendResult(run_id, added=True, measurements=len(measured))

    def _rows(self, results: RunResults, run_id: int
              ) -> tuple[list[tuple[int, int, int, str, int]], list[tuple[int, int, float]]]:
        envs: dict[str, int] = {}
        tests: dict[tuple[str, str], int] = {}
        series: dict[tuple[int, int, str], int] = {}
        measured: list[tuple[int, int, int, str, int]] = []
        values: list[tuple[int, int, float]] = []
        for entry in results.entries:
            m = entry.measurement
            env_key = m.environment.key()
            if env_key not in envs:
                envs[env_key] = self._id_of(
                    "environments", {"key": env_key},
                    {"label": m.environment.label(),
                     "fields": json.dumps(asdict(m.environment), sort_keys=True)})
            env_id = envs[env_key]
            identity = (m.test_id, m.name)
            if identity not in tests:
                tests[identity] = self._id_of("tests", {"test_id": m.test_id, "name": m.name},
                                              {"key": m.key})
            test_id = tests[identity]
            measured.append((run_id, test_id, env_id, entry.verdict.status, int(m.train)))
            for metric, value in measurement_metrics(m).items():
                ident = (test_id, env_id, metric)
                if ident not in series:
                    series[ident] = self._id_of(
                        "series", {"test": test_id, "environment": env_id, "metric": metric}, {})
                values.append((series[ident], run_id, value))
        return measured, values

    def _id_of(self, table: str, unique: dict[str, Any], extra: dict[str, Any]) -> int:
        """The id of the row with these unique columns, inserted (with ``extra``) if new."""
        where = " AND ".join(f"{column} = ?" for column in unique)
        row = self._db.execute(f"SELECT id FROM {table} WHERE {where}",
                               tuple(unique.values())).fetchone()
        if row is not None:
            return int(row[0])
        columns = {**unique, **extra}
        marks = ", ".join("?" for _ in columns)
        cursor = self._db.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
            tuple(columns.values()))
        return int(cursor.lastrowid or 0)

    # -- reading -----------------------------------------------------------------------

    def run_count(self) -> int:
        with self._guard("cannot read the history database"):
            return int(self._db.execute("SELECT count(*) FROM runs").fetchone()[0])

    def tests_matching(self, text: str, name: str | None = None) -> list[TestRef]:
        """Tests whose key is ``text``; else whose key ends with or contains it. With
        ``name``: measurements of that name whose node id is (ends with, contains) ``text``,
        which tells ``t.py::test_c[x]`` named ``y[z]`` from ``t.py::test_c[x]::y[z]``."""
        column = "key" if name is None else "test_id"
        where = "" if name is None else " WHERE name = ?"
        params: tuple[str, ...] = () if name is None else (name,)
        with self._guard("cannot read the history database"):
            every = self._db.execute(
                f"SELECT id, key, test_id, name, {column} FROM tests{where} ORDER BY key, name",
                params).fetchall()
        rows = ([row for row in every if row[4] == text]
                or [row for row in every if row[4].endswith(text)]
                or [row for row in every if text in row[4]])
        return [TestRef(int(r[0]), r[1], r[2], r[3]) for r in rows]

    def test_keys(self) -> list[str]:
        with self._guard("cannot read the history database"):
            return [row[0] for row in self._db.execute("SELECT key FROM tests ORDER BY key")]

    def series_of(self, test: TestRef, metric: str | None = None) -> list[Series]:
        """The series of ``test`` (of one metric, or all), newest environment first."""
        query = ("SELECT s.id, s.metric, e.key, e.label, "
                 "(SELECT max(run) FROM metric_values v WHERE v.series = s.id) AS last "
                 "FROM series s JOIN environments e ON e.id = s.environment WHERE s.test = ?")
        params: tuple[Any, ...] = (test.id,)
        if metric is not None:
            query += " AND s.metric = ?"
            params += (metric,)
        query += " ORDER BY last DESC, s.metric"
        with self._guard("cannot read the history database"):
            rows = self._db.execute(query, params).fetchall()
        return [Series(int(r[0]), test, r[2], r[3], r[1]) for r in rows]

    _ROW = "r.id, r.commit_sha, r.branch, r.dirty, r.created, v.value"

    def rows(self, series: Series, *, branch: str | None = None) -> list[Row]:
        """Every value of one series, newest run first (by finishing time, then id)."""
        # Read the series' contiguous primary-key range, then sort: faster than walking
        # the runs by time and looking each value up.
        query = (f"SELECT {self._ROW} FROM metric_values v CROSS JOIN runs r ON r.id = v.run "
                 "WHERE v.series = ?" + (" AND r.branch = ?" if branch else "")
                 + " ORDER BY r.created DESC, r.id DESC")
        params: tuple[Any, ...] = (series.id, branch) if branch else (series.id,)
        with self._guard("cannot read the history database"):
            return self._db.execute(query, params).fetchall()

    @staticmethod
    def _run_filter(where: list[str], params: list[Any], *, branch: str | None, clean: bool
                    ) -> tuple[list[str], list[Any]]:
        """SQL conditions on the run: only clean commits (not dirty, not "unknown"), one branch."""
        if clean:
            where.append("r.dirty = 0 AND r.commit_sha != 'unknown'")
        if branch:
            where.append("r.branch = ?")
            params.append(branch)
        return where, params

    def find_row(self, series: Series, *, branch: str | None = None, clean: bool = True,
                 value_not: float | None = None, after: Row | None = None,
                 oldest: bool = False) -> Row | None:
        """The newest (or ``oldest``) value of a series matching the conditions: from a
        clean commit, different from ``value_not``, recorded after the row ``after``.
        SQLite walks the runs by time and stops at the first match."""
        where, params = self._run_filter(["1"], [series.id], branch=branch, clean=clean)
        if value_not is not None:
            where.append("v.value != ?")
            params.append(value_not)
        if after is not None:
            where.append("(r.created, r.id) > (?, ?)")
            params += [after[4], after[0]]
        order = "ASC" if oldest else "DESC"
        query = (f"SELECT {self._ROW} FROM runs r JOIN metric_values v ON v.series = ? "
                 f"AND v.run = r.id WHERE {' AND '.join(where)} "
                 f"ORDER BY r.created {order}, r.id {order} LIMIT 1")
        with self._guard("cannot read the history database"):
            row = self._db.execute(query, params).fetchone()
        return row

    def count_rows(self, series: Series, *, since: Row | None = None,
                   branch: str | None = None, clean: bool = True) -> int:
        """How many values a series has (from ``since`` on)."""
        where, params = self._run_filter(["v.series = ?"], [series.id], branch=branch,
                                         clean=clean)
        if since is not None:
            where.append("(r.created, r.id) >= (?, ?)")
            params += [since[4], since[0]]
        query = ("SELECT count(*) FROM metric_values v CROSS JOIN runs r ON r.id = v.run "
                 f"WHERE {' AND '.join(where)}")
        with self._guard("cannot read the history database"):
            return int(self._db.execute(query, params).fetchone()[0])

    def runs_between(self, older: Run, newer: Run, *, branch: str | None = None) -> list[Run]:
        """Clean runs recorded strictly between two runs (in run order)."""
        query = ("SELECT id, commit_sha, branch, dirty, created FROM runs "
                 "WHERE (created, id) > (?, ?) AND (created, id) < (?, ?) AND dirty = 0"
                 + (" AND branch = ?" if branch else "") + " ORDER BY created, id")
        params: tuple[Any, ...] = (older.created, older.id, newer.created, newer.id)
        if branch:
            params += (branch,)
        with self._guard("cannot read the history database"):
            return [Run(int(r[0]), r[1], r[2], bool(r[3]), r[4])
                    for r in self._db.execute(query, params)]

    def recent_runs(self, limit: int, *, branch: str | None = None) -> list[Run]:
        """The last ``limit`` runs (0: all), oldest first."""
        query = "SELECT id, commit_sha, branch, dirty, created FROM runs"
        params: tuple[Any, ...] = ()
        if branch:
            query += " WHERE branch = ?"
            params += (branch,)
        query += " ORDER BY created DESC, id DESC"
        if limit > 0:
            query += f" LIMIT {int(limit)}"
        with self._guard("cannot read the history database"):
            rows = self._db.execute(query, params).fetchall()
        return [Run(int(r[0]), r[1], r[2], bool(r[3]), r[4]) for r in reversed(rows)]

    def window(self, runs: Sequence[Run]) -> Window:
        """Every measurement and metric value of ``runs``, for reports."""
        run_ids = [run.id for run in runs]
        by_id = {run.id: run for run in runs}
        window = Window(runs=list(runs))
        if not run_ids:
            return window
        with self._guard("cannot read the history database"):
            self._db.execute("CREATE TEMP TABLE IF NOT EXISTS report_runs "
                             "(id INTEGER PRIMARY KEY)")
            self._db.execute("DELETE FROM report_runs")
            self._db.executemany("INSERT INTO report_runs (id) VALUES (?)",
                                 [(i,) for i in run_ids])
            rows = self._db.execute(
                "SELECT m.run, t.id, t.key, t.test_id, t.name, e.key, e.label, m.status "
                "FROM report_runs w JOIN measurements m ON m.run = w.id "
                "JOIN tests t ON t.id = m.test JOIN environments e ON e.id = m.environment"
            ).fetchall()
            pairs: dict[tuple[int, str], tuple[TestRef, str]] = {}
            for run_id, test_id, key, node, name, env_key, env_label, status in rows:
                ref = TestRef(int(test_id), key, node, name)
                pairs[(ref.id, env_key)] = (ref, env_label)
                window.statuses[(ref.identity, env_key, int(run_id))] = status
            series_rows = self._db.execute(
                "SELECT s.id, s.test, e.key, s.metric FROM series s "
                "JOIN environments e ON e.id = s.environment "
                "WHERE s.test IN (SELECT DISTINCT m.test FROM report_runs w "
                "JOIN measurements m ON m.run = w.id)").fetchall()
            for series_id, test_id, env_key, metric in series_rows:
                if (int(test_id), env_key) not in pairs:
                    continue
                ref, label = pairs[(int(test_id), env_key)]
                window.labels[env_key] = label
                values = window.values.setdefault((ref.identity, env_key), {}).setdefault(
                    metric, {})
                for run_id, value in self._db.execute(
                    "SELECT run, value FROM metric_values WHERE series = ? AND run IN "
                    "(SELECT id FROM report_runs)", (int(series_id),)):
                    if int(run_id) in by_id:
                        values[int(run_id)] = value
            for ref, _label in pairs.values():
                window.tests[ref.identity] = ref
        return window


@dataclass
class Window:
    """What a report needs about a range of runs, read in a few queries."""

    runs: list[Run]
    #: (identity, environment key) -> metric -> run id -> value.
    values: dict[tuple[Identity, str], dict[str, dict[int, float]]] = field(
        default_factory=dict)
    #: (identity, environment key, run id) -> verdict status.
    statuses: dict[tuple[Identity, str, int], str] = field(default_factory=dict)
    #: environment key -> label.
    labels: dict[str, str] = field(default_factory=dict)
    #: identity -> the test.
    tests: dict[Identity, TestRef] = field(default_factory=dict)


def _rollback(db: sqlite3.Connection) -> None:
    """Roll back if SQLite has not already done so (it does after some errors)."""
    if db.in_transaction:
        db.execute("ROLLBACK")


class _Guard:
    """Turn SQLite's errors into :class:`HistoryError` naming the file."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None or not isinstance(exc, sqlite3.Error):
            return
        message = str(exc)
        if "locked" in message or "busy" in message:
            hint = (f"another process held it for more than {BUSY_TIMEOUT_SECONDS:.0f} s; "
                    "try again")
        elif "readonly" in message:
            hint = "the file or its folder is read-only (reading it works)"
        elif isinstance(exc, sqlite3.DatabaseError) and (
            "malformed" in message or "not a database" in message or "corrupt" in message
        ):
            hint = f"the file is corrupt; {_CORRUPT_HINT}"
        else:
            hint = ""
        raise HistoryError(f"{self.path}: {self.what}: {message}"
                           + (f" ({hint})" if hint else "")) from exc


def _check_file(path: Path, *, create: bool) -> None:
    """Refuse, before SQLite touches it, a path that is not an SQLite file."""
    if not path.exists():
        if create:
            return
        raise HistoryError(
            f"{path}: no history database here; record runs with "
            "`pytest --perfguard --perfguard-history-record` or `perfguard history add`"
        )
    if not path.is_file():
        raise HistoryError(f"{path}: not a file")
    try:
        with path.open("rb") as handle:
            header = handle.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise HistoryError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if not header:
        raise HistoryError(
            f"{path}: not a perfguard history database (empty file); perfguard only "
            "starts a history in a file it creates: delete it, or point --db (or "
            "--perfguard-history) at another path"
        )
    if header != _SQLITE_HEADER:
        raise HistoryError(
            f"{path}: not an SQLite database (it starts with {header[:8]!r}); perfguard "
            "never replaces it: restore it, or move it aside to start a new history"
        )


def _connect(path: Path, *, create: bool) -> sqlite3.Connection:
    """A connection to ``path``; for reading (not ``create``) one that works where nothing
    can be written: a WAL database needs its ``-shm`` index, which SQLite cannot create in a
    read-only folder or mount ("unable to open database file", "attempt to write a readonly
    database"). There it is opened ``immutable``: safe, since nobody can write there."""
    connection = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_SECONDS,
                                 isolation_level=None, check_same_thread=True)
    if create:
        return connection
    try:
        connection.execute("PRAGMA user_version").fetchone()
        return connection
    except sqlite3.DatabaseError as exc:
        if "unable to open" not in str(exc) and "readonly" not in str(exc):
            return connection  # not about writing: reported by the checks that follow
        connection.close()
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise HistoryError(
            f"{path}: cannot read it where it is: {wal.name} beside it holds changes not yet "
            "in the database, and SQLite cannot open them read-only here; copy both files "
            "to a writable folder and read the copy"
        )
    return sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro&immutable=1", uri=True,
                           timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                           check_same_thread=True)


def _create(path: Path) -> None:
    """Build an empty history beside ``path`` and link it into place, so that the file at
    ``path`` is never a half-made one: two processes creating it at once both end up
    using the first one's file, and an empty file found there is nobody's history."""
    temp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.new")
    try:
        try:
            db = sqlite3.connect(str(temp), isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("BEGIN IMMEDIATE")
                for target in range(1, SCHEMA_VERSION + 1):
                    for statement in MIGRATIONS[target]:
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
                db.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")
                db.execute("COMMIT")
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise HistoryError(f"{path}: cannot create the history database: {exc}") from exc
        try:
            os.link(temp, path)
        except FileExistsError:
            pass  # another process created it first: use that one
        except OSError:
            # No hard links on this file system: let SQLite create the file in place.
            pass
    finally:
        for leftover in (temp, temp.with_name(temp.name + "-wal"),
                         temp.with_name(temp.name + "-shm")):
            leftover.unlink(missing_ok=True)
