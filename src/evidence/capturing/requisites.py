"""Find a page's requisites: what it needs to be seen as it was.

Reads a recorded response (its raw bytes as spooled), undoes the transfer and
content encodings with a hard cap on the decoded size (a decompression bomb
stops at the cap; the raw bytes stay archived as received), and extracts
URLs from HTML (stdlib ``html.parser``, tolerant of broken markup) and CSS.

Nothing here touches the network or the package; the capture loop decides
what to fetch.
"""

from __future__ import annotations

import html.parser
import re
import typing
import urllib.parse
import zlib

import attrs

__all__ = [
    "MAX_DECODED_BYTES",
    "DecodeResult",
    "Found",
    "css_urls",
    "decode_body",
    "html_requisites",
    "page_title",
]

# Enough for any real HTML or CSS document; a bigger decoded body is parsed
# only up to this size.
MAX_DECODED_BYTES = 16 * 1024 * 1024
_READ = 1 << 16
_MAX_CHUNK_LINE = 4096


@attrs.frozen
class Found:
    """A URL a document refers to, and what kind of thing it is."""

    url: str
    kind: str  # image, stylesheet, script, icon, font, media, iframe, css-import, other


@attrs.frozen
class DecodeResult:
    data: bytes
    complete: bool  # False when the cap was hit or the encoding could not be undone
    note: str | None = None


def _dechunk(fh: typing.BinaryIO) -> typing.Iterator[bytes]:
    """Yield the data of a chunked body; stops quietly at malformed framing."""
    while True:
        line = fh.readline(_MAX_CHUNK_LINE)
        if not line:
            return
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return
        if size <= 0:
            return
        left = size
        while left > 0:
            piece = fh.read(min(left, _READ))
            if not piece:
                return
            left -= len(piece)
            yield piece
        fh.readline(_MAX_CHUNK_LINE)  # the CRLF after the chunk


def _raw_pieces(fh: typing.BinaryIO, chunked: bool) -> typing.Iterator[bytes]:
    if chunked:
        yield from _dechunk(fh)
        return
    while piece := fh.read(_READ):
        yield piece


class _Decoder(typing.Protocol):
    def decompress(self, data: bytes, max_length: int = ...) -> bytes: ...

    @property
    def unconsumed_tail(self) -> bytes: ...


def _decoder(encoding: str) -> _Decoder | None:
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        # Servers send zlib-wrapped or raw deflate under this name; 32+ guesses
        # zlib/gzip, and raw deflate is retried by the caller.
        return zlib.decompressobj(32 + zlib.MAX_WBITS)
    return None


def _decode_layer(
    pieces: typing.Iterable[bytes], encoding: str, cap: int
) -> typing.Iterator[bytes]:
    dec = _decoder(encoding)
    if dec is None:
        raise ValueError(f"content-encoding {encoding!r} is not supported for parsing")
    produced = 0
    for piece in pieces:
        data = piece
        while data:
            out = dec.decompress(data, max(cap - produced, 1))
            produced += len(out)
            if out:
                yield out
            if produced >= cap:
                return
            data = dec.unconsumed_tail


def decode_body(
    fh: typing.BinaryIO,
    *,
    header_length: int,
    transfer_encoding: str | None,
    content_encoding: str | None,
    cap: int = MAX_DECODED_BYTES,
) -> DecodeResult:
    """Decode a recorded response body for parsing, never beyond ``cap`` bytes.

    Stacked content encodings (``gzip, gzip``) are undone in reverse order,
    each layer capped, so a bomb costs at most ``cap`` bytes of memory per
    layer's output. The file position is left wherever reading stopped.
    """
    fh.seek(header_length)
    chunked = "chunked" in (transfer_encoding or "").lower()
    stream: typing.Iterable[bytes] = _raw_pieces(fh, chunked)
    encodings = [e.strip().lower() for e in (content_encoding or "").split(",") if e.strip()]
    encodings = [e for e in encodings if e != "identity"]
    if len(encodings) > 4:
        return DecodeResult(b"", False, "more than 4 stacked content encodings")
    try:
        for encoding in reversed(encodings):
            stream = _decode_layer(stream, encoding, cap)
        out = bytearray()
        for piece in stream:
            out.extend(piece[: cap - len(out)])
            if len(out) >= cap:
                return DecodeResult(bytes(out), False, f"decoded body cut at {cap} bytes")
        return DecodeResult(bytes(out), True)
    except (ValueError, zlib.error) as exc:
        return DecodeResult(b"", False, f"body could not be decoded: {exc}")


