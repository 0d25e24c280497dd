"""`syncctl shell`: jmxterm's commands over the gRPC control plane, so old runbooks work unchanged.

Output follows jmxterm: "#"-prefixed messages go to stderr (silenced by `-v silent`), values go to
stdout, so a piped runbook's stdout holds just the results. A failing command prints its error
and the shell carries on; the exit status is that of the last failure (0 when none failed).
"""

from __future__ import annotations

import contextlib
import shlex
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Protocol

from syncctl._connect import looks_like_address, normalize_address
from syncctl._exit import ExitCode, SyncctlError
from syncctl._render import jmx_value_text, type_word
from syncd_api.v1 import management_pb2 as pb

DEFAULT_DOMAIN = "sync.mbean"
NULL = "null"  # jmxterm's spelling of "no value", also used to unset the domain or bean


class Backend(Protocol):
    """What the shell needs from the daemon; `syncctl._connect.Client` provides it."""

    def list_beans(self) -> pb.ListBeansResponse: ...

    def describe_bean(self, bean: str) -> pb.BeanInfo: ...

    def invoke(
        self,
        bean: str,
        operation: str,
        arguments: Sequence[str] = (),
        named_arguments: Mapping[str, str] | None = None,
    ) -> pb.InvokeResponse: ...

    def get_attributes(self, bean: str, names: Sequence[str] = ()) -> pb.GetAttributesResponse: ...

    def close(self) -> None: ...


Connector = Callable[[str], Backend]

# Options each command takes: name -> whether it takes a value. Long forms map to short ones.
_OPTIONS: dict[str, dict[str, bool]] = {
    "open": {},
    "close": {},
    "domains": {},
    "domain": {},
    "beans": {"d": True},
    "bean": {"d": True},
    "info": {"b": True, "d": True},
    "get": {"b": True, "d": True},
    "run": {"b": True, "d": True, "m": False},
    "help": {},
    "exit": {},
    "quit": {},
}
_LONG = {"bean": "b", "domain": "d", "measure": "m"}

_NO_BEAN = "Please specify a bean using either -b option or bean command"
_NO_BEAN_TO_INVOKE = "Please specify MBean to invoke either using -b option or bean command"

HELP = """\
Commands (jmxterm's, against syncd):
  open [address]          connect; an argument that is not an address (jmxterm's `open 1`)
                          means the default daemon
  close                   disconnect
  domains                 list domains (syncd has one: sync.mbean)
  domain [name]           show or set the current domain
  beans [-d domain]       list beans
  bean [name]             show or set the current bean (full or short name)
  info [-b bean]          a bean's attributes and operations
  get [-b bean] attr...   read attributes (* for all)
  run [-b bean] [-m] op [args...]
                          invoke an operation; -m prints how long the call took
  help                    this text
  exit, quit              leave the shell
Blank lines and lines starting with # are ignored.
"""


@dataclass(frozen=True)
class Command:
    """One parsed shell line."""

    name: str
    options: dict[str, str | bool] = field(default_factory=dict)
    args: tuple[str, ...] = ()


def usage(message: str) -> SyncctlError:
    return SyncctlError(ExitCode.USAGE, message)


