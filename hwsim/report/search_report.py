"""``report.html`` of a search: its Markdown report rendered self-contained, Pareto plot embedded."""
from __future__ import annotations

from pathlib import Path

from .html import HtmlReport

__all__ = ["write_search_html"]


def write_search_html(markdown: str, pareto_png: bytes, out_dir) -> Path:
    """Write ``out_dir/report.html`` from the search's ``report.md`` text and ``pareto.png`` bytes.

    The plot is placed after the summary (before the first ``##`` section).
    """
    lines = markdown.splitlines()
    first = next((i for i, l in enumerate(lines) if l.startswith("## ")), len(lines))
    lines[first:first] = ["![Pareto path: cost vs score, uniform baselines and the chosen config](pareto.png)", ""]
    report = HtmlReport("Mixed-precision search").markdown("\n".join(lines), {"pareto.png": pareto_png})
    return report.write(Path(out_dir) / "report.html")
