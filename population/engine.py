"""``iport-cds evaluate --population DIR``: every patient in a Bulk FHIR NDJSON export.

Bounded memory, all cores, no sort of the input, the main process only merging and writing:

1. **Index** — the files are cut at line ends into pieces, and the worker processes index
   each piece into its own SQLite file: for every line, the patient it belongs to and where
   it is (file, byte offset, length) (other resources by ``subject`` / ``patient``;
   ``Medication`` by its own id, for ``medicationReference``), and for each ``Patient`` line
   who the person is (``population.cohort``). The main process merges the pieces in order
   into one temporary SQLite index. Only the index is stored, never the resources.
2. **People** — Patient records de-duplicated by NHS number (the most recent registration
   speaking for the person; ``people_of``), in SQLite; ids that records name without a
   Patient are counted, not evaluated.
3. **Evaluate** — people stream out of the index in Patient-id order, in chunks, to the
   workers. Each worker loads the value sets and the policies once, reads each person's lines
   back by offset (every merged id's records as theirs), evaluates them with the pure core,
   and returns the chunk's CSV lines and its share of the tally. At most ``4 × workers``
   chunks are in flight; the main process writes them in order and adds up their counts.
4. **Write** — one CSV row per person and policy (every policy in one pass): ``patient_ref``
   (the Patient id that speaks for the person), the policy id and version, the evaluation
   date, ``cohort`` (``in`` or why not), age band, sex, place, practice, deprivation quintile,
   latest HbA1c and its date, each technology's use (insulin pump, real-time CGM,
   intermittently scanned CGM, hybrid closed loop, i-Port: in use / held / not current / no),
   ``outcome``, its ``band`` (already using / meets / potentially eligible / data missing /
   does not meet), the policy's own technology state, ``pathway`` and one column per
   criterion (``met`` / ``not-met`` / ``unknown``; empty where the policy has no such
   criterion). Counts go to stderr; the tally (population/uptake.py) feeds the HTML report
   and the MeasureReport.
"""

from __future__ import annotations

import csv
import io
import multiprocessing
import os
import sqlite3
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple, TextIO, TypeVar

import orjson

import places
import spreadsheet
from facts.extract import classify
from places import lookups
from policy import Policy, PolicyError
from policy.decide import Core, load_core, read_record
from policy.loading import policy_names
from population import cohort
from population.errors import PopulationError
from population.progress import Progress
from population.uptake import (
    PERSON_COLUMNS,
    TECHNOLOGY_TYPES,
    PersonContext,
    UptakeTally,
    covered_systems,
    person_rows,
    technology_windows,
)
from valuesets import ValueSetError, ValueSetLibrary

try:
    import resource as _resource
except ImportError:  # pragma: no cover - not on Windows
    _resource = None  # type: ignore[assignment]

T = TypeVar("T")


