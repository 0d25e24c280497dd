"""Property: whatever TOML the loader is fed, the answer is a valid configuration or one
bounded error naming a key path (or the file), never another exception.

Two generators: whole documents built around the tables and keys syncd knows (and others),
and arbitrary values at every known key, run through the very validation `syncd check-config`
and `syncd serve` use.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from syncd.app.packs import discover
from syncd.app.startup import validate
from syncd.config import Config, load_config
from syncd.errors import ConfigError, PackLoadError, StartupEnvironmentError
from syncd.job import JobPack
from tests.config_keys import JOB_TABLE, known_tables

JOB = "PersonOwnerRebuildJob"
TABLES = known_tables()
MESSAGE_LIMIT = 1500  # a problem text, key path included, never echoes unbounded input
PROPERTY = settings(
    max_examples=int(os.environ.get("SYNCD_PROPERTY_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


# --- a small TOML writer: inline tables carry any nesting, any key, any value ----------------


def _string(text: str) -> str:
    # JSON's escapes are TOML's, except that TOML also wants DEL escaped and no surrogates.
    encoded = json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")
    return encoded


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_string(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def to_toml(document: dict[str, Any]) -> str:
    return "".join(f"{_string(key)} = {_value(value)}\n" for key, value in document.items())


# --- strategies ----------------------------------------------------------------------------

_text = st.text(
    st.characters(blacklist_categories=["Cs"]),  # TOML text is Unicode scalar values
    max_size=40,
)
_interesting = st.sampled_from(
    [
        "",
        "10s",
        "-1",
        "1500ms",
        "400d",
        "25:00",
        "01:00",
        "00:00-07:00",
        "0 0 0 31 2 *",
        "*/5 * * * * *",
        "garbage",
        "unix:/tmp/x.sock",
        "unix:relative",
        "127.0.0.1:0",
        "10.0.0.1:80",
        "[::1]:8101",
        "/sync/",
        "process",
        "thread",
        "skip",
        "run_once",
        "debug",
        "sqlite:///",
        "postgresql+psycopg://",
        "http://hooks.example/x",
        JOB,
        "PersonRecordStatusJob",
        "~nobody-such-user/x",
    ]
)
_long = st.integers(1000, 6000).map(lambda n: "x" * n)
_scalar = st.one_of(
    _text,
    _interesting,
    _long,
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.dates(),
    st.datetimes(timezones=st.just(dt.UTC)),
)
_values = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=10,
)


def _known_keys(table: str) -> st.SearchStrategy[str]:
    return st.sampled_from(sorted(TABLES[table])) | _text


@st.composite
def _table_for(draw: st.DrawFn, table: str) -> Any:
    """Mostly a table of known and unknown keys; sometimes any value where a table belongs."""
    return draw(st.dictionaries(_known_keys(table), _values, max_size=4) | _values)


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """A TOML document around syncd's tables: known and unknown tables, keys and values."""
    document: dict[str, Any] = {}
    for table in draw(st.lists(st.sampled_from(sorted(TABLES)) | _text, max_size=5)):
        if table == JOB_TABLE:
            name = draw(st.sampled_from([JOB, "PersonRecordStatusJob", "NoSuchJob"]) | _text)
            document.setdefault("jobs", {})[name] = draw(_table_for(table))
        elif table.startswith("packs."):
            _, pack, *nested = table.split(".")
            target = document.setdefault("packs", {}).setdefault(pack, {})
            for part in nested:
                target = target.setdefault(part, {}) if isinstance(target, dict) else {}
            if isinstance(target, dict):
                value = draw(_table_for(table))
                target.update(value if isinstance(value, dict) else {"x": value})
        elif table in TABLES:
            document[table] = draw(_table_for(table))
        else:
            document[table] = draw(_values)
    return document


def _check(config_text: str, tmp: Path, packs_for: Any) -> None:
    """Load and validate; only the daemon's own one-line errors may come out."""
    path = tmp / "syncd.toml"
    path.write_text(config_text, encoding="utf-8")
    try:
        # No environment overrides: a state_dir in the file is used as written.
        config = load_config(path, env={})
    except ConfigError as exc:
        event("refused by the loader")
        _assert_bounded(exc, exc.key_path)
        return
    try:
        validate(config, packs_for(config), {})
        event("valid")
    except (ConfigError, PackLoadError, StartupEnvironmentError) as exc:
        event(f"refused by validation: {type(exc).__name__}")
        _assert_bounded(exc, getattr(exc, "key_path", getattr(exc, "subject", "")))
    assert not DEFAULT_STATE.exists()  # validation creates nothing


