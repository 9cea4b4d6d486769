"""Verify an evidence package against a caller-supplied trust policy.

Steps (tagged ``# Step N`` where they happen):

1. The path is a finished package (not a temporary directory).
2. Layout: every file is a regular file (no symlinks, devices or FIFOs) with
   a safe name in a place the format allows; nothing else under ``evidence/``.
3. Tag manifest: lists exactly the tag files, each with the right SHA-256.
4. Signatures over the exact manifest bytes, before those bytes are parsed:
   each counts only if its key is in the caller's keyring.
5. Manifest: strict parse (duplicate keys, NaN, bad UTF-8, unknown format fail).
6. Payload: ``manifest-sha256.txt`` lists exactly the files under ``data/``;
   every file matches it and the manifest's file list (size and SHA-256);
   Payload-Oxum matches.
7. WARC: member by member against the manifest's record inventory.
8. Timestamps: each RFC 3161 token's imprint, nonce, signature and chain to a
   TSA root the caller gave (judged at genTime), and genTime not before the
   capture began.
9. Outcome: any FAIL -> failed; else a valid trusted signature -> verified;
   else intact but untrusted. NOT CHECKED never counts as a pass.

Nothing here raises for bad package content; :func:`verify_strict` raises.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import re
import stat
import typing
from pathlib import Path

from evidence.custody import CUSTODY_PATH, check_log, read_events
from evidence.errors import EvidenceError, ManifestError, PackageError, VerificationError
from evidence.keys import Keyring, key_id, public_key_from_bytes, public_key_pem
from evidence.manifest import Manifest, PayloadFile, decode_strict
from evidence.package import (
    ATTACHMENT_DIRS,
    ATTACHMENT_FILES,
    MANIFEST_PATH,
    TAG_FILES,
    require_package,
    safe_relative_path,
    sha256_file,
)
from evidence.signing import SIGNATURE_SIZE, signature_valid
from evidence.verifying.report import Check, Outcome, Report, Status
from evidence.warc import check_warc

if typing.TYPE_CHECKING:
    from cryptography import x509

__all__ = ["TrustInput", "verify", "verify_strict"]

TrustInput = typing.Union[Keyring, typing.Iterable[typing.Union[str, "os.PathLike[str]"]]]  # noqa: UP007 - a runtime alias on 3.10

MAX_TAG_FILE_BYTES = 64 * 1024 * 1024
MAX_FILES = 100_000
MAX_DEPTH = 16
_ROOT_FILES = {"bagit.txt", "bag-info.txt", "manifest-sha256.txt", "tagmanifest-sha256.txt"}
# Exactly what we (and bagit-python) write: lowercase hex, two spaces, a path.
_MANIFEST_LINE = re.compile(r"^([0-9a-f]{64})  (\S.*)$")


def _keyring(trust: TrustInput) -> Keyring:
    if isinstance(trust, Keyring):
        return trust
    if isinstance(trust, (str, os.PathLike)):
        return Keyring.from_paths([trust])
    return Keyring.from_paths(trust)


def verify(
    path: str | os.PathLike[str],
    *,
    trust: TrustInput,
    tsa_roots: typing.Iterable[x509.Certificate | str | os.PathLike[str]] = (),
    require_timestamp: bool = False,
    custody_anchors: typing.Iterable[str] = (),
) -> Report:
    """Check a package and return a report; never raises for bad package content.

    Args:
        path: the package directory.
        trust: the keys whose signatures count, as a :class:`Keyring` or
            paths to public keys / directories of keys. Required: pass an
            empty list to check integrity only (the best outcome is then
            "intact, trust not established").
        tsa_roots: root certificates (or PEM/DER files) of time-stamping
            authorities you trust. Without them, tokens are parsed and their
            imprint checked, but their signature is NOT CHECKED.
        require_timestamp: fail unless at least one token fully verifies.
        custody_anchors: SHA-256 hex digests of custody events obtained
            outside the package; each must be in the log, so events cut from
            its end before an anchor are detected.

    Raises:
        KeyFileError: a trusted key path cannot be loaded (a caller error).
        TimestampError: a TSA root file cannot be loaded (a caller error).
    """
    keyring = _keyring(trust)
    roots: list[x509.Certificate] = []
    tsa_roots = list(tsa_roots)
    if tsa_roots:
        # Imported only when needed: cryptography.x509 and rfc3161-client cost
        # memory and start-up time a plain verification does not need.
        from cryptography import x509 as _x509

        from evidence.timestamping import load_tsa_roots

        roots = [r for r in tsa_roots if isinstance(r, _x509.Certificate)]
        roots += load_tsa_roots([r for r in tsa_roots if not isinstance(r, _x509.Certificate)])
    anchors = [a.strip().lower() for a in custody_anchors]
    return _Verifier(Path(path), keyring, roots, require_timestamp, anchors).run()


def verify_strict(
    path: str | os.PathLike[str],
    *,
    trust: TrustInput,
    tsa_roots: typing.Iterable[x509.Certificate | str | os.PathLike[str]] = (),
    require_timestamp: bool = False,
    custody_anchors: typing.Iterable[str] = (),
) -> Report:
    """Like :func:`verify`, but raise :class:`VerificationError` unless VERIFIED."""
    report = verify(
        path,
        trust=trust,
        tsa_roots=tsa_roots,
        require_timestamp=require_timestamp,
        custody_anchors=custody_anchors,
    )
    if not report.ok:
        raise VerificationError(f"{path}: {report.verdict}", report)
    return report


def _read_bounded(path: Path, limit: int) -> bytes:
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise PackageError(f"{path.name} is larger than {limit} bytes")
    return data


def _parse_checksum_file(raw: bytes, name: str) -> tuple[dict[str, str], list[str]]:
    """Parse ``<sha256>  <path>`` lines. Returns (path -> digest, problems)."""
    entries: dict[str, str] = {}
    problems: list[str] = []
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return {}, [f"{name} is not valid UTF-8"]
    if text and not text.endswith("\n"):
        problems.append(f"{name} does not end with a newline")
    for number, line in enumerate(text.split("\n")[:-1] if text else [], 1):
        m = _MANIFEST_LINE.match(line)
        if not m:
            problems.append(f"{name} line {number} is malformed")
            continue
        digest, rel = m.group(1).lower(), m.group(2)
        if not safe_relative_path(rel):
            problems.append(f"{name} line {number} names an unsafe path {rel!r}")
            continue
        if rel in entries:
            problems.append(f"{name} lists {rel} twice")
            continue
        entries[rel] = digest
    return entries, problems


def _capture_start(manifest: Manifest | None) -> _dt.datetime | None:
    if manifest is None:
        return None
    text = manifest.capture.started if manifest.capture else manifest.created
    try:
        return _dt.datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=_dt.timezone.utc
        )
    except ValueError:
        return None


def _human(delta: _dt.timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds < 0:
        return f"{-seconds:.0f} s before"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


class _Verifier:
    def __init__(
        self,
        path: Path,
        keyring: Keyring,
        tsa_roots: list[x509.Certificate],
        require_timestamp: bool,
        custody_anchors: list[str],
    ) -> None:
        self.path = path
        self.keyring = keyring
        self.tsa_roots = tsa_roots
        self.require_timestamp = require_timestamp
        self.custody_anchors = custody_anchors
        self.checks: list[Check] = []
        self.files: dict[str, int] = {}  # relative path -> size, regular files only
        self.trusted: list[str] = []
        self.untrusted: list[str] = []
        self.notes: list[str] = []

    def add(
        self,
        name: str,
        title: str,
        status: Status,
        summary: str,
        details: typing.Iterable[str] = (),
    ) -> None:
        self.checks.append(Check(name, title, status, summary, tuple(details)))

    def run(self) -> Report:
        # Step 1: a finished package.
        try:
            root = require_package(self.path)
        except PackageError as exc:
            return Report(
                package=str(self.path),
                checks=(Check("package", "Package", Status.FAIL, str(exc)),),
                outcome=Outcome.NOT_A_PACKAGE,
            )
        self.root = root
        manifest: Manifest | None = None
        try:
            self._layout()
            self._tag_manifest()
            raw = self._manifest_bytes()
            digest = None
            if raw is not None:
                # Signatures are checked on the exact bytes before they are parsed.
                self._signatures(raw)
                digest = hashlib.sha256(raw).digest()
                text = self._decode(raw)
                del raw  # a 30 MB manifest need not be held twice while parsing
                if text is not None:
                    manifest = self._manifest(text, digest)
                    del text
            self._payload(manifest)
            if digest is not None:
                self._timestamps(digest, manifest)
                self._custody(digest, manifest)
        except (OSError, EvidenceError) as exc:  # an unreadable file, mid-way
            self.add("io", "Reading the package", Status.FAIL, f"cannot read the package: {exc}")
        return self._report(manifest)

    # Step 2 ---------------------------------------------------------------
    def _layout(self) -> None:
        problems: list[str] = []
        count = 0

        def walk(directory: Path, rel: str, depth: int) -> None:
            nonlocal count
            if depth > MAX_DEPTH:
                problems.append(f"{rel}: directories nested too deeply")
                return
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
            for entry in entries:
                count += 1
                if count > MAX_FILES:
                    problems.append(f"more than {MAX_FILES} entries; stopped looking")
                    return
                name = f"{rel}/{entry.name}" if rel else entry.name
                if not safe_relative_path(name) or not name.isprintable():
                    problems.append(f"unsafe file name {name!r}")
                    continue
                st = os.lstat(entry.path)
                if stat.S_ISLNK(st.st_mode):
                    problems.append(f"{name} is a symbolic link (not allowed in a package)")
                elif stat.S_ISDIR(st.st_mode):
                    walk(Path(entry.path), name, depth + 1)
                elif stat.S_ISREG(st.st_mode):
                    self.files[name] = st.st_size
                else:
                    problems.append(f"{name} is not a regular file")

        walk(self.root, "", 0)
        for name in sorted(self.files):
            if name in _ROOT_FILES or name == MANIFEST_PATH or name.startswith("data/"):
                continue
            parent, _, base = name.rpartition("/")
            pattern = ATTACHMENT_DIRS.get(parent)
            if pattern is not None and pattern.match(base):
                continue
            if name in ATTACHMENT_FILES:
                continue
            problems.append(f"{name} is not allowed here by the package format")
        for required in (*_ROOT_FILES, MANIFEST_PATH):
            if required not in self.files:
                problems.append(f"{required} is missing")
        problems.extend(self._key_files())
        for name in self.files:
            if name.startswith("evidence/signatures/") and name.endswith(".sig"):
                kid = name.rsplit("/", 1)[1][: -len(".sig")]
                if f"evidence/keys/{kid}.pub" not in self.files:
                    problems.append(f"{name} has no evidence/keys/{kid}.pub beside it")
        for name in self.files:
            if name.startswith("evidence/timestamps/") and name.endswith(".tsq"):
                if name[: -len(".tsq")] + ".tsr" not in self.files:
                    problems.append(f"{name} is a timestamp request without its token")
        if problems:
            self.add(
                "layout",
                "Package layout",
                Status.FAIL,
                f"{len(problems)} problem(s) with the files in the package",
                problems,
            )
        else:
            self.add(
                "layout",
                "Package layout",
                Status.PASS,
                f"{len(self.files)} files, all where the format allows them",
            )

    def _key_files(self) -> list[str]:
        """Bundled public keys must be exactly the canonical PEM of the key their name names.

        They are never trust anchors, but nothing else covers their bytes, so
        any change to them is reported rather than ignored.
        """
        problems = []
        for name in sorted(n for n in self.files if n.startswith("evidence/keys/")):
            kid = name.rsplit("/", 1)[1][: -len(".pub")]
            try:
                data = _read_bounded(self.root / name, 65536)
                key = public_key_from_bytes(data, name)
            except (EvidenceError, OSError):
                problems.append(f"{name} is not a readable Ed25519 public key")
                continue
            if key_id(key) != kid:
                problems.append(f"{name} holds key {key_id(key)}, not {kid}")
            elif data != public_key_pem(key):
                problems.append(f"{name} is not in canonical PEM form (altered)")
        return problems

    # Step 3 ---------------------------------------------------------------
    def _tag_manifest(self) -> None:
        title = "Bag tag files"
        if "tagmanifest-sha256.txt" not in self.files:
            self.add("bag.tags", title, Status.FAIL, "tagmanifest-sha256.txt is missing")
            return
        raw = _read_bounded(self.root / "tagmanifest-sha256.txt", MAX_TAG_FILE_BYTES)
        entries, problems = _parse_checksum_file(raw, "tagmanifest-sha256.txt")
        if set(entries) != set(TAG_FILES):
            extra = sorted(set(entries) - set(TAG_FILES))
            missing = sorted(set(TAG_FILES) - set(entries))
            if extra:
                problems.append(f"lists files it must not cover: {', '.join(extra)}")
            if missing:
                problems.append(f"does not cover: {', '.join(missing)}")
        for rel in TAG_FILES:
            if rel not in entries or rel not in self.files:
                continue
            digest, _ = sha256_file(self.root / rel)
            if digest != entries[rel]:
                problems.append(f"{rel}: SHA-256 {digest} differs from the listed {entries[rel]}")
        if "bagit.txt" in self.files:
            declaration = _read_bounded(self.root / "bagit.txt", 4096)
            if not declaration.startswith(b"BagIt-Version: 1.0\n"):
                problems.append("bagit.txt does not declare BagIt 1.0")
        if problems:
            self.add("bag.tags", title, Status.FAIL, "tag files do not match", problems)
        else:
            self.add(
                "bag.tags",
                title,
                Status.PASS,
                "bagit.txt, bag-info.txt, manifest-sha256.txt and manifest.json match",
            )

    def _manifest_bytes(self) -> bytes | None:
        # Only a regular file found by the layout walk is read: a symlink or a
        # FIFO named manifest.json could point anywhere or block forever.
        if MANIFEST_PATH not in self.files:
            self.add(
                "manifest",
                "Manifest",
                Status.FAIL,
                f"{MANIFEST_PATH} is missing or not a regular file",
            )
            return None
        try:
            return _read_bounded(self.root / MANIFEST_PATH, MAX_TAG_FILE_BYTES)
        except PackageError as exc:
            self.add("manifest", "Manifest", Status.FAIL, str(exc))
            return None

    # Step 4 ---------------------------------------------------------------
    def _signatures(self, manifest: bytes) -> None:
        sig_names = sorted(n for n in self.files if n.startswith("evidence/signatures/"))
        if not sig_names:
            self.add("signatures", "Signatures", Status.NOT_CHECKED, "the package is not signed")
            return
        for name in sig_names:
            kid = name.rsplit("/", 1)[1][: -len(".sig")]
            short = kid[:16]
            check_name = f"signature:{kid}"
            title = f"Signature by key {short}"
            sig = _read_bounded(self.root / name, 4096) if self.files[name] <= 4096 else b""
            if len(sig) != SIGNATURE_SIZE:
                self.add(
                    check_name,
                    title,
                    Status.FAIL,
                    f"{name} is {self.files[name]} bytes, not a {SIGNATURE_SIZE}-byte "
                    "Ed25519 signature",
                )
                continue
            trusted = self.keyring.get(kid)
            if trusted is not None:
                if signature_valid(trusted, sig, manifest):
                    self.trusted.append(kid)
                    self.add(
                        check_name, title, Status.PASS, f"valid signature by trusted key {kid}"
                    )
                else:
                    self.add(
                        check_name,
                        title,
                        Status.FAIL,
                        f"signature does NOT match the manifest for trusted key {kid}",
                    )
                continue
            self._untrusted_signature(kid, sig, manifest, check_name, title)

    def _untrusted_signature(
        self, kid: str, sig: bytes, manifest: bytes, check_name: str, title: str
    ) -> None:
        pub_name = f"evidence/keys/{kid}.pub"
        if pub_name not in self.files:
            self.untrusted.append(kid)
            self.add(
                check_name,
                title,
                Status.NOT_CHECKED,
                f"key {kid} is not trusted and its public key is not in the package",
            )
            return
        try:
            pub = public_key_from_bytes(_read_bounded(self.root / pub_name, 65536), pub_name)
        except (EvidenceError, OSError) as exc:
            self.add(check_name, title, Status.FAIL, f"bundled public key unreadable: {exc}")
            return
        if key_id(pub) != kid:
            self.add(
                check_name, title, Status.FAIL, f"{pub_name} holds key {key_id(pub)}, not {kid}"
            )
            return
        if not signature_valid(pub, sig, manifest):
            self.add(
                check_name, title, Status.FAIL, f"signature does NOT match the manifest (key {kid})"
            )
            return
        self.untrusted.append(kid)
        self.add(
            check_name,
            title,
            Status.WARN,
            f"valid signature, but by key {kid}, which you have not said you trust",
        )

    # Step 5 ---------------------------------------------------------------
    def _decode(self, raw: bytes) -> str | None:
        try:
            return decode_strict(raw, what="manifest.json")
        except ManifestError as exc:
            self.add("manifest", "Manifest", Status.FAIL, str(exc))
            return None

    def _manifest(self, text: str, digest: bytes) -> Manifest | None:
        try:
            manifest = Manifest.from_text(text, digest)
        except ManifestError as exc:
            self.add("manifest", "Manifest", Status.FAIL, str(exc))
            return None
        if manifest.package_id != self.root.name:
            self.notes.append(
                f"Note: the directory is named {self.root.name}, the manifest says "
                f"{manifest.package_id} (renaming a package does not change what it proves)."
            )
        self.add(
            "manifest",
            "Manifest",
            Status.PASS,
            f"strictly valid, package {manifest.package_id}, created {manifest.created}",
        )
        return manifest

    # Steps 6 and 7 --------------------------------------------------------
    def _payload(self, manifest: Manifest | None) -> None:
        title = "Payload files"
        problems: list[str] = []
        bag_entries: dict[str, str] = {}
        if "manifest-sha256.txt" in self.files:
            raw = _read_bounded(self.root / "manifest-sha256.txt", MAX_TAG_FILE_BYTES)
            bag_entries, problems = _parse_checksum_file(raw, "manifest-sha256.txt")
        data_files = {n for n in self.files if n.startswith("data/")}
        for rel in sorted(set(bag_entries) - data_files):
            problems.append(f"{rel} is listed but missing")
        for rel in sorted(data_files - set(bag_entries)):
            problems.append(f"{rel} is in data/ but not listed in manifest-sha256.txt")
        for rel in sorted(n for n in bag_entries if not n.startswith("data/")):
            problems.append(f"manifest-sha256.txt lists {rel}, outside data/")

        listed: dict[str, PayloadFile] = {}
        if manifest is not None:
            for entry in manifest.files:
                if entry.path in listed or not safe_relative_path(entry.path):
                    problems.append(
                        f"manifest.json file entry {entry.path!r} is unsafe or repeated"
                    )
                    continue
                listed[entry.path] = entry
            if set(listed) != set(bag_entries):
                problems.append("manifest.json and manifest-sha256.txt list different files")

        warc_path = manifest.warc_path if manifest is not None else None
        actual: dict[str, str] = {}
        for rel in sorted(data_files & set(bag_entries)):
            if rel == warc_path:
                continue  # hashed during the WARC pass: one read of the file
            actual[rel], _ = sha256_file(self.root / rel)

        warc_summary = None
        if manifest is not None and warc_path is not None:
            warc_summary = self._warc(manifest, warc_path, data_files, actual)

        for rel, digest in sorted(actual.items()):
            if bag_entries.get(rel) not in (None, digest):
                problems.append(f"{rel}: SHA-256 {digest} differs from manifest-sha256.txt")
            listed_entry = listed.get(rel)
            if listed_entry is not None:
                if listed_entry.sha256 != digest:
                    problems.append(f"{rel}: SHA-256 differs from manifest.json")
                if listed_entry.size != self.files.get(rel):
                    size = self.files.get(rel)
                    problems.append(f"{rel}: {size} bytes, manifest.json says {listed_entry.size}")
        problems.extend(self._oxum(bag_entries))
        if problems:
            self.add("payload", title, Status.FAIL, "payload files do not match", problems)
        else:
            total = sum(self.files[r] for r in data_files)
            self.add(
                "payload",
                title,
                Status.PASS,
                f"{len(data_files)} file(s), {total} bytes, sizes and SHA-256 match",
            )
        if warc_summary is not None:
            self.checks.append(warc_summary)
        elif manifest is None:
            self.add(
                "warc",
                "WARC records",
                Status.NOT_CHECKED,
                "no valid manifest to check the WARC records against",
            )

    def _oxum(self, bag_entries: dict[str, str]) -> list[str]:
        if "bag-info.txt" not in self.files:
            return []  # reported by the layout check; never read a link or a FIFO
        info = _read_bounded(self.root / "bag-info.txt", MAX_TAG_FILE_BYTES)
        m = re.search(rb"^Payload-Oxum: *(\d+)\.(\d+) *$", info, re.MULTILINE)
        if not m:
            return ["bag-info.txt has no Payload-Oxum"]
        octets = sum(self.files.get(r, 0) for r in bag_entries)
        if (int(m.group(1)), int(m.group(2))) != (octets, len(bag_entries)):
            return [
                f"Payload-Oxum {m.group(1).decode()}.{m.group(2).decode()} "
                f"does not match {octets}.{len(bag_entries)}"
            ]
        return []

    def _warc(
        self, manifest: Manifest, warc_path: str, data_files: set[str], actual: dict[str, str]
    ) -> Check:
        title = "WARC records"
        if warc_path not in data_files:
            return Check("warc", title, Status.FAIL, f"{warc_path} is missing")
        result = check_warc(str(self.root / warc_path), manifest.records)
        actual[warc_path] = result.file_sha256
        details = list(result.problems)
        for rc in result.records:
            details.extend(f"record {rc.index} ({rc.record_id}): {p}" for p in rc.problems)
        missing = len(manifest.records) - result.checked
        if missing > 0:
            details.append(f"{missing} listed record(s) not reached")
        if details:
            return Check(
                "warc",
                title,
                Status.FAIL,
                f"{len(result.records)} of {len(manifest.records)} record(s) do not match",
                tuple(details),
            )
        return Check(
            "warc",
            title,
            Status.PASS,
            f"{result.checked} records: gzip members, offsets, lengths, SHA-256, "
            "record ids and digests all match",
        )

    # Step 8 ---------------------------------------------------------------
    def _timestamps(self, digest: bytes, manifest: Manifest | None) -> None:
        names = sorted(
            n for n in self.files if n.startswith("evidence/timestamps/") and n.endswith(".tsr")
        )
        status_missing = Status.FAIL if self.require_timestamp else Status.NOT_CHECKED
        if not names:
            self.add(
                "timestamps",
                "Trusted timestamps",
                status_missing,
                "the package has no RFC 3161 timestamp token",
            )
            return
        from evidence.timestamping import MAX_TOKEN_BYTES, check_token, request_nonce

        start = _capture_start(manifest)
        verified = 0
        for name in names:
            stem = name.rsplit("/", 1)[1][: -len(".tsr")]
            check_name, title = f"timestamp:{stem}", f"Timestamp {stem}"
            if self.files[name] > MAX_TOKEN_BYTES:
                self.add(check_name, title, Status.FAIL, f"{name} is larger than any real token")
                continue
            details: list[str] = []
            nonce = None
            tsq = name[: -len(".tsr")] + ".tsq"
            if tsq in self.files and self.files[tsq] <= MAX_TOKEN_BYTES:
                nonce = request_nonce(_read_bounded(self.root / tsq, MAX_TOKEN_BYTES))
                if nonce is None:
                    details.append(f"{tsq} cannot be read, so the nonce cannot be audited")
            else:
                details.append("the request (.tsq) is not stored, so the nonce cannot be audited")
            result = check_token(
                _read_bounded(self.root / name, MAX_TOKEN_BYTES),
                digest,
                roots=self.tsa_roots,
                expected_nonce=nonce,
            )
            problems = list(result.problems)
            if tsq in self.files and nonce is None:
                problems.append("the stored request cannot be read")
            when = result.gen_time
            distance = ""
            if when is not None and start is not None:
                slack = _dt.timedelta(seconds=result.accuracy_seconds + 1)
                if when < start - slack:
                    problems.append(
                        f"genTime {when.isoformat()} is before the capture began "
                        f"({start.isoformat()})"
                    )
                distance = f", {_human(when - start)} after the capture began"
            if problems:
                self.add(check_name, title, Status.FAIL, problems[0], [*problems[1:], *details])
            elif not self.tsa_roots:
                self.add(
                    check_name,
                    title,
                    Status.NOT_CHECKED,
                    f"imprint matches, genTime {when}; signature and chain NOT checked "
                    "(no --tsa-ca root given)",
                    details,
                )
            else:
                verified += 1
                self.add(
                    check_name,
                    title,
                    Status.PASS,
                    f"the manifest existed no later than {when} (UTC){distance}; "
                    f"signed by {result.tsa_subject}, chained to a root you trust",
                    details,
                )
        self.notes.append(
            "A timestamp proves only that manifest.json existed no later than the token's "
            "genTime. It does not prove when the page was captured before that, who captured "
            "it, or that what the page said was true."
        )
        if self.require_timestamp and not verified:
            self.add(
                "timestamps",
                "Trusted timestamps",
                Status.FAIL,
                "a verified timestamp is required (--require-timestamp) and none verified",
            )

    def _custody(self, digest: bytes, manifest: Manifest | None) -> None:
        title = "Chain of custody"
        if CUSTODY_PATH not in self.files:
            declared = manifest is not None and manifest.custody_log == CUSTODY_PATH
            if declared:
                self.add(
                    "custody",
                    title,
                    Status.FAIL,
                    "the manifest says the package has a custody log, but it is missing",
                )
            else:
                status = Status.FAIL if self.custody_anchors else Status.NOT_CHECKED
                self.add("custody", title, status, "the package has no custody log")
            return
        try:
            lines = read_events(self.root)
        except PackageError as exc:
            self.add("custody", title, Status.FAIL, str(exc))
            return
        result = check_log(lines, digest, self.keyring, self.root)
        present = {hashlib.sha256(line).hexdigest() for line in lines}
        missing = [a for a in self.custody_anchors if a not in present]
        if missing:
            self.add(
                "custody",
                title,
                Status.FAIL,
                f"{len(missing)} anchored event(s) missing: the log was cut or replaced",
                [f"no event has SHA-256 {a}" for a in missing] + list(result.problems),
            )
            return
        if result.problems:
            self.add(
                "custody",
                title,
                Status.FAIL,
                f"the custody log is broken ({len(result.problems)} problem(s))",
                result.problems,
            )
            return
        details = [
            f"{e.get('seq')}. {e.get('time')} {e.get('event')}"
            + (f" by {e.get('actor')}" if e.get("actor") else "")
            + (f", signed by key {str(e.get('key_id'))[:16]}" if e.get("key_id") else "")
            + (f": {e.get('note')}" if e.get("note") else "")
            for e in result.events
        ]
        untrusted = sorted(set(result.untrusted_signers))
        if untrusted:
            details.append(
                "events signed by keys you have not said you trust: "
                + ", ".join(k[:16] for k in untrusted)
            )
        self.add(
            "custody",
            title,
            Status.PASS,
            f"{len(result.events)} event(s), every link intact, times in order; "
            f"{len(set(result.trusted_signers))} trusted signer(s)",
            details,
        )

    # Step 9 ---------------------------------------------------------------
    def _report(self, manifest: Manifest | None) -> Report:
        if any(c.status is Status.FAIL for c in self.checks):
            outcome = Outcome.FAILED
        elif self.trusted:
            outcome = Outcome.VERIFIED
        else:
            outcome = Outcome.UNTRUSTED
        if outcome is not Outcome.VERIFIED and not len(self.keyring):
            self.notes.append("No trusted keys were given (--trust), so no signature can count.")
        return Report(
            package=str(self.path),
            checks=tuple(self.checks),
            outcome=outcome,
            trusted_signers=tuple(self.trusted),
            untrusted_signers=tuple(self.untrusted),
            package_id=manifest.package_id if manifest is not None else None,
            notes=tuple(self.notes),
        )
