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
import typing

import attrs

from evidence.errors import ManifestError

__all__ = [
    "FORMAT",
    "MAX_DEPTH",
    "MAX_MANIFEST_BYTES",
    "CaptureInfo",
    "CertificateInfo",
    "ExchangeInfo",
    "Hop",
    "Inventory",
    "InventoryRecord",
    "LimitHit",
    "Manifest",
    "Operator",
    "PayloadFile",
    "Refusal",
    "RequisiteFailure",
    "Requisites",
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
    return text.encode("utf-8") + b"\n"


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
# Each part of the manifest is a frozen attrs class with ``from_json`` (strict:
# a field of the wrong type is a ManifestError naming it, never a crash later
# in a reader) and ``to_json`` (the exact dict the writer serialises). Unknown
# fields are kept in ``extra`` and written back, so a newer manifest read by
# this version loses nothing. Optional fields written only when set are listed
# in each class's ``_OMIT_NONE``; every other field is always written.

Json = typing.Any
_T = typing.TypeVar("_T")


def _fail(where: str, expected: str) -> typing.NoReturn:
    raise ManifestError(f"manifest field {where} is missing or not {expected}")


def _obj(value: Json, where: str) -> dict[str, Json]:
    if not isinstance(value, dict):
        _fail(where, "an object")
    return value


class _Fields:
    """Typed access to one JSON object, remembering which keys were used."""

    def __init__(self, value: Json, where: str) -> None:
        self.data = _obj(value, where)
        self.where = where
        self.used: set[str] = set()

    def _get(self, key: str, optional: bool) -> Json:
        self.used.add(key)
        if key not in self.data and not optional:
            _fail(f"{self.where}.{key}", "present")
        return self.data.get(key)

    def text(self, key: str, *, optional: bool = False) -> str | None:
        value = self._get(key, optional)
        if value is None and optional:
            return None
        if not isinstance(value, str):
            _fail(f"{self.where}.{key}", "a string")
        return value

    def req_text(self, key: str) -> str:
        value = self.text(key)
        assert value is not None
        return value

    def integer(self, key: str, *, optional: bool = False) -> int | None:
        value = self._get(key, optional)
        if value is None and optional:
            return None
        if not _is_int(value):
            _fail(f"{self.where}.{key}", "an integer")
        return typing.cast(int, value)

    def flag(self, key: str, *, optional: bool = False) -> bool | None:
        value = self._get(key, optional)
        if value is None and optional:
            return None
        if not isinstance(value, bool):
            _fail(f"{self.where}.{key}", "true or false")
        return value

    def items(
        self, key: str, parse: typing.Callable[[Json, str], _T], *, optional: bool = False
    ) -> tuple[_T, ...]:
        value = self._get(key, optional)
        if value is None and optional:
            return ()
        if not isinstance(value, list):
            _fail(f"{self.where}.{key}", "a list")
        return tuple(parse(item, f"{self.where}.{key}[{i}]") for i, item in enumerate(value))

    def texts(self, key: str, *, optional: bool = False) -> tuple[str, ...]:
        return self.items(key, _string, optional=optional)

    def nested(
        self, key: str, parse: typing.Callable[[Json, str], _T], *, optional: bool = True
    ) -> _T | None:
        value = self._get(key, optional)
        if value is None:
            return None
        return parse(value, f"{self.where}.{key}")

    def extra(self) -> dict[str, Json]:
        return {k: v for k, v in self.data.items() if k not in self.used}


def _string(value: Json, where: str) -> str:
    if not isinstance(value, str):
        _fail(where, "a string")
    return value


def _json_of(obj: typing.Any, omit_none: typing.Collection[str] = ()) -> dict[str, Json]:
    out: dict[str, Json] = {}
    for field in attrs.fields(type(obj)):
        if field.name == "extra":
            continue
        value = getattr(obj, field.name)
        if value is None and field.name in omit_none:
            continue
        out[field.name] = _to_json_value(value)
    out.update(getattr(obj, "extra", {}))
    return out


def _to_json_value(value: Json) -> Json:
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, tuple | list):
        return [_to_json_value(v) for v in value]
    if isinstance(value, collections.abc.Mapping):
        return {k: _to_json_value(v) for k, v in value.items()}
    return value


def _frozen_map(value: dict[str, _T]) -> collections.abc.Mapping[str, _T]:
    import types

    return types.MappingProxyType(dict(value))


_EMPTY: collections.abc.Mapping[str, Json] = {}


