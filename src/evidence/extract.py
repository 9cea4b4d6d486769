"""Write a package's contents as ordinary files: the picture without WARC tools.

``evidence extract PACKAGE DIR`` writes the browser's artefacts (screenshot,
PDF, rendered DOM, the browser's log), the media files of a ``--media``
capture with their info JSON and subtitles (under ``media/``), and every
response body, content-decoded, with an ``index.json`` mapping each URL to
its file. It works on plain captures too (they have no artefacts).

Extraction is not verification: it does not check signatures or
timestamps (``evidence verify`` does). It does check every record it reads
against the manifest's record inventory (offset, length and SHA-256 of its
gzip member), so a WARC changed after sealing is refused, not extracted.

Threat model notes: every size is bounded (the WARC record head, the HTTP
head, each decoded body at :data:`MAX_BODY_BYTES`); file names are made by us
(a counter and a short extension), never taken from the URL; the output
directory is written under a temporary name and renamed into place, so a
failed extraction leaves nothing that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import typing
import zlib
from pathlib import Path

import attrs

from evidence.capturing.requisites import decode_body
from evidence.errors import PackageError, UsageError
from evidence.manifest import BrowserArtefact, Manifest, MediaItem
from evidence.package import (
    open_regular_file,
    read_manifest_bytes,
    require_package,
    safe_relative_path,
)
from evidence.warc.checker import MAX_HTTP_HEADER_BYTES, MAX_WARC_HEADER_BYTES, find_http_header_end

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_RECORD_BYTES",
    "ExtractResult",
    "artefact_file_name",
    "extract",
    "media_file_names",
]

# Decoded bodies are held in memory while written; larger ones are cut (and say so).
MAX_BODY_BYTES = 256 * 1024**2
# A record holds at most one response (2 GiB by default) plus its heads.
MAX_RECORD_BYTES = 4 * 1024**3
_READ = 1 << 16

_EXTENSIONS = {
    "text/html": ".html",
    "application/xhtml+xml": ".xhtml",
    "text/css": ".css",
    "text/javascript": ".js",
    "application/javascript": ".js",
    "application/json": ".json",
    "text/plain": ".txt",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/svg+xml": ".svg",
    "application/pdf": ".pdf",
    "font/woff2": ".woff2",
    "font/woff": ".woff",
}
_ARTEFACT_NAMES = {
    "screenshot": "screenshot.png",
    "pdf": "page.pdf",
    "dom": "dom.html",
    "log": "browser-log.json",
}
# The word a media file's kind adds to its name.
_MEDIA_TAGS = {"media": "", "subtitles": ".subtitles", "info": ".info"}
# Media files are named by item number and content type, never by the name
# in the manifest (a package is untrusted input).
_MEDIA_EXTENSIONS = {
    "video/mp4": ".mp4",
    "audio/mp4": ".m4a",
    "video/webm": ".webm",
    "audio/webm": ".weba",
    "video/x-matroska": ".mkv",
    "video/mp2t": ".ts",
    "audio/mpeg": ".mp3",
    "audio/ogg": ".ogg",
    "audio/wav": ".wav",
    "text/vtt": ".vtt",
    "application/x-subrip": ".srt",
    "application/json": ".json",
}


def artefact_file_name(kind: str) -> str | None:
    """The file a browser artefact of ``kind`` is written as (None: not written)."""
    return _ARTEFACT_NAMES.get(kind)


def media_file_names(item: MediaItem, number: int) -> list[str]:
    """The file each of ``item``'s files is written as, in order (``number`` from 1).

    Every part of a name is ours: the item's number, a tag for one of a few
    kinds (never the manifest's text), the file's position, an extension
    from the content type. The court report names the same files.
    """
    names = []
    info_named = False
    for index, entry in enumerate(item.files):
        if entry.kind == "info" and not info_named:
            names.append(f"media/{number:03d}.info.json")
            info_named = True
            continue
        ext = _MEDIA_EXTENSIONS.get(entry.content_type.split(";")[0].strip(), ".bin")
        tag = _MEDIA_TAGS.get(entry.kind, ".other")
        names.append(
            f"media/{number:03d}{tag}.{index}{ext}" if index else f"media/{number:03d}{tag}{ext}"
        )
    return names


@attrs.frozen
class ExtractResult:
    """What was written: the directory, its index, and how many files."""

    directory: str
    index: str
    artefacts: int
    responses: int
    notes: tuple[str, ...]
    media: int = 0

    def to_json(self) -> dict[str, typing.Any]:
        return {
            "directory": self.directory,
            "index": self.index,
            "artefacts": self.artefacts,
            "media": self.media,
            "responses": self.responses,
            "notes": list(self.notes),
        }


class _Window:
    """A read-only view of ``fh`` starting at ``start`` (what decode_body reads)."""

    def __init__(self, fh: typing.BinaryIO, start: int) -> None:
        self._fh = fh
        self._start = start

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            return self._fh.seek(self._start + offset) - self._start
        return self._fh.seek(offset, whence) - self._start

    def read(self, n: int = -1) -> bytes:
        return self._fh.read(n)

    def readline(self, limit: int = -1) -> bytes:
        return self._fh.readline(limit)


def _member(
    warc: typing.BinaryIO, offset: int, length: int, sha256: str, out: typing.BinaryIO
) -> None:
    """Decompress one gzip member into ``out`` after checking it against the inventory.

    The member's bytes are hashed before any of them is decompressed, so a
    changed WARC is refused before its content is parsed.
    """

    def pieces() -> typing.Iterator[bytes]:
        warc.seek(offset)
        left = length
        while left > 0:
            piece = warc.read(min(_READ, left))
            if not piece:
                raise PackageError("the WARC is shorter than its record inventory says")
            left -= len(piece)
            yield piece

    digest = hashlib.sha256()
    for piece in pieces():
        digest.update(piece)
    if digest.hexdigest() != sha256:
        raise PackageError(
            f"WARC record at offset {offset} does not match the sealed inventory; "
            "run 'evidence verify' on this package"
        )
    inflater = zlib.decompressobj(31)
    written = 0
    try:
        for piece in pieces():
            data = inflater.decompress(piece)
            written += len(data)
            if written > MAX_RECORD_BYTES:
                raise PackageError(f"a WARC record is larger than {MAX_RECORD_BYTES} bytes")
            out.write(data)
        out.write(inflater.flush())
    except zlib.error as exc:
        raise PackageError(f"WARC record at offset {offset} is not valid gzip: {exc}") from exc
    if not inflater.eof:
        raise PackageError(f"WARC record at offset {offset} is cut short")


def _warc_head(fh: typing.BinaryIO) -> tuple[dict[str, str], int]:
    """The record's WARC headers and where its block starts; the file is cut
    after the block (the record's closing CRLFs are not content)."""
    fh.seek(0)
    head = fh.read(MAX_WARC_HEADER_BYTES)
    end = head.find(b"\r\n\r\n")
    if end < 0:
        raise PackageError("a WARC record head is too large or malformed")
    headers: dict[str, str] = {}
    for line in head[:end].decode("utf-8", "replace").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    length = headers.get("content-length", "")
    if not length.isdigit():
        raise PackageError("a WARC record has no valid Content-Length")
    fh.truncate(end + 4 + int(length))
    return headers, end + 4


def _http_head(fh: typing.BinaryIO, start: int) -> tuple[int, list[tuple[str, str]], int] | None:
    """(status, headers, head length) of the HTTP response at ``start``, or None."""
    fh.seek(start)
    buf = fh.read(MAX_HTTP_HEADER_BYTES)
    end, _ = find_http_header_end(buf)
    if end is None:
        return None
    lines = buf[:end].decode("latin-1").splitlines()
    parts = lines[0].split(" ", 2) if lines else []
    if len(parts) < 2 or not parts[1].isdigit():
        return None
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip().lower(), value.strip()))
    return int(parts[1]), headers, end


