"""What the caller brings to a verification: trusted keys, TSA roots, anchors, limits.

Trust comes from the caller, never from the package: a trust source (key
file, key directory or TSA root) that lies inside the package being verified
is refused, because the package's author would then choose whom to trust.

Every size or count the verifier accepts from a package is capped by one
:class:`VerifyLimits`, so an attacker holding a package cannot make the
verifier read, hash, keep or print more than these bounds.
"""

from __future__ import annotations

import os
import re
import typing
from pathlib import Path

import attrs

from evidence.display import safe
from evidence.errors import UsageError
from evidence.keys import MAX_KEY_FILE_BYTES, Keyring

if typing.TYPE_CHECKING:
    from cryptography import x509

__all__ = [
    "DEFAULT_LIMITS",
    "TrustInput",
    "VerifyLimits",
    "custody_anchors",
    "keyring_for",
    "refuse_inside_package",
    "tsa_roots_for",
]

TrustInput = typing.Union[Keyring, typing.Iterable[typing.Union[str, "os.PathLike[str]"]]]  # noqa: UP007 - a runtime alias on 3.10

_HEX64 = re.compile(r"[0-9a-f]{64}")


@attrs.frozen
class VerifyLimits:
    """Every cap the verifier applies to what a package can make it read or report.

    The defaults are far beyond any real package; a package over a limit fails
    (fail closed) and the report says which limit.
    """

    # Bytes of evidence/manifest.json (read whole, then parsed).
    manifest_bytes: int = 64 * 1024 * 1024
    # Bytes of each BagIt tag file (bagit.txt, bag-info.txt, the two manifests).
    tag_file_bytes: int = 64 * 1024 * 1024
    # Bytes of bagit.txt (two short lines in every real bag).
    bagit_txt_bytes: int = 4096
    # Directory entries walked in the package, in all.
    files: int = 100_000
    # Directory nesting below the package root.
    depth: int = 16
    # Bytes of evidence/custody.jsonl, and of one line in it.
    custody_log_bytes: int = 16 * 1024 * 1024
    custody_line_bytes: int = 64 * 1024
    # Custody events checked; a longer log fails without the rest being parsed.
    custody_events: int = 10_000
    # Bytes of one RFC 3161 token (.tsr) or request (.tsq).
    token_bytes: int = 1024 * 1024
    # Bytes of one public key file (bundled or given as trust).
    key_file_bytes: int = MAX_KEY_FILE_BYTES
    # Findings kept per check; the rest are counted, not listed.
    details_per_check: int = 200


DEFAULT_LIMITS = VerifyLimits()


def _inside(path: Path, package: Path) -> bool:
    try:
        return path.resolve().is_relative_to(package.resolve())
    except (OSError, RuntimeError):  # a symlink loop: certainly not a trust source we can use
        return True


def refuse_inside_package(
    package: str | os.PathLike[str], sources: typing.Iterable[str | os.PathLike[str]], what: str
) -> None:
    """Raise :class:`UsageError` when a trust source lies inside the package.

    Args:
        package: the package being verified.
        sources: key files, key directories or TSA root files given as trust.
        what: how the source is named in the message ("trusted key", "TSA root").

    Raises:
        UsageError: a source is the package itself or inside it.
    """
    root = Path(package)
    for source in sources:
        if _inside(Path(source), root):
            raise UsageError(
                f"{what} {safe(os.fspath(source))} is inside the package being verified; "
                "trust must come from outside the package (its author could have put "
                "any key there)"
            )


def keyring_for(package: str | os.PathLike[str], trust: TrustInput) -> Keyring:
    """The caller's keyring, refusing key files or directories inside ``package``.

    Raises:
        UsageError: a trust path is inside the package.
        KeyFileError: a trust path cannot be loaded.
    """
    if isinstance(trust, Keyring):
        return trust
    paths = [trust] if isinstance(trust, (str, os.PathLike)) else list(trust)
    refuse_inside_package(package, paths, "trusted key")
    return Keyring.from_paths(paths)


def tsa_roots_for(
    package: str | os.PathLike[str],
    roots: typing.Iterable[x509.Certificate | str | os.PathLike[str]],
) -> list[x509.Certificate]:
    """Certificates the caller trusts as TSA roots, refusing files inside ``package``.

    Raises:
        UsageError: a root file is inside the package.
        TimestampError: a root file cannot be loaded.
    """
    given = list(roots)
    if not given:
        return []
    # Imported only when needed: cryptography.x509 and rfc3161-client cost
    # memory and start-up time a plain verification does not need.
    from cryptography import x509 as _x509

    from evidence.timestamping import load_tsa_roots

    paths = [r for r in given if not isinstance(r, _x509.Certificate)]
    refuse_inside_package(package, paths, "TSA root")
    certs = [r for r in given if isinstance(r, _x509.Certificate)]
    return certs + load_tsa_roots(paths)


def custody_anchors(anchors: typing.Iterable[str]) -> list[str]:
    """Normalise custody anchors (SHA-256 hex digests of events).

    Raises:
        UsageError: an anchor is not 64 hexadecimal digits (a typo would
            otherwise read as "the log was cut", which it was not).
    """
    result = []
    for anchor in anchors:
        text = anchor.strip().lower() if isinstance(anchor, str) else ""
        if not _HEX64.fullmatch(text):
            raise UsageError(
                f"custody anchor {safe(anchor)!r} is not a SHA-256 digest (64 hexadecimal digits)"
            )
        result.append(text)
    return result
