"""Bounded reads for the verifier: never more than a limit, whatever a file claims."""

from __future__ import annotations

from pathlib import Path

from evidence.errors import PackageError

__all__ = ["read_bounded"]


def read_bounded(path: Path, limit: int) -> bytes:
    """Read at most ``limit`` bytes; raise :class:`PackageError` if the file is longer.

    Callers pass only regular files found by the verifier's own layout walk,
    so this never opens a link, a FIFO or a device.
    """
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise PackageError(f"{path.name} is larger than {limit} bytes")
    return data