def peak_rss_mb() -> float | None:
    """This process's own peak resident set size in MB (None where the OS does not say).

    Linux: ``VmHWM`` from /proc, because ``ru_maxrss`` survives exec and so would report a
    spawned worker's parent's peak instead of its own.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    if _resource is None:  # pragma: no cover
        return None
    kb = _resource.getrusage(_resource.RUSAGE_SELF).ru_maxrss  # pragma: no cover - not Linux
    return round(kb / 1024, 1)  # pragma: no cover


@dataclass
class PopulationSummary:
    patients: int = 0
    resources: int = 0
    files: int = 0
    skipped_lines: int = 0
    unassigned_resources: int = 0  # no patient reference (and not a Medication)
    # People are Patient records de-duplicated (population.cohort); these say what was merged
    # and what was left out, for the data-quality section.
    patient_records: int = 0
    repeated_patient_records: int = 0  # the same Patient id again: the most recent one is used
    merged_patients: int = 0  # Patient ids merged into another with the same NHS number
    no_patient_ids: int = 0  # patient ids that records name but the export has no Patient for
    no_patient_resources: int = 0  # the records naming them: counted, never people
    extract_date: str = ""
    extract_date_source: str = ""  # "the export's transactionTime", "--extract-date", ...
    evaluated_on: str = ""  # the day the criteria were judged as on (their time windows)
    codelists: list[dict[str, str]] = field(default_factory=list)  # id, title, version, url
    # Procedure / Device* records (and the first prescription of supplies): technology use
    # is measurable when there is any
    technology_resources: int = 0
    workers: int = 1
    index_seconds: float = 0.0
    evaluate_seconds: float = 0.0
    wall_seconds: float = 0.0
    peak_rss_main_mb: float | None = None
    peak_rss_worker_mb: float | None = None
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)  # by policy
    pathways: dict[str, dict[str, int]] = field(default_factory=dict)  # by policy
    bands: dict[str, dict[str, int]] = field(default_factory=dict)  # by policy
    skipped_examples: list[str] = field(default_factory=list)  # "file:line", never content
    tally: UptakeTally = field(default_factory=UptakeTally, repr=False)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        del out["tally"]
        out["figures"] = self.tally.figures_json()  # exact: the next run's --previous
        return out


Where = tuple[int, int, int]  # a line of the export: file number, byte offset, length


# -- index -----------------------------------------------------------------------------------
def _patient_of(resource: dict[str, Any]) -> str | None:
    if resource.get("resourceType") == "Patient":
        rid = resource.get("id")
        return rid if isinstance(rid, str) and rid else None
    for key in ("subject", "patient"):
        target = resource.get(key)
        ref = target.get("reference") if isinstance(target, dict) else None
        if isinstance(ref, str):
            parts = ref.split("/_history")[0].rstrip("/").split("/")
            if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1]:
                return parts[-1]
            return None
    return None


def ndjson_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise PopulationError(f"{directory}: not a folder of NDJSON files")
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() == ".ndjson" and p.is_file())
    if not files:
        raise PopulationError(f"{directory}: no *.ndjson files (a Bulk FHIR export's output)")
    return files


PIECE_BYTES = 4 << 20  # the most of one file a single indexing task reads
SMALLEST_PIECE = 1 << 20  # and the least, where a file is that long
INSERT_BATCH = 20_000
SKIPPED_EXAMPLES = 5


@dataclass(frozen=True)
class Piece:
    """A run of whole lines of one file, indexed as one task into its own SQLite file."""

    number: int  # its place in the export: the files in order, each from its start
    file_no: int
    path: str
    start: int  # byte offsets: the first line's start, the end of the last line
    end: int


def pieces_of(files: Sequence[Path], workers: int) -> list[Piece]:
    """The files cut at line ends into pieces, enough of them to keep every worker busy."""
    total = sum(f.stat().st_size for f in files)
    size = max(SMALLEST_PIECE, min(PIECE_BYTES, total // (4 * workers) + 1))
    out: list[Piece] = []
    for file_no, path in enumerate(files):
        length = path.stat().st_size
        with path.open("rb") as fh:
            start = 0
            while start < length:
                end = min(start + size, length)
                if end < length:
                    fh.seek(end)
                    end += len(fh.readline())
                out.append(Piece(len(out), file_no, str(path), start, end))
                start = end
    return out


@dataclass
class PieceCounts:
    """What indexing one piece found; line numbers count from the piece's first line (1)."""

    lines: int = 0
    resources: int = 0
    patients: int = 0  # Patient records
    unassigned: int = 0
    skipped: int = 0
    skipped_lines: list[int] = field(default_factory=list)  # the first few
    technology: int = 0  # Procedure / Device* records
    first_technology: int | None = None  # the line of the first


def _create_tables(conn: sqlite3.Connection, merged: bool) -> None:
    """A piece's tables, or (``merged``) the index's: one Medication and one Patient record
    per id."""
    key, rowid = (" PRIMARY KEY", " WITHOUT ROWID") if merged else ("", "")
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("CREATE TABLE idx (pid TEXT NOT NULL, file INTEGER, off INTEGER, len INTEGER)")
    conn.execute(f"CREATE TABLE meds (ref TEXT{key}, file INTEGER, off INTEGER, len INTEGER)")
    conn.execute(
        f"CREATE TABLE patients (pid TEXT NOT NULL{key}, key TEXT NOT NULL, rank TEXT NOT NULL,"
        f" file INTEGER, off INTEGER, len INTEGER){rowid}"
    )
    # Prescriptions and medicines before the first technology record of their piece: one of
    # them may be of a technology's supplies (``_Index.finish``).
    conn.execute(
        "CREATE TABLE supplies (piece INTEGER, line INTEGER, file INTEGER, off INTEGER,"
        " len INTEGER)"
    )


def index_piece(piece: Piece, shard: Path) -> PieceCounts:
    """Index every line of ``piece`` into the SQLite file ``shard``: the records of each
    patient but their Patient (``idx``), Medications by id (``meds``), for each Patient line
    who the person is (``patients``), and where the prescriptions and medicines before the
    piece's first technology record are (``supplies``)."""
    counts = PieceCounts()
    rows: list[tuple[str, int, int, int]] = []
    meds: list[tuple[str, int, int, int]] = []
    pats: list[tuple[str, str, str, int, int, int]] = []
    supplies: list[tuple[int, int, int, int, int]] = []
    offset = piece.start
    lineno = 0
    with open(piece.path, "rb") as fh:
        fh.seek(piece.start)
        for lineno, line in enumerate(fh, 1):
            size = len(line)
            where = (piece.file_no, offset, size)
            offset += size
            if line.strip():
                _index_line(line, (piece.number, lineno), where, counts, rows, meds, pats, supplies)
            if offset >= piece.end:
                break
    counts.lines = lineno
    conn = sqlite3.connect(shard)
    try:
        _create_tables(conn, merged=False)
        conn.executemany("INSERT INTO idx VALUES (?,?,?,?)", rows)
        conn.executemany("INSERT INTO meds VALUES (?,?,?,?)", meds)
        conn.executemany("INSERT INTO patients VALUES (?,?,?,?,?,?)", pats)
        conn.executemany("INSERT INTO supplies VALUES (?,?,?,?,?)", supplies)
        conn.commit()
    finally:
        conn.close()
    return counts


