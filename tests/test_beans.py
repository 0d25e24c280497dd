"""The bean model: names, argument binding and typed values."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.beans.model import (
    Bean,
    Invocation,
    Operation,
    Parameter,
    Result,
    object_name,
    short_name,
)
from syncd.beans.registry import BeanRegistry
from syncd.clock import stopwatch_text
from syncd.errors import (
    BeanNotFoundError,
    DuplicateBeanError,
    InvalidArgumentError,
    OperationNotFoundError,
)
from syncd.values import Value, ValueType, coerce, render


def _noop(_inv: Invocation) -> Result:
    return Result()


def _op(*params: Parameter) -> Operation:
    return Operation(name="doIt", handler=_noop, parameters=params)


class TestNames:
    def test_full_and_short_names_denote_the_same_bean(self) -> None:
        """`sync.mbean:name=X` and `X` both give X."""
        assert short_name(object_name("PersonOwnerRebuildJob")) == "PersonOwnerRebuildJob"
        assert short_name("PersonOwnerRebuildJob") == "PersonOwnerRebuildJob"
        assert short_name(" sync.mbean:type=x,name=Y ") == "Y"

    def test_a_foreign_domain_is_not_ours(self) -> None:
        """A name in another JMX domain is kept whole, so the registry reports it unknown."""
        assert short_name("java.lang:type=Runtime") == "java.lang:type=Runtime"

    def test_operation_lookup_is_case_insensitive_when_unique(self) -> None:
        """Old runbooks capitalise operation names; a unique case-folded match is accepted."""
        bean = Bean.build("B", "", [_op()])
        assert bean.operation("DOIT").name == "doIt"

    def test_unknown_operation_names_the_closest(self) -> None:
        """An unknown operation's error suggests the nearest existing name."""
        bean = Bean.build("B", "", [_op()])
        with pytest.raises(OperationNotFoundError, match="did you mean doIt"):
            bean.operation("doit2")

    def test_duplicate_operation_is_refused(self) -> None:
        """A bean cannot declare two operations with one name."""
        with pytest.raises(ValueError, match="declared twice"):
            Bean.build("B", "", [_op(), _op()])


