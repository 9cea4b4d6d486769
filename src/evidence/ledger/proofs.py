"""Inclusion and consistency proof documents: making them and checking them."""

from __future__ import annotations

import base64
import hmac
import os
import re
import typing
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from evidence.display import safe
from evidence.errors import (
    EvidenceError,
    LedgerError,
    LedgerMismatchError,
    ManifestError,
    UsageError,
)
from evidence.ledger._base import (
    CONSISTENCY_FORMAT,
    INCLUSION_FORMAT,
    MAX_CHECKPOINT_BYTES,
    MAX_PROOF_BYTES,
    MAX_PROOF_HASHES,
    MAX_PROOF_TOKENS,
    MAX_TOKEN_BYTES,
    MAX_TREE_SIZE,
    SHA256_HEX_RE,
    read_bounded,
)
from evidence.ledger.merkle import (
    consistency_path,
    inclusion_path,
    verify_consistency,
    verify_inclusion,
)
from evidence.ledger.note import Checkpoint, b64decode_strict
from evidence.ledger.report import (
    Finding,
    LedgerCheck,
    LedgerReport,
    signature_check,
    simple_check,
    timestamp_check,
)
from evidence.ledger.store import LeafEntry, Ledger, package_facts
from evidence.manifest import strict_loads
from evidence.verifying.report import Status

if typing.TYPE_CHECKING:
    from cryptography import x509


# ---------------------------------------------------------------------------
# Inclusion proofs
# ---------------------------------------------------------------------------


def _find_leaf(ledger: Ledger, package: str) -> tuple[int, LeafEntry]:
    p = Path(package)
    if p.is_dir():
        facts = package_facts(p)
        found = ledger.find(facts.package_id)
        if not found:
            raise LedgerError(f"package {safe(facts.package_id)} is not in the ledger")
        index, entry = found[0]
        if entry.manifest_sha256 != facts.manifest_sha256:
            raise LedgerMismatchError(
                f"{p}: its manifest.json differs from the one logged as leaf {index}"
            )
        return index, entry
    found = ledger.find(package)
    if not found:
        raise LedgerError(f"no package {safe(package)} in the ledger (give an id or a directory)")
    return found[0]


def _pick_checkpoint(ledger: Ledger, index: int, number: int | None) -> tuple[int, Checkpoint]:
    numbers = ledger.checkpoint_numbers()
    if number is None:
        if not numbers:
            raise UsageError(
                f"{ledger.archive} has no checkpoint yet (run 'evidence ledger checkpoint')"
            )
        number = numbers[-1]
    cp = Checkpoint.from_bytes(ledger.read_checkpoint(number))
    if cp.size <= index:
        raise UsageError(
            f"leaf {index} was added after checkpoint {number} (size {cp.size}); "
            "make a new checkpoint"
        )
    if cp.size > ledger.size or not hmac.compare_digest(ledger.root(cp.size), cp.root):
        raise LedgerMismatchError(
            f"checkpoint {number} does not match this ledger; run 'evidence ledger verify'"
        )
    return number, cp


def inclusion_proof(
    archive_dir: str | os.PathLike[str], package: str, *, checkpoint: int | None = None
) -> dict[str, typing.Any]:
    """The inclusion proof document of a package (a directory or a package id).

    Args:
        checkpoint: prove inclusion in this checkpoint (default: the latest).

    Raises:
        LedgerError: no such package or checkpoint.
        LedgerMismatchError: the package or checkpoint disagrees with the ledger.
    """
    ledger = Ledger.open(archive_dir)
    index, entry = _find_leaf(ledger, package)
    number, cp = _pick_checkpoint(ledger, index, checkpoint)
    path = inclusion_path(index, cp.size, ledger.range_hash)
    return {
        "format": INCLUSION_FORMAT,
        "leaf": entry.to_json(),
        "leaf_index": index,
        "tree_size": cp.size,
        "audit_path": [h.hex() for h in path],
        "checkpoint_number": number,
        "checkpoint": cp.text(),
        "timestamps": [base64.b64encode(t).decode("ascii") for t in ledger.read_tokens(number)],
    }


