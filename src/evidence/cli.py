"""The ``evidence`` command line. The only module that prints.

Exit codes (also in docs/cli.md):

=====  ==============================================================
0      success (capture: every package written; verify: VERIFIED)
1      capture: at least one URL gave no package; verify: a package
       FAILED; a package could not be written (disk full); a TSA or
       signing failure
2      usage or input error (bad arguments, not a package, bad key)
3      verify: intact but trust not established
130    interrupted (Ctrl-C or SIGTERM); nothing half-written is left
=====  ==============================================================

Errors carry their exit code (:mod:`evidence.errors`); one handler in
:func:`main` prints them as one line. Every string that came from a server
or a package goes through :func:`evidence.display.safe` before it is printed,
and JSON is printed ASCII-only, so neither can smuggle terminal escapes.

Heavy imports happen inside the command functions; the parser imports only
the option classes whose defaults it shows.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
import typing
from pathlib import Path

from evidence.cli_common import (
    add_operator_options,
    add_proxy_options,
    add_trust_options,
    add_tsa_proxy_option,
    int_at_least,
    operator_option,
    proxy_option,
)
from evidence.cli_common import key_passphrase as _key_passphrase
from evidence.cli_common import load_signing_key as _load_signing_key
from evidence.cli_common import passphrase as _passphrase
from evidence.cli_common import positive_float as _positive_float
from evidence.cli_common import print_json as _print_json
from evidence.cli_common import size as _size
from evidence.cli_common import tsa_roots as _tsa_roots
from evidence.display import safe

if typing.TYPE_CHECKING:
    import types

    from evidence.capturing import CaptureOptions, CaptureResult

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_UNTRUSTED = 3
EXIT_INTERRUPTED = 130

_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO}


def _err(message: str) -> None:
    # Messages can quote paths and text from a package or a server: shown
    # through safe() like everything else (one line, no escapes).
    print(f"evidence: error: {safe(message)}", file=sys.stderr, flush=True)


def _warn(message: str) -> None:
    print(f"evidence: warning: {safe(message)}", file=sys.stderr, flush=True)


def _note(message: str) -> None:
    print(f"evidence: {message}", file=sys.stderr, flush=True)


def _human_size(n: int) -> str:
    for unit, size in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


# --- passphrases -----------------------------------------------------------


# --- capture ---------------------------------------------------------------


_CAPTURE_OPTIONS = (
    "deadline",
    "max_response_bytes",
    "max_redirects",
    "max_requisites",
    "max_requisite_bytes",
    "requisites_deadline",
)


def _capture_options(args: argparse.Namespace) -> CaptureOptions:
    """The options given; everything not given keeps the class's own default."""
    from evidence.capturing import CaptureOptions

    kwargs: dict[str, typing.Any] = {
        name: getattr(args, name) for name in _CAPTURE_OPTIONS if getattr(args, name) is not None
    }
    kwargs.update(
        ca_bundle=args.ca_bundle,
        unsafe_insecure=args.insecure,
        requisites=not args.no_requisites,
        public_only=args.public_only,
        proxy=proxy_option(args),
        record_proxy_address=args.record_proxy_address,
    )
    if args.user_agent:
        kwargs["user_agent"] = args.user_agent
    return CaptureOptions(**kwargs)


def _failure(url: str, exc: BaseException) -> dict[str, str]:
    """One failed URL as the JSON summary lists it, and its one error line printed."""
    from evidence.errors import CaptureError, StorageError

    if isinstance(exc, CaptureError):
        cause, kind = exc.cause, exc.kind
    elif isinstance(exc, OSError):
        cause = exc.strerror or str(exc)
        kind = "disk" if exc.errno in _DISK_ERRNOS else "other"
    else:
        cause = str(exc)
        kind = "disk" if isinstance(exc, StorageError) else "other"
    _err(f"no package for {url}: {cause}")
    return {"url": url, "error": cause, "kind": kind}