def parse_line(line: str) -> Command | None:
    """A Command, or None for a blank line or a comment. Options come before arguments."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    try:
        tokens = shlex.split(text)
    except ValueError as error:
        raise usage(f"cannot parse {text!r}: {error}") from None
    if not tokens:
        return None
    name, rest = tokens[0], tokens[1:]
    if name not in _OPTIONS:
        raise usage(f"unknown command {name!r} (try `help`)")
    spec = _OPTIONS[name]
    options: dict[str, str | bool] = {}
    i = 0
    while i < len(rest) and rest[i].startswith("-") and rest[i] != "-":
        token = rest[i]
        i += 1
        if token == "--":
            break
        key, eq, inline = token.lstrip("-").partition("=")
        key = _LONG.get(key, key) if token.startswith("--") else key
        if key not in spec:
            raise usage(f"{name}: unknown option {token}")
        if not spec[key]:
            options[key] = True
            continue
        if eq:
            options[key] = inline
        elif i < len(rest):
            options[key] = rest[i]
            i += 1
        else:
            raise usage(f"{name}: option {token} needs a value")
    return Command(name, options, tuple(rest[i:]))


class _Quit(Exception):
    """`exit`/`quit`: stop reading commands."""


class Shell:
    """A jmxterm session: a connection, a current domain and a current bean."""

    def __init__(
        self,
        connect: Connector,
        *,
        default_address: str,
        out: IO[str],
        err: IO[str],
        silent: bool = False,
    ) -> None:
        self._connect = connect
        self._default_address = default_address
        self._out = out
        self._err = err
        self._silent = silent
        self._backend: Backend | None = None
        # Set by a failed `open`: as in jmxterm, the shell is then not connected, and commands
        # fail until an `open` succeeds (rather than quietly reaching the default daemon).
        self._failed_open: str | None = None
        self.address: str | None = None
        self.domain: str | None = None
        self.bean: str | None = None

    # -- session ---------------------------------------------------------------------------

    def run(self, lines: Iterable[str], *, numbered: bool = True) -> int:
        """Execute every line; the exit status of the last failure, or 0."""
        status = ExitCode.OK
        try:
            for number, line in enumerate(lines, start=1):
                code = self.execute(line, where=f"line {number}: " if numbered else "")
                if code is not ExitCode.OK:
                    status = code
        except _Quit:
            pass
        finally:
            self.close()
        return int(status)

    def execute(self, line: str, *, where: str = "") -> ExitCode:
        """Run one line, printing its error (if any); raises _Quit for exit/quit."""
        try:
            command = parse_line(line)
            if command is not None:
                self.dispatch(command)
        except SyncctlError as error:
            self._err.write(f"#{where}{error.message}\n")
            self._err.flush()
            return error.code
        return ExitCode.OK

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def dispatch(self, command: Command) -> None:
        handler = getattr(self, f"_cmd_{command.name}")
        handler(command)
        self._out.flush()

    # -- output ----------------------------------------------------------------------------

    def _message(self, text: str) -> None:
        if not self._silent:
            self._err.write(f"#{text}\n")
            self._err.flush()

    def _value(self, text: str) -> None:
        self._out.write(text + "\n")

    # -- helpers ---------------------------------------------------------------------------

    def _open(self, address: str) -> Backend:
        self.close()
        backend = self._connect(address)
        self._backend = backend
        self.address = address
        return backend

    def _daemon(self) -> Backend:
        """The open connection; opening the default daemon when none is (jmxterm required open)."""
        if self._backend is None:
            if self._failed_open is not None:
                raise SyncctlError(
                    ExitCode.UNREACHABLE,
                    f"not connected (open {self._failed_open} failed); use open to connect",
                )
            return self._open(self._default_address)
        return self._backend

    def _domains(self) -> list[str]:
        names = {b.object_name.partition(":")[0] for b in self._daemon().list_beans().beans}
        return sorted(names or {DEFAULT_DOMAIN})

    def _bean_name(self, command: Command, *, required_message: str) -> str:
        """-b's bean (completed with the domain as jmxterm did) or the current bean."""
        given = command.options.get("b")
        if isinstance(given, str):
            return self._qualify(given, command)
        if self.bean is None:
            raise usage(required_message)
        return self.bean

    def _qualify(self, bean: str, command: Command) -> str:
        """`name=X` needs the domain in front; full names and short `X` pass through."""
        if ":" in bean or "=" not in bean:
            return bean
        domain = command.options.get("d")
        domain = domain if isinstance(domain, str) else self.domain
        if domain is None:
            raise usage("Please specify domain using either -d option or domain command")
        return f"{domain}:{bean}"

    # -- commands --------------------------------------------------------------------------

    def _cmd_open(self, command: Command) -> None:
        if not command.args:
            if self._backend is None:
                self._message("not connected")
                self._value(NULL)
            else:
                self._value(f"{self.address}")
            return
        target = command.args[0]
        address = normalize_address(target) if looks_like_address(target) else None
        try:
            backend = self._open(address or self._default_address)
            backend.list_beans()  # fail here, at `open`, when nothing is listening
        except SyncctlError:
            self.close()
            self.address = None
            self._failed_open = target
            raise
        self._failed_open = None
        self._message(f"Connection to {target} is opened")

    def _cmd_close(self, command: Command) -> None:
        self.close()
        self.address = None
        self._message("disconnected")

    def _cmd_domains(self, command: Command) -> None:
        domains = self._domains()
        self._message("following domains are available")
        for domain in domains:
            self._value(domain)

    def _cmd_domain(self, command: Command) -> None:
        if not command.args:
            if self.domain is None:
                self._message("domain is not set")
                self._value(NULL)
            else:
                self._message(f"domain = {self.domain}")
                self._value(self.domain)
            return
        name = command.args[0]
        if name == NULL:
            self.domain = None
            self._message("domain is unset")
            return
        if name not in self._domains():
            raise SyncctlError(
                ExitCode.NOT_FOUND, f"Domain {name} doesn't exist, check your spelling"
            )
        self.domain = name
        self._message(f"domain is set to {name}")

    def _cmd_beans(self, command: Command) -> None:
        chosen = command.options.get("d")
        domain = chosen if isinstance(chosen, str) else self.domain
        beans = self._daemon().list_beans().beans
        by_domain: dict[str, list[str]] = {}
        for bean in beans:
            by_domain.setdefault(bean.object_name.partition(":")[0], []).append(bean.object_name)
        if domain is not None and domain not in by_domain:
            raise SyncctlError(
                ExitCode.NOT_FOUND, f"Domain {domain} doesn't exist, check your spelling"
            )
        for name in [domain] if domain is not None else sorted(by_domain):
            self._message(f"domain = {name}:")
            for object_name in sorted(by_domain[name]):
                self._value(object_name)

    def _cmd_bean(self, command: Command) -> None:
        if not command.args:
            self._value(self.bean or NULL)
            return
        if command.args[0] == NULL:
            self.bean = None
            self._message("bean is unset")
            return
        info = self._daemon().describe_bean(self._qualify(command.args[0], command))
        self.bean = info.ref.object_name
        self._message(f"bean is set to {self.bean}")

    def _cmd_info(self, command: Command) -> None:
        bean = self._bean_name(command, required_message=_NO_BEAN)
        info = self._daemon().describe_bean(bean)
        self._message(f"mbean = {info.ref.object_name}")
        if info.ref.description:
            self._message(f"description = {info.ref.description}")
        if not info.attributes:
            self._message("there is no attribute")
        else:
            self._value("# attributes")
            attributes = sorted(info.attributes, key=lambda a: a.name)
            for index, attr in enumerate(attributes):
                kind = type_word(attr.type)
                self._value(f"  %{index:<3d} - {attr.name} ({kind}, r)")
        if not info.operations:
            self._message("there's no operations")
            return
        self._value("# operations")
        for index, op in enumerate(sorted(info.operations, key=lambda o: o.name)):
            params = ",".join(f"{type_word(p.type)} {p.name}" for p in op.parameters)
            self._value(f"  %{index:<3d} - {type_word(op.return_type)} {op.name}({params})")

    def _cmd_get(self, command: Command) -> None:
        if not command.args:
            raise usage("Please specify at least one attribute")
        bean = self._bean_name(command, required_message=_NO_BEAN)
        names = [] if "*" in command.args else list(command.args)
        reply = self._daemon().get_attributes(bean, names)
        self._message(f"mbean = {reply.ref.object_name or bean}:")
        for attribute in reply.attributes:
            self._value(f"{attribute.name} = {jmx_value_text(attribute.value)};")

    def _cmd_run(self, command: Command) -> None:
        bean = self._bean_name(command, required_message=_NO_BEAN_TO_INVOKE)
        if not command.args:
            raise usage("At least one parameter is needed")
        operation, *arguments = command.args
        self._message(
            f"calling operation {operation} of mbean {bean} with params [{', '.join(arguments)}]"
        )
        started = time.monotonic()
        try:
            reply = self._daemon().invoke(bean, operation, arguments)
        finally:
            if command.options.get("m"):
                taken = round((time.monotonic() - started) * 1000)
                self._message(f"{taken}ms is taken by invocation")
        if reply.HasField("run"):
            self._message(f"{reply.message or 'Started'}: run {reply.run.run_id}")
        elif reply.message:
            self._message(reply.message)
        self._message("operation returns: ")
        self._value(jmx_value_text(reply.result))

    def _cmd_help(self, command: Command) -> None:
        self._out.write(HELP)

    def _cmd_exit(self, command: Command) -> None:
        self.close()
        self._message("bye")
        raise _Quit

    _cmd_quit = _cmd_exit


def interactive_lines(prompt: str) -> Iterable[str]:
    """Lines typed at a terminal, with line editing when readline is available."""
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  (imported for its side effect on input())
    while True:
        try:
            yield input(prompt)
        except EOFError:
            print()
            return
        except KeyboardInterrupt:
            print()  # Ctrl-C at the prompt drops the line, as in a shell
