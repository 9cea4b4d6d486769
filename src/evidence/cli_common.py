"""What the command-line modules share: JSON output, passphrases, key loading, option types.

Only CLI modules import this (the library never prints or prompts).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import typing

if typing.TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "MIN_PASSPHRASE_LENGTH",
    "PASSPHRASE_ENV",
    "PROXY_ENV",
    "add_operator_options",
    "add_proxy_options",
    "add_trust_options",
    "add_tsa_proxy_option",
    "int_at_least",
    "key_passphrase",
    "load_signing_key",
    "operator_option",
    "passphrase",
    "positive_float",
    "print_json",
    "proxy_option",
    "size",
    "tsa_roots",
]

PASSPHRASE_ENV = "EVIDENCE_PASSPHRASE"  # noqa: S105 - a variable name, not a secret
MIN_PASSPHRASE_LENGTH = 8
PROXY_ENV = "EVIDENCE_PROXY"
# The operator's name from the environment: a command line is readable by
# every user of the machine (ps), an environment only by its owner and root.
OPERATOR_NAME_ENV = "EVIDENCE_OPERATOR_NAME"
OPERATOR_ORG_ENV = "EVIDENCE_OPERATOR_ORG"


def print_json(doc: object) -> None:
    # ensure_ascii: valid JSON whatever the package holds (lone surrogates
    # become \ud800 escapes) and no raw control or bidi characters on screen.
    print(json.dumps(doc, indent=2, ensure_ascii=True), flush=True)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def passphrase(*, confirm: bool, purpose: str) -> bytes:
    from evidence.errors import KeyFileError, UsageError

    env = os.environ.get(PASSPHRASE_ENV)
    if env is not None:
        if confirm and len(env) < MIN_PASSPHRASE_LENGTH:
            raise UsageError(
                f"{PASSPHRASE_ENV} is shorter than {MIN_PASSPHRASE_LENGTH} characters; "
                "use a longer passphrase (or --no-passphrase, not recommended)"
            )
        return env.encode("utf-8")
    if not sys.stdin.isatty():
        raise KeyFileError(
            f"{purpose} needs a passphrase: set {PASSPHRASE_ENV} or run in a terminal"
        )
    import getpass

    first = getpass.getpass(f"Passphrase for {purpose}: ")
    if confirm:
        if len(first) < MIN_PASSPHRASE_LENGTH:
            raise UsageError(
                f"the passphrase is shorter than {MIN_PASSPHRASE_LENGTH} characters; "
                "nothing was written"
            )
        second = getpass.getpass("Repeat the passphrase: ")
        if first != second:
            raise KeyFileError("the two passphrases differ; nothing was written")
    return first.encode("utf-8")


def key_passphrase(path: str) -> bytes | None:
    """The passphrase for an encrypted private key file (asked for only then), else None."""
    from evidence.errors import KeyFileError

    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from exc
    if b"ENCRYPTED PRIVATE KEY" in head:
        return passphrase(confirm=False, purpose=path)
    return None


def load_signing_key(path: str) -> Ed25519PrivateKey:
    from evidence.keys import load_private_key

    return load_private_key(path, key_passphrase(path))


def tsa_roots(paths: list[str]) -> list[typing.Any]:
    if not paths:
        return []
    from evidence.errors import EvidenceError, UsageError
    from evidence.timestamping import load_tsa_roots

    try:
        return load_tsa_roots(paths)
    except EvidenceError as exc:
        # A --tsa-ca file the caller named is an input error, not a TSA failure.
        raise UsageError(f"--tsa-ca: {exc}") from exc


def int_at_least(minimum: int) -> typing.Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}: {text!r}")
        return value

    return parse


def size(text: str) -> int:
    """An argparse type: a positive byte count such as ``500M`` or ``2G`` (binary units)."""
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    mult = 1
    if t and t[-1] in units:
        mult = units[t[-1]]
        t = t[:-1]
    try:
        value = int(float(t) * mult)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 500M, 2G)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def add_proxy_options(p: argparse.ArgumentParser) -> None:
    """``--proxy`` and ``--record-proxy-address`` (capture, batch, worker)."""
    p.add_argument(
        "--proxy",
        metavar="URL",
        help="send every connection through this proxy, never directly: socks5h://, "
        f"socks5://, http:// or https://, e.g. socks5h://127.0.0.1:9050 for Tor "
        f"(default: ${PROXY_ENV})",
    )
    p.add_argument(
        "--record-proxy-address",
        action="store_true",
        help="also record the proxy's host:port in the package (only its scheme otherwise)",
    )


def add_tsa_proxy_option(p: argparse.ArgumentParser) -> None:
    """``--proxy`` for commands whose only connections go to a TSA (timestamp, checkpoint)."""
    p.add_argument(
        "--proxy",
        metavar="URL",
        help="reach the TSA through this proxy only, never directly: socks5h://, socks5://, "
        f"http:// or https:// (default: ${PROXY_ENV})",
    )


def proxy_option(args: argparse.Namespace) -> str | None:
    """The proxy URL from ``--proxy``, else from ``EVIDENCE_PROXY``, checked; or None.

    Raises:
        UsageError: the URL is not a usable proxy URL (the message never shows it,
            as it may hold a password).
    """
    from evidence.capturing.upstream import ProxyURL
    from evidence.errors import UsageError

    given = args.proxy
    source = "--proxy"
    if given is None:
        given = os.environ.get(PROXY_ENV)
        source = PROXY_ENV
        if given is not None and not given.strip():
            raise UsageError(f"{PROXY_ENV} is set but empty; unset it to capture without a proxy")
    if given is None:
        return None
    try:
        ProxyURL.parse(given)
    except UsageError as exc:
        raise UsageError(f"{source}: {exc}") from None
    return typing.cast(str, given).strip()


def add_trust_options(p: argparse.ArgumentParser) -> None:
    """The options of every command that verifies packages (verify, report)."""
    p.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="KEY.pub|DIR",
        help="a public key or directory of keys whose signatures count (repeatable)",
    )
    p.add_argument(
        "--tsa-ca",
        action="append",
        default=[],
        metavar="ROOT.pem",
        help="root certificate of a time-stamping authority you trust (repeatable)",
    )
    p.add_argument(
        "--require-timestamp",
        action="store_true",
        help="fail unless a timestamp token verifies against a --tsa-ca root",
    )
    p.add_argument(
        "--custody-anchor",
        action="append",
        default=[],
        metavar="SHA256",
        help="SHA-256 of a custody event you were given; fail if it is missing",
    )


def add_operator_options(p: argparse.ArgumentParser, whose: str = "") -> None:
    """``--operator-name``, ``--operator-org`` and ``--seal-operator-to`` (capture,
    batch, worker): docs/sealing.md. ``whose`` starts the help text."""
    p.add_argument(
        "--operator-name",
        help=f"{whose}record who captured (optional; omit if at risk; "
        f"default ${OPERATOR_NAME_ENV}, which other users cannot see in the process list)",
    )
    p.add_argument(
        "--operator-org",
        help=f"{whose}record the capturing organisation (optional; default ${OPERATOR_ORG_ENV})",
    )
    p.add_argument(
        "--seal-operator-to",
        action="append",
        default=[],
        metavar="RECIPIENT",
        help="encrypt the operator's name and organisation to this age public key (age1...); "
        "only the sealed form is recorded (repeatable; docs/sealing.md)",
    )


def operator_option(args: argparse.Namespace) -> tuple[typing.Any, tuple[str, ...]]:
    """The operator (``--operator-name``/``--operator-org``, else their environment
    variables; None when neither is given) and the checked ``--seal-operator-to``
    recipients, before any URL is fetched."""
    from evidence.errors import UsageError
    from evidence.manifest import Operator

    from_env: list[str] = []

    def given(flag: str | None, variable: str) -> str | None:
        # A flag wins, even an empty one: --operator-name "" records no name
        # while the variable stays exported for other commands.
        if flag is not None:
            return flag or None
        value = os.environ.get(variable, "").strip() or None
        if value is not None:
            from_env.append(variable)
        return value

    name = given(args.operator_name, OPERATOR_NAME_ENV)
    org = given(args.operator_org, OPERATOR_ORG_ENV)
    operator = Operator(name=name, organization=org) if name or org else None
    from evidence.capturing import check_operator

    check_operator(operator)  # once, before any URL: not once per URL
    if not args.seal_operator_to:
        if from_env:
            # An exported variable outlives the command it was set for: never
            # put a name in plaintext in a package without saying so.
            print(
                f"evidence: warning: the operator from {' and '.join(from_env)} is recorded "
                "in plaintext, NOT sealed (no --seal-operator-to); give --operator-name '' "
                "--operator-org '' to record no one",
                file=sys.stderr,
                flush=True,
            )
        return operator, ()
    from evidence.sealing import check_recipients

    recipients = check_recipients(args.seal_operator_to)
    if operator is None:
        raise UsageError(
            "--seal-operator-to needs --operator-name or --operator-org "
            f"(or {OPERATOR_NAME_ENV}/{OPERATOR_ORG_ENV}) to seal"
        )
    return operator, recipients
