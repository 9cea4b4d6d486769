"""``evidence demo``: the whole chain, offline, on a bundled sample page.

Serves the fictional news article in ``demo_site/`` on 127.0.0.1, captures it
into a package, signs it with a throwaway key, and verifies it, printing what
happens at each step.
"""

from __future__ import annotations

import functools
import http.server
import importlib.resources
import os
import shlex
import sys
import threading
import typing
from pathlib import Path

from evidence.display import safe

__all__ = ["DEMO_KEY_DIR", "command_path", "run_demo", "serve_demo_site"]

DEMO_KEY_DIR = ".demo-keys"


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
            say(f"1. Serving a sample news article at {safe(url)}")
            key = generate_keypair()
            kid = key_id(key.public_key())
            say(f"2. Made a throwaway signing key {kid[:16]}... (a real one: evidence keygen)")
            result = capture(
                url, out=out, operator=Operator(organization="Demo Newsroom"), sign_with=[key]
            )
        finally:
            server.shutdown()
            server.server_close()
    # Keys live apart from packages, in a hidden folder, so that
    # `evidence verify archives/*` meets only packages.
    key_dir = Path(out) / DEMO_KEY_DIR
    key_dir.mkdir(mode=0o700, exist_ok=True)
    pub_path = key_dir / f"{result.package_id}.signer.pub"
    pub_path.write_bytes(public_key_pem(key.public_key()))
    say(f"3. Captured and signed: {safe(result.path)}")
    say(f"   HTTP {result.status}; signer's public key saved to {safe(pub_path)}")
    say("4. Verifying against that key:")
    report = verify(result.path, trust=Keyring([key.public_key()]))
    say()
    say(report.to_text())
    say()
    cmd = command_path()
    path = shlex.quote(result.path)
    say("Inspect it yourself:")
    say(f"  {cmd} show {path}")
    say(f"  {cmd} verify {path} --trust {shlex.quote(str(pub_path))}")
    say(f"  (cd {path} && sha256sum -c manifest-sha256.txt)")
    say(f"  zcat {path}/data/capture.warc.gz | less")
    return report.exit_code


def command_path() -> str:
    """How to run ``evidence`` from here: the script beside this Python when there
    is one (``.venv/bin/evidence`` after the README's commands), relative to the
    current directory when below it; else ``python -m evidence.cli``."""
    script = Path(sys.executable).parent / "evidence"
    if script.is_file() and os.access(script, os.X_OK):
        try:
            return shlex.quote(str(script.relative_to(Path.cwd())))
        except ValueError:
            return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m evidence.cli"
