"""evidence: archive web pages as evidence, with provenance that holds up in court.

The public API is small and imported lazily, so ``evidence --help`` starts fast::

    import evidence
    result = evidence.capture("https://example.org/", out="archives")
    report = evidence.verify(result.path, trust=["alice.pub"])
"""

from __future__ import annotations

import importlib
import typing

if typing.TYPE_CHECKING:
    from evidence.capturing import CaptureOptions, CaptureResult, Operator, capture
    from evidence.custody import append_event
    from evidence.errors import (
        CaptureError,
        EvidenceError,
        KeyFileError,
        ManifestError,
        PackageError,
        SigningError,
        VerificationError,
    )
    from evidence.keys import Keyring
    from evidence.signing import sign_package
    from evidence.timestamping import add_timestamp
    from evidence.verify import Outcome, Report, Status, verify, verify_strict

__all__ = [
    "CaptureError",
    "CaptureOptions",
    "CaptureResult",
    "EvidenceError",
    "KeyFileError",
    "Keyring",
    "ManifestError",
    "Operator",
    "Outcome",
    "PackageError",
    "Report",
    "SigningError",
    "Status",
    "VerificationError",
    "__version__",
    "add_timestamp",
    "append_event",
    "capture",
    "sign_package",
    "verify",
    "verify_strict",
]

_LAZY = {
    "CaptureOptions": "evidence.capturing",
    "CaptureResult": "evidence.capturing",
    "Operator": "evidence.capturing",
    "capture": "evidence.capturing",
    "CaptureError": "evidence.errors",
    "EvidenceError": "evidence.errors",
    "KeyFileError": "evidence.errors",
    "ManifestError": "evidence.errors",
    "PackageError": "evidence.errors",
    "SigningError": "evidence.errors",
    "VerificationError": "evidence.errors",
    "Keyring": "evidence.keys",
    "sign_package": "evidence.signing",
    "add_timestamp": "evidence.timestamping",
    "append_event": "evidence.custody",
    "Outcome": "evidence.verify",
    "Report": "evidence.verify",
    "Status": "evidence.verify",
    "verify": "evidence.verify",
    "verify_strict": "evidence.verify",
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
