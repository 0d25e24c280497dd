"""The replication beans: SynchronizeJobData (and the bundle beans), as a built-in job pack.

They are loaded when `[replication] name` is set. Their bodies run like any job's (a child
process by default), so everything they need travels in a picklable `SyncSettings`: they reach
the parent and the children over the Replication service, through `syncd.rpc.replclient`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from syncd.config import Config, PeerConfig
from syncd.errors import ConfigError, InvalidArgumentError, SyncdError
from syncd.job import JobPack, JobSpec, PackContext, Parameter, RunContext, ValueType
from syncd.ledger.sql import SqlLedger
from syncd.replication.bundle import export_bundle, import_bundle
from syncd.replication.children import ChildRow, parse_children
from syncd.replication.cycle import Synchronizer, SyncReport
from syncd.replication.report import cycle_number, write_report
from syncd.retry import Backoff
from syncd.rpc.replclient import GrpcPeer, PeerCredentials

log = structlog.get_logger("syncd.replication")

SYNC_BEAN = "SynchronizeJobData"
SYNC_OPERATION = "synchronizeJobData"
EXPORT_BEAN, EXPORT_OPERATION = "ExportJobData", "exportJobData"
IMPORT_BEAN, IMPORT_OPERATION = "ImportJobData", "importJobData"
# Each repository schedules these itself: a parent never publishes their tables.
REPLICATION_BEANS = frozenset({SYNC_BEAN, EXPORT_BEAN, IMPORT_BEAN})


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncSettings:
    """What a SynchronizeJobData run needs, picklable for its process."""

    state_dir: Path
    page_size: int
    parallel: int
    timeout: float
    retries: int
    safety_margin: float
    anti_entropy_every: int = 0  # every N-th cycle compares digests; 0: never
    peers: Mapping[str, PeerConfig] = field(default_factory=dict)


class SyncFailedError(SyncdError):
    """A cycle that ended with status 1 (some child failed) or 2 (nothing done)."""

    def __init__(self, report: SyncReport) -> None:
        self.status = report.status
        failed = [f"{r.child_repository}: {r.error}" for r in report.rows if r.result == "failed"]
        head = "nothing done" if report.status == 2 else "partial"
        detail = (
            report.parent_error if report.status == 2 and report.parent_error else "; ".join(failed)
        )
        super().__init__(f"status {report.status} ({head}): {detail}")


def credentials(peer: PeerConfig | None) -> PeerCredentials:
    """A peer's credentials; the token file is read now, so a rotated token is picked up."""
    if peer is None:
        return PeerCredentials()
    token = peer.token
    if peer.token_file:
        token = Path(peer.token_file).expanduser().read_text().strip()
    return PeerCredentials(
        token=token,
        ca_file=Path(peer.ca_file) if peer.ca_file else None,
        cert_file=Path(peer.cert_file) if peer.cert_file else None,
        key_file=Path(peer.key_file) if peer.key_file else None,
    )


def children_argument(value: Any) -> list[ChildRow]:
    """The `children` argument: the legacy string, or a JSON list of rows."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            rows = json.loads(value)
        except ValueError:
            raise ValueError("not a JSON list of rows") from None
        if not isinstance(rows, list) or not all(
            isinstance(r, list) and all(isinstance(f, str) for f in r) for r in rows
        ):
            raise ValueError("expected a list of rows, each a list of strings")
        value = rows
    try:
        return parse_children(value)
    except InvalidArgumentError as exc:
        raise ValueError(exc.problem) from None


def _validated_children(value: Any) -> Any:
    children_argument(value)
    return value


def synchronize(ctx: RunContext) -> None:
    """The body of synchronizeJobData: one cycle; fails unless its status is 0."""
    settings: SyncSettings = ctx.settings
    rows = children_argument(ctx.args["children"])
    parent_url = str(ctx.args["parentUrl"])
    parent_name = str(ctx.args["parentName"] or "parent")
    opened: list[GrpcPeer] = []
    number = cycle_number(settings.state_dir) + 1
    every = settings.anti_entropy_every

    def connect(name: str, url: str) -> GrpcPeer:
        peer = GrpcPeer(name, url, credentials(settings.peers.get(name)), timeout=settings.timeout)
        opened.append(peer)
        return peer

    try:
        sync = Synchronizer(
            connect(parent_name, parent_url),
            lambda row: connect(row.name, row.url),
            page_limit=settings.page_size,
            parallel=settings.parallel,
            backoff=Backoff(initial=0.5, maximum=10.0, attempts=settings.retries),
            wait=ctx.wait_cancelled,
            safety_margin=timedelta(seconds=settings.safety_margin),
            anti_entropy=every > 0 and number % every == 0,
        )
        report = sync.run(rows)
    finally:
        for peer in opened:
            peer.close()
    ctx.add_rows(
        read=sum(r.pulled for r in report.rows), written=sum(r.pushed for r in report.rows)
    )
    write_report(settings.state_dir, report, datetime.now(UTC), cycle=number)
    ctx.log.info("replication.cycle_done", status=report.status, children=len(report.rows))
    if report.status != 0:
        raise SyncFailedError(report)


def _sync_spec(config: Config, state_dir: Path) -> JobSpec:
    cfg = config.replication
    default_children = ";".join(cfg.children)
    if default_children:
        try:
            children_argument(default_children)
        except ValueError as exc:
            raise ConfigError("replication.children", str(exc)) from None
    settings = SyncSettings(
        state_dir=state_dir,
        page_size=cfg.page_size,
        parallel=cfg.parallel,
        timeout=cfg.timeout,
        retries=cfg.retries,
        safety_margin=cfg.safety_margin,
        anti_entropy_every=cfg.anti_entropy_every,
        peers=dict(cfg.peers),
    )
    return JobSpec(
        name=SYNC_BEAN,
        trigger_operation=SYNC_OPERATION,
        body=synchronize,
        description=(
            "Pulls every connected child's changes into the parent, then pushes the"
            " consolidated changes to every child (status 0 all synced, 1 partial, 2 nothing)"
        ),
        parameters=(
            Parameter(
                name="parentUrl",
                type=ValueType.STRING,
                description="the parent repository's gRPC address (grpc://host:port, unix:/path)",
                required=not cfg.parent_url,
                default=cfg.parent_url or None,
            ),
            Parameter(
                name="parentName",
                type=ValueType.STRING,
                description="the parent repository's name",
                default=cfg.parent_name or "parent",
            ),
            Parameter(
                name="children",
                type=ValueType.STRING,
                description=(
                    "rows 'name connected url [last_sync_time]' separated by ';' (everything"
                    " after the url is the time), or a JSON list of rows"
                ),
                required=not default_children,
                default=default_children or None,
                validate=_validated_children,
            ),
        ),
        settings=settings,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class BundleSettings:
    """What the bundle beans need, picklable for their process: the state store, the folder,
    and the daemon's own control socket ("" when it listens on TCP only)."""

    ledger_url: str
    bundle_dir: Path
    daemon_address: str = ""


