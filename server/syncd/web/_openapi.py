"""The OpenAPI 3.1 description of the console's JSON API and the old REST API."""

from __future__ import annotations

from typing import Any

from syncd import __version__

_JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def _err(description: str) -> dict[str, Any]:
    return _json(description, _ref("Error"))


# Reads need a viewer's credential (a bearer token, or the login cookie), unless
# http.open_read; writes an operator's, the cookie with the CSRF token besides.
_READ: list[dict[str, list[str]]] = [{"bearer": []}, {"session": []}]
_WRITE: list[dict[str, list[str]]] = [{"bearer": []}, {"session": [], "csrf": []}]
_READ_ERRORS = {"401": _err("A credential is needed, or the token is not valid")}
_WRITE_ERRORS = {
    "401": _err("A credential is needed, or the token is not valid"),
    "403": _err("Too little role, or no CSRF token on a request without a bearer token"),
    "503": _err("The daemon is shutting down and starts no new runs"),
}
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_RUN_ID = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}
_SSE = {"text/event-stream": {"schema": {"type": "string"}}}


def _get(summary: str, ok: dict[str, Any], *params: dict[str, Any], **errors: Any) -> Any:
    responses = {"200": ok, **_READ_ERRORS, **errors}
    return {
        "get": {
            "summary": summary,
            "parameters": list(params),
            "security": _READ,
            "responses": responses,
        }
    }


def _write(
    method: str, summary: str, ok: dict[str, Any], *params: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    code = extra.pop("code", "202")
    body = extra.pop("body", None)
    operation: dict[str, Any] = {
        "summary": summary,
        "parameters": list(params),
        "security": _WRITE,
        "responses": {code: ok, **_WRITE_ERRORS, **extra},
    }
    if body is not None:
        operation["requestBody"] = {"required": False, "content": {_JSON: {"schema": body}}}
    return {method: operation}


_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string"},
            "parameter": {"type": ["string", "null"], "description": "the argument at fault"},
            "runId": {"type": "string", "description": "the run under way (Already running)"},
        },
    },
    "Run": {
        "type": "object",
        "properties": {
            "runId": {"type": "string"},
            "job": {"type": "string"},
            "operation": {"type": "string"},
            "arguments": {"type": "object"},
            "trigger": {"enum": ["manual", "schedule", "startup", "dependency", "catch-up"]},
            "actor": {"type": "string"},
            "state": {"enum": ["running", "cancelling", "finished"]},
            "outcome": {"type": ["string", "null"], "description": "success, failed, …"},
            "slotTime": _NULLABLE_TIME,
            "startedAt": {"type": "string", "format": "date-time"},
            "endedAt": _NULLABLE_TIME,
            "durationSeconds": {"type": ["number", "null"]},
            "progressDone": {"type": "integer"},
            "progressTotal": {"type": "integer"},
            "rowsRead": {"type": "integer"},
            "rowsWritten": {"type": "integer"},
            "errorType": {"type": ["string", "null"]},
            "errorMessage": {"type": ["string", "null"]},
        },
    },
    "Job": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "aliases": {
                "type": "array",
                "items": {"type": "string"},
                "description": "other names the job answers to (the old service's names)",
            },
            "jobKey": {"type": ["string", "null"], "description": "the old REST API's key"},
            "description": {"type": "string"},
            "state": {"enum": ["idle", "running", "cancelling", "paused", "disabled"]},
            "disabledReason": {"type": ["string", "null"]},
            "hidden": {"type": "boolean", "description": "reval jobs on a nimdta profile"},
            "parameters": {"type": "array", "items": {"type": "object"}},
            "schedule": {"type": "string", "description": "where the timetable entry comes from"},
            "after": {"type": "array", "items": {"type": "string"}},
            "dependants": {
                "type": "array",
                "items": {"type": "string"},
                "description": "jobs to re-run after this one, in order",
            },
            "current": {"oneOf": [_ref("Run"), {"type": "null"}]},
            "last": {"oneOf": [_ref("Run"), {"type": "null"}]},
            "health": {
                "enum": ["ok", "failing", "stuck"],
                "description": "failing: the last run failed, timed out or was interrupted; "
                "stuck: the run is cancelling or past its timeout plus cancel grace",
            },
            "healthReason": {"type": ["string", "null"], "description": "why, when not ok"},
            "needsRerun": {
                "type": "boolean",
                "description": "the last run did not complete (failed, timed out, interrupted "
                "or cancelled): re-run it, then its dependants",
            },
            "lastSuccessAt": _NULLABLE_TIME,
            "nextRunAt": _NULLABLE_TIME,
        },
    },
    "Snapshot": {
        "type": "object",
        "properties": {
            "jobs": {"type": "array", "items": _ref("Job")},
            "now": {"type": "string", "format": "date-time"},
            "draining": {"type": "boolean"},
            "profile": {"type": "string"},
        },
    },
    "Session": {
        "type": "object",
        "properties": {
            "csrfToken": {"type": "string"},
            "role": {"enum": ["operator", "viewer", "anonymous"]},
            "canRun": {"type": "boolean"},
            "profile": {"type": "string"},
            "version": {"type": "string"},
            "startedAt": {"type": "string", "format": "date-time"},
            "now": {"type": "string", "format": "date-time"},
            "draining": {"type": "boolean"},
        },
    },
    "RunRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "arguments": {"type": "object", "description": "the trigger's named arguments"},
            "withDependants": {"type": "boolean", "default": False},
        },
    },
    "Started": {
        "type": "object",
        "properties": {
            "status": {"const": "Just started"},
            "run": _ref("Run"),
            "then": {"type": "array", "items": {"type": "string"}},
        },
    },
}