def _index_line(
    line: bytes,
    at: tuple[int, int],
    where: Where,
    counts: PieceCounts,
    rows: list[tuple[str, int, int, int]],
    meds: list[tuple[str, int, int, int]],
    pats: list[tuple[str, str, str, int, int, int]],
    supplies: list[tuple[int, int, int, int, int]],
) -> None:
    """One line (``at``: piece and line number) into the piece's lists and counts."""
    lineno = at[1]
    try:
        res = orjson.loads(line)
    except orjson.JSONDecodeError:
        res = None
    if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
        counts.skipped += 1
        if len(counts.skipped_lines) < SKIPPED_EXAMPLES:
            counts.skipped_lines.append(lineno)
        return
    rtype = res["resourceType"]
    if rtype in TECHNOLOGY_TYPES:
        counts.technology += 1
        if counts.first_technology is None:
            counts.first_technology = lineno
    elif rtype in SUPPLY_TYPES and counts.first_technology is None:
        supplies.append((*at, *where))
    pid = _patient_of(res)
    if pid is not None:
        counts.resources += 1
        if rtype == "Patient":
            counts.patients += 1
            pats.append((pid, cohort.identity_key(pid, res), cohort.recency(res), *where))
        else:
            rows.append((pid, *where))
    elif rtype == "Medication" and isinstance(res.get("id"), str):
        meds.append((f"Medication/{res['id']}", *where))
        counts.resources += 1
    else:
        counts.unassigned += 1


class _Index:
    """The pieces' SQLite files merged, in the export's order, into one index, and what they
    found added up as one pass over the files would have."""

    def __init__(
        self,
        db_path: Path,
        files: Sequence[Path],
        summary: PopulationSummary,
        vsl: ValueSetLibrary | None,
    ) -> None:
        self.conn = sqlite3.connect(db_path, isolation_level=None)
        _create_tables(self.conn, merged=True)
        self.files = files
        self.summary = summary
        self.vsl = vsl
        self.lines_before = [0] * len(files)  # lines of each file in the pieces merged so far
        self.technology = 0
        self.first_technology: tuple[int, int] | None = None  # (piece, line)

    def merge(self, piece: Piece, shard: Path, counts: PieceCounts) -> None:
        s = self.summary
        s.resources += counts.resources
        s.unassigned_resources += counts.unassigned
        s.skipped_lines += counts.skipped
        s.patient_records += counts.patients
        name = self.files[piece.file_no].name
        before = self.lines_before[piece.file_no]
        for lineno in counts.skipped_lines:
            if len(s.skipped_examples) < SKIPPED_EXAMPLES:
                s.skipped_examples.append(f"{name}:{before + lineno}")
        self.lines_before[piece.file_no] += counts.lines
        self.technology += counts.technology
        earlier = self.first_technology  # a technology record in an earlier piece
        if self.first_technology is None and counts.first_technology is not None:
            self.first_technology = (piece.number, counts.first_technology)
        self.conn.execute("ATTACH DATABASE ? AS piece", (str(shard),))
        try:
            self.conn.execute("BEGIN")
            if earlier is None:  # else none of this piece's supplies can come first
                self.conn.execute("INSERT INTO supplies SELECT * FROM piece.supplies")
            self.conn.execute("INSERT INTO idx SELECT * FROM piece.idx")
            # the last record of a Medication id in the export is the one read
            self.conn.execute("INSERT OR REPLACE INTO meds SELECT * FROM piece.meds ORDER BY rowid")
            # each Patient id's most recent record: the largest (rank, file, offset)
            self.conn.execute(
                "INSERT INTO patients SELECT * FROM piece.patients WHERE true"
                " ON CONFLICT (pid) DO UPDATE SET key = excluded.key, rank = excluded.rank,"
                " file = excluded.file, off = excluded.off, len = excluded.len"
                " WHERE (excluded.rank, excluded.file, excluded.off)"
                " > (patients.rank, patients.file, patients.off)"
            )
            self.conn.execute("COMMIT")
        finally:
            self.conn.execute("DETACH DATABASE piece")
        shard.unlink()

    def finish(self) -> None:
        self.summary.technology_resources = self.technology + int(self._supplies_first())
        self.conn.execute("CREATE INDEX idx_pid ON idx (pid)")
        self.conn.close()

    def _supplies_first(self) -> bool:
        """Whether a record of a technology's supplies (sensors, pods) comes before the first
        technology record: it then counts as technology data, and only it (a pass over the
        files stops looking for supplies at the first of either). Only the prescriptions
        and medicines before that record are read again, and classified, here."""
        if self.vsl is None:
            return False
        first = self.first_technology
        rows = self.conn.execute("SELECT * FROM supplies ORDER BY piece, line")
        for piece_no, lineno, file_no, off, size in rows:
            if first is not None and (piece_no, lineno) > first:
                return False
            with self.files[file_no].open("rb") as fh:
                fh.seek(off)
                res = orjson.loads(fh.read(size))
            if _names_technology_supplies(res, self.vsl):
                return True
        return False


