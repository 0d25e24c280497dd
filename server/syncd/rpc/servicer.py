"""The syncd.v1.Management servicer: decode, ask the run service (or the bean registry), encode.
Nothing else."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import grpc
import structlog

from syncd import __version__
from syncd.beans.jobbeans import JobBeans
from syncd.beans.model import Invocation, Operation, Result
from syncd.beans.registry import BeanRegistry
from syncd.enums import RunState
from syncd.errors import (
    InvalidArgumentError,
    ReplicationError,
    RunNotFoundError,
)
from syncd.execution.run import Run
from syncd.ledger.audit import AuditEntry
from syncd.ledger.model import RunRecord
from syncd.ledger.recorder import LedgerHealth
from syncd.observability.events import Event
from syncd.observability.loghub import LEVEL_ORDER, LogHub, LogLine, line_filter
from syncd.rpc import convert, guard
from syncd.rpc._status import StatusMessages
from syncd.rpc.errors import mapped_errors
from syncd.rpc.repository_ops import RepositoryOps
from syncd.security import Action
from syncd.service import CancelRequest, HoldRequest, Holds, RunAllRequest, StartRequest
from syncd.service.runservice import RunService
from syncd.values import ValueType, usable_key
from syncd_api.v1 import management_pb2 as pb
from syncd_api.v1 import management_pb2_grpc as pb_grpc

log = structlog.get_logger("syncd.rpc")

Context = grpc.aio.ServicerContext[object, object]


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlPlane:
    """What the servicer reaches of the daemon."""

    registry: BeanRegistry
    jobs: JobBeans
    service: RunService
    log_hub: LogHub
    started_at: datetime
    pid: int
    ledger_health: Callable[[], LedgerHealth]
    audit_entries: Callable[[datetime | None, int], Awaitable[list[AuditEntry]]] | None = None
    # Notes, sync status and the cluster's runs: only over an SQL ledger (the repository).
    repository: RepositoryOps | None = None


class ManagementServicer(pb_grpc.ManagementServicer):
    """Thin adapter from syncd.v1.Management to the bean registry and the run service."""

    def __init__(self, plane: ControlPlane, watch_heartbeat: float = 5.0) -> None:
        self._plane = plane
        self._status_messages = StatusMessages()
        # A following client gets the run at least this often, so elapsed time stays fresh.
        self._watch_heartbeat = watch_heartbeat

    async def ListBeans(
        self, request: pb.ListBeansRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.ListBeansResponse:
        return pb.ListBeansResponse(
            beans=[convert.bean_ref(b) for b in self._plane.registry.beans()]
        )

    async def DescribeBean(
        self, request: pb.DescribeBeanRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.BeanInfo:
        async with mapped_errors(context, "DescribeBean"):
            return convert.bean_info(self._plane.registry.get(request.bean))
        raise AssertionError("unreachable")  # abort raises

    async def Invoke(
        self, request: pb.InvokeRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.InvokeResponse:
        async with mapped_errors(context, "Invoke"):
            bean = self._plane.registry.get(request.bean)
            op = bean.operation(request.operation)
            guard.authorize(guard.invoke_action(bean, op), f"{bean.name}.{op.name}")
            positional, named = convert.arguments_from_proto(
                op, request.arguments, request.named_arguments
            )
            arguments = op.bind(positional, named)
            invocation = Invocation(arguments=arguments, actor=guard.actor_of(context))
            if request.with_dependants:
                return await self._with_dependants(bean.name, op, invocation)
            if op.blocking:
                outcome = await asyncio.to_thread(op.handler, invocation)
            else:
                outcome = op.handler(invocation)
            if inspect.isawaitable(outcome):
                outcome = await outcome
            assert isinstance(outcome, Result)
            response = pb.InvokeResponse(
                result=convert.value_to_proto(outcome.value), message=outcome.message
            )
            if outcome.run_id:
                guard.note(f"run {outcome.run_id}")
                response.run.CopyFrom(self._info(await self._plane.service.get_run(outcome.run_id)))
            if op.impact.value != "info":
                log.info(
                    "rpc.invoked",
                    bean=bean.name,
                    operation=op.name,
                    actor=invocation.actor,
                    run_id=outcome.run_id or None,
                )
            return response
        raise AssertionError("unreachable")

    async def _with_dependants(
        self, bean: str, op: Operation, invocation: Invocation
    ) -> pb.InvokeResponse:
        if op.returns is not ValueType.RUN:
            raise InvalidArgumentError(
                op.name, "with_dependants applies only to an operation that starts a run"
            )
        started = await self._plane.service.start(
            StartRequest(
                bean=bean,
                actor=invocation.actor,
                arguments=invocation.arguments,
                with_dependants=True,
            )
        )
        run = started.run
        log.info(
            "rpc.invoked",
            bean=bean,
            operation=op.name,
            actor=invocation.actor,
            run_id=run.run_id,
            chain=list(started.chain),
        )
        return pb.InvokeResponse(
            result=convert.value_to_proto(run.run_id),
            run=self._info(run),
            message="Just started",
            chain=started.chain,
        )

    async def GetAttributes(
        self, request: pb.GetAttributesRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.GetAttributesResponse:
        async with mapped_errors(context, "GetAttributes"):
            bean = self._plane.registry.get(request.bean)
            wanted = (
                [bean.attribute(n) for n in request.names]
                if request.names
                else list(bean.attributes.values())
            )
            return pb.GetAttributesResponse(
                ref=convert.bean_ref(bean),
                attributes=[
                    pb.Attribute(name=a.name, value=convert.value_to_proto(a.read()))
                    for a in wanted
                ],
            )
        raise AssertionError("unreachable")

    async def ListReplicas(
        self, request: pb.ListReplicasRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.ListReplicasResponse:
        async with mapped_errors(context, "ListReplicas"):
            service = self._plane.service
            replicas = await service.replicas()
            if replicas is None:
                return pb.ListReplicasResponse(cluster=False)
            return pb.ListReplicasResponse(
                cluster=True,
                replica=service.replica,
                replicas=[convert.replica_info(r, service.replica) for r in replicas],
            )
        raise AssertionError("unreachable")

    async def GetStatus(
        self, request: pb.GetStatusRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.GetStatusResponse:
        async with mapped_errors(context, "GetStatus"):
            return self._status(convert.stuck_after(request))
        raise AssertionError("unreachable")

    def _status(self, threshold: timedelta | None) -> pb.GetStatusResponse:
        plane = self._plane
        jobs = [plane.registry.get(spec.name) for spec in plane.service.ordered_specs()]
        beans = self._status_messages.of(
            (bean, plane.jobs.status(bean.name, threshold)) for bean in jobs
        )
        ledger = plane.ledger_health()
        return pb.GetStatusResponse(
            beans=beans,
            daemon=pb.DaemonInfo(
                version=__version__,
                started_at=convert.timestamp(plane.started_at),
                draining=plane.service.draining,
                pid=plane.pid,
                ledger_problem=ledger.problem,
                ledger_unwritten=ledger.unwritten,
                replica=plane.service.replica,
                cluster_problem=plane.service.cluster_problem,
            ),
        )

    def _info(self, target: Run | RunRecord) -> pb.RunInfo:
        if isinstance(target, Run):
            return convert.run_info(target.record, self._plane.service.elapsed(target))
        return convert.run_info(target)

    async def _run(self, run_id: str) -> Run | RunRecord:
        if not usable_key(run_id):
            raise RunNotFoundError(run_id)
        return await self._plane.service.get_run(run_id)

    async def GetRun(
        self, request: pb.GetRunRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.RunInfo:
        async with mapped_errors(context, "GetRun"):
            info = self._info(await self._run(request.run_id))
            named = await self._plane.service.run_replicas([info.run_id])
            info.replica = named.get(info.run_id, "")
            return info
        raise AssertionError("unreachable")

    async def WatchRun(
        self, request: pb.WatchRunRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> AsyncIterator[pb.RunInfo]:
        target: Run | RunRecord | None = None
        async with mapped_errors(context, "WatchRun"):
            target = await self._run(request.run_id)
        assert target is not None
        if not isinstance(target, Run):
            yield self._info(target)
            if target.state is not RunState.FINISHED:
                # Cluster mode: another replica runs it; its end once that replica lets go.
                ended = await self._plane.service.wait_elsewhere(target)
                if ended is not None:
                    yield self._info(ended)
            return
        while True:
            seen = target.version
            info = self._info(target)
            yield info
            if info.state == pb.RUN_STATE_FINISHED:  # decide on what was sent, not on now
                return
            await target.changed(seen, self._watch_heartbeat)

    async def Cancel(
        self, request: pb.CancelRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.CancelResponse:
        async with mapped_errors(context, "Cancel"):
            bean = self._plane.registry.get(request.bean)
            guard.authorize(Action.CANCEL, bean.name)
            cancelled = await self._plane.service.cancel(
                CancelRequest(bean=bean.name, actor=guard.actor_of(context))
            )
            if cancelled.elsewhere is not None:  # cluster mode: another replica stops it
                info = self._info(cancelled.elsewhere)
                info.replica = cancelled.replica
                return pb.CancelResponse(cancelling=True, run=info)
            if cancelled.run is None:
                return pb.CancelResponse(cancelling=False)
            return pb.CancelResponse(cancelling=True, run=self._info(cancelled.run))
        raise AssertionError("unreachable")

    async def RunAll(
        self, request: pb.RunAllRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.RunAllResponse:
        async with mapped_errors(context, "RunAll"):
            started = await self._plane.service.run_all(
                RunAllRequest(actor=guard.actor_of(context))
            )
            log.info("rpc.run_all", jobs=list(started.jobs), actor=guard.actor_of(context))
            return pb.RunAllResponse(jobs=started.jobs)
        raise AssertionError("unreachable")

    async def History(
        self, request: pb.HistoryRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.HistoryResponse:
        async with mapped_errors(context, "History"):
            bean = self._plane.registry.get(request.bean).name if request.bean else None
            if request.limit < 0 or request.limit > 10_000:
                raise InvalidArgumentError("History", "must be 1-10000", "limit")
            limit = request.limit or 20
            records = await self._plane.service.history(bean, limit)
            runs = [self._info(r) for r in records]
            named = await self._plane.service.run_replicas([r.run_id for r in records])
            for info in runs:
                info.replica = named.get(info.run_id, "")
            return pb.HistoryResponse(runs=runs)
        raise AssertionError("unreachable")

    def _hold(self, request: pb.PauseRequest, context: Context, action: Action) -> HoldRequest:
        bean = None if request.bean in ("", "*") else self._plane.registry.get(request.bean).name
        guard.authorize(action, bean or "(daemon)")
        return HoldRequest(bean=bean, actor=guard.actor_of(context))

    async def Pause(self, request: pb.PauseRequest, context: Context) -> pb.PauseResponse:
        async with mapped_errors(context, "Pause"):
            return _holds(
                await self._plane.service.pause(self._hold(request, context, Action.PAUSE))
            )
        raise AssertionError("unreachable")

    async def Resume(self, request: pb.PauseRequest, context: Context) -> pb.PauseResponse:
        async with mapped_errors(context, "Resume"):
            return _holds(
                await self._plane.service.resume(self._hold(request, context, Action.RESUME))
            )
        raise AssertionError("unreachable")

    async def ListFires(
        self, request: pb.ListFiresRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.ListFiresResponse:
        async with mapped_errors(context, "ListFires"):
            days = request.days or 1.0
            if not 0 < days <= 366:
                raise InvalidArgumentError(
                    "ListFires", "must be more than 0 and at most 366", "days"
                )
            fires = self._plane.service.upcoming(days)
            return pb.ListFiresResponse(
                fires=[pb.Fire(bean=name, at=convert.timestamp(at)) for at, name in fires]
            )
        raise AssertionError("unreachable")

    async def TailLogs(
        self, request: pb.TailLogsRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> AsyncIterator[pb.LogLines]:
        keep = None
        async with mapped_errors(context, "TailLogs"):
            if request.level and request.level.lower() not in LEVEL_ORDER:
                raise InvalidArgumentError(
                    "TailLogs", f"expected one of {', '.join(LEVEL_ORDER)}", "level"
                )
            if request.lines < 0:
                raise InvalidArgumentError("TailLogs", "must not be negative", "lines")
            job = self._plane.registry.get(request.job).name if request.job else ""
            keep = line_filter(job, request.run_id, request.level)
        assert keep is not None
        hub = self._plane.log_hub
        # Follow first, then read the backlog: no line falls between the two.
        async with hub.follow(keep) as follower:
            # Initial metadata tells the client it is attached: what is logged from now on
            # reaches it, so it may go on to trigger what it wants to watch.
            await context.send_initial_metadata((("syncd-following", "1"),))
            backlog = hub.last(request.lines, keep)
            for chunk in _batches([_log_line(x, 0) for x in backlog]):
                yield pb.LogLines(lines=chunk)
            if not request.follow:
                return
            seen = backlog[-1].seq if backlog else 0
            while True:
                # One message per wake-up with every line waiting: per-message cost, not
                # per-line cost, bounds how fast a follower can be fed.
                batch = [await follower.next(), *follower.drain(_BATCH - 1)]
                lines = [_log_line(line, lost) for line, lost in batch if line.seq > seen]
                if lines:
                    seen = lines[-1].seq
                for chunk in _batches(lines):
                    yield pb.LogLines(lines=chunk)

    async def WatchEvents(
        self, request: pb.WatchEventsRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> AsyncIterator[pb.DaemonEvent]:
        bean = ""
        async with mapped_errors(context, "WatchEvents"):
            bean = self._plane.registry.get(request.bean).name if request.bean else ""
        async with self._plane.service.events.subscribe() as events:
            await context.send_initial_metadata((("syncd-following", "1"),))
            while True:
                event, lost = await events.next()
                if bean and event.bean not in (bean, "*", ""):
                    continue
                yield _event(event, lost)

    async def ListAudit(
        self, request: pb.ListAuditRequest, context: Context
    ) -> pb.ListAuditResponse:
        async with mapped_errors(context, "ListAudit"):
            if request.limit < 0 or request.limit > 10_000:
                raise InvalidArgumentError("ListAudit", "must be 1-10000", "limit")
            since = None
            if request.HasField("since"):
                try:
                    since = convert.from_timestamp(request.since)
                except ValueError as exc:
                    raise InvalidArgumentError("ListAudit", str(exc), "since") from None
            if self._plane.audit_entries is None:
                return pb.ListAuditResponse()
            entries = await self._plane.audit_entries(since, request.limit or 100)
            return pb.ListAuditResponse(entries=[convert.audit_entry(e) for e in entries])

    # --- the repository (notes, sync status, the cluster's runs) ----------------------------

    def _repository(self) -> RepositoryOps:
        if self._plane.repository is None:
            raise ReplicationError("this daemon keeps its ledger in memory: it is no repository")
        return self._plane.repository

    async def AddNote(self, request: pb.AddNoteRequest, context: Context) -> pb.Note:
        async with mapped_errors(context, "AddNote"):
            return await self._repository().add_note(request, guard.actor_of(context))
        raise AssertionError("unreachable")

    async def ListNotes(
        self, request: pb.ListNotesRequest, context: Context
    ) -> pb.ListNotesResponse:
        async with mapped_errors(context, "ListNotes"):
            return await self._repository().list_notes(request)
        raise AssertionError("unreachable")

    async def GetSyncStatus(
        self, request: pb.GetSyncStatusRequest, context: Context
    ) -> pb.GetSyncStatusResponse:
        async with mapped_errors(context, "GetSyncStatus"):
            return await self._repository().sync_status()
        raise AssertionError("unreachable")

    async def RepositoryHistory(
        self, request: pb.RepositoryHistoryRequest, context: Context
    ) -> pb.HistoryResponse:
        async with mapped_errors(context, "RepositoryHistory"):
            return await self._repository().history(request)
        raise AssertionError("unreachable")


def _holds(holds: Holds) -> pb.PauseResponse:
    return pb.PauseResponse(holds={k: convert.timestamp(v) for k, v in holds.holds.items()})


_BATCH = 500
# A message stays well under a client's default 4 MiB receive limit, however long the lines.
_BATCH_BYTES = 1024 * 1024


def _batches(lines: list[pb.LogLine]) -> Iterator[list[pb.LogLine]]:
    """Consecutive runs of at most _BATCH lines and (but for one long line) _BATCH_BYTES."""
    batch: list[pb.LogLine] = []
    size = 0
    for line in lines:
        if batch and (len(batch) == _BATCH or size + len(line.json) > _BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(line)
        size += len(line.json)
    if batch:
        yield batch


def _log_line(line: LogLine, lost: int) -> pb.LogLine:
    return pb.LogLine(json=line.text, seq=line.seq, missed=lost)


def _event(event: Event, lost: int) -> pb.DaemonEvent:
    return pb.DaemonEvent(
        kind=event.kind.value,
        at=convert.timestamp(event.at),
        bean=event.bean,
        run_id=event.run_id,
        outcome=event.outcome,
        message=event.message,
        progress_done=event.progress_done,
        progress_total=event.progress_total,
        missed=lost,
    )
