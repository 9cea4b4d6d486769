"""The evidence package on disk: atomic creation, BagIt files, opening.

A package is a BagIt 1.0 bag (RFC 8493) with an ``evidence/`` tag directory.
It is assembled under ``.incomplete-<id>`` in the output directory, fsynced,
and renamed to ``<id>`` only when complete, so a package with its final name
is never half written. Names starting with ``.`` are never packages.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as _dt
import errno
import fcntl
import hashlib
import logging
import os
import re
import secrets
import shutil
import socket
import stat
import time
import typing
import unicodedata
import urllib.parse
from pathlib import Path

from evidence import clock
from evidence.errors import PackageError
from evidence.threads import process_pool

logger = logging.getLogger(__name__)

__all__ = [
    "ATTACHMENT_DIRS",
    "MANIFEST_PATH",
    "MAX_MANIFEST_BYTES",
    "TAG_FILES",
    "PackageWriter",
    "attachment_dir",
    "bag_files",
    "deferred_out_dir_sync",
    "fault_point",
    "fsync_dir",
    "fsync_paths",
    "is_package",
    "make_package_id",
    "open_regular_file",
    "read_manifest_bytes",
    "read_package_file",
    "read_regular_file",
    "regular_file_names",
    "remove_stale_temporaries",
    "require_package",
    "safe_relative_path",
    "set_fault_hook",
    "sha256_file",
    "write_file_atomic",
]

MANIFEST_PATH = "evidence/manifest.json"
# Files covered by tagmanifest-sha256.txt.
TAG_FILES = ("bagit.txt", "bag-info.txt", "manifest-sha256.txt", MANIFEST_PATH)
# Attachments: added after sealing, never in the tag manifest. Directory ->
# allowed file-name pattern. The verifier refuses anything else under evidence/.
ATTACHMENT_DIRS: dict[str, re.Pattern[str]] = {
    "evidence/signatures": re.compile(r"^[0-9a-f]{64}\.sig$"),
    "evidence/keys": re.compile(r"^[0-9a-f]{64}\.pub$"),
    "evidence/timestamps": re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.(tsr|tsq)$"),
}
ATTACHMENT_FILES = ("evidence/custody.jsonl",)

_BAGIT_TXT = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
_CHUNK = 1 << 20


FaultHook = typing.Callable[[str], None]
_fault_hook: FaultHook | None = None


def set_fault_hook(hook: FaultHook | None) -> FaultHook | None:
    """Install a crash-test hook called at every :func:`fault_point`; returns the previous one.

    Only tests install one (tests/integration/test_crash_safety.py runs a child
    that installs a hook which announces the point and sleeps, then SIGKILLs
    it there). Nothing in the library or the CLI reads the environment for
    this, so no setting can make a real capture stall.
    """
    global _fault_hook
    previous = _fault_hook
    _fault_hook = hook
    return previous


def fault_point(name: str) -> None:
    """A named step where a crash test may stop the process; a no-op without a hook."""
    hook = _fault_hook
    if hook is not None:
        hook(name)


def sha256_file(path: Path) -> tuple[str, int]:
    """Stream a file through SHA-256; returns (hex digest, size)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename or new entry in it is durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_paths(paths: typing.Iterable[Path]) -> None:
    """fsync files and directories at once; returns when every one is durable.

    Concurrent fsyncs share the file system's journal commits: seven small
    files took 3 ms this way against 14 ms one after another (ext4, 2026-12-03,
    benchmarks/README.md). The order among them does not matter: only that all
    are done before a rename depends on them. The calling thread does the
    first itself instead of waiting idle: one hand-over between threads fewer
    (each costs a wake-up, and under load a wait for a core).

    Raises:
        OSError: the first failure (after every fsync has finished).
    """
    targets = list(dict.fromkeys(paths))
    if len(targets) <= 1:
        for path in targets:
            _fsync_path(path)
        return
    pool = _fsync_pool()
    futures = [pool.submit(_fsync_path, path) for path in targets[1:]]
    mine: OSError | None = None
    try:
        _fsync_path(targets[0])
    except OSError as exc:
        mine = exc
    for future in futures:
        future.exception()  # waits: every fsync finishes before the first error is raised
    if mine is not None:
        raise mine
    for future in futures:
        future.result()


