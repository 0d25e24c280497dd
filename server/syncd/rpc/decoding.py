"""Management's method handlers, with requests that are no valid message refused as such.

The generated registration lets a request that fails to parse (a string field that is not
UTF-8, a corrupt wire format) surface as `UNKNOWN` from gRPC's own code. Here the deserializer
keeps the parse error instead, and the handler answers it with `INVALID_ARGUMENT` before the
servicer sees anything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

from syncd_api.v1 import management_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["Management"]

Context = grpc.aio.ServicerContext[Any, Any]


class Undecodable:
    """What the deserializer hands on for bytes that are no request message."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _decoder(cls: type[Message], name: str) -> Callable[[bytes], Message | Undecodable]:
    def decode(data: bytes) -> Message | Undecodable:
        try:
            return cls.FromString(data)
        except DecodeError as exc:  # its text names the problem, never the bytes
            return Undecodable(f"the request is not a valid {name}: {str(exc)[:200]}")

    return decode


def _unary(behaviour: Callable[[Any, Context], Awaitable[Any]]) -> Any:
    async def handle(request: Any, context: Context) -> Any:
        if isinstance(request, Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
        return await behaviour(request, context)

    return handle


def _stream(behaviour: Callable[[Any, Context], AsyncIterator[Any]]) -> Any:
    async def handle(request: Any, context: Context) -> AsyncIterator[Any]:
        if isinstance(request, Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
        replies = behaviour(request, context)
        try:
            async for reply in replies:
                yield reply
        finally:
            await replies.aclose()  # type: ignore[attr-defined]  # an async generator

    return handle


def _handler(method: MethodDescriptor, servicer: object) -> grpc.RpcMethodHandler[Any, Any]:
    request_cls = GetMessageClass(method.input_type)
    response_cls = GetMessageClass(method.output_type)
    behaviour = getattr(servicer, method.name)
    decode = _decoder(request_cls, method.input_type.full_name)
    if method.server_streaming:
        return grpc.unary_stream_rpc_method_handler(
            _stream(behaviour),
            request_deserializer=decode,
            response_serializer=response_cls.SerializeToString,
        )
    return grpc.unary_unary_rpc_method_handler(
        _unary(behaviour),
        request_deserializer=decode,
        response_serializer=response_cls.SerializeToString,
    )


def service_handlers(service: Any, servicer: object) -> grpc.GenericRpcHandler[Any, Any]:
    """Every method of `service` (a ServiceDescriptor) served by `servicer`."""
    handlers = {method.name: _handler(method, servicer) for method in service.methods}
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


def management_handlers(servicer: object) -> grpc.GenericRpcHandler[Any, Any]:
    """Every Management method of `servicer`, registered under the service's full name."""
    return service_handlers(SERVICE, servicer)
