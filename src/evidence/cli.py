"""The ``evidence`` command line. The only module that prints.

Exit codes (also in docs/cli.md):

=====  ==============================================================
0      success (capture: every package written; verify: VERIFIED)
1      capture: at least one URL gave no package; verify: a package
       FAILED (integrity or signature failure)
2      usage or input error (bad arguments, not a package, bad key)
3      verify: intact but trust not established
=====  ==============================================================

Heavy imports happen inside the command functions, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import typing

if typing.TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from evidence.capturing import CaptureResult

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_UNTRUSTED = 3

PASSPHRASE_ENV = "EVIDENCE_PASSPHRASE"  # noqa: S105 - a variable name, not a secret


def _err(message: str) -> None:
    print(f"evidence: error: {message}", file=sys.stderr)


def _warn(message: str) -> None:
    print(f"evidence: warning: {message}", file=sys.stderr)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def _size(text: str) -> int:
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    mult = 1
    if t and t[-1] in units:
        mult = units[t[-1]]
        t = t[:-1]
    try:
        value = int(float(t) * mult)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 500M, 2G)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


# --- passphrases -----------------------------------------------------------


def _passphrase(*, confirm: bool, purpose: str) -> bytes:
    env = os.environ.get(PASSPHRASE_ENV)
    if env is not None:
        return env.encode("utf-8")
    if not sys.stdin.isatty():
        from evidence.errors import KeyFileError

        raise KeyFileError(
            f"{purpose} needs a passphrase: set {PASSPHRASE_ENV} or run in a terminal"
        )
    import getpass

    first = getpass.getpass(f"Passphrase for {purpose}: ")
    if confirm:
        second = getpass.getpass("Repeat the passphrase: ")
        if first != second:
            from evidence.errors import KeyFileError

            raise KeyFileError("the two passphrases differ; nothing was written")
    return first.encode("utf-8")


def _key_passphrase(path: str) -> bytes | None:
    """The passphrase for an encrypted private key file (asked for only then), else None."""
    from evidence.errors import KeyFileError

    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from exc
    if b"ENCRYPTED PRIVATE KEY" in head:
        return _passphrase(confirm=False, purpose=path)
    return None


def _load_signing_key(path: str) -> Ed25519PrivateKey:
    from evidence.keys import load_private_key

    return load_private_key(path, _key_passphrase(path))


# --- commands --------------------------------------------------------------


def _capture_options(args: argparse.Namespace) -> typing.Any:
    from evidence.capturing import CaptureOptions

    kwargs: dict[str, typing.Any] = {
        "deadline": args.deadline,
        "max_response_bytes": args.max_response_bytes,
        "max_redirects": args.max_redirects,
        "ca_bundle": args.ca_bundle,
        "unsafe_insecure": args.insecure,
        "requisites": not args.no_requisites,
        "public_only": args.public_only,
        "max_requisites": args.max_requisites,
        "max_requisite_bytes": args.max_requisite_bytes,
        "requisites_deadline": args.requisites_deadline,
    }
    if args.user_agent:
        kwargs["user_agent"] = args.user_agent
    return CaptureOptions(**kwargs)


def cmd_capture(args: argparse.Namespace) -> int:
    from evidence.capturing import Operator, capture
    from evidence.errors import CaptureError, EvidenceError

    if args.ca_bundle and not os.path.isfile(args.ca_bundle):
        _err(f"--ca-bundle {args.ca_bundle}: no such file")
        return EXIT_USAGE
    keys = [_load_signing_key(k) for k in args.key]
    tsa_roots = _tsa_roots(args.tsa_ca)
    options = _capture_options(args)
    operator = None
    if args.operator_name or args.operator_org:
        operator = Operator(name=args.operator_name, organization=args.operator_org)
    if args.insecure:
        _warn("TLS certificate verification is OFF (--insecure); this is recorded in the manifest")
    results: list[CaptureResult] = []
    failures: list[dict[str, str]] = []
    for url in args.urls:
        try:
            result = capture(
                url,
                out=args.out,
                options=options,
                operator=operator,
                sign_with=keys,
                tsa_urls=args.tsa,
                tsa_roots=tsa_roots,
            )
        except CaptureError as exc:
            _err(f"no package for {exc.url}: {exc.cause}")
            failures.append({"url": exc.url, "error": exc.cause})
            continue
        except EvidenceError as exc:
            _err(f"no package for {url}: {exc}")
            failures.append({"url": url, "error": str(exc)})
            continue
        results.append(result)
        for w in result.warnings:
            _warn(f"{url}: {w}")
        if not args.json:
            print(result.path, flush=True)
    if args.json:
        print(
            json.dumps({"packages": [r.to_json() for r in results], "failures": failures}, indent=2)
        )
    return EXIT_FAIL if failures else EXIT_OK


def _tsa_roots(paths: list[str]) -> list[typing.Any]:
    if not paths:
        return []
    from evidence.timestamping import load_tsa_roots

    return load_tsa_roots(paths)


def cmd_timestamp(args: argparse.Namespace) -> int:
    from evidence.timestamping import add_timestamp

    roots = _tsa_roots(args.tsa_ca)
    for package in args.packages:
        for tsa in args.tsa:
            token, stored = add_timestamp(package, tsa, roots=roots, timeout=args.timeout)
            chain = (
                "chain verified" if token.chain_checked else "chain NOT yet checked (no --tsa-ca)"
            )
            print(f"{package}: {stored} genTime {token.gen_time.isoformat()} from {tsa}; {chain}")
    return EXIT_OK


def cmd_custody(args: argparse.Namespace) -> int:
    from evidence.custody import append_event, read_events
    from evidence.package import require_package

    if args.action == "add":
        if not args.event:
            _err("custody add needs --event")
            return EXIT_USAGE
        key = _load_signing_key(args.key) if args.key else None
        event = append_event(
            args.package, event=args.event, note=args.note or "", actor=args.actor, key=key
        )
        print(
            json.dumps(event, ensure_ascii=False)
            if args.json
            else f"{args.package}: custody event {event['seq']} ({event['event']}) appended"
        )
        return EXIT_OK
    root = require_package(args.package)
    events = [json.loads(line) for line in read_events(root)]
    if args.json:
        print(json.dumps(events, indent=2, ensure_ascii=False))
        return EXIT_OK
    if not events:
        print(f"{root}: no custody log")
    for e in events:
        signed = f" [signed by {e['key_id'][:16]}]" if e.get("key_id") else ""
        actor = f" by {e['actor']}" if e.get("actor") else ""
        print(f"{e['seq']:>3}. {e['time']}  {e['event']}{actor}{signed}")
        if e.get("note"):
            print(f"      {e['note']}")
    if events:
        import hashlib

        head = hashlib.sha256(read_events(root)[-1]).hexdigest()
        print(f"\nHead (SHA-256 of the last event): {head}")
        print(
            "Give this to the next holder or a third party: 'evidence verify --custody-anchor "
            "HEAD' then detects events cut from the end."
        )
    print("This lists the log. Run 'evidence verify' to check its links and signatures.")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from evidence.show import describe, summary

    code = EXIT_OK
    outputs = []
    for path in args.packages:
        info = summary(path)
        outputs.append(info)
    if args.json:
        print(json.dumps(outputs if len(outputs) > 1 else outputs[0], indent=2, ensure_ascii=False))
    else:
        print("\n\n".join(describe(i) for i in outputs))
    return code


def cmd_keygen(args: argparse.Namespace) -> int:
    from evidence.keys import PBKDF2_ITERATIONS, write_keypair

    if args.no_passphrase:
        passphrase = None
    else:
        passphrase = _passphrase(confirm=True, purpose=f"new key {args.path}")
    kid = write_keypair(args.path, passphrase)
    if passphrase is None:
        _warn(
            f"{args.path} is NOT encrypted (--no-passphrase); anyone who reads it can sign as you"
        )
    else:
        print(
            f"Private key: {args.path} (encrypted, PBKDF2-HMAC-SHA256 x{PBKDF2_ITERATIONS})",
            file=sys.stderr,
        )
    print(f"Public key:  {args.path}.pub", file=sys.stderr)
    print(kid)
    return EXIT_OK


def cmd_key_id(args: argparse.Namespace) -> int:
    from evidence.keys import key_id_of_file

    print(key_id_of_file(args.file, _key_passphrase(args.file)))
    return EXIT_OK


def cmd_sign(args: argparse.Namespace) -> int:
    from evidence.signing import sign_package

    key = _load_signing_key(args.key)
    for package in args.packages:
        kid = sign_package(package, key)
        print(f"{package}: signed by {kid}")
    return EXIT_OK


def _severity(code: int) -> int:
    return {EXIT_FAIL: 3, EXIT_USAGE: 2, EXIT_UNTRUSTED: 1, EXIT_OK: 0}[code]


def cmd_verify(args: argparse.Namespace) -> int:
    from evidence.keys import Keyring
    from evidence.verifying import verify

    keyring = Keyring.from_paths(args.trust)
    roots = _tsa_roots(args.tsa_ca)
    reports = [
        verify(
            p,
            trust=keyring,
            tsa_roots=roots,
            require_timestamp=args.require_timestamp,
            custody_anchors=args.custody_anchor,
        )
        for p in args.packages
    ]
    if args.json:
        doc: typing.Any = [r.to_json() for r in reports]
        print(json.dumps(doc if len(doc) > 1 else doc[0], indent=2))
    else:
        print("\n\n".join(r.to_text() for r in reports))
    return max((r.exit_code for r in reports), key=_severity)


def cmd_demo(args: argparse.Namespace) -> int:
    from evidence.demo import run_demo

    return run_demo(out=args.out, stream=sys.stdout)


# --- parser ----------------------------------------------------------------


def _add_tsa_ca(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--tsa-ca", action="append", default=[], metavar="ROOT.pem", help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evidence",
        description="Archive web pages as evidence: capture, sign, verify.",
        epilog="Exit codes: 0 ok/verified, 1 failed, 2 usage or input error, "
        "3 intact but not trusted. See docs/cli.md.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("capture", help="capture URLs into evidence packages")
    p.add_argument("urls", nargs="+", metavar="URL")
    p.add_argument("--out", default="archives", help="output directory (default: archives)")
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of paths")
    p.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="PATH",
        help="sign each package with this private key (repeatable)",
    )
    p.add_argument("--operator-name", help="record who captured (optional; omit if at risk)")
    p.add_argument("--operator-org", help="record the capturing organisation (optional)")
    p.add_argument("--ca-bundle", metavar="FILE", help="PEM file of CA certificates to trust")
    p.add_argument(
        "--insecure",
        action="store_true",
        help="do not verify TLS certificates (recorded in the manifest)",
    )
    p.add_argument(
        "--deadline",
        type=_positive_float,
        default=60.0,
        metavar="SECONDS",
        help="total time per URL, redirects included (default: 60)",
    )
    p.add_argument(
        "--max-response-bytes",
        type=_size,
        default=2 * 1024**3,
        metavar="SIZE",
        help="cut a response body after this many bytes (default: 2G)",
    )
    p.add_argument(
        "--max-redirects",
        type=_nonneg_int,
        default=10,
        metavar="N",
        help="redirect hops to follow (default: 10)",
    )
    p.add_argument("--user-agent", help="User-Agent header to send")
    p.add_argument(
        "--public-only",
        action="store_true",
        help="refuse loopback, private, link-local and other non-public destinations",
    )
    p.add_argument(
        "--no-requisites",
        action="store_true",
        help="capture only the page, not its images, CSS, scripts, fonts and frames",
    )
    p.add_argument(
        "--max-requisites",
        type=_nonneg_int,
        default=500,
        metavar="N",
        help="requisite URLs to fetch at most (default: 500)",
    )
    p.add_argument(
        "--max-requisite-bytes",
        type=_size,
        default=1024**3,
        metavar="SIZE",
        help="total bytes for all requisites (default: 1G)",
    )
    p.add_argument(
        "--requisites-deadline",
        type=_positive_float,
        default=120.0,
        metavar="SECONDS",
        help="time for fetching requisites (default: 120)",
    )
    p.add_argument(
        "--tsa",
        action="append",
        default=[],
        metavar="URL",
        help="RFC 3161 time-stamping authority to timestamp the manifest (repeatable)",
    )
    _add_tsa_ca(p, "TSA root certificate to check tokens against on receipt (repeatable)")
    p.set_defaults(func=cmd_capture)

    p = sub.add_parser("show", help="summarise a package")
    p.add_argument("packages", nargs="+", metavar="PACKAGE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("verify", help="verify packages against keys you trust")
    p.add_argument("packages", nargs="+", metavar="PACKAGE")
    p.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="KEY.pub|DIR",
        help="a public key or directory of keys whose signatures count (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print the JSON report")
    _add_tsa_ca(p, "root certificate of a time-stamping authority you trust (repeatable)")
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
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("timestamp", help="add an RFC 3161 timestamp to existing packages")
    p.add_argument("packages", nargs="+", metavar="PACKAGE")
    p.add_argument(
        "--tsa",
        action="append",
        required=True,
        metavar="URL",
        help="time-stamping authority URL (repeatable)",
    )
    _add_tsa_ca(p, "TSA root certificate to check the token against on receipt")
    p.add_argument("--timeout", type=_positive_float, default=30.0, metavar="SECONDS")
    p.set_defaults(func=cmd_timestamp)

    p = sub.add_parser("custody", help="show a package's chain of custody, or add an event")
    p.add_argument(
        "action",
        nargs="?",
        choices=["show", "add"],
        default="show",
        help="'add' appends an event; default: show the log",
    )
    p.add_argument("package", metavar="PACKAGE")
    from evidence.custody import EVENTS

    p.add_argument(
        "--event",
        choices=EVENTS,
        help="event type (for add)",
    )
    p.add_argument("--note", help="free text: who received it, where, why (for add)")
    p.add_argument("--actor", help="who performs the event (for add; optional)")
    p.add_argument("--key", metavar="PATH", help="sign the event with this private key")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_custody)

    p = sub.add_parser("sign", help="add a signature to existing packages")
    p.add_argument("packages", nargs="+", metavar="PACKAGE")
    p.add_argument("--key", required=True, metavar="PATH", help="private key file")
    p.set_defaults(func=cmd_sign)

    p = sub.add_parser("keygen", help="create an Ed25519 signing key pair")
    p.add_argument("path", metavar="PATH", help="private key file; the public key goes to PATH.pub")
    p.add_argument(
        "--no-passphrase",
        action="store_true",
        help="write the private key unencrypted (not recommended)",
    )
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("key-id", help="print the id of a public or private key")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=cmd_key_id)

    p = sub.add_parser("demo", help="capture, sign and verify a bundled sample page, offline")
    p.add_argument("--out", default="archives", help="output directory (default: archives)")
    p.set_defaults(func=cmd_demo)
    from evidence.cli_ledger import add_ledger_parser

    add_ledger_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        import evidence

        print(f"evidence {evidence.__version__}")
        return EXIT_OK
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    from evidence.errors import CaptureError, EvidenceError

    try:
        return int(args.func(args))
    except CaptureError as exc:
        _err(str(exc))
        return EXIT_FAIL
    except EvidenceError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except OSError as exc:
        _err(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
