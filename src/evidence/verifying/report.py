"""Verification results: structured findings, named checks, an outcome, text and JSON.

The JSON form is documented in docs/report-json.md (``report_version`` 2).

Everything a package controls (its directory name, package id, URLs, file
names, custody notes and actors, key ids taken from file names, error text
quoting content) reaches people only through :func:`evidence.display.safe`
in :meth:`Report.to_text`, one value per line, so no package can forge or
hide a line of the report. :meth:`Report.to_json` keeps values as they are,
except that lone surrogates (which JSON text cannot carry faithfully) are
made visible the same way.
"""

from __future__ import annotations

import enum
import typing

import attrs

from evidence.display import safe

__all__ = ["Check", "Finding", "Outcome", "Report", "Status", "Subject"]


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
class Finding:
    """One problem or fact found by a check, with the fields a script needs.

    ``message`` says what is wrong in our words; the other fields locate it.
    The sentence people read is built from the fields (:attr:`text`).
    """

    message: str
    path: str | None = None
    record_id: str | None = None
    offset: int | None = None
    expected: str | int | None = None
    found: str | int | None = None

    def _render(self, show: typing.Callable[[object], str]) -> str:
        text = f"{show(self.path)}: {show(self.message)}" if self.path else show(self.message)
        where = []
        if self.record_id is not None:
            where.append(f"record {show(self.record_id)}")
        if self.offset is not None:
            where.append(f"offset {self.offset}")
        if where:
            text += f" ({', '.join(where)})"
        if self.expected is not None or self.found is not None:
            text += f": expected {show(self.expected)}, found {show(self.found)}"
        return text

    @property
    def text(self) -> str:
        """The finding as one sentence (raw values: pass it through ``safe`` to show it)."""
        return self._render(str)

    def to_text(self) -> str:
        """The finding as one line safe to print: every value through ``safe``."""
        return self._render(safe)

    def __str__(self) -> str:
        return self.text

    def __contains__(self, part: str) -> bool:
        """``"word" in finding`` searches its text, as it did when details were strings."""
        return part in self.text

    def to_json(self) -> dict[str, typing.Any]:
        return {
            "message": self.message,
            "path": self.path,
            "record_id": self.record_id,
            "offset": self.offset,
            "expected": self.expected,
            "found": self.found,
            "text": self.text,
        }


def _findings(values: typing.Iterable[Finding | str]) -> tuple[Finding, ...]:
    return tuple(v if isinstance(v, Finding) else Finding(str(v)) for v in values)


@attrs.frozen
class Check:
    """One named check: ``name`` is stable for scripts, ``title`` reads well for people.

    ``details`` are :class:`Finding` objects (plain strings are converted);
    ``not_listed`` counts findings beyond the report's limit.
    """

    name: str
    title: str
    status: Status
    summary: str
    details: tuple[Finding, ...] = attrs.field(default=(), converter=_findings)
    not_listed: int = 0

    @property
    def findings(self) -> tuple[Finding, ...]:
        """The same as :attr:`details`."""
        return self.details

    def to_json(self) -> dict[str, typing.Any]:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status.value,
            "summary": self.summary,
            "findings": [f.to_json() for f in self.details],
            "findings_not_listed": self.not_listed,
        }


@attrs.frozen
class Subject:
    """What was verified, read from the manifest (unverified until the outcome says so)."""

    requested_url: str | None = None
    final_url: str | None = None
    status: int | None = None
    captured_at: str | None = None
    created: str | None = None
    # How the servers were reached, when not directly ("captured through a
    # socks5h proxy; server IP not observable").
    network: str | None = None
    # Who captured, as the manifest says: "name / organization", or
    # "operator identity sealed to N recipients" (evidence.sealing.operator_text).
    operator: str | None = None

    def to_json(self) -> dict[str, typing.Any]:
        doc: dict[str, typing.Any] = {
            "requested_url": self.requested_url,
            "final_url": self.final_url,
            "status": self.status,
            "captured_at": self.captured_at,
            "created": self.created,
            "operator": self.operator,
        }
        if self.network is not None:
            doc["network"] = self.network
        return doc


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
_SHOWN_DETAILS = 20