def build_index(
    files: Sequence[Path],
    db_path: Path,
    summary: PopulationSummary,
    err: TextIO,
    pool: Executor,
    workers: int,
    vsl: ValueSetLibrary | None = None,
) -> None:
    """Index every line of every file (``index_piece``): the pieces are handed to ``pool``'s
    workers in order, a few ahead, and merged here in order as they come back. With ``vsl``,
    a prescription or medicine of a technology's supplies also counts as technology data."""
    progress = Progress(err, "indexing", unit="resources")
    index = _Index(db_path, files, summary, vsl)
    waiting = deque(pieces_of(files, workers))
    in_order: deque[tuple[Piece, Path, Future[PieceCounts]]] = deque()

    def hand_out() -> None:
        piece = waiting.popleft()
        shard = db_path.with_name(f"piece-{piece.number}.sqlite")
        in_order.append((piece, shard, pool.submit(_index_task, piece, str(shard))))

    while waiting and len(in_order) < 4 * workers:
        hand_out()
    while in_order:
        piece, shard, future = in_order.popleft()
        index.merge(piece, shard, _result(future))
        progress.update(summary.resources)
        if waiting:
            hand_out()
    index.finish()
    summary.index_seconds = round(progress.done(summary.resources), 2)


SUPPLY_TYPES = frozenset({"MedicationRequest", "Medication"})


def _names_technology_supplies(res: Mapping[str, Any], vsl: ValueSetLibrary) -> bool:
    """A MedicationRequest or Medication coded (or named) as supplies of a technology kind:
    an export recording CGM only as sensor prescriptions still measures CGM use."""
    rtype = res["resourceType"]
    if rtype == "MedicationRequest":
        concept = res.get("medicationCodeableConcept")
    elif rtype == "Medication":
        concept = res.get("code")
    else:
        return False
    if not isinstance(concept, dict):
        return False
    return any(m.value_set in vsl.technology for m in classify(concept, vsl))


# -- workers -----------------------------------------------------------------------------------
@dataclass
class _Worker:
    core: Core
    policies: list[Policy]
    db_path: str
    fds: list[int]
    criteria: tuple[str, ...]
    ctx: PersonContext
    place_table: bool  # a practice → place table was given
    conn: sqlite3.Connection | None = None  # the index, once it is built

    def index(self) -> sqlite3.Connection:
        if self.conn is None:
            self.conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)
        return self.conn


_WORKER: _Worker | None = None


@dataclass(frozen=True)
class Lookups:
    """The deployment's lookup files (CSV) beyond the place table: practice → primary care
    network, postcode → small area and small area → deprivation quintile (the last two
    together or neither)."""

    pcn_table: str | None = None
    postcode_lsoa: str | None = None
    lsoa_imd: str | None = None


@dataclass(frozen=True)
class RunOptions:
    """What every worker loads once: policies, value sets, the place, network and deprivation
    lookups."""

    policies: tuple[str, ...]
    valueset_dirs: tuple[str, ...]
    today: str
    places_file: str | None
    lookups: Lookups
    technology_data: bool
    parameters: Mapping[str, Any] = field(default_factory=dict)  # POLICY_PARAMETERS
    policy_dir: str | None = None  # POLICY_DIR: where policy names are found
    extract_date: str | None = None  # who is alive and registered (default: ``today``)


def diagnosis_names(core: Core) -> dict[str, str]:
    """Each diagnosis value set in words for a sentence ("type 1 diabetes")."""
    return {
        vs.id: vs.title[:1].lower() + vs.title[1:] if vs.title[1:2].islower() else vs.title
        for vs in core.vsl.sets.values()
    }


