"""The one table from gRPC outcomes to exit codes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import grpc
import pytest

from syncctl._exit import (
    BY_STATUS,
    DESCRIPTIONS,
    ExitCode,
    classify,
    error_from_rpc,
    run_id_of,
)

CONNECT_FAILED = (
    "failed to connect to all addresses; last error: FAILED_PRECONDITION: "
    "unix:/srv/run/syncd.sock: connect failed: addr: unix:/srv/run/syncd.sock "
    "error: No such file or directory"
)


@dataclass
class Status:
    """A finished call's status, shaped as grpc.RpcError presents it."""

    status: grpc.StatusCode
    text: str = ""
    trailers: Sequence[tuple[str, str | bytes]] = ()

    def code(self) -> grpc.StatusCode:
        return self.status

    def details(self) -> str:
        return self.text

    def trailing_metadata(self) -> Sequence[tuple[str, str | bytes]]:
        return self.trailers


class TestExitCodes:
    def test_numbers_are_the_documented_ones(self) -> None:
        """Scripts depend on these numbers; renumbering any of them is a breaking change."""
        assert {c.name: int(c) for c in ExitCode} == {
            "OK": 0,
            "FAILED": 1,
            "USAGE": 2,
            "NOT_FOUND": 3,
            "ALREADY_RUNNING": 4,
            "INVALID_ARGUMENT": 5,
            "UNAVAILABLE": 6,
            "UNREACHABLE": 7,
            "BEAN_FAILING": 8,
            "DISABLED": 9,
            "UNAUTHENTICATED": 10,
            "PERMISSION_DENIED": 11,
            "INTERRUPTED": 130,
        }

    def test_table_keys_are_real_grpc_status_names(self) -> None:
        """A typo in the table would silently send that status to the fallback."""
        assert set(BY_STATUS) <= {code.name for code in grpc.StatusCode}


class TestClassify:
    @pytest.mark.parametrize(
        ("status", "expected"),
        [
            (grpc.StatusCode.NOT_FOUND, ExitCode.NOT_FOUND),
            (grpc.StatusCode.INVALID_ARGUMENT, ExitCode.INVALID_ARGUMENT),
            (grpc.StatusCode.UNAVAILABLE, ExitCode.UNAVAILABLE),
            (grpc.StatusCode.DEADLINE_EXCEEDED, ExitCode.UNAVAILABLE),
            (grpc.StatusCode.FAILED_PRECONDITION, ExitCode.FAILED),
            (grpc.StatusCode.INTERNAL, ExitCode.FAILED),
            (grpc.StatusCode.PERMISSION_DENIED, ExitCode.PERMISSION_DENIED),
            (grpc.StatusCode.UNAUTHENTICATED, ExitCode.UNAUTHENTICATED),
        ],
    )
    def test_status_codes_map_through_the_table(
        self, status: grpc.StatusCode, expected: ExitCode
    ) -> None:
        """Each status the daemon sends lands on its documented exit code."""
        assert classify(Status(status, "from the daemon")) is expected

    def test_channel_connect_failure_is_unreachable(self) -> None:
        """UNAVAILABLE raised by the channel (nothing listening) is 7, not 6."""
        assert classify(Status(grpc.StatusCode.UNAVAILABLE, CONNECT_FAILED)) is ExitCode.UNREACHABLE

    def test_draining_daemon_is_unavailable_while_up(self) -> None:
        """The daemon's own UNAVAILABLE (it is shutting down) is 6."""
        status = Status(grpc.StatusCode.UNAVAILABLE, "draining: new runs are refused")
        assert classify(status) is ExitCode.UNAVAILABLE

    def test_already_running_is_recognised_by_its_run_id_trailer(self) -> None:
        """FAILED_PRECONDITION carrying syncd-run-id means "already running"."""
        status = Status(grpc.StatusCode.FAILED_PRECONDITION, "busy", (("syncd-run-id", "r-1"),))
        assert classify(status) is ExitCode.ALREADY_RUNNING
        assert run_id_of(status) == "r-1"

    def test_disabled_job_is_recognised_by_its_trailer(self) -> None:
        """FAILED_PRECONDITION carrying syncd-disabled is a disabled job: 9, not a failure."""
        status = Status(
            grpc.StatusCode.FAILED_PRECONDITION,
            "RevalJob is disabled: no AMQP broker configured",
            (("syncd-disabled", "RevalJob"),),
        )
        assert classify(status) is ExitCode.DISABLED
        error = error_from_rpc(status, address="unix:/x", timeout=1)
        assert error.message == "RevalJob is disabled: no AMQP broker configured"

    def test_every_exit_code_is_described(self) -> None:
        """--help and the README's table list every code."""
        assert set(DESCRIPTIONS) == set(ExitCode)

    def test_already_running_is_recognised_by_its_message(self) -> None:
        """Without the trailer, the daemon's "Already running" wording is enough."""
        status = Status(grpc.StatusCode.FAILED_PRECONDITION, "Already running: Alpha")
        assert classify(status) is ExitCode.ALREADY_RUNNING


class TestMessages:
    def test_unreachable_message_names_the_socket_and_the_reason(self) -> None:
        """The operator sees which socket was tried and why it failed."""
        error = error_from_rpc(
            Status(grpc.StatusCode.UNAVAILABLE, CONNECT_FAILED),
            address="unix:/srv/run/syncd.sock",
            timeout=10,
        )
        assert error.code is ExitCode.UNREACHABLE
        assert "socket /srv/run/syncd.sock" in error.message
        assert "No such file or directory" in error.message

    def test_already_running_message_carries_the_run_id(self) -> None:
        """The active run's id is in the message even when the daemon's text lacks it."""
        error = error_from_rpc(
            Status(
                grpc.StatusCode.FAILED_PRECONDITION, "Already running", (("syncd-run-id", "r-9"),)
            ),
            address="unix:/x",
            timeout=10,
        )
        assert error.message == "Already running (run r-9)"

    def test_deadline_message_suggests_a_longer_timeout(self) -> None:
        """A timed-out call says how long it waited."""
        error = error_from_rpc(
            Status(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"),
            address="unix:/x",
            timeout=2.5,
        )
        assert error.code is ExitCode.UNAVAILABLE
        assert "within 2.5s" in error.message
        assert "--timeout" in error.message

    def test_daemon_messages_pass_through(self) -> None:
        """NOT_FOUND's "did you mean" text reaches the operator unchanged."""
        text = "no bean named 'Alpah'; did you mean Alpha?"
        error = error_from_rpc(
            Status(grpc.StatusCode.NOT_FOUND, text), address="unix:/x", timeout=1
        )
        assert (error.code, error.message) == (ExitCode.NOT_FOUND, text)
