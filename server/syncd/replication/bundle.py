"""Bundles: the changes of one stream as a file, for a child that cannot be reached online.

One ZIP file, written to a temporary name, fsynced and renamed into place:
`<cluster>_<source>-to-<target>_<from>-<to>.jsyn`, holding `manifest.json` and
`changes.ndjson` (one change per line, in the source's commit order). An export holds every
change above what the other side last *acknowledged*, so a lost file costs only a re-export;
each bundle also carries the exporter's receipt (`ack`) of what it imported from the other
side. Importing applies the batch exactly as ApplyChanges does, cursor and all, in one
transaction: a bundle imported twice is a no-op, one that skips ahead is refused ("import the
earlier bundle first"), and a corrupt or foreign one is refused before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from syncd.errors import BundleError, CursorGapError
from syncd.replication.model import (
    ACKED_BY_CHILD,
    ACKED_BY_PARENT,
    FROM_CHILD,
    FROM_PARENT,
    ApplyResult,
    Change,
    Version,
)
from syncd.replication.store import SqlRepository

FORMAT = "jobsync-bundle/1"
SUFFIX = ".jsyn"
MAX_MANIFEST = 1 << 20
MAX_CHANGES = 1 << 31  # bytes of changes.ndjson read at most
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class Imported:
    """What an import did: the batch's result, and whether it was a repeat."""

    result: ApplyResult
    repeat: bool
    manifest: dict[str, Any]


def _change_line(change: Change) -> str:
    return json.dumps(
        {
            "type": change.type,
            "id": change.id,
            "version": {"hlc": change.version.hlc, "origin": change.version.origin},
            "deleted": change.deleted,
            "body": {} if change.deleted else dict(change.body),
            "base": None
            if change.base is None
            else {"hlc": change.base.hlc, "origin": change.base.origin},
            "out_of_band": change.out_of_band,
        },
        sort_keys=True,
        default=str,
    )


def _peer_of(repo: SqlRepository, name: str) -> str:
    """The id of the repository named `name` (its name card reached us), else ""."""
    for repo_id, known in repo.repo_names().items():
        if known == name:
            return repo_id
    return ""


def export_bundle(
    repo: SqlRepository,
    folder: Path,
    *,
    peer_name: str,
    peer_is_child: bool,
    now: datetime | None = None,
) -> Path:
    """Write this repository's changes for `peer_name` to a new bundle in `folder`."""
    info = repo.info()
    peer_id = _peer_of(repo, peer_name)
    peer_epoch = ""
    acked, receipt = 0, 0
    for pid, epoch, stream, cursor, _ in repo.cursors():
        if pid != peer_id:
            continue
        # What the peer acknowledged bounds the export; what we imported from it is the receipt.
        if stream == (ACKED_BY_CHILD if peer_is_child else ACKED_BY_PARENT):
            acked, peer_epoch = cursor, epoch
        if stream == (FROM_CHILD if peer_is_child else FROM_PARENT):
            receipt, peer_epoch = cursor, epoch
    page = repo.get_changes(acked, 1 << 62, up_to=info.stable_watermark)
    changes = list(page.changes)
    if peer_is_child and peer_id:
        changes += repo.pingbacks(peer_id)
    lines = "".join(_change_line(c) + "\n" for c in changes).encode()
    manifest = {
        "format": FORMAT,
        "kind": "changes" if acked else "snapshot",
        "cluster_id": info.cluster_id,
        "source_id": info.repo_id,
        "source_name": info.name,
        "source_epoch": info.epoch,
        "target_id": peer_id,
        "target_name": peer_name,
        "stream": FROM_PARENT if peer_is_child else FROM_CHILD,
        "from_cursor": acked,
        "to_cursor": page.next_cursor,
        "record_count": len(changes),
        "sha256": hashlib.sha256(lines).hexdigest(),
        "schema_version": info.schema_version,
        "hlc_at_export": info.hlc_now,
        "created_at_utc": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "ack": {
            "peer_epoch": peer_epoch,
            "stream": FROM_CHILD if peer_is_child else FROM_PARENT,
            "cursor": receipt,
        },
    }
    folder.mkdir(parents=True, exist_ok=True)
    name = (
        f"{_SAFE.sub('-', info.cluster_id or 'cluster')}_{_SAFE.sub('-', info.name)}-to-"
        f"{_SAFE.sub('-', peer_name)}_{acked}-{page.next_cursor}{SUFFIX}"
    )
    path = folder / name
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("manifest.json", json.dumps(manifest, indent=1, sort_keys=True))
            zf.writestr("changes.ndjson", lines)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)
    return path