def cmd_capture(args: argparse.Namespace) -> int:
    import warnings

    from evidence.capturing import capture
    from evidence.errors import EvidenceError, UsageError
    from evidence.package import remove_stale_temporaries

    if args.ca_bundle and not os.path.isfile(args.ca_bundle):
        raise UsageError(f"--ca-bundle {args.ca_bundle}: no such file")
    keys = [_load_signing_key(k) for k in args.key]
    tsa_roots = _tsa_roots(args.tsa_ca)
    options = _capture_options(args)
    from evidence.cli_browser import browser_option

    browser = browser_option(args)
    from evidence.cli_media import media_option

    media = media_option(args)
    operator, seal_to = operator_option(args)
    if args.insecure:
        _warn("TLS certificate verification is OFF (--insecure); this is recorded in the manifest")
    removed = remove_stale_temporaries(args.out)
    if removed:
        _note(
            f"removed {len(removed)} unfinished package director"
            f"{'y' if len(removed) == 1 else 'ies'} left by captures that were killed: "
            + ", ".join(safe(name) for name in removed)
        )
    results: list[CaptureResult] = []
    failures: list[dict[str, str]] = []
    with warnings.catch_warnings():
        if args.insecure:
            # urllib3 would warn on every request with a path into site-packages;
            # the one line above says it once, in our words.
            from urllib3.exceptions import InsecureRequestWarning

            warnings.simplefilter("ignore", InsecureRequestWarning)
        for raw_url in args.urls:
            url = raw_url.strip()
            try:
                result = capture(
                    url,
                    out=args.out,
                    options=options,
                    operator=operator,
                    sign_with=keys,
                    tsa_urls=args.tsa,
                    tsa_roots=tsa_roots,
                    browser=browser,
                    media=media,
                    seal_operator_to=seal_to,
                )
            except (EvidenceError, OSError) as exc:
                # One URL's failure (a refused connection, a full disk) never
                # stops the others; no half-written package remains of it.
                failures.append(_failure(url, exc))
                continue
            results.append(result)
            for w in result.warnings:
                _warn(f"{url}: {w}")
            if not args.json:
                print(safe(result.path), flush=True)
    if args.json:
        _print_json({"packages": [r.to_json() for r in results], "failures": failures})
    return EXIT_FAIL if failures else EXIT_OK


# --- attachments: timestamp, sign, custody ---------------------------------


def cmd_timestamp(args: argparse.Namespace) -> int:
    from evidence.attach import add_timestamp

    roots = _tsa_roots(args.tsa_ca)
    proxy = proxy_option(args)
    done: list[dict[str, typing.Any]] = []
    for package in args.packages:
        for tsa in args.tsa:
            kwargs = {"timeout": args.timeout} if args.timeout is not None else {}
            token, stored = add_timestamp(package, tsa, roots=roots, proxy=proxy, **kwargs)
            done.append(
                {
                    "package": package,
                    "tsa": tsa,
                    "token": stored,
                    "gen_time": token.gen_time.isoformat(),
                    "chain_checked": token.chain_checked,
                }
            )
            if not args.json:
                chain = (
                    "chain verified"
                    if token.chain_checked
                    else "chain NOT yet checked (no --tsa-ca)"
                )
                print(
                    f"{safe(package)}: {safe(stored)} genTime {token.gen_time.isoformat()} "
                    f"from {safe(tsa)}; {chain}",
                    flush=True,
                )
    if args.json:
        _print_json(done)
    return EXIT_OK


def cmd_sign(args: argparse.Namespace) -> int:
    from evidence.attach import sign_package

    key = _load_signing_key(args.key)
    done = []
    for package in args.packages:
        kid = sign_package(package, key)
        done.append({"package": package, "key_id": kid})
        if not args.json:
            print(f"{safe(package)}: signed by {kid}", flush=True)
    if args.json:
        _print_json(done)
    return EXIT_OK


def cmd_custody_add(args: argparse.Namespace) -> int:
    from evidence.attach import append_event

    key = _load_signing_key(args.key) if args.key else None
    event = append_event(
        args.package, event=args.event, note=args.note or "", actor=args.actor, key=key
    )
    if args.json:
        _print_json(event)
    else:
        print(
            f"{safe(args.package)}: custody event {safe(event.get('seq'))} "
            f"({safe(event.get('event'))}) appended",
            flush=True,
        )
    return EXIT_OK


