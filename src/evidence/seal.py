"""Sealing a new package: the bag-info it implies, signatures, timestamps, first custody events.

Pure apart from asking the TSAs the caller named: values in, bytes out. The
capture facade calls :func:`seal_attachments` before the package is renamed
into place (so a signed capture never appears unsigned); the verifier calls
:func:`bag_info_for` to rebuild ``bag-info.txt`` from the signed manifest and
compare it byte for byte, so everything a BagIt viewer shows a reader is
covered by the signature.
"""

from __future__ import annotations

import os
import typing

from evidence.custody import make_event
from evidence.errors import EvidenceError
from evidence.manifest import Manifest
from evidence.package import bag_files
from evidence.signing import attachments_for
from evidence.timestamping import request_timestamp, token_attachments

if typing.TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from evidence.capturing.upstream import ProxyURL

__all__ = ["CUSTODY_PATH", "bag_info_for", "expected_bag_files", "seal_attachments"]

# The manifest declares its custody log (which is written after it, since its
# first event hashes the manifest), so deleting the whole log fails too.
CUSTODY_PATH = "evidence/custody.jsonl"


def bag_info_for(manifest: Manifest) -> list[tuple[str, str]]:
    """The ``bag-info.txt`` fields (before Payload-Oxum) that ``manifest`` implies.

    Every value is derived from the signed manifest, so a verifier can rebuild
    the file and compare it byte for byte.
    """
    software = manifest.software
    agent = f"{software.name} {software.version}" if software else "unknown"
    requested = manifest.capture.requested_url if manifest.capture else "(unknown)"
    description = f"Web evidence captured from {requested}"
    if manifest.capture is None and "imported_wacz" in manifest.extra:
        description = "A WACZ web archive, sealed on receipt by evidence import"
    fields = [
        ("Bag-Software-Agent", agent),
        ("Bagging-Date", manifest.created[:10]),
        ("External-Identifier", manifest.package_id),
        ("External-Description", description),
    ]
    if manifest.operator is not None and manifest.operator.organization:
        fields.insert(0, ("Source-Organization", manifest.operator.organization))
    return fields


def expected_bag_files(manifest: Manifest) -> dict[str, bytes]:
    """Every bag file exactly as the writer makes it for this (parsed) manifest.

    ``bagit.txt``, ``bag-info.txt``, ``manifest-sha256.txt`` and
    ``tagmanifest-sha256.txt`` are all implied by the signed manifest; a
    verifier compares the package's files with these bytes.
    """
    payload = [(f.path, f.sha256, f.size) for f in manifest.files]
    return bag_files(manifest.sha256.hex(), payload, bag_info_for(manifest))


def seal_attachments(
    manifest_bytes: bytes,
    *,
    keys: typing.Sequence[Ed25519PrivateKey],
    tsa_urls: typing.Sequence[str],
    tsa_roots: typing.Sequence[x509.Certificate],
    actor: str | None,
    note: str,
    warnings: list[str],
    tsa_timeout: float = 30.0,
    tsa_proxy: ProxyURL | None = None,
) -> dict[str, bytes]:
    """Signatures, timestamp tokens and the first custody events of a new package.

    A TSA that fails costs its token only: a warning is appended to
    ``warnings`` and the package is sealed without it. With ``tsa_proxy``
    the TSA is reached through that proxy only (it would otherwise learn the
    operator's address).
    """
    attachments: dict[str, bytes] = {}
    for key in keys:
        attachments.update(attachments_for(manifest_bytes, key))
    lines = [
        make_event(
            prev_line=None,
            manifest=manifest_bytes,
            seq=1,
            event="captured",
            note=note,
            actor=actor,
            key=keys[0] if keys else None,
        )
    ]
    stems: set[str] = set()
    for tsa in tsa_urls:
        try:
            token = request_timestamp(
                manifest_bytes, tsa, roots=tsa_roots, timeout=tsa_timeout, proxy=tsa_proxy
            )
        except EvidenceError as exc:
            warnings.append(f"timestamp missing: {exc}; add it later with 'evidence timestamp'")
            continue
        files = token_attachments(token, stems)
        stems.update(os.path.splitext(os.path.basename(rel))[0] for rel in files)
        attachments.update(files)
        lines.append(
            make_event(
                prev_line=lines[-1],
                manifest=manifest_bytes,
                seq=len(lines) + 1,
                event="timestamped",
                note=f"RFC 3161 token from {tsa}, genTime {token.gen_time.isoformat()}",
                actor=actor,
            )
        )
        if not token.chain_checked:
            warnings.append(
                f"timestamp from {tsa} stored; its chain is not checked yet (no --tsa-ca given)"
            )
    attachments[CUSTODY_PATH] = b"".join(line + b"\n" for line in lines)
    return attachments
