"""How to capture: every limit in one frozen class, each default safe against hostile servers."""

from __future__ import annotations

import typing

import attrs

from evidence.capturing.upstream import ProxyURL
from evidence.errors import UsageError
from evidence.software import default_user_agent

__all__ = ["BrowserOptions", "CaptureOptions", "MediaOptions", "parse_viewport"]


@attrs.frozen(kw_only=True)
class CaptureOptions:
    """How to capture. Every limit has a default that is safe against hostile servers.

    Attributes:
        deadline: total seconds per URL, all redirect hops included.
        connect_timeout: seconds to establish one TCP connection.
        read_timeout: seconds to wait for any byte.
        max_response_bytes: body bytes recorded per response before it is cut
            and marked ``WARC-Truncated: length``.
        max_redirects: redirect hops followed.
        user_agent: the User-Agent sent.
        ca_bundle: PEM file of CA certificates to trust instead of the system's.
        unsafe_insecure: turn TLS certificate verification off (recorded).
        requisites: also fetch what the page needs to be seen (images, CSS,
            scripts, fonts, media, one level of iframes), from any origin.
        max_requisites: requisite URLs fetched at most.
        max_requisite_bytes: total response bytes for all requisites.
        requisites_deadline: seconds for the whole requisite phase.
        requisite_workers: requisites fetched at once.
        public_only: refuse every destination that is not a public IP address
            (loopback, private, link-local, CGNAT, multicast, reserved, and
            IPv6 forms embedding them), checked on the address actually
            connected to, for the page, every redirect hop and every requisite.
        proxy: send every connection through this proxy, never directly
            (``socks5h://``, ``socks5://``, ``http://`` or ``https://``, with an
            optional ``user:password@``; docs/trust-model.md). Only its scheme
            is recorded; credentials never are.
        record_proxy_address: also record the proxy's ``host:port``.
    """

    deadline: float = 60.0
    connect_timeout: float = 15.0
    read_timeout: float = 30.0
    max_response_bytes: int = 2 * 1024**3
    max_redirects: int = 10
    user_agent: str = attrs.field(factory=default_user_agent)
    ca_bundle: str | None = None
    unsafe_insecure: bool = False
    requisites: bool = True
    max_requisites: int = 500
    max_requisite_bytes: int = 1024**3
    requisites_deadline: float = 120.0
    requisite_workers: int = 8
    public_only: bool = False
    proxy: str | None = attrs.field(default=None, repr=lambda v: "<proxy>" if v else "None")
    record_proxy_address: bool = False

    def __attrs_post_init__(self) -> None:
        proxy = self.proxy_url
        if proxy is not None and self.public_only and proxy.resolves_names:
            # Fail closed: the proxy resolves the name, so the address it
            # connects to can never be checked here.
            raise UsageError(
                f"--public-only cannot be checked through a {proxy.scheme} proxy, which "
                "resolves names itself; use a socks5:// proxy (names resolved and checked "
                "here) or leave out --public-only"
            )
        if self.record_proxy_address and proxy is None:
            raise UsageError("--record-proxy-address needs --proxy")

    @property
    def proxy_url(self) -> ProxyURL | None:
        """The parsed proxy (raises UsageError for a bad URL), or None."""
        if self.proxy is None:
            return None
        return attrs.evolve(ProxyURL.parse(self.proxy), tls_ca_bundle=self.ca_bundle)

    def to_json(self) -> dict[str, typing.Any]:
        out = self._limits_json()
        proxy = self.proxy_url
        if proxy is not None:
            out["proxy"] = proxy.scheme
            if self.record_proxy_address:
                out["proxy_address"] = proxy.address
        return out

    def _limits_json(self) -> dict[str, typing.Any]:
        return {
            "deadline_seconds": self.deadline,
            "connect_timeout_seconds": self.connect_timeout,
            "read_timeout_seconds": self.read_timeout,
            "max_response_bytes": self.max_response_bytes,
            "max_redirects": self.max_redirects,
            "user_agent": self.user_agent,
            "tls_verification": not self.unsafe_insecure,
            "ca_bundle": "custom" if self.ca_bundle else "system",
            "requisites": self.requisites,
            "max_requisites": self.max_requisites,
            "max_requisite_bytes": self.max_requisite_bytes,
            "requisites_deadline_seconds": self.requisites_deadline,
            "requisite_workers": self.requisite_workers,
            "public_only": self.public_only,
        }