def cmd_custody_show(args: argparse.Namespace) -> int:
    from evidence.package import require_package
    from evidence.show import custody_listing, describe_custody

    root = require_package(args.package)
    listing = custody_listing(root)
    if args.json:
        _print_json(listing)
    else:
        print(describe_custody(listing), flush=True)
    return EXIT_OK


# --- reading: show, verify -------------------------------------------------


def cmd_show(args: argparse.Namespace) -> int:
    from evidence.show import describe, summary

    outputs = [summary(path) for path in args.packages]
    if args.json:
        _print_json(outputs if len(outputs) > 1 else outputs[0])
    else:
        print("\n\n".join(describe(i) for i in outputs), flush=True)
    return EXIT_OK


def _severity(code: int) -> int:
    return {EXIT_FAIL: 3, EXIT_USAGE: 2, EXIT_UNTRUSTED: 1, EXIT_OK: 0}[code]


def cmd_verify(args: argparse.Namespace) -> int:
    from evidence import cli_wacz
    from evidence.errors import UsageError
    from evidence.keys import Keyring
    from evidence.verifying import verify
    from evidence.verifying.policy import refuse_inside_package

    if args.recursive:  # every package under each directory: evidence.cli_batch
        from evidence.cli_batch import cmd_verify_recursive

        return cmd_verify_recursive(args)
    if cli_wacz.is_wacz_request(args.packages):  # a WACZ has its own verifier (docs/wacz.md)
        return cli_wacz.verify_wacz_files(args)
    for path in args.packages:
        # The keys are loaded once for all packages; each package is still
        # refused as a source of its own trust (its author chose those files).
        refuse_inside_package(path, args.trust, "trusted key")
        refuse_inside_package(path, args.tsa_ca, "TSA root")
    keyring = Keyring.from_paths(args.trust)
    roots = _tsa_roots(args.tsa_ca)
    paths: list[str] = list(args.packages)
    if len(paths) > 1:
        # `evidence verify archives/*` meets key files, notes and .DS_Store
        # beside the packages: a file is never a package, so say so and go on.
        skipped = [p for p in paths if not os.path.isdir(p)]
        for p in skipped:
            _note(f"skipped {safe(p)}: a file, not a package directory")
        paths = [p for p in paths if os.path.isdir(p)]
        if not paths:
            raise UsageError("none of the paths given is a package directory")
    reports = [
        verify(
            p,
            trust=keyring,
            tsa_roots=roots,
            require_timestamp=args.require_timestamp,
            custody_anchors=args.custody_anchor,
        )
        for p in paths
    ]
    codes = [r.exit_code for r in reports]
    if args.inclusion is None:
        if args.ledger_key:
            raise UsageError("--ledger-key goes with --inclusion PROOF.json")
        if args.json:
            doc: typing.Any = [r.to_json() for r in reports]
            _print_json(doc if len(doc) > 1 else doc[0])
        else:
            print("\n\n".join(r.to_text() for r in reports), flush=True)
        return max(codes, key=_severity)
    if len(reports) != 1:
        raise UsageError("--inclusion checks one package: name exactly one")
    from evidence.ledger import check_inclusion, load_ledger_keys

    inclusion = check_inclusion(
        paths[0],
        args.inclusion,
        ledger_keys=load_ledger_keys(args.ledger_key) if args.ledger_key else None,
        tsa_roots=roots,
    )
    codes.append(inclusion.exit_code)
    if args.json:
        _print_json({"package": reports[0].to_json(), "inclusion": inclusion.to_json()})
    else:
        print(reports[0].to_text() + "\n\n" + inclusion.to_text(), flush=True)
    return max(codes, key=_severity)


# --- keys ------------------------------------------------------------------


