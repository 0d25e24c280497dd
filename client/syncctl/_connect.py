"""Where the daemon is, and a small typed client for its Management service.

Address resolution is pure (no grpc import) so it can be used and tested cheaply; `Client` imports
grpc, and the CLI imports this module's client only once it knows it has to talk to the daemon.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Generic, TypeVar

from syncctl._exit import ExitCode, SyncctlError, error_from_rpc

if TYPE_CHECKING:
    import grpc

    from syncd_api.channel import TlsFiles
    from syncd_api.v1 import management_pb2 as pb

Request = TypeVar("Request")
Reply = TypeVar("Reply")

ADDRESS_ENV = "SYNCD_ADDRESS"
STATE_DIR_ENV = "SYNCD_STATE_DIR"
ACTOR_METADATA = "syncd-actor"
DEFAULT_TIMEOUT = 10.0

# gRPC target schemes syncctl passes through untouched.
_SCHEMES = ("unix:", "unix-abstract:", "dns:", "ipv4:", "ipv6:", "vsock:")


def state_dir(environ: Mapping[str, str]) -> str:
    """$SYNCD_STATE_DIR, else $XDG_STATE_HOME/syncd, else ~/.local/state/syncd (as the daemon)."""
    # os.path rather than pathlib: pathlib's imports cost a few ms of every cold start.
    if explicit := environ.get(STATE_DIR_ENV):
        return os.path.expanduser(explicit)
    if xdg := environ.get("XDG_STATE_HOME"):
        return os.path.join(os.path.expanduser(xdg), "syncd")
    home = environ.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".local", "state", "syncd")


def default_address(environ: Mapping[str, str]) -> str:
    """The daemon's default listen address: its socket under the state directory."""
    return f"unix:{os.path.join(state_dir(environ), 'run', 'syncd.sock')}"


def looks_like_address(text: str) -> bool:
    """True for a gRPC target or a socket path; False for jmxterm's `open 1` or a JMX URL."""
    if text.startswith(_SCHEMES) or text.startswith(("/", "./", "../", "~")):
        return True
    host, sep, port = text.rpartition(":")
    return bool(sep and host and port.isdigit() and "/" not in host)


def normalize_address(text: str) -> str:
    """A gRPC target for `text`: schemes pass through, a bare filesystem path becomes `unix:`."""
    text = text.strip()
    if text.startswith(_SCHEMES):
        return text
    host, sep, port = text.rpartition(":")
    if sep and host and port.isdigit() and "/" not in host:
        return text  # host:port
    # Anything else names a socket file; gRPC wants it absolute to avoid cwd surprises.
    return f"unix:{os.path.abspath(os.path.expanduser(text))}"


def resolve_address(flag: str | None, environ: Mapping[str, str]) -> str:
    """--address, else $SYNCD_ADDRESS, else the default socket."""
    if flag:
        return normalize_address(flag)
    if from_env := environ.get(ADDRESS_ENV):
        return normalize_address(from_env)
    return default_address(environ)


def actor() -> str:
    """Who is asking, for the daemon's run records: "alice@host (uid 1000)"."""
    uid = os.getuid()
    try:
        import pwd

        user = pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        user = os.environ.get("USER") or os.environ.get("LOGNAME") or "?"
    host = os.uname().nodename
    text = f"{user}@{host} (uid {uid})"
    # Plain gRPC metadata values must be printable ASCII.
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text)


