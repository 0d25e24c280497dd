"""A relay in front of the real daemon, for the few tests that need the daemon to misbehave in
a way it never does on its own: streams not answered at all, event streams that lose events
or end at once. Requests and replies pass through as bytes; the relay implements nothing of
the contract (every answer is the daemon's), it only holds back, drops or cuts a stream."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc

from syncd_api.v1 import management_pb2 as pb
from tests.waiting import BOUND

METHODS = pb.DESCRIPTOR.services_by_name["Management"].methods_by_name

if TYPE_CHECKING:  # generic in the stubs only
    _Handler = grpc.GenericRpcHandler[Any, Any]
else:
    _Handler = grpc.GenericRpcHandler


@dataclass
class Faults:
    """What the relay does to streams. `stall` unset: no stream is answered (no headers) until
    it is set. `drop`: WatchEvents messages for which it is true never arrive. `cut`: a stream
    ends after that many messages (0: right after the daemon's headers), as at a shutdown."""

    stall: threading.Event | None = None
    drop: Callable[[pb.DaemonEvent], bool] = lambda _event: False
    cut: int | None = None  # messages let through before the stream ends
    dropped: list[pb.DaemonEvent] = field(default_factory=list)


def _forwarded(context: grpc.ServicerContext) -> tuple[tuple[str, str], ...]:
    """The caller's own metadata (its actor), not the transport's."""
    return tuple(
        (key, value)
        for key, value in context.invocation_metadata()
        if key.startswith("syncd-") and isinstance(value, str)
    )


class _Relay(_Handler):
    def __init__(self, channel: grpc.Channel, faults: Faults) -> None:
        self._channel = channel
        self._faults = faults

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = METHODS.get(details.method.rsplit("/", 1)[-1])
        if method is None:
            return None
        if method.server_streaming:
            return grpc.unary_stream_rpc_method_handler(self._stream(details.method, method.name))
        forward = self._channel.unary_unary(details.method, None, None)  # bytes through

        def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
            try:
                reply: bytes = forward(request, timeout=BOUND, metadata=_forwarded(context))
            except grpc.RpcError as error:
                context.set_trailing_metadata(tuple(error.trailing_metadata() or ()))  # type: ignore[arg-type]
                context.abort(error.code(), error.details() or "")
            return reply

        return grpc.unary_unary_rpc_method_handler(unary)

    def _stream(
        self, path: str, name: str
    ) -> Callable[[bytes, grpc.ServicerContext], Iterator[bytes]]:
        faults = self._faults
        forward = self._channel.unary_stream(path, None, None)

        def stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
            if faults.stall is not None:
                faults.stall.wait(BOUND)
                context.abort(grpc.StatusCode.UNAVAILABLE, "held back until the test ended")
            upstream = forward(request, metadata=_forwarded(context))
            context.add_callback(upstream.cancel)
            with contextlib.suppress(grpc.RpcError):
                context.send_initial_metadata(tuple(upstream.initial_metadata() or ()))
            let_through = faults.cut
            try:
                if let_through == 0:
                    return
                for message in upstream:
                    if name == "WatchEvents":
                        event = pb.DaemonEvent.FromString(message)
                        if faults.drop(event):
                            faults.dropped.append(event)
                            continue
                    yield message
                    if let_through is not None:
                        let_through -= 1
                        if let_through == 0:
                            return
            except grpc.RpcError as error:
                if error.code() is not grpc.StatusCode.CANCELLED:
                    context.abort(error.code(), error.details() or "")

        return stream


@contextlib.contextmanager
def relay(channel: grpc.Channel, address: str, faults: Faults) -> Iterator[str]:
    """Serve the relay on `address` in front of the daemon `channel` reaches; yields `address`."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((_Relay(channel, faults),))
    server.add_insecure_port(address)
    server.start()
    try:
        yield address
    finally:
        if faults.stall is not None:
            faults.stall.set()
        server.stop(grace=None).wait(BOUND)