_FSYNC_THREADS = 16


def _fsync_pool() -> typing.Any:
    """The process's fsync threads, so a capture does not start and stop a dozen."""
    return process_pool("fsync", _FSYNC_THREADS)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_deferred_syncs: contextvars.ContextVar[list[Path] | None] = contextvars.ContextVar(
    "evidence_deferred_syncs", default=None
)


@contextlib.contextmanager
def deferred_out_dir_sync() -> typing.Iterator[list[Path]]:
    """Leave the last fsync of packages finished in this block (this thread) to the caller.

    A package's files are durable before its rename either way; what is left
    is the fsync of the output directory that makes the rename itself
    durable. Inside the block :meth:`PackageWriter.finish` appends that
    directory to the list yielded instead, and the caller must fsync every
    directory in it (with :func:`fsync_paths`) before it tells anyone the
    package exists. A batch fsyncs it together with its claim file, one round
    of journal commits instead of two (docs/batch.md). Only for an output
    directory without a ledger (a batch's staging directory):
    :func:`evidence.capture` logs a package in its directory's ledger before
    it returns.
    """
    pending: list[Path] = []
    token = _deferred_syncs.set(pending)
    try:
        yield pending
    finally:
        _deferred_syncs.reset(token)


def write_file_atomic(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` via a temporary name, fsync, rename.

    With ``exclusive``, refuse to replace an existing file.
    """
    tmp = path.with_name(f".tmp-{secrets.token_hex(6)}-{path.name}")
    with open(tmp, "xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    try:
        if exclusive:
            # link() fails if the target exists, unlike rename().
            os.link(tmp, path)
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except FileExistsError as exc:
        os.unlink(tmp)
        raise PackageError(f"{path} already exists") from exc
    fsync_dir(path.parent)


def _sanitize_host(url: str) -> str:
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or "unknown"
        port = parts.port
    except ValueError:
        host, port = "unknown", None
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        host = unicodedata.normalize("NFKD", host).encode("ascii", "ignore").decode("ascii")
    host = re.sub(r"[^a-z0-9.-]+", "_", host.lower()).strip("._-") or "unknown"
    host = host[:60].rstrip("._-") or "unknown"
    if port is not None:
        host += f"_{port}"
    return host


def make_package_id(url: str, when: _dt.datetime) -> str:
    """``20261129T110534Z-example.org-3f9a1c2b``: UTC time, sanitised host, random suffix.

    Safe as a file name on every common file system for any URL (IDN,
    IPv6 literals, ports, very long names) and unique thanks to 32 random bits
    plus an exclusive rename.
    """
    stamp = when.astimezone(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{_sanitize_host(url)}-{secrets.token_hex(4)}"


def safe_relative_path(name: str) -> bool:
    """True for a relative POSIX path with no ``..``, ``~``, absolute or odd parts."""
    if not name or "\\" in name or "\x00" in name or name.startswith(("/", "~")):
        return False
    parts = name.split("/")
    return all(p not in ("", ".", "..") and not p.startswith("~") for p in parts)


def is_package(path: Path) -> bool:
    """True when ``path`` looks like a finished package (not a temporary directory).

    The marker files must be regular files, not symbolic links.
    """
    return (
        not path.name.startswith(".")
        and (path / "bagit.txt").is_file()
        and not (path / "bagit.txt").is_symlink()
        and (path / MANIFEST_PATH).is_file()
        and not (path / MANIFEST_PATH).is_symlink()
    )


def require_package(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` as a Path if it is a finished package, else raise PackageError."""
    p = Path(path)
    if p.name.startswith("."):
        raise PackageError(f"{p}: a temporary or hidden directory is never a package")
    if not p.is_dir():
        raise PackageError(f"{p}: no such package directory")
    if not is_package(p):
        raise PackageError(f"{p}: not an evidence package (no bagit.txt or {MANIFEST_PATH})")
    return p


def attachment_dir(root: Path, relative: str) -> Path:
    """A directory under ``evidence/`` for attachments, created if missing.

    Refuses symbolic links on the way, so adding a signature, token or custody
    event to a package someone else prepared never writes outside it.
    """
    path = root
    for part in relative.split("/"):
        path = path / part
        if path.is_symlink():
            raise PackageError(f"{path} is a symbolic link; refusing to write through it")
        if not path.exists():
            path.mkdir()
            fsync_dir(path.parent)
        elif not path.is_dir():
            raise PackageError(f"{path} is not a directory")
    return path


def bag_files(
    manifest_sha256: str,
    payload: typing.Sequence[tuple[str, str, int]],
    bag_info: typing.Sequence[tuple[str, str]],
) -> dict[str, bytes]:
    """The exact bytes of the four BagIt files of a package.

    ``manifest_sha256`` is the hex SHA-256 of ``evidence/manifest.json``;
    ``payload`` is (relative path, sha256 hex, size) per file under ``data/``;
    ``bag_info`` the ``bag-info.txt`` fields before Payload-Oxum. The writer
    uses this to create a package and the verifier to check, byte for byte,
    that the bag files say nothing the signed manifest does not.
    """
    files: dict[str, bytes] = {"bagit.txt": _BAGIT_TXT}
    octets = sum(size for _, _, size in payload)
    info_lines = [f"{k}: {v}" for k, v in bag_info]
    info_lines.append(f"Payload-Oxum: {octets}.{len(payload)}")
    # "surrogatepass": a hostile manifest parsed back may hold a lone
    # surrogate; its bytes then simply match no valid file (never a crash).
    files["bag-info.txt"] = ("\n".join(info_lines) + "\n").encode("utf-8", "surrogatepass")
    files["manifest-sha256.txt"] = "".join(
        f"{digest}  {rel}\n" for rel, digest, _ in sorted(payload)
    ).encode("utf-8", "surrogatepass")
    digests = {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}
    digests[MANIFEST_PATH] = manifest_sha256
    files["tagmanifest-sha256.txt"] = "".join(
        f"{digests[rel]}  {rel}\n" for rel in TAG_FILES
    ).encode("utf-8")
    return files


INCOMPLETE_PREFIX = ".incomplete-"
LOCK_NAME = ".lock"
# A temporary directory with no lock file yet is left alone this long: a live
# capture puts its lock in place right after creating the directory (and takes
# it away just before the final rename), and older versions made none.
UNLOCKED_GRACE_SECONDS = 300.0


def _is_stale(path: Path) -> bool:
    """True when ``path`` (a ``.incomplete-*`` directory) belongs to a capture that died.

    A live capture holds an exclusive ``flock`` on its ``.lock`` file for as
    long as it runs, so a lock this process can take was left by a dead one
    (SIGKILL, power loss). The lock is released when the file is closed here.
    """
    try:
        fd = os.open(path / LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        try:
            age = time.time() - path.lstat().st_mtime
        except OSError:
            return False
        return age > UNLOCKED_GRACE_SECONDS
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # held: a capture is alive and writing here
        return True
    finally:
        os.close(fd)


def remove_stale_temporaries(out_dir: str | os.PathLike[str]) -> list[str]:
    """Remove ``.incomplete-*`` directories in ``out_dir`` left by captures that died.

    A directory whose lock is held by a running capture (in any process) is
    never touched. Each removal is logged.

    Returns:
        The names of the directories removed (empty if none, or if
        ``out_dir`` cannot be listed).
    """
    out = Path(out_dir)
    try:
        with os.scandir(out) as listing:
            entries = list(listing)
    except OSError:
        return []
    removed = []
    for entry in sorted(entries, key=lambda e: e.name):
        if not entry.name.startswith(INCOMPLETE_PREFIX):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
        except OSError:
            continue
        path = Path(entry.path)
        if not _is_stale(path):
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.lexists(path):
            logger.info("removed %s, left by a capture that did not finish", path)
            removed.append(entry.name)
    return removed


class PackageWriter:
    """Builds a package in a temporary directory and renames it into place.

    Use as a context manager: leaving the block with an exception (including
    KeyboardInterrupt, which the CLI raises on SIGTERM too) removes the
    temporary directory, so nothing half-written remains. While it is alive,
    the writer holds an exclusive lock on ``.incomplete-<id>/.lock``; a new
    writer in the same output directory first removes temporary directories
    whose lock nobody holds (captures killed with SIGKILL or by a power loss).

    Attributes:
        removed_stale: names of stale temporary directories removed on creation.
    """

    def __init__(self, out_dir: str | os.PathLike[str], package_id: str) -> None:
        self.out_dir = Path(out_dir)
        self.package_id = package_id
        self._lock_fd: int | None = None
        self._done = False
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.removed_stale = remove_stale_temporaries(self.out_dir)
            self.tmp = self.out_dir / f"{INCOMPLETE_PREFIX}{package_id}"
            self.tmp.mkdir()
            self._lock_fd = self._take_lock()
            (self.tmp / "data").mkdir()
            (self.tmp / "evidence").mkdir()
        except OSError as exc:
            self._release_lock()
            if hasattr(self, "tmp"):
                shutil.rmtree(self.tmp, ignore_errors=True)
            raise PackageError(f"cannot create a package in {self.out_dir}: {exc}") from exc
        self.final = self.out_dir / package_id

    def _take_lock(self) -> int:
        # The lock file is made and locked under another name, then renamed
        # to .lock: another process never sees a .lock that is not yet held.
        staging = self.tmp / f".lock-{secrets.token_hex(4)}"
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            info = f"pid {os.getpid()}\nhost {socket.gethostname()}\nstarted {clock.now_iso()}\n"
            os.write(fd, info.encode("utf-8", "replace"))
            os.rename(staging, self.tmp / LOCK_NAME)
        except OSError:
            os.close(fd)
            raise
        return fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> PackageWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._done:
            self.abort()

    def path(self, relative: str) -> Path:
        """Absolute path of a file inside the temporary package."""
        if not safe_relative_path(relative):
            raise PackageError(f"unsafe path inside a package: {relative!r}")
        return self.tmp / relative

    def abort(self) -> None:
        """Remove the temporary directory (the lock is released only afterwards)."""
        shutil.rmtree(self.tmp, ignore_errors=True)
        self._release_lock()
        self._done = True

    def finish(
        self,
        *,
        manifest: bytes,
        payload: typing.Sequence[tuple[str, str, int]],
        bag_info: typing.Sequence[tuple[str, str]],
        attachments: typing.Mapping[str, bytes] | None = None,
    ) -> Path:
        """Write the manifest and bag files, fsync everything, rename into place.

        Args:
            manifest: the exact bytes of ``evidence/manifest.json``.
            payload: (relative path, sha256 hex, size) for every file under ``data/``.
            bag_info: extra ``bag-info.txt`` fields, in order.
            attachments: files under ``evidence/`` outside the tag manifest
                (signatures, keys, custody log), written before the rename.

        Returns:
            The final package path.
        """
        try:
            return self._finish(manifest, payload, bag_info, attachments or {})
        except OSError as exc:
            self.abort()
            raise PackageError(f"cannot write package {self.package_id}: {exc}") from exc

    def _finish(
        self,
        manifest: bytes,
        payload: typing.Sequence[tuple[str, str, int]],
        bag_info: typing.Sequence[tuple[str, str]],
        attachments: typing.Mapping[str, bytes],
    ) -> Path:
        tag_bytes = {
            MANIFEST_PATH: manifest,
            **bag_files(hashlib.sha256(manifest).hexdigest(), payload, bag_info),
        }
        tagmanifest = tag_bytes.pop("tagmanifest-sha256.txt")
        fault_point("before-tag-files")
        written = []
        for rel, data in [
            *tag_bytes.items(),
            *attachments.items(),
            ("tagmanifest-sha256.txt", tagmanifest),
        ]:
            target = self.path(rel)
            if not target.parent.exists():
                target.parent.mkdir(parents=True)
            with open(target, "xb") as fh:
                fh.write(data)
            written.append(target)
        payload_files = [self.path(rel) for rel, _, _ in payload]
        dirs = {self.tmp / "data", self.tmp / "evidence", self.tmp}
        dirs.update(self.path(rel).parent for rel in attachments)
        dirs.update(path.parent for path in payload_files)
        if self.final.exists():
            raise PackageError(f"{self.final} already exists")
        fault_point("before-rename")
        # The lock file must not end up in the package. Removing it while the
        # descriptor stays open keeps the lock held; meanwhile other writers
        # see a fresh directory without a lock and leave it alone. It is
        # removed before the fsyncs below, so that the fsync of the directory
        # makes its removal durable in the same round as everything else.
        os.unlink(self.tmp / LOCK_NAME)
        # Every file and directory is durable before the rename below (the
        # payload too, whether or not its writer fsynced it); fsynced
        # together, they cost about one journal commit instead of one each.
        fsync_paths([*payload_files, *written, *sorted(dirs)])
        os.rename(self.tmp, self.final)
        try:
            fault_point("after-rename")
            deferred = _deferred_syncs.get()
            if deferred is None:
                fsync_dir(self.out_dir)
            else:
                deferred.append(self.out_dir)
        except OSError:
            # The rename may not be durable and the caller will be told the
            # package failed: take it back, so that abort() removes it and a
            # retry cannot leave two packages for one capture.
            with contextlib.suppress(OSError):
                os.rename(self.final, self.tmp)
            raise
        finally:
            self._release_lock()
        self._done = True
        return self.final


# ---------------------------------------------------------------------------
# Reading files of a package someone else prepared.
#
# Every command that opens a package (sign, timestamp, custody, show) reads
# the way the verifier does: regular files only, never through a symbolic
# link, never a FIFO or a device, and never more than a stated number of
# bytes. The type and size are decided by ``fstat`` on the opened descriptor
# before a single byte is read, so a FIFO cannot make us hang, a link to
# ``/dev/zero`` cannot make us read forever, and a sparse 1 TiB file is
# refused by its size instead of exhausting memory.
# ---------------------------------------------------------------------------

# The manifest cap matches the verifier's cap on tag files.
MAX_MANIFEST_BYTES = 64 * 1024 * 1024

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOCTTY = getattr(os, "O_NOCTTY", 0)


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _read_fd(fd: int, shown: str, limit: int) -> bytes:
    """Read a whole descriptor that must be a regular file of at most ``limit`` bytes."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise PackageError(
            f"{shown} is {_kind(info.st_mode)}, not a regular file; refusing to read it"
        )
    if info.st_size > limit:
        raise PackageError(
            f"{shown} is larger than {limit} bytes ({info.st_size}); refusing to read it"
        )
    # Blocking reads from here on: it is a regular file.
    os.set_blocking(fd, True)
    chunks: list[bytes] = []
    total = 0
    while chunk := os.read(fd, min(_CHUNK, limit + 1 - total)):
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            # The file grew while we read it.
            raise PackageError(f"{shown} is larger than {limit} bytes; refusing to read it")
    return b"".join(chunks)