# Every pattern here runs over hostile text of up to MAX_DECODED_BYTES, so each
# is written to stay linear: no two adjacent parts can match the same
# characters (a failed attempt backtracks one step per character, never
# re-splitting a run), and an unquoted url() stops at "(" as CSS itself does
# (a "(" there makes a bad-url token), so the attempt started at one "url("
# never scans past the next one.
_CSS_URL = re.compile(
    r"""url\(\s*(?:"([^"]*)"\s*|'([^']*)'\s*|([^()'"\s]+)\s*)?\)""", re.IGNORECASE
)
_CSS_IMPORT = re.compile(r"""@import\s+(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
_FONT_EXT = (".woff", ".woff2", ".ttf", ".otf", ".eot")


def _classify_css_ref(url: str, imported: bool) -> str:
    if imported:
        return "css-import"
    path = urllib.parse.urlsplit(url).path.lower()
    if path.endswith(_FONT_EXT):
        return "font"
    if path.endswith(".css"):
        return "css-import"
    return "image"


def _strip_css_comments(text: str) -> str:
    """``text`` without its ``/* ... */`` comments, in one linear pass.

    An unterminated comment runs to the end of the text, as in CSS. (A lazy
    regex would rescan to the end from every unterminated ``/*``.)
    """
    kept: list[str] = []
    pos = 0
    while (start := text.find("/*", pos)) >= 0:
        kept.append(text[pos:start])
        end = text.find("*/", start + 2)
        if end < 0:
            return "".join(kept)
        pos = end + 2
    kept.append(text[pos:])
    return "".join(kept)


def css_urls(text: str, base: str) -> list[Found]:
    """URLs referenced by CSS text: ``@import`` and every ``url()``."""
    text = _strip_css_comments(text)
    found: list[Found] = []
    imports: set[int] = set()
    for m in _CSS_IMPORT.finditer(text):
        ref = m.group(1) if m.group(1) is not None else m.group(2)
        found.append(Found(urllib.parse.urljoin(base, ref.strip()), "css-import"))
    for m in re.finditer(r"@import\s+url\(", text, re.IGNORECASE):
        imports.add(m.end() - 4)
    for m in _CSS_URL.finditer(text):
        ref = next((g for g in m.groups() if g is not None), "").strip()
        if not ref:
            continue
        url = urllib.parse.urljoin(base, ref)
        found.append(Found(url, _classify_css_ref(url, m.start() in imports)))
    return found


def _srcset(value: str) -> list[str]:
    urls = []
    for candidate in value.split(","):
        parts = candidate.strip().split()
        if parts:
            urls.append(parts[0])
    return urls


_ICON_RELS = {"icon", "shortcut", "apple-touch-icon", "apple-touch-icon-precomposed", "mask-icon"}
_PRELOAD_KINDS = {"style": "stylesheet", "script": "script", "font": "font", "image": "image"}


class _HTMLRequisites(html.parser.HTMLParser):
    def __init__(self, base: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = base
        self.base_set = False
        self.found: list[Found] = []
        self._in_style = False
        self._style: list[str] = []

    def _add(self, ref: str | None, kind: str) -> None:
        if ref is None:
            return
        ref = ref.strip()
        if ref:
            self.found.append(Found(urllib.parse.urljoin(self.base, ref), kind))

    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): v for k, v in attrs_list if v is not None}
        if tag == "base" and "href" in a and not self.base_set:
            self.base = urllib.parse.urljoin(self.base, a["href"].strip())
            self.base_set = True
        elif tag == "img" or (tag == "input" and a.get("type", "").lower() == "image"):
            self._add(a.get("src"), "image")
            for u in _srcset(a.get("srcset", "")):
                self._add(u, "image")
        elif tag == "source":
            self._add(a.get("src"), "media")
            for u in _srcset(a.get("srcset", "")):
                self._add(u, "image")
        elif tag in ("video", "audio"):
            self._add(a.get("src"), "media")
            self._add(a.get("poster"), "image")
        elif tag == "track":
            self._add(a.get("src"), "media")
        elif tag == "script":
            self._add(a.get("src"), "script")
        elif tag in ("iframe", "frame"):
            self._add(a.get("src"), "iframe")
        elif tag == "embed":
            self._add(a.get("src"), "media")
        elif tag == "object":
            self._add(a.get("data"), "media")
        elif tag == "link":
            rels = set(a.get("rel", "").lower().split())
            if "stylesheet" in rels:
                self._add(a.get("href"), "stylesheet")
            elif rels & _ICON_RELS:
                self._add(a.get("href"), "icon")
            elif rels & {"preload", "modulepreload"}:
                self._add(a.get("href"), _PRELOAD_KINDS.get(a.get("as", ""), "script"))
        elif tag == "style":
            self._in_style = True
        if "style" in a:
            self.found.extend(css_urls(a["style"], self.base))
        if tag == "body" and "background" in a:
            self._add(a.get("background"), "image")

    def handle_startendtag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs_list)
        if tag == "style":
            self._in_style = False

    def handle_endtag(self, tag: str) -> None:
        if tag == "style" and self._in_style:
            self._in_style = False
            self.found.extend(css_urls("".join(self._style), self.base))
            self._style = []

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self._style.append(data)


