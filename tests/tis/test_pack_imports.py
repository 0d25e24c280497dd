"""The daemon builds the tis pack's jobs without loading what only their bodies need (the job
modules and the SQL dialects they build statements with); the modules the specs name for the
fork server to preload bring those in, so a job process still starts with them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

JOB_ONLY = (
    "syncd_tis._owner",
    "syncd_tis._trusts",
    "syncd_tis._funding",
    "syncd_tis._demo",
    "sqlalchemy.dialects.postgresql",
    "sqlalchemy.dialects.mysql",
)

_PROBE = """
import importlib, json, sys
from pathlib import Path
import syncd.app.daemon  # what the daemon has loaded before it builds the packs
from syncd.job import PackContext
from syncd_tis import PACK, TisSettings

specs = PACK.build(PackContext(state_dir=Path(sys.argv[1]), settings=TisSettings()))
job_only = json.loads(sys.argv[2])
built = [m for m in job_only if m in sys.modules]
preload = sorted({s.body.__module__ for s in specs} | {m for s in specs for m in s.preload})
for module in preload:  # what the daemon hands its fork server
    importlib.import_module(module)
print(json.dumps({"built": built, "preloaded": [m for m in job_only if m in sys.modules]}))
"""


def test_the_daemon_builds_the_jobs_without_their_job_modules_and_preloads_them(
    tmp_path: Path,
) -> None:
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path), json.dumps(JOB_ONLY)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    seen = json.loads(probe.stdout)
    assert seen["built"] == []
    assert seen["preloaded"] == [m for m in JOB_ONLY if m != "syncd_tis._demo"]
