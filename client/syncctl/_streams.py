"""The commands that print a live stream: logs (-f) and watch. Ctrl-C is how they are meant to
end (exit 0); the daemon ending the stream is reported (exit 6)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from syncctl._context import note
from syncctl._exit import ExitCode, SyncctlError

if TYPE_CHECKING:
    from syncctl._context import Context


def logs(ctx: Context) -> ExitCode:
    """Ctrl-C is how `logs -f` is meant to end, so it exits 0 (as `watch` does)."""
    from syncctl._render import Mode
    from syncctl._tail import pretty_log_line, use_colour

    args = ctx.args
    pretty = ctx.mode is Mode.TABLE
    colour = pretty and use_colour(ctx.environ, ctx.tty)
    out = ctx.stdout
    with ctx.client() as client:
        stream = client.tail_logs(
            lines=args.lines,
            follow=args.follow,
            job=args.job or "",
            run_id=args.run or "",
            level=args.level or "",
        )
        with stream, _stream_end("log", follow=args.follow):
            for batch in stream:
                for line in batch.lines:
                    if line.missed:
                        note(ctx.stderr, f"… {line.missed} lines missed (follower too slow)")
                    out.write(
                        (pretty_log_line(line.json, colour=colour) if pretty else line.json) + "\n"
                    )
                # Flush each message: a follower (person, pipe or script) wants it now.
                out.flush()
    return ExitCode.OK


def watch(ctx: Context) -> ExitCode:
    """One line per daemon event until Ctrl-C (exit 0)."""
    from syncctl._tail import event_line

    mode = ctx.mode
    out = ctx.stdout
    with ctx.client() as client:
        events = client.watch_events(ctx.args.bean or "")
        with events, _stream_end("event", follow=True):
            for event in events:
                if event.missed:
                    note(ctx.stderr, f"… {event.missed} events missed (watcher too slow)")
                out.write(event_line(event, mode) + "\n")
                out.flush()
    return ExitCode.OK


@contextlib.contextmanager
def _stream_end(what: str, *, follow: bool) -> Iterator[None]:
    """How a live stream ends: Ctrl-C is the normal way (exit 0); the daemon closing it, or
    dropping it at a shutdown, is reported (exit 6)."""
    try:
        yield
    except KeyboardInterrupt:
        return
    except SyncctlError as error:
        if follow and error.code is ExitCode.UNAVAILABLE:
            raise SyncctlError(
                ExitCode.UNAVAILABLE,
                f"the daemon ended the {what} stream (is it shutting down?): {error.message}",
            ) from None
        raise
    if follow:
        raise SyncctlError(
            ExitCode.UNAVAILABLE, f"the daemon ended the {what} stream (is it shutting down?)"
        )
