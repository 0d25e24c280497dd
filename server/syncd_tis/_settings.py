"""The pack's settings: the `[packs.tis]` table of the daemon's config."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from msgspec import field
from msgspec.structs import replace

from syncd.job import (
    ConfigError,
    Count,
    Duration,
    DurationAtLeast1s,
    PositiveCount,
    Settings,
)
from syncd_tis.search.settings import PageSize, RevalSettings, SearchSettings

EMBEDDED_FILE = "tis.sqlite3"
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_iso_date(text: str) -> date:
    """A strict `YYYY-MM-DD` date, as the old service's `LocalDate.parse` accepted.

    Python 3.11's `date.fromisoformat` also takes `20240101` and week dates; we don't.
    """
    if not _ISO_DATE.fullmatch(text):
        raise ValueError(f"{text!r} is not a date in YYYY-MM-DD form")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid date ({exc})") from None


class TisSettings(Settings, frozen=True):
    """How the TIS jobs reach their database and how they pace themselves.

    Every field has a default, so an absent `[packs.tis]` table gives the embedded demo.
    """

    # SQLAlchemy URL of the TCS database; None means the embedded SQLite file
    # `<state_dir>/tis.sqlite3` (created by `syncd db init` or `syncd serve --seed-demo`).
    source_url: str | None = None
    # Ids per keyset page (and per transaction) for the field-update jobs: record and funding
    # status. The old service used 5,000.
    page_size: PageSize = 5000
    # MySQL only: RAM (MB) a run may give its integer-only staging tables (MEMORY engine,
    # through the session's max_heap_table_size); 0 keeps them on disk (InnoDB), slower.
    # About 50 bytes per PersonTrust row: 1,024 MB holds some 20 million.
    mysql_staging_memory_mb: Count = 1024
    # What `dateOverride=NONE` means for PersonRecordStatusJob: "" (today), "ANY" or a date.
    record_status_date_override: str = ""
    # Transient database errors (deadlock, lock wait timeout, lost connection) are retried.
    retry_attempts: PositiveCount = 5
    retry_initial_delay: Duration = 0.5
    retry_max_delay: Duration = 30.0
    # Connections are recycled below MySQL's wait_timeout (the old Hikari maxLifetime was 380 s).
    pool_recycle: DurationAtLeast1s = 280.0
    connect_timeout: DurationAtLeast1s = 10.0
    # How long a job waits for another run that is switching the same derived table.
    lock_timeout: DurationAtLeast1s = 300.0
    # The search index jobs ([packs.tis.search]) and the revalidation publishers ([packs.tis.reval]).
    search: SearchSettings = field(default_factory=SearchSettings)
    reval: RevalSettings = field(default_factory=RevalSettings)

    def __post_init__(self) -> None:
        if self.source_url is not None and not self.source_url.strip():
            raise ConfigError(
                "source_url", "must not be blank (leave it out for the embedded demo)"
            )
        if self.retry_max_delay < self.retry_initial_delay:
            raise ConfigError("retry_max_delay", "must not be less than retry_initial_delay")
        override = self.record_status_date_override.strip()
        if override and override.upper() != "ANY":
            try:
                parse_iso_date(override)
            except ValueError as exc:
                raise ConfigError(
                    "record_status_date_override", f'{exc}; expected "", "ANY" or YYYY-MM-DD'
                ) from None

    def resolved(self, state_dir: Path) -> TisSettings:
        """These settings with `source_url` made concrete for this state directory."""
        if self.source_url is not None:
            return self
        return replace(self, source_url=embedded_url(state_dir))

    @property
    def url(self) -> str:
        """The database URL; only valid on resolved settings."""
        if self.source_url is None:
            raise RuntimeError("TisSettings.url read before resolved(state_dir)")
        return self.source_url


def embedded_path(state_dir: Path) -> Path:
    return state_dir / EMBEDDED_FILE


def embedded_url(state_dir: Path) -> str:
    return f"sqlite:///{embedded_path(state_dir)}"
