"""Property: no mutation of a covered byte ever verifies; every intact package does.

Packages are real captures (random bodies and headers from a raw socket
server on 127.0.0.1), signed with a real key, with a custody log.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from evidence.capturing import CaptureOptions, capture
from evidence.verifying import Outcome, verify

from servers import RawServer

HEADER_NAMES = st.sampled_from(["X-A", "Set-Cookie", "Content-Type", "X-Odd", "Link"])
HEADER_VALUES = st.binary(min_size=0, max_size=40).filter(
    lambda b: b"\r" not in b and b"\n" not in b
)


@st.composite
def responses(draw) -> bytes:
    body = draw(st.binary(max_size=3000))
    headers = draw(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=5))
    chunked = draw(st.booleans())
    head = b"HTTP/1.1 %d OK\r\n" % draw(st.sampled_from([200, 201, 404, 500]))
    head += b"".join(n.encode() + b": " + v + b"\r\n" for n, v in headers)
    if chunked and body:
        framed = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
        return head + b"Transfer-Encoding: chunked\r\n\r\n" + framed
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


class _Server:
    def __init__(self) -> None:
        self.raw = b""
        self.server = RawServer(self._respond)

    def _respond(self, conn, _request) -> None:
        conn.sendall(self.raw)


def _package(server: _Server, raw: bytes, out: Path, key) -> Path:
    server.raw = raw
    opts = CaptureOptions(requisites=False, deadline=10)
    return Path(capture(server.server.url("/p"), out=out, options=opts, sign_with=[key]).path)


def _files(pkg: Path) -> list[Path]:
    return sorted(p for p in pkg.rglob("*") if p.is_file())


def test_intact_random_packages_always_verify(signer):
    server = _Server()

    @given(responses())
    def run(raw: bytes) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            pkg = _package(server, raw, Path(tmp), signer.key)
            report = verify(pkg, trust=[signer.pub])
            assert report.outcome is Outcome.VERIFIED, report.to_text()

    try:
        run()
    finally:
        server.server.close()


MUTATIONS = st.sampled_from(["flip", "range", "truncate", "insert", "delete"])


def test_any_mutation_of_any_covered_file_never_verifies(signer):
    server = _Server()

    @given(responses(), st.data())
    def run(raw: bytes, data) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            pkg = _package(server, raw, Path(tmp) / "a", signer.key)
            files = _files(pkg)
            # Draw indexes independent of sizes that vary from run to run
            # (record ids compress differently), so examples replay exactly.
            target = files[data.draw(st.integers(0, 10**6), label="file") % len(files)]
            original = target.read_bytes()
            kind = data.draw(MUTATIONS, label="mutation")
            pos = data.draw(st.integers(0, 10**9), label="offset") % max(len(original), 1)
            if kind == "flip" and original:
                bit = data.draw(st.integers(1, 255), label="xor")
                mutated = original[:pos] + bytes([original[pos] ^ bit]) + original[pos + 1 :]
            elif kind == "range":
                size = data.draw(st.integers(1, 64), label="size")
                mutated = (
                    original[:pos]
                    + data.draw(st.binary(min_size=1, max_size=64))
                    + original[pos + size :]
                )
            elif kind == "truncate":
                mutated = original[:pos]
            elif kind == "insert":
                mutated = (
                    original[:pos] + data.draw(st.binary(min_size=1, max_size=16)) + original[pos:]
                )
            else:
                mutated = original[:pos] + original[pos + 1 :]
            if mutated == original:
                return  # not a mutation
            target.write_bytes(mutated)
            report = verify(pkg, trust=[signer.pub])
            assert report.outcome is not Outcome.VERIFIED, (target.name, kind, pos)

    try:
        run()
    finally:
        server.server.close()


def test_deleting_any_file_never_verifies(signer, tmp_path):
    server = _Server()
    try:
        pkg = _package(
            server, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", tmp_path / "a", signer.key
        )
    finally:
        server.server.close()
    for i, target in enumerate(_files(pkg)):
        copy = tmp_path / f"c{i}"
        shutil.copytree(pkg, copy)
        (copy / target.relative_to(pkg)).unlink()
        report = verify(copy, trust=[signer.pub])
        assert report.outcome is not Outcome.VERIFIED, target.name
