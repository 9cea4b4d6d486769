"""The manifest: the sealed statement at ``evidence/manifest.json``.

The manifest is written once and never rewritten; signatures and timestamps
cover its exact bytes. Reading is strict, because a lenient parser is a place
where two readers can disagree about what was signed: duplicate keys,
NaN/Infinity, invalid UTF-8, a byte-order mark, nesting deeper than
:data:`MAX_DEPTH`, a file bigger than :data:`MAX_MANIFEST_BYTES` and unknown
``format`` versions are all errors.
"""

from __future__ import annotations

import array
import collections.abc
import hashlib
import json
import re
import sys
import types
import typing

import attrs

from evidence.errors import ManifestError

__all__ = [
    "FORMAT",
    "MAX_CONTAINERS",
    "MAX_DEPTH",
    "MAX_LABELS",
    "MAX_LABEL_CHARS",
    "MAX_MANIFEST_BYTES",
    "MAX_SEALED_CHARS",
    "MAX_SEAL_RECIPIENTS",
    "BrowserArtefact",
    "BrowserDownload",
    "BrowserFailure",
    "BrowserInfo",
    "BrowserLog",
    "CaptureInfo",
    "CertificateInfo",
    "ExchangeInfo",
    "Hop",
    "InterimInfo",
    "Inventory",
    "InventoryRecord",
    "LimitHit",
    "Manifest",
    "MediaFile",
    "MediaInfo",
    "MediaItem",
    "NetworkInfo",
    "Operator",
    "PayloadFile",
    "Refusal",
    "RequisiteFailure",
    "Requisites",
    "SealedOperator",
    "Software",
    "TLSInfo",
    "decode_strict",
    "dumps",
    "strict_loads",
]

FORMAT = "evidence-package/1"
# A manifest for a page with thousands of requisites is a few MB; 64 MiB is
# far beyond any sane manifest and still cheap to refuse.
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 32
# Objects and arrays in one document. Bytes alone do not bound memory: 60 MiB
# of "{}," is 20 million dicts (3 GB). A 100,000-record manifest holds about
# 250,000; brackets inside strings count too, so this is a generous bound.
MAX_CONTAINERS = 2_000_000
# The caller's labels (``labels``): how many, and how long each name and value.
MAX_LABELS = 32
MAX_LABEL_CHARS = 1024
# A sealed operator (docs/sealing.md): an ASCII-armored age file of a few
# hundred bytes per recipient plus the sealed name and organization (at most
# MAX_LABEL_CHARS each). Anything bigger is refused when the manifest is read.
MAX_SEALED_CHARS = 64 * 1024
MAX_SEAL_RECIPIENTS = 16
_MAX_RECIPIENT_CHARS = 256


def dumps(obj: typing.Any) -> bytes:
    """Serialise deterministically: sorted keys, 2-space indent, UTF-8, final newline.

    The WARC record inventory, which can hold 100,000 entries, is written one
    record per line: still readable, a third of the size, and a third of the
    memory to parse.
    """
    records = None
    warc = obj.get("warc") if isinstance(obj, dict) else None
    if isinstance(warc, dict) and isinstance(warc.get("records"), list | Inventory):
        if len(warc["records"]):
            records = warc["records"]
            obj = {**obj, "warc": {**warc, "records": _PLACEHOLDER}}
        else:
            obj = {**obj, "warc": {**warc, "records": []}}
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    if records is not None:
        lines = ",\n".join(
            "      " + json.dumps(_as_dict(r), sort_keys=True, ensure_ascii=False, allow_nan=False)
            for r in records
        )
        text = text.replace(json.dumps(_PLACEHOLDER), "[\n" + lines + "\n    ]", 1)
    try:
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError as exc:
        # A lone surrogate (only a hostile manifest parsed back can hold one)
        # has no UTF-8 form; writing it "as is" would make a file no strict
        # reader accepts.
        raise ManifestError(
            f"cannot serialise a lone surrogate (at character {exc.start})"
        ) from exc


_PLACEHOLDER = "\x00records\x00"
_HEX = re.compile(r"[0-9a-f]{64}")
RECORD_KEYS = frozenset({"id", "type", "date", "target_uri", "offset", "length", "sha256"})


class InventoryRecord(typing.NamedTuple):
    """One entry of the WARC record inventory (compact: there may be 100,000)."""

    id: str
    type: str
    date: str
    target_uri: str | None
    offset: int
    length: int
    sha256: str

    def get(self, key: str, default: typing.Any = None) -> typing.Any:
        """Dict-style access by field name."""
        return getattr(self, key, default) if key in RECORD_KEYS else default

    def __getitem__(self, key: typing.Any) -> typing.Any:
        """``record["offset"]`` as for a dict; integer indexes work as for a tuple."""
        if isinstance(key, str):
            if key not in RECORD_KEYS:
                raise KeyError(key)
            return getattr(self, key)
        return tuple.__getitem__(self, key)

    def to_json(self) -> dict[str, typing.Any]:
        return self._asdict()


