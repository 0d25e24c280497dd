"""syncd: the management daemon for scheduled sync jobs (import package of the daemon)."""

from __future__ import annotations

__version__ = "0.1.0"
