"""Self-contained HTML reports: tables and plots embedded (base64 PNG), no network, no script.

Examples
--------
>>> from hwsim.report.html import HtmlReport
>>> r = HtmlReport("Demo")
>>> r.heading("Results").table(["profile", "latency"], [["npu", "1.2 ms"]]).paragraph("npu wins.")
HtmlReport('Demo', 3 blocks)
>>> "<table" in r.render()
True
"""
from __future__ import annotations

import base64
import html
import io
import re
from datetime import datetime, timezone
from typing import Iterable, Sequence

__all__ = ["HtmlReport", "figure_png"]

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;
     color:#1d2330;line-height:1.45;padding:0 1em}
h1{border-bottom:2px solid #2d6cdf;padding-bottom:.2em}
h2{margin-top:1.6em;border-bottom:1px solid #d5dae3}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #d5dae3;padding:.3em .6em;text-align:right}
th{background:#eef2f9}
td:first-child,th:first-child{text-align:left}
tr.win td{background:#e7f6e9;font-weight:600}
figure{margin:1em 0}
figure img{max-width:100%;border:1px solid #d5dae3}
figcaption{font-size:.85em;color:#555}
.meta{color:#666;font-size:.85em}
.callout{background:#f5f8ff;border-left:4px solid #2d6cdf;padding:.6em 1em;margin:1em 0}
code{background:#f3f3f3;padding:0 .25em}
"""


def _inline(text: str) -> str:
    """Escape, then render ``**bold**`` and ```code``` spans."""
    t = html.escape(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", t)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", t)


def figure_png(fig, dpi: int = 110) -> bytes:
    """Render a matplotlib figure to PNG bytes (and close it)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


class HtmlReport:
    """Builds one HTML page block by block; :meth:`render` returns the whole document."""

    def __init__(self, title: str, subtitle: str = ""):
        self.title = title
        self.subtitle = subtitle
        self._blocks: list[str] = []

    def __repr__(self) -> str:
        return f"HtmlReport({self.title!r}, {len(self._blocks)} blocks)"

    def heading(self, text: str, level: int = 2) -> "HtmlReport":
        self._blocks.append(f"<h{level}>{html.escape(text)}</h{level}>")
        return self

    def paragraph(self, text: str, css_class: str = "") -> "HtmlReport":
        cls = f' class="{css_class}"' if css_class else ""
        self._blocks.append(f"<p{cls}>{html.escape(text)}</p>")
        return self

    def markdown(self, text: str, images: "dict[str, bytes] | None" = None) -> "HtmlReport":
        """Append Markdown of the subset hwsim's reports use: ``#``/``##``/``###`` headings,
        ``-`` bullet lists, pipe tables, ``![alt](name.png)`` (embedded from ``images``; a
        missing image is an error), paragraphs, and inline ``**bold**`` and ```code```."""
        images = images or {}
        lines = text.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i].rstrip()
            if not line.strip():
                i += 1
                continue
            m = re.match(r"^(#{1,3})\s+(.*)$", line)
            if m:
                level = len(m.group(1))
                if level == 1 and not self._blocks:
                    self.title = m.group(2)      # the document's title
                else:
                    self._blocks.append(f"<h{level + (level == 1)}>{_inline(m.group(2))}</h{level + (level == 1)}>")
                i += 1
                continue
            m = re.match(r"^!\[(.*?)\]\((.*?)\)$", line.strip())
            if m:
                if m.group(2) not in images:
                    raise ValueError(f"markdown image {m.group(2)!r} was not provided")
                self.figure(images[m.group(2)], caption=m.group(1))
                i += 1
                continue
            if line.lstrip().startswith("|"):
                rows = []
                while i < len(lines) and lines[i].lstrip().startswith("|"):
                    cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                    if not all(re.fullmatch(r":?-{2,}:?|:?-+:?", c) for c in cells if c):
                        rows.append(cells)
                    i += 1
                head, body = rows[0], rows[1:]
                self._blocks.append("<table><thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head)
                                    + "</tr></thead><tbody>" + "".join(
                                        "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in body)
                                    + "</tbody></table>")
                continue
            if line.lstrip().startswith("- "):
                items = []
                while i < len(lines) and lines[i].lstrip().startswith("- "):
                    items.append(f"<li>{_inline(lines[i].lstrip()[2:])}</li>")
                    i += 1
                self._blocks.append("<ul>" + "".join(items) + "</ul>")
                continue
            para = []
            while i < len(lines) and lines[i].strip() and not re.match(r"^(#|\||- |!\[)", lines[i].lstrip()):
                para.append(lines[i].strip())
                i += 1
            self._blocks.append(f"<p>{_inline(' '.join(para))}</p>")
        return self

    def callout(self, text: str) -> "HtmlReport":
        self._blocks.append(f'<div class="callout">{html.escape(text)}</div>')
        return self

    def table(self, headers: Sequence[str], rows: Iterable[Sequence], highlight: Iterable[int] = (),
              caption: str = "") -> "HtmlReport":
        """Add a table; rows whose index is in ``highlight`` are marked (e.g. the winner)."""
        marked = set(highlight)
        out = ["<table>"]
        if caption:
            out.append(f"<caption>{html.escape(caption)}</caption>")
        out.append("<thead><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in headers) + "</tr></thead><tbody>")
        for i, row in enumerate(rows):
            cls = ' class="win"' if i in marked else ""
            out.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
        out.append("</tbody></table>")
        self._blocks.append("".join(out))
        return self

    def figure(self, png: bytes, caption: str = "", alt: str = "") -> "HtmlReport":
        """Embed a PNG (bytes) as a data URI."""
        if not png.startswith(b"\x89PNG"):
            raise ValueError("figure() expects PNG bytes")
        data = base64.b64encode(png).decode("ascii")
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self._blocks.append(f'<figure><img alt="{html.escape(alt or caption)}" '
                            f'src="data:image/png;base64,{data}">{cap}</figure>')
        return self

    def render(self) -> str:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        from hwsim import __version__

        sub = f"<p>{html.escape(self.subtitle)}</p>" if self.subtitle else ""
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1>{sub}"
            + "\n".join(self._blocks)
            + f'<p class="meta">Generated by hwsim {__version__} on {stamp}.</p></body></html>\n'
        )

    def write(self, path) -> "object":
        """Write atomically; returns the path."""
        from hwsim.io import atomic_write_text

        return atomic_write_text(path, self.render())
