"""``evidence ledger ...``: the collection ledger on the command line (docs/ledger.md).

Wired into ``evidence.cli.build_parser`` by :func:`add_ledger_parser`. Like
the rest of the CLI, handlers return exit codes and raise
:class:`~evidence.errors.EvidenceError` subclasses (which carry their exit
code) for ``cli.main`` to print. Heavy imports happen inside the handlers.

Exit codes for ``ledger verify`` and ``ledger consistency --check`` are those
of ``evidence verify``: 0 verified, 1 a check FAILED, 2 usage or input error,
3 nothing failed but no checkpoint signature by a key you trust (for example
without ``--ledger-key``).
"""

from __future__ import annotations

import argparse
import json
import sys
import typing

from evidence.cli_common import add_tsa_proxy_option, int_at_least, proxy_option
from evidence.cli_common import load_signing_key as _signing_key
from evidence.cli_common import positive_float as _positive_float
from evidence.cli_common import print_json as _print_json
from evidence.cli_common import tsa_roots as _tsa_roots

if typing.TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PublicKey,
    )

__all__ = ["add_ledger_parser"]


def _ledger_keys(paths: list[str]) -> list[Ed25519PublicKey] | None:
    from evidence.ledger import load_ledger_keys

    return load_ledger_keys(paths) if paths else None


def _report(report: typing.Any, as_json: bool) -> int:
    if as_json:
        _print_json(report.to_json())
    else:
        print(report.to_text())
    return int(report.exit_code)


def _write_or_print(doc: dict[str, typing.Any], out: str | None) -> None:
    data = json.dumps(doc, indent=2, ensure_ascii=True) + "\n"
    if out is None:
        sys.stdout.write(data)
        return
    from evidence.errors import StorageError

    try:
        with open(out, "x", encoding="utf-8") as fh:
            fh.write(data)
    except FileExistsError as exc:
        raise StorageError(f"{out} already exists; refusing to overwrite it") from exc
    except OSError as exc:
        raise StorageError(f"cannot write {out}: {exc.strerror or exc}") from exc


# --- handlers --------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    from evidence.display import safe
    from evidence.ledger import init_ledger

    ledger = init_ledger(args.dir, origin=args.origin)
    if args.json:
        _print_json({"ledger": str(ledger.dir), "origin": ledger.origin})
    else:
        print(f"{ledger.dir}: empty ledger, origin {safe(ledger.origin)}")
        print(f"Next: evidence ledger add {args.dir}")
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    from evidence.display import safe
    from evidence.ledger import add_packages

    results = add_packages(args.dir, args.packages)
    if args.json:
        _print_json([r.to_json() for r in results])
        return 0
    added = [r for r in results if r.added]
    for r in results:
        state = "logged as" if r.added else "already logged as"
        print(f"{safe(r.entry.package_id)}: {state} leaf {r.index}")
    print(f"{len(added)} package(s) added; {len(results) - len(added)} already in the ledger")
    return 0


def cmd_checkpoint(args: argparse.Namespace) -> int:
    from evidence.display import safe
    from evidence.ledger import make_checkpoint

    key = _signing_key(args.key)
    result = make_checkpoint(
        args.dir,
        key,
        tsa_urls=args.tsa,
        tsa_roots=_tsa_roots(args.tsa_ca),
        timeout=args.timeout,
        proxy=proxy_option(args),
    )
    if args.json:
        _print_json(result.to_json())
        return 0
    cp = result.checkpoint
    print(f"Checkpoint {result.number}: {result.path}")
    print(f"  {cp.size} package(s), root {cp.root.hex()}")
    for p, token in zip(result.token_paths, result.tokens, strict=True):
        chain = "chain verified" if token.chain_checked else "chain NOT checked (no --tsa-ca)"
        print(f"  timestamp {p.name}: genTime {token.gen_time.isoformat()} ({chain})")
    print(f"  verifier key (C2SP note format): {safe(result.verifier_key)}")
    print("Publish or send the checkpoint file; later it shows this ledger was not rewritten.")
    return 0


def cmd_prove(args: argparse.Namespace) -> int:
    from evidence.ledger import inclusion_proof

    doc = inclusion_proof(args.dir, args.package, checkpoint=args.checkpoint)
    _write_or_print(doc, args.out)
    if args.out is not None:
        summary = {
            "proof": args.out,
            "leaf_index": doc["leaf_index"],
            "tree_size": doc["tree_size"],
            "checkpoint": doc["checkpoint_number"],
        }
        if args.json:
            _print_json(summary)
        else:
            print(
                f"{args.out}: leaf {doc['leaf_index']} of {doc['tree_size']} in checkpoint "
                f"{doc['checkpoint_number']}, {len(doc['timestamps'])} timestamp(s)"
            )
    return 0


