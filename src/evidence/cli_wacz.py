"""``evidence export`` / ``evidence import``, and ``evidence verify FILE.wacz`` (docs/wacz.md).

Wired into ``evidence.cli.build_parser`` by :func:`add_wacz_parser`, which
also gives ``evidence verify`` its ``--wacz-roots`` option; ``cmd_verify``
hands any ``.wacz`` path to :func:`verify_wacz_files`. Exit codes of a WACZ
verification are those of ``evidence verify``.
"""

from __future__ import annotations

import argparse
import sys
import typing

from evidence.cli_common import key_passphrase as _key_passphrase
from evidence.cli_common import print_json as _print_json

__all__ = ["add_wacz_parser", "is_wacz_request", "verify_wacz_files"]


def is_wacz_request(paths: typing.Sequence[str]) -> bool:
    """True when ``evidence verify`` was given only WACZ files (names ending in ``.wacz``).

    Mixed with package directories (``evidence verify archives/*``), a WACZ is
    a file among packages and is skipped with a note, as any file is.
    """
    return bool(paths) and all(str(p).lower().endswith(".wacz") for p in paths)


def verify_wacz_files(args: argparse.Namespace) -> int:
    """``evidence verify A.wacz [B.wacz ...]``: the same report shape and exit codes."""
    from evidence.errors import UsageError
    from evidence.verifying.wacz import WACZTrust, verify_wacz

    paths: list[str] = list(args.packages)
    if getattr(args, "inclusion", None) is not None:
        raise UsageError("--inclusion checks a package directory, not a WACZ")
    trust = WACZTrust.from_paths(
        args.trust, wacz_roots=args.wacz_roots or [], tsa_roots=args.tsa_ca or []
    )
    reports = [verify_wacz(p, trust=trust) for p in paths]
    if args.json:
        doc: typing.Any = [r.to_json() for r in reports]
        _print_json(doc if len(doc) > 1 else doc[0])
    else:
        print("\n\n".join(r.to_text() for r in reports), flush=True)
    order = {1: 4, 2: 3, 3: 2, 0: 0}
    return max((r.exit_code for r in reports), key=lambda c: order.get(c, 5))


def cmd_export(args: argparse.Namespace) -> int:
    from evidence.keys import load_private_key
    from evidence.wacz import export_wacz, load_wacz_key

    passphrase = _key_passphrase(args.key)
    key = load_private_key(args.key, passphrase)
    wacz_key = load_wacz_key(args.key, passphrase)
    info = export_wacz(args.package, args.out, key=key, wacz_key=wacz_key, actor=args.actor)
    if args.json:
        _print_json(info)
    else:
        print(f"wrote {info['wacz']} ({info['bytes']} bytes, sha256 {info['sha256']})")
        print(f"signed with WACZ key {info['wacz_key']}, bound to Ed25519 key {info['signer']}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from evidence.cli_common import load_signing_key
    from evidence.display import safe
    from evidence.verifying.wacz import WACZTrust
    from evidence.wacz import import_wacz

    trust = WACZTrust.from_paths(args.trust, wacz_roots=args.wacz_roots, tsa_roots=args.tsa_ca)
    key = load_signing_key(args.key) if args.key else None
    info = import_wacz(args.wacz, args.out, key=key, trust=trust, actor=args.actor)
    if args.json:
        _print_json(info)
    else:
        for warning in info["warnings"]:
            sys.stderr.write(f"warning: {safe(warning)}\n")
        what = "sealed the foreign WACZ in" if info["foreign"] else "rebuilt"
        print(f"{what} package {safe(info['package'])} (WACZ: {info['wacz_outcome']})")
        print("check it with: evidence verify --trust KEY.pub " + safe(info["package"]))
    return 0


def add_wacz_parser(subparsers: typing.Any) -> None:
    """Add ``export`` and ``import``, and ``--wacz-roots`` to ``verify``."""
    verify = subparsers.choices.get("verify")
    if verify is not None:
        verify.add_argument(
            "--wacz-roots",
            action="append",
            default=[],
            metavar="ROOTS.pem",
            help="for a WACZ: root certificates you trust for domain signatures (repeatable)",
        )

    p = subparsers.add_parser(
        "export",
        help="write a package as a signed WACZ 1.1.1 (ReplayWeb.page, py-wacz)",
        description="Export a package as WACZ (docs/wacz.md). The WACZ is signed with the "
        "P-384 WACZ key beside --key (KEY.wacz, made on first use), certified by --key.",
    )
    p.add_argument("package", metavar="PACKAGE")
    p.add_argument("out", metavar="OUT.wacz")
    p.add_argument("--key", required=True, metavar="PATH", help="your Ed25519 private key")
    p.add_argument("--actor", help="who exports (recorded in the custody event)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_export)

    p = subparsers.add_parser(
        "import",
        help="rebuild a package from our WACZ, or seal a foreign WACZ in a new package",
        description="Rebuild, byte for byte, the evidence package inside a WACZ export; "
        "a WACZ from another tool goes unchanged into a new package, with its "
        "verification result in the manifest and an 'imported' custody event.",
    )
    p.add_argument("wacz", metavar="FILE.wacz")
    p.add_argument("--out", default="archives", help="output directory (default: archives)")
    p.add_argument("--key", metavar="PATH", help="Ed25519 key to sign a new (foreign) package")
    p.add_argument("--actor", help="who imports (recorded in the custody event)")
    p.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="KEY.pub",
        help="a public key (Ed25519 or ECDSA) you trust, for the recorded verification",
    )
    p.add_argument("--wacz-roots", action="append", default=[], metavar="ROOTS.pem")
    p.add_argument("--tsa-ca", action="append", default=[], metavar="ROOT.pem")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_import)
