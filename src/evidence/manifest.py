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
    "Inventory",
    "InventoryRecord",
    "Manifest",
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


def _require(data: dict[str, typing.Any], key: str, kind: type | tuple[type, ...]) -> typing.Any:
    value = data.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ManifestError(f"manifest field {key!r} is missing or has the wrong type")
    return value


@attrs.frozen
class Manifest:
    """A parsed manifest and the SHA-256 of the exact bytes it was parsed from."""

    sha256: bytes
    data: dict[str, typing.Any]

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
        _require(data, "package_id", str)
        _require(data, "created", str)
        files = _require(data, "files", list)
        for entry in files:
            if not (
                isinstance(entry, dict)
                and isinstance(entry.get("path"), str)
                and isinstance(entry.get("size"), int)
                and not isinstance(entry.get("size"), bool)
                and isinstance(entry.get("sha256"), str)
            ):
                raise ManifestError("manifest 'files' entries need path, size and sha256")
        warc = _require(data, "warc", dict)
        _require(warc, "path", str)
        records = _require(warc, "records", list)
        if any(rec is not _RECORD for rec in records):
            raise ManifestError(
                "manifest WARC record entries need exactly id, type, date, target_uri, "
                "offset, length and sha256, with the right types"
            )
        if len(records) != len(inventory) or _depth(data)[1] != len(inventory):
            raise ManifestError("record-shaped objects appear outside warc.records")
        warc["records"] = inventory
        return cls(sha256=sha256, data=data)

    @property
    def package_id(self) -> str:
        return typing.cast(str, self.data["package_id"])

    @property
    def created(self) -> str:
        return typing.cast(str, self.data["created"])

    @property
    def files(self) -> list[dict[str, typing.Any]]:
        return typing.cast("list[dict[str, typing.Any]]", self.data["files"])

    @property
    def warc_path(self) -> str:
        return typing.cast(str, self.data["warc"]["path"])

    @property
    def records(self) -> Inventory:
        return typing.cast(Inventory, self.data["warc"]["records"])

    @property
    def capture(self) -> dict[str, typing.Any]:
        value = self.data.get("capture")
        return value if isinstance(value, dict) else {}
