"""Read and verify a WACZ 1.1.1 file from any tool, as hostile input.

A WACZ is a ZIP whose ``datapackage.json`` lists every member with its
SHA-256 and size; ``datapackage-digest.json`` holds the SHA-256 of
``datapackage.json`` and, optionally, a signature (``signedData``). The
Webrecorder tools (py-wacz 0.6, authsign 0.6, ReplayWeb.page 2.5) never
compare ``signedData.hash`` with the recomputed digest, so a WACZ whose
content was swapped under a pasted ``signedData`` passes them. We do.

Steps (tagged ``# Step N`` where they happen):

1. Zip hygiene: the end-of-central-directory record is read first (entry
   count and directory size bounded before :mod:`zipfile` parses anything);
   no duplicate, absolute, ``..`` or odd names, no encryption, only STORED or
   DEFLATE, entries do not overlap (no overlapping-entry zip bombs), declared
   sizes and compression ratios bounded; members are read in bounded chunks.
2. Members are exactly the listed resources; size, then SHA-256, of each.
   WARN when WARCs or compressed indexes are not STORED.
3. ``datapackage-digest.json``: ``path`` is ``datapackage.json`` and
   ``signedData.hash == hash == sha256(datapackage.json)``;
   ``signedData.created == datapackage.created``.
4. Anonymous signature: ECDSA P-256/384/521 with SHA-256 over the ASCII
   hash, raw r||s or DER (reported). Ed25519 is not a WACZ algorithm.
   Trusted when the public key is given (``trust``) or bound by an Ed25519
   binding statement (``evidence/wacz-key-binding.json``) whose Ed25519 key
   is trusted.
5. Domain signature (authsign): chain to a caller's root, leaf CN/SAN equals
   ``domain``, ``created`` within the leaf's validity, ``timeSignature`` an
   RFC 3161 token over the signature text chaining to a caller's TSA root,
   genTime at most 10 minutes after ``created`` (and not before it).
6. A WACZ exported by ``evidence``: the embedded package is rebuilt in a
   temporary directory and verified like any package.
7. Outcome: any FAIL -> failed; else a trusted signature -> verified; else
   intact but untrusted. NOT CHECKED never counts as a pass.

Nothing here raises for bad WACZ content.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as _dt
import hashlib
import itertools
import json
import logging
import os
import re
import shutil
import struct
import tempfile
import typing
import zipfile
import zlib
from pathlib import Path

import attrs

from evidence import clock
from evidence.errors import KeyFileError, ManifestError
from evidence.keys import Keyring, key_id
from evidence.manifest import decode_strict, strict_loads
from evidence.verifying.report import Check, Finding, Outcome, Report, Status, Subject

if typing.TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "BINDING_PATH",
    "BINDING_SIG_PATH",
    "BINDING_TYPE",
    "DEFAULT_WACZ_LIMITS",
    "UnreadableZipError",
    "WACZLimits",
    "WACZReader",
    "WACZTrust",
    "archive_name_for",
    "embedded_members",
    "extract_package",
    "package_path_for",
    "parse_wacz_time",
    "safe_member_name",
    "verify_wacz",
    "wacz_path_for",
]

log = logging.getLogger(__name__)

BINDING_PATH = "evidence/wacz-key-binding.json"
BINDING_SIG_PATH = "evidence/wacz-key-binding.sig"
BINDING_TYPE = "evidence-wacz-key-binding"
_META = ("datapackage.json", "datapackage-digest.json")
_CHUNK = 1 << 20
# authsign's rule: the time stamp may follow the signature by at most this.
STAMP_WINDOW = _dt.timedelta(minutes=10)
# One path component as every tool writes it: no spaces, controls or odd marks.
_COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+@=,-]{0,254}$")
_HASH = re.compile(r"^sha256:([0-9a-f]{64})$")


@attrs.frozen
class WACZLimits:
    """Caps on what a WACZ can make the verifier read; beyond any real file."""

    # Entries in the central directory (checked before zipfile parses it).
    members: int = 100_000
    # Bytes of the central directory itself.
    directory_bytes: int = 64 * 1024 * 1024
    # Uncompressed bytes of one member, and of all members together.
    member_bytes: int = 1 << 40
    total_bytes: int = 4 << 40
    # Uncompressed / compressed, for DEFLATE members larger than 1 MiB.
    ratio: int = 250
    # Bytes of datapackage.json, datapackage-digest.json and the binding.
    json_bytes: int = 64 * 1024 * 1024
    digest_bytes: int = 1024 * 1024
    # Path length of a member name.
    name_length: int = 512
    # Records of one foreign WARC checked record by record.
    warc_records: int = 1_000_000


DEFAULT_WACZ_LIMITS = WACZLimits()


class UnreadableZipError(ValueError):
    """The ZIP as a whole is unsafe or unreadable (message in our words).

    Raised by :class:`WACZReader` only; :func:`verify_wacz` turns it into a
    FAIL (or NOT A PACKAGE) check, and :func:`evidence.wacz.import_wacz` into
    a :class:`~evidence.errors.PackageError`. ``not_zip`` is True when the
    file is no ZIP at all (rather than a ZIP we refuse).
    """

    def __init__(self, message: str, *, not_zip: bool = False) -> None:
        super().__init__(message)
        self.not_zip = not_zip


def _end_record(fh: typing.BinaryIO, size: int) -> tuple[int, int, int]:
    """(entries, directory size, directory offset) from the EOCD, zip64-aware."""
    tail_len = min(size, 22 + 65535)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise UnreadableZipError(
            "not a ZIP file (no end-of-central-directory record)", not_zip=True
        )
    (_, disk, cd_disk, _, entries, cd_size, cd_offset, _) = struct.unpack(
        "<4sHHHHIIH", tail[at : at + 22]
    )
    if disk != 0 or cd_disk != 0:
        raise UnreadableZipError("multi-disk ZIP archives are not accepted")
    if entries == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:
        loc = at - 20
        if loc < 0 or tail[loc : loc + 4] != b"PK\x06\x07":
            raise UnreadableZipError("zip64 end record announced but its locator is missing")
        (eocd64,) = struct.unpack("<Q", tail[loc + 8 : loc + 16])
        if eocd64 + 56 > size:
            raise UnreadableZipError("zip64 end record lies outside the file")
        fh.seek(eocd64)
        rec = fh.read(56)
        if len(rec) != 56 or rec[:4] != b"PK\x06\x06":
            raise UnreadableZipError("zip64 end record is unreadable")
        entries, cd_size, cd_offset = struct.unpack("<QQQ", rec[32:56])
    if cd_offset + cd_size > size:
        raise UnreadableZipError("the central directory lies outside the file")
    return entries, cd_size, cd_offset


def safe_member_name(name: str) -> bool:
    """True for a name a WACZ member (or a file we make from one) may have."""
    return _name_problem(name, DEFAULT_WACZ_LIMITS) is None


def _name_problem(name: str, limits: WACZLimits) -> str | None:
    if len(name) > limits.name_length:
        return "name too long"
    parts = name.split("/")
    if name.startswith("/") or "\\" in name:
        return "absolute or backslash path"
    if any(p in ("..", ".") for p in parts):
        return "'..' or '.' in the path"
    if any(not _COMPONENT.match(p) for p in parts):
        return "empty, hidden or unusual path component"
    return None


class WACZReader:
    """A WACZ opened for bounded, checked reading. Use as a context manager.

    Construction performs step 1 (zip hygiene) and raises
    :class:`UnreadableZipError` (a FAIL in :func:`verify_wacz`) when the file
    cannot be read safely at all; smaller problems are in :attr:`problems`.
    """

    def __init__(self, path: str | os.PathLike[str], limits: WACZLimits) -> None:
        self.path = Path(path)
        self.limits = limits
        self.problems: list[Finding] = []
        self.members: dict[str, zipfile.ZipInfo] = {}
        try:
            self._fh = open(self.path, "rb")
        except OSError as exc:
            raise UnreadableZipError(f"cannot open: {exc.strerror or exc}", not_zip=True) from exc
        try:
            self._open()
        except OSError as exc:
            self.close()
            raise UnreadableZipError(f"not a readable ZIP file ({exc.strerror or exc})") from exc
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        size = os.fstat(self._fh.fileno()).st_size
        entries, cd_size, cd_offset = _end_record(self._fh, size)
        if entries > self.limits.members:
            raise UnreadableZipError(
                f"{entries} entries, more than the limit of {self.limits.members}"
            )
        if cd_size > self.limits.directory_bytes:
            raise UnreadableZipError(f"a central directory of {cd_size} bytes is beyond the limit")
        self._fh.seek(0)
        try:
            self._zip = zipfile.ZipFile(self._fh)
            infos = self._zip.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as exc:
            raise UnreadableZipError(f"not a readable ZIP file ({exc})") from exc
        except (NotImplementedError, struct.error, UnicodeDecodeError) as exc:
            raise UnreadableZipError(f"not a readable ZIP file ({exc})") from exc
        if len(infos) != entries:
            raise UnreadableZipError("the central directory holds a different number of entries")
        total = 0
        spans: list[tuple[int, int, str]] = []
        for info in infos:
            name = info.filename
            # Not info.is_dir(): it indexes name[-1] and fails on an empty name.
            is_dir = name.endswith("/")
            problem = _name_problem(name[:-1] if is_dir else name, self.limits)
            if problem is not None:
                self.problems.append(Finding(f"refused entry name: {problem}", name))
                continue
            if name in self.members or (name.rstrip("/") + "/") in self.members:
                self.problems.append(Finding("duplicate entry name", name))
                continue
            if info.flag_bits & 0x41:
                self.problems.append(Finding("encrypted entry", name))
                continue
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                self.problems.append(
                    Finding("compression method is neither STORED nor DEFLATE", name)
                )
                continue
            if is_dir:
                if info.file_size:
                    self.problems.append(Finding("a directory entry with content", name))
                continue
            if info.file_size > self.limits.member_bytes:
                self.problems.append(
                    Finding(f"member of {info.file_size} bytes, larger than the limit", name)
                )
                continue
            if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
                self.problems.append(Finding("STORED entry whose two sizes differ", name))
                continue
            if (
                info.compress_type == zipfile.ZIP_DEFLATED
                and info.file_size > _CHUNK
                and info.file_size > max(info.compress_size, 1) * self.limits.ratio
            ):
                self.problems.append(
                    Finding(
                        f"compression ratio above {self.limits.ratio} (a zip bomb?): "
                        f"{info.file_size} bytes from {info.compress_size}",
                        name,
                    )
                )
                continue
            total += info.file_size
            start = self._data_start(info)
            spans.append((info.header_offset, start + info.compress_size, name))
            self.members[name] = info
        if total > self.limits.total_bytes:
            raise UnreadableZipError(f"{total} bytes uncompressed in all, beyond the limit")
        spans.sort()
        for (_, end, name), (nxt, _, other) in itertools.pairwise(spans):
            if end > nxt:
                self.problems.append(Finding(f"entry overlaps {other} (a zip bomb?)", name))
        if spans and spans[-1][1] > cd_offset:
            self.problems.append(Finding("entry runs into the central directory", spans[-1][2]))

    def _data_start(self, info: zipfile.ZipInfo) -> int:
        if info.header_offset < 0:
            raise UnreadableZipError(f"{info.filename}: its local header offset is negative")
        self._fh.seek(info.header_offset)
        head = self._fh.read(30)
        if len(head) != 30 or head[:4] != b"PK\x03\x04":
            raise UnreadableZipError(f"{info.filename}: no local header where the directory says")
        name_len, extra_len = struct.unpack("<HH", head[26:30])
        return int(info.header_offset) + 30 + int(name_len) + int(extra_len)

    def close(self) -> None:
        """Close the file."""
        with contextlib.suppress(Exception):
            self._zip.close()
        self._fh.close()

    def __enter__(self) -> WACZReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def chunks(self, name: str) -> typing.Iterator[bytes]:
        """The member's bytes in chunks of at most 1 MiB; ValueError if it is unreadable."""
        info = self.members[name]
        seen = 0
        try:
            with self._zip.open(info) as fh:
                while True:
                    chunk = fh.read(_CHUNK)
                    if not chunk:
                        break
                    seen += len(chunk)
                    if seen > info.file_size:  # zipfile stops at file_size; belt and braces
                        raise ValueError("more bytes than declared")
                    yield chunk
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
            raise ValueError(str(exc)) from exc
        except zlib.error as exc:
            raise ValueError(f"corrupt DEFLATE data ({exc})") from exc
        if seen != info.file_size:
            raise ValueError(f"{seen} bytes read, {info.file_size} declared")

    def read(self, name: str, limit: int) -> bytes:
        """A whole member of at most ``limit`` bytes; ValueError when larger or unreadable."""
        info = self.members[name]
        if info.file_size > limit:
            raise ValueError(f"{info.file_size} bytes, more than the limit of {limit}")
        return b"".join(self.chunks(name))

    def digest(self, name: str) -> tuple[str, int]:
        """(sha256 hex, size) of a member, streamed; ValueError if unreadable."""
        h = hashlib.sha256()
        size = 0
        for chunk in self.chunks(name):
            h.update(chunk)
            size += len(chunk)
        return h.hexdigest(), size

    def extract(self, name: str, target: Path) -> None:
        """Copy a member to a new file ``target`` (never overwriting)."""
        with open(target, "xb") as out:
            for chunk in self.chunks(name):
                out.write(chunk)


