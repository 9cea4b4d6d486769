"""The one exception tree of ``evidence``.

Every public function raises only these (third-party exceptions are wrapped
with ``raise ... from exc``), so a caller needs a single ``except`` clause.
Each class carries the command-line exit code it maps to, so the CLI never
decides by message text::

    EvidenceError                  (2)
     ├── UsageError            (2) the caller asked for something impossible or unsafe
     ├── CaptureError          (1) no response could be recorded for a URL (``kind`` says why)
     ├── PackageError          (2) not a package, or a package that cannot be read
     │    ├── ManifestError    (2) manifest.json is not a strict, valid format-1 manifest
     │    └── StorageError     (1) a package could not be written (disk full, permissions)
     ├── KeyFileError          (2) a key file is unreadable, unsafe, or the passphrase is wrong
     ├── SigningError          (1) a signature could not be made or stored
     ├── TimestampError        (1) a TSA could not be reached, or its response was refused
     ├── CustodyError          (2) a custody event cannot be made or read
     ├── LedgerError           (2) a ledger, checkpoint or proof is missing or malformed
     │    └── LedgerMismatchError (1) the ledger disagrees with a checkpoint or package
     ├── ReportError           (1) a court report could not be rendered
     ├── SealError             (2) a sealed operator cannot be made or opened (key, blob)
     │    └── SealBindingError (1) a sealed operator belongs to another package
     └── VerificationError     (1) raised by ``verify_strict`` when a package does not verify
"""

from __future__ import annotations

import typing

if typing.TYPE_CHECKING:
    from evidence.verifying.report import Report

__all__ = [
    "CAPTURE_ERROR_KINDS",
    "CaptureError",
    "CustodyError",
    "EvidenceError",
    "KeyFileError",
    "LedgerError",
    "LedgerMismatchError",
    "ManifestError",
    "PackageError",
    "ReportError",
    "SealBindingError",
    "SealError",
    "SigningError",
    "StorageError",
    "TimestampError",
    "UsageError",
    "VerificationError",
]

# Machine-readable reasons a capture gave no package, for scripts that retry.
CAPTURE_ERROR_KINDS = (
    "invalid-url",  # never worth retrying
    "dns",
    "refused",  # connection refused or reset before any response
    "tls",
    "timeout",
    "http",  # the server spoke, but not HTTP we can record
    "limit",
    "refused-address",  # --public-only refused the destination
    "proxy",
    "disk",
    "other",
)


class EvidenceError(Exception):
    """Base class of every error this library raises on purpose."""

    exit_code: typing.ClassVar[int] = 2


class UsageError(EvidenceError):
    """The caller asked for something impossible or unsafe (a bad option, a trust
    source inside the package being verified, a malformed anchor)."""


class CaptureError(EvidenceError):
    """No response could be recorded for a URL, so no package was written.

    Attributes:
        url: the URL that was being captured.
        cause: a short, human-readable cause ("connection refused", ...).
        kind: one of :data:`CAPTURE_ERROR_KINDS`, for scripts that decide
            whether to retry.
    """

    exit_code = 1

    def __init__(self, url: str, cause: str, kind: str = "other") -> None:
        super().__init__(f"{url}: {cause}")
        self.url = url
        self.cause = cause
        self.kind = kind if kind in CAPTURE_ERROR_KINDS else "other"


class PackageError(EvidenceError):
    """A path is not an evidence package, or a package cannot be read."""


class ManifestError(PackageError):
    """``evidence/manifest.json`` is not a strictly valid format-1 manifest."""


class StorageError(PackageError):
    """A package (or a file added to one) could not be written: disk full, permissions."""

    exit_code = 1


class KeyFileError(EvidenceError):
    """A key file is missing, malformed, readable by others, or its passphrase is wrong."""


class SigningError(EvidenceError):
    """A signature could not be made or stored."""

    exit_code = 1


class TimestampError(EvidenceError):
    """A TSA could not be reached, or its response was refused."""

    exit_code = 1


class CustodyError(EvidenceError):
    """A custody event cannot be made (bad event type, note too long) or read."""


class LedgerError(EvidenceError):
    """A ledger, checkpoint or proof is missing, malformed or cannot be used."""


class LedgerMismatchError(LedgerError):
    """The ledger disagrees with a checkpoint or a package it is asked about."""

    exit_code = 1


class ReportError(EvidenceError):
    """A court report could not be rendered (the renderer failed)."""

    exit_code = 1


class SealError(EvidenceError):
    """A sealed operator identity cannot be made or opened: a bad identity file, a
    wrong identity, or a malformed sealed blob (docs/sealing.md)."""


class SealBindingError(SealError):
    """A sealed operator opened, but names another package or creation time:
    it was moved here from another package."""

    exit_code = 1


class VerificationError(EvidenceError):
    """A package did not verify; ``report`` holds every check and its outcome."""

    exit_code = 1

    def __init__(self, message: str, report: Report) -> None:
        super().__init__(message)
        self.report = report
