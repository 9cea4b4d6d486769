from __future__ import annotations

import pytest

from evidence.errors import ManifestError
from evidence.manifest import FORMAT, MAX_DEPTH, Manifest, dumps, strict_loads


def minimal() -> dict:
    return {
        "format": FORMAT,
        "package_id": "x",
        "created": "2026-01-01T00:00:00.000000Z",
        "files": [{"path": "data/capture.warc.gz", "size": 1, "sha256": "0" * 64}],
        "warc": {"path": "data/capture.warc.gz", "records": []},
    }


def test_round_trip_is_deterministic():
    raw = dumps(minimal())
    assert Manifest.from_bytes(raw).to_json() == minimal()
    assert dumps(Manifest.from_bytes(raw).to_json()) == raw


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"a": 1, "a": 2}', "duplicate"),
        (b'{"a": NaN}', "NaN"),
        (b'{"a": Infinity}', "Infinity"),
        (b'{"a": -Infinity}', "Infinity"),
        (b'{"a": "\xff"}', "UTF-8"),
        (b'\xef\xbb\xbf{"a": 1}', "byte-order mark"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "nested"),
        (b'{"a": 1', "not valid JSON"),
        (b"", "not valid JSON"),
    ],
)
def test_strict_parse_rejects(raw, message):
    with pytest.raises(ManifestError, match=message):
        strict_loads(raw)


def test_depth_counter_ignores_brackets_in_strings():
    assert strict_loads(b'{"a": "' + b"[" * 100 + b'"}') == {"a": "[" * 100}


def test_size_limit():
    with pytest.raises(ManifestError, match="more than the limit"):
        strict_loads(b" " * 101, max_bytes=100)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(format="evidence-package/2"),
        lambda d: d.pop("format"),
        lambda d: d.update(files="nope"),
        lambda d: d["files"][0].update(size=True),
        lambda d: d["files"][0].update(size="1"),
        lambda d: d["warc"].update(records=[{"id": "x"}]),
        lambda d: d.pop("package_id"),
    ],
)
def test_manifest_shape_is_checked(change):
    data = minimal()
    change(data)
    with pytest.raises(ManifestError):
        Manifest.from_bytes(dumps(data))


def test_a_json_array_is_not_a_manifest():
    with pytest.raises(ManifestError, match="not a JSON object"):
        Manifest.from_bytes(b"[]")


def _record(i: int, sha: str = "ab" * 32) -> dict:
    return {
        "id": f"<urn:uuid:{i}>",
        "type": "response",
        "date": "2026-01-01T00:00:00Z",
        "target_uri": f"http://a/{i}",
        "offset": i * 10,
        "length": 10,
        "sha256": sha,
    }


def test_inventory_round_trips_byte_for_byte():
    data = minimal()
    data["warc"]["records"] = [_record(i) for i in range(5)] + [_record(5, sha="NOT-HEX")]
    raw = dumps(data)
    m = Manifest.from_bytes(raw)
    assert len(m.records) == 6
    assert m.records[2]["offset"] == 20 and m.records[2].get("id") == "<urn:uuid:2>"
    assert m.records[5]["sha256"] == "NOT-HEX"  # kept as written; the WARC check reports it
    assert m.records[-1] == m.records[5]
    assert dumps(m.to_json()) == raw


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(extra=[_record(1)]),  # record-shaped object outside warc.records
        lambda d: d["warc"]["records"].append({**_record(2), "offset": 2**64}),
        lambda d: d["warc"]["records"].append({**_record(3), "length": "10"}),
        lambda d: d["warc"]["records"].append({"id": "x"}),
    ],
)
def test_inventory_shape_is_strict(change):
    data = minimal()
    data["warc"]["records"] = [_record(0)]
    change(data)
    with pytest.raises(ManifestError):
        Manifest.from_bytes(dumps(data))