def _check_new_key_path(path: str) -> None:
    """Refuse a key path that cannot be written, before any passphrase is asked for."""
    from evidence.errors import KeyFileError

    priv = Path(path)
    for target in (priv, Path(f"{path}.pub")):
        if os.path.lexists(target):
            raise KeyFileError(f"{target} already exists; refusing to overwrite a key")
    parent = priv.parent
    while not os.path.lexists(parent) and parent != parent.parent:
        parent = parent.parent  # keygen creates the missing directories
    if not parent.is_dir():
        raise KeyFileError(f"cannot write {priv}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise KeyFileError(f"cannot write {priv}: {parent} is not writable")


def cmd_keygen(args: argparse.Namespace) -> int:
    from evidence.errors import KeyFileError
    from evidence.keys import PBKDF2_ITERATIONS, write_keypair

    _check_new_key_path(args.path)
    _check_new_key_path(f"{args.path}.wacz")  # its P-384 WACZ key too (docs/wacz.md)
    if args.no_passphrase:
        passphrase = None
    else:
        passphrase = _passphrase(confirm=True, purpose=f"new key {args.path}")
    parent = Path(args.path).parent
    try:
        # A fresh machine has no ~/.evidence yet: make it private to the user.
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise KeyFileError(f"cannot create {parent}: {exc.strerror or exc}") from exc
    kid = write_keypair(args.path, passphrase)
    from evidence.wacz import load_wacz_key

    load_wacz_key(args.path, passphrase)  # made with the key, so every export uses it
    if passphrase is None:
        _warn(
            f"{args.path} is NOT encrypted (--no-passphrase); anyone who reads it can sign as you"
        )
    else:
        _note(f"private key: {args.path} (encrypted, PBKDF2-HMAC-SHA256 x{PBKDF2_ITERATIONS})")
    _note(f"public key:  {args.path}.pub")
    _note(f"WACZ key:    {args.path}.wacz (ECDSA P-384, signs WACZ exports; docs/wacz.md)")
    if args.json:
        _print_json(
            {
                "key_id": kid,
                "private_key": args.path,
                "public_key": f"{args.path}.pub",
                "encrypted": passphrase is not None,
            }
        )
    else:
        print(kid, flush=True)
    return EXIT_OK


def cmd_key_id(args: argparse.Namespace) -> int:
    from evidence.keys import key_id_of_file

    kid = key_id_of_file(args.file, _key_passphrase(args.file))
    if args.json:
        _print_json({"file": args.file, "key_id": kid})
    else:
        print(kid, flush=True)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from evidence.demo import run_demo

    return run_demo(out=args.out, stream=sys.stdout)


# --- parser ----------------------------------------------------------------


def _library_defaults() -> dict[str, str]:
    """Defaults shown in --help, read from the library (never copied here).

    Imported only when help is formatted: building the parser must not load
    the network and crypto libraries (``evidence --version`` stays instant).
    """
    import inspect

    import attrs

    from evidence.attach import add_timestamp
    from evidence.capturing import CaptureOptions, MediaOptions

    shown: dict[str, str] = {}
    for field in (*attrs.fields(CaptureOptions), *attrs.fields(MediaOptions)):
        value = field.default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        is_size = isinstance(value, int) and "bytes" in field.name
        shown[field.name] = _human_size(int(value)) if is_size else f"{value:g}"
    timeout = inspect.signature(add_timestamp).parameters["timeout"].default
    shown["timeout"] = f"{timeout:g}"
    return shown


class _HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: N)`` to options whose default lives in the library."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        name = getattr(action, "library_default", None)
        if text is not None and name is not None:
            text += f" (default: {_library_defaults()[name]})"
        return text


def _option(p: argparse.ArgumentParser, flag: str, name: str, **kwargs: typing.Any) -> None:
    """An option whose default is the library's: None here, filled in by the library."""
    action = p.add_argument(flag, default=None, **kwargs)
    action.library_default = name  # type: ignore[attr-defined]  # read by _HelpFormatter


