"""Exclusive locks on what dynlearn writes: run folders and model-cache entries.

One writer at a time: a run folder (``OUT/.dynlearn.lock``, taken by :meth:`dynlearn.results.RunFolder.open`) and a
model-cache entry (``<entry>.lock``, taken by :func:`dynlearn.models.fitted` while it fits and stores the model) each
have a lock file. The lock is ``fcntl.flock`` on that file, so the kernel drops it however its holder ends (SIGKILL
included), and the file records the holder (PID, host, start time, command) so that a second writer is told who holds
it (:class:`~dynlearn.errors.LockedError`). The holder removes the file when it releases the lock: when the process
exits (``atexit``), or at the end of a ``with`` block.

A lock file found without a live holder was left by a process that was killed: on the same host with its PID gone (or
reused by another program) it is taken over with a one-line warning; written on another host, whose processes cannot
be checked from here, it is refused and named, with the fix (delete it once no process there writes the folder).

The processes of one run that each train one seed (``only_seed``) share the run's lock (``part``: a shared flock on
the run's lock file, plus an exclusive lock of their own part), so they may write one run folder together, while a
writer of the whole run (a new, ``--force`` or ``--resume`` run) excludes them all and they exclude it.

Locks are re-entrant within a process: opening a folder the process already holds (a run resumed by the same program)
reuses the lock.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import datetime as _dt
import errno
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

from .errors import LockedError, warn

try:
    import fcntl
except ImportError:  # not on POSIX: the lock file's record alone (no kernel lock) decides
    fcntl = None

__all__ = ["Holder", "Lock", "acquire", "held", "hold", "holders", "release_all"]

RUN_LOCK = ".dynlearn.lock"
HOST = socket.gethostname()


def _process_start(pid: int) -> str | None:
    """The kernel's start time of process ``pid`` (clock ticks since boot, from /proc), or None where unknown: with the
    PID it identifies a process even after the PID is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