def _store(settings: BundleSettings) -> SqlLedger:
    # The job's own connection to the state store, for reading (an export), or for an import
    # when the daemon has no control socket to ask: the database serialises the import's one
    # transaction with the daemon's writes, and its sequence row keeps commit order.
    return SqlLedger(settings.ledger_url)


IMPORT_TIMEOUT_S = 3600.0  # one transaction of a whole bundle, on a busy writer


def export_job_data(ctx: RunContext) -> None:
    """The body of exportJobData: one bundle for one peer, in the folder."""
    settings: BundleSettings = ctx.settings
    role = str(ctx.args["peerRole"])
    folder = Path(str(ctx.args["folder"] or settings.bundle_dir)).expanduser()
    ledger = _store(settings)
    try:
        path = export_bundle(
            ledger.repository,
            folder,
            peer_name=str(ctx.args["peer"]),
            peer_is_child=role == "child",
        )
    finally:
        ledger.close()
    ctx.log.info("replication.exported", path=str(path))


def import_job_data(ctx: RunContext) -> None:
    """The body of importJobData: a bundle applied here, or refused with the reason."""
    settings: BundleSettings = ctx.settings
    path = Path(str(ctx.args["path"])).expanduser().absolute()
    if settings.daemon_address:
        # Through the daemon's one writer, over its control socket (this process runs as the
        # daemon's user): the daemon replans and collects as after a sync.
        daemon = GrpcPeer("this daemon", settings.daemon_address, timeout=IMPORT_TIMEOUT_S)
        try:
            reply = daemon.import_bundle(str(path))
        finally:
            daemon.close()
        source, applied, repeat = reply.source_name, reply.applied, reply.repeat
        count, stale, rejected = reply.record_count, reply.stale, reply.rejected
    else:
        ledger = _store(settings)
        try:
            done = import_bundle(ledger.repository, path)
        finally:
            ledger.close()
        source, applied, repeat = (
            str(done.manifest.get("source_name", "")),
            done.result.applied,
            done.repeat,
        )
        count = int(done.manifest.get("record_count", 0))
        stale, rejected = len(done.result.stale), len(done.result.rejected)
    ctx.add_rows(read=count, written=applied)
    ctx.log.info(
        "replication.imported",
        source=source,
        applied=applied,
        repeat=repeat,
        stale=stale,
        rejected=rejected,
    )


def _role(value: Any) -> Any:
    if value not in ("child", "parent"):
        raise ValueError("expected child (the peer is my child) or parent")
    return value


def _bundle_specs(config: Config, state_dir: Path) -> list[JobSpec]:
    address = config.daemon.listen_address
    settings = BundleSettings(
        ledger_url=config.ledger_url,
        bundle_dir=Path(config.replication.bundle_dir or state_dir / "bundles").expanduser(),
        daemon_address=address if address.startswith("unix:") else "",
    )
    return [
        JobSpec(
            name=EXPORT_BEAN,
            trigger_operation=EXPORT_OPERATION,
            body=export_job_data,
            description="Writes a bundle of this repository's changes for a disconnected peer",
            parameters=(
                Parameter(
                    name="peer",
                    type=ValueType.STRING,
                    required=True,
                    description="the name of the repository the bundle is for",
                ),
                Parameter(
                    name="peerRole",
                    type=ValueType.STRING,
                    default="child",
                    validate=_role,
                    description="child: the peer is this repository's child; parent: its parent",
                ),
                Parameter(
                    name="folder",
                    type=ValueType.STRING,
                    default="",
                    description="where to write it (default: replication.bundle_dir)",
                ),
            ),
            settings=settings,
        ),
        JobSpec(
            name=IMPORT_BEAN,
            trigger_operation=IMPORT_OPERATION,
            body=import_job_data,
            description="Applies a bundle from another repository (twice or out of order: harmless)",
            parameters=(
                Parameter(
                    name="path",
                    type=ValueType.STRING,
                    required=True,
                    description="the bundle file (.jsyn)",
                ),
            ),
            settings=settings,
        ),
    ]


def replication_pack(config: Config) -> JobPack:
    def build(ctx: PackContext) -> Sequence[JobSpec]:
        return [_sync_spec(config, ctx.state_dir), *_bundle_specs(config, ctx.state_dir)]

    return JobPack(
        name="replication",
        build=build,
        description="SynchronizeJobData, ExportJobData and ImportJobData",
    )
