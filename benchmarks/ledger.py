"""Ledger benchmark: appends, proofs, and `ledger verify` vs verifying each package.

    .venv/bin/python benchmarks/ledger.py [--leaves 100000] [--packages 1000] [--proofs 1000]

1. Append ``--leaves`` leaves (each append: O(log n) reads, three appends,
   three fsyncs), reporting the time per append at the start and at the end.
2. Inclusion and consistency proofs at growing tree sizes: generation (from
   the files on disk) and verification, mean over ``--proofs`` random leaves.
3. An archive of ``--packages`` small synthetic packages (built directly, no
   network): `evidence ledger verify DIR` vs `evidence verify` of every
   package, each in one process.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _measure import run
from _synthetic import many_records

from evidence.keys import generate_keypair
from evidence.ledger import (
    LeafEntry,
    Ledger,
    add_packages,
    consistency_path,
    inclusion_path,
    init_ledger,
    make_checkpoint,
    verify_consistency,
    verify_inclusion,
)

WHEN = "2026-12-01T10:00:00.000000Z"


def entry(i: int) -> LeafEntry:
    return LeafEntry(
        f"20261201T100000Z-bench.invalid-{i:08x}", hashlib.sha256(b"%d" % i).hexdigest(), WHEN
    )


def appends(root: Path, leaves: int) -> Ledger:
    ledger = init_ledger(root / "appends", origin="bench.invalid/ledger")
    window = max(1, min(1000, leaves // 10))
    start = time.perf_counter()
    marks: list[tuple[int, float]] = []
    for i in range(leaves):
        if i % window == 0:
            marks.append((i, time.perf_counter()))
        ledger.append(entry(i))
    total = time.perf_counter() - start
    marks.append((leaves, time.perf_counter()))
    first = (marks[1][1] - marks[0][1]) / window * 1e3
    last = (marks[-1][1] - marks[-2][1]) / (marks[-1][0] - marks[-2][0]) * 1e3
    print(f"\n1. append {leaves:,} leaves")
    print(f"   total {total:.1f} s, mean {total / leaves * 1e3:.3f} ms per append")
    print(f"   first {window} appends: {first:.3f} ms each; last {marks[-1][0] - marks[-2][0]}: "
          f"{last:.3f} ms each (three fsyncs per append dominate)")  # fmt: skip
    sizes = [
        (p, (ledger.dir / p).stat().st_size) for p in ("leaves.txt", "leaves.idx", "hashes.bin")
    ]
    print("   files: " + ", ".join(f"{p} {s / 2**20:.1f} MiB" for p, s in sizes))
    return ledger


def proofs(ledger: Ledger, count: int) -> None:
    rng = random.Random(17)
    print(f"\n2. proofs, mean of {count} random leaves (generation reads the files)")
    print(f"   {'tree size':>10}  {'incl. gen':>10}  {'incl. verify':>12}  {'path':>4}  "
          f"{'cons. gen':>10}  {'cons. verify':>12}  {'path':>4}")  # fmt: skip
    size = 1000
    while size <= ledger.size:
        root = ledger.root(size)
        leaf_hashes = {}
        t = time.perf_counter()
        paths = []
        for _ in range(count):
            i = rng.randrange(size)
            paths.append((i, inclusion_path(i, size, ledger.range_hash)))
        gen = (time.perf_counter() - t) / count
        for i, _ in paths:
            leaf_hashes[i] = entry(i).hash
        t = time.perf_counter()
        for i, path in paths:
            assert verify_inclusion(leaf_hashes[i], i, size, path, root)
        ver = (time.perf_counter() - t) / count
        olds = [rng.randrange(1, size) for _ in range(count)]
        t = time.perf_counter()
        cps = [(m, consistency_path(m, size, ledger.range_hash)) for m in olds]
        cgen = (time.perf_counter() - t) / count
        roots = {m: ledger.root(m) for m in olds}
        t = time.perf_counter()
        for m, proof in cps:
            assert verify_consistency(m, size, proof, roots[m], root)
        cver = (time.perf_counter() - t) / count
        plen = max(len(p) for _, p in paths)
        clen = max(len(p) for _, p in cps)
        print(f"   {size:>10,}  {gen * 1e6:>8.0f}µs  {ver * 1e6:>10.0f}µs  {plen:>4}  "
              f"{cgen * 1e6:>8.0f}µs  {cver * 1e6:>10.0f}µs  {clen:>4}")  # fmt: skip
        size *= 10
        if size > ledger.size and size // 10 < ledger.size:
            size = ledger.size


def verify_archive(root: Path, packages: int) -> None:
    archive = root / "archive"
    init_ledger(archive, origin="bench.invalid/archive")
    t = time.perf_counter()
    paths = [many_records(archive, 3) for _ in range(packages)]
    build = time.perf_counter() - t
    t = time.perf_counter()
    add_packages(archive)
    add = time.perf_counter() - t
    make_checkpoint(archive, generate_keypair())
    print(
        f"\n3. {packages} packages (3 records each; built in {build:.1f} s, logged in {add:.1f} s)"
    )
    print(f"   {'command':<46} {'seconds':>8} {'peak MiB':>9} {'exit':>5}")
    cmd = [sys.executable, "-m", "evidence.cli"]
    rows = [
        ("evidence ledger verify DIR", run([*cmd, "ledger", "verify", str(archive)])),
        (f"evidence verify PKG x{packages} (one process)", run([*cmd, "verify", *map(str, paths)])),
    ]
    for name, (secs, peak, code) in rows:
        print(f"   {name:<46} {secs:>8.2f} {peak:>9.1f} {code:>5}")
    print(f"   ratio: ledger verify takes {rows[0][1][0] / rows[1][1][0]:.2f}x the time of "
          "verifying every package")  # fmt: skip
    print("   (exit 3: no --ledger-key / unsigned packages, so trust is not established;")
    print("    every integrity check ran. ledger verify compares manifest hashes; it does")
    print("    not re-verify each package's WARC, which is what `evidence verify` is for.)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leaves", type=int, default=100_000)
    parser.add_argument("--packages", type=int, default=1000)
    parser.add_argument("--proofs", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        ledger = appends(Path(tmp), args.leaves)
        proofs(ledger, args.proofs)
        verify_archive(Path(tmp), args.packages)
    return 0


if __name__ == "__main__":
    sys.exit(main())
