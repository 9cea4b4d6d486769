"""The ledger on disk: leaves, append-only storage, adding packages, checkpoints."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import struct
import typing
from pathlib import Path

import attrs
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from evidence import clock
from evidence.display import safe
from evidence.errors import (
    LedgerError,
    LedgerMismatchError,
    ManifestError,
    PackageError,
    StorageError,
    UsageError,
)
from evidence.ledger._base import (
    CHECKPOINT_RE,
    CHECKPOINTS,
    CONFIG,
    EMPTY_ROOT,
    FORMAT,
    HASH_SIZE,
    HASHES,
    INDEX,
    LEAVES,
    LEDGER_DIR,
    LOCK,
    MAX_CHECKPOINT_BYTES,
    MAX_CHECKPOINTS,
    MAX_CONFIG_BYTES,
    MAX_LEAF_BYTES,
    MAX_PROOF_TOKENS,
    MAX_TOKEN_BYTES,
    NAME_RE,
    PACKAGE_ID_RE,
    SHA256_HEX_RE,
    TOKEN_RE,
    log,
    open_read,
    read_bounded,
)
from evidence.ledger.merkle import (
    RightEdge,
    is_power_of_two,
    leaf_hash,
    node_hash,
    size_for_count,
    split,
    stored_count,
    stored_index,
    trailing_ones,
)
from evidence.ledger.note import Checkpoint, sign_note, verifier_key
from evidence.ledger.report import Finding
from evidence.manifest import MAX_MANIFEST_BYTES, Manifest, strict_loads
from evidence.package import MANIFEST_PATH, fsync_dir, is_package, require_package

if typing.TYPE_CHECKING:
    from cryptography import x509

    from evidence.timestamping import TimestampToken


# ---------------------------------------------------------------------------
# Leaves
# ---------------------------------------------------------------------------


@attrs.frozen
class LeafEntry:
    """One logged package: its id, SHA-256 of its manifest.json, and when it was logged."""

    package_id: str
    manifest_sha256: str
    time_added: str

    def __attrs_post_init__(self) -> None:
        problem = _leaf_problem(self.package_id, self.manifest_sha256, self.time_added)
        if problem:
            raise LedgerError(problem)

    def to_bytes(self) -> bytes:
        """The exact leaf bytes that are hashed (see the module docstring)."""
        return f"{self.package_id}\t{self.manifest_sha256}\t{self.time_added}\n".encode("ascii")

    @property
    def hash(self) -> bytes:
        """The RFC 6962 leaf hash of :meth:`to_bytes`."""
        return leaf_hash(self.to_bytes())

    @classmethod
    def from_bytes(cls, raw: bytes) -> LeafEntry:
        """Parse leaf bytes strictly. Raises LedgerError."""
        if len(raw) > MAX_LEAF_BYTES or not raw.endswith(b"\n"):
            raise LedgerError("a leaf is too long or does not end with a line feed")
        try:
            text = raw[:-1].decode("ascii")
        except UnicodeDecodeError:
            raise LedgerError("a leaf is not ASCII") from None
        parts = text.split("\t")
        if len(parts) != 3:
            raise LedgerError("a leaf does not have exactly three tab-separated fields")
        entry = cls(*parts)
        if entry.to_bytes() != raw:  # pragma: no cover - the checks above make this hold
            raise LedgerError("a leaf is not in canonical form")
        return entry

    def to_json(self) -> dict[str, str]:
        return {
            "package_id": self.package_id,
            "manifest_sha256": self.manifest_sha256,
            "time_added": self.time_added,
        }


def _leaf_problem(package_id: object, sha: object, when: object) -> str | None:
    if not isinstance(package_id, str) or not PACKAGE_ID_RE.match(package_id):
        return f"not a loggable package id: {safe(package_id, max_length=80)}"
    if not isinstance(sha, str) or not SHA256_HEX_RE.match(sha):
        return f"not a lowercase hex SHA-256: {safe(sha, max_length=80)}"
    if clock.parse_iso(when) is None:
        return f"not a UTC time in the package format: {safe(when, max_length=80)}"
    return None


# ---------------------------------------------------------------------------
# Files: bounded, no symbolic links
# ---------------------------------------------------------------------------


def _append(path: Path, data: bytes, *, pause: str | None = None) -> None:
    """Append ``data`` and fsync. ``pause`` names a crash-test point halfway through."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
    try:
        if pause is None:
            os.write(fd, data)
        else:
            # Two writes so a crash test can stop between them and leave a
            # torn record behind, as a real crash mid-write might.
            half = len(data) // 2
            os.write(fd, data[:half])
            os.fsync(fd)
            _fault(pause)
            os.write(fd, data[half:])
        os.fsync(fd)
    finally:
        os.close(fd)


