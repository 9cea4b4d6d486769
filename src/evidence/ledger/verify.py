"""Verifying a whole ledger against itself, its checkpoints and the packages beside it."""

from __future__ import annotations

import hmac
import itertools
import os
import typing
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from evidence.display import safe
from evidence.errors import EvidenceError, LedgerError
from evidence.ledger._base import (
    MAX_CHECKPOINT_BYTES,
    read_bounded,
)
from evidence.ledger.merkle import consistency_path, verify_consistency
from evidence.ledger.note import Checkpoint
from evidence.ledger.report import (
    Finding,
    LedgerCheck,
    LedgerReport,
    signature_check,
    simple_check,
    timestamp_check,
)
from evidence.ledger.store import (
    LeafEntry,
    Ledger,
    PackageFacts,
    package_facts,
    packages_on_disk,
    read_token,
    recompute,
)
from evidence.verifying.report import Status

if typing.TYPE_CHECKING:
    from cryptography import x509


# ---------------------------------------------------------------------------
# Verifying a whole ledger
# ---------------------------------------------------------------------------


def _tree_mismatch(
    cp: Checkpoint,
    size: int,
    roots: typing.Mapping[int, bytes],
    kind: str,
    *,
    shorter: str,
    rewritten: str,
    checkpoint: int | None = None,
    path: str | None = None,
) -> list[Finding]:
    """Whether the log still holds the tree checkpoint ``cp`` names: none, or one finding."""
    if cp.size > size:
        expected, found, message = f"at least {cp.size} leaves", f"{size} leaves", shorter
    elif cp.size in roots and not hmac.compare_digest(roots[cp.size], cp.root):
        expected, found, message = cp.root.hex(), roots[cp.size].hex(), rewritten
    else:
        return []
    return [
        Finding(kind, message, checkpoint=checkpoint, path=path, expected=expected, found=found)
    ]


