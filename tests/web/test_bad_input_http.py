"""Bad input over HTTP: every route answers 4xx (JSON under api/), never a 5xx, and a refused
request starts no run.

The cases the hardening issue reported come first; then Hypothesis sends arbitrary methods,
paths, queries, headers and bodies to every route of a real daemon's listener.
"""

from __future__ import annotations

import http.client
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.app.daemon import Daemon
from syncd.config import HttpConfig
from syncd_api.v1 import management_pb2 as pb
from syncd_api.v1 import management_pb2_grpc as pb_grpc
from tests.background import daemon_in_thread
from tests.test_bad_input_rpc import TYPED
from tests.web._support import OPERATOR, TOKENS, VIEWER, record_status_job

TIMEOUT = 10.0
BASE = "/sync/"


@dataclass
class Listener:
    daemon: Daemon
    host: str
    port: int
    stub: pb_grpc.ManagementStub

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> tuple[int, str, bytes]:
        """Status, content type and body of one request (a stream's body is not read)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
        try:
            conn.putrequest(method, path, skip_host="Host" in (headers or {}))
            for name, value in (headers or {}).items():
                conn.putheader(name, value)
            if body or method not in ("GET", "HEAD"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            response = conn.getresponse()
            kind = response.getheader("Content-Type", "").split(";")[0]
            data = b"" if kind == "text/event-stream" or method == "HEAD" else response.read()
            return response.status, kind, data
        finally:
            conn.close()

    def run_ids(self) -> set[str]:
        reply = self.stub.History(pb.HistoryRequest(limit=10_000), timeout=TIMEOUT)
        return {r.run_id for r in reply.runs}


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    root = Path(tempfile.mkdtemp(prefix="sd-"))
    # Anonymous reads opened (the single-user setting), so the Host checks answer reads too.
    config = HttpConfig(address="127.0.0.1:0", open_read=True)
    try:
        with (
            daemon_in_thread(
                root / "state", [TYPED, record_status_job()], http=config, auth=TOKENS
            ) as daemon,
            grpc.insecure_channel(daemon.listening.addresses[0]) as channel,
        ):
            url = urlsplit(daemon.listening.http)
            assert url.hostname is not None and url.port is not None
            yield Listener(daemon, url.hostname, url.port, pb_grpc.ManagementStub(channel))
    finally:
        shutil.rmtree(root, ignore_errors=True)


# Methods the HTTP parser knows: a request with any other is refused (400, text) by the parser
# itself, before the application or its JSON error middleware sees it.
STANDARD_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")


def assert_answered(status: int, kind: str, body: bytes, path: str, method: str = "GET") -> None:
    assert status < 500, (status, body[:300])
    if path.startswith(BASE + "api/") and status >= 400 and method in STANDARD_METHODS:
        assert kind == "application/json", (status, kind, body[:300])
        if method == "HEAD":
            return  # no body
        answer = json.loads(body)
        assert isinstance(answer["error"], str) and len(answer["error"]) <= 1000


OP = {"Authorization": f"Bearer {OPERATOR}"}


def _post(listener: Listener, path: str, payload: Any) -> tuple[int, Any]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    status, kind, body = listener.request("POST", BASE + path, OP, raw)
    assert_answered(status, kind, body, BASE + path)
    return status, json.loads(body)


class TestReportedCases:
    def test_a_malformed_host_header_is_a_400(self, listener: Listener) -> None:
        status, kind, body = listener.request("GET", BASE + "api/v1/jobs", {"Host": "[::1"})
        assert (status, kind) == (400, "application/json")
        assert "malformed Host header" in json.loads(body)["error"]

    @pytest.mark.parametrize(
        "path", ["api/v1/jobs/TypedJob/runs?limit=²", "api/v1/jobs/TypedJob/runs?limit=0"]
    )
    def test_a_bad_limit_is_a_400(self, listener: Listener, path: str) -> None:
        status, kind, body = listener.request("GET", BASE + quote(path, safe="/?="))
        assert (status, kind) == (400, "application/json")
        assert "limit must be a whole number" in json.loads(body)["error"]

    def test_a_bad_lines_count_is_a_400(self, listener: Listener) -> None:
        reply = listener.stub.Invoke(
            pb.InvokeRequest(bean="TypedJob", operation="typedJob"), timeout=TIMEOUT
        )
        for _ in listener.stub.WatchRun(pb.WatchRunRequest(run_id=reply.run.run_id)):
            pass
        path = f"api/v1/runs/{reply.run.run_id}/logs?lines=%C2%B2"
        status, kind, body = listener.request("GET", BASE + path)
        assert (status, kind) == (400, "application/json")
        assert "lines must be a whole number" in json.loads(body)["error"]

    @pytest.mark.parametrize(
        "payload",
        [
            b"[" * 40 + b"]" * 40,
            json.dumps({"arguments": {"filter": json.loads("[" * 40 + "]" * 40)}}).encode(),
            b"[" * 100_000,
            b'{"arguments": {"ratio": 1e999}}',
            b'{"arguments": {"label": "\\ud800"}}',
            b"\xff\xfe",
        ],
        ids=["nested-body", "nested-argument", "100k-deep", "overflow", "surrogate", "not-utf8"],
    )
    def test_a_bad_body_is_a_400(self, listener: Listener, payload: bytes) -> None:
        before = listener.run_ids()
        status, answer = _post(listener, "api/v1/jobs/TypedJob/run", payload)
        assert status == 400, answer
        assert listener.run_ids() == before

    @pytest.mark.parametrize(
        "since", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00", "x" * 100_000]
    )
    def test_an_out_of_range_date_is_a_400(self, listener: Listener, since: str) -> None:
        status, answer = _post(
            listener, "api/v1/jobs/TypedJob/run", {"arguments": {"since": since}}
        )
        assert status == 400 and answer["parameter"] == "since", answer
        assert len(answer["error"]) < 400

    def test_the_old_api_refuses_a_bad_date_with_its_own_400(self, listener: Listener) -> None:
        status, kind, body = listener.request(
            "PUT", BASE + "api/job/personRecordStatusJob", OP, b'{"dateOverride": "2026-13-45"}'
        )
        assert (status, kind) == (400, "application/json")
        assert "is not a date" in json.loads(body)["error"]

    @pytest.mark.parametrize(
        ("method", "path", "status"),
        [
            ("GET", "api/nothing", 404),
            ("GET", "api/v1/nothing/here", 404),
            ("DELETE", "api/v1/jobs", 405),
            ("PATCH", "api/jobs/status", 405),
            ("GET", "api/job/x", 405),
        ],
    )
    def test_404_and_405_under_api_are_json(
        self, listener: Listener, method: str, path: str, status: int
    ) -> None:
        got, kind, body = listener.request(method, BASE + path)
        assert (got, kind) == (status, "application/json")
        assert json.loads(body)["error"]

    def test_an_oversized_body_is_a_json_413(self, listener: Listener) -> None:
        payload = b'{"arguments": {"label": "' + b"x" * (2 * 1024 * 1024) + b'"}}'
        status, kind, body = listener.request(
            "POST", BASE + "api/v1/jobs/TypedJob/run", OP, payload
        )
        assert (status, kind) == (413, "application/json")
        assert "too large" in json.loads(body)["error"]

    def test_a_bad_origin_is_a_403(self, listener: Listener) -> None:
        """An Origin that is no URL (`[::1` again) is a cross-origin refusal, not a crash."""
        config = listener.daemon.config.http
        assert not config.open_write  # anonymous may not run here: the origin check is moot
        status, kind, _ = listener.request(
            "POST", BASE + "api/v1/run-all", {"Origin": "http://[::1"}, b""
        )
        assert status in (401, 403) and kind == "application/json"


# --- Hypothesis ------------------------------------------------------------------------------

_TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_methods = st.one_of(
    st.sampled_from(STANDARD_METHODS),
    st.text(_TOKEN_CHARS, min_size=1, max_size=12),
)
_segment = st.one_of(
    st.sampled_from(["TypedJob", "PersonRecordStatusJob", "personRecordStatusJob", "x", ""]),
    st.text(max_size=60).map(lambda t: quote(t, safe="")),
    st.text("%/.:;@!$&'()*+,=~-_0123456789abcdefABCDEF", max_size=20),
)
_templates = st.sampled_from(
    [
        "",
        "api/v1/session",
        "api/v1/jobs",
        "api/v1/jobs/{}",
        "api/v1/jobs/{}/runs",
        "api/v1/jobs/{}/run",
        "api/v1/jobs/{}/cancel",
        "api/v1/run-all",
        "api/v1/runs/{}",
        "api/v1/runs/{}/logs",
        "api/v1/events",
        "api/v1/replication",
        "api/openapi.json",
        "api/jobs/status",
        "api/job/{}",
        "api/jobs",
        "api/jobs/",
        "api/sys/profile",
        "api/{}",
        "static/{}",
        "{}",
    ]
)
_query = st.one_of(
    st.just(""),
    st.dictionaries(
        st.sampled_from(["limit", "lines", "token", "x", ""]) | st.text(max_size=10),
        st.sampled_from(["1", "0", "200", "201", "5000", "5001", "-1", "²", "1e3", " 3"])
        | st.text(max_size=20),
        max_size=3,
    ).map(lambda q: "?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in q.items())),
)
_header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=80
).map(str.strip)
_headers = st.fixed_dictionaries(
    {},
    optional={
        "Authorization": st.one_of(
            st.just(f"Bearer {OPERATOR}"), st.just(f"Bearer {VIEWER}"), _header_values
        ),
        "Host": st.one_of(
            st.sampled_from(["[::1", "[::1]x", "127.0.0.1:1", "[", ":", "evil"]), _header_values
        ),
        "Origin": st.one_of(st.sampled_from(["null", "http://[::1", "http://x"]), _header_values),
        "X-CSRF-Token": _header_values,
        "Content-Type": st.one_of(st.just("application/json"), _header_values),
        "Accept": _header_values,
    },
)
_json_bodies = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=15,
)
_arguments = st.dictionaries(
    st.sampled_from([p.name for p in TYPED.parameters] + ["dateOverride", "nope"]),
    _json_bodies
    | st.sampled_from(["9999-12-31T23:59:59-23:59", "2026-01-31", "²", "ANY", "1e999"]),
    max_size=4,
)
_bodies = st.one_of(
    st.just(b""),
    st.binary(max_size=200),
    _json_bodies.map(lambda v: json.dumps(v).encode()),
    st.builds(
        lambda a, d, extra: json.dumps({"arguments": a, "withDependants": d, **extra}).encode(),
        _arguments,
        st.one_of(st.booleans(), st.just("yes"), st.none()),
        st.dictionaries(st.text(max_size=8), st.integers(), max_size=1),
    ),
    _arguments.map(lambda a: json.dumps(a).encode()),  # the old REST API's body
    st.integers(1, 2000).map(lambda n: b"[" * n + b"]" * n),
)


def _request_path(template: str, segment: str, query: str) -> str:
    return BASE + template.format(segment) + query


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=_methods,
    template=_templates,
    segment=_segment,
    query=_query,
    headers=_headers,
    body=_bodies,
)
def test_any_request_gets_an_answer_never_a_5xx(
    listener: Listener,
    method: str,
    template: str,
    segment: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
) -> None:
    path = _request_path(template, segment, query)
    before = listener.run_ids()
    status, kind, data = listener.request(method, path, headers, body)
    assert_answered(status, kind, data, path, method)
    if status >= 400:
        assert listener.run_ids() == before, "a refused request started a run"
    else:
        # A run this request started ends before the next example, so each starts from idle.
        for run_id in listener.run_ids() - before:
            for _ in listener.stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=TIMEOUT):
                pass