def _extension(content_type: str | None) -> str:
    base = (content_type or "").split(";", 1)[0].strip().lower()
    return _EXTENSIONS.get(base, ".bin")


def extract(package: str | os.PathLike[str], directory: str | os.PathLike[str]) -> ExtractResult:
    """Write ``package``'s artefacts and decoded response bodies into ``directory``.

    Args:
        package: an evidence package directory.
        directory: where to write; must not exist yet (it is created).

    Returns:
        An :class:`ExtractResult`.

    Raises:
        PackageError: not a package, or a record does not match the sealed inventory.
        UsageError: ``directory`` already exists.
    """
    root = require_package(package)
    manifest = Manifest.from_bytes(read_manifest_bytes(root))
    target = Path(directory)
    if target.exists() or target.is_symlink():
        raise UsageError(f"{target} already exists; extract writes a new directory")
    if not safe_relative_path(manifest.warc_path):
        raise PackageError("the manifest's WARC path is not inside the package")
    parent = target.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=parent))
    try:
        index = _extract_into(root, manifest, work)
        os.rename(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return attrs.evolve(index, directory=str(target), index=str(target / "index.json"))


def _extract_into(root: Path, manifest: Manifest, work: Path) -> ExtractResult:
    by_id = {rec.id: rec for rec in manifest.records}
    artefacts: dict[str, dict[str, typing.Any]] = {}
    responses: list[dict[str, typing.Any]] = []
    notes: list[str] = []
    browser = manifest.capture.browser if manifest.capture is not None else None
    fd = open_regular_file(root / manifest.warc_path)
    with os.fdopen(fd, "rb") as warc:
        listed = [*browser.artefacts] if browser is not None else []
        if browser is not None and browser.log is not None:
            # The browser's log (a metadata record) is written out like an artefact.
            listed.append(
                BrowserArtefact(
                    kind="log",
                    target_uri=browser.log.target_uri,
                    record=browser.log.record,
                    content_type=browser.log.content_type,
                    size=browser.log.size,
                    sha256=browser.log.sha256,
                )
            )
        for artefact in listed:
            rec = by_id.get(artefact.record)
            name = _ARTEFACT_NAMES.get(artefact.kind)
            if rec is None or name is None:
                notes.append(f"artefact {artefact.kind!r} not found in the WARC inventory")
                continue
            if artefact.kind in artefacts:
                notes.append(f"artefact {artefact.kind!r} is listed more than once; the first kept")
                continue
            with tempfile.TemporaryFile() as tmp:
                _member(warc, rec.offset, rec.length, rec.sha256, tmp)
                _, start = _warc_head(tmp)
                tmp.seek(start)
                with open(work / name, "xb") as out:
                    shutil.copyfileobj(tmp, out)
            artefacts[artefact.kind] = {
                "file": name,
                "target_uri": artefact.target_uri,
                "content_type": artefact.content_type,
                "sha256": artefact.sha256,
            }
        media = _extract_media(warc, manifest, by_id, work, notes)
        (work / "responses").mkdir()
        for number, exchange in enumerate(manifest.exchanges, 1):
            rec = by_id.get(exchange.response_record)
            if rec is None:
                notes.append(f"response record of {exchange.url} not in the inventory")
                continue
            with tempfile.TemporaryFile() as tmp:
                _member(warc, rec.offset, rec.length, rec.sha256, tmp)
                _, start = _warc_head(tmp)
                head = _http_head(tmp, start)
                entry: dict[str, typing.Any] = {
                    "url": exchange.url,
                    "role": exchange.role,
                    "status": exchange.status,
                    "record": exchange.response_record,
                }
                if head is None:
                    entry["note"] = "no readable HTTP head"
                    responses.append(entry)
                    continue
                _status, headers, head_len = head
                fields = dict(headers)
                decoded = decode_body(
                    typing.cast(typing.BinaryIO, _Window(tmp, start)),
                    header_length=head_len,
                    transfer_encoding=fields.get("transfer-encoding"),
                    content_encoding=fields.get("content-encoding"),
                    cap=MAX_BODY_BYTES,
                )
                name = f"responses/{number:05d}{_extension(fields.get('content-type'))}"
                (work / name).write_bytes(decoded.data)
                entry.update(
                    {
                        "file": name,
                        "content_type": fields.get("content-type"),
                        "content_encoding": fields.get("content-encoding"),
                        "decoded": decoded.complete,
                    }
                )
                if decoded.note:
                    entry["note"] = decoded.note
                responses.append(entry)
    index = {
        "package_id": manifest.package_id,
        "page": manifest.capture.final_url if manifest.capture is not None else None,
        "artefacts": artefacts,
        "media": media,
        "responses": responses,
        "notes": notes,
    }
    data = json.dumps(index, ensure_ascii=True, indent=2, sort_keys=True).encode("ascii")
    (work / "index.json").write_bytes(data + b"\n")
    return ExtractResult(
        directory=str(work),
        index=str(work / "index.json"),
        artefacts=len(artefacts),
        responses=len(responses),
        notes=tuple(notes),
        media=sum(len(item["files"]) for item in media),
    )


def _record_to(warc: typing.BinaryIO, rec: typing.Any, dest: Path) -> None:
    """Write one resource record's block to ``dest`` (checked against the inventory)."""
    with tempfile.TemporaryFile() as tmp:
        _member(warc, rec.offset, rec.length, rec.sha256, tmp)
        _, start = _warc_head(tmp)
        tmp.seek(start)
        with open(dest, "xb") as out:
            shutil.copyfileobj(tmp, out, _READ)


def _extract_media(
    warc: typing.BinaryIO,
    manifest: Manifest,
    by_id: dict[str, typing.Any],
    work: Path,
    notes: list[str],
) -> list[dict[str, typing.Any]]:
    """``media/NNN.ext`` per stored file of each media item, with ``NNN.info.json``."""
    media = manifest.capture.media if manifest.capture is not None else None
    if media is None:
        return []
    (work / "media").mkdir()
    out: list[dict[str, typing.Any]] = []
    for number, item in enumerate(media.items, 1):
        files: list[dict[str, typing.Any]] = []
        for entry, name in zip(item.files, media_file_names(item, number), strict=True):
            rec = by_id.get(entry.record)
            if rec is None:
                notes.append(f"media file {entry.target_uri} not found in the WARC inventory")
                continue
            _record_to(warc, rec, work / name)
            files.append(
                {
                    "file": name,
                    "kind": entry.kind,
                    "target_uri": entry.target_uri,
                    "content_type": entry.content_type,
                    "language": entry.language,
                    "complete": entry.complete,
                    "sha256": entry.sha256,
                }
            )
        out.append(
            {
                "url": item.url,
                "title": item.title,
                "format_ids": list(item.format_ids),
                "complete": item.complete,
                "live": item.live,
                "files": files,
            }
        )
    return out
