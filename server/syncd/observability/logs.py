"""Logging: structlog configured once, by `main()`, on its native (non-stdlib) path.

Every event is rendered to JSON once and fanned out to: the log file (size-rotated), stdout
(the console renderer on a terminal, the same JSON otherwise) and the tail hub that serves
`syncctl logs -f`. Library loggers (grpc, SQLAlchemy, …) are routed into the same chain, so
their lines carry `job` and `run_id` too when logged from a job. A job's process renders its
own lines with the same pieces (`render_line`, `cap_fields`); the daemon passes them on as they
are (`relay_lines`), a batch at a time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import os
import sys
import threading
import time
import weakref
from collections import deque
from pathlib import Path
from typing import Any, TextIO

import structlog
from structlog.typing import Processor

from syncd.errors import clip
from syncd.observability.loghub import LEVEL_ORDER, LogHub, RenderedLine

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_FIRST_KEYS = ("timestamp", "level", "event", "logger", "job", "run_id", "trigger")
# Fields often echo what a caller sent (a bean name, an error quoting an argument): each is cut
# to this many characters, so a flood of huge inputs cannot make huge lines. A traceback keeps
# its head and its tail within the larger limit.
FIELD_LIMIT = 1000
TRACE_LIMIT = 32_000
_TRACE_KEYS = frozenset({"exception", "stack"})
# Lines waiting for the log file's writer thread before a caller waits for room, and the most it
# writes with one flush.
QUEUE_LINES = 10_000
_BATCH_LINES = 1_000


class RotatingWriter(logging.handlers.RotatingFileHandler):
    """The log file: the standard library's rotation to .1 … .N, with the size in bytes, written
    by a thread of its own.

    `write()` (`write_many()` for a batch) hands the lines to the writer thread through a queue
    bounded by lines and returns: whoever logs (the event loop among them) never waits on the
    disk, and never formats or encodes a line for the file. When the queue is full the caller
    waits for room (a job that logs faster than the disk takes its lines slows down; no line is
    dropped). The thread writes the lines in the order given, a batch of what is waiting at a
    time with one flush; `close()` writes what is still queued first. With an `echo` stream
    (the daemon's stdout), the same thread writes each line's `shown` form there too: a pipe or
    a terminal that is slow to take it delays nobody.

    The standard check adds the new line's length in characters to the file's size in bytes,
    so lines of multi-byte text could push the file past `max_bytes`; here both are bytes.
    A failed write is reported by logging's handleError, never raised into the caller.
    """

    def __init__(
        self,
        path: Path,
        max_bytes: int,
        backups: int,
        *,
        queue_lines: int = QUEUE_LINES,
        echo: TextIO | None = None,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(
            path,
            maxBytes=max_bytes,
            backupCount=backups,
            encoding=_ENCODING,
            errors=_ENCODING_ERRORS,
        )
        self.path = path
        self._whole: int | None = None  # the file's size after its last whole line written
        self._echo = echo
        self._queue = _LineQueue(queue_lines)
        self._open_for_lines = True
        self._writer = threading.Thread(target=self._drain, name="syncd-log-writer", daemon=True)
        self._writer.start()
        _WRITERS.add(self)

    def write(self, line: str, shown: str | None = None) -> None:
        """`line` to the file; `shown` (its form for the echo stream), if given, to the echo."""
        self.write_many([line], None if shown is None else [shown])

    def write_many(self, lines: list[str], shown: list[str] | None = None) -> None:
        """`lines` to the file in order; `shown` (one per line, may be `lines` itself), if
        given, to the echo. One hand-over for the lot: a job's batch costs its caller what a
        single line does."""
        if self._open_for_lines:
            self._queue.put(lines, shown)
        else:  # after close(): written at once, as the standard handler would
            self._write_lines(lines)
            self._write_echo(shown or [])

    def wait_written(self, timeout: float | None = None) -> bool:
        """Waits until every line given so far is in the file (or reported failed); False if
        `timeout` seconds passed first."""
        return self._queue.wait_written(timeout)

    def _drain(self) -> None:
        while True:
            batches, last = self._queue.take(_BATCH_LINES)
            try:
                self._write_batches(batches)
            finally:
                self._queue.written(sum(len(lines) for lines, _ in batches))
            if last:
                return

    def _write_batches(self, batches: list[tuple[list[str], list[str] | None]]) -> None:
        if len(batches) == 1:  # a job's batch, or a lone line: no copying
            lines, shown = batches[0]
            self._write_lines(lines)
            self._write_echo(shown or [])
            return
        self._write_lines([line for lines, _ in batches for line in lines])
        self._write_echo([line for _, shown in batches if shown for line in shown])

    def _write_echo(self, shown: list[str]) -> None:
        if not shown or self._echo is None:
            return
        try:
            self._echo.write("\n".join(shown) + "\n")
            self._echo.flush()
        except Exception:  # a closed or broken stdout must not stop the file's lines
            self.handleError(logging.makeLogRecord({"msg": shown[0]}))

    def _write_lines(self, lines: list[str]) -> None:
        if not lines:
            return
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            try:
                self._write_locked(lines)
            except Exception:  # a full disk, a vanished directory: reported, never raised
                self.handleError(logging.makeLogRecord({"msg": lines[0]}))
                self._drop_partial()

    def _drop_partial(self) -> None:
        """After a failed write: forget what the file object still buffers and cut the file
        back to its last whole line, so that the lines written once there is room again do
        not continue a half-written one."""
        if self.stream is not None:
            with contextlib.suppress(OSError, ValueError):  # its flush fails the same way
                self.stream.close()
            self.stream = None
        if self._whole is not None:
            with contextlib.suppress(OSError):
                os.truncate(self.baseFilename, self._whole)

    def _write_locked(self, lines: list[str]) -> None:
        if self.stream is None:
            self.stream = self._open()
        rotates = os.path.isfile(self.baseFilename)  # never rotate a device or a pipe
        size = os.fstat(self.stream.fileno()).st_size if rotates else 0
        self._whole = size if rotates else None
        whole = ("\n".join(lines) + "\n").encode(_ENCODING, _ENCODING_ERRORS)
        if not rotates or size + len(whole) <= self.maxBytes:
            self._put([whole])  # all of it fits: no line would have rotated the file
            return
        chunk: list[bytes] = []
        for line in lines:
            data = f"{line}\n".encode(_ENCODING, _ENCODING_ERRORS)
            if rotates and size > 0 and size + len(data) > self.maxBytes:
                self._put(chunk)
                chunk = []
                self.doRollover()
                assert self.stream is not None  # reopened by doRollover
                size = os.fstat(self.stream.fileno()).st_size
                self._whole = size
            chunk.append(data)
            size += len(data)
        self._put(chunk)

    def _put(self, chunk: list[bytes]) -> None:
        if chunk and self.stream is not None:
            # Bytes, encoded once above for the size check: nothing is pending in the text
            # layer, which this handler never writes to.
            data = b"".join(chunk)
            self.stream.buffer.write(data)
            self.stream.buffer.flush()
            if self._whole is not None:
                self._whole += len(data)

    def emit(self, record: logging.LogRecord) -> None:
        self.write(self.format(record))

    def doRollover(self) -> None:
        if self.backupCount:
            super().doRollover()
            return
        # With no backups the standard handler would keep appending; the file starts over.
        if self.stream is not None:
            self.stream.close()
        self.path.unlink(missing_ok=True)
        self.stream = self._open()

    def close(self) -> None:
        if self._open_for_lines:
            self._open_for_lines = False
            self._queue.close()
            self._writer.join()
            # Given by a write_many() racing close(), after the thread took its last batch.
            self._write_batches(self._queue.rest())
        super().close()


class _LineQueue:
    """The lines waiting for a writer thread, in order, bounded by their count: put() waits
    while `limit` lines are waiting (a batch may take it past the limit once)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._ready = threading.Condition()
        self._batches: deque[tuple[list[str], list[str] | None]] = deque()
        self._waiting = 0  # lines in _batches
        self._unwritten = 0  # lines given and not yet written (or reported failed)
        self._closed = False

    def put(self, lines: list[str], shown: list[str] | None) -> None:
        with self._ready:
            while self._waiting >= self._limit and not self._closed:
                self._ready.wait()
            self._batches.append((lines, shown))
            self._waiting += len(lines)
            self._unwritten += len(lines)
            self._ready.notify_all()

    def take(self, most: int) -> tuple[list[tuple[list[str], list[str] | None]], bool]:
        """Waiting batches, at least one, up to about `most` lines; and whether the queue is
        closed and now empty (the writer's last take)."""
        with self._ready:
            while not self._batches and not self._closed:
                self._ready.wait()
            taken: list[tuple[list[str], list[str] | None]] = []
            count = 0
            while self._batches and (not taken or count + len(self._batches[0][0]) <= most):
                batch = self._batches.popleft()
                taken.append(batch)
                count += len(batch[0])
            self._waiting -= count
            self._ready.notify_all()  # room for a waiting put()
            return taken, self._closed and not self._batches

    def written(self, count: int) -> None:
        with self._ready:
            self._unwritten -= count
            self._ready.notify_all()

    def wait_written(self, timeout: float | None) -> bool:
        with self._ready:
            return self._ready.wait_for(lambda: self._unwritten == 0, timeout)

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def rest(self) -> list[tuple[list[str], list[str] | None]]:
        with self._ready:
            rest = list(self._batches)
            self._batches.clear()
            self._waiting = 0
            self._unwritten = 0
            self._ready.notify_all()
            return rest


_WRITERS: weakref.WeakSet[RotatingWriter] = weakref.WeakSet()


def flush_logs(timeout: float) -> None:
    """Waits, at most `timeout` seconds in all, until the log writers have written the lines
    given so far: before `os._exit`, which would end their threads where they stand."""
    deadline = time.monotonic() + timeout
    for writer in list(_WRITERS):
        writer.wait_written(max(0.0, deadline - time.monotonic()))


_ENCODING = "utf-8"
_ENCODING_ERRORS = "backslashreplace"  # a lone surrogate in a field must not lose the line


def render_line(event: dict[str, Any]) -> RenderedLine:
    """A finished event as its JSON line (the identifying keys first), with the fields the
    tail filters on. Used by the daemon and, for a job's own lines, by the job's process."""
    return _rendered(_ordered(event))


def _ordered(event: dict[str, Any]) -> dict[str, Any]:
    ordered = {k: event.pop(k) for k in _FIRST_KEYS if k in event}
    ordered.update(event)
    return ordered


def _rendered(ordered: dict[str, Any]) -> RenderedLine:
    return (
        json.dumps(ordered, default=str, ensure_ascii=False),
        str(ordered.get("level", "info")),
        str(ordered.get("job", "") or ""),
        str(ordered.get("run_id", "") or ""),
    )


class _Outputs:
    """Where the process's lines go: the log file (its writer thread also echoes to stdout),
    stdout directly when there is no file, and the tail hub."""

    def __init__(
        self,
        *,
        level: int,
        writer: RotatingWriter | None,
        stream: TextIO | None,
        console: structlog.dev.ConsoleRenderer | None,
        hub: LogHub | None,
    ) -> None:
        self.level = level
        self._writer = writer
        self._stream = stream
        self._console = console
        self._hub = hub
        self._lock = threading.Lock()

    def emit(self, method: str, event: dict[str, Any]) -> None:
        ordered = _ordered(event)
        line = _rendered(ordered)
        shown: list[str] | None = None
        if self._stream is not None:
            shown = [self._console(None, method, dict(ordered)) if self._console else line[0]]
        self._out([line], [line[0]], shown)

    def emit_rendered(self, lines: list[RenderedLine], floor: int) -> None:
        """Lines already rendered (a job's, by its process), logged at level `floor` or
        above: those below this process's level are dropped here."""
        if floor < self.level:
            lines = [line for line in lines if _level(line[1]) >= self.level]
            if not lines:
                return
        texts = [line[0] for line in lines]
        shown: list[str] | None = None
        if self._stream is not None:
            shown = texts if self._console is None else [self._shown(text) for text in texts]
        self._out(lines, texts, shown)

    def _out(self, lines: list[RenderedLine], texts: list[str], shown: list[str] | None) -> None:
        if self._writer is not None:
            self._writer.write_many(texts, shown)  # its thread echoes `shown` to the stream
        elif shown is not None:
            with self._lock:
                assert self._stream is not None
                self._stream.write("\n".join(shown) + "\n")
                self._stream.flush()
        if self._hub is not None:
            self._hub.extend(lines)

    def _shown(self, text: str) -> str:
        """The console renderer's form of a JSON line (stdout on a terminal)."""
        assert self._console is not None
        try:
            event = json.loads(text)
        except ValueError:
            return text
        if not isinstance(event, dict):
            return text
        return str(self._console(None, str(event.get("level", "info")), event))


def _level(name: str) -> int:
    return LEVEL_ORDER.get(name, logging.INFO)


def relay_lines(lines: list[RenderedLine], floor: int = logging.NOTSET) -> None:
    """Lines a job's process rendered (see `render_line`), to this process's outputs as they
    are: no parsing, no rendering, one hand-over to the file's writer and to the tail for the
    lot. `floor`: the level the job's process already dropped lines below."""
    factory = structlog.get_config()["logger_factory"]
    if not isinstance(factory, _SinkFactory):  # not configured here: print, as structlog would
        sys.stdout.write("".join(f"{line[0]}\n" for line in lines))
        return
    factory.outputs.emit_rendered(lines, floor)


class _SinkFactory:
    def __init__(self, outputs: _Outputs) -> None:
        self.outputs = outputs  # also where relay_lines() hands a job's lines

    def __call__(self, *args: Any) -> _Sink:
        return _Sink(str(args[0]) if args else "syncd", self.outputs)


class _Sink:
    """structlog's logger: receives the finished event dict and fans it out."""

    def __init__(self, name: str, outputs: _Outputs) -> None:
        self.name = name
        self._outputs = outputs

    def msg(self, **event: Any) -> None:
        self._outputs.emit("info", event)

    def debug(self, **event: Any) -> None:
        self._outputs.emit("debug", event)

    def info(self, **event: Any) -> None:
        self._outputs.emit("info", event)

    def warning(self, **event: Any) -> None:
        self._outputs.emit("warning", event)

    def error(self, **event: Any) -> None:
        self._outputs.emit("error", event)

    def critical(self, **event: Any) -> None:
        self._outputs.emit("critical", event)

    exception = error
    warn = warning
    fatal = critical


def add_logger_name(logger: Any, method_name: str, event_dict: Any) -> Any:
    """`logger`: the name given to structlog.get_logger(name)."""
    name = getattr(logger, "name", None)
    if name and "logger" not in event_dict:
        event_dict["logger"] = name
    return event_dict


def line_fields(name_line: Processor) -> list[Processor]:
    """The processors that give a line its fields (context, level, logger named by
    `name_line`, UTC timestamp, stack and traceback, capped fields): one chain for the
    daemon's lines and for a job's, which its own process renders."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        name_line,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        cap_fields,
    ]


def cap_fields(logger: Any, method_name: str, event_dict: Any) -> Any:
    """Cut every field longer than FIELD_LIMIT characters (TRACE_LIMIT for tracebacks)."""
    for key, value in event_dict.items():
        if value is None or isinstance(value, bool | int | float):
            continue
        limit = TRACE_LIMIT if key in _TRACE_KEYS else FIELD_LIMIT
        if isinstance(value, str):
            if len(value) > limit:
                event_dict[key] = clip(value, limit)
            continue
        try:
            text = (
                json.dumps(value, default=str, ensure_ascii=False)
                if isinstance(value, list | tuple | dict)
                else str(value)
            )
        except (RecursionError, ValueError, TypeError):
            event_dict[key] = f"<{type(value).__name__}>"
            continue
        if len(text) > limit:
            event_dict[key] = clip(text, limit)
    return event_dict


def _as_kwargs(logger: Any, method_name: str, event_dict: Any) -> Any:
    return event_dict  # the sink takes the dict itself (structlog passes it as **kwargs)


class _LibraryHandler(logging.Handler):
    """Routes stdlib records (grpc, SQLAlchemy, …) into the structlog chain."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            log = structlog.get_logger(record.name)
            fields: dict[str, Any] = {"message": record.getMessage()}
            if record.exc_info:
                fields["exc_info"] = record.exc_info
            level = record.levelname.lower()
            getattr(log, level if level in LEVELS else "info")("library.log", **fields)
        except Exception:  # logging must never take the daemon down
            self.handleError(record)


def configure_logging(
    level: str = "info",
    *,
    stream: TextIO | None = None,
    json_output: bool | None = None,
    file: Path | None = None,
    max_bytes: int = 50 * 1024 * 1024,
    backups: int = 5,
    hub: LogHub | None = None,
    cache: bool = True,
) -> RotatingWriter | None:
    """Configure structlog for the process; returns the file writer (to close at exit).

    Tests pass cache=False: cached loggers would outlive the test's configuration.
    """
    stream = sys.stdout if stream is None else stream
    if json_output is None:
        json_output = not stream.isatty()
    # With a log file, its writer thread writes stdout too, off the caller's thread.
    writer = RotatingWriter(file, max_bytes, backups, echo=stream) if file is not None else None
    console = None if json_output else structlog.dev.ConsoleRenderer()
    outputs = _Outputs(
        level=LEVELS[level.lower()], writer=writer, stream=stream, console=console, hub=hub
    )

    structlog.configure(
        processors=[*line_fields(add_logger_name), _as_kwargs],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level.lower()]),
        logger_factory=_SinkFactory(outputs),
        cache_logger_on_first_use=cache,
    )
    root = logging.getLogger()
    root.handlers[:] = [_LibraryHandler()]
    root.setLevel(max(LEVELS[level.lower()], logging.WARNING))
    return writer
