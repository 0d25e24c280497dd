"""Following runs to their end: one run through WatchRun, or a sequence of jobs (run-all, a
chain of dependants) through the event stream with the ledger as fallback."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from syncctl._context import PROG, note
from syncctl._exit import ExitCode, SyncctlError

if TYPE_CHECKING:
    from syncctl._connect import Client, Stream
    from syncctl._context import Context
    from syncd_api.v1 import management_pb2 as pb


def follow_interruptibly(ctx: Context, client: Client, run: pb.RunInfo) -> pb.RunInfo:
    try:
        return follow(ctx, client, run)
    except KeyboardInterrupt:
        raise SyncctlError(
            ExitCode.INTERRUPTED,
            f"stopped waiting; run {run.run_id} carries on in the daemon (see `{PROG} status`)",
        ) from None


def follow(ctx: Context, client: Client, run: pb.RunInfo) -> pb.RunInfo:
    """Watch a run until it finishes; a progress line on stderr when that is a terminal."""
    from syncctl._render import progress_line
    from syncd_api.v1 import management_pb2 as pb

    progress = ctx.tty and ctx.stderr.isatty()
    last = run
    for update in client.watch_run(run.run_id):
        last = update
        if progress:
            ctx.stderr.write(f"\r\x1b[K{progress_line(update, ctx.now())}")
            ctx.stderr.flush()
        if update.state == pb.RUN_STATE_FINISHED:
            break
    if progress:
        ctx.stderr.write("\r\x1b[K")
    if last.state != pb.RUN_STATE_FINISHED:
        # The stream ended early (e.g. the daemon is shutting down): ask once more.
        last = client.get_run(run.run_id)
        if last.state != pb.RUN_STATE_FINISHED:
            raise SyncctlError(
                ExitCode.UNAVAILABLE,
                f"the daemon stopped reporting run {run.run_id} before it finished "
                f"(see `{PROG} status`)",
            )
    return last


# With no event for this long, ask the ledger about the current job: its end may have come
# before the event stream was subscribed. Rare, so a relaxed pace is enough.
RECONCILE_AFTER = 2.0


def follow_run_all(
    ctx: Context,
    client: Client,
    events: Stream[pb.DaemonEvent],
    jobs: Sequence[str],
    since: float,
) -> list[pb.RunInfo]:
    import queue
    import threading

    from syncctl._render import Mode
    from syncctl._render_runs import run_all_result_line
    from syncctl._runall import RunAllTracker, Settled

    tracker = RunAllTracker(jobs, since)
    runs: list[pb.RunInfo] = []

    def report(settled: Settled | None) -> None:
        if settled is None:
            return
        # The event says how it ended; the run itself has the duration, rows and error.
        run = client.get_run(settled.run_id)
        runs.append(run)
        if ctx.mode is not Mode.JSON:
            ctx.stdout.write(run_all_result_line(ctx.mode, run, ctx.now()) + "\n")
            ctx.stdout.flush()

    def reconcile(*, ended: bool = False) -> None:
        while (current := tracker.current) is not None:
            settled = tracker.reconcile(client.history(current, 10).runs, ended=ended)
            if settled is None:
                return
            report(settled)
            ended = False  # known only of the job the chain was on

    # A thread reads the stream so this one can wait with a timeout (and still take Ctrl-C).
    inbox: queue.Queue[pb.DaemonEvent | SyncctlError | None] = queue.Queue()

    def read() -> None:
        try:
            for event in events:
                inbox.put(event)
        except SyncctlError as error:
            inbox.put(error)
        inbox.put(None)

    threading.Thread(target=read, name="run-all-events", daemon=True).start()
    lost = ""
    while not tracker.done:
        try:
            item = inbox.get(timeout=RECONCILE_AFTER)
        except queue.Empty:
            reconcile()
            continue
        if item is None or isinstance(item, SyncctlError):
            lost = f" ({item.message})" if item is not None else ""
            # The stream ended (a shutdown?): whatever the ledger can still tell is all there is.
            with contextlib.suppress(SyncctlError):
                reconcile()
            break
        if item.missed:
            note(ctx.stderr, f"… {item.missed} events missed (watcher too slow)")
            reconcile()
        elif tracker.moved_on(item):
            reconcile(ended=True)
        report(tracker.feed(item))
    if not tracker.done:
        raise SyncctlError(
            ExitCode.UNAVAILABLE,
            f"the daemon stopped reporting before run-all ended{lost}; not seen to finish: "
            f"{', '.join(tracker.remaining)} (see `{PROG} history`)",
        )
    return runs