@dataclasses.dataclass(frozen=True)
class Holder:
    """Who holds a lock: what its lock file records."""

    pid: int
    host: str
    started: str
    """when the lock was taken (UTC, ISO 8601)"""
    command: str = ""
    process_start: str | None = None
    part: str | None = None

    @classmethod
    def me(cls, part: str | None = None) -> "Holder":
        argv = [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv and sys.argv[0] not in ("", "-", "-c") else []
        command = " ".join(argv)
        return cls(pid=os.getpid(), host=HOST, started=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                   command=command[:200], process_start=_process_start(os.getpid()), part=part)

    @classmethod
    def parse(cls, text: str) -> "Holder | None":
        try:
            data = json.loads(text)
            return cls(pid=int(data["pid"]), host=str(data["host"]), started=str(data.get("started", "?")),
                       command=str(data.get("command", "")), process_start=data.get("process_start"), part=data.get("part"))
        except (ValueError, KeyError, TypeError):
            return None

    def describe(self) -> str:
        what = f"process {self.pid} on {self.host} (" + (f"writing {self.part}, " if self.part else "")
        return what + f"since {self.started}" + (f": {self.command})" if self.command else ")")

    def alive(self) -> bool | None:
        """Whether the holder still runs: None when it ran on another host (cannot be checked from here)."""
        if self.host != HOST:
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # another user's process with that PID
        if self.process_start is not None:
            now = _process_start(self.pid)
            if now is not None and now != self.process_start:
                return False  # the PID was reused by another process
        return True


def _read(path: Path) -> Holder | None:
    try:
        return Holder.parse(path.read_text())
    except OSError:
        return None


def _part_path(path: Path, part: str) -> Path:
    return path.with_name(f"{path.stem}.{part}{path.suffix}")


def holders(path: str | os.PathLike) -> list[Holder]:
    """The holders recorded for the lock at ``path``: its exclusive holder, else those of its parts."""
    path = Path(path)
    found = [h for h in [_read(path)] if h is not None]
    if not found and path.parent.is_dir():
        found = [h for p in sorted(path.parent.glob(f"{path.stem}.*{path.suffix}")) if (h := _read(p)) is not None]
    return found


class Lock:
    """A held lock (see :func:`acquire`). Release with :meth:`release` or a ``with`` block; the process's exit releases
    it too."""

    def __init__(self, path: Path, what: str, part: str | None):
        self.path, self.what, self.part = path, what, part
        self._fds: list[tuple[int, Path | None]] = []  # (fd, file to remove on release)
        self._count = 1
        self._pid = os.getpid()  # a forked child inherits the lock but must not remove its file

    def __enter__(self) -> "Lock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def release(self) -> None:
        """Give the lock up (a re-entered lock only once every holder released it): its record is removed."""
        self._count -= 1
        if self._count > 0:
            return
        if _HELD.get(_key(self.path)) is self:
            del _HELD[_key(self.path)]
        for fd, remove in reversed(self._fds):
            if remove is not None and os.getpid() == self._pid:
                with contextlib.suppress(OSError):
                    if os.fstat(fd).st_ino == os.stat(remove).st_ino:
                        os.unlink(remove)
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []


_HELD: dict[str, Lock] = {}


def _key(path: Path) -> str:
    return os.path.realpath(path)


def held(path: str | os.PathLike) -> Lock | None:
    """This process's lock at ``path``, if it holds one."""
    return _HELD.get(_key(Path(path)))


@atexit.register
def release_all() -> None:
    """Release every lock this process holds (run at exit)."""
    for lock in list(_HELD.values()):
        lock._count = 1
        lock.release()


def _flock(fd: int, shared: bool) -> bool | None:
    """Try to flock ``fd`` without waiting: True when taken, False when someone holds it, None where flock is not
    supported (some network file systems): then the lock file's record alone decides."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EACCES, errno.EAGAIN):
            return False
        if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return None
        raise


def _write(fd: int, holder: Holder) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(dataclasses.asdict(holder)) + "\n").encode(), 0)
    os.fsync(fd)


def _read_fd(fd: int) -> Holder | None:
    data = os.pread(fd, 1 << 16, 0)
    return Holder.parse(data.decode("utf-8", "replace")) if data.strip() else None


def _stale(found: Holder, path: Path, what: str, *, kernel_lock: bool) -> None:
    """A record found in a lock file we could lock: take it over (warning) or refuse (another host; a live holder
    where no kernel lock protects the file)."""
    if found.pid == os.getpid() and found.host == HOST:
        return
    alive = found.alive()
    if alive is None:
        raise LockedError(path, what, found, other_host=True)
    if alive and not kernel_lock:
        raise LockedError(path, what, found)
    warn(f"{path}: took over the lock of {what} left by {found.describe()}, which no longer runs (killed?).")


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)


def _take(path: Path, what: str, *, shared: bool, record: Holder | None) -> tuple[int, Path | None] | list[Holder]:
    """One try at locking ``path``: ``(fd, file to remove on release)`` when taken, else who holds it (maybe [])."""
    for _ in range(50):  # retried while the file we locked was removed or replaced under us
        fd = _open(path)
        try:
            got = _flock(fd, shared)
            if got is False:
                os.close(fd)
                return holders(path)
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # its holder removed it after we opened it: lock the file now at that path
                os.close(fd)
                continue
            found = _read_fd(fd)
            if shared:
                if found is not None and got:  # a killed whole-run writer's record
                    if _flock(fd, shared=False):  # alone: clear it (else the other parts saw it already)
                        _stale(found, path, what, kernel_lock=True)
                        os.ftruncate(fd, 0)
                    if _flock(fd, shared=True) is False:  # (a failed conversion may drop the lock: take it again)
                        os.close(fd)
                        return holders(path)
                return fd, None
            if found is not None:
                _stale(found, path, what, kernel_lock=got is True)
            _write(fd, record)
            return fd, path
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
    return holders(path)


def _try(path: Path, what: str, part: str | None) -> Lock | list[Holder]:
    lock = Lock(path, what, part)
    try:
        if part is None:
            got = _take(path, what, shared=False, record=Holder.me())
        else:
            got = _take(path, what, shared=True, record=None)
            if isinstance(got, tuple):
                lock._fds.append(got)
                got = _take(_part_path(path, part), f"{what} ({part})", shared=False, record=Holder.me(part))
    except BaseException:
        lock.release()
        raise
    if isinstance(got, tuple):
        lock._fds.append(got)
        return lock
    lock.release()
    return got


def acquire(path: str | os.PathLike, what: str, *, part: str | None = None, wait: bool = False,
            on_wait: Callable[[str], None] | None = None) -> Lock:
    """Lock ``path`` (a lock file) for writing ``what`` (words for messages, e.g. "the run folder runs/mopo").

    ``part``: share the lock with the other parts of one job (one seed each), excluding whole writers and the same
    part. ``wait``: wait for the holder to finish (saying so once through ``on_wait``) instead of raising
    :class:`~dynlearn.errors.LockedError`. Re-entrant within a process."""
    path = Path(path)
    mine = _HELD.get(_key(path))
    if mine is not None:
        if mine.part is not None and part != mine.part:  # this process writes one part: it cannot take more of it
            raise LockedError(path, what, Holder.me(mine.part))
        mine._count += 1
        return mine
    said = False
    while True:
        got = _try(path, what, part)
        if isinstance(got, Lock):
            _HELD[_key(path)] = got
            return got
        if not wait:
            raise LockedError(path, what, got[0] if got else None, others=max(len(got) - 1, 0))
        if not said and on_wait is not None:
            on_wait(f"waiting for {got[0].describe() if got else 'another process'}, which is writing {what}")
            said = True
        time.sleep(1.0)


@contextlib.contextmanager
def hold(path: str | os.PathLike, what: str, **kwargs) -> Iterator[Lock]:
    """:func:`acquire` for the duration of a ``with`` block."""
    lock = acquire(path, what, **kwargs)
    try:
        yield lock
    finally:
        lock.release()