class Stream(Generic[Reply]):
    """A server stream already under way (the request is sent when it is created).

    Iterate it for the messages; failures become SyncctlError. `close()` cancels the call, and a
    stream closed on purpose ends quietly instead of reporting the CANCELLED status it gets.
    """

    def __init__(self, call: grpc.CallIterator[Reply], client: Client) -> None:
        self._call = call
        self._client = client
        self._closed = False

    def __iter__(self) -> Iterator[Reply]:
        try:
            yield from self._call
        except self._client._grpc.RpcError as error:
            if self._closed:
                return
            raise self._client._error(error) from None

    def close(self) -> None:
        self._closed = True
        self._call.cancel()  # type: ignore[no-untyped-call]  # grpc-stubs leaves it untyped

    def __enter__(self) -> Stream[Reply]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Client:
    """One channel to the daemon; every method raises SyncctlError on failure."""

    def __init__(
        self,
        address: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        token: str | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        import grpc

        from syncd_api.channel import CredentialError, open_channel, token_metadata
        from syncd_api.v1 import management_pb2, management_pb2_grpc

        self.address = address
        self.timeout = timeout
        self._grpc = grpc
        self._pb = management_pb2
        # Never through an HTTP proxy: the daemon is a socket, or a host named on purpose.
        try:
            self._channel: grpc.Channel = open_channel(address, tls=tls)
        except CredentialError as exc:
            raise SyncctlError(ExitCode.USAGE, str(exc)) from None
        self._stub: management_pb2_grpc.ManagementStub = management_pb2_grpc.ManagementStub(
            self._channel
        )
        # The actor is only a note: the daemon records who the socket's kernel or the token
        # says the caller is.
        self._metadata: tuple[tuple[str, str], ...] = (
            (ACTOR_METADATA, actor()),
            *token_metadata(token),
        )

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _error(self, error: grpc.RpcError) -> SyncctlError:
        return error_from_rpc(error, address=self.address, timeout=self.timeout)  # type: ignore[arg-type]

    def _opened(self, call: grpc.CallIterator[Reply], started: float) -> grpc.CallIterator[Reply]:
        """`call` once the daemon has answered it (its headers), within the deadline.

        A followed stream has no deadline of its own (runs take hours), but its set-up does:
        a daemon that takes no call within --timeout is as unavailable for a stream as for a
        request. The headers come at once from a live daemon (it sends them on subscribing);
        a failed call ends the wait too, and iterating it then reports the failure.
        """
        import threading

        answered = threading.Event()

        def wait() -> None:
            try:
                call.initial_metadata()
            except self._grpc.RpcError:
                pass  # iterating the call reports it
            finally:
                answered.set()

        threading.Thread(target=wait, name="syncctl-stream-setup", daemon=True).start()
        left = self.timeout - (time.monotonic() - started)
        if not answered.wait(max(0.0, left)) or time.monotonic() - started > self.timeout:
            call.cancel()  # type: ignore[no-untyped-call]  # grpc-stubs leaves it untyped
            raise self._late()
        return call

    def _late(self) -> SyncctlError:
        return SyncctlError(
            ExitCode.UNAVAILABLE,
            f"syncd at {self.address} did not answer within {self.timeout:g}s (raise --timeout?)",
        )

    def _unary(self, rpc: grpc.UnaryUnaryMultiCallable[Request, Reply], request: Request) -> Reply:
        started = time.monotonic()
        try:
            reply = rpc(request, timeout=self.timeout, metadata=self._metadata)
        except self._grpc.RpcError as error:
            raise self._error(error) from None
        # gRPC checks deadlines on a coarse timer, so a reply can land after one (a 1 ms
        # deadline is often missed by a millisecond or two and the answer still taken): hold
        # the line here, so --timeout means what it says.
        if time.monotonic() - started > self.timeout:
            raise self._late()
        return reply

    def list_beans(self) -> pb.ListBeansResponse:
        return self._unary(self._stub.ListBeans, self._pb.ListBeansRequest())

    def describe_bean(self, bean: str) -> pb.BeanInfo:
        return self._unary(self._stub.DescribeBean, self._pb.DescribeBeanRequest(bean=bean))

    def invoke(
        self,
        bean: str,
        operation: str,
        arguments: Sequence[str] = (),
        named_arguments: Mapping[str, str] | None = None,
        *,
        with_dependants: bool = False,
    ) -> pb.InvokeResponse:
        # Every argument travels as text; the daemon coerces it to the parameter's type.
        request = self._pb.InvokeRequest(
            bean=bean,
            operation=operation,
            with_dependants=with_dependants,
            arguments=[self._pb.Value(string_value=a) for a in arguments],
            named_arguments={
                k: self._pb.Value(string_value=v) for k, v in (named_arguments or {}).items()
            },
        )
        return self._unary(self._stub.Invoke, request)

    def get_attributes(self, bean: str, names: Sequence[str] = ()) -> pb.GetAttributesResponse:
        request = self._pb.GetAttributesRequest(bean=bean, names=list(names))
        return self._unary(self._stub.GetAttributes, request)

    def get_status(self, stuck_after: float | None = None) -> pb.GetStatusResponse:
        """Every bean's status; `stuck_after` (seconds) overrides the daemon's stuck threshold."""
        request = self._pb.GetStatusRequest()
        if stuck_after is not None:
            request.stuck_after.FromNanoseconds(round(stuck_after * 1e9))
        return self._unary(self._stub.GetStatus, request)

    def get_run(self, run_id: str) -> pb.RunInfo:
        return self._unary(self._stub.GetRun, self._pb.GetRunRequest(run_id=run_id))

    def watch_run(self, run_id: str) -> Iterator[pb.RunInfo]:
        """The run now, then each change until it has finished; only the set-up has a deadline
        (runs take hours)."""
        started = time.monotonic()
        stream = self._stub.WatchRun(
            self._pb.WatchRunRequest(run_id=run_id), metadata=self._metadata
        )
        try:
            self._opened(stream, started)
            yield from stream
        except self._grpc.RpcError as error:
            raise self._error(error) from None
        finally:
            stream.cancel()  # type: ignore[no-untyped-call]  # grpc-stubs leaves it untyped

    def cancel(self, bean: str) -> pb.CancelResponse:
        return self._unary(self._stub.Cancel, self._pb.CancelRequest(bean=bean))

    def run_all(self) -> pb.RunAllResponse:
        return self._unary(self._stub.RunAll, self._pb.RunAllRequest())

    def history(self, bean: str = "", limit: int = 0) -> pb.HistoryResponse:
        return self._unary(self._stub.History, self._pb.HistoryRequest(bean=bean, limit=limit))

    def repository_history(
        self, repository: str, bean: str = "", limit: int = 0
    ) -> pb.HistoryResponse:
        request = self._pb.RepositoryHistoryRequest(repository=repository, bean=bean, limit=limit)
        return self._unary(self._stub.RepositoryHistory, request)

    def add_note(self, subject: str, text: str) -> pb.Note:
        return self._unary(self._stub.AddNote, self._pb.AddNoteRequest(subject=subject, text=text))

    def list_notes(self, subject: str = "", limit: int = 0) -> pb.ListNotesResponse:
        request = self._pb.ListNotesRequest(subject=subject, limit=limit)
        return self._unary(self._stub.ListNotes, request)

    def sync_status(self) -> pb.GetSyncStatusResponse:
        return self._unary(self._stub.GetSyncStatus, self._pb.GetSyncStatusRequest())

    def pause(self, bean: str = "") -> pb.PauseResponse:
        return self._unary(self._stub.Pause, self._pb.PauseRequest(bean=bean))

    def resume(self, bean: str = "") -> pb.PauseResponse:
        return self._unary(self._stub.Resume, self._pb.PauseRequest(bean=bean))

    def list_audit(self, since: float | None = None, limit: int = 0) -> pb.ListAuditResponse:
        """Audit entries, newest first; `since` is a POSIX time."""
        request = self._pb.ListAuditRequest(limit=limit)
        if since is not None:
            request.since.FromNanoseconds(round(since * 1e9))
        return self._unary(self._stub.ListAudit, request)

    def list_fires(self, days: float) -> pb.ListFiresResponse:
        return self._unary(self._stub.ListFires, self._pb.ListFiresRequest(days=days))

    def list_replicas(self) -> pb.ListReplicasResponse:
        return self._unary(self._stub.ListReplicas, self._pb.ListReplicasRequest())

    def tail_logs(
        self,
        *,
        lines: int,
        follow: bool = False,
        job: str = "",
        run_id: str = "",
        level: str = "",
    ) -> Stream[pb.LogLines]:
        """The last `lines` log lines, then (with follow) every new one; only the set-up has a
        deadline when following, since the stream only ends when the operator stops it."""
        request = self._pb.TailLogsRequest(
            lines=lines, follow=follow, job=job, run_id=run_id, level=level
        )
        started = time.monotonic()
        call = self._stub.TailLogs(
            request, timeout=None if follow else self.timeout, metadata=self._metadata
        )
        return Stream(self._opened(call, started), self)

    def watch_events(self, bean: str = "") -> Stream[pb.DaemonEvent]:
        """Daemon events from now on; the call starts at once, so open it before asking for
        what should be watched (see `run-all --wait`)."""
        started = time.monotonic()
        call = self._stub.WatchEvents(
            self._pb.WatchEventsRequest(bean=bean), metadata=self._metadata
        )
        return Stream(self._opened(call, started), self)
