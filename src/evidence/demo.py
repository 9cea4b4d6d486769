"""``evidence demo``: the whole chain, offline, on a bundled sample page.

Serves the fictional news article in ``demo_site/`` on 127.0.0.1, captures it
into a package, signs it with a throwaway key, and verifies it, printing what
happens at each step.
"""

from __future__ import annotations

import functools
import http.server
import importlib.resources
import threading
import typing
from pathlib import Path

__all__ = ["run_demo", "serve_demo_site"]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: typing.Any) -> None:
        pass


def serve_demo_site(directory: Path) -> http.server.ThreadingHTTPServer:
    """Start a threaded HTTP server for ``directory`` on 127.0.0.1 (random port)."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run_demo(*, out: str, stream: typing.TextIO) -> int:
    """Capture, sign and verify the sample page; returns an exit code."""
    from evidence.capturing import Operator, capture
    from evidence.keys import Keyring, generate_keypair, key_id, public_key_pem
    from evidence.verifying import verify

    def say(text: str = "") -> None:
        print(text, file=stream, flush=True)

    with importlib.resources.as_file(importlib.resources.files("evidence") / "demo_site") as site:
        server = serve_demo_site(Path(site))
        try:
            host, port = server.server_address[:2]
            url = f"http://{host!s}:{port}/index.html"
            say(f"1. Serving a sample news article at {url}")
            key = generate_keypair()
            kid = key_id(key.public_key())
            say(f"2. Made a throwaway signing key {kid[:16]}... (a real one: evidence keygen)")
            result = capture(
                url, out=out, operator=Operator(organization="Demo Newsroom"), sign_with=[key]
            )
        finally:
            server.shutdown()
            server.server_close()
    pub_path = Path(out) / f"{result.package_id}.signer.pub"
    pub_path.write_bytes(public_key_pem(key.public_key()))
    say(f"3. Captured and signed: {result.path}")
    say(f"   HTTP {result.status}; signer's public key saved to {pub_path}")
    say("4. Verifying against that key:")
    report = verify(result.path, trust=Keyring([key.public_key()]))
    say()
    say(report.to_text())
    say()
    say("Inspect it yourself:")
    say(f"  evidence show {result.path}")
    say(f"  evidence verify {result.path} --trust {pub_path}")
    say(f"  (cd {result.path} && sha256sum -c manifest-sha256.txt)")
    say(f"  zcat {result.path}/data/capture.warc.gz | less")
    return report.exit_code
