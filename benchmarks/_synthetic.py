"""Build a package of many small records directly (no network), for verify benchmarks."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

from evidence.manifest import FORMAT, Manifest, dumps
from evidence.package import PackageWriter, make_package_id
from evidence.seal import bag_info_for
from evidence.warc import WARCWriter, find_http_header_end

WARC = "data/capture.warc.gz"


def many_records(out: Path, count: int) -> Path:
    """A valid, unsigned package whose WARC holds ``count`` small response records."""
    now = dt.datetime.now(dt.timezone.utc)
    pid = make_package_id("http://bench.invalid/", now)
    date = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with PackageWriter(out, pid) as pkg:
        with open(pkg.path(WARC), "xb") as fh:
            warc = WARCWriter(fh)
            for i in range(count):
                body = b"<p>record %d</p>" % i
                block = (
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n"
                    % (len(body))
                    + body
                )
                end, _ = find_http_header_end(block)
                warc.write_record(
                    record_type="response",
                    date=date,
                    content_type="application/http;msgtype=response",
                    block=block,
                    block_length=len(block),
                    block_sha256=hashlib.sha256(block).digest(),
                    payload_sha256=hashlib.sha256(block[end:]).digest(),
                    target_uri=f"http://bench.invalid/{i}",
                )
        manifest = {
            "format": FORMAT,
            "package_id": pid,
            "created": date,
            "files": [{"path": WARC, "size": warc.size, "sha256": warc.file_sha256()}],
            "warc": {"path": WARC, "records": [m.to_json() for m in warc.members]},
        }
        raw = dumps(manifest)
        return pkg.finish(
            manifest=raw,
            payload=[(WARC, warc.file_sha256(), warc.size)],
            # The bag-info the manifest implies: verify rebuilds and compares it.
            bag_info=bag_info_for(Manifest.from_bytes(raw)),
        )
