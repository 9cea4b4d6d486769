"""What a court report says about one package, gathered after verification.

The verification :class:`~evidence.verifying.Report` says what holds; this
module adds what the report shows beside it: the manifest's claims, the
custody events, the timestamp authority's time, the signers' names from the
caller's key files, the screenshot, and the proof files to attach to the PDF.

Everything is read the way the verifier reads it (regular files only, never
through a link, bounded by :class:`~evidence.verifying.policy.VerifyLimits`),
and nothing here raises for bad package content: what cannot be read is
named in :attr:`PackageFacts.problems` and left out. Values stay raw here;
the HTML layer passes every one of them through :func:`evidence.display.safe`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import typing
import zlib
from pathlib import Path

import attrs

from evidence.custody import CUSTODY_PATH, CustodyEvent, parse_log
from evidence.errors import EvidenceError
from evidence.manifest import Manifest
from evidence.package import MANIFEST_PATH, read_package_file, regular_file_names
from evidence.signing import SIGNATURE_SIZE
from evidence.verifying.policy import DEFAULT_LIMITS, VerifyLimits
from evidence.verifying.report import Report, Status

if typing.TYPE_CHECKING:
    from cryptography import x509

__all__ = [
    "MAX_SCREENSHOT_BYTES",
    "Attachment",
    "CustodyRow",
    "MediaDetails",
    "PackageFacts",
    "Signer",
    "TimestampInfo",
    "gather",
    "screenshot_from_warc",
]

log = logging.getLogger(__name__)

# A full-page screenshot of a long page is a few MB; this is far beyond that
# and still bounded (the image is decoded by the PDF renderer).
MAX_SCREENSHOT_BYTES = 32 * 1024 * 1024
# Larger images are refused rather than handed to an image decoder.
MAX_SCREENSHOT_PIXELS = 20_000 * 60_000
# Files attached from one directory of a package (signatures, keys, timestamps).
MAX_ATTACHMENTS_PER_DIR = 64
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")
_PNG = b"\x89PNG\r\n\x1a\n"
# A guess from the name would call a raw Ed25519 signature (.sig) a PGP signature.
_MEDIA_TYPES = {
    ".json": "application/json",
    ".jsonl": "application/jsonl",
    ".sig": "application/octet-stream",
    ".pub": "application/x-pem-file",
    ".tsr": "application/timestamp-reply",
    ".tsq": "application/timestamp-query",
    ".png": "image/png",
    ".jpg": "image/jpeg",
}
_JPEG = b"\xff\xd8\xff"
# A media item's info JSON is at most 256 KiB as written (capturing/media.py);
# a package's claim of more is refused rather than read.
MAX_INFO_JSON_BYTES = 1024 * 1024
# Info JSONs read per package (a capture stores at most 20 items).
MAX_MEDIA_DETAILS = 50
# The fields of the info JSON the report shows beside an item, in this order.
MEDIA_DETAIL_FIELDS = ("uploader", "channel", "duration", "upload_date", "webpage_url")


@attrs.frozen
class Attachment:
    """One proof file to embed in the PDF, byte for byte as the package holds it."""

    name: str  # the name inside the PDF: ASCII, no "/" or spaces, unique in the report
    source: str  # package-relative path, or a description for generated files
    data: bytes
    description: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def media_type(self) -> str:
        """The MIME type recorded for the embedded file (by suffix; raw bytes otherwise)."""
        for suffix, media in _MEDIA_TYPES.items():
            if self.name.endswith(suffix):
                return media
        return "application/octet-stream"


@attrs.frozen
class Signer:
    """A key whose signature over the manifest is valid."""

    key_id: str
    trusted: bool
    name: str | None  # the file name of the caller's key, when known


@attrs.frozen
class TimestampInfo:
    """One RFC 3161 token: its genTime and TSA, and the verification check's status."""

    name: str
    status: Status
    gen_time: str | None
    tsa: str | None


@attrs.frozen
class CustodyRow:
    """One custody line for the table; ``event`` is None when the line is unreadable."""

    number: int
    event: CustodyEvent | None
    sha256: str
    problems: tuple[str, ...]


@attrs.frozen
class MediaDetails:
    """What a media item's sealed info JSON says beyond the manifest (the site's words).

    ``values`` holds the :data:`MEDIA_DETAIL_FIELDS` present, as text, raw
    (the HTML layer makes them safe); ``sha256`` is the info record's, for
    the report to say where they come from.
    """

    record: str
    sha256: str
    values: tuple[tuple[str, str], ...]