def _require_file(source: str | os.PathLike[str] | bytes) -> None:
    """A proof path that is not a readable file is a usage error, not a FAIL."""
    if not isinstance(source, bytes) and not Path(source).is_file():
        raise LedgerError(f"{source}: no such proof file")


def _load_doc(
    source: str | os.PathLike[str] | bytes, fmt: str, fields: set[str]
) -> dict[str, typing.Any]:
    raw = source if isinstance(source, bytes) else read_bounded(Path(source), MAX_PROOF_BYTES)
    if len(raw) > MAX_PROOF_BYTES:
        raise LedgerError("the proof is larger than 8 MiB")
    try:
        doc = strict_loads(raw, what="proof", max_bytes=MAX_PROOF_BYTES)
    except ManifestError as exc:
        raise LedgerError(str(exc)) from exc
    if not isinstance(doc, dict):
        raise LedgerError("the proof is not a JSON object")
    if doc.get("format") != fmt:
        raise LedgerError(
            f"not an {fmt} document (format {safe(doc.get('format'), max_length=80)})"
        )
    if set(doc) != fields:
        extra = sorted(set(doc) - fields)
        absent = sorted(fields - set(doc))
        raise LedgerError(f"proof fields differ: unexpected {safe(extra)}, missing {safe(absent)}")
    return doc


def _int_field(doc: dict[str, typing.Any], name: str) -> int:
    value = doc[name]
    if type(value) is not int or not 0 <= value <= MAX_TREE_SIZE:
        raise LedgerError(f"proof field {name} is not a non-negative integer")
    return value


def _hash_list(value: object, name: str) -> list[bytes]:
    if not isinstance(value, list) or len(value) > MAX_PROOF_HASHES:
        raise LedgerError(f"proof field {name} is not a list of at most {MAX_PROOF_HASHES} hashes")
    out = []
    for item in value:
        if not isinstance(item, str) or not SHA256_HEX_RE.match(item):
            raise LedgerError(
                f"proof field {name} holds something that is not a lowercase hex hash"
            )
        out.append(bytes.fromhex(item))
    return out


def _checkpoint_field(value: object, name: str) -> Checkpoint:
    if not isinstance(value, str) or len(value) > MAX_CHECKPOINT_BYTES:
        raise LedgerError(f"proof field {name} is not a checkpoint text")
    return Checkpoint.from_bytes(value.encode("utf-8"))


_INCLUSION_FIELDS = {
    "format",
    "leaf",
    "leaf_index",
    "tree_size",
    "audit_path",
    "checkpoint_number",
    "checkpoint",
    "timestamps",
}


