"""``aegis export`` and ``aegis import``: moving a project's memories between servers.

Both commands stream, so a backup of any size never has to fit in memory, and both refuse to
leave half a result behind:

* ``export`` writes into a temporary file next to the destination and renames it only once the
  server's stream ended cleanly, so a file with the final name is always a complete backup.
* ``import`` reads the file twice: first it validates *every* record (JSON syntax, the
  `ExportedMemory` model, duplicate ids, scope rules the server would reject) and stops with
  exit code 5 and the offending line numbers if any is wrong; only a clean file is then sent,
  in batches. The server's import is idempotent (known ids are skipped), so if the connection
  drops half-way, running the same command again finishes the job.

Exit codes follow SPEC §8. For ``import``, a missing or unreadable file is exit 1 (an error of
the environment, like any other I/O failure) and bad *content* is exit 5 (validation), so a
script can tell "wrong path" from "wrong data".
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import re
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Group, RenderableType
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from aegis_memory.cli._common import (
    EXIT_ERROR,
    EXIT_VALIDATION,
    JsonFlag,
    console,
    err,
    exit_code_for,
    fail,
    handle_errors,
    make_client,
    truncate,
)
from aegis_memory.client._core import format_validation_error
from aegis_memory.client.errors import AegisConnectionError, AegisError
from aegis_memory.schemas import (
    MAX_IMPORT_BATCH,
    ExportedMemory,
    ImportedMemory,
    ImportResponse,
    addressable_id,
)

if TYPE_CHECKING:
    from aegis_memory.client.sync_client import AegisClient

#: How many invalid records are described one by one (all of them are counted).
MAX_REPORTED_INVALID = 100
#: Import batches sent at once (see ``_send``).
IMPORT_IN_FLIGHT = 2
#: Bytes read at a time from a JSON-array file.
_CHUNK = 1 << 16
_WHITESPACE = re.compile(r"[ \t\r\n]*")


class ExportFormat(StrEnum):
    """What ``export`` writes."""

    jsonl = "jsonl"
    json = "json"


class EmbeddingEncodingChoice(StrEnum):
    """How ``export --include-embeddings`` writes vectors (the API's ``embedding_encoding``)."""

    base64 = "base64"
    float = "float"


class ImportFormat(StrEnum):
    """What ``import`` reads (``auto``: from the file's first non-space character)."""

    auto = "auto"
    jsonl = "jsonl"
    json = "json"


def register(app: typer.Typer) -> None:
    """Add ``export`` and ``import`` to ``app``."""
    app.command("export")(export_command)
    app.command("import")(import_command)


# ============================================================================ progress


class _CountRateColumn(ProgressColumn):
    """``1,234 memories · 850/s``: the count (from the task's ``count`` field, which is not
    always what the bar measures) and the average rate since the task started."""

    def render(self, task: Task) -> Text:
        count = int(task.fields.get("count", task.completed))
        noun = task.fields.get("noun", "memories")
        elapsed = task.elapsed or 0.0
        rate = f" · {count / elapsed:,.0f}/s" if elapsed > 0.05 and count else ""
        return Text(f"{count:,} {noun}{rate}", style="progress.download")


def _progress(*, disable: bool = False) -> Progress:
    """A progress display on stderr, so that ``--json`` output on stdout stays parseable.

    Only on a terminal: redirected to a file or a CI log, a live bar is just noise (Rich would
    leave blank lines behind).
    """
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        _CountRateColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=disable or not err.is_terminal,
    )


# ============================================================================ export


def _default_export_name(fmt: ExportFormat) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"aegis-export-{stamp}.{fmt.value}"


