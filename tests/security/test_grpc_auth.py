"""gRPC: tokens and roles over TCP, the kernel's uid over the socket, and the audit trail."""

from __future__ import annotations

from pathlib import Path

import grpc

from syncd_api.v1 import management_pb2 as pb
from tests.harness import Running, running_daemon
from tests.packs.sample import QUICK, Gates, gated_job
from tests.security.support import (
    ADMIN,
    OPERATOR,
    VIEWER,
    audit,
    bearer,
    refused,
    run,
    stub,
    token_auth,
)


def test_an_unauthenticated_or_unknown_token_tcp_client_gets_unauthenticated(
    short_tmp: Path,
) -> None:
    """No credential, or a wrong one, is UNAUTHENTICATED over TCP, even on loopback; the
    refusal of a token is audited without the token."""

    async def main() -> None:
        async with running_daemon(
            short_tmp / "s", [QUICK], auth=token_auth(), tcp_address="127.0.0.1:0"
        ) as rt:
            tcp = rt.daemon.listening.addresses[1]
            async with grpc.aio.insecure_channel(tcp) as channel:
                remote = stub(channel)
                error = await refused(remote.GetStatus(pb.GetStatusRequest()))
                assert error.code() is grpc.StatusCode.UNAUTHENTICATED
                wrong = OPERATOR[:-4] + "abcd"
                error = await refused(
                    remote.GetStatus(pb.GetStatusRequest(), metadata=bearer(wrong))
                )
                assert error.code() is grpc.StatusCode.UNAUTHENTICATED
                assert wrong not in (error.details() or "")
                request = pb.InvokeRequest(bean="QuickJob", operation="run")
                error = await refused(remote.Invoke(request))
                assert error.code() is grpc.StatusCode.UNAUTHENTICATED
            assert rt.daemon.service.active("QuickJob") is None
            entries = await audit(rt.stub)
            refusals = [e for e in entries if e.outcome == "UNAUTHENTICATED"]
            assert len(refusals) >= 2
            assert all(e.address.startswith("ipv4:127.0.0.1:") for e in refusals)
            for entry in entries:
                assert wrong not in str(entry) and OPERATOR not in str(entry)

    run(main())


def test_a_viewer_cannot_run_cancel_pause_resume_or_reload_over_grpc(short_tmp: Path) -> None:
    """PERMISSION_DENIED for each, nothing starts or pauses; reads work; each refusal is
    audited with the token's name and role."""
    gates = Gates()

    async def main() -> None:
        async with running_daemon(
            short_tmp / "s", [gated_job(gates)], auth=token_auth(), tcp_address="127.0.0.1:0"
        ) as rt:
            try:
                await scenario(rt)
            finally:
                gates.release.set()

    async def scenario(rt: Running) -> None:
        started = await rt.stub.Invoke(pb.InvokeRequest(bean="GatedJob", operation="run"))
        tcp = rt.daemon.listening.addresses[1]
        async with grpc.aio.insecure_channel(tcp) as channel:
            remote, as_viewer = stub(channel), bearer(VIEWER)
            status = await remote.GetStatus(pb.GetStatusRequest(), metadata=as_viewer)
            assert [b.ref.name for b in status.beans] == ["GatedJob"]
            ask = await remote.Invoke(
                pb.InvokeRequest(bean="GatedJob", operation="isCurrentlyRunning"),
                metadata=as_viewer,
            )
            assert ask.result.bool_value is True
            for call in (
                remote.Invoke(
                    pb.InvokeRequest(bean="GatedJob", operation="run"), metadata=as_viewer
                ),
                remote.Invoke(
                    pb.InvokeRequest(bean="GatedJob", operation="cancel"), metadata=as_viewer
                ),
                remote.Cancel(pb.CancelRequest(bean="GatedJob"), metadata=as_viewer),
                remote.RunAll(pb.RunAllRequest(), metadata=as_viewer),
                remote.Pause(pb.PauseRequest(bean="GatedJob"), metadata=as_viewer),
                remote.Resume(pb.PauseRequest(), metadata=as_viewer),
                remote.Invoke(
                    pb.InvokeRequest(bean="Daemon", operation="reloadConfig"),
                    metadata=as_viewer,
                ),
                remote.Invoke(
                    pb.InvokeRequest(bean="Daemon", operation="consoleLoginLink"),
                    metadata=as_viewer,
                ),
            ):
                error = await refused(call)
                assert error.code() is grpc.StatusCode.PERMISSION_DENIED, error.details()
                assert "viewer" in (error.details() or "")
        active = rt.daemon.service.active("GatedJob")
        assert active is not None and active.run_id == started.run.run_id
        assert not active.cancel_requested.is_set()
        assert not await rt.daemon.recorder.holds()
        denied = [e for e in await audit(rt.stub) if e.outcome == "PERMISSION_DENIED"]
        assert [e.action for e in denied] == [
            "run", "cancel", "cancel", "run", "pause", "resume", "reload", "login-link",
        ]  # fmt: skip
        assert {(e.actor, e.role) for e in denied} == {("token watcher", "viewer")}
        assert denied[0].target == "GatedJob.run"

    run(main())


