"""Fixture helpers for the search and reval tests: hand-built TCS rows, and a small in-process
stand-in for the Elasticsearch REST API with fault injection.

The stand-in implements only what the sink and searcher call (index create/delete/exists,
bulk, settings, refresh, count, aliases, a simple_query_string search), speaks the real
client's wire protocol (so the official client's request building is exercised too), and can
fail chosen requests: an HTTP status, items of a bulk refused, or a dropped connection.
"""

from __future__ import annotations

import fnmatch
import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from syncd_tis._schema import (
    contact_details,
    gdc_details,
    gmc_details,
    person,
    person_owner,
    person_trust,
    placement,
    placement_specialty,
    programme_membership,
    specialty,
)
from syncd_tis._search_schema import curriculum_membership, training_number
from tests.tis.conftest import Db


def add_person(
    db: Db,
    *,
    surname: str | None = "Smith",
    forenames: str | None = "Ann",
    gmc: str | None = None,
    gdc: str | None = None,
    status: str | None = "CURRENT",
    role: str = "DR in Training",
    contact: bool = True,
) -> int:
    """A Person with its one-to-one rows."""
    pid = db.insert(person, intrepidId=None, status=status, role=role)
    if contact:
        db.insert(contact_details, id=pid, surname=surname, forenames=forenames)
    if gmc is not None:
        db.insert(gmc_details, id=pid, gmcNumber=gmc)
    if gdc is not None:
        db.insert(gdc_details, id=pid, gdcNumber=gdc)
    return pid


def add_membership(
    db: Db,
    person_id: int,
    programme_id: int,
    start: date | None,
    end: date | None,
    *,
    curricula: int = 1,
    training: str | None = None,
) -> tuple[int, list[int]]:
    """A ProgrammeMembership with `curricula` CurriculumMemberships; returns (pm id, cm ids)."""
    number_id = db.insert(training_number, trainingNumber=training) if training else None
    pm_uuid = str(uuid.uuid4())
    pm_id = db.insert(
        programme_membership,
        uuid=pm_uuid,
        personId=person_id,
        programmeId=programme_id,
        programmeStartDate=start,
        programmeEndDate=end,
        trainingNumberId=number_id,
    )
    cms = [
        db.insert(curriculum_membership, programmeMembershipUuid=pm_uuid, curriculumId=n)
        for n in range(curricula)
    ]
    return pm_id, cms


def add_specialty(db: Db, name: str, code: str) -> int:
    return db.insert(specialty, name=name, specialtyCode=code)


def add_placement(
    db: Db,
    person_id: int,
    post_id: int,
    start: date | None,
    end: date | None,
    *,
    grade: tuple[int, str] = (1, "F1"),
    site: tuple[int, str] = (1, "S00001"),
    placement_type: str = "In Post",
    specialty_id: int | None = None,
) -> int:
    plid = db.insert(
        placement,
        traineeId=person_id,
        postId=post_id,
        dateFrom=start,
        dateTo=end,
        gradeId=grade[0],
        gradeAbbreviation=grade[1],
        siteId=site[0],
        siteCode=site[1],
        placementType=placement_type,
        lifecycleState="APPROVED",
    )
    if specialty_id is not None:
        db.insert(
            placement_specialty,
            placementId=plid,
            specialtyId=specialty_id,
            placementSpecialtyType="PRIMARY",
        )
    return plid


def add_owner(db: Db, person_id: int, owner: str | None, rule: str | None) -> None:
    db.insert(person_owner, id=person_id, owner=owner, rule=rule)


def add_trust(db: Db, person_id: int, trust_id: int) -> None:
    db.insert(person_trust, personId=person_id, trustId=trust_id)


# ---- a stand-in Elasticsearch --------------------------------------------------------------


@dataclass
class FakeIndex:
    mappings: dict[str, Any]
    settings: dict[str, Any]
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    aliases: set[str] = field(default_factory=set)


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    times: int
    status: int = 0  # an HTTP status to answer with; 0 with drop=False: refuse bulk items
    drop: bool = False  # close the connection without an answer
    items: int = 0  # bulk only: refuse the first `items` items with `status`


class FakeElasticsearch:
    """State of the stand-in; `url` is where the client connects."""

    def __init__(self) -> None:
        self.indices: dict[str, FakeIndex] = {}
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, int]] = []  # method, path, body bytes
        self.lock = threading.Lock()
        self.url = ""

    def fail(
        self,
        method: str,
        path: str,
        *,
        status: int = 0,
        times: int = 1,
        drop: bool = False,
        items: int = 0,
    ) -> None:
        """Make the next `times` requests matching (method, path regex) fail."""
        self.faults.append(Fault(method, re.compile(path), times, status, drop, items))

    def take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.method == method and fault.path.search(path) and fault.times > 0:
                fault.times -= 1
                return fault
        return None

    def aliased(self, alias: str) -> list[str]:
        return sorted(n for n, i in self.indices.items() if alias in i.aliases)

    def bulk_sizes(self) -> list[int]:
        return [size for method, path, size in self.requests if path.endswith("/_bulk")]