def check_inclusion(
    package_path: str | os.PathLike[str],
    proof: str | os.PathLike[str] | bytes,
    *,
    ledger_keys: typing.Sequence[Ed25519PublicKey] | None,
    tsa_roots: typing.Sequence[x509.Certificate] = (),
) -> LedgerReport:
    """Check an inclusion proof for a package without the rest of the archive.

    Raises only when ``proof`` names no file (LedgerError). Never raises for
    bad content: a malformed proof, a package that is not the
    logged one, a wrong path, a bad signature or token are FAILs. PASS on
    everything with a trusted key means: this package's manifest.json was in
    the tree the ledger key signed (and, with tokens, at their genTime).

    Args:
        package_path: the package directory.
        proof: the proof file (or its bytes).
        ledger_keys: keys trusted to sign checkpoints; ``None``: NOT CHECKED.
        tsa_roots: TSA roots you trust for the checkpoint tokens.
    """
    _require_file(proof)
    checks: list[LedgerCheck] = []
    facts: dict[str, typing.Any] = {}
    try:
        doc = _load_doc(proof, INCLUSION_FORMAT, _INCLUSION_FIELDS)
        leaf = doc["leaf"]
        if not isinstance(leaf, dict) or set(leaf) != {
            "package_id",
            "manifest_sha256",
            "time_added",
        }:
            raise LedgerError("proof field leaf is not {package_id, manifest_sha256, time_added}")
        entry = LeafEntry(leaf["package_id"], leaf["manifest_sha256"], leaf["time_added"])
        index = _int_field(doc, "leaf_index")
        size = _int_field(doc, "tree_size")
        number = _int_field(doc, "checkpoint_number")
        path = _hash_list(doc["audit_path"], "audit_path")
        cp = _checkpoint_field(doc["checkpoint"], "checkpoint")
        stamps = doc["timestamps"]
        if not isinstance(stamps, list) or len(stamps) > MAX_PROOF_TOKENS:
            raise LedgerError("proof field timestamps is not a short list")
        tokens = []
        for s in stamps:
            if not isinstance(s, str) or len(s) > MAX_TOKEN_BYTES * 2:
                raise LedgerError("a timestamp in the proof is not base64 text")
            tokens.append(b64decode_strict(s, "a timestamp in the proof"))
    except LedgerError as exc:
        checks.append(
            LedgerCheck(
                "inclusion-format",
                "Proof file",
                Status.FAIL,
                "not a valid inclusion proof",
                (Finding("proof-malformed", safe(str(exc))),),
            )
        )
        return LedgerReport("inclusion", str(package_path), tuple(checks))
    facts.update(
        leaf_index=index,
        tree_size=size,
        checkpoint_number=number,
        origin=cp.origin,
        package_id=entry.package_id,
    )
    checks.append(
        LedgerCheck(
            "inclusion-format",
            "Proof file",
            Status.PASS,
            f"{INCLUSION_FORMAT}, checkpoint {number}",
        )
    )

    # The package on disk is the logged one.
    pkg_findings: list[Finding] = []
    try:
        pf = package_facts(package_path)
        if pf.package_id != entry.package_id:
            pkg_findings.append(
                Finding(
                    "inclusion-wrong-package",
                    "the proof is for another package",
                    expected=entry.package_id,
                    found=pf.package_id,
                )
            )
        if pf.manifest_sha256 != entry.manifest_sha256:
            pkg_findings.append(
                Finding(
                    "inclusion-manifest-differs",
                    "this package's manifest.json is not the one logged",
                    package_id=pf.package_id,
                    expected=entry.manifest_sha256,
                    found=pf.manifest_sha256,
                )
            )
    except EvidenceError as exc:
        pkg_findings.append(Finding("package-unreadable", safe(str(exc)), path=str(package_path)))
    checks.append(
        simple_check(
            "inclusion-leaf",
            "Package is the logged leaf",
            pkg_findings,
            f"package {safe(entry.package_id)}, manifest SHA-256 {entry.manifest_sha256[:16]}…, "
            f"logged {entry.time_added}",
        )
    )
    tree_findings: list[Finding] = []
    if cp.size != size:
        tree_findings.append(
            Finding(
                "inclusion-size-mismatch",
                "the proof's tree size is not the checkpoint's",
                expected=str(cp.size),
                found=str(size),
            )
        )
    elif not verify_inclusion(entry.hash, index, size, path, cp.root):
        tree_findings.append(
            Finding(
                "inclusion-path-invalid",
                "the audit path does not lead from this leaf to the checkpoint's root",
                leaf_index=index,
            )
        )
    checks.append(
        simple_check(
            "inclusion-path",
            "Merkle audit path",
            tree_findings,
            f"leaf {index} is in the tree of {size} leaves with root {cp.root.hex()[:16]}…",
        )
    )
    checks.append(
        signature_check(
            "inclusion-checkpoint-signature",
            "Checkpoint signature",
            [("the checkpoint", cp)],
            ledger_keys,
        )
    )
    checks.append(
        timestamp_check(
            "inclusion-checkpoint-timestamp",
            "Checkpoint timestamp",
            [("the checkpoint", cp.raw, tokens)],
            tsa_roots,
        )
    )
    return LedgerReport("inclusion", str(package_path), tuple(checks), facts=facts)


# ---------------------------------------------------------------------------
# Consistency proofs
# ---------------------------------------------------------------------------


