"""``evidence report``: a court report (PDF/A-3b or HTML) on one or more packages (docs/report.md).

Wired into ``evidence.cli.build_parser`` by :func:`add_report_parser`. The
exit code is the one ``evidence verify`` gives for the same packages and
options (0 verified, 1 failed, 3 intact but not trusted), once the report
is written; 2 when nothing could be written (usage or input error).
"""

from __future__ import annotations

import argparse
import sys
import typing

from evidence.cli_common import add_trust_options
from evidence.cli_common import load_signing_key as _signing_key
from evidence.cli_common import print_json as _print_json
from evidence.cli_common import tsa_roots as _tsa_roots

__all__ = ["add_report_parser"]


def cmd_report(args: argparse.Namespace) -> int:
    from evidence.courtreport import report
    from evidence.display import safe
    from evidence.keys import Keyring
    from evidence.verifying.policy import refuse_inside_package

    for path in args.packages:
        refuse_inside_package(path, args.trust, "trusted key")
        refuse_inside_package(path, args.tsa_ca, "TSA root")
    # Loaded once here so a bad key fails before anything is written; the key
    # file names are kept for the report ("signed by ... alice.pub").
    Keyring.from_paths(args.trust)
    key = _signing_key(args.key) if args.key else None
    result = report(
        args.packages,
        out=args.out,
        trust=list(args.trust),
        tsa_roots=_tsa_roots(args.tsa_ca),
        require_timestamp=args.require_timestamp,
        custody_anchors=args.custody_anchor,
        sign_with=key,
        actor=args.actor,
        record_custody=not args.no_custody_event,
        format=args.format,
    )
    for problem in result.custody_problems:
        print(f"evidence: warning: {safe(problem)}", file=sys.stderr, flush=True)
    if args.json:
        _print_json(result.to_json())
        return result.exit_code
    from evidence.courtreport.html import VERDICT_WORDS

    for r in result.reports:
        print(f"{VERDICT_WORDS[r.outcome]}: {safe(r.package)}", flush=True)
    print(f"wrote {safe(str(result.path))} ({result.format.upper()}, sha256 {result.sha256})")
    if result.signature is not None:
        print(f"signed {safe(str(result.signature))} by key {result.signer}")
    for package, seq in result.custody_events:
        print(f"{safe(package)}: custody event {seq} (reported) appended")
    return result.exit_code


def add_report_parser(sub: typing.Any) -> None:
    """Add ``evidence report`` to the command line's subcommands."""
    p = sub.add_parser(
        "report",
        help="verify packages and write a court report (PDF/A-3 with the proofs, or HTML)",
        description="Verify packages (same options as 'verify') and write one court report.",
    )
    p.add_argument("packages", nargs="+", metavar="PACKAGE")
    p.add_argument(
        "--out",
        required=True,
        metavar="REPORT.pdf|REPORT.html",
        help="the report file; the suffix chooses the format",
    )
    p.add_argument(
        "--format",
        choices=("pdf", "html"),
        help="the format, when the file name does not say it",
    )
    add_trust_options(p)
    p.add_argument(
        "--key",
        metavar="PATH",
        help="sign the report (detached REPORT.sig) and the custody events with this key",
    )
    p.add_argument("--actor", help="who makes the report, for the custody events")
    p.add_argument(
        "--no-custody-event",
        action="store_true",
        help="do not append a 'reported' event to the packages (read-only media)",
    )
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    p.set_defaults(func=cmd_report)
