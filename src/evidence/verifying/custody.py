"""Verification of the chain of custody (``evidence/custody.jsonl``).

:func:`check_log` checks the lines of a log: canonical JSON with known
fields, ``seq`` 1…n (integers), ``prev`` links (the first to SHA-256 of the
manifest), event types (``captured`` only first), times in order and not
before the manifest was created, and signatures. :func:`custody_check` is
the verifier's step: it reads the log (a regular file found by the layout
walk, size compared before reading), applies the package's own rules (a
declared log must exist and start with the capture's ``captured`` event, whose
signer must be a signer of the manifest) and the caller's anchors.

Signatures are judged, never assumed: a key id is only a name. An event's
signature counts as "signed by" only when it verifies with a key the caller
trusts, or with a key bundled in the package (then named as not trusted). A
signature with neither is *unverifiable* and said so; one that does not
verify is *invalid* and fails. No file path is ever built from a key id.

Threat-model limit: the last holder can cut events off the end; only an
anchor (``custody_anchors``) held outside the package detects that.
"""

from __future__ import annotations

import base64
import datetime as _dt
import enum
import hashlib
import json
import re
import typing
from pathlib import Path

import attrs

from evidence.clock import parse_iso, shift
from evidence.custody import CLOCK_TOLERANCE, CUSTODY_PATH, EVENTS, FIRST_EVENTS
from evidence.errors import EvidenceError
from evidence.package import read_regular_file
from evidence.verifying.policy import DEFAULT_LIMITS, VerifyLimits
from evidence.verifying.report import Check, Finding, Status

if typing.TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from evidence.keys import Keyring

__all__ = ["CustodyCheck", "CustodyEvent", "SignatureState", "check_log", "custody_check"]

_FIELDS = frozenset({"seq", "event", "time", "actor", "note", "prev", "key_id", "signature"})
_HEX64 = re.compile(r"[0-9a-f]{64}")
TITLE = "Chain of custody"


class SignatureState(str, enum.Enum):
    """What a custody event's signature is worth to this verifier."""

    UNSIGNED = "unsigned"
    TRUSTED = "trusted"  # valid, by a key the caller trusts
    VALID_UNTRUSTED = "valid-untrusted"  # valid, by a key bundled in the package
    UNVERIFIABLE = "unverifiable"  # the key is neither trusted nor bundled
    INVALID = "invalid"  # malformed, or does not verify with the named key


@attrs.frozen
class CustodyEvent:
    """One event as shown in a report (values are unverified package text)."""

    seq: object
    event: object
    time: object
    actor: object
    note: object
    key_id: object
    signature: SignatureState

    def describe(self) -> str:
        text = f"{self.seq}. {self.time} {self.event}"
        if self.actor:
            text += f" by {self.actor}"
        if self.signature is SignatureState.TRUSTED:
            text += f"; signed by key {self.key_id} (a key you trust)"
        elif self.signature is SignatureState.VALID_UNTRUSTED:
            text += (
                f"; valid signature by key {self.key_id}, bundled in the package, "
                "which you have not said you trust"
            )
        elif self.signature is SignatureState.UNVERIFIABLE:
            text += (
                f"; signature UNVERIFIABLE: key {self.key_id} is not one you have said "
                "you trust and is not in the package"
            )
        elif self.signature is SignatureState.INVALID:
            text += "; signature INVALID"
        else:
            text += "; unsigned (anyone holding the package could have written it)"
        if self.note:
            text += f"; note: {self.note}"
        return text


class CustodyCheck(typing.NamedTuple):
    """Result of checking a custody log."""

    events: tuple[CustodyEvent, ...]
    problems: tuple[Finding, ...]
    trusted_signers: tuple[str, ...]
    untrusted_signers: tuple[str, ...]  # valid signatures by bundled, untrusted keys
    unverifiable_signers: tuple[str, ...] = ()