class _ExportWriter:
    """Writes memories as JSON lines or as one JSON array built item by item.

    To a file: into a hidden ``.part`` file in the destination's directory (same filesystem, so
    the final ``os.replace`` is atomic), renamed only after the last item; on any failure the
    part file is removed and an existing file of that name is left untouched. To stdout
    (``path is None``) nothing can be taken back, so a failed JSON export is left without its
    closing ``]``: invalid rather than a complete-looking partial document. The file keeps
    ``mkstemp``'s owner-only permissions: a backup holds every private memory of the project.
    """

    def __init__(self, path: Path | None, fmt: ExportFormat) -> None:
        self.path = path
        self.fmt = fmt
        self.count = 0
        self.bytes = 0
        self._tmp: Path | None = None
        self._out: IO[bytes] | None = None

    def __enter__(self) -> _ExportWriter:
        if self.path is None:
            self._out = _stdout_bytes()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=".part", dir=self.path.parent)
            self._tmp = Path(tmp)
            self._out = os.fdopen(fd, "wb")
        return self

    def _put(self, data: bytes) -> None:
        assert self._out is not None
        self._out.write(data)
        self.bytes += len(data)

    def write(self, memory: ExportedMemory) -> None:
        # The same serialisation as the SDK's ``export_to``: files from either are identical.
        line = memory.model_dump_json().encode("utf-8")
        if self.fmt is ExportFormat.json:
            # "[" goes out with the first item, so a stdout export that fails before it
            # wrote nothing at all.
            self._put((b"[\n" if self.count == 0 else b",\n") + line)
        else:
            self._put(line + b"\n")
        self.count += 1

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        assert self._out is not None
        if self.path is None:
            if exc_type is None and self.fmt is ExportFormat.json:
                self._put(b"\n]\n" if self.count else b"[]\n")
            self._out.flush()
            return
        assert self._tmp is not None
        try:
            try:
                if exc_type is None:
                    if self.fmt is ExportFormat.json:
                        self._put(b"\n]\n" if self.count else b"[]\n")
                    self._out.flush()
                    os.fsync(self._out.fileno())  # on disk before it gets the final name
            finally:
                self._out.close()
            if exc_type is None:
                os.replace(self._tmp, self.path)
        finally:
            if self._tmp.exists():
                with contextlib.suppress(OSError):
                    self._tmp.unlink()


def _stdout_bytes() -> IO[bytes]:
    """Binary stdout: UTF-8 whatever the locale says (the export's encoding is fixed)."""
    sys.stdout.flush()
    buffer = getattr(sys.stdout, "buffer", None)
    return buffer if buffer is not None else _TextSink(sys.stdout)  # type: ignore[return-value]