def load_run(opts: RunOptions) -> tuple[Core, PersonContext]:
    """The core (the service's start-up assembly) and shared context; PopulationError naming
    a bad file."""
    try:
        core = load_core(opts.policies, opts.parameters, opts.valueset_dirs, opts.policy_dir)
    except (ValueSetError, PolicyError) as exc:
        raise PopulationError(str(exc)) from exc
    pols = list(core.policies.values())
    known = places.local_places(p.info.places for p in pols)
    files = opts.lookups
    if bool(files.postcode_lsoa) != bool(files.lsoa_imd):
        raise PopulationError("the deprivation quintile needs both --postcode-lsoa and --lsoa-imd")
    try:
        directory = places.load_directory(opts.places_file, None, known)
        networks = lookups.load_practice_networks(files.pcn_table) if files.pcn_table else {}
        deprivation = (
            lookups.load_deprivation(files.postcode_lsoa, files.lsoa_imd)
            if files.postcode_lsoa and files.lsoa_imd
            else None
        )
    except (places.PlaceTableError, lookups.LookupTableError) as exc:
        raise PopulationError(str(exc)) from exc
    ctx = PersonContext(
        date.fromisoformat(opts.today),
        directory,
        deprivation,
        opts.technology_data,
        technology_windows(pols),
        date.fromisoformat(opts.extract_date) if opts.extract_date else None,
        diagnosis_names(core),
        networks=networks,
        covered=covered_systems(core.vsl),
    )
    return core, ctx


def criteria_of(policies: Sequence[Policy]) -> tuple[str, ...]:
    """Every criterion of the policies, once, in policy order."""
    return tuple(dict.fromkeys(c for p in policies for c in p.criterion_ids))


def _init_worker(db_path: str, files: list[str], opts: RunOptions) -> None:
    """Runs once in each worker: value sets, policies and the files, opened once (the index
    when it is first read: the worker starts while it is being built)."""
    global _WORKER
    core, ctx = load_run(opts)
    pols = list(core.policies.values())
    _WORKER = _Worker(
        core=core,
        policies=pols,
        db_path=db_path,
        fds=[os.open(f, os.O_RDONLY) for f in files],
        criteria=criteria_of(pols),
        ctx=ctx,
        place_table=bool(opts.places_file),
    )


def _worker() -> _Worker:
    if _WORKER is None:
        raise RuntimeError("worker not initialised")
    return _WORKER


def _close_worker() -> None:
    global _WORKER
    if _WORKER is not None:
        if _WORKER.conn is not None:
            _WORKER.conn.close()
        for fd in _WORKER.fds:
            os.close(fd)
        _WORKER = None


def _index_task(piece: Piece, shard: str) -> PieceCounts:
    return index_piece(piece, Path(shard))


def _read(w: _Worker, file_no: int, off: int, size: int) -> Any:
    return orjson.loads(os.pread(w.fds[file_no], size, off))


def _medications(w: _Worker, resources: list[Any]) -> list[Any]:
    """The Medication resources this patient's MedicationRequests refer to (not contained)."""
    have = {f"Medication/{r.get('id')}" for r in resources if r.get("resourceType") == "Medication"}
    wanted = set()
    for r in resources:
        ref = (
            (r.get("medicationReference") or {})
            if r.get("resourceType") == "MedicationRequest"
            else {}
        )
        target = ref.get("reference") if isinstance(ref, dict) else None
        if isinstance(target, str) and "Medication/" in target:
            key = "/".join(target.split("/_history")[0].split("/")[-2:])
            if key not in have:
                wanted.add(key)
    out = []
    conn = w.index()
    for key in sorted(wanted):
        row = conn.execute("SELECT file, off, len FROM meds WHERE ref = ?", (key,)).fetchone()
        if row is not None:
            out.append(_read(w, *row))
    return out


# One person as the ``people`` table holds them: the Patient id that speaks for them, every
# Patient id merged into it (the same NHS number) as a JSON list, and where the chosen
# Patient record is (file number, byte offset, length).
PersonRow = tuple[str, str, int, int, int]


class Person(NamedTuple):
    """One person: the Patient id that speaks for them, every Patient id merged into it (the
    same NHS number), and where the chosen Patient record is."""

    pid: str
    members: tuple[str, ...]
    patient: Where

    @classmethod
    def of(cls, row: PersonRow) -> Person:
        pid, members, file_no, off, size = row
        return cls(pid, tuple(orjson.loads(members)), (file_no, off, size))


