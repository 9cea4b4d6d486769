"""Verification of evidence packages: the verifier, its report, and trust input."""

from __future__ import annotations

from evidence.verifying.policy import DEFAULT_LIMITS, TrustInput, VerifyLimits
from evidence.verifying.report import Check, Finding, Outcome, Report, Status, Subject
from evidence.verifying.verifier import verify, verify_strict

__all__ = [
    "DEFAULT_LIMITS",
    "Check",
    "Finding",
    "Outcome",
    "Report",
    "Status",
    "Subject",
    "TrustInput",
    "VerifyLimits",
    "verify",
    "verify_strict",
]