def _add_tsa_ca(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--tsa-ca", action="append", default=[], metavar="ROOT.pem", help=help_text)


def _add_json(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def _version() -> str:
    import evidence

    return f"evidence {evidence.__version__}"


def _add_capture(sub: typing.Any) -> None:
    p = sub.add_parser(
        "capture", help="capture URLs into evidence packages", formatter_class=_HelpFormatter
    )
    p.add_argument("urls", nargs="+", metavar="URL")
    p.add_argument("--out", default="archives", help="output directory (default: archives)")
    _add_json(p, "a summary of packages and failures")
    p.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="PATH",
        help="sign each package with this private key (repeatable)",
    )
    add_operator_options(p)
    p.add_argument("--ca-bundle", metavar="FILE", help="PEM file of CA certificates to trust")
    p.add_argument(
        "--insecure",
        action="store_true",
        help="do not verify TLS certificates (recorded in the manifest)",
    )
    # Defaults come from CaptureOptions: one place, never copied.
    _option(
        p,
        "--deadline",
        "deadline",
        type=_positive_float,
        metavar="SECONDS",
        help="total time per URL, redirects included",
    )
    _option(
        p,
        "--max-response-bytes",
        "max_response_bytes",
        type=_size,
        metavar="SIZE",
        help="cut a response body after this many bytes",
    )
    _option(
        p,
        "--max-redirects",
        "max_redirects",
        type=int_at_least(0),
        metavar="N",
        help="redirect hops to follow",
    )
    p.add_argument("--user-agent", help="User-Agent header to send")
    p.add_argument(
        "--public-only",
        action="store_true",
        help="refuse loopback, private, link-local and other non-public destinations",
    )
    add_proxy_options(p)
    p.add_argument(
        "--no-requisites",
        action="store_true",
        help="capture only the page, not its images, CSS, scripts, fonts and frames",
    )
    _option(
        p,
        "--max-requisites",
        "max_requisites",
        type=int_at_least(0),
        metavar="N",
        help="requisite URLs to fetch at most",
    )
    _option(
        p,
        "--max-requisite-bytes",
        "max_requisite_bytes",
        type=_size,
        metavar="SIZE",
        help="total bytes for all requisites",
    )
    _option(
        p,
        "--requisites-deadline",
        "requisites_deadline",
        type=_positive_float,
        metavar="SECONDS",
        help="time for fetching requisites",
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``evidence`` command."""
    from evidence.custody import APPENDABLE_EVENTS

    parser = argparse.ArgumentParser(
        prog="evidence",
        description="Archive web pages as evidence: capture, sign, verify.",
        epilog="Exit codes: 0 ok/verified, 1 failed, 2 usage or input error, "
        "3 intact but not trusted, 130 interrupted. See docs/cli.md.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    _add_capture(sub)

    p = sub.add_parser("show", help="summarise a package (what it claims; not a verification)")
    p.add_argument("packages", nargs="+", metavar="PACKAGE")
    _add_json(p, "the summary")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("verify", help="verify packages against keys you trust")
    p.add_argument("packages", nargs="+", metavar="PACKAGE")
    add_trust_options(p)
    _add_json(p, "the report")
    p.add_argument(
        "--inclusion",
        metavar="PROOF.json",
        help="also check this ledger inclusion proof for the package (see docs/ledger.md)",
    )
    p.add_argument(
        "--ledger-key",
        action="append",
        default=[],
        metavar="KEY.pub|DIR",
        help="a key you trust to sign ledger checkpoints (repeatable; with --inclusion)",
    )
    from evidence.cli_batch import add_batch_parser, add_verify_options

    add_verify_options(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser(
        "timestamp",
        help="add an RFC 3161 timestamp to existing packages",
        formatter_class=_HelpFormatter,
    )
    p.add_argument("packages", nargs="+", metavar="PACKAGE")
    p.add_argument(
        "--tsa",
        action="append",
        required=True,
        metavar="URL",
        help="time-stamping authority URL (repeatable)",
    )
    _add_tsa_ca(p, "TSA root certificate to check the token against on receipt")
    add_tsa_proxy_option(p)
    _option(
        p,
        "--timeout",
        "timeout",
        type=_positive_float,
        metavar="SECONDS",
        help="time to wait for each TSA",
    )
    _add_json(p, "the tokens stored")
    p.set_defaults(func=cmd_timestamp)

    p = sub.add_parser("custody", help="show a package's chain of custody, or add an event")
    custody = p.add_subparsers(dest="custody_command", metavar="ACTION", required=True)
    c = custody.add_parser(
        "show", help="list the events (signatures are NOT checked; 'verify' does)"
    )
    c.add_argument("package", metavar="PACKAGE")
    _add_json(c, "the events")
    c.set_defaults(func=cmd_custody_show)
    c = custody.add_parser("add", help="append an event to the log")
    c.add_argument("package", metavar="PACKAGE")
    c.add_argument(
        "--event",
        required=True,
        choices=APPENDABLE_EVENTS,
        help="event type (captured is made by the capture only)",
    )
    c.add_argument("--note", help="free text: who received it, where, why")
    c.add_argument("--actor", help="who performs the event (optional)")
    c.add_argument("--key", metavar="PATH", help="sign the event with this private key")
    _add_json(c, "the event appended")
    c.set_defaults(func=cmd_custody_add)

    p = sub.add_parser("sign", help="add a signature to existing packages")
    p.add_argument("packages", nargs="+", metavar="PACKAGE")
    p.add_argument("--key", required=True, metavar="PATH", help="private key file")
    _add_json(p, "the signatures added")
    p.set_defaults(func=cmd_sign)

    p = sub.add_parser("keygen", help="create an Ed25519 signing key pair")
    p.add_argument("path", metavar="PATH", help="private key file; the public key goes to PATH.pub")
    p.add_argument(
        "--no-passphrase",
        action="store_true",
        help="write the private key unencrypted (not recommended)",
    )
    _add_json(p, "the key id and file names")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("key-id", help="print the id of a public or private key")
    p.add_argument("file", metavar="FILE")
    _add_json(p, "the key id")
    p.set_defaults(func=cmd_key_id)

    p = sub.add_parser("demo", help="capture, sign and verify a bundled sample page, offline")
    p.add_argument("--out", default="archives", help="output directory (default: archives)")
    p.set_defaults(func=cmd_demo)
    from evidence.cli_ledger import add_ledger_parser

    add_ledger_parser(sub)
    from evidence.cli_report import add_report_parser

    add_report_parser(sub)
    from evidence.cli_unseal import add_unseal_parser

    add_unseal_parser(sub)

    from evidence.cli_wacz import add_wacz_parser

    add_wacz_parser(sub)

    add_batch_parser(sub)
    from evidence.cli_browser import add_browser_parser

    add_browser_parser(sub)
    from evidence.cli_media import add_media_options

    add_media_options(sub.choices["capture"], _size)
    return parser


def _compat_argv(argv: list[str]) -> list[str]:
    """``evidence custody PACKAGE`` (the old form) still means ``custody show PACKAGE``."""
    if len(argv) >= 2 and argv[0] == "custody" and argv[1] not in ("show", "add", "-h", "--help"):
        return ["custody", "show", *argv[1:]]
    return argv


def _on_sigterm(signum: int, frame: types.FrameType | None) -> None:
    # SIGTERM (timeout, cron, docker stop) unwinds like Ctrl-C: the package
    # writer's cleanup removes the temporary directory on the way out.
    raise KeyboardInterrupt


def _quiet_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so the final flush is silent."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    from evidence.errors import EvidenceError

    args = build_parser().parse_args(_compat_argv(list(sys.argv[1:] if argv is None else argv)))
    installed = False
    previous: typing.Any = None
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
        installed = True
    except ValueError:
        pass  # not the main thread: leave signals alone
    try:
        return int(args.func(args))
    except EvidenceError as exc:
        _err(str(exc))
        return exc.exit_code
    except BrokenPipeError:
        # `evidence show --json PKG | head`: the reader has gone; stop quietly.
        _quiet_stdout()
        return EXIT_FAIL
    except OSError as exc:
        _err(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
        return EXIT_FAIL if exc.errno in _DISK_ERRNOS else EXIT_USAGE
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    finally:
        if installed:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
