"""Export a package as WACZ 1.1.1, and import a WACZ back (reading is in verifying/wacz).

Layout of an export (docs/wacz.md)::

    datapackage.json            resources[] with sha256 and size of every member
    datapackage-digest.json     sha256 of datapackage.json + signedData (P-384)
    archive/<name>.warc.gz      the sealed WARC, STORED, byte for byte
    indexes/index.cdxj          sorted CDXJ for replay
    pages/pages.jsonl           the captured page
    evidence/...                the package's own files, one folder deep
    evidence/wacz-key-binding.json (+ .sig)   the WACZ key, certified by the Ed25519 key

Webrecorder tools accept anonymous signatures only as ECDSA P-384 raw r||s
over the ASCII ``signedData.hash``, so each Ed25519 signing key has a P-384
"WACZ key" beside it (``KEY.wacz``, same passphrase), certified by a
binding statement the Ed25519 key signs. The statement has no time in it
and Ed25519 is deterministic, so it is the same bytes in every export.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import secrets
import stat
import typing
import urllib.parse
import zipfile
import zlib
from pathlib import Path

from evidence import clock
from evidence.errors import KeyFileError, PackageError, StorageError, VerificationError
from evidence.keys import key_id
from evidence.package import read_manifest_bytes, require_package
from evidence.verifying.wacz import (
    BINDING_PATH,
    BINDING_SIG_PATH,
    BINDING_TYPE,
    archive_name_for,
    wacz_path_for,
)

if typing.TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from evidence.manifest import Manifest
    from evidence.verifying.report import Report
    from evidence.verifying.wacz import WACZTrust

__all__ = [
    "WACZ_VERSION",
    "binding_statement",
    "cdxj_lines",
    "export_wacz",
    "import_wacz",
    "load_wacz_key",
    "pages_jsonl",
    "sign_hash_raw",
    "surt",
    "wacz_key_path",
]

log = logging.getLogger(__name__)

WACZ_VERSION = "1.1.1"
SIGNED_DATA_VERSION = "0.1.0"  # the signedData version authsign and ArchiveWeb.page write
_CHUNK = 1 << 20
# Bytes of a response record decompressed to find its HTTP status and type.
_HEAD_BYTES = 256 * 1024


# ---------------------------------------------------------------------------
# The WACZ key.
# ---------------------------------------------------------------------------


def wacz_key_path(key_path: str | os.PathLike[str]) -> Path:
    """Where the P-384 WACZ key of an Ed25519 key file lives (``KEY.wacz``)."""
    return Path(f"{key_path}.wacz")


def load_wacz_key(
    key_path: str | os.PathLike[str], passphrase: bytes | None, *, create: bool = True
) -> EllipticCurvePrivateKey:
    """The P-384 WACZ key beside ``key_path``, made (mode 0600) on first use.

    Protected like the Ed25519 key: the same passphrase (PBES2/AES-256), or
    none when the Ed25519 key has none.

    Raises:
        KeyFileError: unreadable, readable by others, wrong passphrase, not P-384.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path = wacz_key_path(key_path)
    if not os.path.lexists(path):
        if not create:
            raise KeyFileError(f"{path} does not exist")
        key = ec.generate_private_key(ec.SECP384R1())
        # The same PBES2 (PBKDF2-SHA256, AES-256-CBC) encoding as the Ed25519 key.
        from evidence.keys import private_key_pem

        pem = private_key_pem(key, passphrase or None)
        pub = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        written: list[Path] = []
        try:
            for target, data, mode in ((path, pem, 0o600), (Path(f"{path}.pub"), pub, 0o644)):
                fd = os.open(target, flags, mode)
                written.append(target)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
        except OSError as exc:
            # No private key is left behind without its public key.
            for done in written:
                with contextlib.suppress(OSError):
                    os.unlink(done)
            raise KeyFileError(f"cannot write {path}: {exc.strerror or exc}") from exc
        log.info("made the WACZ key %s", path)
        return key
    try:
        st = os.stat(path, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"{path} is not a regular file")
        if st.st_mode & 0o077:
            raise KeyFileError(f"{path} is accessible by group or others; run: chmod 600 {path}")
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        loaded = serialization.load_pem_private_key(data, password=passphrase or None)
    except (TypeError, ValueError) as exc:
        raise KeyFileError(f"cannot load {path}: wrong passphrase or not a key") from exc
    except Exception as exc:  # UnsupportedAlgorithm
        raise KeyFileError(f"{path} is not a usable key ({exc})") from exc
    if not isinstance(loaded, ec.EllipticCurvePrivateKey) or loaded.curve.name != "secp384r1":
        raise KeyFileError(f"{path} is not an ECDSA P-384 key")
    return loaded


