"""Render an HTML file in headless Chromium and report what a reader would see.

A test-only probe script is appended to a *copy* of the report (the report itself has no
script); Chromium runs it after load and writes its findings into the dumped DOM.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync"]

_PROBE = """
<script>
window.addEventListener('load', function () {
  var imgs = Array.from(document.images);
  var res = {
    images: imgs.length,
    images_decoded: imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length,
    image_sizes: imgs.map(function (i) { return [i.naturalWidth, i.naturalHeight]; }),
    tables: document.querySelectorAll('table').length,
    table_rows: Array.from(document.querySelectorAll('table')).map(function (t) { return t.rows.length; }),
    headings: Array.from(document.querySelectorAll('h1,h2,h3')).map(function (h) { return h.textContent; }),
    external: Array.from(document.querySelectorAll('[src],[href]')).map(function (e) {
      return e.getAttribute('src') || e.getAttribute('href'); }).filter(function (u) {
      return /^(https?:)?\\/\\//.test(u); }).length
  };
  var pre = document.createElement('pre'); pre.id = 'hwsim-probe';
  pre.textContent = JSON.stringify(res); document.body.appendChild(pre);
});
</script>
"""


def render(html_path, screenshot: Path | None = None, timeout: float = 60) -> dict:
    """Load ``html_path`` in headless Chromium; return the probe's findings."""
    if CHROMIUM is None:
        raise RuntimeError("chromium is not installed (Debian package 'chromium'; .ci/run installs it)")
    html_path = Path(html_path)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "probe.html"
        text = html_path.read_text(encoding="utf-8")
        copy.write_text(text.replace("</body>", _PROBE + "</body>"), encoding="utf-8")
        base = [CHROMIUM, *_FLAGS, f"--user-data-dir={tmp}/profile", "--virtual-time-budget=5000"]
        out = subprocess.run(base + ["--dump-dom", copy.as_uri()], capture_output=True, text=True,
                             timeout=timeout)
        m = re.search(r'<pre id="hwsim-probe">(.*?)</pre>', out.stdout, re.S)
        if not m:
            raise RuntimeError(f"chromium did not run the probe; stderr: {out.stderr[-2000:]}")
        import html as _html

        result = json.loads(_html.unescape(m.group(1)))
        if screenshot is not None:
            subprocess.run(base + [f"--screenshot={screenshot}", "--window-size=1200,2400", html_path.resolve().as_uri()],
                           capture_output=True, timeout=timeout)
        return result