def _open_leaf(name: str, shown: str, dir_fd: int | None) -> int:
    """Open a final path component read-only without following a link or blocking."""
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise PackageError(f"cannot read {shown}: {exc.strerror or exc}") from exc
    # Refuse before opening: opening a device can have effects of its own.
    if not stat.S_ISREG(mode):
        raise PackageError(f"{shown} is {_kind(mode)}, not a regular file; refusing to read it")
    flags = os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC | _O_NOCTTY
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PackageError(f"{shown} is a symbolic link; refusing to read through it") from exc
        raise PackageError(f"cannot read {shown}: {exc.strerror or exc}") from exc


def open_regular_file(path: str | os.PathLike[str]) -> int:
    """A blocking read-only descriptor of a regular file, never through a link,
    never a FIFO or device (which could hang the reader or have effects).

    For streaming readers (a WARC, a ledger's files); the caller closes it.

    Raises:
        PackageError: missing, a link, not a regular file, or unreadable.
    """
    p = str(path)
    try:
        fd = _open_leaf(p, p, None)
    except FileNotFoundError as exc:
        raise PackageError(f"{p} does not exist") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped between stat and open
            raise PackageError(f"{p} is not a regular file; refusing to read it")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular_file(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, never through a link.

    Only the last component of ``path`` is protected against links; inside a
    package use :func:`read_package_file`, which protects every component.

    Raises:
        PackageError: missing, a symbolic link, a FIFO, device, socket or
            directory, larger than ``limit``, or unreadable.
    """
    p = Path(path)
    try:
        fd = _open_leaf(str(p), str(p), None)
    except FileNotFoundError as exc:
        raise PackageError(f"{p} does not exist") from exc
    try:
        return _read_fd(fd, str(p), limit)
    except OSError as exc:
        raise PackageError(f"cannot read {p}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


@typing.overload
def read_package_file(
    root: Path, relative: str, limit: int, *, missing_ok: typing.Literal[False] = False
) -> bytes: ...


@typing.overload
def read_package_file(
    root: Path, relative: str, limit: int, *, missing_ok: bool
) -> bytes | None: ...


def read_package_file(
    root: Path, relative: str, limit: int, *, missing_ok: bool = False
) -> bytes | None:
    """The bytes of ``root/relative``, a regular file inside a package, at most ``limit`` bytes.

    Every component below ``root`` is opened without following symbolic
    links (``evidence/`` linked elsewhere is refused as surely as a linked
    ``.sig``), the file is never a FIFO or device, and its size is checked
    before it is read.

    Args:
        root: the package directory.
        relative: a safe relative POSIX path such as ``evidence/manifest.json``.
        limit: the largest size accepted, in bytes.
        missing_ok: return None instead of raising when the file does not exist.

    Raises:
        PackageError: unsafe path, a link on the way, not a regular file,
            too large, unreadable, or missing (unless ``missing_ok``).
    """
    if not safe_relative_path(relative):
        raise PackageError(f"unsafe path inside a package: {relative!r}")
    shown = str(root / relative)
    parts = relative.split("/")
    fds: list[int] = []
    try:
        try:
            fds.append(os.open(root, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC))
            for part in parts[:-1]:
                fds.append(
                    os.open(
                        part,
                        os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC,
                        dir_fd=fds[-1],
                    )
                )
            leaf = _open_leaf(parts[-1], shown, fds[-1])
        except FileNotFoundError as exc:
            if missing_ok:
                return None
            raise PackageError(f"{shown} does not exist") from exc
        except PackageError:
            raise
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise PackageError(
                    f"{shown}: a directory on the way is a symbolic link or not a directory; "
                    "refusing to read through it"
                ) from exc
            raise PackageError(f"cannot read {shown}: {exc.strerror or exc}") from exc
        try:
            return _read_fd(leaf, shown, limit)
        except OSError as exc:
            raise PackageError(f"cannot read {shown}: {exc.strerror or exc}") from exc
        finally:
            os.close(leaf)
    finally:
        for fd in fds:
            os.close(fd)


def read_manifest_bytes(root: Path) -> bytes:
    """The exact bytes of a package's ``evidence/manifest.json`` (bounded, no links).

    Raises:
        PackageError: missing, not a regular file, larger than
            :data:`MAX_MANIFEST_BYTES`, or unreadable.
    """
    return read_package_file(root, MANIFEST_PATH, MAX_MANIFEST_BYTES)


def regular_file_names(
    directory: Path, suffixes: str | tuple[str, ...], *, limit: int | None = None
) -> list[str]:
    """Sorted names of the regular files (never links or directories) in ``directory``
    whose names end in ``suffixes``; an unreadable or missing directory gives none.

    Used by readers that list attachments (``show``, the court report): a
    directory named ``<id>.sig`` or a link is never listed as a signature.
    """
    try:
        with os.scandir(directory) as listing:
            entries = list(listing)
    except OSError:
        return []
    names = []
    for entry in entries:
        try:
            if entry.name.endswith(suffixes) and entry.is_file(follow_symlinks=False):
                names.append(entry.name)
        except OSError:
            continue
    names.sort()
    return names if limit is None else names[:limit]
