"""Step 8 of verification: the RFC 3161 timestamp tokens stored in a package.

Each token's imprint, nonce, signature and chain to a TSA root the caller
gave (judged at genTime) are checked by :func:`evidence.timestamping.check_token`;
this module adds what only the package can say: which request the nonce
came from, and that genTime is not before the capture began.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import typing
from pathlib import Path

from evidence.clock import shift
from evidence.package import read_regular_file
from evidence.verifying.report import Check, Finding, Status

if typing.TYPE_CHECKING:
    from cryptography import x509

    from evidence.verifying.policy import VerifyLimits

__all__ = ["describe_distance", "timestamp_checks"]

log = logging.getLogger(__name__)

TIMESTAMP_NOTE = (
    "A timestamp proves only that manifest.json existed no later than the token's "
    "genTime. It does not prove when the page was captured before that, who captured "
    "it, or that what the page said was true."
)


def _amount(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def describe_distance(delta: _dt.timedelta, accuracy_seconds: float = 0.0) -> str:
    """How genTime relates to the capture start, as words after "the manifest existed ...".

    TSAs (and ``openssl ts``) round genTime down to the second, so a token can
    read up to a second (plus its stated accuracy) earlier than the capture
    start without anything being wrong: that is "within" the start, never "before".
    """
    seconds = delta.total_seconds()
    if -1 < seconds < 1:
        # The token was made after the manifest, so after the capture began;
        # a genTime up to a second earlier is the TSA rounding down.
        return "less than a second after the capture began (genTime is rounded to the second)"
    if seconds < 0:
        if -seconds <= accuracy_seconds + 1:
            return (
                f"within {_amount(-seconds)} of the capture start, inside the token's "
                "stated accuracy"
            )
        return f"{_amount(-seconds)} earlier than the capture start"
    return f"{_amount(seconds)} after the capture began"


def timestamp_checks(
    root: Path,
    files: typing.Mapping[str, int],
    digest: bytes,
    *,
    tsa_roots: typing.Sequence[x509.Certificate],
    require_timestamp: bool,
    capture_start: _dt.datetime | None,
    limits: VerifyLimits,
    checked: dict[str, str] | None = None,
) -> tuple[list[Check], list[str]]:
    """Check every ``evidence/timestamps/*.tsr``; returns (checks, notes).

    ``checked``: filled with the SHA-256 (hex) of each token's bytes that were
    checked, by path, for a later reader that must find the same bytes.
    """
    checks: list[Check] = []
    names = sorted(n for n in files if n.startswith("evidence/timestamps/") and n.endswith(".tsr"))
    if not names:
        status = Status.FAIL if require_timestamp else Status.NOT_CHECKED
        checks.append(
            Check(
                "timestamps",
                "Trusted timestamps",
                status,
                "the package has no RFC 3161 timestamp token",
            )
        )
        return checks, []
    from evidence.timestamping import check_token, request_nonce

    verified = 0
    for name in names:
        stem = name.rsplit("/", 1)[1][: -len(".tsr")]
        check_name, title = f"timestamp:{stem}", f"Timestamp {stem}"
        if files[name] > limits.token_bytes:
            checks.append(
                Check(check_name, title, Status.FAIL, "the token is larger than any real token")
            )
            continue
        details: list[Finding] = []
        nonce = None
        tsq = name[: -len(".tsr")] + ".tsq"
        if tsq in files and files[tsq] <= limits.token_bytes:
            nonce = request_nonce(read_regular_file(root / tsq, limits.token_bytes))
            if nonce is None:
                details.append(Finding("cannot be read, so the nonce cannot be audited", path=tsq))
        else:
            details.append(
                Finding("the request (.tsq) is not stored, so the nonce cannot be audited")
            )
        try:
            token = read_regular_file(root / name, limits.token_bytes)
            if checked is not None:
                checked[name] = hashlib.sha256(token).hexdigest()
            result = check_token(
                token,
                digest,
                roots=tsa_roots,
                expected_nonce=nonce,
            )
        except Exception as exc:  # a hostile token must fail its check, never crash the verifier
            log.info("token %s could not be checked: %r", name, exc)
            checks.append(
                Check(
                    check_name,
                    title,
                    Status.FAIL,
                    f"the token could not be checked ({type(exc).__name__})",
                )
            )
            continue
        problems = list(result.problems)
        if tsq in files and nonce is None:
            problems.append("the stored request cannot be read")
        when = result.gen_time
        distance = ""
        if when is not None and capture_start is not None:
            try:
                slack = _dt.timedelta(seconds=result.accuracy_seconds + 1)
                if when < shift(capture_start, -slack):
                    problems.append(
                        f"genTime {when.isoformat()} is before the capture began "
                        f"({capture_start.isoformat()})"
                    )
                distance = ", " + describe_distance(when - capture_start, result.accuracy_seconds)
            except OverflowError:
                problems.append("the token's accuracy is absurdly large")
        if problems:
            checks.append(
                Check(check_name, title, Status.FAIL, problems[0], [*problems[1:], *details])
            )
        elif not tsa_roots:
            checks.append(
                Check(
                    check_name,
                    title,
                    Status.NOT_CHECKED,
                    f"imprint matches, genTime {when}; signature and chain NOT checked "
                    "(no --tsa-ca root given)",
                    details,
                )
            )
        else:
            verified += 1
            checks.append(
                Check(
                    check_name,
                    title,
                    Status.PASS,
                    f"the manifest existed no later than {when} (UTC){distance}; "
                    f"signed by {result.tsa_subject}, chained to a root you trust",
                    details,
                )
            )
    if require_timestamp and not verified:
        checks.append(
            Check(
                "timestamps",
                "Trusted timestamps",
                Status.FAIL,
                "a verified timestamp is required (--require-timestamp) and none verified",
            )
        )
    return checks, [TIMESTAMP_NOTE]
