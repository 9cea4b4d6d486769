"""``evidence capture --browser`` options and ``evidence extract`` (docs/browser.md).

Wired into ``evidence.cli.build_parser`` by :func:`add_browser_parser`, which
adds the browser options to ``capture`` and the ``extract`` command;
``cmd_capture`` passes ``browser=browser_option(args)`` to ``capture``.
"""

from __future__ import annotations

import argparse
import typing

from evidence.cli_common import int_at_least, positive_float
from evidence.cli_common import print_json as _print_json

if typing.TYPE_CHECKING:
    from evidence.capturing.options import BrowserOptions

__all__ = ["add_browser_options", "add_browser_parser", "browser_option", "cmd_extract"]


def browser_option(args: argparse.Namespace) -> BrowserOptions | bool:
    """The ``browser=`` argument for ``capture`` from the parsed options.

    Checks once, before any URL, that Playwright and a Chromium are there, so a
    missing browser is one line, not one failure per URL.

    Raises:
        UsageError: a browser option without ``--browser``, a bad viewport, or
            no Playwright or Chromium.
    """
    from evidence.capturing.options import BrowserOptions, parse_viewport
    from evidence.errors import UsageError

    given = [
        flag
        for flag, value in (
            ("--chromium", getattr(args, "chromium", None)),
            ("--viewport", getattr(args, "viewport", None)),
            ("--wait", getattr(args, "wait", None)),
            ("--no-scroll", getattr(args, "no_scroll", False) or None),
            ("--max-browser-requests", getattr(args, "max_browser_requests", None)),
            ("--browser-memory", getattr(args, "browser_memory", None)),
        )
        if value is not None
    ]
    if not getattr(args, "browser", False):
        if given:
            raise UsageError(f"{', '.join(given)} only apply with --browser")
        return False
    defaults = BrowserOptions()
    options = BrowserOptions(
        chromium=args.chromium,
        viewport=parse_viewport(args.viewport) if args.viewport else defaults.viewport,
        wait=args.wait if args.wait is not None else defaults.wait,
        scroll=not args.no_scroll,
        max_requests=getattr(args, "max_browser_requests", None) or defaults.max_requests,
        max_browser_memory_mb=getattr(args, "browser_memory", None)
        or defaults.max_browser_memory_mb,
    )
    from evidence.capturing.browser import BrowserPlan

    BrowserPlan.check(options)
    return options


def cmd_extract(args: argparse.Namespace) -> int:
    """``evidence extract PACKAGE DIR``."""
    from evidence.display import safe
    from evidence.extract import extract

    result = extract(args.package, args.directory)
    if args.json:
        _print_json(result.to_json())
    else:
        print(safe(result.index))
        print(
            f"{result.artefacts} artefact(s), {result.media} media file(s), "
            f"{result.responses} response bod"
            f"{'y' if result.responses == 1 else 'ies'}"
        )
        for note in result.notes:
            print(f"note: {safe(note)}")
    return 0


def add_browser_options(group: typing.Any) -> None:
    """Add ``--browser`` and its options (``--chromium``, ``--viewport``, ``--wait``,
    ``--no-scroll``, ``--max-browser-requests``, ``--browser-memory``) to a parser
    or argument group (``capture``, ``batch`` and ``worker`` share them)."""
    group.add_argument(
        "--browser",
        action="store_true",
        help="load the page in headless Chromium through a recording proxy; "
        "adds a screenshot, a PDF and the rendered DOM",
    )
    group.add_argument(
        "--chromium",
        metavar="PATH",
        help="the Chromium binary (else $EVIDENCE_CHROMIUM, /usr/bin/chromium, "
        "then Playwright's own)",
    )
    group.add_argument("--viewport", metavar="WxH", help="browser window size (default: 1280x800)")
    group.add_argument(
        "--wait",
        type=positive_float,
        metavar="SECONDS",
        help="extra time for the page to settle before the snapshot",
    )
    group.add_argument(
        "--no-scroll",
        action="store_true",
        help="do not scroll through the page before the snapshot",
    )
    group.add_argument(
        "--max-browser-requests",
        type=int_at_least(1),
        metavar="N",
        help="requests the page may have fetched at most; later ones are refused "
        "and marked (default: 5000)",
    )
    group.add_argument(
        "--browser-memory",
        type=int_at_least(1),
        metavar="MIB",
        help="memory the browser's processes may hold together before they are "
        "killed and the capture marked (default: 2048)",
    )


def add_browser_parser(subparsers: typing.Any) -> None:
    """Add the browser options to ``capture`` and the ``extract`` command."""
    capture = subparsers.choices.get("capture")
    if capture is not None:
        add_browser_options(capture.add_argument_group("browser capture (docs/browser.md)"))

    p = subparsers.add_parser(
        "extract",
        help="write a package's screenshot, PDF, DOM and decoded response bodies as files",
        description="Write the browser's artefacts and every response body (content-decoded) "
        "into a new directory, with index.json mapping each URL to its file. Records are "
        "checked against the sealed inventory; signatures are not (use 'evidence verify').",
    )
    p.add_argument("package", metavar="PACKAGE")
    p.add_argument("directory", metavar="DIR", help="a new directory to create")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=cmd_extract)
