"""Requisite and title parsing stays linear on hostile text (the review's quadratic cases).

Each hostile parse runs in a child process with a time limit, so a regression
fails in seconds instead of hanging the suite (the old code needed minutes
for 160 KB and would need days for these few MB).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from evidence.capturing.requisites import Found, css_urls, html_requisites, page_title

SIZE = 3 * 1024 * 1024  # characters of hostile text per case
LIMIT = 10.0  # seconds; the fixed code needs well under one


def run_bounded(code: str) -> str:
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=LIMIT
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"parsing hostile input took more than {LIMIT} s")
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize(
    ("call", "unit"),
    [
        ("css_urls(t, 'http://x/')", "url("),  # backtracking in the unquoted url() form
        ("css_urls(t, 'http://x/')", "url( "),
        ("css_urls(t, 'http://x/')", "/*a"),  # unterminated comments, each rescanned
        ("css_urls(t, 'http://x/')", "@import "),
        ("html_requisites('<style>' + t + '</style>', 'http://x/')", "url("),
        ("html_requisites('<p style=\"' + t + '\">', 'http://x/')", "url("),
        ("html_requisites(t, 'http://x/')", "<a "),  # close() re-parses an open tail
        ("html_requisites(t, 'http://x/')", "<a b='"),
        ("page_title('<title>' + t)", "< "),  # the title length summed on every piece
        ("page_title('<title>' + t)", "<a "),
        ("page_title(t)", "<!--"),
    ],
)
def test_hostile_text_parses_in_bounded_time(call, unit):
    code = (
        "from evidence.capturing.requisites import css_urls, html_requisites, page_title\n"
        f"t = {unit!r} * ({SIZE} // {len(unit)})\n"
        f"{call}\n"
        "print('ok')\n"
    )
    assert run_bounded(code).strip() == "ok"


def test_css_url_forms_still_found():
    css = (
        "a{background:url( 'q1.png' )} b{background:URL(\"q2.png\")}"
        " c{background:url(  plain.png  )} d{background:url()} /* url(gone.png) */"
        " @import 'i1.css'; @import url(i2.css); e{src:url(f.woff2)} g{x:url(a(b).png)}"
        " /* unterminated url(never.png)"
    )
    found = css_urls(css, "http://x/s/")
    assert found == [
        Found("http://x/s/i1.css", "css-import"),
        Found("http://x/s/q1.png", "image"),
        Found("http://x/s/q2.png", "image"),
        Found("http://x/s/plain.png", "image"),
        Found("http://x/s/i2.css", "css-import"),
        Found("http://x/s/f.woff2", "font"),
    ]


def test_title_is_capped_and_still_found():
    assert page_title("<html><head><title> A  &amp; B </title></head>") == "A & B"
    assert page_title("<title>open at the end &amp") == "open at the end &"
    long = page_title("<title>" + "word " * 10_000 + "</title>")
    assert long is not None and len(long) == 1000
    assert page_title("<p>no title") is None
    assert html_requisites("<img src=a.png><img src='b", "http://x/") == [
        Found("http://x/a.png", "image")
    ]
