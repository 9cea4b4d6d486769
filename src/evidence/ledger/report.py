"""Ledger results: named checks with structured findings, an outcome, text and JSON."""

from __future__ import annotations

import hashlib
import typing

import attrs
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from evidence import clock
from evidence.display import safe
from evidence.ledger.note import Checkpoint
from evidence.verifying.report import Status

if typing.TYPE_CHECKING:
    from cryptography import x509


# ---------------------------------------------------------------------------
# Results: named checks, structured findings, an outcome
# ---------------------------------------------------------------------------


@attrs.frozen
class Finding:
    """One problem with fields a script can read; :meth:`sentence` is built from them."""

    kind: str
    message: str
    package_id: str | None = None
    leaf_index: int | None = None
    checkpoint: int | None = None
    path: str | None = None
    expected: str | None = None
    found: str | None = None

    def to_json(self) -> dict[str, typing.Any]:
        return {k: v for k, v in attrs.asdict(self).items() if v is not None}

    def sentence(self) -> str:
        parts = [self.message]
        if self.package_id is not None:
            parts.append(f"package {safe(self.package_id, max_length=120)}")
        if self.leaf_index is not None:
            parts.append(f"leaf {self.leaf_index}")
        if self.checkpoint is not None:
            parts.append(f"checkpoint {self.checkpoint}")
        if self.path is not None:
            parts.append(f"at {safe(self.path, max_length=200)}")
        if self.expected is not None:
            parts.append(f"expected {safe(self.expected, max_length=120)}")
        if self.found is not None:
            parts.append(f"found {safe(self.found, max_length=120)}")
        return "; ".join(parts)


@attrs.frozen
class LedgerCheck:
    """One named check: ``name`` is stable for scripts, ``title`` reads well for people."""

    name: str
    title: str
    status: Status
    summary: str
    findings: tuple[Finding, ...] = ()
    details: tuple[str, ...] = ()
    trust: bool = False  # a trust check: anything but PASS means trust is not established

    def to_json(self) -> dict[str, typing.Any]:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status.value,
            "summary": self.summary,
            "details": list(self.details),
            "findings": [f.to_json() for f in self.findings],
        }


_VERDICTS = {
    "verified": "VERIFIED: everything checked holds, and the checkpoints are signed by a key "
    "you trust.",
    "failed": "FAILED: see the FAIL lines; do not rely on this as it is.",
    "intact-untrusted": "CONSISTENT, TRUST NOT ESTABLISHED: nothing failed, but no signature by "
    "a key you trust vouches for the checkpoints (give --ledger-key).",
}


@attrs.frozen
class LedgerReport:
    """The result of :func:`verify_ledger`, :func:`check_inclusion` or :func:`check_consistency`.

    ``outcome``: ``failed`` when any check FAILs, ``intact-untrusted`` when a
    trust check did not PASS, else ``verified``. Exit codes as for verify:
    0, 1, 3.
    """

    kind: str
    subject: str
    checks: tuple[LedgerCheck, ...]
    notes: tuple[str, ...] = ()
    facts: typing.Mapping[str, typing.Any] = attrs.field(factory=dict)

    @property
    def outcome(self) -> str:
        if any(c.status is Status.FAIL for c in self.checks):
            return "failed"
        if any(c.trust and c.status is not Status.PASS for c in self.checks):
            return "intact-untrusted"
        return "verified"

    @property
    def ok(self) -> bool:
        return self.outcome == "verified"

    @property
    def exit_code(self) -> int:
        return {"verified": 0, "failed": 1, "intact-untrusted": 3}[self.outcome]

    def check(self, name: str) -> LedgerCheck:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def failures(self) -> list[LedgerCheck]:
        return [c for c in self.checks if c.status is Status.FAIL]

    def findings(self) -> list[Finding]:
        return [f for c in self.checks for f in c.findings]

    def to_json(self) -> dict[str, typing.Any]:
        return {
            "report_version": 1,
            "kind": self.kind,
            "subject": self.subject,
            "outcome": self.outcome,
            "exit_code": self.exit_code,
            "verdict": _VERDICTS[self.outcome],
            "facts": dict(self.facts),
            "checks": [c.to_json() for c in self.checks],
            "notes": list(self.notes),
        }

    def to_text(self) -> str:
        width = max((len(c.status.value) for c in self.checks), default=4)
        lines = [f"{self.kind.capitalize()}: {safe(self.subject)}", ""]
        for c in self.checks:
            lines.append(f"  {c.status.value:<{width}}  {c.title}: {c.summary}")
            items = [f.sentence() for f in c.findings] + list(c.details)
            for d in items[:20]:
                lines.append(f"  {'':<{width}}    - {d}")
            if len(items) > 20:
                lines.append(f"  {'':<{width}}    - ... and {len(items) - 20} more")
        lines.append("")
        lines.extend(self.notes)
        if self.notes:
            lines.append("")
        lines.append(_VERDICTS[self.outcome])
        return "\n".join(lines)