def people_of(db_path: Path, summary: PopulationSummary) -> int:
    """Fill the index's ``people`` table with the export's people (``population.cohort``: one
    per NHS number, else per other identifier, else per Patient id; the most recent record
    speaks for each) and return how many there are. Counts what was merged, and the records
    naming a patient the export has no Patient for. Memory stays bounded: SQLite sorts."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute(
            "CREATE TABLE people (pid TEXT PRIMARY KEY, members TEXT NOT NULL,"
            " file INTEGER, off INTEGER, len INTEGER) WITHOUT ROWID"
        )
        conn.execute("BEGIN")
        batch: list[PersonRow] = []
        rows = conn.execute("SELECT key, pid, rank, file, off, len FROM patients ORDER BY key, pid")
        for _, same in groupby(rows, key=itemgetter(0)):
            records = list(same)  # each Patient id's most recent record (``_Index.merge``)
            winner = max(records, key=itemgetter(2, 3, 4))
            members = orjson.dumps([r[1] for r in records]).decode()
            batch.append((winner[1], members, winner[3], winner[4], winner[5]))
            if len(batch) >= INSERT_BATCH:
                conn.executemany("INSERT INTO people VALUES (?,?,?,?,?)", batch)
                batch.clear()
        conn.executemany("INSERT INTO people VALUES (?,?,?,?,?)", batch)
        conn.execute("COMMIT")
        ((ids,),) = conn.execute("SELECT COUNT(*) FROM patients")
        ((people,),) = conn.execute("SELECT COUNT(*) FROM people")
        summary.no_patient_resources, summary.no_patient_ids = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT pid) FROM idx"
            " WHERE pid NOT IN (SELECT pid FROM patients)"
        ).fetchone()
    finally:
        conn.close()
    summary.repeated_patient_records = summary.patient_records - int(ids)
    summary.merged_patients = int(ids) - int(people)
    return int(people)


def _people_chunks(db_path: Path, size: int) -> Iterator[list[PersonRow]]:
    """The people in Patient-id order, ``size`` at a time."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT pid, members, file, off, len FROM people ORDER BY pid")
        while chunk := rows.fetchmany(size):
            yield chunk
    finally:
        conn.close()