class _TextSink:
    """Bytes onto a text-only stream (when a host replaced ``sys.stdout`` with one)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, data: bytes) -> int:
        return self._stream.write(data.decode("utf-8"))

    def flush(self) -> None:
        self._stream.flush()


def _export_total(
    client: AegisClient, namespace: str | None, include_deprecated: bool
) -> int | None:
    """How many memories the export will contain, if one cheap aggregate can tell.

    The dashboard counts live memories of the whole project (optionally one namespace), which
    is exactly what a project key exports. With an agent or user filter the visible set differs,
    and an agent-bound key may not read the dashboard at all: the bar then shows no total.
    """
    try:
        stats = client.dashboard_stats(namespace=namespace)
    except AegisConnectionError:
        raise
    except AegisError:
        return None
    return stats.memories_total + (stats.deprecated if include_deprecated else 0)


def _human_bytes(size: int) -> str:
    """``1.2 MB``: the size a person compares with their disk, not a byte count."""
    if size < 1024:
        return f"{size:,} B"
    value = size / 1024
    for unit in ("KB", "MB"):
        if value < 1024:
            return f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} GB"


def export_command(
    ctx: typer.Context,
    output: Annotated[str | None, typer.Option(
        "--output", "-o",
        help="File to write (a directory: a new file in it; '-': stdout). "
             "Default: aegis-export-<UTC time>.<format> in the current directory.",
        show_default=False)] = None,
    fmt: Annotated[ExportFormat, typer.Option(
        "--format", help="jsonl: one memory per line; json: one array.",
        case_sensitive=False)] = ExportFormat.jsonl,
    namespace: Annotated[str | None, typer.Option(
        help="Only this namespace (default: every namespace).", show_default=False)] = None,
    agent_id: Annotated[str | None, typer.Option(
        help="Export as this agent: only what it may see.", show_default=False)] = None,
    user_id: Annotated[str | None, typer.Option(
        help="Only memories of this user.", show_default=False)] = None,
    include_embeddings: Annotated[bool, typer.Option(
        "--include-embeddings",
        help="Include the vectors (and model name) so that an import into a server with the "
             "same model needs no re-embedding. Makes the file much larger.")] = False,
    embedding_encoding: Annotated[EmbeddingEncodingChoice, typer.Option(
        "--embedding-encoding", case_sensitive=False,
        help="With --include-embeddings: base64 (float32 bytes, compact and fast to import) "
             "or float (lists of numbers, for Aegis versions before base64 and other "
             "tools).")] = EmbeddingEncodingChoice.base64,
    no_deprecated: Annotated[bool, typer.Option(
        "--no-deprecated", help="Leave deprecated memories out.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Back up memories to a file (streamed; the file appears only when complete)."""
    to_stdout = output == "-"
    path: Path | None = None
    if not to_stdout:
        path = Path(output).expanduser() if output else Path(_default_export_name(fmt))
        if path.is_dir():
            path = path / _default_export_name(fmt)
    include_deprecated = not no_deprecated
    # With ``--output -`` stdout carries the data and nothing else: errors (and the summary)
    # go to stderr even with ``--json``.
    json_errors = as_json and not to_stdout
    started = time.monotonic()
    # The destination is opened first: a path that cannot be written fails before any
    # request, and every later failure (server, network, Ctrl-C) passes through the writer,
    # which then removes its temporary file.
    try:
        with (_ExportWriter(path, fmt) as writer, handle_errors(json_errors),
              make_client(ctx) as client):
            total = None
            if not to_stdout and agent_id is None and user_id is None:
                total = _export_total(client, namespace, include_deprecated)
            stream = client.export(namespace=namespace, agent_id=agent_id, user_id=user_id,
                                   include_embeddings=include_embeddings,
                                   include_deprecated=include_deprecated,
                                   # float is the server's default: not sent, so that
                                   # servers before the base64 form accept the request.
                                   embedding_encoding=(
                                       "base64" if include_embeddings and embedding_encoding
                                       == EmbeddingEncodingChoice.base64 else None))
            with _progress(disable=to_stdout) as progress:
                task = progress.add_task("Exporting", total=total, count=0)
                for memory in stream:
                    writer.write(memory)
                    progress.update(task, advance=1, count=writer.count)
    except OSError as exc:
        where = "stdout" if path is None else str(path)
        fail(f"Cannot write {where}: {exc.strerror or exc}", EXIT_ERROR,
             as_json=json_errors, error_code="write_failed")
    summary = {
        "count": writer.count,
        "file": "-" if path is None else str(path),
        "format": fmt.value,
        "bytes": writer.bytes,
        "seconds": round(time.monotonic() - started, 3),
        "namespace": namespace,
        "include_embeddings": include_embeddings,
        "embedding_encoding": embedding_encoding.value if include_embeddings else None,
        "include_deprecated": include_deprecated,
    }
    # Exporting to stdout: the data owns stdout, so the summary goes to stderr.
    if as_json:
        text = json.dumps(summary, ensure_ascii=False, indent=2)
        if to_stdout:
            err.print(text, highlight=False, markup=False, soft_wrap=True)
        else:
            typer.echo(text)
        return
    target = err if to_stdout else console
    noun = "memory" if writer.count == 1 else "memories"
    target.print(
        f"Exported {writer.count:,} {noun} to {summary['file']} "
        f"({_human_bytes(writer.bytes)}, {fmt.value}) in {summary['seconds']:.1f} s.",
        highlight=False, soft_wrap=True,
    )


# ============================================================================ import: reading


@dataclass
class _Record:
    """One record of an export file, parsed but not yet validated."""

    number: int  # 1-based position in the file
    line: int  # the line it starts on
    data: Any = None
    error: str | None = None  # why it could not even be parsed
    fatal: bool = False  # the rest of the file cannot be read past this point