@attrs.frozen
class PackageFacts:
    """Everything the report shows about one package."""

    label: str
    verification: Report
    manifest: Manifest | None
    manifest_sha256: str | None
    warc_path: str | None
    warc_sha256: str | None
    signers: tuple[Signer, ...]
    timestamps: tuple[TimestampInfo, ...]
    custody: tuple[CustodyRow, ...]
    custody_problems: tuple[str, ...]
    screenshot: bytes | None
    screenshot_type: str | None
    attachments: tuple[Attachment, ...]
    problems: tuple[str, ...]
    # Per media item (by its info record id): what its sealed info JSON adds.
    media_details: typing.Mapping[str, MediaDetails] = attrs.field(factory=dict)
    # Files the report read again whose bytes are not those verified (the
    # report is refused: what it shows must be what was verified).
    changed: tuple[str, ...] = ()


def _label(root: Path, index: int) -> str:
    """A name for the package's attachments: its directory name when plain, else a number."""
    name = root.name
    if _SAFE_NAME.fullmatch(name) and len(name) <= 120:
        return name
    return f"package-{index}"


def _attachment_names(directory: Path, suffixes: tuple[str, ...]) -> list[str]:
    """Regular files with safe names ending in ``suffixes``, sorted, at most a bound."""
    names = [n for n in regular_file_names(directory, suffixes) if _SAFE_NAME.fullmatch(n)]
    return names[:MAX_ATTACHMENTS_PER_DIR]


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def resource_block(warc: Path, offset: int, length: int, sha256: str, limit: int) -> bytes | None:
    """The block of one WARC record whose gzip member is at ``offset``/``length``, or None.

    The member is read (bounded), checked against the inventory's ``sha256``
    again (the file could have changed since verification), and inflated
    with a bound on the output: a block over ``limit`` bytes is None.
    """
    if not 0 < length <= limit or offset < 0:
        return None
    try:
        with open(warc, "rb") as fh:
            fh.seek(offset)
            member = fh.read(length)
    except OSError:
        return None
    if len(member) != length or hashlib.sha256(member).hexdigest() != sha256:
        return None
    inflater = zlib.decompressobj(31)
    try:
        raw = inflater.decompress(member, limit + 64 * 1024)
    except zlib.error:
        return None
    if not inflater.eof or inflater.unconsumed_tail:
        return None  # larger than the bound once inflated, or cut off
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        return None
    size = None
    for line in raw[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                size = int(value.strip())
            except ValueError:
                return None
    if size is None or size > limit:
        return None
    block = raw[end + 4 : end + 4 + size]
    if len(block) != size or raw[end + 4 + size :] != b"\r\n\r\n":
        return None
    return block


def screenshot_from_warc(
    warc: Path, offset: int, length: int, sha256: str
) -> tuple[bytes, str] | None:
    """The image block of one WARC resource record (a screenshot), or None.

    The block is read by :func:`resource_block` (bounded, the member's
    SHA-256 checked again) and returned only when it is a PNG or JPEG image
    of sane dimensions.

    Returns:
        (image bytes, MIME type), or None when there is no usable image.
    """
    block = resource_block(warc, offset, length, sha256, MAX_SCREENSHOT_BYTES)
    if block is None:
        return None
    if block.startswith(_PNG):
        dims = _png_size(block)
        if dims is None or not 0 < dims[0] * dims[1] <= MAX_SCREENSHOT_PIXELS:
            return None
        return block, "image/png"
    if block.startswith(_JPEG):
        return block, "image/jpeg"
    return None


def media_details_from_block(record: str, block: bytes) -> MediaDetails | None:
    """The shown fields of an info JSON block, or None when it is not a JSON object."""
    try:
        doc = json.loads(block)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    values = []
    for name in MEDIA_DETAIL_FIELDS:
        value = doc.get(name)
        # Text and numbers only: a list or object here is not what yt-dlp writes.
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            continue
        if value == "":
            continue
        values.append((name, str(value)))
    return MediaDetails(record, hashlib.sha256(block).hexdigest(), tuple(values))


def _key_names(trust_paths: typing.Sequence[str | os.PathLike[str]]) -> dict[str, str]:
    """Key id -> the file name of the caller's key (for "who signed" in words)."""
    from evidence.keys import key_id, load_public_key

    names: dict[str, str] = {}
    for raw in trust_paths:
        p = Path(raw)
        files = (
            sorted(q for q in p.iterdir() if q.suffix in (".pub", ".pem") and q.is_file())
            if p.is_dir()
            else [p]
        )
        for q in files:
            try:
                names.setdefault(key_id(load_public_key(q)), q.name)
            except (EvidenceError, OSError):
                continue  # the verifier has already loaded (or refused) these keys
    return names


def key_names(trust: object) -> dict[str, str]:
    """Names for trusted keys given as paths; a :class:`~evidence.keys.Keyring` has none."""
    if isinstance(trust, str | os.PathLike):
        return _key_names([trust])
    if isinstance(trust, list | tuple):
        return _key_names([t for t in trust if isinstance(t, str | os.PathLike)])
    return {}


class _Gatherer:
    def __init__(
        self,
        root: Path,
        label: str,
        verification: Report,
        names: typing.Mapping[str, str],
        tsa_roots: typing.Sequence[x509.Certificate],
        limits: VerifyLimits,
    ) -> None:
        self.root = root
        self.label = label
        self.verification = verification
        self.names = names
        self.tsa_roots = tsa_roots
        self.limits = limits
        self.problems: list[str] = []
        self.attachments: list[Attachment] = []
        # Files read again for what is shown whose bytes differ from the verified ones.
        self.changed: list[str] = []

    def read(self, relative: str, limit: int) -> bytes | None:
        try:
            return read_package_file(self.root, relative, limit, missing_ok=True)
        except EvidenceError as exc:
            self.problems.append(f"{relative} not read: {exc}")
            return None

    def attach(self, relative: str, data: bytes, description: str) -> None:
        # Flat names (no "/"): extraction tools such as ``pdfdetach -saveall``
        # write attachments under their names, so a name must not be a path.
        base = relative.rsplit("/", 1)[-1]
        self.attachments.append(Attachment(f"{self.label}_{base}", relative, data, description))

    def run(self) -> PackageFacts:
        raw = self.read(MANIFEST_PATH, self.limits.manifest_bytes)
        manifest = None
        if raw is not None:
            self.attach(MANIFEST_PATH, raw, "the sealed manifest (signed and timestamped bytes)")
            try:
                manifest = Manifest.from_bytes(raw)
            except EvidenceError as exc:
                self.problems.append(f"the manifest cannot be read: {exc}")
        for name in _attachment_names(self.root / "evidence" / "signatures", (".sig",)):
            data = self.read(f"evidence/signatures/{name}", SIGNATURE_SIZE * 16)
            if data is not None:
                self.attach(f"evidence/signatures/{name}", data, "Ed25519 signature")
        for name in _attachment_names(self.root / "evidence" / "keys", (".pub",)):
            data = self.read(f"evidence/keys/{name}", self.limits.key_file_bytes)
            if data is not None:
                self.attach(
                    f"evidence/keys/{name}", data, "public key bundled by the signer (not trust)"
                )
        timestamps = self._timestamps(raw)
        custody_rows, custody_problems = self._custody()
        self.attach(
            "verification-report.json",
            json.dumps(self.verification.to_json(), indent=2, ensure_ascii=True).encode() + b"\n",
            "the verification report this document was made from (JSON, report_version 2)",
        )
        warc_path = warc_sha = None
        shot: tuple[bytes, str] | None = None
        details: dict[str, MediaDetails] = {}
        if manifest is not None:
            warc_path = manifest.warc_path
            for f in manifest.files:
                if f.path == warc_path:
                    warc_sha = f.sha256
            shot = self._screenshot(manifest)
            if shot is not None:
                ext = "png" if shot[1] == "image/png" else "jpg"
                self.attach(f"screenshot.{ext}", shot[0], "the screenshot, full size")
            details = self._media_details(manifest)
        v = self.verification
        signers = [Signer(k, True, self.names.get(k)) for k in v.trusted_signers]
        signers += [Signer(k, False, self.names.get(k)) for k in v.valid_untrusted_signers]
        return PackageFacts(
            label=self.label,
            verification=v,
            manifest=manifest,
            manifest_sha256=hashlib.sha256(raw).hexdigest() if raw is not None else None,
            warc_path=warc_path,
            warc_sha256=warc_sha,
            signers=tuple(signers),
            timestamps=tuple(timestamps),
            custody=tuple(custody_rows),
            custody_problems=tuple(custody_problems),
            screenshot=shot[0] if shot else None,
            screenshot_type=shot[1] if shot else None,
            attachments=tuple(self.attachments),
            problems=tuple(self.problems),
            media_details=details,
            changed=tuple(self.changed),
        )

    def _timestamps(self, manifest_raw: bytes | None) -> list[TimestampInfo]:
        result = []
        names = _attachment_names(self.root / "evidence" / "timestamps", (".tsr", ".tsq"))
        statuses = {c.name: c.status for c in self.verification.checks}
        for name in names:
            data = self.read(f"evidence/timestamps/{name}", self.limits.token_bytes)
            if data is None:
                continue
            kind = "RFC 3161 time-stamp response (token)"
            if name.endswith(".tsq"):
                self.attach(f"evidence/timestamps/{name}", data, "RFC 3161 time-stamp request")
                continue
            self.attach(f"evidence/timestamps/{name}", data, kind)
            stem = name[: -len(".tsr")]
            gen_time = tsa = None
            verified = self.verification.timestamp_sha256.get(f"evidence/timestamps/{name}")
            if verified is not None and verified != hashlib.sha256(data).hexdigest():
                # Read twice, like the manifest: what is shown must be what
                # was verified (the caller refuses the report).
                self.changed.append(f"evidence/timestamps/{name}")
            elif verified is not None and manifest_raw is not None:
                from evidence.timestamping import check_token

                digest = hashlib.sha256(manifest_raw).digest()
                try:
                    checked = check_token(data, digest, roots=self.tsa_roots)
                except Exception as exc:  # a hostile token is reported, never a crash
                    log.info("token %s could not be read: %r", name, exc)
                else:
                    if checked.gen_time is not None:
                        gen_time = checked.gen_time.isoformat().replace("+00:00", "Z")
                    tsa = checked.tsa_subject
            status = statuses.get(f"timestamp:{stem}", Status.NOT_CHECKED)
            result.append(TimestampInfo(stem, status, gen_time, tsa))
        return result

    def _custody(self) -> tuple[list[CustodyRow], list[str]]:
        raw = self.read(CUSTODY_PATH, self.limits.custody_log_bytes)
        if raw is None:
            return [], []
        self.attach(CUSTODY_PATH, raw, "the chain-of-custody log as it was when reported")
        parsed = parse_log(raw, max_lines=self.limits.custody_events)
        rows = [
            CustodyRow(line.number, line.event, hashlib.sha256(line.raw).hexdigest(), line.problems)
            for line in parsed.lines
        ]
        return rows, list(parsed.problems)

    def _warc_verified(self) -> bool:
        try:
            return self.verification.check("warc").status is Status.PASS
        except KeyError:
            return False

    def _media_details(self, manifest: Manifest) -> dict[str, MediaDetails]:
        """Uploader, duration... from each media item's sealed info JSON (not in the manifest)."""
        media = manifest.capture.media if manifest.capture is not None else None
        if media is None or not media.items:
            return {}
        if not self._warc_verified():
            # Only bytes the verifier found sealed are quoted.
            self.problems.append("media details are not shown: the WARC did not verify")
            return {}
        by_id = {r.id: r for r in manifest.records}
        details: dict[str, MediaDetails] = {}
        for item in media.items[:MAX_MEDIA_DETAILS]:
            info = next((f for f in item.files if f.kind == "info"), None)
            if info is None or info.record in details:
                continue
            rec = by_id.get(info.record)
            block = (
                resource_block(
                    self.root / manifest.warc_path,
                    rec.offset,
                    rec.length,
                    rec.sha256,
                    MAX_INFO_JSON_BYTES,
                )
                if rec is not None and rec.type == "resource"
                else None
            )
            if block is None or hashlib.sha256(block).hexdigest() != info.sha256:
                self.problems.append(f"the media info record {info.record} could not be read")
                continue
            found = media_details_from_block(info.record, block)
            if found is not None:
                details[info.record] = found
        return details

    def _screenshot(self, manifest: Manifest) -> tuple[bytes, str] | None:
        record = next(
            (
                r
                for r in manifest.records
                if r.type == "resource" and (r.target_uri or "").startswith("urn:screenshot:")
            ),
            None,
        )
        if record is None:
            return None
        try:
            warc_check = self.verification.check("warc")
        except KeyError:
            warc_check = None
        if warc_check is None or warc_check.status is not Status.PASS:
            # Only bytes the verifier found sealed are shown as the page's image.
            self.problems.append("the screenshot is not shown: the WARC did not verify")
            return None
        shot = screenshot_from_warc(
            self.root / manifest.warc_path, record.offset, record.length, record.sha256
        )
        if shot is None:
            self.problems.append("the screenshot record holds no PNG or JPEG image we can show")
        return shot


def gather(
    path: str | os.PathLike[str],
    verification: Report,
    *,
    index: int = 1,
    label: str | None = None,
    key_names: typing.Mapping[str, str] | None = None,
    tsa_roots: typing.Sequence[x509.Certificate] = (),
    limits: VerifyLimits = DEFAULT_LIMITS,
) -> PackageFacts:
    """Gather what the report shows about the package at ``path``; never raises for content.

    Args:
        path: the package directory (already verified).
        verification: its verification report.
        index: its position in the case (names the attachments of a package
            whose directory name is not plain).
        label: the prefix of its attachments' names (default: from its directory).
        key_names: key id -> a name for the key (the caller's key file name).
        tsa_roots: the TSA roots given to verification (to read genTime).
        limits: the bounds on every read.
    """
    root = Path(path)
    name = label if label and _SAFE_NAME.fullmatch(label) else _label(root, index)
    return _Gatherer(root, name, verification, key_names or {}, tsa_roots, limits).run()
