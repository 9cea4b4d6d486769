"""The few manifest fields the verifier reads beyond files and records, in one place.

Everything here comes from the signed manifest, but is only as good as the
verification outcome: the report shows it as "what the package says".
Manifest fields are touched in :func:`manifest_facts` only, so a change of the
manifest model changes this one function.
"""

from __future__ import annotations

import datetime as _dt
import typing

import attrs

from evidence.clock import parse_iso
from evidence.sealing import operator_text
from evidence.verifying.report import Subject

if typing.TYPE_CHECKING:
    from evidence.manifest import Manifest

__all__ = ["ArtefactEntry", "ManifestFacts", "artefact_entries", "manifest_facts"]


@attrs.frozen
class ManifestFacts:
    """What the verifier needs to know from a parsed manifest."""

    subject: Subject
    # When the capture began (capture.started, else created); None if unreadable.
    capture_start: _dt.datetime | None
    # When the manifest says it was created; None if unreadable.
    created: _dt.datetime | None
    # The declared custody log path: None when the manifest declares none; any
    # other value than evidence/custody.jsonl is reported, never followed.
    custody_log: object


def manifest_facts(manifest: Manifest) -> ManifestFacts:
    """Read the header facts, capture start, creation time and custody declaration."""
    capture = manifest.capture
    created = manifest.created
    started = capture.started if capture is not None else None
    subject = Subject(
        requested_url=capture.requested_url if capture is not None else None,
        final_url=capture.final_url if capture is not None else None,
        status=capture.status if capture is not None else None,
        captured_at=started or created,
        created=created,
        network=(
            capture.network.describe()
            if capture is not None and capture.network is not None
            else None
        ),
        operator=operator_text(manifest.operator),
    )
    return ManifestFacts(
        subject=subject,
        capture_start=parse_iso(started) or parse_iso(created),
        created=parse_iso(created),
        custody_log=manifest.custody_log,
    )


@attrs.frozen
class ArtefactEntry:
    """A manifest entry that describes one resource or metadata record: a
    browser artefact, the browser log, a media file. Its size and SHA-256 are
    what show, extract's index and the report tell a reader, so they must be
    the record's."""

    label: str
    record: str
    target_uri: str
    size: int
    sha256: str


def artefact_entries(manifest: Manifest) -> tuple[ArtefactEntry, ...]:
    """Every entry of ``capture.browser`` and ``capture.media`` that names a record."""
    capture = manifest.capture
    if capture is None:
        return ()
    out: list[ArtefactEntry] = []
    browser = capture.browser
    if browser is not None:
        for a in browser.artefacts:
            out.append(ArtefactEntry(f"browser {a.kind}", a.record, a.target_uri, a.size, a.sha256))
        if browser.log is not None:
            log = browser.log
            out.append(
                ArtefactEntry("browser log", log.record, log.target_uri, log.size, log.sha256)
            )
    if capture.media is not None:
        for number, item in enumerate(capture.media.items, 1):
            for f in item.files:
                out.append(
                    ArtefactEntry(
                        f"media item {number} {f.kind}", f.record, f.target_uri, f.size, f.sha256
                    )
                )
    return tuple(out)