def cmd_consistency(args: argparse.Namespace) -> int:
    from evidence.errors import UsageError
    from evidence.ledger import check_consistency, consistency_proof

    if args.check is not None:
        if args.refs:
            raise UsageError("--check takes only the proof file, no DIR OLD NEW")
        return _report(
            check_consistency(args.check, ledger_keys=_ledger_keys(args.ledger_key)), args.json
        )
    if len(args.refs) != 3:
        raise UsageError("usage: evidence ledger consistency DIR OLD NEW (or --check PROOF.json)")
    doc = consistency_proof(*args.refs)
    _write_or_print(doc, args.out)
    if args.out is not None and not args.json:
        print(f"{args.out}: {len(doc['proof'])} hash(es)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from evidence.ledger import verify_ledger

    report = verify_ledger(
        args.dir,
        ledger_keys=_ledger_keys(args.ledger_key),
        tsa_roots=_tsa_roots(args.tsa_ca),
        published=args.checkpoint,
    )
    return _report(report, args.json)


# --- parser ----------------------------------------------------------------


def _ledger_key_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ledger-key",
        action="append",
        default=[],
        metavar="KEY.pub|DIR",
        help="public key you trust to sign checkpoints (repeatable); without it, "
        "signatures are NOT CHECKED",
    )


def add_ledger_parser(subparsers: typing.Any) -> None:
    """Add ``ledger`` and its subcommands to the top-level subparsers."""
    ledger = subparsers.add_parser(
        "ledger",
        help="log an archive's packages in a Merkle tree; sign checkpoints; prove inclusion",
        description="The collection ledger (docs/ledger.md): an append-only RFC 6962 log "
        "of the packages in an archive directory, with signed C2SP checkpoints.",
    )
    sub = ledger.add_subparsers(dest="ledger_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("init", help="create DIR/ledger/")
    p.add_argument("dir", metavar="DIR")
    p.add_argument(
        "--origin",
        help="checkpoint origin and signature name (default: evidence-ledger/<DIR name>)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("add", help="log packages (default: every package not yet logged)")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("packages", nargs="*", metavar="PACKAGE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("checkpoint", help="sign (and timestamp) the current tree head")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--key", required=True, metavar="PATH", help="Ed25519 private key")
    p.add_argument(
        "--tsa",
        action="append",
        default=[],
        metavar="URL",
        help="RFC 3161 time-stamping authority for the checkpoint (repeatable)",
    )
    p.add_argument(
        "--tsa-ca",
        action="append",
        default=[],
        metavar="ROOT.pem",
        help="TSA root certificate to check tokens against on receipt (repeatable)",
    )
    p.add_argument("--timeout", type=_positive_float, default=30.0, metavar="SECONDS")
    add_tsa_proxy_option(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_checkpoint)

    p = sub.add_parser("prove", help="write the inclusion proof of a package")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("package", metavar="PACKAGE", help="package directory or package id")
    p.add_argument(
        "--checkpoint",
        type=int_at_least(1),
        metavar="N",
        help="prove inclusion in checkpoint N (default: the latest)",
    )
    p.add_argument("--out", metavar="PROOF.json", help="write here (default: standard output)")
    p.add_argument("--json", action="store_true", help="with --out: a JSON summary")
    p.set_defaults(func=cmd_prove)

    p = sub.add_parser(
        "consistency",
        help="prove a newer checkpoint extends an older one, or check such a proof",
    )
    p.add_argument(
        "refs",
        nargs="*",
        metavar="DIR OLD NEW",
        help="the archive and two checkpoints (numbers or files)",
    )
    p.add_argument("--out", metavar="PROOF.json", help="write here (default: standard output)")
    p.add_argument(
        "--check", metavar="PROOF.json", help="check a consistency proof (needs nothing else)"
    )
    _ledger_key_option(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_consistency)

    p = sub.add_parser("verify", help="check the log, its checkpoints and the packages on disk")
    p.add_argument("dir", metavar="DIR")
    _ledger_key_option(p)
    p.add_argument(
        "--tsa-ca",
        action="append",
        default=[],
        metavar="ROOT.pem",
        help="root certificate of a time-stamping authority you trust (repeatable)",
    )
    p.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="FILE",
        help="a checkpoint you hold from elsewhere; fail unless this ledger extends it",
    )
    p.add_argument("--json", action="store_true", help="print the JSON report")
    p.set_defaults(func=cmd_verify)