# Crash-test hook. Tests that SIGKILL an append install a function here in a
# child process (see tests/integration/test_ledger_crash.py); it is never set
# by the library, and nothing in the environment can set it.
_fault_hook: typing.Callable[[str], None] | None = None


def _fault(point: str) -> None:
    if _fault_hook is not None:
        _fault_hook(point)


def _write_new(path: Path, data: bytes) -> None:
    """Create ``path`` with ``data`` (refusing to replace anything) and fsync it and its dir."""
    tmp = path.with_name(f".tmp-{os.urandom(6).hex()}-{path.name}")
    with open(tmp, "xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError as exc:
        raise LedgerError(f"{path} already exists; refusing to replace it") from exc
    finally:
        os.unlink(tmp)
    fsync_dir(path.parent)


# ---------------------------------------------------------------------------
# The ledger on disk
# ---------------------------------------------------------------------------


def _default_origin(archive: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", archive.resolve().name)[:100].strip("._-")
    return f"evidence-ledger/{name or 'archive'}"


def init_ledger(archive_dir: str | os.PathLike[str], *, origin: str | None = None) -> Ledger:
    """Create ``DIR/ledger/`` (an empty log) and return it.

    Args:
        archive_dir: the archive directory (created if missing).
        origin: the checkpoint origin line and signature name; default
            ``evidence-ledger/<directory name>``. Printable ASCII without
            spaces or ``+`` (C2SP).

    Raises:
        UsageError: a ledger already exists, or the origin is not allowed.
        StorageError: the files cannot be written.
    """
    archive = Path(archive_dir)
    origin = origin if origin is not None else _default_origin(archive)
    if not NAME_RE.match(origin):
        raise UsageError(
            f"origin {safe(origin, max_length=80)!s} must be 1-255 printable ASCII characters "
            "without spaces or '+'"
        )
    target = archive / LEDGER_DIR
    if target.exists() or target.is_symlink():
        raise UsageError(f"{target} already exists; a ledger is created only once")
    config = json.dumps(
        {"created": clock.now_iso(), "format": FORMAT, "origin": origin}, indent=2, sort_keys=True
    ).encode("utf-8")
    tmp = archive / f".ledger-incomplete-{os.urandom(4).hex()}"
    try:
        archive.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        (tmp / CHECKPOINTS).mkdir()
        for name, data in (
            (CONFIG, config + b"\n"),
            (LEAVES, b""),
            (INDEX, b""),
            (HASHES, b""),
        ):
            with open(tmp / name, "xb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        (tmp / LOCK).touch()
        fsync_dir(tmp)
        os.rename(tmp, target)
        fsync_dir(archive)
    except OSError as exc:
        raise StorageError(f"cannot create a ledger in {archive}: {exc.strerror or exc}") from exc
    return Ledger.open(archive)


def has_ledger(archive_dir: str | os.PathLike[str]) -> bool:
    """True when ``archive_dir`` holds a ledger (``ledger/ledger.json`` exists)."""
    return (Path(archive_dir) / LEDGER_DIR / CONFIG).is_file()


class Ledger:
    """An open ledger. Appends are serialised with a lock; reads need none.

    Use :meth:`open`. ``notes`` says what was found on opening, e.g. a torn
    tail left by an interrupted append.
    """

    def __init__(self, archive: Path, origin: str, created: str) -> None:
        self.archive = archive
        self.dir = archive / LEDGER_DIR
        self.origin = origin
        self.created = created
        self.size = 0
        self.notes: list[str] = []
        self.tail_plausible = True
        self._leaves_end = 0
        self._load_state()

    @classmethod
    def open(cls, archive_dir: str | os.PathLike[str]) -> Ledger:
        """Open the ledger of an archive directory. Raises LedgerError if there is none."""
        archive = Path(archive_dir)
        d = archive / LEDGER_DIR
        if d.is_symlink() or not d.is_dir():
            raise LedgerError(f"{archive} has no ledger (run 'evidence ledger init {archive}')")
        raw = read_bounded(d / CONFIG, MAX_CONFIG_BYTES)
        try:
            doc = strict_loads(raw, what="ledger.json", max_bytes=MAX_CONFIG_BYTES)
        except ManifestError as exc:
            raise LedgerError(f"{d / CONFIG}: {exc}") from exc
        if not isinstance(doc, dict) or set(doc) != {"created", "format", "origin"}:
            raise LedgerError(f"{d / CONFIG} is not a ledger configuration")
        if doc["format"] != FORMAT:
            raise LedgerError(
                f"{d / CONFIG}: unknown ledger format {safe(doc['format'], max_length=80)}"
            )
        origin, created = doc["origin"], doc["created"]
        if not isinstance(origin, str) or not NAME_RE.match(origin):
            raise LedgerError(f"{d / CONFIG}: the origin is not allowed")
        if clock.parse_iso(created) is None:
            raise LedgerError(f"{d / CONFIG}: 'created' is not a UTC time")
        return cls(archive, origin, created)

    # --- state ---------------------------------------------------------------

    def _file_size(self, name: str) -> int:
        path = self.dir / name
        try:
            st = os.lstat(path)
        except OSError as exc:
            raise LedgerError(f"cannot read {path}: {exc.strerror or exc}") from exc
        if not (st.st_mode & 0o170000) == 0o100000:
            raise LedgerError(f"{path} is not a regular file")
        return st.st_size

    def _end_offset(self, index: int) -> int:
        """End of leaf ``index`` in leaves.txt, per leaves.idx (unchecked)."""
        if index < 0:
            return 0
        raw = self._pread(INDEX, index * 8, 8)
        return int(struct.unpack(">Q", raw)[0])

    def _pread(self, name: str, offset: int, length: int) -> bytes:
        fd = open_read(self.dir / name)
        try:
            data = os.pread(fd, length, offset)
        finally:
            os.close(fd)
        if len(data) != length:
            raise LedgerError(f"{self.dir / name} is shorter than its index says")
        return data

    def _load_state(self) -> None:
        """Find the largest size all three files hold completely; note any torn tail."""
        idx_bytes = self._file_size(INDEX)
        hash_bytes = self._file_size(HASHES)
        leaves_bytes = self._file_size(LEAVES)
        size = min(idx_bytes // 8, size_for_count(hash_bytes // HASH_SIZE))
        # leaves.txt is written first, so it normally holds at least as much as
        # the index says; if not (a doctored file), shrink to what it holds.
        lo, hi = 0, size
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._end_offset(mid - 1) <= leaves_bytes:
                lo = mid
            else:
                hi = mid - 1
        shrunk = lo < size
        size = lo
        self.size = size
        self._leaves_end = self._end_offset(size - 1)
        self.notes = []
        extra = (
            idx_bytes - size * 8,
            hash_bytes - stored_count(size) * HASH_SIZE,
            leaves_bytes - self._leaves_end,
        )
        # One interrupted append leaves at most one leaf line, one index
        # record and the hashes that leaf completes. Anything more was not a
        # crash: the files were altered, and nothing may cut them.
        # (Leaves are written first, so an index pointing past them, or a
        # complete set of hashes, is never what a crash leaves.)
        self.tail_plausible = (
            not shrunk
            and extra[2] <= MAX_LEAF_BYTES
            and extra[0] <= 8
            and extra[1] < (1 + trailing_ones(size)) * HASH_SIZE
        )
        if any(extra):
            what = f"({extra[2]} leaf, {extra[0]} index and {extra[1]} hash bytes)"
            if self.tail_plausible:
                self.notes.append(
                    f"an interrupted append left a torn tail after leaf {size} {what}; "
                    "it is ignored and the next append removes it"
                )
            else:
                self.notes.append(
                    f"the files hold more after leaf {size} than an interrupted append "
                    f"can leave {what}: they were altered"
                )

    # --- reading -------------------------------------------------------------

    def stored_hash(self, level: int, n: int) -> bytes:
        """The hash of the perfect subtree at ``level`` with index ``n``."""
        return self._pread(HASHES, stored_index(level, n) * HASH_SIZE, HASH_SIZE)

    def range_hash(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) from stored hashes: O(log n) reads."""
        if not 0 <= lo < hi <= self.size:
            raise LedgerError(f"no leaves {lo}..{hi} in a ledger of {self.size}")
        n = hi - lo
        if is_power_of_two(n) and lo % n == 0:
            level = n.bit_length() - 1
            return self.stored_hash(level, lo >> level)
        k = split(n)
        return node_hash(self.range_hash(lo, lo + k), self.range_hash(lo + k, hi))

    def root(self, size: int | None = None) -> bytes:
        """The tree head at ``size`` (default: the current size)."""
        size = self.size if size is None else size
        if size == 0:
            return EMPTY_ROOT
        return self.range_hash(0, size)

    def leaf(self, index: int) -> LeafEntry:
        """Leaf ``index`` (0-based), parsed strictly."""
        if not 0 <= index < self.size:
            raise LedgerError(f"no leaf {index} in a ledger of {self.size}")
        start, end = self._end_offset(index - 1), self._end_offset(index)
        if not 0 < end - start <= MAX_LEAF_BYTES:
            raise LedgerError(f"leaves.idx is damaged at leaf {index}")
        return LeafEntry.from_bytes(self._pread(LEAVES, start, end - start))

    def entries(self) -> typing.Iterator[tuple[int, LeafEntry]]:
        """Every leaf in order, streamed (raises LedgerError on a damaged leaf)."""
        for index, raw in self._raw_leaves():
            yield index, LeafEntry.from_bytes(raw)

    def _raw_leaves(self) -> typing.Iterator[tuple[int, bytes]]:
        fd_idx = open_read(self.dir / INDEX)
        fd_leaves = open_read(self.dir / LEAVES)
        with os.fdopen(fd_idx, "rb") as idx, os.fdopen(fd_leaves, "rb") as leaves:
            previous = 0
            for index in range(self.size):
                raw_end = idx.read(8)
                end = int(struct.unpack(">Q", raw_end)[0]) if len(raw_end) == 8 else -1
                if not 0 < end - previous <= MAX_LEAF_BYTES:
                    raise LedgerError(f"leaves.idx is damaged at leaf {index}")
                raw = leaves.read(end - previous)
                if len(raw) != end - previous:
                    raise LedgerError(f"leaves.txt ends inside leaf {index}")
                previous = end
                yield index, raw

    def find(self, package_id: str) -> list[tuple[int, LeafEntry]]:
        """Every leaf logging ``package_id`` (normally zero or one)."""
        return [(i, e) for i, e in self.entries() if e.package_id == package_id]

    # --- appending -----------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> typing.Iterator[None]:
        fd = os.open(self.dir / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._load_state()
            yield
        finally:
            os.close(fd)

    def _cut_torn_tail(self) -> None:
        if not self.notes:
            return
        if not self.tail_plausible:
            raise LedgerMismatchError(
                f"{self.dir}: {self.notes[0]}; refusing to append (run 'evidence ledger verify')"
            )
        log.warning("ledger %s: %s", self.dir, "; ".join(self.notes))
        os.truncate(self.dir / LEAVES, self._leaves_end)
        os.truncate(self.dir / INDEX, self.size * 8)
        os.truncate(self.dir / HASHES, stored_count(self.size) * HASH_SIZE)
        self._load_state()

    def append(self, entry: LeafEntry) -> int:
        """Log one leaf; returns its index. O(log n) reads, three appends, three fsyncs.

        Raises:
            StorageError: the files cannot be written (the previous state stays valid).
        """
        try:
            with self._locked():
                return self._append_locked(entry)
        except OSError as exc:
            raise StorageError(f"cannot append to {self.dir}: {exc.strerror or exc}") from exc

    def _append_locked(self, entry: LeafEntry) -> int:
        self._cut_torn_tail()
        index = self.size
        data = entry.to_bytes()
        new_hashes = [entry.hash]
        h = new_hashes[0]
        for level in range(trailing_ones(index)):
            h = node_hash(self.stored_hash(level, (index >> level) - 1), h)
            new_hashes.append(h)
        _append(self.dir / LEAVES, data)
        _fault("leaf-written")
        _append(self.dir / INDEX, struct.pack(">Q", self._leaves_end + len(data)))
        _fault("index-written")
        _append(self.dir / HASHES, b"".join(new_hashes), pause="hashes-partial")
        _fault("hashes-written")
        self.size = index + 1
        self._leaves_end += len(data)
        return index

    # --- checkpoints ---------------------------------------------------------

    def checkpoint_numbers(self) -> list[int]:
        """Numbers of the stored checkpoints, ascending."""
        return sorted(n for n, _ in self.checkpoint_files()[0].items())

    def checkpoint_files(self) -> tuple[dict[int, Path], dict[int, list[Path]], list[str]]:
        """(checkpoint files, token files by number, unexpected names)."""
        d = self.dir / CHECKPOINTS
        if d.is_symlink() or not d.is_dir():
            raise LedgerError(f"{d} is missing or not a directory")
        cps: dict[int, Path] = {}
        tokens: dict[int, list[Path]] = {}
        unexpected: list[str] = []
        for count, p in enumerate(sorted(d.iterdir())):
            if count > 2 * MAX_CHECKPOINTS:
                raise LedgerError(f"{d} holds too many files")
            m = CHECKPOINT_RE.match(p.name)
            t = TOKEN_RE.match(p.name)
            if p.is_symlink() or not p.is_file():
                unexpected.append(p.name)
            elif m:
                cps[int(m.group(1))] = p
            elif t:
                tokens.setdefault(int(t.group(1)), []).append(p)
            elif not p.name.startswith(".tmp-"):
                unexpected.append(p.name)
        return cps, tokens, unexpected

    def checkpoint_path(self, number: int) -> Path:
        return self.dir / CHECKPOINTS / f"{number:06d}.txt"

    def read_checkpoint(self, number: int) -> bytes:
        """The exact bytes of checkpoint ``number``."""
        path = self.checkpoint_path(number)
        if not path.is_file():
            raise LedgerError(f"{self.dir} has no checkpoint {number}")
        return read_bounded(path, MAX_CHECKPOINT_BYTES)

    def read_tokens(self, number: int) -> list[bytes]:
        """The RFC 3161 tokens stored for checkpoint ``number`` (bounded)."""
        tokens = self.checkpoint_files()[1].get(number, [])
        return [read_token(p) for p in sorted(tokens)[:MAX_PROOF_TOKENS]]


def read_token(path: Path) -> bytes:
    """A stored token's bytes, at most one byte over the cap (never raises).

    The token checker reports an oversized, unreadable (empty) or malformed
    token as a problem, so a hostile file becomes a FAIL, not an exception.
    """
    try:
        fd = open_read(path)
        with os.fdopen(fd, "rb") as fh:
            return fh.read(MAX_TOKEN_BYTES + 1)
    except (LedgerError, OSError):
        return b""


# ---------------------------------------------------------------------------
# Adding packages
# ---------------------------------------------------------------------------


@attrs.frozen
class PackageFacts:
    """What the ledger needs from a package: id, manifest SHA-256, creation time."""

    path: Path
    package_id: str
    manifest_sha256: str
    created: str


def package_facts(package: str | os.PathLike[str]) -> PackageFacts:
    """Read a package's id, manifest hash and creation time (strict, bounded)."""
    root = require_package(package)
    path = root / MANIFEST_PATH
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise PackageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    manifest = Manifest.from_bytes(raw)
    return PackageFacts(
        root, manifest.package_id, hashlib.sha256(raw).hexdigest(), manifest.created
    )


@attrs.frozen
class AddResult:
    """One package given to :func:`add_packages`: its leaf, and whether it was new."""

    path: str
    index: int
    entry: LeafEntry
    added: bool

    def to_json(self) -> dict[str, typing.Any]:
        return {"package": self.path, "leaf_index": self.index, "added": self.added} | (
            self.entry.to_json()
        )


def packages_on_disk(archive: Path) -> list[Path]:
    found = []
    for p in archive.iterdir():
        if p.name.startswith(".") or p.name == LEDGER_DIR or p.is_symlink():
            continue
        if p.is_dir() and is_package(p):
            found.append(p)
    return found


def add_packages(
    archive_dir: str | os.PathLike[str],
    packages: typing.Sequence[str | os.PathLike[str]] = (),
) -> list[AddResult]:
    """Log packages of the archive directory that are not yet logged.

    With no ``packages``, every package in the directory not yet logged, in
    capture order (manifest ``created``, then id). A package already logged
    with the same manifest is reported with ``added=False``.

    Raises:
        LedgerError: no ledger, or a package lies outside the archive directory.
        LedgerMismatchError: a package has the id of a logged package but a
            different manifest (a substitution; never logged over).
        PackageError: a path is not a package.
    """
    ledger = Ledger.open(archive_dir)
    archive = ledger.archive.resolve()
    if packages:
        paths = [Path(p) for p in packages]
        for p in paths:
            if p.resolve().parent != archive:
                raise LedgerError(f"{p} is not a package directly inside {ledger.archive}")
    else:
        paths = packages_on_disk(ledger.archive)
    facts = [package_facts(p) for p in paths]
    if not packages:
        facts.sort(key=lambda f: (f.created, f.package_id))
    logged = {e.package_id: (i, e) for i, e in ledger.entries()}
    results = []
    for f in facts:
        results.append(_add_one(ledger, f, logged))
    return results


def _add_one(
    ledger: Ledger, f: PackageFacts, logged: dict[str, tuple[int, LeafEntry]]
) -> AddResult:
    if f.package_id in logged:
        index, entry = logged[f.package_id]
        if entry.manifest_sha256 != f.manifest_sha256:
            raise LedgerMismatchError(
                f"{f.path}: package {safe(f.package_id)} was logged as leaf {index} with "
                f"manifest SHA-256 {entry.manifest_sha256}, but its manifest.json now hashes "
                f"to {f.manifest_sha256}; refusing to log a replacement"
            )
        return AddResult(str(f.path), index, entry, added=False)
    try:
        entry = LeafEntry(f.package_id, f.manifest_sha256, clock.now_iso())
    except LedgerError as exc:
        raise LedgerError(f"{f.path}: {exc}") from exc
    index = ledger.append(entry)
    logged[f.package_id] = (index, entry)
    return AddResult(str(f.path), index, entry, added=True)


def append_if_present(
    out_dir: str | os.PathLike[str], package_path: str | os.PathLike[str]
) -> AddResult | None:
    """Log a newly written package when ``out_dir`` has a ledger; None when it has none.

    For capture and batch: call it after each package is renamed into place.
    """
    if not has_ledger(out_dir):
        return None
    return add_packages(out_dir, [package_path])[0]


@attrs.frozen
class _Recomputed:
    size: int
    roots: typing.Mapping[int, bytes]
    entries: tuple[tuple[int, LeafEntry], ...]
    findings: tuple[Finding, ...]

    @property
    def problem(self) -> str | None:
        return self.findings[0].sentence() if self.findings else None


def recompute(ledger: Ledger, sizes: typing.Collection[int]) -> _Recomputed:
    """Stream every leaf, recompute hashes.bin and the roots at ``sizes``."""
    findings: list[Finding] = []
    entries: list[tuple[int, LeafEntry]] = []
    roots: dict[int, bytes] = {0: EMPTY_ROOT}
    edge = RightEdge()
    fd = open_read(ledger.dir / HASHES)
    with os.fdopen(fd, "rb") as hashes:
        try:
            for index, raw in ledger._raw_leaves():
                try:
                    entry = LeafEntry.from_bytes(raw)
                    entries.append((index, entry))
                except LedgerError as exc:
                    findings.append(
                        Finding(
                            "leaf-malformed",
                            str(exc),
                            leaf_index=index,
                            found=raw[:120].decode("latin-1"),
                        )
                    )
                expected = edge.push(leaf_hash(raw))
                stored = hashes.read(HASH_SIZE * len(expected))
                if stored != b"".join(expected) and not any(
                    f.kind == "stored-hash-mismatch" for f in findings
                ):
                    findings.append(
                        Finding(
                            "stored-hash-mismatch",
                            "hashes.bin does not match the leaves (the log was edited)",
                            leaf_index=index,
                        )
                    )
                if index + 1 in sizes:
                    roots[index + 1] = edge.root()
        except LedgerError as exc:
            findings.append(Finding("ledger-damaged", str(exc)))
    if not ledger.tail_plausible:
        findings.append(Finding("ledger-tail-altered", ledger.notes[0]))
    return _Recomputed(ledger.size, roots, tuple(entries), tuple(findings))


@attrs.frozen
class CheckpointResult:
    """A checkpoint just made: its number, file, parsed note and timestamp tokens."""

    number: int
    path: Path
    checkpoint: Checkpoint
    token_paths: tuple[Path, ...]
    tokens: tuple[TimestampToken, ...]
    verifier_key: str

    def to_json(self) -> dict[str, typing.Any]:
        return {
            "checkpoint": self.number,
            "path": str(self.path),
            "origin": self.checkpoint.origin,
            "tree_size": self.checkpoint.size,
            "root_hash": self.checkpoint.root.hex(),
            "verifier_key": self.verifier_key,
            "timestamps": [
                {
                    "path": str(p),
                    "tsa": t.tsa_url,
                    "gen_time": clock.iso(t.gen_time),
                    "chain_checked": t.chain_checked,
                }
                for p, t in zip(self.token_paths, self.tokens, strict=True)
            ],
        }


def make_checkpoint(
    archive_dir: str | os.PathLike[str],
    key: Ed25519PrivateKey,
    *,
    tsa_urls: typing.Sequence[str] = (),
    tsa_roots: typing.Sequence[x509.Certificate] = (),
    timeout: float = 30.0,
    proxy: str | None = None,
) -> CheckpointResult:
    """Sign the current tree head as the next numbered checkpoint, timestamped by each TSA.

    Tokens are requested before anything is written, so a refused TSA leaves
    no checkpoint behind. With ``proxy`` every TSA is reached through it
    only, never directly.

    Raises:
        UsageError: the ledger is empty.
        LedgerMismatchError: the stored hashes disagree with the leaves.
        TimestampError: a TSA could not be reached or its token was refused.
    """
    from evidence.capturing.upstream import ProxyURL
    from evidence.timestamping import request_timestamp

    proxy_url = ProxyURL.parse(proxy) if proxy is not None else None
    ledger = Ledger.open(archive_dir)
    fd = os.open(ledger.dir / LOCK, os.O_RDWR | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        ledger._load_state()
        if ledger.size == 0:
            raise UsageError(f"{ledger.archive}: the ledger is empty; add packages first")
        problem = recompute(ledger, {ledger.size}).problem
        if problem:
            raise LedgerMismatchError(f"{ledger.dir}: refusing to sign a damaged log: {problem}")
        body = Checkpoint.body_for(ledger.origin, ledger.size, ledger.root())
        note = sign_note(body, ledger.origin, key)
        tokens = tuple(
            request_timestamp(note, url, roots=tsa_roots, timeout=timeout, proxy=proxy_url)
            for url in tsa_urls
        )
        numbers = ledger.checkpoint_numbers()
        number = (numbers[-1] + 1) if numbers else 1
        path = ledger.checkpoint_path(number)
        try:
            _write_new(path, note)
            token_paths = []
            for k, token in enumerate(tokens, start=1):
                tp = path.with_name(f"{number:06d}-{k}.tsr")
                _write_new(tp, token.response)
                token_paths.append(tp)
        except OSError as exc:
            raise StorageError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    return CheckpointResult(
        number,
        path,
        Checkpoint.from_bytes(note),
        tuple(token_paths),
        tokens,
        verifier_key(ledger.origin, key.public_key()),
    )
