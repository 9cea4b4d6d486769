"""Verification of evidence packages: the verifier, its report, and trust input."""

from __future__ import annotations

from evidence.verify.report import Check, Outcome, Report, Status
from evidence.verify.verifier import TrustInput, verify, verify_strict

__all__ = ["Check", "Outcome", "Report", "Status", "TrustInput", "verify", "verify_strict"]