def _repointed(resource: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """A record of a merged Patient id as one of the person's: its subject / patient names the
    id that speaks for them."""
    if old == new:
        return resource
    out = dict(resource)
    for key in ("subject", "patient"):
        ref = out.get(key)
        if not isinstance(ref, dict):
            continue
        target = ref.get("reference")
        if isinstance(target, str) and target.split("/_history")[0].endswith(f"Patient/{old}"):
            out[key] = {**ref, "reference": f"Patient/{new}"}
    return out


@dataclass
class ChunkResult:
    """What a worker sends back for a chunk of people: their CSV lines, in order, and what
    they add to the counts (the main process only writes and adds up)."""

    csv: str
    people: int
    tally: UptakeTally
    outcomes: Counter[tuple[str, str]]  # (policy, outcome)
    pathways: Counter[tuple[str, str]]  # (policy, pathway or "none")
    peak_rss_mb: float | None


_POLICY_COL = PERSON_COLUMNS.index("policy_id")
_OUTCOME_COL = PERSON_COLUMNS.index("outcome")
_PATHWAY_COL = PERSON_COLUMNS.index("pathway")


def _adjacent(
    lines: Iterable[tuple[str, int, int, int]],
) -> Iterator[list[tuple[str, int, int, int]]]:
    """Lines (pid, file, offset, length) in file and offset order, in runs that follow one
    another in their file: each run is read with one call."""
    run: list[tuple[str, int, int, int]] = []
    for line in lines:
        if run and (line[1] != run[-1][1] or line[2] != run[-1][2] + run[-1][3]):
            yield run
            run = []
        run.append(line)
    if run:
        yield run


def evaluate_chunk(chunk: list[PersonRow], technology_data: bool) -> ChunkResult:
    """These people evaluated, in the given order: CSV lines (one per person and policy) and
    their counts. ``technology_data``: the export holds technology records."""
    w = _worker()
    if w.ctx.technology_data != technology_data:
        w.ctx = replace(w.ctx, technology_data=technology_data)
    people = [Person.of(row) for row in chunk]
    pids = [m for person in people for m in person.members]
    marks = ",".join("?" * len(pids))
    by_pid: dict[str, list[Any]] = {p: [] for p in pids}
    lines = w.index().execute(
        f"SELECT pid, file, off, len FROM idx WHERE pid IN ({marks}) ORDER BY file, off",  # noqa: S608
        pids,
    )
    for run in _adjacent(lines):
        file_no, start = run[0][1], run[0][2]
        data = os.pread(w.fds[file_no], run[-1][2] + run[-1][3] - start, start)
        for pid, _, off, size in run:
            by_pid[pid].append(orjson.loads(data[off - start : off - start + size]))
    rows: list[list[str]] = []
    for person in people:
        resources = [_read(w, *person.patient)]  # the most recent of the person's Patients
        resources += (
            _repointed(r, member, person.pid) for member in person.members for r in by_pid[member]
        )
        resources += _medications(w, resources)
        record = read_record(w.core, resources, person.pid)
        rows += person_rows(person.pid, resources, record, w.policies, w.criteria, w.ctx)
    text = io.StringIO(newline="")
    # The criterion cells are "met", "not-met", "unknown" or empty: nothing to make safe there.
    checked = len(PERSON_COLUMNS)
    csv.writer(text, lineterminator="\n").writerows(
        spreadsheet.row(r[:checked]) + r[checked:] for r in rows
    )
    tally = UptakeTally(
        technology_data=technology_data,
        deprivation=w.ctx.deprivation is not None,
        networks=bool(w.ctx.networks),
        place_table=w.place_table,
    )
    tally.add(rows)
    return ChunkResult(
        text.getvalue(),
        len(people),
        tally,
        Counter((r[_POLICY_COL], r[_OUTCOME_COL]) for r in rows),
        Counter((r[_POLICY_COL], r[_PATHWAY_COL] or "none") for r in rows),
        peak_rss_mb(),
    )


class _InProcess(Executor):
    """One worker: every task run here, at once, in this process."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        future.set_result(fn(*args, **kwargs))
        return future


# -- driver ------------------------------------------------------------------------------------
def usable_cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


@contextmanager
def _pool(workers: int, init_args: tuple[Any, ...]) -> Iterator[Executor]:
    """``workers`` processes, each set up by ``_init_worker``; with one, this process."""
    if workers == 1:
        _init_worker(*init_args)
        try:
            yield _InProcess()
        finally:
            _close_worker()
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=init_args
    ) as pool:
        yield pool


def run_population(
    directory: Path,
    out: TextIO,
    err: TextIO,
    *,
    today: date,
    policies: Sequence[str] | None = None,
    policy_dir: str | None = None,
    valueset_dirs: Sequence[str] = (),
    workers: int | None = None,
    chunk_size: int = 250,
    places_file: str | None = None,
    lookup_files: Lookups | None = None,
    parameters: Mapping[str, Any] | None = None,
    extract_date: date | None = None,
    on_extract_date: bool = False,
) -> PopulationSummary:
    """Evaluate ``policies`` (names in ``policy_dir`` or paths; default: every policy file
    there, in the files' order) for every person in ``directory``'s NDJSON files; write CSV
    rows to ``out``. The extract date (who is alive and registered) is ``extract_date``, else
    the export manifest's ``transactionTime``, else ``today``. The criteria are judged as on
    ``today``, or with ``on_extract_date`` as on the extract date: the record holds nothing
    after it, so an HbA1c "in the last 12 months" is counted back from the day it was taken.
    PopulationError for a bad folder, policy, place table, lookup or manifest."""
    started = time.perf_counter()
    files = ndjson_files(directory)
    extract, extract_source = _extract_date(directory, extract_date, today)
    if on_extract_date:
        today = extract
    opts = RunOptions(
        tuple(policy_names(policy_dir) if policies is None else policies),
        tuple(valueset_dirs),
        today.isoformat(),
        places_file,
        lookup_files or Lookups(),
        technology_data=True,
        parameters=dict(parameters or {}),
        policy_dir=policy_dir,
        extract_date=extract.isoformat(),
    )
    core, context = load_run(opts)  # a bad file fails before any work
    pols = list(core.policies.values())
    criteria = criteria_of(pols)
    workers = max(1, workers or usable_cores())
    summary = PopulationSummary(
        files=len(files),
        workers=workers,
        extract_date=extract.isoformat(),
        extract_date_source=extract_source,
        evaluated_on=today.isoformat(),
        codelists=[
            {"id": vs.id, "title": vs.title, "version": vs.version, "url": vs.url}
            for vs in sorted(core.vsl.sets.values(), key=lambda v: v.id)
        ],
    )
    with (
        tempfile.TemporaryDirectory(prefix="iport-cds-population-") as tmp,
        _pool(workers, (str(Path(tmp) / "index.sqlite"), [str(f) for f in files], opts)) as pool,
    ):
        db_path = Path(tmp) / "index.sqlite"
        build_index(files, db_path, summary, err, pool, workers, core.vsl)
        total = people_of(db_path, summary)
        if summary.skipped_lines:
            err.write(
                f"skipped {summary.skipped_lines:,} line(s) that are not FHIR JSON resources "
                f"(first: {', '.join(summary.skipped_examples)})\n"
            )
        technology_data = summary.technology_resources > 0
        summary.tally = UptakeTally(
            technology_data=technology_data,
            deprivation=context.deprivation is not None,
            networks=bool(context.networks),
            place_table=bool(places_file),
        )
        summary.tally.describe(pols, context.directory)
        summary.tally.name_networks(context.networks)
        summary.tally.describe_cohorts(pols, context.diagnosis_names)
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(spreadsheet.row([*PERSON_COLUMNS, *criteria]))
        outcomes: Counter[tuple[str, str]] = Counter()
        pathways: Counter[tuple[str, str]] = Counter()
        progress = Progress(
            err, f"evaluating ({workers} worker{'s' if workers > 1 else ''})", total, "patients"
        )
        worker_rss: list[float] = []

        def write(done: ChunkResult) -> None:
            out.write(done.csv)
            # merged in the people's order: the counts are as if added up row by row
            outcomes.update(done.outcomes)
            pathways.update(done.pathways)
            summary.tally.merge(done.tally)
            if done.peak_rss_mb is not None:
                worker_rss.append(done.peak_rss_mb)
            summary.patients += done.people
            progress.update(summary.patients)

        # At most 4 × workers chunks in flight: the people wait in the index, not in memory.
        pending: deque[Future[ChunkResult]] = deque()
        for chunk in _people_chunks(db_path, chunk_size):
            pending.append(pool.submit(evaluate_chunk, chunk, technology_data))
            while len(pending) >= 4 * workers:
                write(_result(pending.popleft()))
        while pending:
            write(_result(pending.popleft()))
        summary.evaluate_seconds = round(progress.done(summary.patients), 2)
    out.flush()
    summary.outcomes = _by_policy(outcomes)
    summary.pathways = _by_policy(pathways)
    summary.bands = _by_policy(summary.tally.bands)
    summary.wall_seconds = round(time.perf_counter() - started, 2)
    summary.peak_rss_main_mb = peak_rss_mb()
    summary.peak_rss_worker_mb = max(worker_rss) if worker_rss else None
    return summary


MANIFEST_NAMES = ("manifest.json", "output.json")


def _extract_date(directory: Path, given: date | None, today: date) -> tuple[date, str]:
    """The extract date and where it came from: given, else the Bulk Data export manifest's
    ``transactionTime`` (its date as written: the server's own day), else ``today``."""
    if given is not None:
        return given, "given (--extract-date)"
    for name in MANIFEST_NAMES:
        path = directory / name
        if not path.is_file():
            continue
        try:
            manifest = orjson.loads(path.read_bytes())
            when = manifest["transactionTime"]
            return date.fromisoformat(when[:10]), f"the export's transactionTime ({name})"
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise PopulationError(
                f"{path}: a Bulk Data manifest needs a transactionTime date ({type(exc).__name__})"
            ) from exc
    return today, "not given: the evaluation date"


def _by_policy(counts: Counter[tuple[str, str]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (policy, key), n in counts.most_common():
        out.setdefault(policy, {})[key] = n
    return out


def _result(future: Future[T]) -> T:
    try:
        return future.result()
    except Exception as exc:  # a worker died or failed: say which kind, not the data
        raise PopulationError(
            f"a worker process failed ({type(exc).__name__}: {str(exc)[:200]})", bad_input=False
        ) from exc


def summary_text(s: PopulationSummary) -> str:
    rate = s.patients / s.wall_seconds if s.wall_seconds else 0.0
    lines = [
        f"{s.patients:,} patients, {s.resources:,} resources from {s.files} file(s) in "
        f"{s.wall_seconds:.1f} s ({rate:,.0f} patients/s, {s.workers} worker(s))",
    ]
    for policy in s.outcomes:
        counts = {
            "outcome": s.outcomes[policy],
            "band": s.bands.get(policy, {}),
            "pathway named": s.pathways.get(policy, {}),
        }
        width = max((len(k) for c in counts.values() for k in c), default=10) + 2
        for title, c in counts.items():
            lines.append(f"{policy}, by {title}:")
            for name, n in c.items():
                pct = 100 * n / s.patients if s.patients else 0
                lines.append(f"  {name:<{width}}{n:>10,}  {pct:5.1f}%")
    if not s.technology_resources:
        lines.append(
            "No device or procedure records in the input: pump and i-Port use, and so the "
            "uptake gap, cannot be measured"
        )
    if s.unassigned_resources:
        lines.append(f"{s.unassigned_resources:,} resource(s) named no patient and were not used")
    lines.append(f"extract date {s.extract_date} ({s.extract_date_source})")
    if s.merged_patients or s.repeated_patient_records:
        lines.append(
            f"{s.merged_patients:,} Patient id(s) merged into another with the same NHS number; "
            f"{s.repeated_patient_records:,} Patient record(s) repeated (the most recent used)"
        )
    if s.no_patient_ids:
        lines.append(
            f"{s.no_patient_resources:,} record(s) name {s.no_patient_ids:,} patient id(s) with "
            "no Patient in the export: counted here, not as people"
        )
    return "\n".join(lines) + "\n"