def verify_ledger(
    archive_dir: str | os.PathLike[str],
    *,
    ledger_keys: typing.Sequence[Ed25519PublicKey] | None,
    tsa_roots: typing.Sequence[x509.Certificate] = (),
    published: typing.Sequence[str | os.PathLike[str]] = (),
) -> LedgerReport:
    """Check a ledger against itself, its checkpoints and the packages beside it.

    Never raises for bad content; every problem is a FAIL in the report.

    Args:
        archive_dir: the archive directory holding ``ledger/``.
        ledger_keys: public keys you trust to sign checkpoints; ``None`` means
            signatures are NOT CHECKED (and the outcome is never ``verified``).
        tsa_roots: TSA roots you trust; without them token chains are not checked.
        published: checkpoint files you hold from elsewhere (sent to a
            newsroom, a court registry): each must match this ledger.

    Raises:
        LedgerError: there is no readable ledger at all.
    """
    # Steps:
    #  1. open ledger.json (format, origin);
    #  2. storage: stream leaves.txt, recompute hashes.bin, note a torn tail;
    #  3. leaves: each parses, no package id twice;
    #  4. checkpoints: names, numbering, format and origin, signatures,
    #     tree (root at its size equals the recomputed root), consistency with
    #     the next, timestamps;
    #  5. published checkpoints the caller holds;
    #  6. packages on disk against the log: missing, replaced, never logged.
    ledger = Ledger.open(archive_dir)  # 1
    checks: list[LedgerCheck] = []
    notes = list(ledger.notes)

    # 4 (listing first: the recomputation needs the checkpoint sizes).
    format_findings: list[Finding] = []
    try:
        cps, tokens, unexpected = ledger.checkpoint_files()
    except LedgerError as exc:
        cps, tokens, unexpected = {}, {}, []
        format_findings.append(Finding("checkpoints-unreadable", safe(str(exc))))
    parsed: dict[int, Checkpoint] = {}
    for name in unexpected:
        format_findings.append(
            Finding("unexpected-file", "a file that is not a checkpoint or token", path=name)
        )
    numbers = sorted(cps)
    for expected_n, n in enumerate(numbers, start=1):
        if n != expected_n:
            format_findings.append(
                Finding(
                    "checkpoint-missing",
                    "checkpoint numbering has a gap (a checkpoint was removed)",
                    checkpoint=expected_n,
                )
            )
            break
    for n in numbers:
        try:
            cp = Checkpoint.from_bytes(read_bounded(cps[n], MAX_CHECKPOINT_BYTES))
        except LedgerError as exc:
            format_findings.append(Finding("checkpoint-malformed", str(exc), checkpoint=n))
            continue
        if cp.origin != ledger.origin:
            format_findings.append(
                Finding(
                    "checkpoint-origin",
                    "the checkpoint names another log",
                    checkpoint=n,
                    expected=ledger.origin,
                    found=cp.origin,
                )
            )
            continue
        parsed[n] = cp
    for n in tokens:
        if n not in cps:
            format_findings.append(
                Finding("unexpected-file", "a timestamp token without its checkpoint", checkpoint=n)
            )

    held: list[tuple[str, Checkpoint]] = []
    published_findings: list[Finding] = []
    for p in published:
        try:
            held.append(
                (str(p), Checkpoint.from_bytes(read_bounded(Path(p), MAX_CHECKPOINT_BYTES)))
            )
        except LedgerError as exc:
            published_findings.append(Finding("published-malformed", str(exc), path=str(p)))

    sizes = {cp.size for cp in parsed.values()} | {cp.size for _, cp in held}
    rec = recompute(ledger, sizes)  # 2, 3
    checks.append(
        simple_check(
            "ledger-storage",
            "Log storage",
            rec.findings,
            f"{ledger.size} leaves; stored hashes match the leaves",
        )
    )
    dup_findings: list[Finding] = []
    seen: dict[str, int] = {}
    for index, entry in rec.entries:
        if entry.package_id in seen:
            dup_findings.append(
                Finding(
                    "package-logged-twice",
                    f"also logged as leaf {seen[entry.package_id]}",
                    package_id=entry.package_id,
                    leaf_index=index,
                )
            )
        seen.setdefault(entry.package_id, index)
    checks.append(
        simple_check("ledger-leaves", "Log entries", dup_findings, "each package logged once")
    )

    checks.append(
        simple_check(
            "checkpoint-files",
            "Checkpoint files",
            format_findings,
            f"{len(numbers)} checkpoint(s), numbered without gaps, well-formed",
        )
    )
    ordered = [(n, parsed[n]) for n in sorted(parsed)]
    checks.append(
        signature_check(
            "checkpoint-signatures",
            "Checkpoint signatures",
            [(f"checkpoint {n}", cp) for n, cp in ordered],
            ledger_keys,
        )
        if ordered
        else LedgerCheck(
            "checkpoint-signatures",
            "Checkpoint signatures",
            Status.NOT_CHECKED,
            "no checkpoint: nothing is signed yet (run 'evidence ledger checkpoint')",
            trust=True,
        )
    )
    tree_findings: list[Finding] = []
    for n, cp in ordered:
        tree_findings.extend(
            _tree_mismatch(
                cp,
                ledger.size,
                rec.roots,
                "checkpoint-tree-rewritten",
                shorter="the log is shorter than this signed checkpoint (entries were removed)",
                rewritten="the log no longer has the tree this checkpoint signed",
                checkpoint=n,
            )
        )
    checks.append(
        simple_check(
            "checkpoint-trees",
            "Checkpoint trees",
            tree_findings,
            "every checkpoint's root is the log's root at its size",
        )
    )
    rewritten = {f.checkpoint for f in tree_findings}
    cons_findings: list[Finding] = []
    cons_details: list[str] = []
    for (n1, a), (n2, b) in itertools.pairwise(ordered):
        if b.size < a.size:
            cons_findings.append(
                Finding(
                    "checkpoint-shrank",
                    f"checkpoint {n2} has a smaller tree than checkpoint {n1}",
                    checkpoint=n2,
                    expected=f">= {a.size}",
                    found=str(b.size),
                )
            )
            continue
        if rec.findings or {n1, n2} & rewritten:
            continue  # already a FAIL above; a proof from a damaged log proves nothing
        proof = consistency_path(a.size, b.size, ledger.range_hash)
        if verify_consistency(a.size, b.size, proof, a.root, b.root):
            cons_details.append(f"{n1} -> {n2}: {a.size} -> {b.size} leaves, {len(proof)} hashes")
        else:
            cons_findings.append(
                Finding(
                    "checkpoint-inconsistent",
                    f"checkpoint {n2} does not extend checkpoint {n1}",
                    checkpoint=n2,
                )
            )
    checks.append(
        simple_check(
            "checkpoint-consistency",
            "Checkpoint consistency",
            cons_findings,
            "each checkpoint extends the one before it"
            if len(ordered) > 1
            else "fewer than two checkpoints",
            details=cons_details,
        )
    )
    checks.append(
        timestamp_check(
            "checkpoint-timestamps",
            "Checkpoint timestamps",
            [
                (
                    f"checkpoint {n}",
                    cp.raw,
                    [read_token(p) for p in sorted(tokens.get(n, []))],
                )
                for n, cp in ordered
            ],
            tsa_roots,
        )
    )

    if published:  # 5
        for label, cp in held:
            if cp.origin != ledger.origin:
                published_findings.append(
                    Finding(
                        "published-origin",
                        "names another log",
                        path=label,
                        expected=ledger.origin,
                        found=cp.origin,
                    )
                )
            else:
                published_findings.extend(
                    _tree_mismatch(
                        cp,
                        ledger.size,
                        rec.roots,
                        "published-checkpoint-inconsistent",
                        shorter="the log is shorter than a checkpoint you hold "
                        "(entries were removed)",
                        rewritten="the log was rewritten since you were given this checkpoint",
                        path=label,
                    )
                )
        checks.append(
            simple_check(
                "published-checkpoints",
                "Checkpoints you hold",
                published_findings,
                f"{len(held)} held checkpoint(s) match this log",
            )
        )
        if held:
            sig = signature_check(
                "published-signatures", "Signatures on checkpoints you hold", held, ledger_keys
            )
            checks.append(sig)

    checks.extend(_compare_packages(ledger, rec.entries))  # 6
    return LedgerReport(
        "ledger",
        str(ledger.archive),
        tuple(checks),
        tuple(notes),
        {
            "origin": ledger.origin,
            "tree_size": ledger.size,
            "root_hash": ledger.root().hex() if not rec.findings else None,
            "checkpoints": len(numbers),
        },
    )


