"""Capture a URL into a sealed evidence package: the facade.

(The package is named ``capturing`` so that ``evidence.capture`` can stay the
function users call.)

The stages, one module each, data flowing one way::

    fetcher.py   one exchange: exact bytes sent and received, connection facts
    crawl.py     what to fetch: the redirect chain, then the requisites
    record.py    exchanges -> WARC records (shared by every capture strategy)
    ../seal.py   results -> the manifest and bag-info
    ../package.py  atomic creation of the package on disk

:func:`capture` wires them together and adds the signatures, timestamps and
the first custody event before the package is renamed into place.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import time
import typing
import urllib.parse

import attrs

from evidence import clock
from evidence.capturing.options import BrowserOptions, CaptureOptions, MediaOptions
from evidence.errors import CaptureError, EvidenceError, PackageError, UsageError
from evidence.manifest import (
    MAX_LABEL_CHARS,
    MAX_LABELS,
    CaptureInfo,
    Inventory,
    Manifest,
    NetworkInfo,
    Operator,
    PayloadFile,
)
from evidence.package import PackageWriter, fault_point, make_package_id
from evidence.software import software_versions

if typing.TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from evidence.capturing.browser import BrowserPlan
    from evidence.capturing.fetcher import Fetcher
    from evidence.capturing.media import MediaPlan

# The stages (HTTP, WARC, sealing) are imported by the functions that run
# them, not here: a program that only needs the options or validate_url (a
# batch's scheduler, the CLI) does not load requests, the WARC writer and the
# timestamp code. preload() loads them ahead of a first capture.

logger = logging.getLogger(__name__)

__all__ = [
    "BrowserOptions",
    "CaptureOptions",
    "CaptureResult",
    "MediaOptions",
    "Operator",
    "capture",
    "check_operator",
    "preload",
    "validate_url",
]


@attrs.frozen
class CaptureResult:
    """What a capture produced.

    Attributes:
        path: the package directory.
        package_id: its id.
        url: the URL requested.
        final_url: the URL of the last response recorded.
        status: the HTTP status of the last response recorded.
        warnings: human-readable notes: error statuses, limits hit, hops not followed.
        manifest_sha256: lowercase hex SHA-256 of ``evidence/manifest.json``
            (what signatures and timestamps cover).
        created: the package's creation time (UTC, package time format).
        signers: key ids of the keys that signed the manifest.
        title: the page's ``<title>`` when it had one (the site's text:
            untrusted; show it through :func:`evidence.display.safe`).
    """

    path: str
    package_id: str
    url: str
    final_url: str
    status: int
    warnings: tuple[str, ...]
    manifest_sha256: str = ""
    created: str = ""
    signers: tuple[str, ...] = ()
    title: str | None = None

    def to_json(self) -> dict[str, typing.Any]:
        return {
            "url": self.url,
            "package": self.path,
            "package_id": self.package_id,
            "final_url": self.final_url,
            "status": self.status,
            "warnings": list(self.warnings),
            "manifest_sha256": self.manifest_sha256,
            "created": self.created,
            "signers": list(self.signers),
            "title": self.title,
        }


def preload() -> None:
    """Import everything a capture runs, so the first capture does not pay for it."""
    import evidence.capturing.crawl
    import evidence.capturing.fetcher
    import evidence.capturing.record
    import evidence.keys
    import evidence.seal
    import evidence.warc  # noqa: F401


def validate_url(url: str) -> str:
    """The URL with surrounding whitespace trimmed, if it is an absolute http(s)
    URL with a host; else raise CaptureError (kind ``invalid-url``)."""
    url = url.strip() if isinstance(url, str) else url
    if not isinstance(url, str) or not url:
        raise CaptureError(str(url), "invalid URL: empty", "invalid-url")
    if any(ch in url for ch in "\r\n\t\x00 ") or not url.isprintable():
        raise CaptureError(
            url, "invalid URL: contains whitespace or control characters", "invalid-url"
        )
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise CaptureError(url, f"invalid URL: {exc}", "invalid-url") from exc
    if "://" not in url:
        raise CaptureError(url, f"no scheme: did you mean 'https://{url}'?", "invalid-url")
    if parts.scheme.lower() not in ("http", "https"):
        raise CaptureError(
            url,
            f"unsupported scheme {parts.scheme!r}: only http and https can be captured",
            "invalid-url",
        )
    if not parts.hostname:
        raise CaptureError(url, "invalid URL: no host", "invalid-url")
    return url


def _signing_keys(sign_with: typing.Sequence[Ed25519PrivateKey]) -> list[Ed25519PrivateKey]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if isinstance(sign_with, str | os.PathLike | bytes):
        sign_with = [typing.cast("Ed25519PrivateKey", sign_with)]
    keys = list(sign_with)
    for key in keys:
        if not isinstance(key, Ed25519PrivateKey):
            raise UsageError(
                f"sign_with takes private keys, not {type(key).__name__}: load them with "
                "evidence.load_private_key(path, passphrase)"
            )
    return keys


def _check_labels(labels: typing.Mapping[str, str] | None) -> dict[str, str] | None:
    if not labels:
        return None
    if len(labels) > MAX_LABELS:
        raise UsageError(f"at most {MAX_LABELS} labels")
    for key, value in labels.items():
        if not (isinstance(key, str) and isinstance(value, str)):
            raise UsageError("labels are text: names and values must be strings")
        if not key or len(key) > MAX_LABEL_CHARS or len(value) > MAX_LABEL_CHARS:
            raise UsageError(f"label names and values hold 1 to {MAX_LABEL_CHARS} characters")
    return dict(labels)


# Per part of the operator; the custody log's lines must stay under 64 KiB.
MAX_OPERATOR_CHARS = 1024


def check_operator(operator: Operator | None) -> None:
    """Raises UsageError for an operator capture cannot record (also before a batch starts)."""
    if operator is None:
        return
    if operator.sealed is not None:
        # A sealed part made elsewhere cannot name this package's id, which
        # does not exist yet: unseal would rightly call it transplanted.
        raise UsageError(
            "give the operator in plaintext with seal_operator_to; capture seals it itself"
        )
    for value in (operator.name, operator.organization):
        if value is not None and (not isinstance(value, str) or not value.isprintable()):
            raise UsageError("operator name and organization must be printable text on one line")
        if value is not None and len(value) > MAX_OPERATOR_CHARS:
            # Longer ones made a package whose custody log fails verification
            # (its first event over the length of a custody line).
            raise UsageError(
                f"operator name and organization must be at most {MAX_OPERATOR_CHARS} "
                "characters each"
            )


def _seal_recipients(
    operator: Operator | None, seal_operator_to: typing.Sequence[str]
) -> tuple[str, ...]:
    """The checked recipients to seal ``operator`` to (none: not sealed)."""
    if isinstance(seal_operator_to, str):
        seal_operator_to = [seal_operator_to]
    if not seal_operator_to:
        return ()
    from evidence.sealing import check_recipients

    recipients = check_recipients(seal_operator_to)
    if operator is None or not (operator.name or operator.organization):
        raise UsageError("seal_operator_to needs an operator name or organization to seal")
    return recipients


def capture(
    url: str,
    *,
    out: str | os.PathLike[str] = "archives",
    options: CaptureOptions | None = None,
    operator: Operator | None = None,
    sign_with: typing.Sequence[Ed25519PrivateKey] = (),
    tsa_urls: typing.Sequence[str] = (),
    tsa_roots: typing.Sequence[x509.Certificate] = (),
    labels: typing.Mapping[str, str] | None = None,
    tsa_timeout: float = 30.0,
    browser: bool | BrowserOptions = False,
    media: bool | MediaOptions = False,
    seal_operator_to: typing.Sequence[str] = (),
) -> CaptureResult:
    """Capture ``url`` (and by default its page requisites) into a new package under ``out``.

    Args:
        url: an absolute http or https URL (surrounding whitespace is ignored).
        out: the directory that receives the package (created if missing).
        options: limits, TLS, requisite and proxy settings; defaults are
            safe. With ``options.proxy`` every connection (and the TSA
            request) goes through that proxy, never directly.
        operator: who captured, recorded only when given.
        sign_with: private keys (from :func:`evidence.load_private_key`) that
            sign the manifest before the package is renamed into place, so a
            signed capture never appears unsigned. The first key also signs
            the "captured" custody event.
        tsa_urls: RFC 3161 time-stamping authorities to ask for a token over the
            manifest. A TSA that fails does not lose the capture: the package
            is written without that token and a warning says so.
        tsa_roots: roots to check each token's chain on receipt; without them
            the chain is left for ``evidence verify --tsa-ca`` (and a warning says so).
        labels: the caller's own labels (case number, notes, tags), at most
            :data:`evidence.manifest.MAX_LABELS` of at most
            :data:`~evidence.manifest.MAX_LABEL_CHARS` characters,
            sealed into the manifest's ``labels``.
        tsa_timeout: seconds for each TSA exchange, the whole response body
            included; a TSA that takes longer costs its token only.
        browser: ``True`` or a :class:`BrowserOptions` to load the page in
            headless Chromium through the recording proxy (docs/browser.md):
            everything the page requested is recorded, plus a screenshot, a
            PDF and the DOM. Needs the ``browser`` extra and a Chromium.
        media: ``True`` or a :class:`MediaOptions` to run yt-dlp on the page
            through the recording proxy after the page is captured
            (docs/media.md): every playlist, manifest and segment is recorded,
            and the media file it wrote, its info JSON and subtitles are
            stored as resource records. yt-dlp's failures are warnings; the
            page's capture stands. Needs the ``media`` extra.
        seal_operator_to: age X25519 public keys (``age1...``, legal teams):
            ``operator`` is encrypted to them and only the sealed form goes
            into the package (docs/sealing.md); no plaintext name is written
            anywhere. Needs the ``seal`` extra.

    Returns:
        A :class:`CaptureResult` describing the package.

    Raises:
        CaptureError: no package was written for this URL: no response at all
            (``kind`` says why), or the disk filled up (``kind`` ``disk``);
            nothing is left behind.
        UsageError: ``sign_with`` or ``operator`` is not usable, a
            ``seal_operator_to`` recipient is not an age key (checked before
            any connection), browser capture was asked for without
            Playwright or Chromium, or media capture without yt-dlp.
        PackageError: the output directory cannot be used.
    """
    options = options or CaptureOptions()
    url = validate_url(url)
    proxy = options.proxy_url
    keys = _signing_keys(sign_with)
    check_operator(operator)
    recipients = _seal_recipients(operator, seal_operator_to)
    labels = _check_labels(labels)
    plan: BrowserPlan | None = None
    if browser is not False:
        from evidence.capturing.browser import BrowserPlan

        plan = BrowserPlan.prepare(
            browser if isinstance(browser, BrowserOptions) else BrowserOptions()
        )
    media_plan: MediaPlan | None = None
    if media is not False:
        from evidence.capturing.media import MediaPlan

        media_plan = MediaPlan.prepare(media if isinstance(media, MediaOptions) else MediaOptions())
    from evidence.capturing.fetcher import Fetcher, FetchLimits, refuse_non_public

    created = clock.now()
    package_id = make_package_id(url, created)
    reseal: typing.Callable[[str], Operator] | None = None
    if recipients and operator is not None:
        from evidence.sealing import seal_operator

        plain = operator

        def reseal(warc_sha256: str) -> Operator:
            return seal_operator(
                plain,
                recipients,
                package_id=package_id,
                created=clock.iso(created),
                warc_sha256=warc_sha256,
            )

        # Sealed before anything is written: the plaintext never reaches the
        # WARC, bag-info, the custody log or a log line (docs/sealing.md); the
        # WARC's warcinfo says only that it is sealed, and to how many. Once
        # the WARC is complete it is sealed again, naming the WARC's SHA-256,
        # and only that blob goes into the manifest.
        operator = seal_operator(
            operator, recipients, package_id=package_id, created=clock.iso(created)
        )
    fetcher = Fetcher(
        user_agent=options.user_agent,
        limits=FetchLimits(
            connect_timeout=options.connect_timeout,
            read_timeout=options.read_timeout,
            max_response_bytes=options.max_response_bytes,
        ),
        ca_bundle=options.ca_bundle,
        unsafe_insecure=options.unsafe_insecure,
        pool_size=max(16, options.requisite_workers * 2),
        check_address=refuse_non_public if options.public_only else None,
        proxy=proxy,
    )
    deadline = time.monotonic() + options.deadline
    try:
        with PackageWriter(out, package_id) as pkg:
            result = _capture_into(
                pkg,
                url,
                created,
                deadline,
                fetcher,
                options,
                operator,
                keys,
                tsa_urls,
                tsa_roots,
                labels,
                tsa_timeout,
                plan,
                media_plan,
                reseal,
            )
    except (OSError, PackageError) as exc:
        # A full disk anywhere (spool, WARC, chain files, tag files) loses this
        # URL only; PackageWriter has already removed the temporary directory.
        full = _disk_full(exc)
        if full is not None:
            raise CaptureError(url, f"cannot write the package: {full}", "disk") from exc
        if isinstance(exc, PackageError):
            raise
        raise CaptureError(url, f"cannot write the package: {exc.strerror or exc}") from exc
    finally:
        fetcher.close()
    return _log_in_ledger(out, result)


def _log_in_ledger(out: str | os.PathLike[str], result: CaptureResult) -> CaptureResult:
    """Add the new package to ``out``'s ledger when it has one (docs/ledger.md).

    The package is already complete; a ledger that cannot take it costs a
    warning (add it later with 'evidence ledger add'), never the capture.
    """
    from evidence.ledger import append_if_present

    try:
        added = append_if_present(out, result.path)
    except EvidenceError as exc:
        note = f"not added to the ledger: {exc}; add it later with 'evidence ledger add'"
        return attrs.evolve(result, warnings=(*result.warnings, note))
    if added is not None:
        logger.info("logged %s in the ledger of %s", result.package_id, out)
    return result


def _disk_full(exc: BaseException) -> str | None:
    """The strerror of an ENOSPC/EDQUOT anywhere in ``exc``'s cause chain, else None."""
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        if isinstance(cur, OSError) and cur.errno in (errno.ENOSPC, errno.EDQUOT):
            return os.strerror(cur.errno)
        cur = cur.__cause__ or cur.__context__
    return None


