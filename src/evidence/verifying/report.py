"""Verification results: named checks, an outcome, an exit code, text and JSON.

The JSON form is documented in docs/report-json.md (``report_version`` 1).
"""

from __future__ import annotations

import enum
import typing

import attrs

__all__ = ["Check", "Outcome", "Report", "Status"]


class Status(str, enum.Enum):
    """The result of one check. NOT_CHECKED is never a pass."""

    PASS = "PASS"  # noqa: S105 - not a password
    FAIL = "FAIL"
    WARN = "WARN"
    NOT_CHECKED = "NOT CHECKED"


class Outcome(str, enum.Enum):
    """The verdict on a package, with its CLI exit code."""

    VERIFIED = "verified"
    FAILED = "failed"
    UNTRUSTED = "intact-untrusted"
    NOT_A_PACKAGE = "not-a-package"

    @property
    def exit_code(self) -> int:
        return {"verified": 0, "failed": 1, "not-a-package": 2, "intact-untrusted": 3}[self.value]


@attrs.frozen
class Check:
    """One named check: ``name`` is stable for scripts, ``title`` reads well for people."""

    name: str
    title: str
    status: Status
    summary: str
    details: tuple[str, ...] = ()

    def to_json(self) -> dict[str, typing.Any]:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status.value,
            "summary": self.summary,
            "details": list(self.details),
        }


_VERDICTS = {
    Outcome.VERIFIED: ("VERIFIED: the package is intact and was signed by a key you trust."),
    Outcome.FAILED: (
        "FAILED: the package has been altered, damaged or wrongly signed; "
        "do not rely on it as it is."
    ),
    Outcome.UNTRUSTED: (
        "INTACT, TRUST NOT ESTABLISHED: every file matches the sealed manifest, "
        "but no signature by a key you trust vouches for it."
    ),
    Outcome.NOT_A_PACKAGE: "NOT A PACKAGE: this is not an evidence package.",
}


@attrs.frozen
class Report:
    """Everything the verifier found about one package."""

    package: str
    checks: tuple[Check, ...]
    outcome: Outcome
    trusted_signers: tuple[str, ...] = ()
    untrusted_signers: tuple[str, ...] = ()
    package_id: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True only when the outcome is VERIFIED."""
        return self.outcome is Outcome.VERIFIED

    @property
    def exit_code(self) -> int:
        return self.outcome.exit_code

    @property
    def verdict(self) -> str:
        return _VERDICTS[self.outcome]

    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status is Status.FAIL]

    def check(self, name: str) -> Check:
        """The check called ``name``; raises KeyError when absent."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_json(self) -> dict[str, typing.Any]:
        return {
            "report_version": 1,
            "package": self.package,
            "package_id": self.package_id,
            "outcome": self.outcome.value,
            "exit_code": self.exit_code,
            "verdict": self.verdict,
            "trusted_signers": list(self.trusted_signers),
            "untrusted_signers": list(self.untrusted_signers),
            "checks": [c.to_json() for c in self.checks],
            "notes": list(self.notes),
        }

    def to_text(self) -> str:
        width = max((len(c.status.value) for c in self.checks), default=4)
        lines = [f"Package: {self.package}"]
        if self.package_id:
            lines.append(f"Package id: {self.package_id}")
        lines.append("")
        for c in self.checks:
            lines.append(f"  {c.status.value:<{width}}  {c.title}: {c.summary}")
            for d in c.details[:20]:
                lines.append(f"  {'':<{width}}    - {d}")
            if len(c.details) > 20:
                lines.append(f"  {'':<{width}}    - ... and {len(c.details) - 20} more")
        lines.append("")
        lines.extend(self.notes)
        if self.notes:
            lines.append("")
        lines.append(self.verdict)
        return "\n".join(lines)
