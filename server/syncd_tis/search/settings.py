"""Settings of the search index jobs (`[packs.tis.search]`) and the reval publishers
(`[packs.tis.reval]`), and the old service's environment variables that can fill them.

Precedence: a value in the config file wins; an old environment variable only fills a value the
file leaves unset (`elasticsearch_url`, `amqp_url`) or at its default (`exchange`). The
environment is read when the pack builds its jobs, never at import.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import quote, urlsplit, urlunsplit

import msgspec
from msgspec.structs import replace

from syncd.job import ConfigError, Duration, DurationAtLeast1s, PositiveCount, Settings

MAX_PAGE_SIZE = 100_000
# Ids per keyset page: one page is held in memory and sent as one statement or message, so
# its size is bounded (a typo of 5000000 would otherwise load a whole table at once).
PageSize = Annotated[int, msgspec.Meta(ge=1, le=MAX_PAGE_SIZE)]

# Elasticsearch index names: lowercase, no path characters; also safe as file names.
_INDEX_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
DEFAULT_EXCHANGE = "reval.exchange"
_TRUE = {"1", "true", "yes", "on"}


def _check_retries(attempts: int, initial: float, ceiling: float, attempts_key: str) -> None:
    if attempts < 1:
        raise ConfigError(attempts_key, f"must be at least 1, got {attempts}")
    if ceiling < initial:
        raise ConfigError("retry_max_delay", "must not be less than retry_initial_delay")


class SearchSettings(Settings, frozen=True):
    """Where the persons and posts indices go and how they are built.

    Every field has a default: without `[packs.tis.search]` the indices are SQLite FTS5 files
    in the state directory (`<state_dir>/search/<index>.sqlite3`).
    """

    # Elasticsearch URL, or several separated by commas; None: the embedded index.
    # Env ES_URLS fills it when unset. Credentials may go in the URL (https://user:pw@host).
    elasticsearch_url: str | None = None
    # The names searchers use: aliases in Elasticsearch, file names in the embedded sink.
    person_index: str = "persons"
    post_index: str = "posts"
    # Persons (or posts) per keyset page: one set of queries and one write to the sink each.
    page_size: PageSize = 2000
    # A bulk request body never exceeds this many bytes, unless one document alone does
    # (AWS Elasticsearch refuses requests over 10 MB).
    bulk_max_bytes: PositiveCount = 5_000_000
    # 429, 5xx and connection errors from Elasticsearch are retried with exponential backoff.
    retry_attempts: PositiveCount = 6
    retry_initial_delay: Duration = 1.0
    retry_max_delay: Duration = 60.0
    request_timeout: DurationAtLeast1s = 120.0

    def __post_init__(self) -> None:
        if self.elasticsearch_url is not None and not elasticsearch_hosts(self.elasticsearch_url):
            raise ConfigError(
                "elasticsearch_url", "must not be blank (leave it out for the embedded index)"
            )
        for key, name in (("person_index", self.person_index), ("post_index", self.post_index)):
            if not _INDEX_NAME.fullmatch(name):
                raise ConfigError(
                    key, f"{name!r} is not an index name (lowercase letters, digits, . _ -)"
                )
        if self.person_index == self.post_index:
            raise ConfigError("post_index", "must differ from person_index")
        if self.page_size < 1:
            raise ConfigError("page_size", f"must be at least 1, got {self.page_size}")
        if self.bulk_max_bytes < 10_000:
            raise ConfigError(
                "bulk_max_bytes", f"must be at least 10000, got {self.bulk_max_bytes}"
            )
        _check_retries(
            self.retry_attempts, self.retry_initial_delay, self.retry_max_delay, "retry_attempts"
        )

    @property
    def embedded(self) -> bool:
        return self.elasticsearch_url is None


class RevalSettings(Settings, frozen=True):
    """Where the revalidation publishers send person ids.

    Without a broker (no `amqp_url`, no RABBITMQ_HOST) both reval jobs are disabled, with that
    reason in their status, rather than failing every night.
    """

    # amqp://user:password@host:5672/vhost (amqps:// for TLS); None: the publishers are off.
    # Env RABBITMQ_HOST, RABBITMQ_PORT, RABBITMQ_USERNAME, RABBITMQ_PASSWORD, RABBITMQ_VHOST and
    # RABBITMQ_USE_SSL fill it when unset.
    amqp_url: str | None = None
    # Env REVAL_RABBIT_EXCHANGE replaces the default exchange.
    exchange: str = DEFAULT_EXCHANGE
    routing_key: str = "reval.trainee.update"
    # Person ids per message (and per keyset page), as the old service.
    page_size: PageSize = 5000
    # A page is published again until the broker confirms it, at most this many times.
    publish_attempts: PositiveCount = 8
    retry_initial_delay: Duration = 1.0
    retry_max_delay: Duration = 60.0
    connect_timeout: DurationAtLeast1s = 10.0

    def __post_init__(self) -> None:
        if self.amqp_url is not None and urlsplit(self.amqp_url.strip()).scheme not in (
            "amqp",
            "amqps",
        ):
            raise ConfigError("amqp_url", "must be an amqp:// or amqps:// URL")
        if not self.exchange.strip():
            raise ConfigError("exchange", "must not be blank")
        if not self.routing_key.strip():
            raise ConfigError("routing_key", "must not be blank")
        if self.page_size < 1:
            raise ConfigError("page_size", f"must be at least 1, got {self.page_size}")
        _check_retries(
            self.publish_attempts,
            self.retry_initial_delay,
            self.retry_max_delay,
            "publish_attempts",
        )


def elasticsearch_hosts(urls: str) -> list[str]:
    """The node URLs in `urls` (comma-separated); a bare `host:port`, as ES_URLS sometimes
    held, gets http://."""
    hosts = []
    for part in urls.split(","):
        url = part.strip()
        if url:
            hosts.append(url if "://" in url else f"http://{url}")
    return hosts


def redacted(url: str) -> str:
    """`url` without its password, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{parts.username}:***@{host}{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def search_from_env(settings: SearchSettings, env: Mapping[str, str]) -> SearchSettings:
    """`settings` with ES_URLS filling an unset `elasticsearch_url`."""
    urls = env.get("ES_URLS", "").strip()
    if settings.elasticsearch_url is None and urls:
        return replace(settings, elasticsearch_url=urls)
    return settings


def reval_from_env(settings: RevalSettings, env: Mapping[str, str]) -> RevalSettings:
    """`settings` with the old RABBITMQ_* and REVAL_RABBIT_EXCHANGE variables applied."""
    changes: dict[str, Any] = {}
    host = env.get("RABBITMQ_HOST", "").strip()
    if settings.amqp_url is None and host:
        tls = env.get("RABBITMQ_USE_SSL", "").strip().lower() in _TRUE
        port = env.get("RABBITMQ_PORT", "").strip() or ("5671" if tls else "5672")
        user = quote(env.get("RABBITMQ_USERNAME", "guest"), safe="")
        password = quote(env.get("RABBITMQ_PASSWORD", "guest"), safe="")
        vhost = quote(env.get("RABBITMQ_VHOST", "/"), safe="")
        changes["amqp_url"] = (
            f"{'amqps' if tls else 'amqp'}://{user}:{password}@{host}:{port}/{vhost}"
        )
    exchange = env.get("REVAL_RABBIT_EXCHANGE", "").strip()
    if exchange and settings.exchange == DEFAULT_EXCHANGE:
        changes["exchange"] = exchange
    return replace(settings, **changes) if changes else settings
