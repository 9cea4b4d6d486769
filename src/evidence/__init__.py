"""evidence: archive web pages as evidence, with provenance that holds up in court.

The public API is small and imported lazily, so ``evidence --help`` starts fast.
No public name is also the name of a subpackage (the subpackages are
``capturing``, ``verifying``, ``ledger`` and ``courtreport``, whose function
is exported as ``report``): importing a submodule sets an attribute on
this package, and would otherwise replace the function of the same name::

    import evidence
    result = evidence.capture("https://example.org/", out="archives")
    report = evidence.verify(result.path, trust=["alice.pub"])
"""

from __future__ import annotations

import importlib
import typing

if typing.TYPE_CHECKING:
    from evidence.attach import add_timestamp, append_event, sign_package
    from evidence.batch import BatchResult, capture_many, list_packages, verify_many
    from evidence.capturing import (
        BrowserOptions,
        CaptureOptions,
        CaptureResult,
        MediaOptions,
        Operator,
        capture,
    )
    from evidence.courtreport import report
    from evidence.errors import (
        CaptureError,
        CustodyError,
        EvidenceError,
        KeyFileError,
        ManifestError,
        PackageError,
        ReportError,
        SigningError,
        StorageError,
        TimestampError,
        UsageError,
        VerificationError,
    )
    from evidence.keys import Keyring, load_private_key
    from evidence.verifying import Outcome, Report, Status, verify, verify_strict
    from evidence.verifying.wacz import verify_wacz
    from evidence.wacz import export_wacz, import_wacz

__all__ = [
    "BatchResult",
    "BrowserOptions",
    "CaptureError",
    "CaptureOptions",
    "CaptureResult",
    "CustodyError",
    "EvidenceError",
    "KeyFileError",
    "Keyring",
    "ManifestError",
    "MediaOptions",
    "Operator",
    "Outcome",
    "PackageError",
    "Report",
    "ReportError",
    "SigningError",
    "Status",
    "StorageError",
    "TimestampError",
    "UsageError",
    "VerificationError",
    "__version__",
    "add_timestamp",
    "append_event",
    "capture",
    "capture_many",
    "export_wacz",
    "import_wacz",
    "list_packages",
    "load_private_key",
    "report",
    "sign_package",
    "verify",
    "verify_many",
    "verify_strict",
    "verify_wacz",
]

_LAZY = {
    "BatchResult": "evidence.batch",
    "capture_many": "evidence.batch",
    "list_packages": "evidence.batch",
    "verify_many": "evidence.batch",
    "BrowserOptions": "evidence.capturing",
    "CaptureOptions": "evidence.capturing",
    "CaptureResult": "evidence.capturing",
    "MediaOptions": "evidence.capturing",
    "Operator": "evidence.capturing",
    "capture": "evidence.capturing",
    "CaptureError": "evidence.errors",
    "CustodyError": "evidence.errors",
    "StorageError": "evidence.errors",
    "TimestampError": "evidence.errors",
    "UsageError": "evidence.errors",
    "EvidenceError": "evidence.errors",
    "KeyFileError": "evidence.errors",
    "ManifestError": "evidence.errors",
    "PackageError": "evidence.errors",
    "ReportError": "evidence.errors",
    "SigningError": "evidence.errors",
    "VerificationError": "evidence.errors",
    "Keyring": "evidence.keys",
    "load_private_key": "evidence.keys",
    "sign_package": "evidence.attach",
    "add_timestamp": "evidence.attach",
    "append_event": "evidence.attach",
    "report": "evidence.courtreport",
    "Outcome": "evidence.verifying",
    "Report": "evidence.verifying",
    "Status": "evidence.verifying",
    "verify": "evidence.verifying",
    "verify_strict": "evidence.verifying",
    "export_wacz": "evidence.wacz",
    "import_wacz": "evidence.wacz",
    "verify_wacz": "evidence.verifying.wacz",
}


def __getattr__(name: str) -> typing.Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("evidence-archive")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            return "0+unknown"
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'evidence' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
