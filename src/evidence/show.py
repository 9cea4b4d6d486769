"""Readable summaries of a package (``evidence show``). Reads; never verifies.

A summary reports what the manifest *claims*; only ``evidence verify`` says
whether those claims hold. The text says so.
"""

from __future__ import annotations

import os
import typing

from evidence.custody import read_events
from evidence.manifest import Manifest
from evidence.package import MANIFEST_PATH, require_package

__all__ = ["describe", "summary"]

MAX_MANIFEST_READ = 64 * 1024 * 1024


def summary(path: str | os.PathLike[str]) -> dict[str, typing.Any]:
    """A JSON-ready summary of a package's manifest and attachments.

    Raises:
        PackageError: not a package, or its manifest is not valid.
    """
    root = require_package(path)
    with open(root / MANIFEST_PATH, "rb") as fh:
        raw = fh.read(MAX_MANIFEST_READ + 1)
    manifest = Manifest.from_bytes(raw)
    # The typed model has already refused fields of the wrong type; its JSON
    # form is what this summary reports.
    data = manifest.to_json()
    cap = data.get("capture") or {}
    sig_dir = root / "evidence" / "signatures"
    signatures = sorted(p.stem for p in sig_dir.glob("*.sig")) if sig_dir.is_dir() else []
    return {
        "package": str(root),
        "package_id": manifest.package_id,
        "created": manifest.created,
        "operator": data.get("operator"),
        "requested_url": cap.get("requested_url"),
        "final_url": cap.get("final_url"),
        "status": cap.get("status"),
        "started": cap.get("started"),
        "ended": cap.get("ended"),
        "server_ip": cap.get("server_ip"),
        "tls": cap.get("tls"),
        "redirects": cap.get("redirects", []),
        "limits_hit": cap.get("limits_hit", []),
        "warnings": cap.get("warnings", []),
        "dns": cap.get("dns", {}),
        "requisites": cap.get("requisites"),
        "certificate_chains": data.get("certificate_chains", {}),
        "options": data.get("options"),
        "exchanges": [
            {
                k: e.get(k)
                for k in (
                    "url",
                    "role",
                    "status",
                    "server_ip",
                    "started",
                    "response_bytes",
                    "truncated",
                )
            }
            for e in data.get("exchanges", [])
            if isinstance(e, dict)
        ],
        "custody_events": len(read_events(root)),
        "timestamps": sorted(p.name for p in (root / "evidence" / "timestamps").glob("*.tsr")),
        "files": data["files"],
        "records": len(manifest.records),
        "signatures": signatures,
        "software": data.get("software"),
    }


def describe(info: dict[str, typing.Any]) -> str:
    """Human-readable text for a :func:`summary`."""
    lines = [
        f"Package      {info['package_id']}",
        f"Location     {info['package']}",
        f"Created      {info['created']} (UTC)",
        f"URL          {info['requested_url']}",
    ]
    if info["final_url"] != info["requested_url"]:
        lines.append(f"Final URL    {info['final_url']}")
    lines.append(f"Status       HTTP {info['status']}")
    lines.append(f"Captured     {info['started']} to {info['ended']}")
    lines.append(f"Server IP    {info['server_ip']}")
    for host, answers in sorted((info.get("dns") or {}).items()):
        lines.append(f"DNS          {host} -> {', '.join(answers)}")
    lines.extend(_tls_lines(info.get("tls")))
    op = info.get("operator") or {}
    if op:
        lines.append(f"Operator     {op.get('name', '-')} / {op.get('organization', '-')}")
    for hop in info["redirects"]:
        lines.append(f"Redirect     {hop.get('status')} {hop.get('url')} -> {hop.get('location')}")
    req = info.get("requisites") or {}
    if req:
        state = "on" if req.get("enabled") else "off"
        lines.append(
            f"Requisites   {state}: {req.get('fetched', 0)} fetched, "
            f"{len(req.get('failed', []))} failed, {req.get('skipped', 0)} skipped"
        )
        for failed in req.get("failed", [])[:20]:
            lines.append(f"  failed     {failed.get('url')}: {failed.get('error')}")
    lines.append("Exchanges")
    for ex in info["exchanges"]:
        cut = f", truncated ({ex['truncated']})" if ex.get("truncated") else ""
        role = f"[{ex['role']}] " if ex.get("role") else ""
        lines.append(
            f"  {ex['status']}  {role}{ex['url']}  {ex['response_bytes']} bytes "
            f"from {ex['server_ip']}{cut}"
        )
    lines.append("Files")
    for f in info["files"]:
        lines.append(f"  {f['path']}  {f['size']} bytes  sha256 {f['sha256']}")
    lines.append(f"WARC records {info['records']}")
    sigs = info["signatures"]
    lines.append(f"Signatures   {', '.join(s[:16] for s in sigs) if sigs else 'none'}")
    stamps = info.get("timestamps") or []
    lines.append(f"Timestamps   {', '.join(stamps) if stamps else 'none'}")
    lines.append(
        f"Custody      {info.get('custody_events', 0)} event(s) (evidence custody PACKAGE)"
    )
    for w in info["warnings"]:
        lines.append(f"Warning      {w}")
    lines.append("")
    lines.append("This shows what the manifest claims. Run 'evidence verify' to check it.")
    return "\n".join(lines)


def _tls_lines(tls: dict[str, typing.Any] | None) -> list[str]:
    if not tls:
        return []
    verified = "verified" if tls.get("verified") else "NOT verified (--insecure)"
    lines = [
        f"TLS          {tls.get('protocol')} {tls.get('cipher')}, certificate {verified}",
        f"Certificate  sha256 {tls.get('certificate_sha256')}",
    ]
    for i, cert in enumerate(tls.get("certificates") or []):
        lines.append(f"  chain[{i}]  {cert.get('subject')}")
        lines.append(f"             issued by {cert.get('issuer')}")
        lines.append(f"             valid {cert.get('not_before')} to {cert.get('not_after')}")
        if cert.get("san"):
            lines.append(f"             names {', '.join(cert['san'][:8])}")
    if tls.get("chain_file"):
        complete = "" if tls.get("chain_complete") else " (leaf only: chain unavailable)"
        lines.append(f"  stored in  {tls['chain_file']}{complete}")
    return lines
