"""The Elasticsearch sink, through the official `elasticsearch` client.

Searchers use an alias (`persons`, `posts`); every run builds a new index behind it:

1. `begin()` creates `<alias>-<yyyymmdd>-<hhmmss>-<hex>` with the mapping and refreshes off
   (a build needs no search until it is done);
2. `write()` sends each page as `index` bulk items under the document's own id (the person's or
   post's id, so a document can never be there twice), in bodies capped by bytes (`bulk`);
3. `commit()` turns refreshes back on, refreshes, checks that the index holds exactly as many
   documents as were written, then moves the alias to the new index in ONE `update_aliases`
   call (atomic: searchers see the old index, then the new one, never none), and deletes the
   indices this job built before (the one the alias left, and any orphan of a crashed run).
   An old service's concrete index named like the alias is removed in that same call
   (`remove_index`), so the first run replaces it atomically too.
4. `abort()` (any failure or cancel before the switch) deletes the new index; the alias still
   points at the previous one.

Every request is retried with exponential backoff on 429, 5xx and connection errors; in a bulk
response, items refused with 429 or 5xx are sent again (only those), any other refusal fails
the run. The client's own retries are off, so the backoff here is the only one.
"""

from __future__ import annotations

import random
import re
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar, cast

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, Elasticsearch, NotFoundError

from syncd.job import RunCancelled
from syncd_tis._db import RetryPolicy
from syncd_tis.search.bulk import index_item, split_bulk
from syncd_tis.search.retry import sleep_uncancelled, with_retries
from syncd_tis.search.settings import SearchSettings, elasticsearch_hosts
from syncd_tis.search.sink import Document, SearchError

T = TypeVar("T")


def make_client(settings: SearchSettings) -> Elasticsearch:
    """A client for the configured node(s), with its own retries off (ours back off)."""
    if settings.elasticsearch_url is None:
        raise SearchError("no Elasticsearch URL configured")
    return Elasticsearch(
        elasticsearch_hosts(settings.elasticsearch_url),
        request_timeout=settings.request_timeout,
        max_retries=0,
        retry_on_timeout=False,
    )


def policy_of(settings: SearchSettings) -> RetryPolicy:
    return RetryPolicy(
        attempts=settings.retry_attempts,
        initial_delay=settings.retry_initial_delay,
        max_delay=settings.retry_max_delay,
    )


def transient(exc: BaseException) -> str | None:
    """Why an Elasticsearch error is worth another try, or None."""
    if isinstance(exc, ApiError):
        status = exc.meta.status
        if status == 429:
            return "too many requests (429)"
        if status >= 500:
            return f"server error ({status})"
        return None
    if isinstance(exc, ConnectionTimeout):
        return "timed out"
    if isinstance(exc, TransportConnectionError):
        return "connection failed"
    return None


def _retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


def build_index_name(alias: str, now: datetime) -> str:
    return f"{alias}-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def built_by_us(alias: str) -> re.Pattern[str]:
    """The names `build_index_name` gives, and nothing else that starts with the alias."""
    return re.compile(rf"{re.escape(alias)}-\d{{8}}-\d{{6}}-[0-9a-f]{{6}}")