@attrs.frozen(kw_only=True)
class Software:
    """The software that made the package."""

    name: str
    version: str
    python: str | None = None
    implementation: str | None = None
    platform: str | None = None
    openssl: str | None = None
    libraries: collections.abc.Mapping[str, str | None] = _EMPTY
    extra: collections.abc.Mapping[str, Json] = _EMPTY

    @classmethod
    def from_json(cls, value: Json, where: str = "software") -> Software:
        f = _Fields(value, where)
        libs = _obj(f.nested("libraries", lambda v, w: v) or {}, f"{where}.libraries")
        for name, version in libs.items():
            if version is not None and not isinstance(version, str):
                _fail(f"{where}.libraries.{name}", "a string or null")
        return cls(
            name=f.req_text("name"),
            version=f.req_text("version"),
            python=f.text("python", optional=True),
            implementation=f.text("implementation", optional=True),
            platform=f.text("platform", optional=True),
            openssl=f.text("openssl", optional=True),
            libraries=_frozen_map(libs),
            extra=_frozen_map(f.extra()),
        )

    def to_json(self) -> dict[str, Json]:
        return _json_of(self)


@attrs.frozen
class Operator:
    """Who ran the capture. Optional on purpose: some operators are at risk."""

    name: str | None = None
    organization: str | None = None
    extra: collections.abc.Mapping[str, Json] = attrs.field(default=_EMPTY, kw_only=True)

    @classmethod
    def from_json(cls, value: Json, where: str = "operator") -> Operator:
        f = _Fields(value, where)
        return cls(
            f.text("name", optional=True),
            f.text("organization", optional=True),
            extra=_frozen_map(f.extra()),
        )

    def to_json(self) -> dict[str, Json]:
        return _json_of(self, omit_none=("name", "organization"))

    @property
    def label(self) -> str | None:
        """``name / organization`` as far as known, or None."""
        return " / ".join(x for x in (self.name, self.organization) if x) or None


@attrs.frozen(kw_only=True)
class CertificateInfo:
    """One certificate of a TLS chain, as the server presented it."""

    sha256: str
    subject: str | None = None
    issuer: str | None = None
    serial: str | None = None
    not_before: str | None = None
    not_after: str | None = None
    san: tuple[str, ...] | None = None
    error: str | None = None
    extra: collections.abc.Mapping[str, Json] = _EMPTY

    _OMIT_NONE = ("subject", "issuer", "serial", "not_before", "not_after", "san", "error")

    @classmethod
    def from_json(cls, value: Json, where: str) -> CertificateInfo:
        f = _Fields(value, where)
        san = f.texts("san", optional=True) if f.data.get("san") is not None else None
        f.used.add("san")
        return cls(
            sha256=f.req_text("sha256"),
            subject=f.text("subject", optional=True),
            issuer=f.text("issuer", optional=True),
            serial=f.text("serial", optional=True),
            not_before=f.text("not_before", optional=True),
            not_after=f.text("not_after", optional=True),
            san=san,
            error=f.text("error", optional=True),
            extra=_frozen_map(f.extra()),
        )

    def to_json(self) -> dict[str, Json]:
        return _json_of(self, self._OMIT_NONE)


def _cert_list(value: Json, where: str) -> tuple[CertificateInfo, ...]:
    if not isinstance(value, list):
        _fail(where, "a list")
    return tuple(CertificateInfo.from_json(v, f"{where}[{i}]") for i, v in enumerate(value))


@attrs.frozen(kw_only=True)
class TLSInfo:
    """The TLS session of one exchange."""

    protocol: str | None
    cipher: str | None
    verified: bool
    certificate_sha256: str | None
    chain_file: str | None
    chain_complete: bool
    chain_note: str | None = None
    certificates: tuple[CertificateInfo, ...] | None = None
    extra: collections.abc.Mapping[str, Json] = _EMPTY

    @classmethod
    def from_json(cls, value: Json, where: str) -> TLSInfo:
        f = _Fields(value, where)
        return cls(
            protocol=f.text("protocol", optional=True),
            cipher=f.text("cipher", optional=True),
            verified=bool(f.flag("verified")),
            certificate_sha256=f.text("certificate_sha256", optional=True),
            chain_file=f.text("chain_file", optional=True),
            chain_complete=bool(f.flag("chain_complete")),
            chain_note=f.text("chain_note", optional=True),
            certificates=f.nested("certificates", _cert_list),
            extra=_frozen_map(f.extra()),
        )

    def to_json(self) -> dict[str, Json]:
        return _json_of(self, ("chain_note", "certificates"))


@attrs.frozen(kw_only=True)
class Hop:
    """One redirect: ``url`` answered ``status`` pointing to ``location``."""

    url: str
    status: int
    location: str
    error: str | None = None
    extra: collections.abc.Mapping[str, Json] = _EMPTY

    @classmethod
    def from_json(cls, value: Json, where: str) -> Hop:
        f = _Fields(value, where)
        return cls(
            url=f.req_text("url"),
            status=typing.cast(int, f.integer("status")),
            location=f.req_text("location"),
            error=f.text("error", optional=True),
            extra=_frozen_map(f.extra()),
        )

    def to_json(self) -> dict[str, Json]:
        return _json_of(self, ("error",))