# html.parser's close() re-parses an unfinished construct at the end of the
# input once per "<" in it, each time to the end: quadratic on a hostile tail
# such as "<a " repeated. Only a short tail is handed to close(); a longer one
# is dropped, as a browser drops a tag left open at the end of the input (a
# tail holds no complete tag, so no requisite is lost).
_MAX_CLOSE_TAIL = 1024


def _finish(parser: html.parser.HTMLParser) -> None:
    if len(parser.rawdata) <= _MAX_CLOSE_TAIL:
        parser.close()


def html_requisites(text: str, base: str) -> list[Found]:
    """Requisite URLs of an HTML document, absolute, in document order (may repeat)."""
    parser = _HTMLRequisites(base)
    try:
        parser.feed(text)
        _finish(parser)
    except (AssertionError, ValueError):  # html.parser on pathological input
        pass
    return parser.found


MAX_TITLE_CHARS = 1000


class _TitleDone(Exception):
    """Raised from a handler to stop parsing once the title is known."""


class _Title(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.length = 0  # sum of len(parts), kept as we go
        self.state = "before"  # before -> inside -> done

    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        if tag in ("svg", "math") and self.state == "inside":
            self.state = "done"
            raise _TitleDone
        if tag == "title" and self.state == "before":
            self.state = "inside"

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self.state == "inside":
            self.state = "done"
            raise _TitleDone

    def handle_data(self, data: str) -> None:
        if self.state != "inside":
            return
        self.parts.append(data)
        self.length += len(data)
        if self.length >= 4 * MAX_TITLE_CHARS:
            # Enough text for MAX_TITLE_CHARS after collapsing whitespace:
            # stop here rather than parse the rest of a hostile title.
            self.state = "done"
            raise _TitleDone


def page_title(text: str) -> str | None:
    """The first ``<title>`` of an HTML document, whitespace collapsed, at most
    :data:`MAX_TITLE_CHARS` characters; None when there is none.

    The title is the site's text: untrusted, shown only through
    :func:`evidence.display.safe`.
    """
    parser = _Title()
    try:
        # One feed(): feeding in pieces would re-parse an unfinished construct
        # (a tag or comment left open by a hostile page) once per piece. A
        # title sits in the head, and the handlers raise _TitleDone as soon as
        # it is known, so a huge document is still not parsed whole.
        parser.feed(text)
        _finish(parser)
    except _TitleDone:
        pass
    except (AssertionError, ValueError):  # html.parser on pathological input
        pass
    title = " ".join("".join(parser.parts).split())[:MAX_TITLE_CHARS]
    return title or None


def charset_of(content_type: str | None, default: str = "utf-8") -> str:
    """The charset parameter of a Content-Type header, if it names a known codec."""
    import codecs

    m = re.search(r"charset\s*=\s*\"?([A-Za-z0-9._-]+)", content_type or "", re.IGNORECASE)
    if m:
        try:
            return codecs.lookup(m.group(1)).name
        except LookupError:
            pass
    return default
