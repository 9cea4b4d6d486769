"""WARC/1.1 files: writing (:mod:`.writer`) and strict checking (:mod:`.checker`).

We write WARC headers ourselves instead of through warcio's record builder,
because warcio re-parses and re-serialises the HTTP header block of response
records, which would break the promise that the block is byte-identical to
what the server sent. warcio stays the independent reader: the tests run
``warcio check`` on every WARC we produce.

The public names of both modules are re-exported here, so
``from evidence.warc import WARCWriter, check_warc`` keeps working.
"""

from __future__ import annotations

from evidence.warc.checker import (
    MAX_HTTP_HEADER_BYTES,
    MAX_WARC_HEADER_BYTES,
    ReaderState,
    RecordCheck,
    RecordLike,
    WARCCheck,
    check_warc,
    find_http_header_end,
)
from evidence.warc.writer import (
    MemberInfo,
    WARCWriter,
    format_digest,
    new_record_id,
    parse_digest,
)

__all__ = [
    "MAX_HTTP_HEADER_BYTES",
    "MAX_WARC_HEADER_BYTES",
    "MemberInfo",
    "ReaderState",
    "RecordCheck",
    "RecordLike",
    "WARCCheck",
    "WARCWriter",
    "check_warc",
    "find_http_header_end",
    "format_digest",
    "new_record_id",
    "parse_digest",
]