def _read(path: Path) -> tuple[dict[str, Any], list[Change]]:
    """The manifest and changes of a bundle, checked; BundleError says what is wrong."""
    shown = path.name
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if not {"manifest.json", "changes.ndjson"} <= names:
                raise BundleError(shown, "not a bundle: manifest.json or changes.ndjson missing")
            if zf.getinfo("manifest.json").file_size > MAX_MANIFEST:
                raise BundleError(shown, "manifest.json is too large")
            manifest = json.loads(zf.read("manifest.json"))
            if zf.getinfo("changes.ndjson").file_size > MAX_CHANGES:
                raise BundleError(shown, "changes.ndjson is too large")
            data = zf.read("changes.ndjson")
    except FileNotFoundError:
        raise BundleError(shown, "no such file") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        raise BundleError(shown, f"corrupt: {str(exc)[:200]}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(shown, f"not a {FORMAT} bundle")
    if hashlib.sha256(data).hexdigest() != manifest.get("sha256"):
        raise BundleError(shown, "corrupt: changes.ndjson does not match its checksum")
    changes: list[Change] = []
    try:
        for line in data.decode().splitlines():
            raw = json.loads(line)
            base = raw.get("base")
            changes.append(
                Change(
                    type=str(raw["type"]),
                    id=str(raw["id"]),
                    version=Version(int(raw["version"]["hlc"]), str(raw["version"]["origin"])),
                    deleted=bool(raw["deleted"]),
                    body=dict(raw["body"]),
                    out_of_band=bool(raw.get("out_of_band", False)),
                    base=None if not base else Version(int(base["hlc"]), str(base["origin"])),
                )
            )
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise BundleError(shown, f"corrupt change line: {str(exc)[:200]}") from None
    if len(changes) != manifest.get("record_count"):
        raise BundleError(shown, "corrupt: the record count does not match the manifest")
    for key in ("source_id", "source_epoch", "stream", "from_cursor", "to_cursor"):
        if key not in manifest:
            raise BundleError(shown, f"the manifest has no {key}")
    return manifest, changes


def read_bundle(path: Path) -> tuple[dict[str, Any], list[Change]]:
    """A bundle's manifest and changes, checked (BundleError when it is no good bundle)."""
    return _read(path)


def import_bundle(repo: SqlRepository, path: Path) -> Imported:
    """Apply a bundle here, as ApplyChanges would; then record the receipt it carries."""
    manifest, changes = _read(path)
    info = repo.info()
    shown = path.name
    if manifest["source_id"] == info.repo_id:
        raise BundleError(shown, "this repository wrote it (import it on the other side)")
    if manifest.get("cluster_id") and info.cluster_id and manifest["cluster_id"] != info.cluster_id:
        raise BundleError(shown, f"it belongs to cluster {str(manifest['cluster_id'])[:60]!r}")
    target = manifest.get("target_id")
    if target and target != info.repo_id:
        raise BundleError(shown, f"it was exported for {str(manifest.get('target_name'))[:60]!r}")
    if manifest.get("schema_version") != info.schema_version:
        raise BundleError(shown, "it was written by a syncd of another schema version")
    stream = manifest["stream"]
    if stream not in (FROM_PARENT, FROM_CHILD):
        raise BundleError(shown, "its stream is unknown")
    stored = repo.cursor(manifest["source_id"], manifest["source_epoch"], stream) or 0
    try:
        result = repo.apply_changes(
            source_id=manifest["source_id"],
            source_epoch=manifest["source_epoch"],
            stream=stream,
            from_cursor=int(manifest["from_cursor"]),
            to_cursor=int(manifest["to_cursor"]),
            changes=changes,
        )
    except CursorGapError as gap:
        raise BundleError(
            shown,
            f"import the earlier bundle first: this repository holds changes up to"
            f" {gap.stored}, this bundle starts after {gap.from_cursor}",
        ) from None
    ack = manifest.get("ack") or {}
    cursor = ack.get("cursor")
    if isinstance(cursor, int) and cursor > 0 and ack.get("peer_epoch") == info.epoch:
        # The exporter's receipt of our stream: it shrinks our next export.
        mine = ACKED_BY_PARENT if stream == FROM_PARENT else ACKED_BY_CHILD
        repo.ack_cursor(manifest["source_id"], manifest["source_epoch"], mine, cursor)
    return Imported(result, repeat=stored >= int(manifest["to_cursor"]), manifest=manifest)