def document(context_path: str) -> dict[str, Any]:
    """The document, with paths relative to the server URL `context_path`."""
    paths: dict[str, Any] = {
        "/api/v1/session": _get(
            "Who the caller is, and the CSRF token", _json("The session", _ref("Session"))
        ),
        "/api/v1/jobs": _get("Every job's state", _json("All jobs", _ref("Snapshot"))),
        "/api/v1/jobs/{name}": _get(
            "One job's state", _json("The job", _ref("Job")), _NAME, **{"404": _err("No such job")}
        ),
        "/api/v1/jobs/{name}/runs": _get(
            "A job's recent runs, newest first",
            _json(
                "Runs",
                {
                    "type": "object",
                    "properties": {
                        "job": {"type": "string"},
                        "runs": {"type": "array", "items": _ref("Run")},
                    },
                },
            ),
            _NAME,
            {
                "name": "limit",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 20},
            },
            **{"400": _err("Bad limit"), "404": _err("No such job")},
        ),
        "/api/v1/jobs/{name}/run": _write(
            "post",
            "Start a run (and, with withDependants, then every job that depends on it)",
            _json("Started", _ref("Started")),
            _NAME,
            body=_ref("RunRequest"),
            **{
                "400": _err("Bad arguments; nothing was started"),
                "404": _err("No such job"),
                "409": _err("Already running (runId names the run), or the job is disabled"),
            },
        ),
        "/api/v1/jobs/{name}/cancel": _write(
            "post",
            "Ask the job's run under way to stop",
            _json(
                "Cancelling",
                {
                    "type": "object",
                    "properties": {"status": {"const": "Cancelling"}, "run": _ref("Run")},
                },
            ),
            _NAME,
            **{"404": _err("No such job"), "409": _err("Nothing is running")},
        ),
        "/api/v1/run-all": _write(
            "post",
            "Run every enabled job, one after another in dependency order",
            _json(
                "Started",
                {
                    "type": "object",
                    "properties": {
                        "status": {"type": "string"},
                        "jobs": {"type": "array", "items": {"type": "string"}},
                    },
                },
            ),
        ),
        "/api/v1/replication": _get(
            "Replication: this repository's cursors per peer and the last SynchronizeJobData"
            " table (`enabled` is false when the ledger is in memory)",
            _json("The state", {"type": "object"}),
        ),
        "/api/v1/runs/{run_id}": _get(
            "One run", _json("The run", _ref("Run")), _RUN_ID, **{"404": _err("No such run")}
        ),
        "/api/v1/runs/{run_id}/logs": _get(
            "The run's log lines as Server-Sent Events: `line` (one JSON log line each), `lost`,"
            " and `end` (the run, once finished)",
            {"description": "An event stream", "content": _SSE},
            _RUN_ID,
            {
                "name": "lines",
                "in": "query",
                "schema": {"type": "integer", "minimum": 0, "maximum": 5000, "default": 500},
            },
            **{"400": _err("Bad lines"), "404": _err("No such run")},
        ),
        "/api/v1/events": _get(
            "Job state changes as Server-Sent Events: `snapshot` (a Snapshot), `job`"
            " ({job, event}), `progress` ({job, current}) and `daemon` ({draining})",
            {"description": "An event stream", "content": _SSE},
        ),
        "/api/jobs/status": _get(
            "Old API: whether each job is running, by the old job keys",
            _json("Running flags", {"type": "object", "additionalProperties": {"type": "boolean"}}),
        ),
        "/api/job/{name}": _write(
            "put",
            "Old API: start the job with this old key; the JSON body holds its arguments"
            ' (e.g. {"dateOverride": "2026-01-31"})',
            _json(
                "Just started or Already running",
                {
                    "type": "object",
                    "properties": {"status": {"enum": ["Just started", "Already running"]}},
                },
            ),
            {**_NAME, "description": "the old job key, e.g. personRecordStatusJob"},
            code="200",
            body={"type": "object"},
            **{
                "400": _err('{"error": "Job not found"}, or the arguments are wrong'),
                "409": _err("The job is disabled"),
            },
        ),
        "/api/jobs": _write(
            "put",
            "Old API: run every enabled job in dependency order",
            {"description": "Started (empty body)"},
            code="200",
        ),
        "/api/sys/profile": {
            "get": {
                "summary": "Old API: the deployment profile (no token needed)",
                "security": [{}],
                "responses": {
                    "200": {
                        "description": "The profile",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [{}],
                "responses": {"200": _json("OpenAPI 3.1", {"type": "object"})},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "syncd web console API",
            "version": __version__,
            "description": (
                "JSON endpoints of the syncd web console and the old TIS-SYNC REST API. Instants"
                " are ISO 8601 UTC. State-changing requests need an operator bearer token, or"
                " (from the page, without a bearer token) the X-CSRF-Token header from"
                " /api/v1/session."
            ),
        },
        "servers": [{"url": context_path.rstrip("/") or "/"}],
        "paths": paths,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a token of [auth] (viewer, operator or admin)",
                },
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "syncd_session",
                    "description": "set by the one-time login link that `syncd serve` prints",
                },
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"},
            },
        },
    }