def _as_dict(record: typing.Any) -> typing.Any:
    return record.to_json() if isinstance(record, InventoryRecord) else record


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _no_duplicates(pairs: list[tuple[str, typing.Any]]) -> dict[str, typing.Any]:
    result: dict[str, typing.Any] = {}
    for key, value in pairs:
        if key in result:
            raise ManifestError(f"duplicate JSON key {key!r}")
        result[key] = value
    return result


class _RecordMarker:
    """Stands in the parsed tree for a record that went into the :class:`Inventory`."""


_RECORD = _RecordMarker()
_INT64 = 2**63


class Inventory(collections.abc.Sequence[InventoryRecord]):
    """The WARC record inventory, stored by column.

    A package can list 100,000 records; a dict per record would cost about
    800 bytes each, these columns about 250. Items are built on access.
    """

    def __init__(self) -> None:
        self._ids: list[str] = []
        self._types: list[str] = []
        self._dates: list[str] = []
        self._targets: list[str | None] = []
        self._offsets = array.array("q")
        self._lengths = array.array("q")
        self._digests = bytearray()
        self._odd_digests: dict[int, str] = {}  # sha256 values that are not 64 lowercase hex

    def add(self, r: dict[str, typing.Any]) -> bool:
        """Store a record-shaped object; False if it does not fit the columns."""
        if not (
            all(isinstance(r[k], str) for k in ("id", "type", "date", "sha256"))
            and (r["target_uri"] is None or isinstance(r["target_uri"], str))
            and _is_int(r["offset"])
            and _is_int(r["length"])
            and -_INT64 <= r["offset"] < _INT64
            and -_INT64 <= r["length"] < _INT64
        ):
            return False
        digest = r["sha256"]
        if len(digest) == 64 and digest == digest.lower() and _HEX.fullmatch(digest):
            self._digests += bytes.fromhex(digest)
        else:
            self._odd_digests[len(self._ids)] = digest
            self._digests += bytes(32)
        self._ids.append(r["id"])
        # Types repeat, and request and response records share their date.
        self._types.append(sys.intern(r["type"]))
        self._dates.append(sys.intern(r["date"]))
        self._targets.append(r["target_uri"])
        self._offsets.append(r["offset"])
        self._lengths.append(r["length"])
        return True

    def __len__(self) -> int:
        return len(self._ids)

    def __eq__(self, other: object) -> bool:
        """Equal to any list of the same records, as dicts or as records."""
        if not isinstance(other, list | tuple | Inventory):
            return NotImplemented
        return len(self) == len(other) and all(
            _as_dict(a) == _as_dict(b) for a, b in zip(self, other, strict=True)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable while parsing, like a list

    @typing.overload
    def __getitem__(self, index: int) -> InventoryRecord: ...

    @typing.overload
    def __getitem__(self, index: slice) -> list[InventoryRecord]: ...

    def __getitem__(self, index: int | slice) -> InventoryRecord | list[InventoryRecord]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        digest = self._odd_digests.get(index)
        if digest is None:
            digest = self._digests[index * 32 : index * 32 + 32].hex()
        return InventoryRecord(
            self._ids[index],
            self._types[index],
            self._dates[index],
            self._targets[index],
            self._offsets[index],
            self._lengths[index],
            digest,
        )


def _collector(inventory: Inventory) -> typing.Callable[[list[tuple[str, typing.Any]]], typing.Any]:
    def hook(pairs: list[tuple[str, typing.Any]]) -> typing.Any:
        result = _no_duplicates(pairs)
        if len(result) == len(RECORD_KEYS) and result.keys() == RECORD_KEYS:
            if inventory.add(result):
                return _RECORD
        return result

    return hook


def _no_constants(name: str) -> typing.NoReturn:
    raise ManifestError(f"JSON constant {name} is not allowed")


def _depth(value: typing.Any) -> tuple[int, int]:
    """Nesting depth of parsed JSON and the number of record markers in it, without recursion."""
    deepest = 0
    markers = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if item is _RECORD:
            markers += 1
            continue
        if isinstance(item, dict):
            children: typing.Iterable[typing.Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend(
            (child, level + 1)
            for child in children
            if child is _RECORD or isinstance(child, dict | list)
        )
    return deepest, markers


def decode_strict(raw: bytes, *, what: str = "JSON", max_bytes: int = MAX_MANIFEST_BYTES) -> str:
    """Size limit, no byte-order mark, strict UTF-8. Raises ManifestError."""
    if len(raw) > max_bytes:
        raise ManifestError(f"{what} is {len(raw)} bytes, more than the limit of {max_bytes}")
    if raw.startswith(b"\xef\xbb\xbf"):
        raise ManifestError(f"{what} starts with a byte-order mark")
    try:
        return raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{what} is not valid UTF-8 (at byte {exc.start})") from exc


def strict_loads(
    raw: bytes | str,
    *,
    what: str = "JSON",
    max_bytes: int = MAX_MANIFEST_BYTES,
    inventory: Inventory | None = None,
) -> typing.Any:
    """Parse JSON strictly (see module docstring). Raises ManifestError.

    Given ``str``, the text must come from :func:`decode_strict`; passing it
    instead of bytes lets a caller drop the bytes before parsing a big manifest.
    With ``inventory``, record-shaped objects go into it and a marker stands
    in their place (see :meth:`Manifest.from_text`).
    """
    text = decode_strict(raw, what=what, max_bytes=max_bytes) if isinstance(raw, bytes) else raw
    containers = text.count("{") + text.count("[")
    if containers > MAX_CONTAINERS:
        raise ManifestError(
            f"{what} has {containers} objects and arrays, more than the limit of {MAX_CONTAINERS}"
        )
    try:
        hook = _collector(inventory) if inventory is not None else _no_duplicates
        value = json.loads(text, object_pairs_hook=hook, parse_constant=_no_constants)
    except ManifestError:
        raise
    except RecursionError as exc:
        raise ManifestError(f"{what} is nested deeper than {MAX_DEPTH} levels") from exc
    except ValueError as exc:
        raise ManifestError(f"{what} is not valid JSON: {exc}") from exc
    del text
    depth, markers = _depth(value)
    if depth > MAX_DEPTH:
        raise ManifestError(f"{what} is nested deeper than {MAX_DEPTH} levels")
    if markers and inventory is None:  # pragma: no cover - markers need an inventory
        raise ManifestError(f"{what}: internal error, stray record marker")
    return value


# --- the typed model ----------------------------------------------------------
#
# Each part of the manifest is a frozen attrs class whose fields say how their
# JSON value is parsed (:func:`_field`). ``from_json`` is strict: a field of
# the wrong type is a ManifestError naming it (``capture.redirects[0].status``),
# never a crash later in a reader. ``to_json`` gives the exact object the
# writer serialises. Unknown fields are kept in ``extra`` and written back, so
# a newer manifest read by this version loses nothing.

Json = typing.Any
_T = typing.TypeVar("_T")
Parser = typing.Callable[[Json, str], typing.Any]
_EMPTY: collections.abc.Mapping[str, Json] = types.MappingProxyType({})


def _fail(where: str, expected: str) -> typing.NoReturn:
    raise ManifestError(f"manifest field {where} is missing or not {expected}")


def _str(value: Json, where: str) -> str:
    if not isinstance(value, str):
        _fail(where, "a string")
    return value


def _int(value: Json, where: str) -> int:
    if not _is_int(value):
        _fail(where, "an integer")
    return typing.cast(int, value)


def _bool(value: Json, where: str) -> bool:
    if not isinstance(value, bool):
        _fail(where, "true or false")
    return value


def _obj(value: Json, where: str) -> dict[str, Json]:
    if not isinstance(value, dict):
        _fail(where, "an object")
    return value


def _list_of(parse: Parser) -> Parser:
    def parse_list(value: Json, where: str) -> tuple[typing.Any, ...]:
        if not isinstance(value, list):
            _fail(where, "a list")
        return tuple(parse(item, f"{where}[{i}]") for i, item in enumerate(value))

    return parse_list


def _map_of(parse: Parser) -> Parser:
    def parse_map(value: Json, where: str) -> collections.abc.Mapping[str, typing.Any]:
        return types.MappingProxyType(
            {k: parse(v, f"{where}.{k}") for k, v in _obj(value, where).items()}
        )

    return parse_map


def _nullable(parse: Parser) -> Parser:
    return lambda value, where: None if value is None else parse(value, where)


def _plain(value: Json, where: str) -> Json:
    if isinstance(value, dict | list):
        _fail(where, "a plain value")
    return value


def _field(
    parse: Parser,
    *,
    optional: bool = False,
    omit_none: bool = False,
    default: typing.Any = None,
) -> typing.Any:
    """An attrs field read from the JSON key of the same name with ``parse``.

    ``optional``: the key may be missing or ``null`` (-> ``default``).
    ``omit_none``: written only when not None (the writer leaves it out).
    """
    meta = {"parse": parse, "optional": optional, "omit_none": omit_none}
    if optional:
        return attrs.field(default=default, metadata=meta)
    return attrs.field(metadata=meta)


def _to_json_value(value: Json) -> Json:
    if isinstance(value, _Part):
        return value.to_json()
    if isinstance(value, tuple | list):
        return [_to_json_value(v) for v in value]
    if isinstance(value, collections.abc.Mapping):
        return {k: _to_json_value(v) for k, v in value.items()}
    return value


_P = typing.TypeVar("_P", bound="_Part")


class _Part:
    """Generic strict ``from_json`` / exact ``to_json`` for the model classes."""

    extra: collections.abc.Mapping[str, Json]

    @classmethod
    def from_json(cls: type[_P], value: Json, where: str) -> _P:
        data = _obj(value, where)
        kwargs: dict[str, typing.Any] = {}
        fields = attrs.fields(typing.cast("type[attrs.AttrsInstance]", cls))
        for field in fields:
            meta = field.metadata
            if not meta:
                continue
            raw = data.get(field.name)
            if raw is None and meta["optional"]:
                continue
            if field.name not in data:
                _fail(f"{where}.{field.name}", "present")
            kwargs[field.name] = meta["parse"](raw, f"{where}.{field.name}")
        known = {f.name for f in fields if f.metadata}
        extra = {k: v for k, v in data.items() if k not in known}
        make = typing.cast("typing.Callable[..., _P]", cls)
        return make(**kwargs, extra=types.MappingProxyType(extra))

    def to_json(self) -> dict[str, Json]:
        out: dict[str, Json] = {}
        for field in attrs.fields(typing.cast("type[attrs.AttrsInstance]", type(self))):
            if not field.metadata:
                continue
            value = getattr(self, field.name)
            if value is None and field.metadata["omit_none"]:
                continue
            out[field.name] = _to_json_value(value)
        out.update(self.extra)
        return out


def _part(cls: type[_T]) -> Parser:
    return lambda value, where: cls.from_json(value, where)  # type: ignore[attr-defined]


_EXTRA = attrs.field(default=_EMPTY, kw_only=True)


@attrs.frozen(kw_only=True)
class Software(_Part):
    """The software that made the package."""

    name: str = _field(_str)
    version: str = _field(_str)
    python: str | None = _field(_str, optional=True)
    implementation: str | None = _field(_str, optional=True)
    platform: str | None = _field(_str, optional=True)
    openssl: str | None = _field(_str, optional=True)
    libraries: collections.abc.Mapping[str, str | None] = _field(
        _map_of(_nullable(_str)), optional=True, default=_EMPTY
    )
    extra: collections.abc.Mapping[str, Json] = _EXTRA


def _sealed_recipients(value: Json, where: str) -> tuple[str, ...]:
    recipients: tuple[str, ...] = _list_of(_str)(value, where)
    if not 1 <= len(recipients) <= MAX_SEAL_RECIPIENTS:
        _fail(where, f"a list of 1 to {MAX_SEAL_RECIPIENTS} recipients")
    if any(len(r) > _MAX_RECIPIENT_CHARS for r in recipients):
        _fail(where, f"recipients of at most {_MAX_RECIPIENT_CHARS} characters")
    return recipients


def _sealed_ciphertext(value: Json, where: str) -> str:
    text = _str(value, where)
    if len(text) > MAX_SEALED_CHARS:
        raise ManifestError(
            f"manifest field {where} holds {len(text)} characters, more than the limit "
            f"of {MAX_SEALED_CHARS} for a sealed operator"
        )
    return text


@attrs.frozen(kw_only=True)
class SealedOperator(_Part):
    """The operator's name and organization encrypted to legal teams' age keys.

    ``ciphertext`` is an ASCII-armored age file (``age -d`` opens it); the
    plaintext inside also names the package id and creation time, so it
    cannot be moved to another package unnoticed (:mod:`evidence.sealing`).
    Only sizes are checked here; :func:`evidence.sealing.inspect_sealed`
    checks the armor and the age header.
    """

    format: str = _field(_str)
    recipients: tuple[str, ...] = _field(_sealed_recipients)
    ciphertext: str = _field(_sealed_ciphertext)
    extra: collections.abc.Mapping[str, Json] = _EXTRA


@attrs.frozen
class Operator(_Part):
    """Who ran the capture. Optional on purpose: some operators are at risk.

    When ``sealed`` is set, ``name`` and ``organization`` are absent: they are
    inside the sealed part, readable only with a recipient's identity.
    """

    name: str | None = _field(_str, optional=True, omit_none=True)
    organization: str | None = _field(_str, optional=True, omit_none=True)
    sealed: SealedOperator | None = _field(_part(SealedOperator), optional=True, omit_none=True)
    extra: collections.abc.Mapping[str, Json] = _EXTRA

    def __attrs_post_init__(self) -> None:
        if self.sealed is not None and (self.name is not None or self.organization is not None):
            # A sealed identity next to a plaintext one would defeat the seal;
            # a manifest that says both is refused rather than half-believed.
            raise ManifestError("operator has a sealed part and a plaintext name or organization")

    @property
    def label(self) -> str | None:
        """``name / organization`` as far as known in plaintext, or None (also when sealed)."""
        return " / ".join(x for x in (self.name, self.organization) if x) or None


@attrs.frozen(kw_only=True)
class CertificateInfo(_Part):
    """One certificate of a TLS chain, as the server presented it."""

    sha256: str = _field(_str)
    subject: str | None = _field(_str, optional=True, omit_none=True)
    issuer: str | None = _field(_str, optional=True, omit_none=True)
    serial: str | None = _field(_str, optional=True, omit_none=True)
    not_before: str | None = _field(_str, optional=True, omit_none=True)
    not_after: str | None = _field(_str, optional=True, omit_none=True)
    san: tuple[str, ...] | None = _field(_list_of(_str), optional=True, omit_none=True)
    error: str | None = _field(_str, optional=True, omit_none=True)
    extra: collections.abc.Mapping[str, Json] = _EXTRA


@attrs.frozen(kw_only=True)
class TLSInfo(_Part):
    """The TLS session of one exchange, read from the socket that carried it."""

    protocol: str | None = _field(_str, optional=True)
    cipher: str | None = _field(_str, optional=True)
    verified: bool = _field(_bool)
    certificate_sha256: str | None = _field(_str, optional=True)
    chain_file: str | None = _field(_str, optional=True)
    chain_complete: bool = _field(_bool)
    chain_note: str | None = _field(_str, optional=True, omit_none=True)
    certificates: tuple[CertificateInfo, ...] | None = _field(
        _list_of(_part(CertificateInfo)), optional=True, omit_none=True
    )
    extra: collections.abc.Mapping[str, Json] = _EXTRA


@attrs.frozen(kw_only=True)
class Hop(_Part):
    """One redirect: ``url`` answered ``status`` pointing to ``location``."""

    url: str = _field(_str)
    status: int = _field(_int)
    location: str = _field(_str)
    error: str | None = _field(_str, optional=True, omit_none=True)
    extra: collections.abc.Mapping[str, Json] = _EXTRA


@attrs.frozen(kw_only=True)
class LimitHit(_Part):
    """A capture limit that was reached."""

    limit: str = _field(_str)
    url: str | None = _field(_str, optional=True)
    detail: str | None = _field(_str, optional=True)
    extra: collections.abc.Mapping[str, Json] = _EXTRA


@attrs.frozen(kw_only=True)
class RequisiteFailure(_Part):
    """A requisite that gave no usable response."""

    url: str = _field(_str)
    kind: str | None = _field(_str, optional=True)
    found_in: str | None = _field(_str, optional=True)
    error: str = _field(_str)
    extra: collections.abc.Mapping[str, Json] = _EXTRA


@attrs.frozen(kw_only=True)
class Requisites(_Part):
    """What the requisite phase did."""

    enabled: bool = _field(_bool)
    fetched: int = _field(_int, optional=True, default=0)
    failed: tuple[RequisiteFailure, ...] = _field(
        _list_of(_part(RequisiteFailure)), optional=True, default=()
    )
    skipped: int = _field(_int, optional=True, default=0)
    limits_hit: tuple[LimitHit, ...] = _field(_list_of(_part(LimitHit)), optional=True, default=())
    extra: collections.abc.Mapping[str, Json] = _EXTRA


@attrs.frozen(kw_only=True)
class Refusal(_Part):
    """A destination that ``public_only`` refused."""

    url: str | None = _field(_str, optional=True)
    reason: str = _field(_str)
    extra: collections.abc.Mapping[str, Json] = _EXTRA


@attrs.frozen(kw_only=True)
class BrowserArtefact(_Part):
    """A file the browser made (screenshot, PDF, DOM), stored as a WARC resource record."""

    kind: str = _field(_str)
    target_uri: str = _field(_str)
    record: str = _field(_str)
    content_type: str = _field(_str)
    size: int = _field(_int)
    sha256: str = _field(_str)
    extra: collections.abc.Mapping[str, Json] = _EXTRA


@attrs.frozen(kw_only=True)
class BrowserFailure(_Part):
    """A request the browser made that got no response (answered 502 by the proxy)."""

    url: str = _field(_str)
    method: str = _field(_str)
    kind: str = _field(_str)
    error: str = _field(_str)
    extra: collections.abc.Mapping[str, Json] = _EXTRA


@attrs.frozen(kw_only=True)
class BrowserLog(_Part):
    """The browser's view, stored as a WARC ``metadata`` record (``urn:browser-log:<url>``).

    The record holds JSON (docs/browser.md): console messages, page errors,
    the requests the browser reported, pop-ups, downloads and dialogs, each
    list capped; ``dropped`` counts the entries left out at the caps.
    """

    record: str = _field(_str)
    target_uri: str = _field(_str)
    content_type: str = _field(_str)
    size: int = _field(_int)
    sha256: str = _field(_str)
    console_messages: int = _field(_int, optional=True, default=0)
    page_errors: int = _field(_int, optional=True, default=0)
    requests: int = _field(_int, optional=True, default=0)
    dropped: int = _field(_int, optional=True, default=0)
    extra: collections.abc.Mapping[str, Json] = _EXTRA


@attrs.frozen(kw_only=True)
class BrowserDownload(_Part):
    """A download the page started: refused (never saved by the browser).

    ``record`` is the response record of the download's URL when the proxy
    had already fetched it (the server sent it, so it is evidence).
    """

    url: str = _field(_str)
    filename: str | None = _field(_str, optional=True, omit_none=True)
    state: str = _field(_str)
    record: str | None = _field(_str, optional=True, omit_none=True)
    extra: collections.abc.Mapping[str, Json] = _EXTRA


@attrs.frozen(kw_only=True)
class BrowserInfo(_Part):
    """How a browser capture was made (``capture.browser``, only for browser captures)."""

    name: str = _field(_str)
    version: str = _field(_str)
    executable: str = _field(_str)
    flags: tuple[str, ...] = _field(_list_of(_str), optional=True, default=())
    viewport: str = _field(_str)
    user_agent: str = _field(_str)
    # Base64 SHA-256 of the interception leaf key's SubjectPublicKeyInfo: the
    # only key the browser trusted (the per-capture CA itself was never stored).
    interception_spki_sha256: str = _field(_str)
    completed: bool = _field(_bool)
    artefacts: tuple[BrowserArtefact, ...] = _field(
        _list_of(_part(BrowserArtefact)), optional=True, default=()
    )
    failed: tuple[BrowserFailure, ...] = _field(
        _list_of(_part(BrowserFailure)), optional=True, default=()
    )
    blocked: int = _field(_int, optional=True, default=0)
    # Requests Playwright reported for the page that have neither a recorded
    # exchange nor a listed failure (at most 200).
    unrecorded: tuple[str, ...] = _field(_list_of(_str), optional=True, default=())
    notes: tuple[str, ...] = _field(_list_of(_str), optional=True, default=())
    log: BrowserLog | None = _field(_part(BrowserLog), optional=True, omit_none=True)
    # Pop-ups the page opened (closed at once; what they loaded is recorded
    # like any other request) and downloads it started (refused), at most 100 each.
    popups: tuple[str, ...] = _field(_list_of(_str), optional=True, default=())
    downloads: tuple[BrowserDownload, ...] = _field(
        _list_of(_part(BrowserDownload)), optional=True, default=()
    )
    extra: collections.abc.Mapping[str, Json] = _EXTRA


@attrs.frozen(kw_only=True)
class MediaFile(_Part):
    """A file yt-dlp wrote (media, subtitles) or its info JSON, as a WARC resource record."""

    kind: str = _field(_str)
    target_uri: str = _field(_str)
    record: str = _field(_str)
    name: str = _field(_str)
    content_type: str = _field(_str)
    size: int = _field(_int)
    sha256: str = _field(_str)
    language: str | None = _field(_str, optional=True, omit_none=True)
    # False for a file cut short (limit, deadline, live stream): what arrived.
    complete: bool = _field(_bool, optional=True, default=True)
    extra: collections.abc.Mapping[str, Json] = _EXTRA


@attrs.frozen(kw_only=True)
class MediaItem(_Part):
    """One video or audio item yt-dlp found, and the files stored for it."""

    url: str = _field(_str)
    id: str | None = _field(_str, optional=True, omit_none=True)
    title: str | None = _field(_str, optional=True, omit_none=True)
    extractor: str | None = _field(_str, optional=True, omit_none=True)
    format_ids: tuple[str, ...] = _field(_list_of(_str), optional=True, default=())
    live: bool = _field(_bool, optional=True, default=False)
    complete: bool = _field(_bool)
    files: tuple[MediaFile, ...] = _field(_list_of(_part(MediaFile)), optional=True, default=())
    extra: collections.abc.Mapping[str, Json] = _EXTRA


@attrs.frozen(kw_only=True)
class MediaInfo(_Part):
    """How media was captured (``capture.media``, only for ``--media`` captures)."""

    tool: str = _field(_str)
    version: str = _field(_str)
    ffmpeg: bool = _field(_bool)
    format_selector: str = _field(_str)
    max_media_bytes: int = _field(_int)
    received_bytes: int = _field(_int)
    requests: int = _field(_int)
    failed_requests: int = _field(_int, optional=True, default=0)
    completed: bool = _field(_bool)
    items: tuple[MediaItem, ...] = _field(_list_of(_part(MediaItem)), optional=True, default=())
    notes: tuple[str, ...] = _field(_list_of(_str), optional=True, default=())
    extra: collections.abc.Mapping[str, Json] = _EXTRA


@attrs.frozen(kw_only=True)
class NetworkInfo(_Part):
    """How the capture reached the servers (``capture.network``; only when through a proxy)."""

    # socks5, socks5h, http or https; never the proxy's credentials.
    proxy_scheme: str = _field(_str)
    # host:port, only when the operator chose to record it (--record-proxy-address).
    proxy_address: str | None = _field(_str, optional=True, omit_none=True)
    # False through a proxy: the server's IP address cannot be seen, so none is recorded.
    server_ip_observable: bool = _field(_bool)
    # "local" (socks5: answers recorded) or "proxy" (socks5h, http, https: none seen).
    names_resolved_by: str = _field(_str)
    extra: collections.abc.Mapping[str, Json] = _EXTRA

    def describe(self) -> str:
        """One sentence, e.g. "captured through a socks5h proxy; server IP not observable"."""
        text = f"captured through a {self.proxy_scheme} proxy"
        if self.proxy_address:
            text += f" at {self.proxy_address}"
        if not self.server_ip_observable:
            text += "; server IP not observable"
        if self.names_resolved_by == "proxy":
            text += "; names resolved by the proxy"
        return text


@attrs.frozen(kw_only=True)
class CaptureInfo(_Part):
    """What happened when the page was captured (the ``capture`` section)."""

    requested_url: str = _field(_str)
    final_url: str = _field(_str)
    status: int = _field(_int)
    started: str = _field(_str)
    ended: str = _field(_str)
    server_ip: str | None = _field(_str, optional=True)
    tls: TLSInfo | None = _field(_part(TLSInfo), optional=True)
    dns: collections.abc.Mapping[str, tuple[str, ...]] = _field(
        _map_of(_list_of(_str)), optional=True, default=_EMPTY
    )
    user_agent: str | None = _field(_str, optional=True)
    redirects: tuple[Hop, ...] = _field(_list_of(_part(Hop)), optional=True, default=())
    requisites: Requisites | None = _field(_part(Requisites), optional=True)
    refused: tuple[Refusal, ...] = _field(_list_of(_part(Refusal)), optional=True, default=())
    limits_hit: tuple[LimitHit, ...] = _field(_list_of(_part(LimitHit)), optional=True, default=())
    warnings: tuple[str, ...] = _field(_list_of(_str), optional=True, default=())
    title: str | None = _field(_str, optional=True, omit_none=True)
    browser: BrowserInfo | None = _field(_part(BrowserInfo), optional=True, omit_none=True)
    media: MediaInfo | None = _field(_part(MediaInfo), optional=True, omit_none=True)
    network: NetworkInfo | None = _field(_part(NetworkInfo), optional=True, omit_none=True)
    extra: collections.abc.Mapping[str, Json] = _EXTRA


@attrs.frozen(kw_only=True)
class InterimInfo(_Part):
    """Interim (1xx) responses the server sent before its answer: their exact
    bytes are one ``metadata`` record (``urn:http-interim:<url>``)."""

    record: str = _field(_str)
    statuses: tuple[int, ...] = _field(_list_of(_int))
    size: int = _field(_int)
    extra: collections.abc.Mapping[str, Json] = _EXTRA


@attrs.frozen(kw_only=True)
class ExchangeInfo(_Part):
    """One request/response pair recorded in the WARC."""

    url: str = _field(_str)
    role: str = _field(_str)
    found_in: str | None = _field(_str, optional=True)
    method: str = _field(_str)
    status: int = _field(_int)
    reason: str | None = _field(_str, optional=True)
    started: str = _field(_str)
    ended: str = _field(_str)
    server_ip: str | None = _field(_str, optional=True)
    server_port: int | None = _field(_int, optional=True)
    # None: an existing connection was reused, so there was no lookup.
    dns_answers: tuple[str, ...] | None = _field(_list_of(_str), optional=True)
    tls: TLSInfo | None = _field(_part(TLSInfo), optional=True)
    request_record: str = _field(_str)
    response_record: str = _field(_str)
    response_bytes: int = _field(_int)
    truncated: str | None = _field(_str, optional=True)
    interim: InterimInfo | None = _field(_part(InterimInfo), optional=True, omit_none=True)
    extra: collections.abc.Mapping[str, Json] = _EXTRA


@attrs.frozen(kw_only=True)
class PayloadFile(_Part):
    """A file under ``data/`` with its size and SHA-256 (hex)."""

    path: str = _field(_str)
    size: int = _field(_int)
    sha256: str = _field(_str)
    extra: collections.abc.Mapping[str, Json] = _EXTRA


@attrs.frozen(kw_only=True)
class _ManifestFields(_Part):
    """The top-level fields of a manifest other than ``warc`` (parsed apart)."""

    format: str = _field(_str)
    package_id: str = _field(_str)
    created: str = _field(_str)
    software: Software | None = _field(_part(Software), optional=True)
    operator: Operator | None = _field(_part(Operator), optional=True)
    options: collections.abc.Mapping[str, Json] | None = _field(_map_of(_plain), optional=True)
    capture: CaptureInfo | None = _field(_part(CaptureInfo), optional=True)
    certificate_chains: collections.abc.Mapping[str, tuple[CertificateInfo, ...]] | None = _field(
        _map_of(_list_of(_part(CertificateInfo))), optional=True
    )
    custody_log: str | None = _field(_str, optional=True)
    labels: collections.abc.Mapping[str, str] | None = _field(_map_of(_str), optional=True)
    exchanges: tuple[ExchangeInfo, ...] = _field(
        _list_of(_part(ExchangeInfo)), optional=True, default=()
    )
    files: tuple[PayloadFile, ...] = _field(_list_of(_part(PayloadFile)))
    extra: collections.abc.Mapping[str, Json] = _EXTRA


_MANIFEST_FIELDS = [f.name for f in attrs.fields(_ManifestFields) if f.metadata]


@attrs.frozen(kw_only=True)
class Manifest:
    """The sealed statement of a package, parsed strictly.

    ``sha256`` is the digest of the exact bytes it was parsed from (empty for
    a manifest built in memory and not yet serialised). ``options`` holds the
    capture settings as recorded (plain values; docs/format.md lists them).
    """

    format: str = FORMAT
    package_id: str
    created: str
    software: Software | None = None
    operator: Operator | None = None
    options: collections.abc.Mapping[str, Json] | None = None
    capture: CaptureInfo | None = None
    certificate_chains: collections.abc.Mapping[str, tuple[CertificateInfo, ...]] | None = None
    custody_log: str | None = None
    # The caller's own labels (case, notes, tags: e.g. a batch list's CSV
    # columns); sealed like everything else, and shown as untrusted text.
    labels: collections.abc.Mapping[str, str] | None = None
    exchanges: tuple[ExchangeInfo, ...] = ()
    files: tuple[PayloadFile, ...]
    warc_path: str
    records: Inventory
    extra: collections.abc.Mapping[str, Json] = _EMPTY
    sha256: bytes = b""

    @classmethod
    def from_bytes(cls, raw: bytes) -> Manifest:
        """Strictly parse manifest bytes. Raises ManifestError."""
        return cls.from_text(decode_strict(raw, what="manifest.json"), hashlib.sha256(raw).digest())

    @classmethod
    def from_text(cls, text: str, sha256: bytes) -> Manifest:
        """Parse text from :func:`decode_strict`, whose bytes had digest ``sha256``."""
        inventory = Inventory()
        data = strict_loads(text, what="manifest.json", inventory=inventory)
        if not isinstance(data, dict):
            raise ManifestError("manifest.json is not a JSON object")
        fmt = data.get("format")
        if fmt != FORMAT:
            raise ManifestError(f"unknown manifest format {fmt!r} (this software reads {FORMAT})")
        warc = _obj(data.get("warc"), "warc")
        if set(warc) != {"path", "records"}:
            _fail("warc", "an object with exactly path and records")
        records = warc["records"]
        if not isinstance(records, list):
            _fail("warc.records", "a list")
        if any(rec is not _RECORD for rec in records):
            raise ManifestError(
                "manifest WARC record entries need exactly id, type, date, target_uri, "
                "offset, length and sha256, with the right types"
            )
        if len(records) != len(inventory) or _depth(data)[1] != len(inventory):
            raise ManifestError("record-shaped objects appear outside warc.records")
        files = data.get("files")
        if not isinstance(files, list) or not all(
            isinstance(e, dict)
            and isinstance(e.get("path"), str)
            and _is_int(e.get("size"))
            and isinstance(e.get("sha256"), str)
            for e in files
        ):
            raise ManifestError("manifest 'files' entries need path, size and sha256")
        # ``warc`` is parsed apart: its records went into the inventory while
        # the JSON was read.
        parsed = _ManifestFields.from_json(
            {k: v for k, v in data.items() if k != "warc"}, "manifest"
        )
        return cls(
            **{k: getattr(parsed, k) for k in _MANIFEST_FIELDS},
            warc_path=_str(warc["path"], "warc.path"),
            records=inventory,
            extra=parsed.extra,
            sha256=sha256,
        )

    def to_json(self) -> dict[str, Json]:
        """The manifest as the JSON object :func:`dumps` serialises."""
        out: dict[str, Json] = {
            "format": self.format,
            "package_id": self.package_id,
            "created": self.created,
        }
        optional = {
            "software": self.software,
            "operator": self.operator,
            "options": self.options,
            "capture": self.capture,
            "certificate_chains": self.certificate_chains,
            "custody_log": self.custody_log,
            "labels": self.labels,
        }
        # A section that was absent stays absent; our writer always sets them.
        out.update({k: _to_json_value(v) for k, v in optional.items() if v is not None})
        if self.operator is None and self.software is not None:
            out["operator"] = None  # written explicitly: "no operator recorded"
        if self.exchanges or self.capture is not None:
            out["exchanges"] = [e.to_json() for e in self.exchanges]
        out["files"] = [f.to_json() for f in self.files]
        out["warc"] = {"path": self.warc_path, "records": self.records}
        out.update(self.extra)
        return out

    def to_bytes(self) -> bytes:
        """The canonical serialisation (see :func:`dumps`)."""
        return dumps(self.to_json())

    @property
    def page_exchange(self) -> ExchangeInfo | None:
        """The exchange of the page itself (the last one whose role is ``page``)."""
        return next((e for e in reversed(self.exchanges) if e.role == "page"), None)
