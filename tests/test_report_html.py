"""The HTML report builder produces a self-contained page that Chromium renders with its plots and tables."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from hwsim.report.html import HtmlReport, figure_png
from tests.chromium import render


def test_report_renders_in_chromium_with_plot_and_table(tmp_path):
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([1, 2, 3], [3, 1, 2], marker="o")
    r = HtmlReport("Probe <report>", "subtitle & more")
    r.heading("Table").table(["a", "b"], [[1, 2], ["<x>", 4]], highlight=[0])
    r.figure(figure_png(fig), caption="a curve")
    path = r.write(tmp_path / "report.html")
    text = path.read_text()
    assert "<x>" not in text and "&lt;x&gt;" in text          # escaped
    assert "http://" not in text and "https://" not in text   # no network needed
    seen = render(path, screenshot=tmp_path / "shot.png")
    assert seen["images"] == 1 and seen["images_decoded"] == 1
    assert seen["image_sizes"][0][0] > 100
    assert seen["tables"] == 1 and seen["table_rows"] == [3]
    assert seen["external"] == 0
    assert (tmp_path / "shot.png").stat().st_size > 1000


def test_figure_rejects_non_png():
    with pytest.raises(ValueError):
        HtmlReport("x").figure(b"GIF89a")


def test_markdown_subset_becomes_tables_lists_and_embedded_images():
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    png = figure_png(fig)
    md = ("# Title here\n\n- cost **bold** and `code`\n- second\n\n## Section\n\n"
          "| a | b |\n|---|---:|\n| 1 | <2> |\n\n![plot](p.png)\n\nplain text\ncontinued\n")
    r = HtmlReport("placeholder").markdown(md, {"p.png": png})
    html = r.render()
    assert r.title == "Title here"
    assert "<li>cost <strong>bold</strong> and <code>code</code></li>" in html
    assert "<th>a</th><th>b</th>" in html and "<td>&lt;2&gt;</td>" in html and "---" not in html
    assert html.count("data:image/png;base64,") == 1
    assert "<p>plain text continued</p>" in html
    with pytest.raises(ValueError, match="missing.png"):
        HtmlReport("x").markdown("![x](missing.png)")
