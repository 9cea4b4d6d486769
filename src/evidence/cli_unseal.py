"""``evidence unseal``: open a package's sealed operator with an age identity (docs/sealing.md).

Wired into ``evidence.cli.build_parser`` by :func:`add_unseal_parser`. It
verifies nothing new: it refuses a package whose manifest does not parse,
opens the sealed operator, checks that it names this package, and prints
the name and organization through :func:`evidence.display.safe`. Exit codes
come from :mod:`evidence.errors`: 0 opened, 1 it names another package
(:class:`~evidence.errors.SealBindingError`), 2 anything else (no sealed
operator, a wrong identity, a malformed blob, not a package).
"""

from __future__ import annotations

import argparse
import sys
import typing

from evidence.cli_common import print_json as _print_json

__all__ = ["add_unseal_parser", "cmd_unseal"]

_NOT_VERIFIED = (
    "This does not verify the package: 'evidence verify' says whether it is intact "
    "and whose key signed it."
)


def cmd_unseal(args: argparse.Namespace) -> int:
    from evidence.display import safe
    from evidence.manifest import MAX_MANIFEST_BYTES, Manifest
    from evidence.package import MANIFEST_PATH, read_package_file, require_package
    from evidence.sealing import load_identities, unseal_operator

    root = require_package(args.package)
    manifest = Manifest.from_bytes(read_package_file(root, MANIFEST_PATH, MAX_MANIFEST_BYTES))
    identities = [key for path in args.identity for key in load_identities(path)]
    opened = unseal_operator(manifest, identities)
    for warning in opened.warnings:
        print(f"evidence: warning: {safe(warning)}", file=sys.stderr, flush=True)
    if args.json:
        _print_json({"package": str(root), **opened.to_json(), "verified": False})
        return 0
    sealed = manifest.operator.sealed if manifest.operator is not None else None
    count = len(sealed.recipients) if sealed is not None else 0
    none = "(not given)"
    print(
        "\n".join(
            [
                f"Package:       {safe(str(root))}",
                f"Package id:    {safe(opened.package_id)}",
                f"Sealed to:     {count} recipient(s); opened with {safe(opened.opened_by)}",
                f"Name:          {safe(opened.name) if opened.name is not None else none}",
                "Organization:  "
                + (safe(opened.organization) if opened.organization is not None else none),
                "Binding:       checked: the sealed package id, creation time and WARC "
                "SHA-256 match"
                if opened.bound_to_warc
                else "Binding:       checked: the sealed package id and creation time match "
                "(this blob does not name the WARC)",
                _NOT_VERIFIED,
            ]
        ),
        flush=True,
    )
    return 0


def add_unseal_parser(sub: typing.Any) -> None:
    """Add ``evidence unseal`` to the command line's subcommands."""
    p = sub.add_parser(
        "unseal",
        help="open a package's sealed operator identity with an age key",
        description="Decrypt the operator name and organization sealed into a package's "
        "manifest (capture --seal-operator-to), with an age identity file made by "
        "age-keygen. Checks that the sealed identity names this package; verifies "
        "nothing else.",
    )
    p.add_argument("package", metavar="PACKAGE")
    p.add_argument(
        "--identity",
        "-i",
        action="append",
        required=True,
        metavar="KEYFILE",
        help="an age identity file (AGE-SECRET-KEY-1..., from age-keygen; repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print the opened identity as JSON")
    p.set_defaults(func=cmd_unseal)