@attrs.frozen(kw_only=True)
class LimitHit:
    """A capture limit that was reached."""

    limit: str
    url: str | None
    detail: str | None
    extra: collections.abc.Mapping[str, Json] = _EMPTY

    @classmethod
    def from_json(cls, value: Json, where: str) -> LimitHit:
        f = _Fields(value, where)
        return cls(
            limit=f.req_text("limit"),
            url=f.text("url", optional=True),
            detail=f.text("detail", optional=True),
            extra=_frozen_map(f.extra()),
        )

    def to_json(self) -> dict[str, Json]:
        return _json_of(self)


@attrs.frozen(kw_only=True)
class RequisiteFailure:
    """A requisite that gave no usable response."""

    url: str
    kind: str | None
    found_in: str | None
    error: str
    extra: collections.abc.Mapping[str, Json] = _EMPTY

    @classmethod
    def from_json(cls, value: Json, where: str) -> RequisiteFailure:
        f = _Fields(value, where)
        return cls(
            url=f.req_text("url"),
            kind=f.text("kind", optional=True),
            found_in=f.text("found_in", optional=True),
            error=f.req_text("error"),
            extra=_frozen_map(f.extra()),
        )

    def to_json(self) -> dict[str, Json]:
        return _json_of(self)


@attrs.frozen(kw_only=True)
class Requisites:
    """What the requisite phase did."""

    enabled: bool
    fetched: int = 0
    failed: tuple[RequisiteFailure, ...] = ()
    skipped: int = 0
    limits_hit: tuple[LimitHit, ...] = ()
    extra: collections.abc.Mapping[str, Json] = _EMPTY

    @classmethod
    def from_json(cls, value: Json, where: str) -> Requisites:
        f = _Fields(value, where)
        return cls(
            enabled=bool(f.flag("enabled")),
            fetched=f.integer("fetched", optional=True) or 0,
            failed=f.items("failed", RequisiteFailure.from_json, optional=True),
            skipped=f.integer("skipped", optional=True) or 0,
            limits_hit=f.items("limits_hit", LimitHit.from_json, optional=True),
            extra=_frozen_map(f.extra()),
        )

    def to_json(self) -> dict[str, Json]:
        return _json_of(self)


@attrs.frozen(kw_only=True)
class Refusal:
    """A destination that ``public_only`` refused."""

    url: str | None
    reason: str
    extra: collections.abc.Mapping[str, Json] = _EMPTY

    @classmethod
    def from_json(cls, value: Json, where: str) -> Refusal:
        f = _Fields(value, where)
        return cls(
            url=f.text("url", optional=True),
            reason=f.req_text("reason"),
            extra=_frozen_map(f.extra()),
        )

    def to_json(self) -> dict[str, Json]:
        return _json_of(self)


def _dns(value: Json, where: str) -> collections.abc.Mapping[str, tuple[str, ...]]:
    data = _obj(value, where)
    return _frozen_map(
        {
            host: tuple(
                _string(a, f"{where}.{host}[{i}]")
                for i, a in enumerate(
                    answers if isinstance(answers, list) else _fail(where, "lists")
                )
            )
            for host, answers in data.items()
        }
    )


@attrs.frozen(kw_only=True)
class CaptureInfo:
    """What happened when the page was captured (the ``capture`` section)."""

    requested_url: str
    final_url: str
    status: int
    started: str
    ended: str
    server_ip: str | None
    tls: TLSInfo | None
    dns: collections.abc.Mapping[str, tuple[str, ...]]
    user_agent: str | None
    redirects: tuple[Hop, ...]
    requisites: Requisites | None
    refused: tuple[Refusal, ...]
    limits_hit: tuple[LimitHit, ...]
    warnings: tuple[str, ...]
    title: str | None = None
    extra: collections.abc.Mapping[str, Json] = _EMPTY

    @classmethod
    def from_json(cls, value: Json, where: str = "capture") -> CaptureInfo:
        f = _Fields(value, where)
        return cls(
            requested_url=f.req_text("requested_url"),
            final_url=f.req_text("final_url"),
            status=typing.cast(int, f.integer("status")),
            started=f.req_text("started"),
            ended=f.req_text("ended"),
            server_ip=f.text("server_ip", optional=True),
            tls=f.nested("tls", TLSInfo.from_json),
            dns=f.nested("dns", _dns) or _frozen_map({}),
            user_agent=f.text("user_agent", optional=True),
            redirects=f.items("redirects", Hop.from_json, optional=True),
            requisites=f.nested("requisites", Requisites.from_json),
            refused=f.items("refused", Refusal.from_json, optional=True),
            limits_hit=f.items("limits_hit", LimitHit.from_json, optional=True),
            warnings=f.texts("warnings", optional=True),
            title=f.text("title", optional=True),
            extra=_frozen_map(f.extra()),
        )

    def to_json(self) -> dict[str, Json]:
        return _json_of(self, ("title",))


