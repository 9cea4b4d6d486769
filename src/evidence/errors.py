"""The one exception tree of ``evidence``.

Every public function raises only these (third-party exceptions are wrapped
with ``raise ... from exc``), so a caller needs a single ``except`` clause::

    EvidenceError
     ├── CaptureError          no response could be recorded for a URL
     ├── PackageError          not a package, or a package that cannot be read or written
     │    └── ManifestError    manifest.json is not a strict, valid format-1 manifest
     ├── KeyFileError          a key file is unreadable, unsafe, or the passphrase is wrong
     ├── SigningError          a signature could not be made or stored
     └── VerificationError     raised by ``verify_strict`` when a package does not verify
"""

from __future__ import annotations

import typing

if typing.TYPE_CHECKING:
    from evidence.verify.report import Report

__all__ = [
    "CaptureError",
    "EvidenceError",
    "KeyFileError",
    "ManifestError",
    "PackageError",
    "SigningError",
    "VerificationError",
]


class EvidenceError(Exception):
    """Base class of every error this library raises on purpose."""


class CaptureError(EvidenceError):
    """No response could be recorded for a URL, so no package was written.

    Attributes:
        url: the URL that was being captured.
        cause: a short, human-readable cause ("connection refused", ...).
    """

    def __init__(self, url: str, cause: str) -> None:
        super().__init__(f"{url}: {cause}")
        self.url = url
        self.cause = cause


class PackageError(EvidenceError):
    """A path is not an evidence package, or a package cannot be read or written."""


class ManifestError(PackageError):
    """``evidence/manifest.json`` is not a strictly valid format-1 manifest."""


class KeyFileError(EvidenceError):
    """A key file is missing, malformed, readable by others, or its passphrase is wrong."""


class SigningError(EvidenceError):
    """A signature could not be made or stored."""


class VerificationError(EvidenceError):
    """A package did not verify; ``report`` holds every check and its outcome."""

    def __init__(self, message: str, report: Report) -> None:
        super().__init__(message)
        self.report = report
