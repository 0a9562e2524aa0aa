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
