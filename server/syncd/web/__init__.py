"""The daemon's HTTP edge (aiohttp, on the daemon's own event loop): metrics, health, console."""

from __future__ import annotations
