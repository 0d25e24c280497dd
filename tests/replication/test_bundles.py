"""Disconnected children: ExportJobData / ImportJobData bundles between real repositories."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.errors import BundleError
from syncd.replication.bundle import export_bundle, import_bundle
from syncd.replication.model import NOTE, REPO
from tests.replication.fleet import Fleet, live


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    f = Fleet(2)
    yield f
    f.close()


def note(text: str) -> dict[str, str]:
    return {"body": json.dumps({"text": text})}


def exchange(fleet: Fleet, folder: Path) -> None:
    """One round trip by files: the child's changes to the parent, the parent's back."""
    parent, child = fleet.parent, fleet.children[0]
    up = export_bundle(child.repo, folder, peer_name="parent", peer_is_child=False)
    import_bundle(parent.repo, up)
    down = export_bundle(parent.repo, folder, peer_name="child1", peer_is_child=True)
    import_bundle(child.repo, down)


def test_a_round_trip_by_files_makes_parent_and_child_equal(fleet: Fleet, tmp_path: Path) -> None:
    """Notes, holds and runs go both ways; the bundle is one file with a manifest."""
    parent, child = fleet.parent, fleet.children[0]
    parent.repo.write(NOTE, "p", note("from the parent"))
    child.repo.write(NOTE, "c", note("from the child"))
    child.ledger.set_hold("A", fleet.clock.now())
    exchange(fleet, tmp_path)
    assert live(parent.records()) == live(child.records())
    assert (NOTE, "c") in live(parent.records())
    names = sorted(p.name for p in tmp_path.iterdir())
    assert all(n.startswith("test-cluster_") and n.endswith(".jsyn") for n in names)
    assert not any(n.startswith(".") for n in names)  # no temporary file left behind


def test_a_bundle_imported_twice_is_a_no_op(fleet: Fleet, tmp_path: Path) -> None:
    """The second import changes nothing and says it was a repeat."""
    fleet.parent.repo.write(NOTE, "p", note("once"))
    down = export_bundle(fleet.parent.repo, tmp_path, peer_name="child1", peer_is_child=True)
    first = import_bundle(fleet.children[0].repo, down)
    before = fleet.children[0].repo.info().stable_watermark
    second = import_bundle(fleet.children[0].repo, down)
    assert (first.repeat, second.repeat) == (False, True)
    assert second.result.applied == 0
    assert fleet.children[0].repo.info().stable_watermark == before


def test_bundles_out_of_order_are_no_ops_or_refused_with_the_earlier_one_named(
    fleet: Fleet, tmp_path: Path
) -> None:
    """Each export starts at what the child last acknowledged, so an earlier bundle imported
    after a later one is a no-op. A bundle that starts after what the child holds (here: a
    child restored from a backup) is refused, naming the gap; the earlier bundle, then the
    later one, then apply."""
    parent, child = fleet.parent, fleet.children[0]
    exchange(fleet, tmp_path / "0")
    backup = tmp_path / "child1.backup"
    child.snapshot_file(backup)

    def acknowledged_round(text: str, folder: str) -> Path:
        parent.repo.write(NOTE, text, note(text))
        down = export_bundle(parent.repo, tmp_path / folder, peer_name="child1", peer_is_child=True)
        import_bundle(child.repo, down)
        up = export_bundle(child.repo, tmp_path / folder, peer_name="parent", peer_is_child=False)
        import_bundle(parent.repo, up)
        return down

    first = acknowledged_round("1", "a")
    second = acknowledged_round("2", "b")
    assert import_bundle(child.repo, first).repeat  # twice, and out of order: a no-op
    child.restore(backup)  # back to before the first bundle
    with pytest.raises(BundleError, match="import the earlier bundle first"):
        import_bundle(child.repo, second)
    assert (NOTE, "2") not in live(child.records())
    import_bundle(child.repo, first)
    import_bundle(child.repo, second)
    assert {(NOTE, "1"), (NOTE, "2")} <= set(live(child.records()))


def test_a_bundle_for_another_repository_is_refused(fleet: Fleet, tmp_path: Path) -> None:
    """A bundle names its target: another child cannot import it."""
    exchange(fleet, tmp_path)
    fleet.parent.repo.write(NOTE, "x", note("x"))
    down = export_bundle(fleet.parent.repo, tmp_path / "1", peer_name="child1", peer_is_child=True)
    with pytest.raises(BundleError, match="exported for 'child1'"):
        import_bundle(fleet.children[1].repo, down)


def test_a_corrupt_or_foreign_bundle_is_refused_before_anything_is_written(
    fleet: Fleet, tmp_path: Path
) -> None:
    """A flipped byte, a truncated file, a stranger's file and one's own export are each
    refused with the reason; the repository is unchanged."""
    parent, child = fleet.parent, fleet.children[0]
    parent.repo.write(NOTE, "p", note("x"))
    good = export_bundle(parent.repo, tmp_path, peer_name="child1", peer_is_child=True)
    before = child.records()
    with zipfile.ZipFile(good) as zf:
        manifest, changes = zf.read("manifest.json"), zf.read("changes.ndjson")
    tampered = tmp_path / "tampered.jsyn"
    with zipfile.ZipFile(tampered, "w") as zf:
        zf.writestr("manifest.json", manifest)
        zf.writestr("changes.ndjson", changes.replace(b"x", b"y"))
    truncated = tmp_path / "truncated.jsyn"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    stranger = tmp_path / "stranger.jsyn"
    stranger.write_text("hello")
    for path, reason in (
        (tampered, "checksum"),
        (truncated, "corrupt"),
        (stranger, "corrupt"),
        (tmp_path / "missing.jsyn", "no such file"),
    ):
        with pytest.raises(BundleError, match=reason):
            import_bundle(child.repo, path)
    with pytest.raises(BundleError, match="this repository wrote it"):
        import_bundle(parent.repo, good)
    assert child.records() == before
    assert (REPO, parent.repo.repo_id) not in before
