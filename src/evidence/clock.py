"""The one UTC time format of packages, manifests and custody logs.

Every time ``evidence`` writes is UTC with microseconds and a ``Z``
(``2026-11-29T11:05:34.123456Z``); every time it reads back must be in
exactly that form. Reference time is taken once per operation by the caller.
"""

from __future__ import annotations

import datetime as _dt

__all__ = ["FORMAT", "iso", "now", "now_iso", "parse_iso", "shift"]

FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def now() -> _dt.datetime:
    """The current time, timezone-aware UTC."""
    return _dt.datetime.now(_dt.timezone.utc)


def iso(when: _dt.datetime) -> str:
    """``when`` in the package time format (converted to UTC first)."""
    return when.astimezone(_dt.timezone.utc).strftime(FORMAT)


def now_iso() -> str:
    """The current time in the package time format."""
    return iso(now())


def parse_iso(text: object) -> _dt.datetime | None:
    """Parse the package time format; None for anything else (never raises)."""
    if not isinstance(text, str) or len(text) != 27:
        return None
    try:
        return _dt.datetime.strptime(text, FORMAT).replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        return None


def shift(when: _dt.datetime, delta: _dt.timedelta) -> _dt.datetime:
    """``when + delta``, clamped to the representable range instead of raising.

    Times come from packages (year 1 or 9999 parse fine); a tolerance added to
    them must not crash a check with OverflowError.
    """
    try:
        return when + delta
    except OverflowError:
        edge = _dt.datetime.max if delta > _dt.timedelta(0) else _dt.datetime.min
        return edge.replace(tzinfo=when.tzinfo)