class _RecordReader:
    """The records of a JSON-lines file or of a JSON array, lazily, with their line numbers.

    The array is parsed one element at a time (``raw_decode`` over a sliding buffer) rather than
    with one ``json.load``, so a large backup in either format costs the memory of one record.
    ``bytes_read`` drives the "checking" progress bar.
    """

    def __init__(self, path: Path, fmt: ImportFormat) -> None:
        self.path = path
        self.fmt = fmt
        self.bytes_read = 0

    def __iter__(self) -> Iterator[_Record]:
        self.bytes_read = 0
        with self.path.open("rb") as handle:
            if self.fmt is ImportFormat.json:
                yield from self._array(handle)
            else:
                yield from self._lines(handle)

    def _lines(self, handle: IO[bytes]) -> Iterator[_Record]:
        number = 0
        for line_no, raw in enumerate(handle, start=1):
            self.bytes_read += len(raw)
            if line_no == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            if not raw.strip():
                continue
            number += 1
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield _Record(number, line_no, error=f"not UTF-8 text (byte {exc.start + 1})")
                continue
            try:
                yield _Record(number, line_no, data=json.loads(text))
            except json.JSONDecodeError as exc:
                yield _Record(number, line_no,
                              error=f"not valid JSON: {exc.msg} (column {exc.colno})")

    def _array(self, handle: IO[bytes]) -> Iterator[_Record]:
        decoder = codecs.getincrementaldecoder("utf-8-sig")()
        parse = json.JSONDecoder().raw_decode
        buf, pos, line, eof = "", 0, 1, False
        number = 0

        def more() -> bool:
            """Append the next chunk (dropping what was consumed); False at end of file."""
            nonlocal buf, pos, eof
            if eof:
                return False
            chunk = handle.read(_CHUNK)
            self.bytes_read += len(chunk)
            eof = not chunk
            buf = buf[pos:] + decoder.decode(chunk, final=eof)
            pos = 0
            return True

        def advance(to: int) -> None:
            nonlocal pos, line
            line += buf.count("\n", pos, to)
            pos = to

        def skip_space() -> None:
            while True:
                match = _WHITESPACE.match(buf, pos)
                assert match is not None
                advance(match.end())
                if pos < len(buf) or not more():
                    return

        def cut_short(exc: json.JSONDecodeError) -> bool:
            """Whether a parse error may only mean that the buffer ends inside the record.

            Then the error sits at the very end (a cut ``tru``/``nul``/``\\u00`` starts a few
            characters before it) or is an unterminated string. Anything else is a real error
            and is reported at once, without reading (and buffering) the rest of the file.
            """
            return exc.pos >= len(buf) - 8 or exc.msg.startswith("Unterminated string")

        def broken(message: str, at: int | None = None) -> _Record:
            where = line if at is None else line + buf.count("\n", pos, at)
            return _Record(number + 1, where, error=message, fatal=True)

        try:
            skip_space()
            if pos >= len(buf):
                return  # an empty file: an empty export
            if buf[pos] != "[":
                yield broken("expected a JSON array of memories (the file should start "
                             "with '[')")
                return
            advance(pos + 1)
            skip_space()
            if buf.startswith("]", pos):
                advance(pos + 1)
            else:
                while True:
                    skip_space()
                    start_line = line
                    while True:
                        try:
                            value, end = parse(buf, pos)
                        except json.JSONDecodeError as exc:
                            if cut_short(exc) and more():
                                continue  # a record cut by the chunk boundary
                            yield broken(f"not valid JSON: {exc.msg}", exc.pos)
                            return
                        if end == len(buf) and more():
                            continue  # a bare number may go on in the next chunk
                        break
                    number += 1
                    yield _Record(number, start_line, data=value)
                    advance(end)
                    skip_space()
                    if buf.startswith(",", pos):
                        advance(pos + 1)
                        continue
                    if buf.startswith("]", pos):
                        advance(pos + 1)
                        break
                    if pos >= len(buf):
                        yield broken("the array is not closed (no ']'): the file looks "
                                     "truncated")
                    else:
                        yield broken(f"expected ',' or ']' after the record on line "
                                     f"{start_line}")
                    return
            skip_space()
            if pos < len(buf):
                yield broken("unexpected text after the closing ']'")
        except UnicodeDecodeError as exc:
            yield broken(f"not UTF-8 text ({exc.reason})")


def _detect_format(path: Path) -> ImportFormat | None:
    """JSON array or JSON lines, from the first non-space character (None: neither)."""
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            text = chunk.removeprefix(codecs.BOM_UTF8).lstrip()
            if text:
                if text.startswith(b"["):
                    return ImportFormat.json
                return ImportFormat.jsonl if text.startswith(b"{") else None
    return ImportFormat.jsonl  # empty: an empty export either way


# ============================================================================ import: checking