def _network(options: CaptureOptions) -> NetworkInfo | None:
    """What the manifest says about the proxy: its scheme, its address only when asked."""
    proxy = options.proxy_url
    if proxy is None:
        return None
    return NetworkInfo(
        proxy_scheme=proxy.scheme,
        proxy_address=proxy.address if options.record_proxy_address else None,
        server_ip_observable=False,
        names_resolved_by="proxy" if proxy.resolves_names else "local",
    )


def _network_warcinfo(network: NetworkInfo | None) -> list[tuple[str, str]]:
    if network is None:
        return []
    fields = [("proxy", network.proxy_scheme)]
    if network.proxy_address:
        fields.append(("proxy-address", network.proxy_address))
    fields.append(("server-ip-observable", "no"))
    fields.append(("names-resolved-by", network.names_resolved_by))
    return fields


def _capture_into(
    pkg: PackageWriter,
    url: str,
    created_at: typing.Any,
    deadline: float,
    fetcher: Fetcher,
    options: CaptureOptions,
    operator: Operator | None,
    keys: list[Ed25519PrivateKey],
    tsa_urls: typing.Sequence[str],
    tsa_roots: typing.Sequence[x509.Certificate],
    labels: dict[str, str] | None,
    tsa_timeout: float,
    plan: BrowserPlan | None = None,
    media_plan: MediaPlan | None = None,
    reseal: typing.Callable[[str], Operator] | None = None,
) -> CaptureResult:
    from evidence.capturing.crawl import Crawl
    from evidence.capturing.record import WARC_PATH, Recorder
    from evidence.keys import key_id
    from evidence.seal import CUSTODY_PATH, bag_info_for, seal_attachments
    from evidence.warc import WARCWriter

    created = clock.iso(created_at)
    browser_info = None
    media_info = None
    media_warnings: list[str] = []
    network = _network(options)
    with open(pkg.path(WARC_PATH), "xb") as fh:
        warc = WARCWriter(fh)
        recorder = Recorder(
            pkg,
            warc,
            created,
            operator,
            [
                *(plan.warcinfo_fields() if plan is not None else ()),
                *(media_plan.warcinfo_fields() if media_plan is not None else ()),
                *_network_warcinfo(network),
            ],
        )
        fault_point("warc-started")
        if plan is None:
            crawl = Crawl(fetcher, recorder, options, str(pkg.path("data"))).run(url, deadline)
        else:
            from evidence.capturing.browser import run_browser

            crawl, browser_info = run_browser(
                plan,
                url,
                fetcher=fetcher,
                recorder=recorder,
                deadline=deadline,
                spool_dir=str(pkg.path("data")),
            )
        if media_plan is not None:
            from evidence.capturing.media import run_media

            media_info, media_warnings = run_media(
                media_plan,
                url,
                fetcher=fetcher,
                recorder=recorder,
                deadline=deadline,
                spool_dir=str(pkg.path("data")),
                user_agent=options.user_agent,
                refers_to=crawl.page.response_record,
            )
        # Made durable with the other files by pkg.finish, before the rename.
        fh.flush()
    records = Inventory()
    for member in warc.members:
        records.add(member.to_json())
    page = crawl.page
    page_tls = page.tls
    if page_tls is not None and page_tls.chain_file:
        page_tls = attrs.evolve(page_tls, certificates=recorder.chains[page_tls.chain_file])
    options_json = options.to_json()
    if plan is not None:
        options_json.update({f"browser_{k}": v for k, v in plan.options.to_json().items()})
    if media_plan is not None:
        options_json.update({f"media_{k}": v for k, v in media_plan.options.to_json().items()})
    warc_file = PayloadFile(path=WARC_PATH, size=warc.size, sha256=warc.file_sha256())
    if reseal is not None:
        operator = reseal(warc_file.sha256)
    manifest = Manifest(
        package_id=pkg.package_id,
        created=created,
        software=software_versions(),
        operator=operator,
        options=options_json,
        capture=CaptureInfo(
            requested_url=url,
            final_url=page.url,
            status=page.status,
            started=recorder.exchanges[0].started,
            ended=clock.now_iso(),
            server_ip=page.server_ip,
            tls=page_tls,
            dns=dict(recorder.dns),
            user_agent=options.user_agent,
            redirects=crawl.redirects,
            requisites=crawl.requisites,
            refused=crawl.refused,
            limits_hit=crawl.limits_hit,
            warnings=(*crawl.warnings, *media_warnings),
            title=crawl.title,
            browser=browser_info,
            media=media_info,
            network=network,
        ),
        certificate_chains=dict(recorder.chains),
        custody_log=CUSTODY_PATH,
        labels=labels,
        exchanges=tuple(recorder.exchanges),
        files=(warc_file, *recorder.chain_files),
        warc_path=warc_file.path,
        records=records,
    )
    manifest_bytes = manifest.to_bytes()
    warnings = [*crawl.warnings, *media_warnings]
    attachments = seal_attachments(
        manifest_bytes,
        keys=keys,
        tsa_urls=tsa_urls,
        tsa_roots=tsa_roots,
        tsa_timeout=tsa_timeout,
        tsa_proxy=options.proxy_url,
        actor=operator.label if operator is not None else None,
        note=f"captured {url}",
        warnings=warnings,
    )
    path = pkg.finish(
        manifest=manifest_bytes,
        payload=[(f.path, f.sha256, f.size) for f in manifest.files],
        bag_info=bag_info_for(manifest),
        attachments=attachments,
    )
    logger.info("captured %s into %s", url, path)
    return CaptureResult(
        path=str(path),
        package_id=pkg.package_id,
        url=url,
        final_url=crawl.page.url,
        status=crawl.page.status,
        warnings=tuple(warnings),
        manifest_sha256=hashlib.sha256(manifest_bytes).hexdigest(),
        created=created,
        signers=tuple(key_id(k.public_key()) for k in keys),
        title=crawl.title,
    )
