"""The court report: what was captured, what was verified and what that proves, for people.

:func:`report` verifies each package (the same engine and options as
:func:`evidence.verify`), then writes one document: a self-contained HTML
file, or a PDF/A-3b file (WeasyPrint, an optional extra) with the proofs
attached byte for byte. It then appends a ``reported`` event, carrying the
report's SHA-256, to each package's custody log, and with ``sign_with``
writes a detached Ed25519 signature of the report beside it
(``REPORT.pdf.sig``, 64 raw bytes, like a package signature).

The subpackage is called ``courtreport`` rather than ``report`` because the
public function is ``evidence.report``: a subpackage of the same name would
replace the function on the ``evidence`` module once imported (see the
docstring of :mod:`evidence`). ``evidence.verifying.report`` is the
verification report objects, a different thing.

Modules: :mod:`~evidence.courtreport.facts` (what is shown, read from the
package, bounded), :mod:`~evidence.courtreport.html` (the document; every
package value through :func:`evidence.display.safe` and escaped),
:mod:`~evidence.courtreport.pdf` (PDF/A-3b with attachments, no network).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import typing
from pathlib import Path

import attrs

from evidence.clock import iso, now
from evidence.errors import EvidenceError, ReportError, StorageError, UsageError
from evidence.verifying.policy import DEFAULT_LIMITS, TrustInput, VerifyLimits, tsa_roots_for
from evidence.verifying.report import Outcome, Report

if typing.TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["FORMATS", "CourtReport", "report"]

log = logging.getLogger(__name__)

FORMATS = ("pdf", "html")
_SEVERITY = {
    Outcome.VERIFIED: 0,
    Outcome.UNTRUSTED: 1,
    Outcome.NOT_A_PACKAGE: 2,
    Outcome.FAILED: 3,
}
_LABEL_SAFE = re.compile(r"[^A-Za-z0-9._-]")


@attrs.frozen
class CourtReport:
    """What :func:`report` wrote, and the verification it was made from."""

    path: Path
    format: str
    sha256: str
    size: int
    reports: tuple[Report, ...]
    signature: Path | None = None
    signer: str | None = None
    # (package path, custody seq) of each ``reported`` event appended.
    custody_events: tuple[tuple[str, int], ...] = ()
    # Packages whose custody log could not be extended, and why.
    custody_problems: tuple[str, ...] = ()

    @property
    def outcome(self) -> Outcome:
        """The worst outcome among the packages."""
        return max((r.outcome for r in self.reports), key=_SEVERITY.__getitem__)

    @property
    def exit_code(self) -> int:
        """The exit code ``evidence verify`` would give for these packages."""
        return self.outcome.exit_code

    def to_json(self) -> dict[str, typing.Any]:
        return {
            "report": str(self.path),
            "format": self.format,
            "sha256": self.sha256,
            "size": self.size,
            "outcome": self.outcome.value,
            "exit_code": self.exit_code,
            "signature": str(self.signature) if self.signature else None,
            "signer": self.signer,
            "packages": [
                {"package": r.package, "package_id": r.package_id, "outcome": r.outcome.value}
                for r in self.reports
            ],
            "custody_events": [{"package": p, "seq": s} for p, s in self.custody_events],
            "custody_problems": list(self.custody_problems),
        }


def _format_for(out: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise UsageError(f"unknown report format {fmt!r}; use pdf or html")
        return fmt
    suffix = out.suffix.lower()
    if suffix == ".pdf":
        return "pdf"
    if suffix in (".html", ".htm"):
        return "html"
    raise UsageError(f"cannot tell the report format from {out.name!r}: name it .pdf or .html")


def _inside(path: Path, package: Path) -> bool:
    try:
        return path.resolve().is_relative_to(package.resolve())
    except (OSError, RuntimeError):
        return True


def _labels(paths: typing.Sequence[Path]) -> list[str]:
    """One attachment label per package: its directory name, made unique and plain."""
    labels: list[str] = []
    for i, p in enumerate(paths, 1):
        base = _LABEL_SAFE.sub("_", p.name)[:100].lstrip("._-") or f"package-{i}"
        label = base
        if label in labels:
            label = f"{base}-{i}"
        labels.append(label)
    return labels


def _write(path: Path, data: bytes) -> None:
    from evidence.package import write_file_atomic

    try:
        write_file_atomic(path, data)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from exc


def report(
    packages: str | os.PathLike[str] | typing.Iterable[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str],
    trust: TrustInput,
    tsa_roots: typing.Iterable[x509.Certificate | str | os.PathLike[str]] = (),
    require_timestamp: bool = False,
    custody_anchors: typing.Iterable[str] = (),
    sign_with: Ed25519PrivateKey | None = None,
    actor: str | None = None,
    record_custody: bool = True,
    format: str | None = None,
    limits: VerifyLimits = DEFAULT_LIMITS,
) -> CourtReport:
    """Verify packages and write a court report on them (PDF/A-3b or HTML).

    Verification is exactly :func:`evidence.verify` with the same options; a
    package that fails is reported as FAILED (the report is still written:
    a court needs to read why). Several packages make one case report with
    a summary table first.

    Args:
        packages: one package directory, or several.
        out: the report file; ``.pdf`` or ``.html`` (or give ``format``).
            It must not be inside a package.
        trust: the keys whose signatures count (as for :func:`evidence.verify`);
            required, pass ``[]`` to check integrity only.
        tsa_roots: roots of time-stamping authorities you trust.
        require_timestamp: fail unless a timestamp token verifies.
        custody_anchors: SHA-256 digests of custody events obtained elsewhere.
        sign_with: also write ``<out>.sig``, a detached Ed25519 signature of
            the report's bytes, and sign the custody events with this key.
        actor: who makes the report, recorded in the custody events.
        record_custody: append a ``reported`` event (with the report's
            SHA-256) to each package's custody log; turn off for packages on
            read-only media.
        format: ``"pdf"`` or ``"html"``; by default from ``out``'s suffix.
        limits: caps on what a package can make the verifier read.

    Returns:
        A :class:`CourtReport`; its ``exit_code`` is what ``evidence verify`` gives.

    Raises:
        UsageError: no package, an unknown format, ``out`` inside a package,
            a trust source inside a package, or WeasyPrint missing for a PDF.
        KeyFileError, TimestampError: a trusted key or TSA root cannot be loaded.
        StorageError: the report (or its signature) cannot be written.
        ReportError: the PDF renderer failed.
    """
    import evidence
    from evidence.courtreport.facts import gather, key_names
    from evidence.courtreport.html import render_html
    from evidence.verifying import verify

    given = [packages] if isinstance(packages, str | os.PathLike) else list(packages)
    if not given:
        raise UsageError("name at least one package to report on")
    roots = [Path(p) for p in given]
    target = Path(out)
    fmt = _format_for(target, format)
    for root in roots:
        if _inside(target, root):
            raise UsageError(
                f"the report {target} would be written inside the package {root}; "
                "write it elsewhere (a package holds only its own files)"
            )
    if not isinstance(trust, str | os.PathLike) and not hasattr(trust, "key_ids"):
        trust = list(trust)  # read twice: by the verifier and for the key names
    names = key_names(trust)
    given_roots = list(tsa_roots)
    anchors = list(custody_anchors)

    case = []
    for index, (root, label) in enumerate(zip(roots, _labels(roots), strict=True), 1):
        certs = tsa_roots_for(root, given_roots)
        verification = verify(
            root,
            trust=trust,
            tsa_roots=certs,
            require_timestamp=require_timestamp,
            custody_anchors=anchors,
            limits=limits,
        )
        facts = gather(
            root,
            verification,
            index=index,
            label=label,
            key_names=names,
            tsa_roots=certs,
            limits=limits,
        )
        if facts.manifest_sha256 != verification.manifest_sha256:
            # The manifest was read twice: by the verifier, then for what the
            # report shows. A report must never show one manifest under the
            # verdict on another.
            raise ReportError(
                f"{root}: evidence/manifest.json changed while the report was being made; "
                "nothing was written (run it again on a copy no one is changing)"
            )
        if facts.changed:
            raise ReportError(
                f"{root}: {', '.join(facts.changed)} changed while the report was being made; "
                "nothing was written (run it again on a copy no one is changing)"
            )
        case.append(facts)

    when = now()
    software = str(evidence.__version__)
    document = render_html(case, generated=iso(when), software=software)
    if fmt == "pdf":
        from evidence.courtreport.pdf import render_pdf

        data = render_pdf(document, [a for f in case for a in f.attachments], created=when)
    else:
        data = document.encode("utf-8")
    _write(target, data)
    digest = hashlib.sha256(data).hexdigest()

    signature = signer = None
    if sign_with is not None:
        from evidence.keys import key_id

        signature = target.with_name(target.name + ".sig")
        _write(signature, sign_with.sign(data))
        signer = key_id(sign_with.public_key())

    events: list[tuple[str, int]] = []
    problems: list[str] = []
    if record_custody:
        from evidence.attach import append_event

        note = f"court report {target.name} ({fmt.upper()}), SHA-256 {digest}"
        for root, facts in zip(roots, case, strict=True):
            if facts.verification.outcome is Outcome.NOT_A_PACKAGE:
                problems.append(f"{root}: not a package; no custody event recorded")
                continue
            try:
                event = append_event(root, event="reported", note=note, actor=actor, key=sign_with)
            except EvidenceError as exc:
                problems.append(f"{root}: custody event not recorded: {exc}")
                continue
            events.append((str(root), int(event.get("seq", 0))))
    return CourtReport(
        path=target,
        format=fmt,
        sha256=digest,
        size=len(data),
        reports=tuple(f.verification for f in case),
        signature=signature,
        signer=signer,
        custody_events=tuple(events),
        custody_problems=tuple(problems),
    )
