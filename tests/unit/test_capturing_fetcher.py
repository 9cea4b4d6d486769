"""fetcher.py's connection classes: with a proxy, no path connects directly."""

from __future__ import annotations

import pytest
import requests

from evidence.capturing.fetcher import Fetcher, FetchLimits
from evidence.capturing.upstream import ProxyURL

from servers import closed_port, fixed_response

PAGE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


def test_a_connection_opened_outside_fetch_is_refused_never_direct(raw_server):
    # The proxy reaches the connection through the exchange's thread-local
    # state. A request on the fetcher's session without that state (a new
    # caller, a library path that opens a connection on its own) used to
    # connect straight to the server: the operator's address, past --proxy.
    origin = raw_server(fixed_response(PAGE))
    fetcher = Fetcher(
        user_agent="t",
        limits=FetchLimits(connect_timeout=3, read_timeout=3),
        proxy=ProxyURL.parse(f"socks5h://127.0.0.1:{closed_port()}"),
    )
    try:
        with pytest.raises(requests.ConnectionError, match="outside an exchange"):
            fetcher._session.get(origin.url("/"), timeout=3)
    finally:
        fetcher.close()
    assert origin.peers == [], "nothing reached the server directly"
