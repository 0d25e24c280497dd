"""Refusals an address may have audited one by one: a flood of bad credentials or refused
writes does not fill the audit trail, and what is held back is counted, not lost."""

from __future__ import annotations

from pathlib import Path

import grpc
from hypothesis import given
from hypothesis import strategies as st

from syncd.security import RefusalBudget
from syncd.security._refusals import AUDITED_PER_MINUTE, host_of
from syncd_api.v1 import management_pb2 as pb
from tests.harness import running_daemon
from tests.packs.sample import QUICK
from tests.security.support import audit, bearer, refused, run, stub, token_auth
from tests.web._support import bearer as http_bearer
from tests.web._support import call, console_daemon, console_session, console_url, record_status_job


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_address_gets_its_quota_a_minute_and_the_rest_ride_on_the_next_audited() -> None:
    ticks = Ticks()
    budget = RefusalBudget(per_minute=3, monotonic=ticks)
    answers = [budget.admit("ipv4:10.0.0.7:5000") for _ in range(5)]
    assert answers == [(True, 0), (True, 0), (True, 0), (False, 0), (False, 0)]
    assert budget.admit("ipv4:10.0.0.8:5000") == (True, 0)  # another address: its own quota
    ticks.now = 60.0
    assert budget.admit("ipv4:10.0.0.7:6000") == (True, 2)  # a new port, the same host
    assert budget.admit("ipv4:10.0.0.7:6001") == (True, 0)


def test_the_host_of_an_address_drops_only_the_port() -> None:
    assert host_of("ipv4:127.0.0.1:51234") == "ipv4:127.0.0.1"
    assert host_of("ipv6:[::1]:5000") == "ipv6:[::1]"
    assert host_of("10.0.0.7") == "10.0.0.7"
    assert host_of("unix:/run/syncd.sock") == "unix:/run/syncd.sock"
    assert host_of("ipv4:") == "ipv4:"


@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.floats(0.0, 40.0, allow_nan=False)),
        max_size=200,
    ),
    st.integers(1, 5),
)
def test_no_window_audits_more_than_its_quota_and_every_refusal_is_counted(
    refusals: list[tuple[int, float]], per_minute: int
) -> None:
    """Audited within any one window ≤ the quota; audited + held back = refused; once a
    window has passed, the next refusal of each address reports all that were held back."""
    ticks = Ticks()
    budget = RefusalBudget(per_minute=per_minute, monotonic=ticks)
    refused_by: dict[int, int] = {}
    counted_by: dict[int, int] = {}
    audited_at: dict[int, list[float]] = {}
    for who, step in refusals:
        ticks.now += step
        audited, held_back = budget.admit(f"ipv4:10.0.0.{who}:{4000 + who}")
        refused_by[who] = refused_by.get(who, 0) + 1
        if audited:
            counted_by[who] = counted_by.get(who, 0) + 1 + held_back
            audited_at.setdefault(who, []).append(ticks.now)
        assert held_back == 0 or audited
    for times in audited_at.values():
        for i, start in enumerate(times):
            assert sum(1 for t in times[i:] if t - start < 60.0) <= 2 * per_minute
    ticks.now += 61.0
    for who in refused_by:
        audited, held_back = budget.admit(f"ipv4:10.0.0.{who}:9999")
        assert audited
        assert counted_by.get(who, 0) + held_back == refused_by[who]


def test_a_flood_of_bad_tokens_over_grpc_audits_the_quota_and_refuses_them_all(
    short_tmp: Path,
) -> None:
    async def main() -> None:
        async with running_daemon(
            short_tmp / "s", [QUICK], auth=token_auth(), tcp_address="127.0.0.1:0"
        ) as rt:
            tcp = rt.daemon.listening.addresses[1]
            flood = AUDITED_PER_MINUTE + 15
            async with grpc.aio.insecure_channel(tcp) as channel:
                remote = stub(channel)
                for i in range(flood):
                    error = await refused(
                        remote.GetStatus(pb.GetStatusRequest(), metadata=bearer(f"guess-{i}"))
                    )
                    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
            refusals = [e for e in await audit(rt.stub) if e.outcome == "UNAUTHENTICATED"]
            assert len(refusals) == AUDITED_PER_MINUTE

    run(main())


def test_a_flood_of_bad_tokens_over_http_audits_the_quota_and_refuses_them_all(
    short_tmp: Path,
) -> None:
    async def main() -> None:
        async with (
            console_daemon(short_tmp / "s", [record_status_job()]) as daemon,
            console_session() as http,
        ):
            url = console_url(daemon, "api/jobs/status")
            for i in range(AUDITED_PER_MINUTE + 15):
                status, _ = await call(http, "GET", url, headers=http_bearer(f"guess-{i}"))
                assert status == 401
            entries = await daemon.recorder.audit_entries(None, 1000)
            assert len([e for e in entries if e.outcome == "HTTP 401"]) == AUDITED_PER_MINUTE

    run(main())