def _error(kind: str, status: int, reason: str = "") -> tuple[int, dict[str, Any]]:
    return status, {"error": {"type": kind, "reason": reason or kind}, "status": status}


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _reply(self, status: int, body: dict[str, Any] | None) -> None:
        data = b"" if body is None or self.command == "HEAD" else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        with fake.lock:
            fake.requests.append((self.command, path, len(raw)))
            fault = fake.take_fault(self.command, path)
            if fault is not None and fault.drop:
                self.close_connection = True
                self.connection.close()
                return
            if fault is not None and not fault.items:
                self._reply(*_error("injected_fault", fault.status))
                return
            status, body = self._route(fake, self.command, path, query, raw, fault)
        self._reply(status, body)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    def _route(
        self,
        fake: FakeElasticsearch,
        method: str,
        path: str,
        query: dict[str, list[str]],
        raw: bytes,
        fault: Fault | None,
    ) -> tuple[int, dict[str, Any] | None]:
        segments = [s for s in path.split("/") if s]
        body = json.loads(raw) if raw and not path.endswith("/_bulk") else {}
        if segments == ["_aliases"] and method == "POST":
            return self._update_aliases(fake, body["actions"])
        if len(segments) == 2 and segments[0] == "_alias" and method == "GET":
            names = fake.aliased(segments[1])
            if not names:
                return _error("aliases_not_found_exception", 404)
            return 200, {n: {"aliases": {segments[1]: {}}} for n in names}
        if len(segments) == 2 and segments[1] == "_alias" and method == "GET":
            return 200, {
                n: {"aliases": {a: {} for a in i.aliases}}
                for n, i in fake.indices.items()
                if fnmatch.fnmatchcase(n, segments[0])
            }
        if len(segments) == 1:
            name = segments[0]
            if method == "HEAD":
                found = name in fake.indices or bool(fake.aliased(name))
                return (200 if found else 404), None
            if method == "PUT":
                if name in fake.indices:
                    return _error("resource_already_exists_exception", 400)
                fake.indices[name] = FakeIndex(body.get("mappings", {}), body.get("settings", {}))
                return 200, {"acknowledged": True, "index": name}
            if method == "DELETE":
                if fake.indices.pop(name, None) is None:
                    return _error("index_not_found_exception", 404)
                return 200, {"acknowledged": True}
        targets = fake.aliased(segments[0]) or (
            [segments[0]] if segments[0] in fake.indices else []
        )
        if not targets:
            return _error("index_not_found_exception", 404)
        index = fake.indices[targets[0]]
        action = segments[1] if len(segments) > 1 else ""
        if action == "_bulk":
            return self._bulk(index, raw, fault)
        if action == "_settings":
            index.settings.update(body.get("settings", body))
            return 200, {"acknowledged": True}
        if action == "_refresh":
            return 200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}
        if action == "_count":
            return 200, {"count": sum(len(fake.indices[t].docs) for t in targets)}
        if action == "_search":
            return self._search(index, body)
        return _error("unsupported_in_fake", 400, f"{method} {path}")

    def _bulk(
        self, index: FakeIndex, raw: bytes, fault: Fault | None
    ) -> tuple[int, dict[str, Any]]:
        lines = raw.splitlines()
        items: list[dict[str, Any]] = []
        for n, (action_line, source_line) in enumerate(zip(lines[::2], lines[1::2], strict=True)):
            doc_id = str(json.loads(action_line)["index"]["_id"])
            if fault is not None and n < fault.items:
                items.append(
                    {
                        "index": {
                            "_id": doc_id,
                            "status": fault.status,
                            "error": {"type": "injected"},
                        }
                    }
                )
                continue
            created = doc_id not in index.docs
            index.docs[doc_id] = json.loads(source_line)
            items.append({"index": {"_id": doc_id, "status": 201 if created else 200}})
        errors = any(i["index"]["status"] >= 300 for i in items)
        return 200, {"errors": errors, "items": items}

    def _search(self, index: FakeIndex, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        spec = body["query"]["simple_query_string"]
        wanted = _words(spec["query"])
        hits = []
        for doc_id, source in sorted(index.docs.items(), key=lambda kv: int(kv[0])):
            text = " ".join(str(source.get(f) or "") for f in spec["fields"]).lower()
            if all(w in _words(text) for w in wanted):
                hits.append({"_id": doc_id, "_source": source})
        return 200, {"hits": {"total": {"value": len(hits)}, "hits": hits[: body.get("size", 10)]}}

    def _update_aliases(
        self, fake: FakeElasticsearch, actions: list[dict[str, Any]]
    ) -> tuple[int, dict[str, Any]]:
        # All or nothing, as in Elasticsearch: check everything before changing anything.
        for action in actions:
            ((kind, spec),) = action.items()
            if (
                kind == "remove"
                and spec["alias"] not in fake.indices.get(spec["index"], FakeIndex({}, {})).aliases
            ):
                return _error("aliases_not_found_exception", 404)
            if kind in ("add", "remove_index") and spec["index"] not in fake.indices:
                return _error("index_not_found_exception", 404)
        for action in actions:
            ((kind, spec),) = action.items()
            if kind == "remove":
                fake.indices[spec["index"]].aliases.discard(spec["alias"])
            elif kind == "remove_index":
                del fake.indices[spec["index"]]
            elif kind == "add":
                if spec["alias"] in fake.indices:
                    return _error("invalid_alias_name_exception", 400)
                fake.indices[spec["index"]].aliases.add(spec["alias"])
        return 200, {"acknowledged": True}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeElasticsearch) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


@contextmanager
def fake_elasticsearch() -> Iterator[FakeElasticsearch]:
    """A running stand-in on a free local port; stopped afterwards."""
    fake = FakeElasticsearch()
    server = _Server(fake)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