@attrs.frozen(kw_only=True)
class ExchangeInfo:
    """One request/response pair recorded in the WARC."""

    url: str
    role: str
    found_in: str | None
    method: str
    status: int
    reason: str | None
    started: str
    ended: str
    server_ip: str | None
    server_port: int | None
    dns_answers: tuple[str, ...] | None
    tls: TLSInfo | None
    request_record: str
    response_record: str
    response_bytes: int
    truncated: str | None
    extra: collections.abc.Mapping[str, Json] = _EMPTY

    @classmethod
    def from_json(cls, value: Json, where: str) -> ExchangeInfo:
        f = _Fields(value, where)
        answers = f.data.get("dns_answers")
        return cls(
            url=f.req_text("url"),
            role=f.req_text("role"),
            found_in=f.text("found_in", optional=True),
            method=f.req_text("method"),
            status=typing.cast(int, f.integer("status")),
            reason=f.text("reason", optional=True),
            started=f.req_text("started"),
            ended=f.req_text("ended"),
            server_ip=f.text("server_ip", optional=True),
            server_port=f.integer("server_port", optional=True),
            dns_answers=None if answers is None else f.texts("dns_answers"),
            tls=f.nested("tls", TLSInfo.from_json),
            request_record=f.req_text("request_record"),
            response_record=f.req_text("response_record"),
            response_bytes=typing.cast(int, f.integer("response_bytes")),
            truncated=f.text("truncated", optional=True),
            extra=_frozen_map(f.extra()),
        )

    def to_json(self) -> dict[str, Json]:
        out = _json_of(self)
        if self.dns_answers is None:
            out["dns_answers"] = None
        return out


@attrs.frozen(kw_only=True)
class PayloadFile:
    """A file under ``data/`` with its size and SHA-256 (hex)."""

    path: str
    size: int
    sha256: str
    extra: collections.abc.Mapping[str, Json] = _EMPTY

    @classmethod
    def from_json(cls, value: Json, where: str) -> PayloadFile:
        if not (
            isinstance(value, dict)
            and isinstance(value.get("path"), str)
            and _is_int(value.get("size"))
            and isinstance(value.get("sha256"), str)
        ):
            raise ManifestError("manifest 'files' entries need path, size and sha256")
        f = _Fields(value, where)
        return cls(
            path=f.req_text("path"),
            size=typing.cast(int, f.integer("size")),
            sha256=f.req_text("sha256"),
            extra=_frozen_map(f.extra()),
        )

    def to_json(self) -> dict[str, Json]:
        return _json_of(self)


def _chains(value: Json, where: str) -> collections.abc.Mapping[str, tuple[CertificateInfo, ...]]:
    data = _obj(value, where)
    return _frozen_map({k: _cert_list(v, f"{where}.{k}") for k, v in data.items()})


def _options(value: Json, where: str) -> collections.abc.Mapping[str, Json]:
    data = _obj(value, where)
    for key, item in data.items():
        if isinstance(item, dict | list):
            _fail(f"{where}.{key}", "a plain value")
    return _frozen_map(data)


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
        f = _Fields(data, "manifest")
        f.used.add("format")
        warc = _Fields(f._get("warc", False), "warc")
        warc_path = warc.req_text("path")
        records = warc._get("records", False)
        if not isinstance(records, list):
            _fail("warc.records", "a list")
        if any(rec is not _RECORD for rec in records):
            raise ManifestError(
                "manifest WARC record entries need exactly id, type, date, target_uri, "
                "offset, length and sha256, with the right types"
            )
        if len(records) != len(inventory) or _depth(data)[1] != len(inventory):
            raise ManifestError("record-shaped objects appear outside warc.records")
        if warc.extra():
            _fail("warc", "an object with only path and records")
        return cls(
            package_id=f.req_text("package_id"),
            created=f.req_text("created"),
            software=f.nested("software", Software.from_json),
            operator=f.nested("operator", Operator.from_json),
            options=f.nested("options", _options),
            capture=f.nested("capture", CaptureInfo.from_json),
            certificate_chains=f.nested("certificate_chains", _chains),
            custody_log=f.text("custody_log", optional=True),
            exchanges=f.items("exchanges", ExchangeInfo.from_json, optional=True),
            files=f.items("files", PayloadFile.from_json),
            warc_path=warc_path,
            records=inventory,
            extra=_frozen_map(f.extra()),
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