def _assert_bounded(exc: Exception, where: str) -> None:
    assert where, exc
    assert len(str(exc)) <= MESSAGE_LIMIT, str(exc)[:300]
    assert "\n" not in where


DEFAULT_STATE = Path(tempfile.gettempdir()) / f"syncd-property-{os.getpid()}" / "state"


@pytest.fixture(scope="module", autouse=True)
def _default_state_dir() -> Iterator[None]:
    """The state directory a file without daemon.state_dir gets: one that must stay absent."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SYNCD_STATE_DIR", str(DEFAULT_STATE))
        yield


@pytest.fixture(scope="module")
def installed_packs() -> list[JobPack]:
    return discover(load_config(None, env={}))


def _packs_for(installed: list[JobPack]) -> Any:
    # The installed packs, found once: `daemon.packs` would import arbitrary module names.
    def packs_for(config: Config) -> list[JobPack]:
        return installed if config.daemon.entry_points else []

    return packs_for


@PROPERTY
@given(document=documents())
def test_any_document_is_a_config_or_a_named_error(
    document: dict[str, Any], installed_packs: list[JobPack]
) -> None:
    """Documents built around syncd's tables and keys, with arbitrary values."""
    with tempfile.TemporaryDirectory() as tmp:
        _check(to_toml(document), Path(tmp), _packs_for(installed_packs))


KEYS = sorted((table, key) for table, fields in TABLES.items() for key in fields)


@PROPERTY
@given(where=st.sampled_from(KEYS), value=_values)
def test_any_value_at_a_known_key_is_accepted_or_refused_by_name(
    where: tuple[str, str], value: Any, installed_packs: list[JobPack]
) -> None:
    """Every key the loader knows, any value: valid, or an error naming that key's table."""
    table, key = where
    header = f"jobs.{JOB}" if table == JOB_TABLE else table
    text = f"[{header}]\n{_string(key)} = {_value(value)}\n"
    with tempfile.TemporaryDirectory() as tmp:
        _check(text, Path(tmp), _packs_for(installed_packs))


@PROPERTY
@given(text=st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_any_text_is_a_config_or_a_named_error(text: str, installed_packs: list[JobPack]) -> None:
    """Not even TOML: the file is named with what is wrong with it."""
    with tempfile.TemporaryDirectory() as tmp:
        _check(text, Path(tmp), _packs_for(installed_packs))


@pytest.mark.parametrize("depth", [10, 200, 5000])
def test_deep_nesting_is_refused_by_name(tmp_path: Path, depth: int) -> None:
    """Inline tables and arrays nested thousands deep are a ConfigError, not RecursionError."""
    for opening, closing in (("{a = ", "}"), ("[", "]")):
        path = tmp_path / "deep.toml"
        path.write_text(f"[daemon]\nx = {opening * depth}1{closing * depth}\n")
        with pytest.raises(ConfigError) as info:
            load_config(path, env={})
        assert info.value.key_path in ("daemon.x", str(path))


CORE_KEYS = [(table, key) for table, key in KEYS if not table.startswith("packs.")]


@PROPERTY
@given(where=st.sampled_from(CORE_KEYS), value=_values)
def test_a_refused_value_is_named_by_its_own_key_path(where: tuple[str, str], value: Any) -> None:
    """The validation library's location (`$.daemon.packs[2]`) comes out as the dotted path of
    the very key refused: the key itself, or an item or entry below it."""
    table, key = where
    header = f"jobs.{JOB}" if table == JOB_TABLE else table
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "syncd.toml"
        path.write_text(f"[{header}]\n{key} = {_value(value)}\n", encoding="utf-8")
        try:
            load_config(path, env={})
        except ConfigError as exc:
            refused: ConfigError | None = exc
        else:
            refused = None
    named = f"{header}.{key}"
    if refused is not None:
        assert refused.key_path == named or refused.key_path.startswith((f"{named}[", f"{named}."))
