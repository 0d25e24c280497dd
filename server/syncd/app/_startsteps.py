"""Serve's start-up steps that need no daemon state: binding the control listeners (and where
the daemon listens), and pruning the ledger."""

from __future__ import annotations

import asyncio
import gc
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import structlog

from syncd.app.instance import prepare_socket, private_dir
from syncd.app.startup import probe_listen, starting
from syncd.clock import Clock
from syncd.config import DaemonConfig, LedgerConfig
from syncd.errors import LedgerUnavailableError
from syncd.ledger.recorder import LedgerRecorder
from syncd.rpc.server import ControlServer

log = structlog.get_logger("syncd.daemon")


@dataclass(slots=True)
class Listening:
    """Where the daemon listens, once it does."""

    addresses: list[str] = field(default_factory=list)
    http: str = ""
    ready: asyncio.Event = field(default_factory=asyncio.Event)


def bind_control(control: ControlServer, config: DaemonConfig, addresses: list[str]) -> Path | None:
    """Binds the control socket (or address) and the optional TCP listener, appending what
    it listens on to `addresses`; the socket file, when it is one."""
    socket_file: Path | None = None
    address = config.listen_address
    with starting(f"daemon.address: cannot listen on {address}"):
        if address.startswith("unix:"):
            socket_file = Path(address.removeprefix("unix:"))
            prepare_socket(socket_file)
            internal = private_dir(socket_file.parent / "grpc") / "internal.sock"
            if internal.is_socket():
                internal.unlink()  # stale: we hold the instance lock
            addresses.append(control.bind_unix(socket_file, internal))
        else:
            probe_listen(f"daemon.address: cannot listen on {address}", address)
            addresses.append(control.bind_tcp(address))
    if config.tcp_address:
        tcp = config.tcp_address
        with starting(f"daemon.tcp_address: cannot listen on {tcp}"):
            probe_listen(f"daemon.tcp_address: cannot listen on {tcp}", tcp)
            addresses.append(control.bind_tcp(tcp))
    return socket_file


async def prune_at_start(recorder: LedgerRecorder, clock: Clock, config: LedgerConfig) -> None:
    """Runs and audit entries past `[ledger]` retention are removed; a ledger that cannot be
    written is logged, not fatal (the daemon serves, and prunes at its next start)."""
    try:
        removed = await recorder.prune(clock.now(), config.keep_days, config.keep_runs)
        cutoff = clock.now() - timedelta(days=config.keep_days)
        audited = await recorder.prune_audit(cutoff)  # the same retention
    except LedgerUnavailableError as exc:
        log.error("ledger.prune_failed", problem=exc.problem)
    else:
        if removed or audited:
            log.info("ledger.pruned", runs=removed, audit_entries=audited)


def settle_heap() -> None:
    """Collect once, then keep what start-up built (modules, the catalogue, SQLAlchemy's
    tables: ~90,000 objects) out of every later collection. A full collection walked them all
    on whichever thread triggered it, 60-80 ms under run load that every control-plane call
    waited behind; afterwards it walks only what the daemon made since."""
    gc.collect()
    gc.freeze()
    log.debug("daemon.heap_settled", frozen=gc.get_freeze_count())
