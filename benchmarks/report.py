"""Court report benchmark: time and peak memory of `evidence report` for 1 and 50 packages.

    .venv/bin/python benchmarks/report.py [--packages 50] [--repeat 3]

One real package is captured from the bundled demo site (offline, signed),
copied ``--packages`` times, and reported on as PDF/A-3 (WeasyPrint) and as
HTML, each run a fresh ``evidence report`` process (so the time includes
start-up and importing WeasyPrint). ``evidence verify`` of the same packages
is the baseline: the report verifies first, so the difference is the cost
of the document. Custody events are not appended (``--no-custody-event``),
so every run sees the same packages.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _measure import run

from evidence.capturing import Operator, capture
from evidence.demo import serve_demo_site
from evidence.keys import generate_keypair, public_key_pem


def make_packages(root: Path, count: int) -> tuple[list[Path], Path]:
    key = generate_keypair()
    pub = root / "signer.pub"
    pub.write_bytes(public_key_pem(key.public_key()))
    import evidence.demo

    site_dir = Path(evidence.demo.__file__).parent / "demo_site"
    server = serve_demo_site(site_dir)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        one = capture(
            url, out=root / "one", operator=Operator(organization="Bench"), sign_with=[key]
        )
    finally:
        server.shutdown()
        server.server_close()
    packages = []
    for i in range(count):
        dest = root / "many" / f"{i:03d}" / Path(one.path).name
        shutil.copytree(one.path, dest)
        packages.append(dest)
    return packages, pub


def best(cmd: list[str], repeat: int) -> tuple[float, float, int]:
    runs = [run(cmd) for _ in range(repeat)]
    return min(r[0] for r in runs), max(r[1] for r in runs), runs[-1][2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--packages", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    evidence_cmd = [sys.executable, "-m", "evidence.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        packages, pub = make_packages(root, args.packages)
        for count in sorted({1, args.packages}):
            chosen = [str(p) for p in packages[:count]]
            trust = ["--trust", str(pub)]
            rows = [
                ("evidence verify", best([*evidence_cmd, "verify", *chosen, *trust], args.repeat)),
                (
                    "evidence report --out r.html",
                    best(
                        [*evidence_cmd, "report", *chosen, *trust, "--no-custody-event",
                         "--out", str(root / "r.html")],
                        args.repeat,
                    ),
                ),
                (
                    "evidence report --out r.pdf",
                    best(
                        [*evidence_cmd, "report", *chosen, *trust, "--no-custody-event",
                         "--out", str(root / "r.pdf")],
                        args.repeat,
                    ),
                ),
            ]  # fmt: skip
            print(f"\n{count} package(s), best of {args.repeat}")
            print(f"{'command':<32} {'seconds':>9} {'peak MiB':>9} {'exit':>5} {'size KiB':>9}")
            for name, (secs, mib, code) in rows:
                out = root / name.rsplit(" ", 1)[-1] if "--out" in name else None
                size = f"{out.stat().st_size / 1024:>9.0f}" if out and out.exists() else f"{'-':>9}"
                print(f"{name:<32} {secs:>9.2f} {mib:>9.1f} {code:>5} {size}")


if __name__ == "__main__":
    main()