@dataclass
class _Check:
    """What pass one learned about the file: counts for the plan, and every problem."""

    records: int = 0
    valid: int = 0
    invalid_count: int = 0
    invalid: list[dict[str, Any]] = field(default_factory=list)
    namespaces: Counter[str] = field(default_factory=Counter)
    agents: Counter[str] = field(default_factory=Counter)
    memory_types: Counter[str] = field(default_factory=Counter)
    scopes: Counter[str] = field(default_factory=Counter)
    deprecated: int = 0
    with_embeddings: int = 0
    votes: int = 0

    def add_invalid(self, record: _Record, reason: str) -> None:
        self.invalid_count += 1
        if len(self.invalid) < MAX_REPORTED_INVALID:
            self.invalid.append({"line": record.line,
                                 "record": None if record.fatal else record.number,
                                 "error": reason})

    def add_valid(self, memory: ExportedMemory) -> None:
        self.valid += 1
        self.namespaces[memory.namespace] += 1
        self.agents[memory.agent_id or "(none)"] += 1
        self.memory_types[memory.memory_type] += 1
        self.scopes[memory.scope] += 1
        self.deprecated += memory.is_deprecated
        self.with_embeddings += memory.embedding is not None
        self.votes += len(memory.votes)


def _validate(record: _Record, seen: dict[str, int]) -> ExportedMemory | str:
    """The record as an `ExportedMemory`, or why the server would refuse it.

    Beyond the model: an id twice in one file (the server rejects a batch holding both; in
    separate batches the second would silently be dropped), and an owner-less private or shared
    memory (the server's scope rule), so that these fail here instead of mid-import.
    """
    if record.error is not None:
        return record.error
    if not isinstance(record.data, dict):
        return f"expected a JSON object (a memory), found {type(record.data).__name__}"
    try:  # the server's own import model: what it would refuse is refused here
        memory = ImportedMemory.model_validate(record.data)
    except ValidationError as exc:
        return format_validation_error(exc)
    problem = addressable_id(memory.id)
    if problem is not None:
        return f"id '{truncate(memory.id, 60)}' {problem}"
    if memory.id in seen:
        return f"id '{truncate(memory.id, 60)}' already appears on line {seen[memory.id]}"
    seen[memory.id] = record.line
    if memory.scope in ("agent-private", "agent-shared") and memory.agent_id is None:
        return f"scope '{memory.scope}' needs an owner, but agent_id is missing"
    if memory.shared_with_agents and memory.scope == "agent-private":
        return "shared_with_agents is set on an 'agent-private' memory (only 'agent-shared' " \
               "memories are shared)"
    return memory


def _check_file(reader: _RecordReader, size: int, progress: Progress) -> _Check:
    """Pass one: read and validate every record, sending nothing."""
    check = _Check()
    seen: dict[str, int] = {}
    task = progress.add_task("Checking", total=size or None, count=0, noun="records")
    for record in reader:
        check.records += not record.fatal  # a fatal "record" is where the file broke, not one
        result = _validate(record, seen)
        if isinstance(result, str):
            check.add_invalid(record, result)
        else:
            check.add_valid(result)
        if check.records % 64 == 0:
            progress.update(task, completed=reader.bytes_read, count=check.records)
    progress.update(task, completed=reader.bytes_read, count=check.records)
    return check


# ============================================================================ import: sending


@dataclass
class _Sent:
    imported: int = 0
    skipped: int = 0
    reembedded: int = 0
    batches: int = 0
    sent: int = 0


def _send(client: AegisClient, reader: _RecordReader, *, batch_size: int,
          agent_id: str | None, total: int, progress: Progress, sent: _Sent) -> None:
    """Pass two: re-read the (already validated) file and import it batch by batch.

    One ``import_`` call per batch rather than one for the whole stream, so that the bar moves
    when the server has *stored* a batch, not when the SDK has merely read it. Two batches are
    in flight at once: while the server writes one to its database, it parses and validates
    the next (at 1M memories the suite measured 5,724 memories/s that way against 4,618 one
    batch at a time, docs/guides/performance.md). Batches are independent and the import is
    idempotent, so their order does not matter.
    """
    task = progress.add_task("Importing", total=total, count=0)
    seen: dict[str, int] = {}
    batch: list[ExportedMemory] = []
    in_flight: deque[tuple[Future[ImportResponse], int]] = deque()

    def collect() -> None:
        future, size = in_flight.popleft()
        response = future.result()
        sent.imported += response.imported
        sent.skipped += response.skipped
        sent.reembedded += response.reembedded
        sent.batches += 1
        sent.sent += size
        progress.update(task, completed=sent.sent, count=sent.sent)

    with ThreadPoolExecutor(IMPORT_IN_FLIGHT, thread_name_prefix="aegis-import") as pool:

        def flush() -> None:
            if len(in_flight) >= IMPORT_IN_FLIGHT:
                collect()
            chunk = list(batch)
            batch.clear()
            in_flight.append((pool.submit(client.import_, chunk, agent_id=agent_id,
                                          batch_size=len(chunk)), len(chunk)))

        for record in reader:
            result = _validate(record, seen)
            if isinstance(result, str):  # the file changed since it was checked
                raise _FileChanged(f"line {record.line}: {result}")
            batch.append(result)
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
        while in_flight:
            collect()