# ---------------------------------------------------------------------------
# Where the files of an evidence package live inside a WACZ. py-wacz only
# compares the last two path components with the resource list, so every
# file sits exactly one folder deep, under a name that says where it came from.
# ---------------------------------------------------------------------------

_TAG_ROOT = ("bagit.txt", "bag-info.txt", "manifest-sha256.txt", "tagmanifest-sha256.txt")
_SUBDIRS = {
    "evidence/signatures/": "evidence/signature-",
    "evidence/keys/": "evidence/key-",
    "evidence/timestamps/": "evidence/timestamp-",
}


def archive_name_for(warc_path: str) -> str:
    """``archive/<name>`` for the package's WARC ``data/<name>``."""
    return "archive/" + warc_path.rsplit("/", 1)[-1]


def wacz_path_for(package_path: str, warc_path: str) -> str | None:
    """Where a package file goes in a WACZ; None for a path that has no place there."""
    if package_path == warc_path and package_path.count("/") == 1:
        return archive_name_for(warc_path)
    if package_path in _TAG_ROOT:
        return "evidence/" + package_path
    if package_path in ("evidence/manifest.json", "evidence/custody.jsonl"):
        return package_path
    for prefix, flat in _SUBDIRS.items():
        rest = package_path.removeprefix(prefix)
        if rest != package_path and "/" not in rest:
            return flat + rest
    rest = package_path.removeprefix("data/")
    if rest != package_path and "/" not in rest:
        return "evidence/data-" + rest
    return None


