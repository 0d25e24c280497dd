"""`syncctl status` as a monitoring check: which beans the daemon says are failing or stuck.

The rule lives in the daemon (one definition for status, metrics and the console): each
BeanStatus carries its `health` and `health_reason`, and this module only reads them. A
`--stuck-after` threshold travels in the request, so the daemon judges with it.
"""

from __future__ import annotations

from typing import NamedTuple

from syncctl._render import enum_word
from syncd_api.v1 import management_pb2 as pb

PROBLEMS = frozenset({pb.HEALTH_FAILING, pb.HEALTH_STUCK})


class Problem(NamedTuple):  # not a dataclass: `syncctl status` runs without that module
    bean: str
    kind: str  # "failing" or "stuck"
    detail: str


def bean_problem(status: pb.BeanStatus) -> Problem | None:
    if status.health not in PROBLEMS:
        return None
    return Problem(status.ref.name, enum_word(pb.Health, status.health), status.health_reason)


def problems(reply: pb.GetStatusResponse) -> list[Problem]:
    found = (bean_problem(status) for status in reply.beans)
    return [p for p in found if p is not None]
