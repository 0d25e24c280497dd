"""Readable forms of the JSON some operations return, for a person or a script.

Most results print as their value; two read better otherwise. The search beans' `search`
returns documents: on a terminal, a table of the columns an operator scans (id, name, owner,
status, score); piped, the JSON as it is, for `jq`. `Daemon reloadConfig` returns the changed
jobs and the keys that need a restart: lines, on a terminal and piped alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import IO, Any

from syncctl._output import EMPTY, Mode, cell, write_rows

SEARCH_HEADERS = ("ID", "NAME", "OWNER", "STATUS", "SCORE")

# Where each column is found in a document of either index: persons first, then posts.
_ID = ("personId", "id")
_NAME = ("fullName", "nationalPostNumber", "name")
_OWNER = ("currentOwner", "owner")
_STATUS = ("status",)
_SCORE = ("_score", "score")


def _first(document: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        if document.get(key) is not None:
            return document[key]
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return format(value, ".4g")  # scores: 3.142, and tiny ones (few documents) as 1.375e-06
    return str(value)


def search_rows(documents: Sequence[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    """One row per document: id, name, owner, status, score."""
    return [
        tuple(_text(_first(doc, keys)) for keys in (_ID, _NAME, _OWNER, _STATUS, _SCORE))
        for doc in documents
    ]


def _documents(value: Any) -> list[Mapping[str, Any]] | None:
    if isinstance(value, list) and all(isinstance(doc, dict) for doc in value):
        return value
    return None


def _reload(value: Any) -> tuple[list[str], list[str]] | None:
    if not isinstance(value, dict) or not {"changedJobs", "restartNeeded"} <= set(value):
        return None
    changed, restart = value["changedJobs"], value["restartNeeded"]
    if not isinstance(changed, list) or not isinstance(restart, list):
        return None
    return [str(job) for job in changed], [str(key) for key in restart]


def render_result(out: IO[str], mode: Mode, operation: str, message: str, json_text: str) -> bool:
    """Print a JSON result in its readable form; False when it has none (print it as is)."""
    try:
        value = json.loads(json_text)
    except ValueError:
        return False
    if operation == "search" and mode is Mode.TABLE and (docs := _documents(value)) is not None:
        if not docs:  # the daemon's message says why: "0 document(s)", or "not built yet"
            out.write(f"{message or 'No documents matched'}\n")
            return True
        write_rows(out, mode, SEARCH_HEADERS, search_rows(docs))
        return True
    if operation == "reloadConfig" and (reloaded := _reload(value)) is not None:
        changed, restart = reloaded
        if mode is Mode.TSV:  # one `changed<TAB>job` or `restart<TAB>key` line each
            for job in changed:
                out.write(f"changed\t{cell(job)}\n")
            for key in restart:
                out.write(f"restart\t{cell(key)}\n")
            return True
        out.write(f"{message or 'Reloaded'}: {_count(len(changed), 'job')} changed\n")
        for job in changed:
            out.write(f"  {job}\n")
        if restart:
            out.write("Needs a restart to apply:\n")
            for key in restart:
                out.write(f"  {key or EMPTY}\n")
        return True
    return False


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")