def package_path_for(wacz_name: str) -> str | None:
    """The package path of a WACZ member written by :func:`wacz_path_for` (None if none)."""
    if wacz_name.startswith("archive/") and wacz_name.count("/") == 1:
        return "data/" + wacz_name.removeprefix("archive/")
    if not wacz_name.startswith("evidence/") or wacz_name.count("/") != 1:
        return None
    leaf = wacz_name.removeprefix("evidence/")
    if leaf in _TAG_ROOT:
        return leaf
    if leaf in ("manifest.json", "custody.jsonl"):
        return wacz_name
    for prefix, flat in _SUBDIRS.items():
        rest = wacz_name.removeprefix(flat)
        if rest != wacz_name and rest:
            return prefix + rest
    rest = wacz_name.removeprefix("evidence/data-")
    if rest != wacz_name and rest:
        return "data/" + rest
    return None


def embedded_members(reader: WACZReader) -> dict[str, str]:
    """Package path -> WACZ member for an ``evidence`` export (empty for foreign WACZs).

    The package's WARC is the ``archive/`` member its manifest names; other
    ``archive/`` members are not part of the package.
    """
    if "evidence/manifest.json" not in reader.members:
        return {}
    mapping: dict[str, str] = {}
    for name in reader.members:
        if name.startswith("evidence/") and name not in (BINDING_PATH, BINDING_SIG_PATH):
            rel = package_path_for(name)
            if rel is not None:
                mapping[rel] = name
    try:
        raw = reader.read("evidence/manifest.json", reader.limits.json_bytes)
        warc_path = json.loads(raw).get("warc", {}).get("path")
    except (ValueError, AttributeError):
        warc_path = None
    if isinstance(warc_path, str) and warc_path.startswith("data/") and warc_path.count("/") == 1:
        member = archive_name_for(warc_path)
        if member in reader.members:
            mapping[warc_path] = member
    return mapping


def extract_package(reader: WACZReader, mapping: dict[str, str], root: Path) -> None:
    """Write the embedded package's files under ``root`` (a new directory)."""
    root.mkdir()
    for rel, member in sorted(mapping.items()):
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        reader.extract(member, target)


# ---------------------------------------------------------------------------
# Trust.
# ---------------------------------------------------------------------------


@attrs.frozen
class WACZTrust:
    """What the caller trusts: Ed25519 keys (for bindings and the embedded
    package), EC public keys (WACZ keys, by SPKI DER), domain roots, TSA roots."""

    keyring: Keyring = attrs.field(factory=Keyring)
    wacz_keys: frozenset[bytes] = frozenset()
    domain_roots: tuple[x509.Certificate, ...] = ()
    tsa_roots: tuple[x509.Certificate, ...] = ()

    @classmethod
    def from_paths(
        cls,
        trust: typing.Iterable[str | os.PathLike[str]] = (),
        *,
        wacz_roots: typing.Iterable[str | os.PathLike[str]] = (),
        tsa_roots: typing.Iterable[str | os.PathLike[str]] = (),
    ) -> WACZTrust:
        """Load PEM/DER public keys (Ed25519 or EC) and root certificates from files.

        Raises:
            KeyFileError: a key file cannot be read or holds another kind of key.
            TimestampError: a root certificate file cannot be read.
        """
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        from evidence.timestamping import load_tsa_roots

        eds: list[Ed25519PublicKey] = []
        ecs: set[bytes] = set()
        for p in trust:
            try:
                data = Path(p).read_bytes()
            except OSError as exc:
                raise KeyFileError(f"cannot read trusted key {p}: {exc.strerror}") from exc
            try:
                key: object = (
                    serialization.load_pem_public_key(data)
                    if b"-----BEGIN" in data
                    else serialization.load_der_public_key(data)
                )
            except (ValueError, TypeError) as exc:
                raise KeyFileError(f"{p} is not a public key") from exc
            except Exception as exc:  # UnsupportedAlgorithm
                raise KeyFileError(f"{p} is not a usable public key ({exc})") from exc
            if isinstance(key, Ed25519PublicKey):
                eds.append(key)
            elif isinstance(key, EllipticCurvePublicKey):
                ecs.add(_spki(key))
            else:
                raise KeyFileError(f"{p} is neither an Ed25519 nor an ECDSA public key")
        return cls(
            keyring=Keyring(eds),
            wacz_keys=frozenset(ecs),
            domain_roots=tuple(load_tsa_roots(wacz_roots)),
            tsa_roots=tuple(load_tsa_roots(tsa_roots)),
        )