def parse_viewport(text: str) -> tuple[int, int]:
    """``"1280x800"`` as ``(1280, 800)``; raises UsageError for anything else."""
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise UsageError(f"viewport must be WIDTHxHEIGHT, e.g. 1280x800, not {text!r}")
    w, h = int(width), int(height)
    if not (100 <= w <= 8000 and 100 <= h <= 8000):
        raise UsageError("viewport width and height must be between 100 and 8000 pixels")
    return w, h


@attrs.frozen(kw_only=True)
class BrowserOptions:
    """How the browser captures.

    Attributes:
        chromium: path of the Chromium binary (else ``EVIDENCE_CHROMIUM``,
            Debian's ``/usr/bin/chromium``, then Playwright's own browser).
        viewport: ``(width, height)`` in CSS pixels.
        wait: extra seconds to let the page settle before the snapshot.
        scroll: scroll to the bottom in steps (lazy content) and back.
        network_idle_timeout: seconds waited at most for network idle.
        screenshot: make a full-page PNG.
        pdf: make a PDF print.
        dom: keep the DOM after scripts ran.
        max_requests: requests the proxy fetches per capture; later ones are
            answered with an error, listed as failures and marked in
            ``limits_hit`` (a page that requests forever cannot grow the
            capture without bound).
        max_browser_memory_mb: the browser's processes together may hold at
            most this much resident memory; above it they are killed and the
            capture keeps what arrived (``limits_hit``). Each page's
            JavaScript heap is also capped by ``--js-flags=--max-old-space-size``.
    """

    chromium: str | None = None
    viewport: tuple[int, int] = (1280, 800)
    wait: float = 0.0
    scroll: bool = True
    network_idle_timeout: float = 10.0
    screenshot: bool = True
    pdf: bool = True
    dom: bool = True
    max_requests: int = 5000
    max_browser_memory_mb: int = 2048

    def to_json(self) -> dict[str, typing.Any]:
        return {
            "viewport": f"{self.viewport[0]}x{self.viewport[1]}",
            "max_requests": self.max_requests,
            "max_browser_memory_mb": self.max_browser_memory_mb,
            "wait_seconds": self.wait,
            "scroll": self.scroll,
            "network_idle_timeout_seconds": self.network_idle_timeout,
            "screenshot": self.screenshot,
            "pdf": self.pdf,
            "dom": self.dom,
        }


@attrs.frozen(kw_only=True)
class MediaOptions:
    """How media (video, audio) is captured with yt-dlp (docs/media.md).

    Attributes:
        max_media_bytes: response body bytes over every request yt-dlp makes
            (playlists, manifests, segments), enforced by the recording proxy;
            what arrived before the limit is kept, marked incomplete.
        max_items: media items taken from one page at most (a page or
            playlist with more keeps the first ones).
        subtitles: also store the subtitles the site offers.
        format: a yt-dlp format selector; by default the best video with the
            best audio when ffmpeg can merge them, else the best single file.
        ffmpeg: the ffmpeg binary or its directory (else ``ffmpeg`` on PATH);
            it only merges downloaded files, never fetches.
        max_requests: requests yt-dlp may make (playlists, segments); later
            ones are refused and listed as failures. Each adds about 1.2 kB
            to the manifest: a playlist of 100,000 tiny segments would
            otherwise, given a long deadline, grow it past what the verifier
            reads by default (64 MiB).
    """

    max_media_bytes: int = 4 * 1024**3
    max_items: int = 20
    subtitles: bool = True
    format: str | None = None
    ffmpeg: str | None = None
    max_requests: int = 20_000

    def to_json(self) -> dict[str, typing.Any]:
        return {
            "max_media_bytes": self.max_media_bytes,
            "max_requests": self.max_requests,
            "max_items": self.max_items,
            "subtitles": self.subtitles,
            "format": self.format,
        }