def _canonical(obj: dict[str, typing.Any]) -> bytes | None:
    """The canonical serialisation, or None when it cannot exist (lone surrogates)."""
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8"
        )
    except (UnicodeEncodeError, TypeError, ValueError):
        return None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _signature_state(
    obj: dict[str, typing.Any],
    keyring: Keyring,
    bundled: typing.Mapping[str, Ed25519PublicKey],
    problem: typing.Callable[[str], None],
) -> SignatureState:
    from evidence.signing import SIGNATURE_SIZE, signature_valid

    kid = obj.get("key_id")
    if not isinstance(kid, str) or not _HEX64.fullmatch(kid):
        problem("signed event whose key id is not 64 lowercase hexadecimal digits")
        return SignatureState.INVALID
    try:
        sig = base64.b64decode(str(obj.get("signature", "")), validate=True)
    except ValueError:
        sig = b""
    body = _canonical({k: v for k, v in obj.items() if k != "signature"})
    if len(sig) != SIGNATURE_SIZE or body is None:
        problem(f"the signature for key {kid} is malformed")
        return SignatureState.INVALID
    # The caller's keys first; a key the package ships only tells a valid
    # signature from a forged one, it never makes it trusted.
    for key, valid, whose in (
        (keyring.get(kid), SignatureState.TRUSTED, f"trusted key {kid}"),
        (bundled.get(kid), SignatureState.VALID_UNTRUSTED, f"key {kid} (bundled in the package)"),
    ):
        if key is not None:
            if signature_valid(key, sig, body):
                return valid
            problem(f"the signature by {whose} does not verify")
            return SignatureState.INVALID
    return SignatureState.UNVERIFIABLE


