"""evidence.custody.parse_log: the pure parser listings use; it never raises for content (#10)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evidence.custody import APPENDABLE_EVENTS, EVENTS, parse_log

GOOD = {
    "actor": "Desk",
    "event": "checked",
    "note": "",
    "prev": "a" * 64,
    "seq": 1,
    "time": "2026-11-29T11:05:34.123456Z",
}


def line(**fields: object) -> bytes:
    obj = {**GOOD, **fields}
    obj = {k: v for k, v in obj.items() if v is not ...}
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def test_a_good_log_parses_without_problems():
    log = parse_log(line() + line(seq=2, key_id="b" * 64, signature="c2ln"))
    assert log.problems == ()
    assert [entry.problems for entry in log.lines] == [(), ()]
    first, second = log.events
    assert (first.seq, first.event, first.actor, first.signed) == (1, "checked", "Desk", False)
    assert second.signed and second.key_id == "b" * 64


def test_non_json_line_is_listed_as_unreadable_and_the_rest_still_parse():
    log = parse_log(line() + b"this is not json\n" + line(seq=3))
    bad = log.lines[1]
    assert bad.event is None and "not valid JSON" in bad.problems[0]
    assert [e.seq for e in log.events] == [1, 3]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"key_id": 12345, "signature": "c2ln"}, "key_id is int, not str"),
        ({"seq": ...}, "seq is missing"),
        ({"seq": True}, "seq is bool, not int"),
        ({"seq": 2.0}, "seq is float, not int"),
        ({"seq": 7}, "sequence number 7, expected 1"),
        ({"event": "bought"}, "unknown event type"),
        ({"time": "yesterday"}, "time is not in the package time format"),
        ({"note": ["x"]}, "note is list, not str"),
        ({"prev": "zz"}, "prev is not a SHA-256 hex digest"),
        ({"key_id": "B" * 64, "signature": "c2ln"}, "key_id is not 64 lowercase hex"),
        ({"key_id": "b" * 64}, "needs both key_id and signature"),
        ({"extra": 1}, "unknown field(s) extra"),
    ],
)
def test_odd_fields_are_problems_of_their_line(fields, problem):
    (entry,) = parse_log(line(**fields)).lines
    assert entry.event is not None
    assert any(problem in p for p in entry.problems), entry.problems


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"[1, 2]\n", "not a custody event object"),
        (b"\n", "empty line"),
        (b'{"seq": 1, "seq": 2}\n', "duplicate"),
        (b'{"seq": NaN}\n', "NaN"),
        (b"\xff\xfe\n", "UTF-8"),
    ],
)
def test_lines_that_are_not_events(data, problem):
    (entry,) = parse_log(data).lines
    assert entry.event is None
    assert problem.lower() in entry.problems[0].lower(), entry.problems


def test_cut_off_last_line_is_reported_not_raised():
    log = parse_log(line() + line(seq=2)[:-5])
    assert "does not end with a newline" in log.problems[0]
    assert len(log.lines) == 2 and log.lines[1].event is None


def test_lone_surrogates_are_kept_for_safe_display():
    (event,) = parse_log(line(note="\ud800 hidden")).events
    assert event.note == "\ud800 hidden"


def test_listing_is_bounded():
    log = parse_log(b"{}\n" * 50, max_lines=10)
    assert len(log.lines) == 10
    assert "40 more line(s) not listed" in log.problems


def test_captured_is_not_appendable():
    assert "captured" in EVENTS and "captured" not in APPENDABLE_EVENTS


@given(st.binary(max_size=512))
def test_parse_log_never_raises(data):
    log = parse_log(data)
    assert all(isinstance(p, str) for entry in log.lines for p in entry.problems)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=5,
)


@given(st.dictionaries(st.sampled_from([*sorted(GOOD), "key_id", "signature"]), JSON_VALUES))
def test_parse_log_never_raises_on_odd_types(obj):
    parse_log(json.dumps(obj).encode() + b"\n")
