"""One daemon per state directory: a private run directory and an flock taken before binding.

gRPC silently unlinks an existing unix socket when it binds, so without this lock a second
daemon would steal the first one's socket.
"""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

from syncd.errors import ConfigError, InstanceLockedError, StartupEnvironmentError

# sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH = 107


def private_dir(path: Path) -> Path:
    """Create `path` (0700) or make an existing one of ours private; refuse someone else's."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.geteuid():
        # The machine, not the file, is at fault: an environment error (exit 3).
        raise StartupEnvironmentError(str(path), f"owned by uid {info.st_uid}, not by this user")
    if stat.S_IMODE(info.st_mode) != 0o700:
        path.chmod(0o700)
    return path


class InstanceLock:
    """An exclusive, non-blocking flock on `<state_dir>/syncd.lock`, held for the daemon's life."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "syncd.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise InstanceLockedError(str(self.path), f"pid {holder}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file stays to avoid unlink races
            self._fd = None


def prepare_socket(path: Path) -> None:
    """Check the path fits a unix socket and clear a stale socket left by a dead daemon.

    Only call this while holding the instance lock: then any socket there is stale.
    """
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise ConfigError(
            "daemon.address",
            f"socket path {path} is longer than {MAX_SOCKET_PATH} bytes; use a shorter state_dir",
        )
    private_dir(path.parent)
    if path.is_socket():
        path.unlink()


def open_socket(socket_file: Path, state_dir: Path, *, shared: bool) -> None:
    """Let other local users reach the control socket only when `[auth] unix_roles` grants
    one of them something: then the directories on its way become traversable (0711, not
    listable) and the socket connectable, and the relay's SO_PEERCRED check decides. Otherwise
    everything stays owner-only, and other users cannot even connect."""
    if not shared:
        return
    for directory in {state_dir, socket_file.parent}:
        directory.chmod(0o711)
    socket_file.chmod(0o666)
