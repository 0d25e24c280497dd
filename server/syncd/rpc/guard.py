"""The gRPC half of control-plane security: one interceptor authenticates every call, checks
the rule book, and writes the audit trail.

Who the caller is depends on the listener: on the control socket, the kernel's word (the uid
the relay read with SO_PEERCRED, see `syncd.security`); over TCP, a bearer token in the
`authorization` metadata or a verified client certificate whose subject has a role. A call
whose action needs a role the caller lacks is refused before the servicer sees it; `Invoke`,
whose action depends on the operation invoked, is checked by the servicer through
`authorize` once it knows the operation. State changes and refused credentials are audited
with the outcome.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn, cast

import grpc
import structlog

from syncd.beans import daemonbean
from syncd.beans.model import Bean, Operation
from syncd.clock import Clock
from syncd.enums import Impact
from syncd.errors import PermissionDeniedError, SyncdError, UnauthenticatedError, clip
from syncd.ledger.audit import AuditEntry
from syncd.ledger.recorder import LedgerRecorder
from syncd.rpc.errors import status_code
from syncd.security import (
    Action,
    Guard,
    Principal,
    Role,
    changes_state,
    held_back_note,
    parse_relayed_peer,
)
from syncd_api.v1 import replication_pb2

log = structlog.get_logger("syncd.rpc")

Context = grpc.aio.ServicerContext[Any, Any]

# The action of every method served. Invoke's depends on the operation: at least a read here,
# the servicer asks for more (`authorize`). A method missing from this table (a new RPC) is
# `Action.OTHER`: admin only until it gets its row — closed by default.
INVOKE = "/syncd.v1.Management/Invoke"
_MANAGEMENT = "/syncd.v1.Management/"
_REPLICATION = replication_pb2.DESCRIPTOR.services_by_name["Replication"]
METHOD_ACTIONS: dict[str, Action] = {
    "/grpc.health.v1.Health/Check": Action.HEALTH,
    "/grpc.health.v1.Health/Watch": Action.HEALTH,
    "/grpc.health.v1.Health/List": Action.HEALTH,
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": Action.READ,
    _MANAGEMENT + "ListBeans": Action.READ,
    _MANAGEMENT + "DescribeBean": Action.READ,
    INVOKE: Action.READ,
    _MANAGEMENT + "GetAttributes": Action.READ,
    _MANAGEMENT + "GetStatus": Action.READ,
    _MANAGEMENT + "GetRun": Action.READ,
    _MANAGEMENT + "WatchRun": Action.READ,
    _MANAGEMENT + "Cancel": Action.CANCEL,
    _MANAGEMENT + "RunAll": Action.RUN,
    _MANAGEMENT + "History": Action.READ,
    _MANAGEMENT + "Pause": Action.PAUSE,
    _MANAGEMENT + "Resume": Action.RESUME,
    _MANAGEMENT + "ListFires": Action.READ,
    _MANAGEMENT + "TailLogs": Action.READ,
    _MANAGEMENT + "WatchEvents": Action.READ,
    _MANAGEMENT + "ListAudit": Action.AUDIT,
    _MANAGEMENT + "ListReplicas": Action.READ,
    _MANAGEMENT + "AddNote": Action.NOTE,
    _MANAGEMENT + "ListNotes": Action.READ,
    _MANAGEMENT + "GetSyncStatus": Action.READ,
    _MANAGEMENT + "RepositoryHistory": Action.READ,
    # Daemon to daemon: another repository's token needs the admin role (the rule book's
    # "replication"), reads included — they carry every record of this repository.
    **{
        f"/{_REPLICATION.full_name}/{method.name}": Action.REPLICATION
        for method in _REPLICATION.methods
    },
}


@dataclass(slots=True)
class CallState:
    """What the interceptor knows of the call under way."""

    principal: Principal
    action: Action
    target: str = ""
    detail: str = ""
    audited: bool = field(default=False)


_CALL: contextvars.ContextVar[CallState] = contextvars.ContextVar("syncd_call")

ANONYMOUS_TCP = "anonymous"


def current_principal() -> Principal | None:
    state = _CALL.get(None)
    return state.principal if state is not None else None


def authorize(action: Action, target: str = "") -> None:
    """For the servicer: the call does `action` on `target`; raises when its caller may not."""
    state = _CALL.get(None)
    if state is None:
        return  # served without the interceptor (unit tests of the servicer alone)
    state.action, state.target = action, target
    Guard.authorize(state.principal, action)


def note(detail: str) -> None:
    """For the servicer: what the audit row should add (the run id started)."""
    state = _CALL.get(None)
    if state is not None:
        state.detail = detail


def _metadata(context: Context, key: str) -> str | None:
    for k, v in context.invocation_metadata() or ():
        if k == key:
            return v if isinstance(v, str) else v.decode("latin-1")
    return None


class _AuditedAbort:
    """The call's context, whose `abort` records the outcome in the audit trail *before* the
    status reaches the client (grpc.aio sends it at once), so a caller that reads the trail
    right after a refusal finds it there."""

    def __init__(
        self,
        context: Context,
        audit: Callable[[grpc.StatusCode, str], Awaitable[None]],
    ) -> None:
        self._context = context
        self._audit = audit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()
    ) -> NoReturn:
        await self._audit(code, details)
        await self._context.abort(code, details, trailing_metadata)
        raise AssertionError("unreachable")  # abort raises


class SecurityInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    def __init__(
        self,
        guard: Guard,
        recorder: LedgerRecorder,
        clock: Clock,
        relay_secret: Callable[[], str | None],
    ) -> None:
        self._guard = guard
        self._recorder = recorder
        self._clock = clock
        self._relay_secret = relay_secret
        self._wrapped: dict[str, tuple[Any, Any]] = {}  # by method: (handler, guarded handler)

    def principal(self, context: Context) -> Principal:
        """Who is calling, or UnauthenticatedError for a credential that is no good."""
        peer = context.peer() or "unknown"
        secret = self._relay_secret()
        if peer.startswith("unix"):
            relayed = parse_relayed_peer(peer, secret) if secret else None
            if relayed is None:
                # Only the daemon's user reaches the internal socket; still, no uid, no entry.
                raise UnauthenticatedError("connect through the control socket")
            return self._guard.from_unix_peer(relayed.uid, relayed.gid, relayed.pid)
        header = _metadata(context, "authorization")
        if header is not None:
            return self._guard.from_authorization(header, peer, "tcp")
        auth = context.auth_context()
        names = list(auth.get("x509_common_name") or [])
        if names:
            name = names[0].decode("utf-8", "replace")
            found = self._guard.from_certificate(name, peer)
            if found is not None:
                return found
            return Principal(f"cert CN={name}", Role.NONE, peer, "tcp")
        return Principal(ANONYMOUS_TCP, Role.NONE, peer, "tcp")

    async def _begin(self, method: str, context: Context, request: Any = None) -> CallState:
        action = METHOD_ACTIONS.get(method, Action.OTHER)
        try:
            principal = self.principal(context)
        except UnauthenticatedError as exc:  # a credential was sent, and it is no good
            await self._audit_refusal(context, method, exc)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
            raise AssertionError("unreachable") from None  # abort raises
        state = CallState(principal, action)
        _CALL.set(state)
        try:
            Guard.authorize(principal, action)
        except (UnauthenticatedError, PermissionDeniedError) as exc:
            # Audited when it would have changed something; refused reads are not (a caller
            # without a credential could otherwise fill the trail with its polling). An Invoke
            # refused here may have been a run: it is audited, naming what it asked for.
            if method == INVOKE:
                state.action = Action.RUN
                state.target = f"{getattr(request, 'bean', '')}.{getattr(request, 'operation', '')}"
            if changes_state(state.action):
                audited, held_back = self._guard.refusals.admit(principal.address)
                state.audited = not audited  # held back: counted, audited with a later one
                await self._finish(
                    state, status_code(exc).name, held_back_note(str(exc), held_back)
                )
            await context.abort(status_code(exc), str(exc))
        return state

    async def _audit_refusal(self, context: Context, method: str, exc: SyncdError) -> None:
        address = context.peer() or "unknown"
        audited, held_back = self._guard.refusals.admit(address)
        if not audited:
            return
        await self._recorder.audit(
            AuditEntry(
                at=self._clock.now(),
                actor="unknown",
                role="none",
                address=address,
                action="authenticate",
                target=method.rpartition("/")[2],
                outcome="UNAUTHENTICATED",
                detail=held_back_note(str(exc), held_back),
            )
        )

    async def _finish(self, state: CallState, outcome: str, detail: str = "") -> None:
        if state.audited or not changes_state(state.action):
            return
        state.audited = True
        p = state.principal
        await self._recorder.audit(
            AuditEntry(
                at=self._clock.now(),
                actor=p.actor,
                role=p.role.label,
                address=p.address,
                action=state.action.value,
                target=state.target,
                outcome=outcome,
                detail=clip(detail or state.detail, 200),
            )
        )

    def _unary(
        self, method: str, behaviour: Callable[[Any, Context], Awaitable[Any]]
    ) -> Callable[[Any, Context], Awaitable[Any]]:
        async def guarded(request: Any, context: Context) -> Any:
            state = await self._begin(method, context, request)

            async def audit_refusal(code: grpc.StatusCode, details: str) -> None:
                await self._finish(state, code.name, details)

            try:
                reply = await behaviour(
                    request, cast(Context, _AuditedAbort(context, audit_refusal))
                )
            except BaseException as exc:
                await self._finish(state, _outcome(context, exc), context.details() or "")
                raise
            await self._finish(state, "ok")
            return reply

        return guarded

    def _stream(self, method: str, behaviour: Callable[[Any, Context], Any]) -> Any:
        if not inspect.isasyncgenfunction(behaviour):
            return self._writer(method, behaviour)  # it answers through context.write()

        async def guarded(request: Any, context: Context) -> AsyncIterator[Any]:
            await self._begin(method, context)
            async for reply in behaviour(request, context):
                yield reply

        return guarded

    def _writer(self, method: str, behaviour: Callable[[Any, Context], Any]) -> Any:
        async def guarded(request: Any, context: Context) -> None:
            await self._begin(method, context)
            await behaviour(request, context)

        return guarded

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler: Any = await continuation(handler_call_details)
        if handler is None:
            return handler  # type: ignore[return-value]  # no such method: UNIMPLEMENTED
        method = handler_call_details.method
        # Wrapped once per method, not on every call: the registered handlers do not change.
        wrapped = self._wrapped.get(method)
        if wrapped is not None and wrapped[0] is handler:
            return wrapped[1]  # type: ignore[no-any-return]
        guarded = self._guarded(method, handler)
        self._wrapped[method] = (handler, guarded)
        return guarded  # type: ignore[no-any-return]

    def _guarded(self, method: str, handler: Any) -> Any:
        # The generated handlers are named tuples: swap the behaviour, keep the codecs.
        if handler.unary_unary is not None:
            return handler._replace(unary_unary=self._unary(method, handler.unary_unary))
        if handler.unary_stream is not None:
            return handler._replace(unary_stream=self._stream(method, handler.unary_stream))
        if handler.stream_stream is not None:
            return handler._replace(stream_stream=self._stream(method, handler.stream_stream))
        return handler._replace(stream_unary=self._unary(method, handler.stream_unary))


def _outcome(context: Context, exc: BaseException) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(exc, SyncdError):
        return status_code(exc).name
    return "CANCELLED" if isinstance(exc, asyncio.CancelledError) else "INTERNAL"


def actor_of(context: grpc.aio.ServicerContext[object, object]) -> str:
    """Who is asking, as the security interceptor established it (a uid from the kernel, a
    token's name, a certificate's subject) — never what the client says of itself."""
    principal = current_principal()
    if principal is not None:
        return principal.actor
    return context.peer() or "unknown"  # served without the interceptor (servicer unit tests)


def invoke_action(bean: Bean, op: Operation) -> Action:
    """What invoking `op` does, for the rule book."""
    if op.impact is Impact.INFO:
        return Action.READ
    if bean.name == daemonbean.NAME:
        return {daemonbean.RELOAD: Action.RELOAD, daemonbean.LOGIN_LINK: Action.LOGIN_LINK}.get(
            op.name, Action.OTHER
        )
    return Action.CANCEL if op.name == "cancel" else Action.RUN
