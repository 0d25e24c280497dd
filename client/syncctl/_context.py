"""What every command handler is given: the parsed arguments, where the daemon is, the streams
to print on, and the clock for "3m ago". Handlers depend on this module, never on `cli`."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from syncctl._connect import Client
    from syncctl._output import Mode

PROG = "syncctl"


def note(err: IO[str], text: str) -> None:
    """A line for the operator on stderr, prefixed with the program's name."""
    err.write(f"{PROG}: {text}\n")
    err.flush()


class Context:
    """What a command needs: where the daemon is, how to print, and the clock for "3m ago"."""

    def __init__(
        self,
        args: argparse.Namespace,
        *,
        stdout: IO[str],
        stderr: IO[str],
        stdin: IO[str],
        environ: Mapping[str, str],
        tty: bool,
        now: Callable[[], float],
    ) -> None:
        from syncctl._connect import DEFAULT_TIMEOUT, resolve_address

        self.args = args
        self.stdout = stdout
        self.stderr = stderr
        self.stdin = stdin
        self.environ = environ
        self.tty = tty
        self.now = now
        self.address = resolve_address(getattr(args, "address", None), environ)
        self.timeout: float = getattr(args, "timeout", DEFAULT_TIMEOUT)
        if getattr(args, "token", None):
            note(stderr, "--token shows in the process list; prefer --token-file or SYNCD_TOKEN")

    @property
    def mode(self) -> Mode:
        from syncctl._output import choose_mode

        return choose_mode(json_flag=getattr(self.args, "json", False), tty=self.tty)

    def client(self, address: str | None = None) -> Client:
        """A client of the daemon at `address` (default: this command's), with the
        command's credentials."""
        from syncctl._connect import Client
        from syncctl._exit import ExitCode, SyncctlError
        from syncd_api.channel import CredentialError, TlsFiles, read_token

        args = self.args
        try:
            token = read_token(
                getattr(args, "token", None), getattr(args, "token_file", None), self.environ
            )
            ca, cert, key = (getattr(args, k, "") or "" for k in ("tls_ca", "cert", "key"))
            tls = TlsFiles(ca=ca, cert=cert, key=key) if (ca or cert or key) else None
        except CredentialError as exc:
            raise SyncctlError(ExitCode.USAGE, str(exc)) from None
        return Client(address or self.address, timeout=self.timeout, token=token, tls=tls)