def check_log(
    lines: typing.Sequence[bytes],
    manifest_sha256: bytes,
    keyring: Keyring,
    bundled: typing.Mapping[str, Ed25519PublicKey] | None = None,
    *,
    manifest_created: _dt.datetime | None = None,
    manifest_signers: typing.Collection[str] = (),
    trusted_manifest_signers: typing.Collection[str] = (),
    require_captured: bool = False,
    now: _dt.datetime | None = None,
    limits: VerifyLimits = DEFAULT_LIMITS,
) -> CustodyCheck:
    """Check links, order, types, times and signatures of a custody log.

    Args:
        lines: the log's lines without newlines (at most ``limits.custody_events``
            are checked; pass more and the rest are reported as not checked).
        manifest_sha256: SHA-256 of the exact manifest bytes.
        keyring: the keys the caller trusts.
        bundled: public keys found in the package's ``evidence/keys/`` by id
            (never trust anchors: they only let a signature be checked).
        manifest_created: events dated earlier (beyond the clock tolerance) fail.
        manifest_signers: key ids with a valid signature over the manifest; if
            any, a signed ``captured`` event must be by one of them.
        trusted_manifest_signers: the trusted ones among them. Each must have
            signed at least one event (the capture's own ``captured`` event, or
            the ``signed``/``countersigned`` event that signing adds): a log
            without one is not the log of this signer's package (replaced).
        require_captured: the log must exist and start with ``captured``.
        now: the verification time; events dated later (beyond the clock
            tolerance) fail.
        limits: caps on line size and number of events.

    Never raises for bad content: every problem is a :class:`Finding`.
    """
    from evidence.manifest import strict_loads

    bundled = bundled or {}
    problems: list[Finding] = []
    events: list[CustodyEvent] = []
    trusted: list[str] = []
    untrusted: list[str] = []
    unverifiable: list[str] = []
    prev_digest = manifest_sha256.hex()
    last_time: _dt.datetime | None = None
    if require_captured and not lines:
        problems.append(
            Finding("the log is empty: the capture's own 'captured' event is missing", CUSTODY_PATH)
        )
    if len(lines) > limits.custody_events:
        problems.append(
            Finding(
                f"the log has more than {limits.custody_events} events; "
                "only the first ones were checked",
                CUSTODY_PATH,
            )
        )
    for number, line in enumerate(lines[: limits.custody_events], 1):
        where = f"event {number}"

        def problem(text: str, where: str = where) -> None:
            problems.append(Finding(f"{where}: {text}", CUSTODY_PATH))

        if len(line) > limits.custody_line_bytes:
            problem(f"line longer than {limits.custody_line_bytes} bytes")
            break
        try:
            obj = strict_loads(line, what=f"custody {where}", max_bytes=limits.custody_line_bytes)
        except EvidenceError as exc:
            problems.append(Finding(str(exc), CUSTODY_PATH))
            break
        if not isinstance(obj, dict) or not set(obj) <= _FIELDS:
            problem("not a custody event object")
            break
        if _canonical(obj) != line:
            problem("not in canonical form (edited?)")
        seq = obj.get("seq")
        if not _is_int(seq) or seq != number:
            problems.append(
                Finding(
                    f"{where}: wrong sequence number",
                    CUSTODY_PATH,
                    expected=number,
                    found=repr(seq),
                )
            )
        if obj.get("prev") != prev_digest:
            problem(
                "does not link to the "
                + ("manifest" if number == 1 else "previous event (removed, reordered or edited)")
            )
        kind = obj.get("event")
        if kind not in EVENTS:
            problem(f"unknown event type {kind!r}")
        elif kind in FIRST_EVENTS and number != 1:
            problem(
                f"a {kind!r} event can only be the first: only the making of the package makes it"
            )
        if number == 1 and require_captured and kind not in FIRST_EVENTS:
            problem("the first event must be the capture's own 'captured' event")
        for name in ("actor", "note"):
            if obj.get(name) is not None and not isinstance(obj.get(name), str):
                problem(f"{name} is not text")
        when = parse_iso(obj.get("time"))
        if when is None:
            problem(f"bad time {obj.get('time')!r}")
        else:
            if last_time is not None and when < shift(last_time, -CLOCK_TOLERANCE):
                problem(f"time goes backwards ({obj.get('time')})")
            if now is not None and when > shift(now, CLOCK_TOLERANCE):
                problem(f"dated {obj.get('time')}, after this verification ran")
            if manifest_created is not None and when < shift(manifest_created, -CLOCK_TOLERANCE):
                problem(
                    f"dated {obj.get('time')}, before the manifest was created "
                    f"({manifest_created.isoformat()})"
                )
            last_time = max(when, last_time) if last_time else when
        state = SignatureState.UNSIGNED
        if "signature" in obj or "key_id" in obj:
            state = _signature_state(obj, keyring, bundled, problem)
            kid = typing.cast(str, obj.get("key_id"))
            if state is SignatureState.TRUSTED:
                trusted.append(kid)
            elif state is SignatureState.VALID_UNTRUSTED:
                untrusted.append(kid)
            elif state is SignatureState.UNVERIFIABLE:
                unverifiable.append(kid)
            if (
                kind in FIRST_EVENTS
                and manifest_signers
                and state is not SignatureState.INVALID
                and kid not in manifest_signers
            ):
                problem(
                    f"the {kind!r} event is signed by key {kid}, which did not sign the "
                    "manifest: it is someone else's claim, not the capture's"
                )
        events.append(
            CustodyEvent(
                seq=seq,
                event=kind,
                time=obj.get("time"),
                actor=obj.get("actor"),
                note=obj.get("note"),
                key_id=obj.get("key_id"),
                signature=state,
            )
        )
        prev_digest = hashlib.sha256(line).hexdigest()
    for kid in sorted(set(trusted_manifest_signers) - set(trusted)):
        problems.append(
            Finding(
                f"no event is signed by key {kid}, which signed the manifest: the log is "
                "not this package's own (replaced?)",
                CUSTODY_PATH,
            )
        )
    return CustodyCheck(
        tuple(events), tuple(problems), tuple(trusted), tuple(untrusted), tuple(unverifiable)
    )


