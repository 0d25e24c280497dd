"""A job process's side of its pipe to the daemon: its log lines rendered where they are
logged, and one sender that batches whatever is waiting.

The job's process renders each line to its final JSON text, with the fields the daemon's own
chain would add (level, logger, timestamp, the capped fields) and the ones the tail filters on
(level, job, run_id), so the daemon only hands the text on: to its log file, stdout and the
tail, a batch at a time, without parsing or rendering anything. The daemon shares one
interpreter lock between that work and its event loop; here it costs only the job.

Every message to the daemon (lines, progress, rows, the ending) goes through one `Outbox`, in
the order given: a thread of the job's process sends what has gathered since its last send, a
run of lines as one message. A body that logs faster than the daemon takes its lines waits for
room, as it waited on a full pipe before; no line is dropped.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, MutableMapping
from multiprocessing.connection import Connection
from typing import Any

import structlog

from syncd.observability.loghub import RenderedLine
from syncd.observability.logs import line_fields, render_line

DEFAULT_LOGGER = "syncd.job"  # what the daemon's relay named a job's lines before
OUTBOX_MESSAGES = 2_000  # waiting to be sent before a caller waits for room
_SEND_LINES = 500  # lines in one message at most: the daemon hands them on as one batch

_LINES = "logs"


class Outbox:
    """The one sender on the job's end of the pipe; messages leave in the order given."""

    def __init__(self, conn: Connection, limit: int = OUTBOX_MESSAGES) -> None:
        self._conn = conn
        self._limit = limit
        self._pid = os.getpid()
        self._direct = threading.Lock()  # for processes forked from this one (see _put)
        self._ready = threading.Condition()
        self._waiting: list[tuple[Any, ...]] = []
        self._closed = False
        self._broken = False  # the daemon is gone: its listener ends this process
        self._thread = threading.Thread(target=self._send_all, name="syncd-outbox", daemon=True)
        self._thread.start()

    def send(self, message: tuple[Any, ...]) -> None:
        self._put(message)

    def line(self, line: RenderedLine) -> None:
        self._put((_LINES, line))

    def _put(self, message: tuple[Any, ...]) -> None:
        if os.getpid() != self._pid:
            # A process the body forked has the pipe but not the sender thread: it sends its
            # own messages, one at a time, as every job's process did before the outbox.
            with self._direct:
                self._conn.send(_coalesced([message])[0])
            return
        with self._ready:
            while len(self._waiting) >= self._limit and not (self._closed or self._broken):
                self._ready.wait()
            if self._broken:
                return
            self._waiting.append(message)
            self._ready.notify_all()

    def close(self) -> None:
        """Sends what is waiting, then stops the sender."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        self._thread.join()

    def _send_all(self) -> None:
        while True:
            with self._ready:
                while not self._waiting and not self._closed:
                    self._ready.wait()
                if not self._waiting:
                    return  # closed, and all sent
                taken, self._waiting = self._waiting, []
                self._ready.notify_all()  # room
            try:
                for message in _coalesced(taken):
                    self._conn.send(message)
            except (OSError, ValueError):  # the daemon closed its end (a dead daemon)
                with self._ready:
                    self._broken = True
                    self._waiting.clear()
                    self._ready.notify_all()
                return


def _coalesced(messages: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Runs of lines as ("logs", [line, …]) of at most _SEND_LINES; the rest as they are."""
    out: list[tuple[Any, ...]] = []
    run: list[RenderedLine] | None = None
    for message in messages:
        if message[0] == _LINES:
            if run is None or len(run) >= _SEND_LINES:
                run = []
                out.append((_LINES, run))
            run.append(message[1])
        else:
            run = None
            out.append(message)
    return out


def _default_logger(_logger: Any, _method: str, event_dict: Any) -> Any:
    event_dict.setdefault("logger", DEFAULT_LOGGER)
    return event_dict


def configure_job_logging(outbox: Outbox, level: int) -> None:
    """structlog in the job's process: each line rendered here, at `level` or above, and
    handed to the outbox; library (stdlib) loggers go the same way."""

    def hand_over(
        _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> Mapping[str, Any]:
        outbox.line(render_line(dict(event_dict)))
        raise structlog.DropEvent

    # The daemon's chain (logs.configure_logging) up to its rendering: the same fields, here.
    # Configured before any logger is bound: a bound logger keeps the configuration it saw.
    # Lines below the daemon's level are dropped here, as the daemon would drop them.
    structlog.configure(
        processors=[*line_fields(_default_logger), hand_over],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    root.handlers[:] = [_ChildLibraryHandler()]
    root.setLevel(logging.WARNING)


class _ChildLibraryHandler(logging.Handler):
    """Stdlib records in the job's process, into the forwarding structlog chain."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = record.levelname.lower()
            known = ("debug", "info", "warning", "error", "critical")
            log = structlog.get_logger(record.name)
            getattr(log, level if level in known else "info")(
                "library.log", logger=record.name, message=record.getMessage()
            )
        except Exception:  # logging must never fail the job
            self.handleError(record)
