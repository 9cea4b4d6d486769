"""``evidence capture --media`` options (docs/media.md).

Wired into ``evidence.cli.build_parser`` by :func:`add_media_options`;
``cmd_capture`` passes ``media=media_option(args)`` to ``capture``.
"""

from __future__ import annotations

import argparse
import typing

if typing.TYPE_CHECKING:
    from evidence.capturing.options import MediaOptions

__all__ = ["add_media_options", "media_option"]


def add_media_options(
    capture: argparse.ArgumentParser, size_type: typing.Callable[[str], int]
) -> None:
    """Add ``--media`` and ``--max-media-bytes`` to the ``capture`` parser."""
    group = capture.add_argument_group("media capture (docs/media.md)")
    group.add_argument(
        "--media",
        action="store_true",
        help="also capture the page's video or audio with yt-dlp through the recording "
        "proxy: every playlist and segment is recorded, and the media file is stored",
    )
    action = group.add_argument(
        "--max-media-bytes",
        type=size_type,
        metavar="SIZE",
        help="bytes received for media at most, all requests together",
    )
    # The default is shown from MediaOptions when help is formatted (cli.py):
    # building the parser must not import the capture libraries.
    action.library_default = "max_media_bytes"  # type: ignore[attr-defined]


def media_option(args: argparse.Namespace) -> MediaOptions | bool:
    """The ``media=`` argument for ``capture`` from the parsed options.

    Checks once, before any URL, that yt-dlp is there.

    Raises:
        UsageError: ``--max-media-bytes`` without ``--media``, or no yt-dlp.
    """
    from evidence.capturing.media import MediaPlan
    from evidence.capturing.options import MediaOptions
    from evidence.errors import UsageError

    limit = getattr(args, "max_media_bytes", None)
    if not getattr(args, "media", False):
        if limit is not None:
            raise UsageError("--max-media-bytes only applies with --media")
        return False
    options = MediaOptions() if limit is None else MediaOptions(max_media_bytes=limit)
    MediaPlan.prepare(options)
    return options
