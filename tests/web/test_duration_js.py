"""The console's duration formatter (static/lib.js), run in Node: sub-second runs keep their
size (0.4 s, 40 ms) instead of reading as nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[2] / "server" / "syncd" / "web" / "static" / "lib.js"
NODE = shutil.which("node")

# lib.js is browser code that sets window.syncdLib; Node gets a `window` to hang it on.
SCRIPT = """
globalThis.window = {};
require(process.argv[1]);
const seconds = JSON.parse(process.argv[2]);
process.stdout.write(JSON.stringify(seconds.map(window.syncdLib.duration)));
"""


@pytest.mark.skipif(NODE is None, reason="no node here to run the console's JavaScript")
def test_durations_read_as_an_operator_expects() -> None:
    cases = {
        0: "0 s",
        0.004: "4 ms",
        0.04: "40 ms",
        0.4: "0.4 s",
        42: "42 s",
        192: "3 min 12 s",
        7500: "2 h 05 min",
    }
    assert NODE is not None
    done = subprocess.run(
        [NODE, "-e", SCRIPT, str(LIB), json.dumps(list(cases))],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    assert dict(zip(cases, json.loads(done.stdout), strict=True)) == cases
