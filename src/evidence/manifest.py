"""The manifest: the sealed statement at ``evidence/manifest.json``.

The manifest is written once and never rewritten; signatures and timestamps
cover its exact bytes. Reading is strict, because a lenient parser is a place
where two readers can disagree about what was signed: duplicate keys,
NaN/Infinity, invalid UTF-8, a byte-order mark, nesting deeper than
:data:`MAX_DEPTH`, a file bigger than :data:`MAX_MANIFEST_BYTES` and unknown
``format`` versions are all errors.
"""

from __future__ import annotations

import json
import typing

import attrs

from evidence.errors import ManifestError

__all__ = ["FORMAT", "MAX_DEPTH", "MAX_MANIFEST_BYTES", "Manifest", "dumps", "strict_loads"]

FORMAT = "evidence-package/1"
# A manifest for a page with thousands of requisites is a few MB; 64 MiB is
# far beyond any sane manifest and still cheap to refuse.
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 32


def dumps(obj: typing.Any) -> bytes:
    """Serialise deterministically: sorted keys, 2-space indent, UTF-8, final newline."""
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8") + b"\n"


def _no_duplicates(pairs: list[tuple[str, typing.Any]]) -> dict[str, typing.Any]:
    result: dict[str, typing.Any] = {}
    for key, value in pairs:
        if key in result:
            raise ManifestError(f"duplicate JSON key {key!r}")
        result[key] = value
    return result


def _no_constants(name: str) -> typing.NoReturn:
    raise ManifestError(f"JSON constant {name} is not allowed")


def _depth_ok(raw: str, limit: int) -> bool:
    """Bound nesting before json recurses, so hostile input cannot exhaust the stack."""
    depth = 0
    in_string = False
    escaped = False
    for ch in raw:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def strict_loads(
    raw: bytes, *, what: str = "JSON", max_bytes: int = MAX_MANIFEST_BYTES
) -> typing.Any:
    """Parse JSON strictly (see module docstring). Raises ManifestError."""
    if len(raw) > max_bytes:
        raise ManifestError(f"{what} is {len(raw)} bytes, more than the limit of {max_bytes}")
    if raw.startswith(b"\xef\xbb\xbf"):
        raise ManifestError(f"{what} starts with a byte-order mark")
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{what} is not valid UTF-8 (at byte {exc.start})") from exc
    if not _depth_ok(text, MAX_DEPTH):
        raise ManifestError(f"{what} is nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except ManifestError:
        raise
    except (ValueError, RecursionError) as exc:
        raise ManifestError(f"{what} is not valid JSON: {exc}") from exc


def _require(data: dict[str, typing.Any], key: str, kind: type | tuple[type, ...]) -> typing.Any:
    value = data.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ManifestError(f"manifest field {key!r} is missing or has the wrong type")
    return value


@attrs.frozen
class Manifest:
    """A parsed manifest together with the exact bytes it was parsed from."""

    raw: bytes
    data: dict[str, typing.Any]

    @classmethod
    def from_bytes(cls, raw: bytes) -> Manifest:
        """Strictly parse manifest bytes. Raises ManifestError."""
        data = strict_loads(raw, what="manifest.json")
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
        for rec in records:
            if not isinstance(rec, dict):
                raise ManifestError("manifest WARC record entries must be objects")
            for key, kind in (("id", str), ("type", str), ("date", str), ("sha256", str)):
                _require(rec, key, kind)
            for key in ("offset", "length"):
                _require(rec, key, int)
        return cls(raw=raw, data=data)

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
    def records(self) -> list[dict[str, typing.Any]]:
        return typing.cast("list[dict[str, typing.Any]]", self.data["warc"]["records"])

    @property
    def capture(self) -> dict[str, typing.Any]:
        value = self.data.get("capture")
        return value if isinstance(value, dict) else {}
