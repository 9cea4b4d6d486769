"""Verification of evidence packages: the verifier, its report, and trust input."""

from __future__ import annotations

from evidence.verifying.report import Check, Outcome, Report, Status
from evidence.verifying.verifier import TrustInput, verify, verify_strict

__all__ = ["Check", "Outcome", "Report", "Status", "TrustInput", "verify", "verify_strict"]