def test_an_operator_runs_over_tcp_and_the_run_and_audit_name_its_token(short_tmp: Path) -> None:
    """The run's actor and the audit row are the token's name; an operator may not reload,
    an admin may."""

    async def main() -> None:
        async with running_daemon(
            short_tmp / "s", [QUICK], auth=token_auth(), tcp_address="127.0.0.1:0"
        ) as rt:
            tcp = rt.daemon.listening.addresses[1]
            async with grpc.aio.insecure_channel(tcp) as channel:
                remote = stub(channel)
                reply = await remote.Invoke(
                    pb.InvokeRequest(bean="QuickJob", operation="run"),
                    metadata=(*bearer(OPERATOR), ("syncd-actor", "somebody else")),
                )
                assert reply.run.actor == "token ci"
                reload = pb.InvokeRequest(bean="Daemon", operation="reloadConfig")
                error = await refused(remote.Invoke(reload, metadata=bearer(OPERATOR)))
                assert error.code() is grpc.StatusCode.PERMISSION_DENIED
                error = await refused(remote.Invoke(reload, metadata=bearer(ADMIN)))
                # Past the rule book: this daemon has no configuration file to re-read.
                assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
            entries = await audit(rt.stub)
            ran = next(e for e in entries if e.action == "run")
            assert (ran.actor, ran.role, ran.outcome) == ("token ci", "operator", "ok")
            assert ran.target == "QuickJob.run" and ran.detail == f"run {reply.run.run_id}"
            assert ran.address.startswith("ipv4:127.0.0.1:")
            assert [(e.actor, e.outcome) for e in entries if e.action == "reload"] == [
                ("token ci", "PERMISSION_DENIED"),
                ("token root-ops", "FAILED_PRECONDITION"),
            ]

    run(main())


def test_on_the_socket_the_actor_is_the_kernel_uid_not_what_the_client_says(
    short_tmp: Path,
) -> None:
    """SO_PEERCRED decides: the socket's owner is admin, recorded by uid; a token sent over the
    socket changes nothing."""
    import os
    import pwd

    async def main() -> None:
        async with running_daemon(short_tmp / "s", [QUICK], auth=token_auth()) as rt:
            reply = await rt.stub.Invoke(
                pb.InvokeRequest(bean="QuickJob", operation="run"),
                metadata=(("syncd-actor", "mallory@elsewhere (uid 4242)"), *bearer(VIEWER)),
            )
            me = f"uid {os.getuid()} ({pwd.getpwuid(os.getuid()).pw_name})"
            assert reply.run.actor == me
            entries = await audit(rt.stub)
            assert [(e.actor, e.role, e.action, e.outcome) for e in entries] == [
                (me, "admin", "run", "ok")
            ]
            assert entries[0].address == f"unix:pid {os.getpid()}"

    run(main())


def test_every_rpc_served_has_a_row_in_the_rule_book() -> None:
    """A new RPC must be classified (until then it is admin only): every method of the
    Management, health and reflection services is in the gRPC edge's table."""
    from grpc_health.v1 import health_pb2
    from grpc_reflection.v1alpha import reflection_pb2

    from syncd.rpc.guard import METHOD_ACTIONS
    from syncd_api.v1 import replication_pb2

    served = [
        f"/{service.full_name}/{method.name}"
        for service in (
            pb.DESCRIPTOR.services_by_name["Management"],
            replication_pb2.DESCRIPTOR.services_by_name["Replication"],
            health_pb2.DESCRIPTOR.services_by_name["Health"],
            reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"],
        )
        for method in service.methods
    ]
    assert [m for m in served if m not in METHOD_ACTIONS] == []