def _compare_packages(
    ledger: Ledger, entries: typing.Sequence[tuple[int, LeafEntry]]
) -> list[LedgerCheck]:
    logged: dict[str, tuple[int, LeafEntry]] = {}
    for index, entry in entries:
        logged.setdefault(entry.package_id, (index, entry))
    on_disk: dict[str, PackageFacts] = {}
    unreadable: list[Finding] = []
    for path in sorted(packages_on_disk(ledger.archive)):
        try:
            facts = package_facts(path)
        except EvidenceError as exc:
            unreadable.append(Finding("package-unreadable", safe(str(exc)), path=str(path)))
            continue
        if facts.package_id in on_disk:
            unreadable.append(
                Finding(
                    "package-id-twice",
                    "two directories hold packages with the same id",
                    package_id=facts.package_id,
                    path=str(path),
                )
            )
            continue
        on_disk[facts.package_id] = facts
    missing = [
        Finding(
            "logged-package-missing",
            "a logged package is not in the archive directory (deleted or moved)",
            package_id=pid,
            leaf_index=index,
            expected=entry.manifest_sha256,
        )
        for pid, (index, entry) in sorted(logged.items(), key=lambda kv: kv[1][0])
        if pid not in on_disk
    ]
    replaced = [
        Finding(
            "package-replaced",
            "the package on disk is not the one logged (its manifest.json differs)",
            package_id=pid,
            leaf_index=logged[pid][0],
            path=str(f.path),
            expected=logged[pid][1].manifest_sha256,
            found=f.manifest_sha256,
        )
        for pid, f in sorted(on_disk.items())
        if pid in logged and logged[pid][1].manifest_sha256 != f.manifest_sha256
    ]
    unlogged = [
        Finding(
            "package-not-logged",
            "a package in the archive directory was never logged",
            package_id=pid,
            path=str(f.path),
            found=f.manifest_sha256,
        )
        for pid, f in sorted(on_disk.items())
        if pid not in logged
    ]
    return [
        simple_check(
            "packages-readable",
            "Packages on disk",
            unreadable,
            f"{len(on_disk)} package(s) read",
        ),
        simple_check(
            "packages-present",
            "Logged packages present",
            missing,
            "every logged package is on disk",
        ),
        simple_check(
            "packages-unchanged",
            "Packages unchanged",
            replaced,
            "every package on disk matches its leaf",
        ),
        simple_check(
            "packages-logged", "Packages logged", unlogged, "every package on disk is logged"
        ),
    ]