def _spki(key: typing.Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def binding_statement(
    key: Ed25519PrivateKey, wacz_key: EllipticCurvePrivateKey
) -> tuple[bytes, bytes]:
    """(statement bytes, Ed25519 signature) certifying ``wacz_key`` for ``key``."""
    doc = {
        "ed25519_key_id": key_id(key.public_key()),
        "ed25519_public_key": base64.b64encode(_spki(key.public_key())).decode("ascii"),
        "statement": "The holder of this Ed25519 key signs WACZ files with this ECDSA P-384 key.",
        "type": BINDING_TYPE,
        "version": 1,
        "wacz_public_key": base64.b64encode(_spki(wacz_key.public_key())).decode("ascii"),
    }
    raw = (json.dumps(doc, sort_keys=True, indent=2) + "\n").encode("ascii")
    return raw, key.sign(raw)


def sign_hash_raw(wacz_key: EllipticCurvePrivateKey, text: str) -> bytes:
    """ECDSA/SHA-256 over ASCII ``text`` as raw r||s (96 bytes for P-384)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(wacz_key.sign(text.encode("ascii"), ec.ECDSA(hashes.SHA256())))
    size = (wacz_key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


# ---------------------------------------------------------------------------
# Index and pages.
# ---------------------------------------------------------------------------


def surt(url: str) -> str:
    """The sort key replay tools use: host reversed, ``www.`` dropped, lowercase."""
    if not url.startswith(("http://", "https://")):
        key = url.lower()
    else:
        parts = urllib.parse.urlsplit(url)
        host = (parts.hostname or "").lower()
        host = host.removeprefix("www.")
        rev = ",".join(reversed(host.split(".")))
        try:
            port = parts.port
        except ValueError:
            port = None
        if port is not None and port != {"http": 80, "https": 443}[parts.scheme]:
            rev += f":{port}"
        key = f"{rev}){parts.path or '/'}"
        if parts.query:
            key += "?" + "&".join(sorted(parts.query.split("&")))
        key = key.lower()
    # One CDXJ line per record: nothing that could split or forge a line.
    return "".join(c if 0x20 < ord(c) < 0x7F else urllib.parse.quote(c) for c in key)


def _record_head(fh: typing.BinaryIO, offset: int, length: int) -> tuple[dict[str, str], bytes]:
    """WARC headers and the start of the block of the gzip member at ``offset``."""
    fh.seek(offset)
    dec = zlib.decompressobj(31)
    out = b""
    left = length
    while left > 0 and len(out) < _HEAD_BYTES:
        chunk = fh.read(min(65536, left))
        if not chunk:
            break
        left -= len(chunk)
        out += dec.decompress(chunk, _HEAD_BYTES - len(out))
    end = out.find(b"\r\n\r\n")
    headers: dict[str, str] = {}
    if end < 0:
        return headers, b""
    for line in out[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    return headers, out[end + 4 :]


def cdxj_lines(warc: Path, manifest: Manifest) -> list[str]:
    """Sorted CDXJ lines for the response, resource and revisit records of the WARC."""
    filename = archive_name_for(manifest.warc_path).removeprefix("archive/")
    lines = []
    with open(warc, "rb") as fh:
        for rec in manifest.records:
            if rec.type not in ("response", "resource", "revisit") or not rec.target_uri:
                continue
            headers, block = _record_head(fh, rec.offset, rec.length)
            when = clock.parse_iso(rec.date) or _parse_second(rec.date)
            stamp = when.strftime("%Y%m%d%H%M%S") if when else "00000000000000"
            doc: dict[str, typing.Any] = {"url": rec.target_uri}
            if rec.type == "response":
                status_line, _, rest = block.partition(b"\r\n")
                fields = status_line.split(b" ", 2)
                if len(fields) >= 2 and fields[1].isdigit():
                    doc["status"] = fields[1].decode()
                head = rest.split(b"\r\n\r\n", 1)[0]
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-type":
                        doc["mime"] = value.decode("latin-1").split(";")[0].strip()
            else:
                doc["mime"] = headers.get("content-type", "").split(";")[0].strip()
                doc["status"] = "200"
            if headers.get("warc-payload-digest"):
                doc["digest"] = headers["warc-payload-digest"]
            doc["length"] = str(rec.length)
            doc["offset"] = str(rec.offset)
            doc["filename"] = filename
            if rec.type == "revisit":
                doc["mime"] = "warc/revisit"
            lines.append(f"{surt(rec.target_uri)} {stamp} {json.dumps(doc, ensure_ascii=True)}")
    return sorted(lines)


def _parse_second(text: str) -> typing.Any:
    import datetime as _dt

    try:
        return _dt.datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None


def pages_jsonl(manifest: Manifest) -> bytes:
    """The header line and one line for the captured page."""
    lines: list[dict[str, typing.Any]] = [
        {"format": "json-pages-1.0", "id": "pages", "title": "All Pages"}
    ]
    cap = manifest.capture
    if cap is not None:
        lines.append(
            {
                "id": hashlib.sha256(manifest.package_id.encode()).hexdigest()[:32],
                "url": cap.final_url,
                "ts": cap.started,
                "title": cap.title or cap.final_url,
            }
        )
    return b"".join(json.dumps(x, ensure_ascii=True).encode() + b"\n" for x in lines)


# ---------------------------------------------------------------------------
# Export.
# ---------------------------------------------------------------------------


def _package_files(root: Path) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            if os.path.islink(os.path.join(dirpath, d)):
                raise PackageError(f"{os.path.join(dirpath, d)} is a symbolic link")
        for f in filenames:
            full = os.path.join(dirpath, f)
            if not stat.S_ISREG(os.lstat(full).st_mode):
                raise PackageError(f"{full} is not a regular file")
            found.append(os.path.relpath(full, root).replace(os.sep, "/"))
    return sorted(found)


def export_wacz(
    package: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    key: Ed25519PrivateKey,
    wacz_key: EllipticCurvePrivateKey,
    actor: str | None = None,
) -> dict[str, typing.Any]:
    """Write a signed WACZ of ``package`` to ``out`` (never overwritten).

    The package is verified for integrity first (a damaged package is not
    exported); an ``exported`` custody event signed by ``key`` is added to
    it afterwards.

    Returns:
        ``{"wacz", "sha256", "bytes", "wacz_key", "signer"}``.

    Raises:
        PackageError: not a package.
        VerificationError: the package does not verify (its report attached).
        StorageError: ``out`` exists or cannot be written.
    """
    from evidence.attach import append_event
    from evidence.manifest import Manifest
    from evidence.verifying import Outcome, verify

    root = require_package(package)
    out_path = Path(out)
    if os.path.lexists(out_path):
        raise StorageError(f"{out_path} already exists; refusing to overwrite it")
    report = verify(root, trust=[])
    if report.outcome is Outcome.FAILED:
        failed = ", ".join(c.title for c in report.failures())
        raise VerificationError(f"{root} does not verify ({failed}); not exported", report)
    manifest = Manifest.from_bytes(read_manifest_bytes(root))
    mapping: dict[str, str] = {}
    for rel in _package_files(root):
        name = wacz_path_for(rel, manifest.warc_path)
        if name is None:
            raise PackageError(f"{rel}: this package file has no place in a WACZ")
        mapping[name] = rel
    created = clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    stamp = clock.now().timetuple()[:6]
    tmp = out_path.parent / f".{out_path.name}.{secrets.token_hex(4)}.tmp"
    expected = {f.path: f.sha256 for f in manifest.files}
    resources: list[dict[str, typing.Any]] = []
    try:
        with open(tmp, "xb") as raw_out, zipfile.ZipFile(raw_out, "w", allowZip64=True) as zf:

            def add(name: str, chunks: typing.Iterable[bytes], size: int, stored: bool) -> str:
                info = zipfile.ZipInfo(name, date_time=stamp)
                info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
                info.file_size = size
                info.external_attr = 0o644 << 16
                h = hashlib.sha256()
                n = 0
                with zf.open(info, "w", force_zip64=size > 0x7FFFFFFF) as fh:
                    for c in chunks:
                        h.update(c)
                        n += len(c)
                        fh.write(c)
                if n != size:
                    raise PackageError(f"{name}: changed while being exported")
                digest = h.hexdigest()
                if name not in _META_NAMES:
                    resources.append(
                        {
                            "name": _resource_name(name, resources),
                            "path": name,
                            "hash": f"sha256:{digest}",
                            "bytes": size,
                        }
                    )
                return digest

            def add_file(name: str, rel: str) -> None:
                path = root / rel
                size = os.lstat(path).st_size
                digest = add(name, _read_chunks(path), size, stored=name.startswith("archive/"))
                if rel in expected and expected[rel] != digest:
                    raise PackageError(f"{rel} changed while being exported")

            warc_name = archive_name_for(manifest.warc_path)
            add_file(warc_name, mapping.pop(warc_name))
            index = "".join(x + "\n" for x in cdxj_lines(root / manifest.warc_path, manifest))
            add("indexes/index.cdxj", [index.encode("ascii")], len(index), stored=False)
            pages = pages_jsonl(manifest)
            add("pages/pages.jsonl", [pages], len(pages), stored=False)
            for name in sorted(mapping):
                add_file(name, mapping[name])
            statement, statement_sig = binding_statement(key, wacz_key)
            add(BINDING_PATH, [statement], len(statement), stored=False)
            add(BINDING_SIG_PATH, [statement_sig], len(statement_sig), stored=False)
            cap = manifest.capture
            datapackage = {
                "profile": "data-package",
                "wacz_version": WACZ_VERSION,
                "created": created,
                "software": _software(),
                "title": f"evidence package {manifest.package_id}",
                "mainPageUrl": cap.final_url if cap else "",
                "mainPageDate": cap.started if cap else manifest.created,
                "resources": resources,
            }
            dp = (json.dumps(datapackage, indent=2, ensure_ascii=True) + "\n").encode("ascii")
            digest_text = "sha256:" + hashlib.sha256(dp).hexdigest()
            signature = sign_hash_raw(wacz_key, digest_text)
            digest_doc = {
                "path": "datapackage.json",
                "hash": digest_text,
                "signedData": {
                    "hash": digest_text,
                    "created": created,
                    "software": _software(),
                    "version": SIGNED_DATA_VERSION,
                    "signature": base64.b64encode(signature).decode("ascii"),
                    "publicKey": base64.b64encode(_spki(wacz_key.public_key())).decode("ascii"),
                },
            }
            dd = (json.dumps(digest_doc, indent=2) + "\n").encode("ascii")
            add("datapackage.json", [dp], len(dp), stored=False)
            add("datapackage-digest.json", [dd], len(dd), stored=False)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        try:
            os.link(tmp, out_path)  # fails if something appeared at out meanwhile
        except FileExistsError as exc:
            raise StorageError(f"{out_path} already exists; refusing to overwrite it") from exc
    except OSError as exc:
        raise StorageError(f"cannot write {out_path}: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    wacz_sha, wacz_size = _sha256_file(out_path)
    append_event(
        root,
        event="exported",
        note=f"exported as WACZ {out_path.name} (sha256 {wacz_sha})",
        actor=actor,
        key=key,
    )
    return {
        "wacz": str(out_path),
        "sha256": wacz_sha,
        "bytes": wacz_size,
        "wacz_key": hashlib.sha256(_spki(wacz_key.public_key())).hexdigest(),
        "signer": key_id(key.public_key()),
    }


_META_NAMES = ("datapackage.json", "datapackage-digest.json")


def _resource_name(path: str, taken: list[dict[str, typing.Any]]) -> str:
    # Frictionless names: lowercase letters, digits, "-._/"; unique.
    base = "".join(c if c.isalnum() or c in "-._/" else "-" for c in path.lower())
    names = {r["name"] for r in taken}
    name, n = base, 1
    while name in names:
        n += 1
        name = f"{base}-{n}"
    return name


def _software() -> str:
    import evidence

    return f"evidence {evidence.__version__}"


def _read_chunks(path: Path) -> typing.Iterator[bytes]:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            yield chunk


def _sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    for c in _read_chunks(path):
        h.update(c)
        n += len(c)
    return h.hexdigest(), n


# ---------------------------------------------------------------------------
# Import.
# ---------------------------------------------------------------------------


def import_wacz(
    wacz: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    key: Ed25519PrivateKey | None = None,
    trust: WACZTrust | None = None,
    actor: str | None = None,
) -> dict[str, typing.Any]:
    """Import a WACZ: rebuild our own export, or seal a foreign WACZ in a new package.

    For a WACZ exported by ``evidence``, the files are written byte for byte
    as they are in the WACZ (so the package's own signatures and tokens
    still verify) under ``out_dir/<package id>``. For a WACZ from another
    tool, a new package holds it unchanged as ``data/<name>.wacz``, with the
    verification result and its signers in the manifest (``imported_wacz``),
    signed by ``key`` when given, and an ``imported`` first custody event.
    Either way the package is built under a temporary name and renamed.
    A WACZ that fails verification is not imported.

    Args:
        wacz: the ``.wacz`` file.
        out_dir: the directory the package goes into.
        key: signs a new package (foreign WACZ) and its custody event.
        trust: the trust policy the foreign WACZ is verified under (its
            result is recorded); default: trust nothing.
        actor: who imports (recorded in the custody event).

    Returns:
        ``{"package", "package_id", "wacz_outcome", "foreign", "warnings"}``.

    Raises:
        PackageError: not a WACZ.
        VerificationError: the WACZ does not verify (its report attached).
        StorageError: the package directory exists or cannot be written.
    """
    from evidence.verifying import Outcome
    from evidence.verifying.wacz import (
        DEFAULT_WACZ_LIMITS,
        UnreadableZipError,
        WACZReader,
        WACZTrust,
        embedded_members,
        extract_package,
        verify_wacz,
    )

    report = verify_wacz(wacz, trust=trust or WACZTrust())
    failed = "; ".join(f"{c.title}: {c.summary}" for c in report.failures())
    if report.outcome is Outcome.NOT_A_PACKAGE:
        raise PackageError(f"{wacz} is not a WACZ ({failed})")
    if report.outcome is Outcome.FAILED:
        raise VerificationError(f"{wacz} does not verify ({failed}); not imported", report)
    if report.package_id is None:
        return _logged(
            out_dir, _import_foreign(Path(wacz), Path(out_dir), report, key=key, actor=actor)
        )
    pid = report.package_id
    out = Path(out_dir)
    final = out / pid
    if os.path.lexists(final):
        raise StorageError(f"{final} already exists; refusing to overwrite it")
    tmp = out / f".incomplete-import-{secrets.token_hex(4)}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        try:
            with WACZReader(wacz, DEFAULT_WACZ_LIMITS) as reader:
                extract_package(reader, embedded_members(reader), tmp)
        except (UnreadableZipError, ValueError) as exc:
            raise PackageError(f"{wacz}: {exc}") from exc
        for dirpath, _, filenames in os.walk(tmp):
            for f in filenames:
                with open(os.path.join(dirpath, f), "rb") as fh:
                    os.fsync(fh.fileno())
        os.rename(tmp, final)
    except OSError as exc:
        raise StorageError(f"cannot write {final}: {exc.strerror or exc}") from exc
    finally:
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    read_manifest_bytes(final)  # the rebuilt package opens as one
    return _logged(
        out,
        {
            "package": str(final),
            "package_id": pid,
            "wacz_outcome": report.outcome.value,
            "foreign": False,
        },
    )


def _logged(out_dir: str | os.PathLike[str], info: dict[str, typing.Any]) -> dict[str, typing.Any]:
    """Add an imported package to ``out_dir``'s ledger when it has one, as capture does.

    The package is complete already: a ledger that cannot take it costs a
    warning (``info["warnings"]``), never the import.
    """
    from evidence.errors import EvidenceError
    from evidence.ledger import append_if_present

    info["warnings"] = []
    try:
        if append_if_present(out_dir, info["package"]) is not None:
            log.info("logged %s in the ledger of %s", info["package_id"], out_dir)
    except EvidenceError as exc:
        info["warnings"].append(
            f"not added to the ledger: {exc}; add it later with 'evidence ledger add'"
        )
    return info


_IMPORT_WARC = "data/capture.warc.gz"


def _import_foreign(
    wacz: Path,
    out_dir: Path,
    report: Report,
    *,
    key: Ed25519PrivateKey | None,
    actor: str | None,
) -> dict[str, typing.Any]:
    from evidence.capturing.record import warcinfo_block
    from evidence.custody import make_event
    from evidence.manifest import Inventory, Manifest, PayloadFile
    from evidence.package import PackageWriter, make_package_id
    from evidence.seal import CUSTODY_PATH, bag_info_for
    from evidence.signing import attachments_for
    from evidence.software import software_versions
    from evidence.verifying.wacz import safe_member_name
    from evidence.warc import WARCWriter

    name = wacz.name if safe_member_name(wacz.name) else "imported.wacz"
    if not name.endswith(".wacz"):
        name += ".wacz"
    main_url = report.subject.requested_url if report.subject else None
    now = clock.now()
    created = clock.iso(now)
    pid = make_package_id(main_url or "http://wacz.invalid/", now)
    with PackageWriter(out_dir, pid) as pkg:
        try:
            wacz_rel = f"data/{name}"
            h = hashlib.sha256()
            size = 0
            with open(pkg.path(wacz_rel), "xb") as out:
                for chunk in _read_chunks(wacz):
                    h.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            with open(pkg.path(_IMPORT_WARC), "xb") as fh:
                warc = WARCWriter(fh)
                block = warcinfo_block(created, None)
                warc.write_record(
                    record_type="warcinfo",
                    date=created,
                    content_type="application/warc-fields",
                    block=block,
                    block_length=len(block),
                    block_sha256=hashlib.sha256(block).digest(),
                    extra=[("WARC-Filename", "capture.warc.gz")],
                )
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise StorageError(f"cannot write the imported package: {exc}") from exc
        if h.hexdigest() != _sha256_file(wacz)[0]:
            raise PackageError(f"{wacz} changed while being imported")
        records = Inventory()
        for member in warc.members:
            records.add(member.to_json())
        files = (
            PayloadFile(path=_IMPORT_WARC, size=warc.size, sha256=warc.file_sha256()),
            PayloadFile(path=wacz_rel, size=size, sha256=h.hexdigest()),
        )
        imported = {
            "path": wacz_rel,
            "sha256": h.hexdigest(),
            "size": size,
            "main_page_url": main_url,
            "verified_at": report.verified_at,
            "outcome": report.outcome.value,
            "trusted_signers": list(report.trusted_signers),
            "valid_untrusted_signers": list(report.valid_untrusted_signers),
            "checks": [
                {"name": c.name, "status": c.status.value, "summary": c.summary}
                for c in report.checks
            ],
        }
        manifest = Manifest(
            package_id=pid,
            created=created,
            software=software_versions(),
            custody_log=CUSTODY_PATH,
            files=files,
            warc_path=_IMPORT_WARC,
            records=records,
            extra={"imported_wacz": imported},
        )
        manifest_bytes = manifest.to_bytes()
        attachments: dict[str, bytes] = {}
        if key is not None:
            attachments.update(attachments_for(manifest_bytes, key))
        event = make_event(
            prev_line=None,
            manifest=manifest_bytes,
            seq=1,
            event="imported",
            note=f"imported WACZ {name} (sha256 {h.hexdigest()}), verified: {report.outcome.value}",
            actor=actor,
            key=key,
        )
        attachments[CUSTODY_PATH] = event + b"\n"
        path = pkg.finish(
            manifest=manifest_bytes,
            payload=[(f.path, f.sha256, f.size) for f in files],
            bag_info=bag_info_for(Manifest.from_bytes(manifest_bytes)),
            attachments=attachments,
        )
    return {
        "package": str(path),
        "package_id": pid,
        "wacz_outcome": report.outcome.value,
        "foreign": True,
    }