def _read_lines(path: Path, size: int, limits: VerifyLimits) -> tuple[list[bytes], str | None]:
    """At most ``custody_events + 1`` lines of the log, or a problem instead."""
    if size > limits.custody_log_bytes:
        return [], f"the log is larger than {limits.custody_log_bytes} bytes (not read)"
    data = read_regular_file(path, limits.custody_log_bytes)
    if data and not data.endswith(b"\n"):
        return [], "the log does not end with a newline (truncated?)"
    if not data:
        return [], None
    # Split only what will be checked: a 16 MiB log of tiny lines must not
    # become millions of objects.
    lines = data.split(b"\n", limits.custody_events + 1)
    if len(lines) > limits.custody_events + 1:
        lines = lines[: limits.custody_events + 1]
    elif lines[-1] == b"":
        lines.pop()
    return lines, None


def custody_check(
    root: Path,
    files: typing.Mapping[str, int],
    manifest_sha256: bytes,
    *,
    keyring: Keyring,
    bundled: typing.Mapping[str, Ed25519PublicKey],
    declared: object,
    manifest_created: _dt.datetime | None,
    manifest_signers: typing.Collection[str],
    anchors: typing.Sequence[str],
    limits: VerifyLimits,
    trusted_manifest_signers: typing.Collection[str] = (),
    now: _dt.datetime | None = None,
) -> Check:
    """The verifier's custody step (see the module docstring)."""
    if declared is not None and declared != CUSTODY_PATH:
        return Check(
            "custody",
            TITLE,
            Status.FAIL,
            "the manifest declares a custody log at a path the format does not allow",
            [Finding("unknown custody log path", expected=CUSTODY_PATH, found=repr(declared))],
        )
    required = declared == CUSTODY_PATH
    if CUSTODY_PATH not in files:
        if required:
            return Check(
                "custody",
                TITLE,
                Status.FAIL,
                "the manifest says the package has a custody log, but it is missing",
            )
        status = Status.FAIL if anchors else Status.NOT_CHECKED
        return Check("custody", TITLE, status, "the package has no custody log")
    lines, unreadable = _read_lines(root / CUSTODY_PATH, files[CUSTODY_PATH], limits)
    if unreadable is not None:
        return Check("custody", TITLE, Status.FAIL, unreadable)
    result = check_log(
        lines,
        manifest_sha256,
        keyring,
        bundled,
        manifest_created=manifest_created,
        manifest_signers=manifest_signers,
        trusted_manifest_signers=trusted_manifest_signers,
        require_captured=required,
        now=now,
        limits=limits,
    )
    present = {hashlib.sha256(line).hexdigest() for line in lines[: limits.custody_events]}
    missing = [a for a in anchors if a not in present]
    if missing:
        return Check(
            "custody",
            TITLE,
            Status.FAIL,
            f"{len(missing)} anchored event(s) missing: the log was cut or replaced",
            [Finding("no event has this SHA-256", expected=a) for a in missing]
            + list(result.problems),
        )
    if result.problems:
        return Check(
            "custody",
            TITLE,
            Status.FAIL,
            f"the custody log is broken ({len(result.problems)} problem(s))",
            result.problems,
        )
    details = [Finding(e.describe()) for e in result.events]
    if result.untrusted_signers:
        details.append(
            Finding(
                "valid signatures by bundled keys you have not said you trust: "
                + ", ".join(sorted(set(result.untrusted_signers)))
            )
        )
    summary = (
        f"{len(result.events)} event(s), every link intact, times in order; "
        f"{len(set(result.trusted_signers))} trusted signer(s)"
    )
    if result.unverifiable_signers:
        details.append(
            Finding(
                "signatures that cannot be checked, by keys you have not said you trust "
                "and that are not in the package: "
                + ", ".join(sorted(set(result.unverifiable_signers)))
            )
        )
        return Check(
            "custody",
            TITLE,
            Status.WARN,
            summary + f"; {len(result.unverifiable_signers)} signature(s) UNVERIFIABLE",
            details,
        )
    return Check("custody", TITLE, Status.PASS, summary, details)