def _spki(key: EllipticCurvePublicKey | Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fingerprint(spki_der: bytes) -> str:
    """Lowercase hex SHA-256 of a SubjectPublicKeyInfo (our key id rule)."""
    return hashlib.sha256(spki_der).hexdigest()


def ecdsa_check(key: EllipticCurvePublicKey, signature: bytes, message: bytes) -> tuple[bool, str]:
    """(valid, "raw r||s" | "DER") for ECDSA/SHA-256; never raises."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    size = (key.curve.key_size + 7) // 8
    if len(signature) == 2 * size:
        form = "raw r||s"
        r = int.from_bytes(signature[:size], "big")
        s = int.from_bytes(signature[size:], "big")
        der = encode_dss_signature(r, s)
    else:
        form, der = "DER", signature
    try:
        key.verify(der, message, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False, form
    return True, form


# ---------------------------------------------------------------------------
# The verifier.
# ---------------------------------------------------------------------------


def verify_wacz(
    path: str | os.PathLike[str],
    *,
    trust: WACZTrust,
    limits: WACZLimits = DEFAULT_WACZ_LIMITS,
) -> Report:
    """Verify a WACZ file from any tool; never raises for bad WACZ content.

    Args:
        path: the ``.wacz`` file.
        trust: the caller's trust policy (required; ``WACZTrust()`` trusts
            nothing, so the best outcome is "intact, trust not established").
        limits: caps on what the file can make us read.
    """
    return _WACZVerifier(Path(path), trust, limits).run()


class _WACZVerifier:
    def __init__(self, path: Path, trust: WACZTrust, limits: WACZLimits) -> None:
        self.path = path
        self.trust = trust
        self.limits = limits
        self.checks: list[Check] = []
        self.notes: list[str] = []
        self.trusted: list[str] = []
        self.valid_untrusted: list[str] = []
        self.untrusted: list[str] = []
        self.verified_at = clock.now_iso()
        self.datapackage: dict[str, typing.Any] | None = None
        self.package_id: str | None = None
        self.subject: Subject | None = None

    def run(self) -> Report:
        # Step 1
        try:
            reader = WACZReader(self.path, self.limits)
        except UnreadableZipError as exc:
            self.checks.append(
                Check("zip", "ZIP structure", Status.FAIL, str(exc), [Finding(str(exc))])
            )
            return self._report(Outcome.NOT_A_PACKAGE if exc.not_zip else Outcome.FAILED)
        with reader:
            if reader.problems:
                self.checks.append(
                    Check(
                        "zip",
                        "ZIP structure",
                        Status.FAIL,
                        f"{len(reader.problems)} problem(s) with the archive's entries",
                        reader.problems,
                    )
                )
            else:
                self.checks.append(
                    Check(
                        "zip",
                        "ZIP structure",
                        Status.PASS,
                        f"{len(reader.members)} entries: safe names, no duplicates, "
                        "no encryption, no overlaps, sizes within limits",
                    )
                )
            raw = self._datapackage(reader)
            if raw is None:
                # A clean ZIP without datapackage.json is simply not a WACZ.
                missing = "datapackage.json" not in reader.members and not reader.problems
                return self._report(Outcome.NOT_A_PACKAGE if missing else None)
            # Step 2
            self._resources(reader)
            # Step 3 and 4
            signed = self._digest(reader, raw)
            if signed is not None:
                self._signature(reader, signed)
            # Step 6
            if not self._embedded(reader):
                # Step 7
                self._foreign_warcs(reader)
        return self._report(None)

    def _add(
        self,
        name: str,
        title: str,
        status: Status,
        summary: str,
        details: typing.Sequence[Finding | str] = (),
    ) -> None:
        self.checks.append(Check(name, title, status, summary, tuple(details)))

    def _json(self, reader: WACZReader, name: str, limit: int) -> typing.Any:
        raw = reader.read(name, limit)
        return strict_loads(decode_strict(raw, what=name, max_bytes=limit), what=name)

    def _datapackage(self, reader: WACZReader) -> bytes | None:
        title = "datapackage.json"
        if "datapackage.json" not in reader.members:
            self._add("datapackage", title, Status.FAIL, "missing: this is not a WACZ")
            return None
        try:
            raw = reader.read("datapackage.json", self.limits.json_bytes)
            doc = strict_loads(
                decode_strict(raw, what="datapackage.json", max_bytes=self.limits.json_bytes),
                what="datapackage.json",
            )
        except (ValueError, ManifestError) as exc:
            self._add("datapackage", title, Status.FAIL, f"unreadable: {exc}")
            return None
        problems: list[Finding] = []
        if not isinstance(doc, dict):
            problems.append(Finding("not a JSON object", "datapackage.json"))
        else:
            resources = doc.get("resources")
            if not isinstance(resources, list) or not all(
                isinstance(r, dict)
                and isinstance(r.get("path"), str)
                and isinstance(r.get("hash"), str)
                and isinstance(r.get("bytes"), int)
                and not isinstance(r.get("bytes"), bool)
                for r in resources
            ):
                problems.append(
                    Finding(
                        "resources is not a list of {path, hash, bytes} objects",
                        "datapackage.json",
                    )
                )
            version = doc.get("wacz_version")
            if not isinstance(version, str):
                problems.append(Finding("wacz_version is missing", "datapackage.json"))
            created = doc.get("created")
            if created is not None and not isinstance(created, str):
                problems.append(Finding("created is not a string", "datapackage.json"))
        if problems:
            self._add("datapackage", title, Status.FAIL, "not a WACZ datapackage", problems)
            return None
        self.datapackage = typing.cast("dict[str, typing.Any]", doc)
        self._add(
            "datapackage",
            title,
            Status.PASS,
            f"WACZ {self.datapackage['wacz_version']}, "
            f"{len(self.datapackage['resources'])} resources listed",
        )
        return raw

    def _resources(self, reader: WACZReader) -> None:
        assert self.datapackage is not None
        title = "Members and resources"
        problems: list[Finding] = []
        listed: dict[str, dict[str, typing.Any]] = {}
        for res in self.datapackage["resources"]:
            p = res["path"]
            if p in listed:
                problems.append(Finding("listed twice", p))
            elif p in _META:
                problems.append(Finding("the datapackage lists itself or its digest", p))
            else:
                listed[p] = res
        present = {n for n in reader.members if n not in _META}
        for name in sorted(present - set(listed)):
            problems.append(Finding("member not listed in datapackage.json", name))
        for name in sorted(set(listed) - present):
            problems.append(Finding("listed in datapackage.json but missing", name))
        checked = 0
        for name in sorted(present & set(listed)):
            res = listed[name]
            info = reader.members[name]
            if info.file_size != res["bytes"]:
                problems.append(
                    Finding("size differs", name, expected=res["bytes"], found=info.file_size)
                )
                continue
            m = _HASH.match(res["hash"])
            if m is None:
                problems.append(Finding(f"hash {res['hash']} is not sha256:<64 hex>", name))
                continue
            try:
                digest, _ = reader.digest(name)
            except ValueError as exc:
                problems.append(Finding(f"unreadable member: {exc}", name))
                continue
            if digest != m.group(1):
                problems.append(Finding("SHA-256 differs", name, expected=m.group(1), found=digest))
                continue
            checked += 1
        if problems:
            self._add("resources", title, Status.FAIL, f"{len(problems)} problem(s)", problems)
        else:
            self._add(
                "resources",
                title,
                Status.PASS,
                f"{checked} members, exactly the listed resources, sizes and SHA-256 match",
            )
        deflated = [
            Finding("WARC or compressed index stored with DEFLATE (replay needs STORED)", n)
            for n, info in sorted(reader.members.items())
            if (n.startswith("archive/") or n.endswith(".gz"))
            and info.compress_type != zipfile.ZIP_STORED
        ]
        if deflated:
            self._add(
                "compression",
                "Compression",
                Status.WARN,
                f"{len(deflated)} member(s) not STORED",
                deflated,
            )

    def _digest(self, reader: WACZReader, raw: bytes) -> dict[str, typing.Any] | None:
        assert self.datapackage is not None
        title = "datapackage-digest.json"
        actual = "sha256:" + hashlib.sha256(raw).hexdigest()
        if "datapackage-digest.json" not in reader.members:
            self._add(
                "digest",
                title,
                Status.NOT_CHECKED,
                "absent: nothing signs or fixes datapackage.json",
            )
            self._add("signature", "Signature", Status.NOT_CHECKED, "the WACZ is not signed")
            return None
        try:
            doc = self._json(reader, "datapackage-digest.json", self.limits.digest_bytes)
        except (ValueError, ManifestError) as exc:
            self._add("digest", title, Status.FAIL, f"unreadable: {exc}")
            return None
        problems: list[Finding] = []
        if not isinstance(doc, dict):
            self._add("digest", title, Status.FAIL, "not a JSON object")
            return None
        if doc.get("path") != "datapackage.json":
            problems.append(Finding(f"path is {doc.get('path')!r}, not datapackage.json", title))
        if doc.get("hash") != actual:
            problems.append(
                Finding(
                    "hash is not the SHA-256 of datapackage.json",
                    title,
                    expected=actual,
                    found=str(doc.get("hash")),
                )
            )
        signed = doc.get("signedData")
        if signed is not None and not isinstance(signed, dict):
            problems.append(Finding("signedData is not an object", title))
            signed = None
        if isinstance(signed, dict):
            if signed.get("hash") != actual:
                # The forgery the Webrecorder tools miss: a signature pasted
                # from another WACZ, valid for the hash it names, not for this one.
                problems.append(
                    Finding(
                        "signedData.hash is not the SHA-256 of this datapackage.json "
                        "(a signature taken from another WACZ?)",
                        title,
                        expected=actual,
                        found=str(signed.get("hash")),
                    )
                )
            if signed.get("created") != self.datapackage.get("created"):
                problems.append(
                    Finding(
                        "signedData.created differs from datapackage.created",
                        title,
                        expected=str(self.datapackage.get("created")),
                        found=str(signed.get("created")),
                    )
                )
        if problems:
            self._add("digest", title, Status.FAIL, "does not match datapackage.json", problems)
            self._add(
                "signature",
                "Signature",
                Status.FAIL,
                "not checked: it is not over this datapackage.json",
            )
            return None
        self._add(
            "digest",
            title,
            Status.PASS,
            "hash and signedData.hash equal SHA-256(datapackage.json)"
            if signed
            else "hash equals SHA-256(datapackage.json); no signedData",
        )
        if not signed:
            self._add("signature", "Signature", Status.NOT_CHECKED, "the WACZ is not signed")
            return None
        return signed

    def _signature(self, reader: WACZReader, signed: dict[str, typing.Any]) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        title = "Signature"
        text = signed["hash"]
        sig_b64 = signed.get("signature")
        if not isinstance(sig_b64, str):
            self._add("signature", title, Status.FAIL, "signedData has no signature")
            return
        try:
            signature = base64.b64decode(sig_b64, validate=True)
        except (binascii.Error, ValueError):
            self._add("signature", title, Status.FAIL, "the signature is not base64")
            return
        if "domain" in signed or "domainCert" in signed:
            from cryptography.exceptions import UnsupportedAlgorithm

            try:
                self._domain_signature(signed, signature)
            except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
                # A certificate cryptography parses lazily and cannot use after all.
                self._add("signature", "Domain signature", Status.FAIL, f"unusable ({exc})")
            return
        pub_b64 = signed.get("publicKey")
        if not isinstance(pub_b64, str):
            self._add("signature", title, Status.FAIL, "neither publicKey nor domain is given")
            return
        try:
            spki = base64.b64decode(pub_b64, validate=True)
            key = serialization.load_der_public_key(spki)
        except Exception:  # binascii.Error, ValueError, UnsupportedAlgorithm
            self._add("signature", title, Status.FAIL, "publicKey is not a base64 DER public key")
            return
        fp = fingerprint(spki)
        if isinstance(key, Ed25519PublicKey):
            self._add(
                "signature",
                title,
                Status.NOT_CHECKED,
                "an Ed25519 key: not a WACZ signature algorithm (ECDSA only); not counted",
                [Finding(f"Ed25519 key {fp}: signature ignored")],
            )
            return
        if not isinstance(key, EllipticCurvePublicKey) or key.curve.name not in (
            "secp256r1",
            "secp384r1",
            "secp521r1",
        ):
            self._add("signature", title, Status.FAIL, "the key is not ECDSA P-256, P-384 or P-521")
            return
        ok, form = ecdsa_check(key, signature, text.encode("ascii", "replace"))
        curve = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}[key.curve.name]
        if not ok:
            self._add(
                "signature",
                title,
                Status.FAIL,
                f"the ECDSA {curve} signature ({form}) does not verify",
                [Finding(f"invalid signature by key {fp}")],
            )
            return
        signer = f"wacz-key:{fp}"
        if spki in self.trust.wacz_keys:
            self.trusted.append(signer)
            how = "a key you trust"
        else:
            bound = self._binding(reader, spki)
            if bound is not None:
                self.trusted.append(f"{bound} (through WACZ key {fp})")
                how = f"bound to the Ed25519 key {bound} you trust"
            else:
                self.valid_untrusted.append(signer)
                self.untrusted.append(signer)
                how = "valid, untrusted key"
        self._add(
            "signature",
            title,
            Status.PASS,
            f"anonymous ECDSA {curve}/SHA-256 signature ({form}) over the hash: {how}",
            [Finding(f"signing key {fp} (SHA-256 of its SubjectPublicKeyInfo)")],
        )

    def _binding(self, reader: WACZReader, spki: bytes) -> str | None:
        """The trusted Ed25519 key id that binds ``spki``, recorded as a check; else None."""
        title = "WACZ key binding"
        if BINDING_PATH not in reader.members:
            return None
        try:
            raw = reader.read(BINDING_PATH, self.limits.digest_bytes)
            sig = reader.read(BINDING_SIG_PATH, 1024) if BINDING_SIG_PATH in reader.members else b""
            doc = strict_loads(decode_strict(raw, what=BINDING_PATH), what=BINDING_PATH)
        except (ValueError, ManifestError) as exc:
            self._add("key-binding", title, Status.FAIL, f"unreadable: {exc}")
            return None
        fields = ("type", "ed25519_key_id", "ed25519_public_key", "wacz_public_key")
        if not isinstance(doc, dict) or not all(isinstance(doc.get(f), str) for f in fields):
            self._add("key-binding", title, Status.FAIL, "not a binding statement")
            return None
        if doc["type"] != BINDING_TYPE:
            self._add("key-binding", title, Status.FAIL, "not a binding statement")
            return None
        try:
            wacz_key = base64.b64decode(doc["wacz_public_key"], validate=True)
        except (binascii.Error, ValueError):
            self._add("key-binding", title, Status.FAIL, "wacz_public_key is not base64")
            return None
        if wacz_key != spki:
            self._add(
                "key-binding",
                title,
                Status.FAIL,
                "binds another WACZ key than the one that signed",
                [Finding("bound key", expected=fingerprint(spki), found=fingerprint(wacz_key))],
            )
            return None
        kid = doc["ed25519_key_id"]
        ed = self.trust.keyring.get(kid) if isinstance(kid, str) else None
        if ed is None:
            self._add(
                "key-binding",
                title,
                Status.NOT_CHECKED,
                "binds the WACZ key to an Ed25519 key you did not give (--trust)",
                [Finding(f"Ed25519 key id {kid}")],
            )
            return None
        from evidence.signing import signature_valid

        if not signature_valid(ed, sig, raw):
            self._add(
                "key-binding",
                title,
                Status.FAIL,
                "the binding statement's Ed25519 signature does not verify",
                [Finding(f"Ed25519 key id {kid}")],
            )
            return None
        self._add(
            "key-binding",
            title,
            Status.PASS,
            "the WACZ key is bound by an Ed25519 signature of a key you trust",
            [Finding(f"Ed25519 key id {key_id(ed)}")],
        )
        return key_id(ed)

    def _domain_signature(self, signed: dict[str, typing.Any], signature: bytes) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

        title = "Domain signature"
        fields = ("domain", "domainCert", "timeSignature", "timestampCert", "created")
        if not all(isinstance(signed.get(f), str) for f in fields):
            self._add("signature", title, Status.FAIL, f"signedData lacks one of {fields}")
            return
        domain = signed["domain"]
        problems: list[Finding] = []
        try:
            chain = x509.load_pem_x509_certificates(signed["domainCert"].encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            self._add("signature", title, Status.FAIL, f"domainCert is unreadable ({exc})")
            return
        if not chain or len(chain) > 8:
            self._add(
                "signature", title, Status.FAIL, "domainCert holds no or too many certificates"
            )
            return
        leaf = chain[0]
        key = leaf.public_key()
        if not isinstance(key, EllipticCurvePublicKey):
            self._add("signature", title, Status.FAIL, "the domain certificate's key is not ECDSA")
            return
        ok, form = ecdsa_check(key, signature, signed["hash"].encode("ascii", "replace"))
        if not ok:
            problems.append(
                Finding(f"the signature ({form}) does not verify with the domain certificate")
            )
        names = _cert_names(leaf)
        if domain not in names:
            problems.append(
                Finding(
                    "the certificate is not for the domain claimed",
                    expected=domain,
                    found=", ".join(sorted(names)) or "no name",
                )
            )
        created = parse_wacz_time(signed["created"])
        if created is None:
            problems.append(Finding(f"created {signed['created']!r} is not a UTC time"))
        if created is not None and not (
            leaf.not_valid_before_utc <= created <= leaf.not_valid_after_utc
        ):
            problems.append(
                Finding(
                    "created lies outside the domain certificate's validity",
                    expected=f"{clock.iso(leaf.not_valid_before_utc)} .. "
                    f"{clock.iso(leaf.not_valid_after_utc)}",
                    found=signed["created"],
                )
            )
        chain_status = Status.NOT_CHECKED
        if self.trust.domain_roots:
            why = _chain_problem(chain, self.trust.domain_roots, created, domain)
            if why:
                problems.append(Finding(f"domain certificate chain: {why}"))
            else:
                chain_status = Status.PASS
        stamp_status = self._time_signature(signed, created, problems)
        if problems:
            self._add("signature", title, Status.FAIL, f"{len(problems)} problem(s)", problems)
            return
        signer = f"domain:{domain}"
        if chain_status is Status.PASS and stamp_status is Status.PASS:
            self.trusted.append(signer)
            self._add(
                "signature",
                title,
                Status.PASS,
                f"signed for {domain} ({form}); chain to a root you trust; "
                "time stamp within 10 minutes",
            )
            return
        self.valid_untrusted.append(signer)
        self.untrusted.append(signer)
        missing = []
        if chain_status is not Status.PASS:
            missing.append("the certificate chain (give --wacz-roots)")
        if stamp_status is not Status.PASS:
            missing.append("the time stamp chain (give --tsa-ca)")
        self._add(
            "signature",
            title,
            Status.NOT_CHECKED,
            f"the signature for {domain} is valid, but not checked: {', '.join(missing)}",
        )

    def _time_signature(
        self,
        signed: dict[str, typing.Any],
        created: _dt.datetime | None,
        problems: list[Finding],
    ) -> Status:
        from evidence.timestamping import check_token

        try:
            token = base64.b64decode(signed["timeSignature"], validate=True)
        except (binascii.Error, ValueError):
            problems.append(Finding("timeSignature is not base64"))
            return Status.FAIL
        imprint = hashlib.sha256(signed["signature"].encode("ascii", "replace")).digest()
        result = check_token(token, imprint, roots=list(self.trust.tsa_roots))
        for p in result.problems:
            problems.append(
                Finding(
                    "timeSignature: " + p.replace("SHA-256(manifest.json)", "SHA-256(signature)")
                )
            )
        if result.problems:
            return Status.FAIL
        if created is not None and result.gen_time is not None:
            if not created - _dt.timedelta(seconds=result.accuracy_seconds) <= result.gen_time:
                problems.append(
                    Finding(
                        "the time stamp is earlier than created",
                        expected=f"after {clock.iso(created)}",
                        found=clock.iso(result.gen_time),
                    )
                )
            elif result.gen_time > created + STAMP_WINDOW:
                problems.append(
                    Finding(
                        "the time stamp is more than 10 minutes after created",
                        expected=f"before {clock.iso(created + STAMP_WINDOW)}",
                        found=clock.iso(result.gen_time),
                    )
                )
        return Status.PASS if result.chain_checked else Status.NOT_CHECKED

    def _foreign_warcs(self, reader: WACZReader) -> None:
        title = "WARC records"
        names = sorted(
            n for n in reader.members if n.startswith("archive/") and ".warc" in n.rsplit("/")[-1]
        )
        if not names:
            self._add("warc", title, Status.NOT_CHECKED, "the WACZ holds no WARC file")
            return
        fails: list[Finding] = []
        warns: list[Finding] = []
        checked = 0
        tmp = Path(tempfile.mkdtemp(prefix="evidence-wacz-"))
        try:
            for name in names:
                if not name.endswith(".warc.gz"):
                    warns.append(Finding("not a gzipped WARC: record checks not run", name))
                    continue
                target = tmp / "w.warc.gz"
                try:
                    reader.extract(name, target)
                    count, fail, warn = _check_foreign_warc(target, name, self.limits)
                except (ValueError, OSError) as exc:
                    fails.append(Finding(f"unreadable: {exc}", name))
                    continue
                finally:
                    with contextlib.suppress(OSError):
                        target.unlink()
                checked += count
                fails.extend(fail)
                warns.extend(warn)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if fails:
            self._add(
                "warc",
                title,
                Status.FAIL,
                f"{len(fails)} problem(s) in {len(names)} WARC file(s)",
                fails + warns,
            )
        elif warns:
            self._add(
                "warc",
                title,
                Status.WARN,
                f"{checked} records checked; {len(warns)} check(s) could not apply",
                warns,
            )
        else:
            self._add(
                "warc",
                title,
                Status.PASS,
                f"{checked} records in {len(names)} WARC file(s): one gzip member each, "
                "CRCs, lengths, block and payload digests all match",
            )

    def _embedded(self, reader: WACZReader) -> bool:
        from evidence.verifying.verifier import verify

        mapping = embedded_members(reader)
        if not mapping:
            return False
        title = "Embedded evidence package"
        tmp = Path(tempfile.mkdtemp(prefix="evidence-wacz-"))
        try:
            try:
                raw = reader.read("evidence/manifest.json", self.limits.json_bytes)
                pid = json.loads(raw).get("package_id")
            except (ValueError, AttributeError):
                pid = None
            name = pid if isinstance(pid, str) and _COMPONENT.match(pid) else "package"
            root = tmp / name
            try:
                extract_package(reader, mapping, root)
            except (ValueError, OSError) as exc:
                self._add("embedded", title, Status.FAIL, f"cannot be rebuilt: {exc}")
                return True
            report = verify(root, trust=self.trust.keyring, tsa_roots=self.trust.tsa_roots)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.package_id = report.package_id
        failures = [
            Finding(f"{c.title}: {f.text}") for c in report.failures() for f in c.details
        ] or [Finding(c.title + ": " + c.summary) for c in report.failures()]
        if report.outcome is Outcome.FAILED:
            self._add(
                "embedded", title, Status.FAIL, "the package inside does not verify", failures
            )
        elif report.outcome is Outcome.VERIFIED:
            self._add(
                "embedded",
                title,
                Status.PASS,
                f"package {report.package_id} verifies, signed by a key you trust",
                [Finding(f"signed by {k}, a key you trust") for k in report.trusted_signers],
            )
        else:
            self._add(
                "embedded",
                title,
                Status.PASS,
                f"package {report.package_id} is intact; no signature by a key you trust",
            )
        self.subject = report.subject
        return True

    def _report(self, outcome: Outcome | None) -> Report:
        if outcome is None:
            if any(c.status is Status.FAIL for c in self.checks):
                outcome = Outcome.FAILED
            elif self.trusted:
                outcome = Outcome.VERIFIED
            else:
                outcome = Outcome.UNTRUSTED
        if outcome is Outcome.UNTRUSTED:
            self.notes.append(
                "No signature by a key, binding or domain root you trust vouches for this WACZ."
            )
        subject = self.subject
        if subject is None and self.datapackage is not None:
            dp = self.datapackage
            subject = Subject(
                requested_url=_str_or_none(dp.get("mainPageUrl")),
                captured_at=_str_or_none(dp.get("mainPageDate")),
                created=_str_or_none(dp.get("created")),
            )
        from evidence.verifying.verifier import software_version

        return Report(
            package=str(self.path),
            checks=tuple(self.checks),
            outcome=outcome,
            trusted_signers=tuple(self.trusted),
            untrusted_signers=tuple(self.untrusted),
            package_id=self.package_id,
            notes=tuple(self.notes),
            subject=subject,
            valid_untrusted_signers=tuple(self.valid_untrusted),
            verified_at=self.verified_at,
            software_version=software_version(),
        )


def _scan_members(path: Path, limits: WACZLimits) -> tuple[list[dict[str, typing.Any]], str | None]:
    """An inventory of a gzip-per-record WARC, read from the file itself.

    Returns (records, problem): ``problem`` says why the file cannot be
    checked record by record (a member holding several records, too many
    records), or is None.
    """
    records: list[dict[str, typing.Any]] = []
    with open(path, "rb") as fh:
        offset = 0
        size = os.fstat(fh.fileno()).st_size
        while offset < size:
            if len(records) >= limits.warc_records:
                return records, f"more than {limits.warc_records} records: not checked"
            fh.seek(offset)
            dec = zlib.decompressobj(31)
            h = hashlib.sha256()
            head = b""
            out_size = 0
            consumed = 0
            while not dec.eof:
                chunk = fh.read(_CHUNK)
                if not chunk:
                    raise ValueError(f"gzip member at offset {offset} is cut off")
                data = chunk
                while data and not dec.eof:
                    out = dec.decompress(data, _CHUNK)
                    out_size += len(out)
                    if len(head) < 65536:
                        head += out[: 65536 - len(head)]
                    data = dec.unconsumed_tail
                used = len(chunk) - len(dec.unused_data) if dec.eof else len(chunk)
                h.update(chunk[:used])
                consumed += used
            headers, block_start = _warc_headers(head)
            length = headers.get("content-length", "")
            if block_start is not None and length.isdigit() and len(length) < 19:
                if out_size > block_start + int(length) + 4:
                    return (
                        records,
                        "several records in one gzip member: not checked record by record",
                    )
            records.append(
                {
                    "id": headers.get("warc-record-id"),
                    "type": headers.get("warc-type"),
                    "date": headers.get("warc-date"),
                    "target_uri": headers.get("warc-target-uri"),
                    "offset": offset,
                    "length": consumed,
                    "sha256": h.hexdigest(),
                }
            )
            offset += consumed
    return records, None


def _warc_headers(head: bytes) -> tuple[dict[str, str], int | None]:
    end = head.find(b"\r\n\r\n")
    if end < 0:
        return {}, None
    headers: dict[str, str] = {}
    for line in head[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    return headers, end + 4


def _check_foreign_warc(
    path: Path, name: str, limits: WACZLimits
) -> tuple[int, list[Finding], list[Finding]]:
    """(records checked, failures, checks that could not apply) for one foreign WARC."""
    from evidence.warc import check_warc

    try:
        records, why_not = _scan_members(path, limits)
    except (ValueError, zlib.error) as exc:
        return 0, [Finding(f"not a valid gzip-per-record WARC ({exc})", name)], []
    if why_not is not None:
        return 0, [], [Finding(why_not, name)]
    result = check_warc(str(path), records)
    fails = [Finding(p, name) for p in result.problems]
    warns: list[Finding] = []
    for rc in result.records:
        for p in rc.problems:
            finding = Finding(f"record {rc.index}: {p}", name, record_id=rc.record_id)
            # A digest the writing tool did not record cannot be checked: not a defect.
            (warns if p.endswith("digest is missing") else fails).append(finding)
    return len(records), fails, warns


def parse_wacz_time(text: object) -> _dt.datetime | None:
    """An ISO 8601 UTC time as WACZ tools write it (``Z``, any fraction); else None."""
    if not isinstance(text, str) or len(text) > 40 or not text.endswith("Z"):
        return None
    try:
        when = _dt.datetime.fromisoformat(text[:-1] + "+00:00")
    except ValueError:
        return None
    return when.astimezone(_dt.timezone.utc)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _cert_names(cert: x509.Certificate) -> set[str]:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    names: set[str] = set()
    try:
        for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
            if isinstance(attr.value, str):
                names.add(attr.value)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names.update(san.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        pass
    except ValueError:
        pass
    return names


def _chain_problem(
    chain: list[x509.Certificate],
    roots: typing.Sequence[x509.Certificate],
    when: _dt.datetime | None,
    domain: str,
) -> str | None:
    """None when ``chain[0]`` verifies for ``domain`` up to one of ``roots`` at ``when``."""
    from cryptography import x509
    from cryptography.x509 import verification

    if when is None:
        return "no valid time to judge it at"
    try:
        store = verification.Store(list(roots))
        builder = verification.PolicyBuilder().store(store).time(when)
        verifier = builder.build_server_verifier(x509.DNSName(domain))
        verifier.verify(chain[0], chain[1:])
    except verification.VerificationError as exc:
        return str(exc)
    except (ValueError, TypeError) as exc:
        return f"cannot be checked ({exc})"
    return None