class _FileChanged(Exception):
    """The file no longer matches what pass one validated."""


# ============================================================================ import: output


def _counts(counter: Counter[str]) -> dict[str, int]:
    return dict(counter.most_common())


def _plan_dict(path: Path, fmt: ImportFormat, check: _Check) -> dict[str, Any]:
    return {
        "file": str(path),
        "format": fmt.value,
        "records": check.records,
        "valid": check.valid,
        "invalid_count": check.invalid_count,
        "invalid": check.invalid,
        "namespaces": _counts(check.namespaces),
        "agents": _counts(check.agents),
        "memory_types": _counts(check.memory_types),
        "scopes": _counts(check.scopes),
        "deprecated": check.deprecated,
        "with_embeddings": check.with_embeddings,
        "votes": check.votes,
    }


def _invalid_table(check: _Check) -> RenderableType:
    table = Table(title=f"{check.invalid_count:,} invalid record(s)", title_justify="left",
                  show_edge=False, pad_edge=False)
    table.add_column("Line", justify="right", style="bold")
    table.add_column("Record", justify="right")
    table.add_column("Problem", overflow="fold")
    for item in check.invalid:
        table.add_row(str(item["line"]), str(item["record"] or ""), item["error"])
    rest = check.invalid_count - len(check.invalid)
    if rest > 0:
        return Group(table, Text(f"... and {rest:,} more."))
    return table


def _breakdown(counter: Counter[str], limit: int = 10) -> str:
    """``a0 400, a1 399, ... (+3 more)``: the largest groups first."""
    shown = ", ".join(f"{truncate(name, 40)} {count:,}"
                      for name, count in counter.most_common(limit))
    rest = len(counter) - limit
    return shown + (f" (+{rest:,} more)" if rest > 0 else "")


def _render_plan(plan: dict[str, Any], check: _Check) -> RenderableType:
    head = Text.assemble(
        ("Dry run: ", "bold"), "nothing was sent.\n",
        f"{plan['file']} ({plan['format']}): {check.records:,} record(s), ",
        (f"{check.valid:,} valid", "green"), ", ",
        (f"{check.invalid_count:,} invalid", "red" if check.invalid_count else ""), ".\n",
        f"Deprecated: {check.deprecated:,}  ·  with embeddings: {check.with_embeddings:,}  ·  "
        f"votes: {check.votes:,}",
    )
    parts: list[RenderableType] = [head]
    if check.valid:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        for label, counter in (("Namespaces", check.namespaces), ("Agents", check.agents),
                               ("Memory types", check.memory_types),
                               ("Scopes", check.scopes)):
            grid.add_row(label, _breakdown(counter))
        parts.append(grid)
    if check.invalid_count:
        parts.append(_invalid_table(check))
        parts.append(Text("Nothing would be imported until these records are fixed.",
                          style="red"))
    elif check.valid:
        parts.append(Text(f"{check.valid:,} memories would be imported (memories whose id "
                          "already exists on the server are skipped)."))
    return Group(*parts)


