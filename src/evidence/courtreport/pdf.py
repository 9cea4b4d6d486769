"""The court report as PDF/A-3b, rendered from the HTML by WeasyPrint, with the proofs attached.

WeasyPrint is an optional dependency (``pip install 'evidence-archive[report]'``),
imported only here and only when a PDF is asked for. It renders with pango,
so text in any script the installed fonts cover (Noto Sans CJK for Chinese,
DejaVu Sans for Arabic-script Uyghur and for Cyrillic) is laid out properly.

PDF/A-3 is the archival profile that allows embedded files: each proof
(manifest.json, signatures, timestamp tokens, custody.jsonl, the
verification report JSON) is attached byte for byte, so the PDF alone
carries what is needed to re-check the seal.

The renderer is given a URL fetcher that refuses everything except the
``data:`` URI of the inline screenshot: the HTML is ours, but it shows
attacker-controlled values, and a rendering must never reach the network
or the file system whatever it contains.
"""

from __future__ import annotations

import base64
import datetime as _dt
import logging
import typing
import warnings

from evidence.errors import ReportError, UsageError

if typing.TYPE_CHECKING:
    from evidence.courtreport.facts import Attachment

__all__ = ["INSTALL_HINT", "PDF_VARIANT", "render_pdf"]

log = logging.getLogger(__name__)

PDF_VARIANT = "pdf/a-3b"
INSTALL_HINT = (
    "the PDF report needs WeasyPrint: pip install 'evidence-archive[report]' "
    "(or write an .html report, which needs nothing more)"
)


def _weasyprint() -> typing.Any:
    try:
        import weasyprint  # type: ignore[import-untyped]  # WeasyPrint ships no type hints
    except ImportError as exc:
        raise UsageError(INSTALL_HINT) from exc
    return weasyprint


def _fetcher_class(weasyprint: typing.Any) -> typing.Any:
    base = weasyprint.urls.URLFetcher

    class NoNetworkFetcher(base):  # type: ignore[misc, valid-type] # WeasyPrint is untyped
        """Serves ``data:`` URIs only; any other URL stops the rendering."""

        def fetch(self, url: str, headers: typing.Any = None) -> typing.Any:
            if url.startswith("data:"):
                return super().fetch(url, headers)
            raise weasyprint.urls.FatalURLFetchingError(
                f"the report tried to load {url[:80]!r}; refused"
            )

    return NoNetworkFetcher(allowed_protocols=("data",), timeout=1)


def render_pdf(
    document: str, attachments: typing.Sequence[Attachment], *, created: _dt.datetime
) -> bytes:
    """Render ``document`` (the report HTML) to PDF/A-3b bytes with ``attachments`` embedded.

    Raises:
        UsageError: WeasyPrint is not installed (the message says how to install it).
        ReportError: the renderer failed.
    """
    weasyprint = _weasyprint()
    fetcher = _fetcher_class(weasyprint)
    try:
        files = [
            weasyprint.Attachment(
                # A data: URI (served by our fetcher) is how WeasyPrint takes
                # a MIME type; the bytes are the package's, unchanged.
                url=f"data:{a.media_type};base64,{base64.b64encode(a.data).decode('ascii')}",
                name=a.name,
                description=f"{a.description} ({a.source}; SHA-256 {a.sha256})",
                created=created,
                modified=created,
                relationship="Source",
                url_fetcher=fetcher,
            )
            # The PDF's EmbeddedFiles name tree must be sorted by name (PDF
            # 32000 7.9.6; qpdf looks names up by binary search); WeasyPrint
            # writes them in the order given.
            for a in sorted(attachments, key=lambda a: a.name.encode("utf-8"))
        ]
        html = weasyprint.HTML(string=document, base_url="about:blank", url_fetcher=fetcher)
        with warnings.catch_warnings():
            # WeasyPrint opens its own sRGB profile for the PDF/A output intent
            # and never closes it; the file is dropped (and warned about) inside
            # write_pdf. Only that one warning is silenced.
            warnings.filterwarnings(
                "ignore", message=r"unclosed file .*sRGB2014\.icc", category=ResourceWarning
            )
            pdf = html.write_pdf(
                pdf_variant=PDF_VARIANT,
                attachments=files,
                presentational_hints=False,
                optimize_images=False,
            )
    except (Exception, weasyprint.urls.FatalURLFetchingError) as exc:
        log.info("PDF rendering failed: %r", exc)
        raise ReportError(f"the PDF report could not be rendered: {exc}") from exc
    if not isinstance(pdf, bytes):  # pragma: no cover - WeasyPrint returns bytes without a target
        raise ReportError("the PDF renderer returned no document")
    return pdf
