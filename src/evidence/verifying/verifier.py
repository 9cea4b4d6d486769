"""Verify an evidence package against a caller-supplied trust policy.

Steps (tagged ``# Step N`` where they happen):

1. The path is a finished package (not a temporary directory); trust
   sources given as paths lie outside it.
2. Layout: every entry is a regular file (no symlinks, devices, FIFOs or
   empty directories) with a safe name in a place the format allows; nothing
   else under ``data/`` or ``evidence/``. Extra files at the package root are
   outside the seal: named in a WARN check, the verdict unchanged.
3. Tag manifest: lists exactly the tag files, each with the right SHA-256
   (sizes checked against the limits before anything is hashed).
4. Signatures over the exact manifest bytes, before those bytes are parsed:
   each counts only if its key is in the caller's keyring.
5. Manifest: strict parse (duplicate keys, NaN, bad UTF-8, unknown format,
   fields of the wrong type fail); then the four BagIt files must be byte for
   byte what the manifest implies (:func:`evidence.seal.expected_bag_files`),
   so nothing a BagIt viewer shows is unsealed.
6. Payload: ``manifest-sha256.txt`` lists exactly the files under ``data/``;
   every file matches it and the manifest's file list (size first, then
   SHA-256: an unsigned list never makes us hash a file of the wrong size);
   Payload-Oxum matches.
7. WARC: member by member against the manifest's record inventory (only when
   its size is the one the manifest gives); then every browser artefact,
   browser log and media entry must name a record in it and state that
   record's target URI, block size and block SHA-256.
8. Timestamps (:mod:`evidence.verifying.timestamps`): each RFC 3161 token's
   imprint, nonce, signature and chain to a TSA root the caller gave (judged
   at genTime), and genTime not before the capture began.
9. Custody (:mod:`evidence.verifying.custody`): the log's links, order,
   times and signatures; a declared log must exist and start with the
   capture's own ``captured`` event; the caller's anchors must be in it.
10. Outcome: any FAIL -> failed; else a valid trusted signature -> verified;
    else intact but untrusted. NOT CHECKED never counts as a pass.

Nothing here raises for bad package content; :func:`verify_strict` raises.
Every read is of a regular file found by the step-2 walk, bounded by
:class:`~evidence.verifying.policy.VerifyLimits`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
import typing
from pathlib import Path

import attrs

from evidence.clock import now_iso, parse_iso
from evidence.display import safe
from evidence.errors import EvidenceError, ManifestError, PackageError, VerificationError
from evidence.keys import Keyring, key_id, public_key_from_bytes, public_key_pem
from evidence.manifest import Manifest, PayloadFile, decode_strict
from evidence.package import (
    ATTACHMENT_DIRS,
    ATTACHMENT_FILES,
    MANIFEST_PATH,
    TAG_FILES,
    read_regular_file,
    require_package,
    safe_relative_path,
    sha256_file,
)
from evidence.seal import expected_bag_files
from evidence.signing import SIGNATURE_SIZE, signature_valid
from evidence.verifying.custody import custody_check
from evidence.verifying.facts import ArtefactEntry, ManifestFacts, artefact_entries, manifest_facts
from evidence.verifying.policy import (
    DEFAULT_LIMITS,
    TrustInput,
    VerifyLimits,
    keyring_for,
    tsa_roots_for,
)
from evidence.verifying.policy import custody_anchors as _check_anchors
from evidence.verifying.report import Check, Finding, Outcome, Report, Status
from evidence.verifying.timestamps import timestamp_checks
from evidence.warc import check_warc

if typing.TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = ["TrustInput", "verify", "verify_strict"]

log = logging.getLogger(__name__)

_ROOT_FILES = {"bagit.txt", "bag-info.txt", "manifest-sha256.txt", "tagmanifest-sha256.txt"}
# Names RFC 8493 gives meaning to at the top of a bag, beyond the ones we write.
_BAGIT_RESERVED = re.compile(r"^(fetch\.txt|(tag)?manifest-[A-Za-z0-9]+\.txt)$", re.IGNORECASE)
# Directories whose files may all be removed (a package whose last signature
# was deleted is simply unsigned), so an empty one is not a defect.
_MAY_BE_EMPTY = frozenset(ATTACHMENT_DIRS)
# Exactly what we (and bagit-python) write: lowercase hex, two spaces, a path.
_MANIFEST_LINE = re.compile(r"^([0-9a-f]{64})  (\S.*)$")


def software_version() -> str:
    """The version of this software, for "verified with evidence X" in reports."""
    import evidence

    return str(evidence.__version__)


def verify(
    path: str | os.PathLike[str],
    *,
    trust: TrustInput,
    tsa_roots: typing.Iterable[x509.Certificate | str | os.PathLike[str]] = (),
    require_timestamp: bool = False,
    custody_anchors: typing.Iterable[str] = (),
    limits: VerifyLimits = DEFAULT_LIMITS,
) -> Report:
    """Check a package and return a report; never raises for bad package content.

    Args:
        path: the package directory.
        trust: the keys whose signatures count, as a :class:`Keyring` or
            paths to public keys / directories of keys (outside the package).
            Required: pass an empty list to check integrity only (the best
            outcome is then "intact, trust not established").
        tsa_roots: root certificates (or PEM/DER files outside the package) of
            time-stamping authorities you trust. Without them, tokens are
            parsed and their imprint checked, but their signature is NOT CHECKED.
        require_timestamp: fail unless at least one token fully verifies.
        custody_anchors: SHA-256 hex digests of custody events obtained
            outside the package; each must be in the log, so events cut from
            its end before an anchor are detected.
        limits: caps on everything a package can make the verifier read or report.

    Raises:
        UsageError: a trust source lies inside the package, or an anchor is
            not 64 hexadecimal digits (caller errors).
        KeyFileError: a trusted key path cannot be loaded (a caller error).
        TimestampError: a TSA root file cannot be loaded (a caller error).
    """
    anchors = _check_anchors(custody_anchors)
    keyring = keyring_for(path, trust)
    roots = tsa_roots_for(path, tsa_roots)
    return _Verifier(Path(path), keyring, roots, require_timestamp, anchors, limits).run()


def verify_strict(
    path: str | os.PathLike[str],
    *,
    trust: TrustInput,
    tsa_roots: typing.Iterable[x509.Certificate | str | os.PathLike[str]] = (),
    require_timestamp: bool = False,
    custody_anchors: typing.Iterable[str] = (),
    limits: VerifyLimits = DEFAULT_LIMITS,
) -> Report:
    """Like :func:`verify`, but raise :class:`VerificationError` unless VERIFIED."""
    report = verify(
        path,
        trust=trust,
        tsa_roots=tsa_roots,
        require_timestamp=require_timestamp,
        custody_anchors=custody_anchors,
        limits=limits,
    )
    if not report.ok:
        raise VerificationError(f"{path}: {report.verdict}", report)
    return report


def _parse_checksum_file(raw: bytes, name: str) -> tuple[dict[str, str], list[Finding]]:
    """Parse ``<sha256>  <path>`` lines. Returns (path -> digest, problems)."""
    entries: dict[str, str] = {}
    problems: list[Finding] = []
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return {}, [Finding("is not valid UTF-8", name)]
    if text and not text.endswith("\n"):
        problems.append(Finding("does not end with a newline", name))
    for number, line in enumerate(text.split("\n")[:-1] if text else [], 1):
        m = _MANIFEST_LINE.match(line)
        if not m:
            problems.append(Finding(f"line {number} is malformed", name))
            continue
        digest, rel = m.group(1).lower(), m.group(2)
        if not safe_relative_path(rel):
            problems.append(Finding(f"line {number} names an unsafe path {rel!r}", name))
            continue
        if rel in entries:
            problems.append(Finding(f"lists {rel} twice", name))
            continue
        entries[rel] = digest
    return entries, problems


class _Verifier:
    def __init__(
        self,
        path: Path,
        keyring: Keyring,
        tsa_roots: list[x509.Certificate],
        require_timestamp: bool,
        custody_anchors: list[str],
        limits: VerifyLimits,
    ) -> None:
        self.path = path
        self.keyring = keyring
        self.tsa_roots = tsa_roots
        self.require_timestamp = require_timestamp
        self.custody_anchors = custody_anchors
        self.limits = limits
        self.checks: list[Check] = []
        self.files: dict[str, int] = {}  # relative path -> size, regular files only
        self.bundled: dict[str, Ed25519PublicKey] = {}  # canonical bundled keys by id
        self.trusted: list[str] = []
        self.untrusted: list[str] = []
        self.valid_untrusted: list[str] = []
        self.notes: list[str] = []
        self.artefacts: Check | None = None  # step 7's artefact entries, when any
        self.verified_at = now_iso()
        self.manifest_sha256: str | None = None
        self.timestamp_sha256: dict[str, str] = {}

    def add(
        self,
        name: str,
        title: str,
        status: Status,
        summary: str,
        details: typing.Iterable[Finding | str] = (),
    ) -> None:
        self.append(Check(name, title, status, summary, tuple(details)))

    def append(self, check: Check) -> None:
        """Keep a check, listing at most ``details_per_check`` findings."""
        cap = self.limits.details_per_check
        if len(check.details) > cap:
            check = attrs.evolve(
                check,
                details=check.details[:cap],
                not_listed=check.not_listed + len(check.details) - cap,
            )
        self.checks.append(check)

    def run(self) -> Report:
        # Step 1: a finished package.
        try:
            root = require_package(self.path)
        except PackageError as exc:
            return Report(
                package=str(self.path),
                checks=(Check("package", "Package", Status.FAIL, str(exc)),),
                outcome=Outcome.NOT_A_PACKAGE,
                verified_at=self.verified_at,
                software_version=software_version(),
            )
        self.root = root
        manifest: Manifest | None = None
        facts: ManifestFacts | None = None
        try:
            self._layout()
            self._tag_manifest()
            raw = self._manifest_bytes()
            digest = None
            if raw is not None:
                # Signatures are checked on the exact bytes before they are parsed.
                self._signatures(raw)
                digest = hashlib.sha256(raw).digest()
                self.manifest_sha256 = digest.hex()
                text = self._decode(raw)
                del raw  # a 30 MB manifest need not be held twice while parsing
                if text is not None:
                    manifest = self._manifest(text, digest)
                    del text
            if manifest is not None:
                self._sealed_bag_files(manifest)
            facts = manifest_facts(manifest) if manifest is not None else None
            self._payload(manifest)
            if digest is not None:
                # Step 8
                checks, notes = timestamp_checks(
                    self.root,
                    self.files,
                    digest,
                    tsa_roots=self.tsa_roots,
                    require_timestamp=self.require_timestamp,
                    capture_start=facts.capture_start if facts else None,
                    limits=self.limits,
                    checked=self.timestamp_sha256,
                )
                for check in checks:
                    self.append(check)
                self.notes.extend(notes)
                # Step 9
                self.append(
                    custody_check(
                        self.root,
                        self.files,
                        digest,
                        keyring=self.keyring,
                        bundled=self.bundled,
                        declared=facts.custody_log if facts else None,
                        manifest_created=facts.created if facts else None,
                        manifest_signers=set(self.trusted) | set(self.valid_untrusted),
                        trusted_manifest_signers=set(self.trusted),
                        now=parse_iso(self.verified_at),
                        anchors=self.custody_anchors,
                        limits=self.limits,
                    )
                )
        except (OSError, EvidenceError) as exc:  # an unreadable file, mid-way
            self.add("io", "Reading the package", Status.FAIL, f"cannot read the package: {exc}")
        except Exception as exc:  # fail closed: a defect in us must not read as a pass
            # Debug level: a traceback on a user's terminal helps no one, and
            # the path is shown safely like every other package string.
            log.debug("verification of %s stopped", safe(str(self.path)), exc_info=True)
            self.add(
                "io",
                "Reading the package",
                Status.FAIL,
                f"verification could not finish ({type(exc).__name__})",
            )
        return self._report(manifest, facts)

    # Step 2 ---------------------------------------------------------------
    def _layout(self) -> None:
        problems: list[Finding] = []
        extra: list[str] = []
        count = 0
        limits = self.limits

        def walk(directory: Path, rel: str, depth: int) -> None:
            nonlocal count
            if depth > limits.depth:
                problems.append(Finding("directories nested too deeply", rel))
                return
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
            if not entries and rel not in _MAY_BE_EMPTY:
                problems.append(Finding("is an empty directory (not part of the format)", rel))
            for entry in entries:
                count += 1
                if count > limits.files:
                    problems.append(Finding(f"more than {limits.files} entries; stopped looking"))
                    return
                name = f"{rel}/{entry.name}" if rel else entry.name
                if not safe_relative_path(name) or not name.isprintable():
                    problems.append(Finding(f"unsafe file name {name!r}"))
                    continue
                st = os.lstat(entry.path)
                if stat.S_ISLNK(st.st_mode):
                    problems.append(Finding("is a symbolic link (not allowed in a package)", name))
                elif stat.S_ISDIR(st.st_mode):
                    walk(Path(entry.path), name, depth + 1)
                elif stat.S_ISREG(st.st_mode):
                    self.files[name] = st.st_size
                else:
                    problems.append(Finding("is not a regular file", name))

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
            if not parent and _BAGIT_RESERVED.match(name):
                # BagIt tools act on these (fetch.txt makes them download into
                # data/; another manifest makes bagit.py call the bag
                # incomplete): never a harmless extra.
                problems.append(
                    Finding("is a BagIt file that BagIt tools act on; not allowed here", name)
                )
                continue
            if not parent:
                # A .DS_Store, or a key or certificate copied beside the bag:
                # outside the seal, so nothing a reader relies on.
                extra.append(name)
                continue
            problems.append(Finding("is not allowed here by the package format", name))
        for name in extra:
            del self.files[name]  # never read, hashed or listed by a later step
        for required in (*_ROOT_FILES, MANIFEST_PATH):
            if required not in self.files:
                problems.append(Finding("is missing", required))
        problems.extend(self._key_files())
        for name in self.files:
            if name.startswith("evidence/signatures/") and name.endswith(".sig"):
                kid = name.rsplit("/", 1)[1][: -len(".sig")]
                if f"evidence/keys/{kid}.pub" not in self.files:
                    problems.append(Finding(f"has no evidence/keys/{kid}.pub beside it", name))
        for name in self.files:
            if name.startswith("evidence/timestamps/") and name.endswith(".tsq"):
                if name[: -len(".tsq")] + ".tsr" not in self.files:
                    problems.append(Finding("is a timestamp request without its token", name))
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
        if extra:
            self.add(
                "extra-files",
                "Files outside the package format",
                Status.WARN,
                f"{len(extra)} file(s) at the top of the package are not part of the format "
                "and not covered by the signature; they were ignored",
                [Finding("not covered by the signature (ignored)", name) for name in extra],
            )

    def _key_files(self) -> list[Finding]:
        """Bundled public keys must be exactly the canonical PEM of the key their name names.

        They are never trust anchors, but nothing else covers their bytes, so
        any change to them is reported rather than ignored. Good ones are
        kept by id: the only keys a custody signature may be checked with
        besides the caller's.
        """
        problems = []
        for name in sorted(n for n in self.files if n.startswith("evidence/keys/")):
            kid = name.rsplit("/", 1)[1][: -len(".pub")]
            if self.files[name] > self.limits.key_file_bytes:
                problems.append(Finding("is larger than any public key file", name))
                continue
            try:
                data = read_regular_file(self.root / name, self.limits.key_file_bytes)
                key = public_key_from_bytes(data, name)
            except (EvidenceError, OSError):
                problems.append(Finding("is not a readable Ed25519 public key", name))
                continue
            if key_id(key) != kid:
                problems.append(
                    Finding("holds a different key", name, expected=kid, found=key_id(key))
                )
            elif data != public_key_pem(key):
                problems.append(Finding("is not in canonical PEM form (altered)", name))
            else:
                self.bundled[kid] = key
        return problems

    # Step 3 ---------------------------------------------------------------
    def _tag_manifest(self) -> None:
        title = "Bag tag files"
        if "tagmanifest-sha256.txt" not in self.files:
            self.add("bag.tags", title, Status.FAIL, "tagmanifest-sha256.txt is missing")
            return
        limit = self.limits.tag_file_bytes
        if self.files["tagmanifest-sha256.txt"] > limit:
            self.add(
                "bag.tags", title, Status.FAIL, f"tagmanifest-sha256.txt is over {limit} bytes"
            )
            return
        raw = read_regular_file(self.root / "tagmanifest-sha256.txt", limit)
        entries, problems = _parse_checksum_file(raw, "tagmanifest-sha256.txt")
        if set(entries) != set(TAG_FILES):
            extra = sorted(set(entries) - set(TAG_FILES))
            missing = sorted(set(TAG_FILES) - set(entries))
            if extra:
                problems.append(
                    Finding(
                        f"lists files it must not cover: {', '.join(extra)}",
                        "tagmanifest-sha256.txt",
                    )
                )
            if missing:
                problems.append(
                    Finding(f"does not cover: {', '.join(missing)}", "tagmanifest-sha256.txt")
                )
        for rel in TAG_FILES:
            if rel not in entries or rel not in self.files:
                continue
            cap = self.limits.manifest_bytes if rel == MANIFEST_PATH else limit
            if self.files[rel] > cap:
                # Never hash a file no step would accept (a sparse 1 TiB manifest).
                problems.append(Finding(f"is over {cap} bytes; not hashed", rel))
                continue
            digest, _ = sha256_file(self.root / rel)
            if digest != entries[rel]:
                problems.append(
                    Finding(
                        "SHA-256 differs from the listed one",
                        rel,
                        expected=entries[rel],
                        found=digest,
                    )
                )
        if "bagit.txt" in self.files:
            if self.files["bagit.txt"] > self.limits.bagit_txt_bytes:
                problems.append(Finding("is larger than any BagIt declaration", "bagit.txt"))
            else:
                declaration = read_regular_file(
                    self.root / "bagit.txt", self.limits.bagit_txt_bytes
                )
                if not declaration.startswith(b"BagIt-Version: 1.0\n"):
                    problems.append(Finding("does not declare BagIt 1.0", "bagit.txt"))
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
        limit = self.limits.manifest_bytes
        if self.files[MANIFEST_PATH] > limit:
            self.add(
                "manifest",
                "Manifest",
                Status.FAIL,
                f"manifest.json is larger than {limit} bytes (the limit); not read",
            )
            return None
        try:
            return read_regular_file(self.root / MANIFEST_PATH, limit)
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
            check_name = f"signature:{kid}"
            title = f"Signature by key {kid}"
            size = self.files[name]
            sig = (
                read_regular_file(self.root / name, SIGNATURE_SIZE)
                if size == SIGNATURE_SIZE
                else b""
            )
            if len(sig) != SIGNATURE_SIZE:
                self.add(
                    check_name,
                    title,
                    Status.FAIL,
                    f"{name} is {size} bytes, not a {SIGNATURE_SIZE}-byte Ed25519 signature",
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
        pub = self.bundled.get(kid)
        if pub is None:  # unreadable, altered or another key: reported by the layout check
            self.add(
                check_name, title, Status.FAIL, f"the bundled public key {pub_name} is unusable"
            )
            return
        if not signature_valid(pub, sig, manifest):
            self.add(
                check_name, title, Status.FAIL, f"signature does NOT match the manifest (key {kid})"
            )
            return
        self.untrusted.append(kid)
        self.valid_untrusted.append(kid)
        self.add(
            check_name,
            title,
            Status.WARN,
            "valid signature, but by a key you have not said you trust",
        )

    # Step 5 ---------------------------------------------------------------
    def _decode(self, raw: bytes) -> str | None:
        try:
            return decode_strict(raw, what="manifest.json", max_bytes=self.limits.manifest_bytes)
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

    # Step 5b --------------------------------------------------------------
    def _sealed_bag_files(self, manifest: Manifest) -> None:
        """The bag files must be exactly what the signed manifest implies.

        BagIt tools show bag-info.txt (dates, identifiers, the organisation)
        to readers, and the tag manifest can be recomputed by anyone; only a
        byte-for-byte comparison with what the manifest implies seals them.
        """
        title = "Bag files sealed by the manifest"
        problems: list[Finding] = []
        for rel, expected in expected_bag_files(manifest).items():
            size = self.files.get(rel)
            if size is None:
                continue  # reported by the layout check
            if size != len(expected):
                problems.append(
                    Finding(
                        "differs from what the signed manifest implies (size)",
                        rel,
                        expected=len(expected),
                        found=size,
                    )
                )
                continue
            if read_regular_file(self.root / rel, len(expected)) != expected:
                problems.append(
                    Finding("differs from what the signed manifest implies (content)", rel)
                )
        if problems:
            self.add(
                "bag.sealed",
                title,
                Status.FAIL,
                "a bag file says something the signed manifest does not",
                problems,
            )
        else:
            self.add(
                "bag.sealed",
                title,
                Status.PASS,
                "bagit.txt, bag-info.txt and both checksum lists are exactly what "
                "manifest.json implies",
            )

    # Steps 6 and 7 --------------------------------------------------------
    def _payload(self, manifest: Manifest | None) -> None:
        title = "Payload files"
        problems: list[Finding] = []
        bag_entries: dict[str, str] = {}
        if "manifest-sha256.txt" in self.files:
            limit = self.limits.tag_file_bytes
            if self.files["manifest-sha256.txt"] > limit:
                problems.append(Finding(f"is over {limit} bytes; not read", "manifest-sha256.txt"))
            else:
                raw = read_regular_file(self.root / "manifest-sha256.txt", limit)
                bag_entries, more = _parse_checksum_file(raw, "manifest-sha256.txt")
                problems.extend(more)
        data_files = {n for n in self.files if n.startswith("data/")}
        for rel in sorted(set(bag_entries) - data_files):
            problems.append(Finding("is listed in manifest-sha256.txt but missing", rel))
        for rel in sorted(data_files - set(bag_entries)):
            problems.append(Finding("is in data/ but not listed in manifest-sha256.txt", rel))
        for rel in sorted(n for n in bag_entries if not n.startswith("data/")):
            problems.append(Finding("is listed in manifest-sha256.txt, outside data/", rel))

        listed: dict[str, PayloadFile] = {}
        if manifest is not None:
            for entry in manifest.files:
                if entry.path in listed or not safe_relative_path(entry.path):
                    problems.append(
                        Finding("manifest.json file entry is unsafe or repeated", repr(entry.path))
                    )
                    continue
                listed[entry.path] = entry
            if set(listed) != set(bag_entries):
                problems.append(
                    Finding("manifest.json and manifest-sha256.txt list different files")
                )

        warc_path = manifest.warc_path if manifest is not None else None
        actual: dict[str, str] = {}
        for rel in sorted(data_files & set(bag_entries)):
            known = listed.get(rel)
            if rel == warc_path and known is not None and known.size == self.files[rel]:
                continue  # hashed during the WARC pass: one read of the file
            if known is None:
                # Only the signed file list may make us read a file: the
                # unsigned bag manifest could name a sparse terabyte.
                if manifest is not None:
                    problems.append(Finding("is not in manifest.json's file list; not hashed", rel))
                continue
            if known.size != self.files[rel]:
                problems.append(
                    Finding(
                        "size differs from manifest.json; not hashed",
                        rel,
                        expected=known.size,
                        found=self.files[rel],
                    )
                )
                continue
            actual[rel], _ = sha256_file(self.root / rel)

        warc_summary = None
        if manifest is not None and warc_path is not None:
            warc_summary = self._warc(manifest, warc_path, data_files, listed, actual)

        for rel, digest in sorted(actual.items()):
            if bag_entries.get(rel) not in (None, digest):
                problems.append(
                    Finding(
                        "SHA-256 differs from manifest-sha256.txt",
                        rel,
                        expected=bag_entries.get(rel),
                        found=digest,
                    )
                )
            known = listed.get(rel)
            if known is not None:
                if known.sha256 != digest:
                    problems.append(
                        Finding(
                            "SHA-256 differs from manifest.json",
                            rel,
                            expected=known.sha256,
                            found=digest,
                        )
                    )
                if known.size != self.files.get(rel):
                    problems.append(
                        Finding(
                            "size differs from manifest.json",
                            rel,
                            expected=known.size,
                            found=self.files.get(rel),
                        )
                    )
        problems.extend(self._oxum(bag_entries))
        if problems:
            self.add("payload", title, Status.FAIL, "payload files do not match", problems)
        elif manifest is None:
            self.add(
                "payload",
                title,
                Status.NOT_CHECKED,
                "no valid manifest to check the payload files against",
            )
        else:
            total = sum(self.files[r] for r in data_files)
            self.add(
                "payload",
                title,
                Status.PASS,
                f"{len(data_files)} file(s), {total} bytes, sizes and SHA-256 match",
            )
        if warc_summary is not None:
            self.append(warc_summary)
            if self.artefacts is not None:
                self.append(self.artefacts)
        elif manifest is None:
            self.add(
                "warc",
                "WARC records",
                Status.NOT_CHECKED,
                "no valid manifest to check the WARC records against",
            )

    def _oxum(self, bag_entries: dict[str, str]) -> list[Finding]:
        if "bag-info.txt" not in self.files:
            return []  # reported by the layout check; never read a link or a FIFO
        limit = self.limits.tag_file_bytes
        if self.files["bag-info.txt"] > limit:
            return [Finding(f"is over {limit} bytes; not read", "bag-info.txt")]
        info = read_regular_file(self.root / "bag-info.txt", limit)
        m = re.search(rb"^Payload-Oxum: *(\d+)\.(\d+) *$", info, re.MULTILINE)
        if not m:
            return [Finding("has no Payload-Oxum", "bag-info.txt")]
        octets = sum(self.files.get(r, 0) for r in bag_entries)
        found = f"{m.group(1).decode()}.{m.group(2).decode()}"
        if (int(m.group(1)), int(m.group(2))) != (octets, len(bag_entries)):
            return [
                Finding(
                    "Payload-Oxum does not match the payload",
                    "bag-info.txt",
                    expected=f"{octets}.{len(bag_entries)}",
                    found=found,
                )
            ]
        return []

    def _warc(
        self,
        manifest: Manifest,
        warc_path: str,
        data_files: set[str],
        listed: dict[str, PayloadFile],
        actual: dict[str, str],
    ) -> Check:
        title = "WARC records"
        if warc_path not in data_files:
            return Check("warc", title, Status.FAIL, f"{warc_path} is missing")
        entry = listed.get(warc_path)
        size = self.files[warc_path]
        if entry is None or entry.size != size:
            # Reading an appended (or sparse) tail is pointless: it is already wrong.
            return Check(
                "warc",
                title,
                Status.FAIL,
                "the WARC file's size is not the one manifest.json gives; not read",
                [
                    Finding(
                        "size differs from manifest.json",
                        warc_path,
                        expected=entry.size if entry is not None else None,
                        found=size,
                    )
                ],
            )
        entries = artefact_entries(manifest)
        result = check_warc(
            str(self.root / warc_path), manifest.records, {e.record for e in entries}
        )
        self.artefacts = _artefact_check(entries, manifest, result.blocks) if entries else None
        actual[warc_path] = result.file_sha256
        details = [Finding(p, warc_path) for p in result.problems]
        for rc in result.records:
            details.extend(
                Finding(
                    f"record {rc.index}: {p}",
                    warc_path,
                    record_id=rc.record_id,
                    offset=_offset(manifest, rc.index),
                )
                for p in rc.problems
            )
        missing = len(manifest.records) - result.checked
        if missing > 0:
            details.append(Finding(f"{missing} listed record(s) not reached", warc_path))
        if details:
            return Check(
                "warc",
                title,
                Status.FAIL,
                f"{len(result.records)} of {len(manifest.records)} record(s) do not match",
                details,
            )
        return Check(
            "warc",
            title,
            Status.PASS,
            f"{result.checked} records: gzip members, offsets, lengths, SHA-256, "
            "record ids and digests all match",
        )

    # Step 10 --------------------------------------------------------------
    def _report(self, manifest: Manifest | None, facts: ManifestFacts | None) -> Report:
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
            subject=facts.subject if facts is not None else None,
            valid_untrusted_signers=tuple(self.valid_untrusted),
            verified_at=self.verified_at,
            software_version=software_version(),
            manifest_sha256=self.manifest_sha256,
            timestamp_sha256=dict(self.timestamp_sha256),
        )


def _artefact_check(
    entries: typing.Sequence[ArtefactEntry],
    manifest: Manifest,
    blocks: typing.Mapping[str, tuple[int, tuple[str, bytes] | None]],
) -> Check:
    """Step 7: each artefact and media entry states its record's target URI,
    block size and block SHA-256 (the WARC step checked those against the bytes)."""
    targets = {r.id: r.target_uri for r in manifest.records}
    problems: list[Finding] = []
    for e in entries:
        if e.record not in targets or e.record not in blocks:
            problems.append(Finding(f"{e.label}: its record is not in the WARC", e.record))
            continue
        size, digest = blocks[e.record]
        stated = digest[1].hex() if digest is not None and digest[0] == "sha256" else None
        for what, expected, found in (
            ("target uri differs from the record's", targets[e.record], e.target_uri),
            ("size differs from the record's block", size, e.size),
            ("sha256 differs from the record's block digest", stated, e.sha256),
        ):
            if expected != found:
                problems.append(
                    Finding(
                        f"{e.label}: {what}", record_id=e.record, expected=expected, found=found
                    )
                )
    title = "Artefact and media entries"
    if problems:
        return Check(
            "artefacts",
            title,
            Status.FAIL,
            f"{len(problems)} manifest entr(ies) do not describe their record",
            problems,
        )
    return Check(
        "artefacts",
        title,
        Status.PASS,
        f"{len(entries)} entr(ies): record, target URI, size and SHA-256 match the WARC",
    )


def _offset(manifest: Manifest, index: int) -> int | None:
    try:
        return int(manifest.records[index].offset)
    except (IndexError, TypeError):
        return None