class ElasticsearchSink:
    """Builds a new index behind `alias` and switches the alias to it; see the module doc."""

    def __init__(
        self,
        client: Elasticsearch,
        alias: str,
        mappings: dict[str, Any],
        *,
        max_bytes: int,
        policy: RetryPolicy,
        log: Any,
        wait: Callable[[float], bool] = sleep_uncancelled,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._alias = alias
        self._mappings = mappings
        self._max_bytes = max_bytes
        self._policy = policy
        self._log = log
        self._wait = wait
        self._rng = rng or random.Random()
        self._index: str | None = None
        self._written = 0

    @property
    def written(self) -> int:
        return self._written

    @property
    def index(self) -> str | None:
        """The index this build writes to, until it is committed or aborted."""
        return self._index

    def _call(self, what: str, work: Callable[[], T]) -> T:
        return with_retries(
            work,
            policy=self._policy,
            transient=transient,
            log=self._log,
            event="search.elasticsearch.retry",
            what=what,
            wait=self._wait,
            rng=self._rng,
        )

    def begin(self) -> None:
        name = build_index_name(self._alias, datetime.now(UTC))

        def create() -> None:
            try:
                self._client.indices.create(
                    index=name,
                    mappings=self._mappings,
                    settings={"index": {"refresh_interval": "-1"}},
                )
            except ApiError as exc:
                # A retry after a lost response finds the index made: the name is ours alone.
                if exc.meta.status != 400 or exc.error != "resource_already_exists_exception":
                    raise

        self._call(f"create index {name}", create)
        self._index = name
        self._log.info("search.elasticsearch.begin", alias=self._alias, index=name)

    def write(self, batch: Sequence[Document]) -> None:
        ids = [str(d.id) for d in batch]
        if len(set(ids)) != len(ids):
            raise SearchError(f"a page for {self._alias} holds the same document id twice")
        items = [index_item(d.id, d.source) for d in batch]
        offset = 0
        for group in split_bulk(items, self._max_bytes):
            self._bulk(list(zip(ids[offset : offset + len(group)], group, strict=True)))
            offset += len(group)
        self._written += len(batch)

    def _send(self, index: str, pending: list[tuple[str, bytes]]) -> dict[str, Any]:
        body = b"".join(item for _, item in pending)
        return dict(
            self._client.bulk(
                index=index,
                operations=cast(Any, body),  # pre-encoded NDJSON, sent as it is
                filter_path="errors,items.*._id,items.*.status,items.*.error",
            ).body
        )

    def _bulk(self, group: list[tuple[str, bytes]]) -> None:
        """Send one body; items refused with 429/5xx go again (alone), with backoff."""
        index = self._require()
        pending = group
        attempt = 1
        while True:
            response = self._call(
                f"bulk of {len(pending)} to {index}", partial(self._send, index, pending)
            )
            if not response.get("errors"):
                return
            by_id = dict(pending)
            again: list[tuple[str, bytes]] = []
            refused: list[Any] = []
            for entry in response["items"]:
                outcome = next(iter(entry.values()))
                status = int(outcome.get("status", 0))
                if 200 <= status < 300:
                    continue
                if _retryable_status(status):
                    doc_id = str(outcome["_id"])
                    again.append((doc_id, by_id[doc_id]))
                else:
                    refused.append(outcome.get("error"))
            if refused:
                raise SearchError(
                    f"Elasticsearch refused {len(refused)} document(s) for {index}: {refused[0]}"
                )
            if attempt >= self._policy.attempts:
                raise SearchError(
                    f"{len(again)} document(s) for {index} still refused with 429/5xx"
                    f" after {attempt} attempts"
                )
            delay = self._policy.delay(attempt, self._rng)
            self._log.warning(
                "search.elasticsearch.retry",
                what=f"bulk items to {index}",
                attempt=attempt,
                of=self._policy.attempts,
                reason="items refused with 429/5xx",
                items=len(again),
                delay_s=round(delay, 3),
            )
            if self._wait(delay):
                raise RunCancelled
            pending = again
            attempt += 1

    def _ours(self) -> dict[str, list[str]]:
        """Indices this job has built (by name pattern), each with its aliases."""
        pattern = built_by_us(self._alias)
        try:
            found = self._client.indices.get_alias(
                index=f"{self._alias}-*", expand_wildcards="all"
            ).body
        except NotFoundError:
            return {}
        return {
            name: sorted(info.get("aliases", {}))
            for name, info in found.items()
            if pattern.fullmatch(name)
        }

    def _switch(self, index: str) -> None:
        """Point the alias at `index` alone, in one update_aliases call."""
        try:
            current = sorted(self._client.indices.get_alias(name=self._alias).body)
        except NotFoundError:
            current = []
        actions: list[dict[str, Any]] = [
            {"remove": {"index": name, "alias": self._alias}} for name in current if name != index
        ]
        if not current and self._client.indices.exists(index=self._alias):
            # The old service's concrete index of that name: removed in the same atomic call.
            actions.append({"remove_index": {"index": self._alias}})
        if index not in current:
            actions.append({"add": {"index": index, "alias": self._alias}})
        if actions:
            self._client.indices.update_aliases(actions=actions)
        self._log.info(
            "search.elasticsearch.switched", alias=self._alias, index=index, previous=current
        )

    def commit(self) -> None:
        index = self._require()
        self._call(
            f"settings of {index}",
            lambda: self._client.indices.put_settings(
                index=index, settings={"index": {"refresh_interval": None}}
            ),
        )
        self._call(f"refresh {index}", lambda: self._client.indices.refresh(index=index))
        count = int(self._call(f"count {index}", lambda: self._client.count(index=index))["count"])
        if count != self._written:
            raise SearchError(
                f"index {index} holds {count} documents but {self._written} were written"
            )
        self._call(f"switch alias {self._alias}", lambda: self._switch(index))
        self._index = None  # the alias serves it now: abort() must never delete it
        for name, aliases in self._ours().items():
            if name == index or aliases:
                continue
            try:
                self._call(f"delete {name}", partial(self._client.indices.delete, index=name))
                self._log.info("search.elasticsearch.deleted", index=name)
            except Exception as exc:  # the switch is done; a leftover is deleted next run
                self._log.warning("search.elasticsearch.delete_failed", index=name, error=str(exc))
        self._client.close()

    def abort(self) -> None:
        index, self._index = self._index, None
        if index is None:
            self._client.close()
            return
        # Not cancellable: a cancel is often why we are here, and the index must go.
        policy = RetryPolicy(
            attempts=min(3, self._policy.attempts),
            initial_delay=self._policy.initial_delay,
            max_delay=self._policy.max_delay,
        )
        try:
            with_retries(
                partial(self._client.indices.delete, index=index),
                policy=policy,
                transient=transient,
                log=self._log,
                event="search.elasticsearch.retry",
                what=f"delete {index}",
                rng=self._rng,
            )
            self._log.info("search.elasticsearch.aborted", index=index)
        except NotFoundError:
            pass
        except Exception as exc:  # abort runs while another error unwinds: log, don't mask it
            self._log.warning("search.elasticsearch.abort_failed", index=index, error=str(exc))
        finally:
            self._client.close()

    def _require(self) -> str:
        if self._index is None:
            raise RuntimeError("ElasticsearchSink used outside begin() ... commit()")
        return self._index


class ElasticsearchSearcher:
    """Searches an alias with a simple_query_string over the index's main fields."""

    def __init__(self, client: Elasticsearch, alias: str, fields: Sequence[str]) -> None:
        self._client = client
        self._alias = alias
        self._fields = list(fields)

    def close(self) -> None:
        self._client.close()

    def search(self, query: str, limit: int) -> list[dict[str, Any]]:
        if not query.strip():
            return []
        try:
            response = self._client.search(
                index=self._alias,
                query={
                    "simple_query_string": {
                        "query": query,
                        "fields": self._fields,
                        "default_operator": "and",
                        "lenient": True,
                    }
                },
                size=limit,
            ).body
        except NotFoundError:
            raise SearchError(
                f"the {self._alias} index has not been built yet: run its index job"
            ) from None
        return [{**hit["_source"], "_score": hit.get("_score")} for hit in response["hits"]["hits"]]
