"""Capture a page, sign it and verify it from Python: the whole chain in one script.

    python examples/capture_sign_verify.py [URL] [--out DIR]

Without a URL it serves the bundled sample article on 127.0.0.1, so it runs
offline. It makes a throwaway key; in real use, load yours with
evidence.keys.load_private_key().
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import sys
import tempfile
from pathlib import Path

import evidence
from evidence.demo import serve_demo_site
from evidence.keys import Keyring, generate_keypair


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url", nargs="?")
    parser.add_argument("--out", default=tempfile.mkdtemp(prefix="evidence-example-"))
    args = parser.parse_args()

    key = generate_keypair()
    server = None
    url = args.url
    if url is None:
        site = Path(str(importlib.resources.files("evidence") / "demo_site"))
        server = serve_demo_site(site)
        url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
    try:
        result = evidence.capture(
            url,
            out=args.out,
            operator=evidence.Operator(organization="Example NGO"),
            sign_with=[key],
        )
    except evidence.CaptureError as exc:
        print(f"no package: {exc}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.shutdown()

    report = evidence.verify(result.path, trust=Keyring([key.public_key()]))
    print(
        json.dumps(
            {"package": result.path, "status": result.status, "outcome": report.outcome.value},
            indent=2,
        )
    )
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