def import_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(
        help="An export file (JSON lines or a JSON array).", show_default=False)],
    fmt: Annotated[ImportFormat, typer.Option(
        "--format", help="auto: from the first non-space character ('[' means a JSON array).",
        case_sensitive=False)] = ImportFormat.auto,
    batch_size: Annotated[int, typer.Option(
        help=f"Memories per request (1-{MAX_IMPORT_BATCH}).")] = 500,
    agent_id: Annotated[str | None, typer.Option(
        help="Import as this agent (an agent-bound key must import only its own memories).",
        show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Check the whole file and show what would be imported; send "
                          "nothing.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Restore memories from an export file. Every record is checked before the first one is
    sent: an invalid record imports nothing (exit 5, with its line); a missing or unreadable
    file is exit 1. Safe to repeat: memories whose id the server knows are skipped."""
    path = file.expanduser()
    if not path.exists():
        fail(f"No such file: {path}", EXIT_ERROR, as_json=as_json, error_code="file_not_found")
    if path.is_dir():
        fail(f"{path} is a directory, not an export file.", EXIT_ERROR, as_json=as_json,
             error_code="not_a_file")
    if not 1 <= batch_size <= MAX_IMPORT_BATCH:
        fail(f"--batch-size must be between 1 and {MAX_IMPORT_BATCH} (got {batch_size}).",
             EXIT_VALIDATION, as_json=as_json, error_code="invalid_arguments")
    started = time.monotonic()
    try:
        if fmt is ImportFormat.auto:
            detected = _detect_format(path)
            if detected is None:
                fail(f"{path} does not look like an Aegis export: it should start with '{{' "
                     "(JSON lines) or '[' (a JSON array).", EXIT_VALIDATION, as_json=as_json,
                     error_code="unknown_format")
            assert detected is not None
            fmt = detected
        size = path.stat().st_size
        reader = _RecordReader(path, fmt)
        with _progress() as progress:
            check = _check_file(reader, size, progress)
    except OSError as exc:
        fail(f"Cannot read {path}: {exc.strerror or exc}", EXIT_ERROR, as_json=as_json,
             error_code="unreadable_file")
        raise  # unreachable: fail() raises
    plan = _plan_dict(path, fmt, check)

    if check.invalid_count:
        message = (f"{check.invalid_count:,} of {check.records:,} record(s) in {path} are "
                   "invalid; nothing was imported.")
        if dry_run:
            message = (f"{check.invalid_count:,} of {check.records:,} record(s) in {path} are "
                       "invalid (dry run: nothing was sent).")
        if as_json:
            payload = {**plan, "dry_run": dry_run, "error": {
                "message": message, "code": "invalid_records", "exit_code": EXIT_VALIDATION}}
            typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        elif dry_run:
            console.print(_render_plan(plan, check))
        else:
            err.print(_invalid_table(check))
        err.print(f"[red]Error:[/red] {message}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_VALIDATION)

    if dry_run:
        if as_json:
            typer.echo(json.dumps({**plan, "dry_run": True, "would_import": check.valid},
                                  ensure_ascii=False, indent=2))
        else:
            console.print(_render_plan(plan, check))
        return

    sent = _Sent()
    if check.valid:
        with make_client(ctx) as client:
            try:
                with _progress() as progress:
                    _send(client, reader, batch_size=batch_size, agent_id=agent_id,
                          total=check.valid, progress=progress, sent=sent)
            except AegisError as exc:
                if sent.sent:
                    err.print(
                        f"{sent.sent:,} of {check.valid:,} memories were sent before the "
                        f"error ({sent.imported:,} imported). Import skips known ids: run "
                        "the same command again to finish.", highlight=False, soft_wrap=True)
                fail(str(exc), exit_code_for(exc), as_json=as_json, error_code=exc.code)
            except _FileChanged as exc:
                fail(f"{path} changed while it was being imported ({exc}); "
                     f"{sent.sent:,} memories were sent.", EXIT_VALIDATION, as_json=as_json,
                     error_code="file_changed")
            except OSError as exc:
                fail(f"Cannot read {path}: {exc.strerror or exc}", EXIT_ERROR,
                     as_json=as_json, error_code="unreadable_file")
    summary = {
        "file": str(path),
        "format": fmt.value,
        "records": check.records,
        "imported": sent.imported,
        "skipped": sent.skipped,
        "reembedded": sent.reembedded,
        "batches": sent.batches,
        "seconds": round(time.monotonic() - started, 3),
    }
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False, indent=2))
        return
    if not check.records:
        console.print(f"{path} holds no memories; nothing to import.", highlight=False)
        return
    console.print(
        f"Imported {sent.imported:,} of {check.records:,} memories from {path} "
        f"({sent.skipped:,} skipped as already present, {sent.reembedded:,} re-embedded) "
        f"in {summary['seconds']:.1f} s.", highlight=False, soft_wrap=True)