class TestBinding:
    def test_positional_and_named_arguments_are_typed(self) -> None:
        """Text arguments become the parameter's type."""
        op = _op(
            Parameter(name="n", type=ValueType.INT),
            Parameter(name="flag", type=ValueType.BOOL),
            Parameter(name="at", type=ValueType.TIMESTAMP),
        )
        bound = op.bind(["42"], {"flag": "yes", "at": "2026-01-02T03:04:05Z"})
        assert bound == {"n": 42, "flag": True, "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)}

    def test_missing_optional_arguments_take_their_default(self) -> None:
        """An absent optional parameter is its default."""
        op = _op(Parameter(name="n", type=ValueType.INT, default=5))
        assert op.bind([], {}) == {"n": 5}

    def test_too_many_arguments_are_refused_with_the_signature(self) -> None:
        """The error says how many arguments the operation takes and their names."""
        op = _op(Parameter(name="n", type=ValueType.INT))
        with pytest.raises(InvalidArgumentError, match=r"takes 1 argument\(s\) \(n\), got 2"):
            op.bind(["1", "2"], {})

    def test_a_wrong_type_names_the_parameter(self) -> None:
        """A value that is not of the parameter's type is refused, naming the parameter."""
        op = _op(Parameter(name="count", type=ValueType.INT))
        with pytest.raises(InvalidArgumentError) as info:
            op.bind(["ten"], {})
        assert info.value.parameter == "count"
        assert "expected a whole number" in str(info.value)

    def test_required_parameters_must_be_given(self) -> None:
        """A required parameter left out is named."""
        op = _op(Parameter(name="date", type=ValueType.STRING, required=True))
        with pytest.raises(InvalidArgumentError, match="'date' of doIt: is required"):
            op.bind([], {})

    def test_unknown_named_argument_is_refused_with_a_suggestion(self) -> None:
        """A misspelt named argument gets the nearest parameter name."""
        op = _op(Parameter(name="dateOverride", type=ValueType.STRING))
        with pytest.raises(InvalidArgumentError, match="did you mean dateOverride"):
            op.bind([], {"dateoverride2": "x"})

    def test_an_argument_given_twice_is_refused(self) -> None:
        """A parameter may not be given both by position and by name."""
        op = _op(Parameter(name="n", type=ValueType.INT))
        with pytest.raises(InvalidArgumentError, match="both by position and by name"):
            op.bind(["1"], {"n": "2"})

    def test_validators_reject_with_their_reason(self) -> None:
        """A parameter's validator's ValueError becomes the argument error."""

        def even(value: Value) -> Value:
            if isinstance(value, int) and value % 2:
                raise ValueError("must be even")
            return value

        op = _op(Parameter(name="n", type=ValueType.INT, validate=even))
        with pytest.raises(InvalidArgumentError, match="must be even"):
            op.bind(["3"], {})


class TestValues:
    @given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
    def test_integers_survive_text(self, n: int) -> None:
        """An int rendered as text coerces back to itself."""
        assert coerce(render(n), ValueType.INT) == n

    @given(st.booleans())
    def test_booleans_survive_text(self, b: bool) -> None:
        """A bool rendered as text coerces back to itself."""
        assert coerce(render(b), ValueType.BOOL) is b

    @given(st.datetimes(timezones=st.just(UTC)))
    def test_timestamps_survive_text(self, moment: datetime) -> None:
        """A UTC instant rendered as text coerces back to itself."""
        assert coerce(render(moment), ValueType.TIMESTAMP) == moment

    def test_booleans_are_not_integers(self) -> None:
        """true is not 1: a bool given for an int parameter is refused."""
        with pytest.raises(ValueError, match="whole number"):
            coerce(True, ValueType.INT)

    def test_non_finite_floats_are_refused(self) -> None:
        """nan and inf are not numbers an operation can use."""
        with pytest.raises(ValueError, match="finite"):
            coerce("nan", ValueType.FLOAT)

    def test_malformed_json_says_where(self) -> None:
        """Bad JSON text is refused with the position of the fault."""
        with pytest.raises(ValueError, match="expected JSON"):
            coerce("{nope", ValueType.JSON)


class TestStopwatchText:
    @pytest.mark.parametrize(
        ("seconds", "text"),
        [
            (0.0, "0s"),
            (210.72, "3.512 min"),
            (38.29, "38.29 s"),
            (0.5123, "512.3 ms"),
            (7200.0, "2.000 h"),
            (86400.0 * 1234, "1234 d"),
        ],
    )
    def test_matches_the_old_service(self, seconds: float, text: str) -> None:
        """elapsedTime prints like the old Guava Stopwatch: largest unit, 4 significant digits."""
        assert stopwatch_text(seconds) == text


class TestRegistry:
    @staticmethod
    def _registry() -> BeanRegistry:
        registry = BeanRegistry()
        registry.register(Bean.build("IndexJob", "", [_op()], aliases=["IndexSyncJob"]))
        registry.register(Bean.build("OwnerJob", "", [_op()]))
        return registry

    @pytest.mark.parametrize(
        "ref",
        ["IndexJob", "IndexSyncJob", "indexsyncjob", "sync.mbean:name=IndexSyncJob"],
    )
    def test_a_bean_is_found_by_its_name_or_an_alias(self, ref: str) -> None:
        """Short or full, any case: an alias gives the bean itself."""
        assert self._registry().get(ref).name == "IndexJob"

    def test_aliases_are_not_beans_of_their_own(self) -> None:
        registry = self._registry()
        assert [b.name for b in registry.beans()] == ["IndexJob", "OwnerJob"]
        assert len(registry) == 2
        assert registry.get("IndexJob").aliases == ("IndexSyncJob",)

    @pytest.mark.parametrize(
        ("name", "aliases"),
        [("indexsyncjob", ()), ("Other", ("OWNERJOB",)), ("Other", ("X", "x"))],
    )
    def test_a_name_claimed_twice_is_refused(self, name: str, aliases: tuple[str, ...]) -> None:
        """A name or alias another name holds, in any case, would make lookups ambiguous."""
        with pytest.raises(DuplicateBeanError):
            self._registry().register(Bean.build(name, "", [_op()], aliases=aliases))

    def test_an_unknown_name_suggests_beans_not_duplicates(self) -> None:
        """The nearest names, aliases included, suggest their beans once each."""
        with pytest.raises(BeanNotFoundError) as caught:
            self._registry().get("IndexSyncJb")
        assert caught.value.suggestions == ["IndexJob"]