def _checkpoint_arg(ledger: Ledger, ref: str) -> tuple[str, Checkpoint]:
    if re.fullmatch(r"[0-9]{1,9}", ref) and not Path(ref).is_file():
        return f"checkpoint {int(ref)}", Checkpoint.from_bytes(ledger.read_checkpoint(int(ref)))
    return ref, Checkpoint.from_bytes(read_bounded(Path(ref), MAX_CHECKPOINT_BYTES))


def consistency_proof(
    archive_dir: str | os.PathLike[str], old: str, new: str
) -> dict[str, typing.Any]:
    """The consistency proof document between two checkpoints (numbers or files).

    Raises:
        LedgerMismatchError: a checkpoint does not match this ledger.
        UsageError: ``old`` is larger than ``new``.
    """
    ledger = Ledger.open(archive_dir)
    (old_label, a), (new_label, b) = _checkpoint_arg(ledger, old), _checkpoint_arg(ledger, new)
    if a.size > b.size:
        raise UsageError(
            f"{safe(old_label)} ({a.size} leaves) is newer than {safe(new_label)} ({b.size})"
        )
    for label, cp in ((old_label, a), (new_label, b)):
        if (
            cp.origin != ledger.origin
            or cp.size > ledger.size
            or not hmac.compare_digest(ledger.root(cp.size), cp.root)
        ):
            raise LedgerMismatchError(
                f"{safe(label)} does not match this ledger (run 'evidence ledger verify')"
            )
    return {
        "format": CONSISTENCY_FORMAT,
        "old_checkpoint": a.text(),
        "new_checkpoint": b.text(),
        "proof": [h.hex() for h in consistency_path(a.size, b.size, ledger.range_hash)],
    }


def check_consistency(
    proof: str | os.PathLike[str] | bytes,
    *,
    ledger_keys: typing.Sequence[Ed25519PublicKey] | None,
) -> LedgerReport:
    """Check a consistency proof with only the two checkpoints and the proof.

    Raises only when ``proof`` names no file (LedgerError); bad content is a FAIL.
    """
    _require_file(proof)
    subject = "<bytes>" if isinstance(proof, bytes) else str(proof)
    try:
        doc = _load_doc(
            proof, CONSISTENCY_FORMAT, {"format", "old_checkpoint", "new_checkpoint", "proof"}
        )
        a = _checkpoint_field(doc["old_checkpoint"], "old_checkpoint")
        b = _checkpoint_field(doc["new_checkpoint"], "new_checkpoint")
        path = _hash_list(doc["proof"], "proof")
    except LedgerError as exc:
        return LedgerReport(
            "consistency",
            subject,
            (
                LedgerCheck(
                    "consistency-format",
                    "Proof file",
                    Status.FAIL,
                    "not a valid consistency proof",
                    (Finding("proof-malformed", safe(str(exc))),),
                ),
            ),
        )
    findings: list[Finding] = []
    if a.origin != b.origin:
        findings.append(
            Finding(
                "consistency-origin",
                "the checkpoints name different logs",
                expected=a.origin,
                found=b.origin,
            )
        )
    elif not verify_consistency(a.size, b.size, path, a.root, b.root):
        findings.append(
            Finding(
                "consistency-invalid",
                "the newer tree does not extend the older one with this proof",
                expected=f"tree {a.size} is a prefix of tree {b.size}",
                found="the proof does not verify",
            )
        )
    checks = [
        LedgerCheck("consistency-format", "Proof file", Status.PASS, CONSISTENCY_FORMAT),
        simple_check(
            "consistency-proof",
            "Consistency",
            findings,
            f"the tree of {b.size} leaves extends the tree of {a.size} ({len(path)} hashes)",
        ),
        signature_check(
            "consistency-signatures",
            "Checkpoint signatures",
            [("the old checkpoint", a), ("the new checkpoint", b)],
            ledger_keys,
        ),
    ]
    return LedgerReport(
        "consistency",
        subject,
        tuple(checks),
        facts={"origin": a.origin, "old_size": a.size, "new_size": b.size},
    )
