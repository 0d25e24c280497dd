"""The managed-bean model: JMX-style object names, operations with typed parameters, attributes.

A bean is a plain object; the registry holds beans and the RPC edge turns them into messages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from syncd.enums import Impact
from syncd.errors import (
    AttributeNotFoundError,
    InvalidArgumentError,
    OperationNotFoundError,
    closest,
)
from syncd.values import Value, ValueType, coerce

DOMAIN = "sync.mbean"
_T = TypeVar("_T")


def object_name(name: str) -> str:
    """The JMX-style name of a bean: `sync.mbean:name=<Name>`."""
    return f"{DOMAIN}:name={name}"


def short_name(ref: str) -> str:
    """`<Name>` from either `sync.mbean:name=<Name>` or `<Name>` itself."""
    ref = ref.strip()
    domain, sep, props = ref.partition(":")
    if not sep:
        return ref
    if domain != DOMAIN:
        return ref  # not ours: the registry reports it as unknown, with suggestions
    for prop in props.split(","):
        key, _, value = prop.partition("=")
        if key.strip() == "name":
            return value.strip()
    return ref


@dataclass(frozen=True, slots=True, kw_only=True)
class Parameter:
    """One typed parameter of an operation."""

    name: str
    type: ValueType
    description: str = ""
    required: bool = False
    default: Value = None
    # Raises ValueError with a reason when the (already coerced) value is not acceptable.
    validate: Callable[[Value], Value] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Invocation:
    """What an operation handler receives: bound, typed arguments and who asked."""

    arguments: Mapping[str, Value]
    actor: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """What an operation returns: a value, and the id of the run it started or acted on (the
    edge reads that run from the run service)."""

    value: Value = None
    run_id: str = ""
    message: str = ""


Handler = Callable[[Invocation], Result | Awaitable[Result]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Operation:
    """One operation of a bean, like JMX's MBeanOperationInfo plus its handler.

    `blocking` handlers do I/O and are run on a worker thread, never on the event loop.
    """

    name: str
    handler: Handler
    description: str = ""
    parameters: tuple[Parameter, ...] = ()
    returns: ValueType = ValueType.VOID
    impact: Impact = Impact.INFO
    blocking: bool = False
    alias_of: str | None = None

    def bind(self, positional: Sequence[Value], named: Mapping[str, Value]) -> dict[str, Value]:
        """Typed arguments by parameter name, or InvalidArgumentError naming what is wrong."""
        params = self.parameters
        if len(positional) > len(params):
            names = ", ".join(p.name for p in params) or "none"
            raise InvalidArgumentError(
                self.name,
                f"takes {len(params)} argument(s) ({names}), got {len(positional)}",
            )
        known = {p.name for p in params}
        for key in named:
            if key not in known:
                hint = closest(key, known)
                more = f"; did you mean {', '.join(hint)}?" if hint else ""
                raise InvalidArgumentError(self.name, f"no parameter named {key!r}{more}", key)
        given: dict[str, Value] = {}
        for param, value in zip(params, positional, strict=False):
            given[param.name] = value
        for key, value in named.items():
            if key in given:
                raise InvalidArgumentError(self.name, "given both by position and by name", key)
            given[key] = value
        bound: dict[str, Value] = {}
        for param in params:
            if param.name not in given or given[param.name] is None:
                if param.required:
                    raise InvalidArgumentError(self.name, "is required", param.name)
                bound[param.name] = param.default
                continue
            try:
                value = coerce(given[param.name], param.type)
                if param.validate is not None:
                    value = param.validate(value)
            except ValueError as exc:
                raise InvalidArgumentError(self.name, str(exc), param.name) from None
            bound[param.name] = value
        return bound


@dataclass(frozen=True, slots=True, kw_only=True)
class Attribute:
    """A read-only attribute of a bean; `read` is cheap and runs on the event loop."""

    name: str
    type: ValueType
    read: Callable[[], Value]
    description: str = ""


def _lookup(items: Mapping[str, _T], name: str) -> _T | None:
    """Exact name first, then a unique case-insensitive match (old runbooks capitalise)."""
    if name in items:
        return items[name]
    folded = [v for k, v in items.items() if k.lower() == name.lower()]
    return folded[0] if len(folded) == 1 else None


@dataclass(frozen=True, slots=True)
class Bean:
    """A managed bean: a name, its operations and its attributes."""

    name: str
    description: str
    operations: Mapping[str, Operation] = field(default_factory=dict)
    attributes: Mapping[str, Attribute] = field(default_factory=dict)
    # Other short names the registry resolves to this bean (old names); never beans themselves.
    aliases: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        name: str,
        description: str,
        operations: Sequence[Operation],
        attributes: Sequence[Attribute] = (),
        aliases: Sequence[str] = (),
    ) -> Bean:
        """A bean from lists, refusing two operations or attributes with one name."""
        ops: dict[str, Operation] = {}
        for op in operations:
            if op.name in ops:
                raise ValueError(f"bean {name}: operation {op.name!r} is declared twice")
            ops[op.name] = op
        attrs: dict[str, Attribute] = {}
        for attr in attributes:
            if attr.name in attrs:
                raise ValueError(f"bean {name}: attribute {attr.name!r} is declared twice")
            attrs[attr.name] = attr
        return cls(
            name=name,
            description=description,
            operations=ops,
            attributes=attrs,
            aliases=tuple(aliases),
        )

    @property
    def object_name(self) -> str:
        return object_name(self.name)

    def operation(self, name: str) -> Operation:
        found = _lookup(self.operations, name)
        if found is None:
            raise OperationNotFoundError(self.object_name, name, closest(name, self.operations))
        return found

    def attribute(self, name: str) -> Attribute:
        found = _lookup(self.attributes, name)
        if found is None:
            raise AttributeNotFoundError(self.object_name, name, closest(name, self.attributes))
        return found
