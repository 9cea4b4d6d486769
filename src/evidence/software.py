"""Which software made (or checked) a package: ours, Python, OpenSSL, libraries."""

from __future__ import annotations

import functools
import platform
import ssl
from importlib import metadata

from evidence.manifest import Software

__all__ = ["DISTRIBUTION", "default_user_agent", "software_versions", "version"]

DISTRIBUTION = "evidence-archive"
_LIBRARIES = ("attrs", "cryptography", "requests", "urllib3", "warcio")


def version(dist: str = DISTRIBUTION) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def software_versions() -> Software:
    """The software running now, as recorded in a manifest.

    Read once per process: the code already loaded is what runs, even if a
    newer version is installed meanwhile, and reading package metadata was
    about half of a small capture's CPU time (benchmarks/README.md, batch).
    """
    return Software(
        name=DISTRIBUTION,
        version=version() or "unknown",
        python=platform.python_version(),
        implementation=platform.python_implementation(),
        platform=platform.system(),
        openssl=ssl.OPENSSL_VERSION,
        libraries={name: version(name) for name in _LIBRARIES},
    )


def default_user_agent() -> str:
    """The User-Agent a capture sends unless told otherwise."""
    return f"{DISTRIBUTION}/{version() or 'dev'} (web evidence capture)"