def simple_check(
    name: str,
    title: str,
    findings: typing.Sequence[Finding],
    ok: str,
    *,
    details: typing.Sequence[str] = (),
) -> LedgerCheck:
    if findings:
        n = len(findings)
        return LedgerCheck(
            name, title, Status.FAIL, f"{n} problem{'s' if n > 1 else ''}", tuple(findings)
        )
    return LedgerCheck(name, title, Status.PASS, ok, details=tuple(details))


def signature_check(
    name: str,
    title: str,
    checkpoints: typing.Sequence[tuple[str, Checkpoint]],
    keys: typing.Sequence[Ed25519PublicKey] | None,
) -> LedgerCheck:
    """One trust check over several checkpoints: each must carry a trusted signature."""
    if keys is None:
        return LedgerCheck(
            name,
            title,
            Status.NOT_CHECKED,
            "signatures NOT CHECKED: no ledger key given (--ledger-key)",
            trust=True,
        )
    findings: list[Finding] = []
    untrusted: list[str] = []
    signed_by: set[str] = set()
    for label, cp in checkpoints:
        good, bad = cp.signers(keys)
        signed_by.update(good)
        if bad:
            findings.append(
                Finding(
                    "checkpoint-signature-invalid",
                    f"{label}: a signature line claims a trusted key but does not verify",
                    expected="a valid Ed25519 signature over the checkpoint body",
                    found="an invalid signature (the checkpoint was altered)",
                )
            )
        elif not good:
            hints = ", ".join(
                f"{safe(s.name, max_length=60)}/{s.key_hash.hex()}" for s in cp.signatures
            )
            untrusted.append(f"{label}: signed only by keys you do not trust ({hints})")
    if findings:
        return LedgerCheck(
            name, title, Status.FAIL, "a signature does not verify", tuple(findings), trust=True
        )
    if untrusted:
        return LedgerCheck(
            name,
            title,
            Status.WARN,
            "not signed by a key you trust",
            details=tuple(untrusted),
            trust=True,
        )
    return LedgerCheck(
        name,
        title,
        Status.PASS,
        f"{len(checkpoints)} signed by a trusted key "
        f"({', '.join(k[:16] for k in sorted(signed_by))})",
        trust=True,
    )


def timestamp_check(
    name: str,
    title: str,
    items: typing.Sequence[tuple[str, bytes, typing.Sequence[bytes]]],
    roots: typing.Sequence[x509.Certificate],
) -> LedgerCheck:
    """Tokens over each checkpoint's bytes: imprint always, chain with ``roots``."""
    from evidence.timestamping import check_token

    findings: list[Finding] = []
    details: list[str] = []
    missing = 0
    for label, cp_bytes, tokens in items:
        if not tokens:
            missing += 1
            continue
        digest = hashlib.sha256(cp_bytes).digest()
        for k, token in enumerate(tokens, start=1):
            result = check_token(token, digest, roots=roots)
            if result.problems or result.gen_time is None:
                findings.append(
                    Finding(
                        "checkpoint-timestamp-invalid",
                        f"{label}, token {k}: {safe('; '.join(result.problems))}",
                    )
                )
            else:
                chain = "chain verified" if result.chain_checked else "chain NOT checked"
                details.append(
                    f"{label}, token {k}: genTime {clock.iso(result.gen_time)} ({chain})"
                )
    if findings:
        return LedgerCheck(
            name,
            title,
            Status.FAIL,
            "a token does not match",
            tuple(findings),
            details=tuple(details),
        )
    if not details:
        return LedgerCheck(name, title, Status.NOT_CHECKED, "no timestamp tokens")
    if not roots:
        return LedgerCheck(
            name,
            title,
            Status.NOT_CHECKED,
            "tokens match the checkpoint bytes; TSA chain NOT CHECKED (no --tsa-ca)",
            details=tuple(details),
        )
    note = f"; {missing} checkpoint(s) without a token" if missing else ""
    return LedgerCheck(name, title, Status.PASS, f"tokens verified{note}", details=tuple(details))
