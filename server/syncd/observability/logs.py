"""Logging: structlog configured once, by `main()`, on its native (non-stdlib) path.

Every event is rendered to JSON once and fanned out to: the log file (size-rotated), stdout
(the console renderer on a terminal, the same JSON otherwise) and the tail hub that serves
`syncctl logs -f`. Library loggers (grpc, SQLAlchemy, …) are routed into the same chain, so
their lines carry `job` and `run_id` too when logged from a job.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import os
import queue
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any, TextIO

import structlog

from syncd.errors import clip
from syncd.observability.loghub import LogHub

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

    `write()` hands the line to the writer thread through a bounded queue and returns: whoever
    logs (the event loop among them) never waits on the disk, and never formats or encodes a
    line for the file. When the queue is full the caller waits for room (a job that logs faster
    than the disk takes its lines slows down; no line is dropped). The thread writes the lines in
    the order given, a batch of what is waiting at a time with one flush; `close()` writes what is
    still queued first. With an `echo` stream (the daemon's stdout), the same thread writes each
    line's `shown` form there too: a pipe or a terminal that is slow to take it delays nobody.

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
        self._queue: queue.Queue[tuple[str, str | None] | None] = queue.Queue(maxsize=queue_lines)
        self._open_for_lines = True
        self._writer = threading.Thread(target=self._drain, name="syncd-log-writer", daemon=True)
        self._writer.start()
        _WRITERS.add(self)

    def write(self, line: str, shown: str | None = None) -> None:
        """`line` to the file; `shown` (its form for the echo stream), if given, to the echo."""
        if self._open_for_lines:
            self._queue.put((line, shown))
        else:  # after close(): written at once, as the standard handler would
            self._write_lines([line])
            self._write_echo([shown] if shown is not None else [])

    def wait_written(self, timeout: float | None = None) -> bool:
        """Waits until every line given so far is in the file (or reported failed); False if
        `timeout` seconds passed first."""
        done = self._queue.all_tasks_done
        with done:
            return done.wait_for(lambda: self._queue.unfinished_tasks == 0, timeout)

    def _drain(self) -> None:
        while True:
            lines = [self._queue.get()]
            while len(lines) < _BATCH_LINES:
                try:
                    lines.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = None in lines
            given = [item for item in lines if item is not None]
            try:
                self._write_lines([line for line, _ in given])
                self._write_echo([shown for _, shown in given if shown is not None])
            finally:
                for _ in lines:
                    self._queue.task_done()
            if stop:
                return

    def _write_echo(self, shown: list[str]) -> None:
        if not shown or self._echo is None:
            return
        try:
            self._echo.write("".join(f"{line}\n" for line in shown))
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
            self._queue.put(None)
            self._writer.join()
            leftover: list[tuple[str, str | None]] = []  # given by a write() racing close()
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if item is not None:
                    leftover.append(item)
            self._write_lines([line for line, _ in leftover])
            self._write_echo([shown for _, shown in leftover if shown is not None])
        super().close()


_WRITERS: weakref.WeakSet[RotatingWriter] = weakref.WeakSet()


def flush_logs(timeout: float) -> None:
    """Waits, at most `timeout` seconds in all, until the log writers have written the lines
    given so far: before `os._exit`, which would end their threads where they stand."""
    deadline = time.monotonic() + timeout
    for writer in list(_WRITERS):
        writer.wait_written(max(0.0, deadline - time.monotonic()))


_ENCODING = "utf-8"
_ENCODING_ERRORS = "backslashreplace"  # a lone surrogate in a field must not lose the line


class _Sink:
    """structlog's logger: receives the finished event dict and fans it out."""

    def __init__(
        self,
        name: str,
        *,
        writer: RotatingWriter | None,
        stream: TextIO | None,
        console: structlog.dev.ConsoleRenderer | None,
        hub: LogHub | None,
        lock: threading.Lock,
    ) -> None:
        self.name = name
        self._writer = writer
        self._stream = stream
        self._console = console
        self._hub = hub
        self._lock = lock

    def _emit(self, method: str, event: dict[str, Any]) -> None:
        ordered = {k: event.pop(k) for k in _FIRST_KEYS if k in event}
        ordered.update(event)
        text = json.dumps(ordered, default=str, ensure_ascii=False)
        shown: str | None = None
        if self._stream is not None:
            shown = self._console(None, method, dict(ordered)) if self._console else text
        if self._writer is not None:
            self._writer.write(text, shown)  # the writer's thread echoes `shown` to the stream
        elif shown is not None:
            with self._lock:
                assert self._stream is not None
                self._stream.write(f"{shown}\n")
                self._stream.flush()
        if self._hub is not None:
            self._hub.append(text, ordered)

    def msg(self, **event: Any) -> None:
        self._emit("info", event)

    def debug(self, **event: Any) -> None:
        self._emit("debug", event)

    def info(self, **event: Any) -> None:
        self._emit("info", event)

    def warning(self, **event: Any) -> None:
        self._emit("warning", event)

    def error(self, **event: Any) -> None:
        self._emit("error", event)

    def critical(self, **event: Any) -> None:
        self._emit("critical", event)

    exception = error
    warn = warning
    fatal = critical


def add_logger_name(logger: Any, method_name: str, event_dict: Any) -> Any:
    """`logger`: the name given to structlog.get_logger(name)."""
    name = getattr(logger, "name", None)
    if name and "logger" not in event_dict:
        event_dict["logger"] = name
    return event_dict


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
    lock = threading.Lock()

    def factory(*args: Any) -> _Sink:
        name = str(args[0]) if args else "syncd"
        return _Sink(name, writer=writer, stream=stream, console=console, hub=hub, lock=lock)

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            cap_fields,
            _as_kwargs,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level.lower()]),
        logger_factory=factory,
        cache_logger_on_first_use=cache,
    )
    root = logging.getLogger()
    root.handlers[:] = [_LibraryHandler()]
    root.setLevel(max(LEVELS[level.lower()], logging.WARNING))
    return writer