def _json_clean(value: typing.Any) -> typing.Any:
    """Make lone surrogates visible, so the document is valid UTF-8 JSON in any encoding."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "".join(
                f"\u27eaU+{ord(ch):04X}\u27eb" if 0xD800 <= ord(ch) <= 0xDFFF else ch
                for ch in value
            )
        return value
    if isinstance(value, dict):
        return {_json_clean(k): _json_clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_clean(v) for v in value]
    return value


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
    subject: Subject | None = None
    # Key ids whose signature over the manifest is valid but whose key the
    # caller did not trust (a subset of untrusted_signers).
    valid_untrusted_signers: tuple[str, ...] = ()
    verified_at: str | None = None
    software_version: str | None = None
    # Hex SHA-256 of the manifest.json bytes whose signatures were checked
    # (None when there were none): what a later reader of the package, such
    # as the court report, must find again.
    manifest_sha256: str | None = None
    # The same for each timestamp token checked, by path
    # (``evidence/timestamps/<name>.tsr``).
    timestamp_sha256: typing.Mapping[str, str] = attrs.field(factory=dict)

    @property
    def ok(self) -> bool:
        """True only when the outcome is VERIFIED."""
        return self.outcome is Outcome.VERIFIED

    @property
    def exit_code(self) -> int:
        return self.outcome.exit_code

    @property
    def verdict(self) -> str:
        text = _VERDICTS[self.outcome]
        status = self.subject.status if self.subject is not None else None
        if self.outcome is Outcome.VERIFIED and status is not None and status >= 400:
            text += (
                f" It is a verified record of an HTTP {status} response: it proves what "
                "the server answered, not that a page with content existed."
            )
        return text

    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status is Status.FAIL]

    def check(self, name: str) -> Check:
        """The check called ``name``; raises KeyError when absent."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_json(self) -> dict[str, typing.Any]:
        doc = {
            "report_version": 2,
            "package": self.package,
            "package_id": self.package_id,
            "outcome": self.outcome.value,
            "exit_code": self.exit_code,
            "verdict": self.verdict,
            "subject": self.subject.to_json() if self.subject is not None else None,
            "trusted_signers": list(self.trusted_signers),
            "untrusted_signers": list(self.untrusted_signers),
            "valid_untrusted_signers": list(self.valid_untrusted_signers),
            "verified_at": self.verified_at,
            "software_version": self.software_version,
            "manifest_sha256": self.manifest_sha256,
            "timestamp_sha256": dict(self.timestamp_sha256),
            "checks": [c.to_json() for c in self.checks],
            "notes": list(self.notes),
        }
        return typing.cast("dict[str, typing.Any]", _json_clean(doc))

    def _header(self) -> list[str]:
        lines = [f"Package:       {safe(self.package)}"]
        if self.package_id is not None:
            lines.append(f"Package id:    {safe(self.package_id)}")
        s = self.subject
        if s is None:
            lines.append("Captured page: unknown (no valid manifest to read it from)")
        else:
            lines.append(f"Captured URL:  {safe(s.requested_url) if s.requested_url else '-'}")
            if s.final_url and s.final_url != s.requested_url:
                lines.append(f"Final URL:     {safe(s.final_url)}")
            lines.append(f"HTTP status:   {s.status if s.status is not None else '-'}")
            lines.append(f"Captured at:   {safe(s.captured_at) if s.captured_at else '-'} (UTC)")
            if s.network is not None:
                lines.append(f"Network:       {safe(s.network)}")
            if s.operator:
                lines.append(f"Operator:      {safe(s.operator)}")
        for kid in self.trusted_signers:
            lines.append(f"Signed by:     {safe(kid)} (a key you trust)")
        for kid in self.valid_untrusted_signers:
            lines.append(f"Signed by:     {safe(kid)} (valid, but NOT a key you trust)")
        if not self.trusted_signers and not self.valid_untrusted_signers:
            lines.append("Signed by:     no valid signature")
        lines.append(
            f"Verified at:   {self.verified_at or '-'} (UTC) "
            f"with evidence {safe(self.software_version or 'unknown')}"
        )
        return lines

    def to_text(self) -> str:
        width = max((len(c.status.value) for c in self.checks), default=4)
        lines = self._header()
        lines.append("")
        for c in self.checks:
            lines.append(f"  {c.status.value:<{width}}  {safe(c.title)}: {safe(c.summary)}")
            for d in c.details[:_SHOWN_DETAILS]:
                lines.append(f"  {'':<{width}}    - {d.to_text()}")
            more = max(0, len(c.details) - _SHOWN_DETAILS) + c.not_listed
            if more > 0:
                lines.append(f"  {'':<{width}}    - ... and {more} more not listed here")
        lines.append("")
        lines.extend(safe(n) for n in self.notes)
        if self.notes:
            lines.append("")
        lines.append(self.verdict)
        return "\n".join(lines)
