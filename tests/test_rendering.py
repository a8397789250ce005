"""The built book as a browser shows it: every image on every page loads (headless Chromium).

Skipped where no ``chromium`` binary is on the PATH (``apt-get install chromium``).
"""
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest


CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs a chromium binary (apt-get install chromium)")

# Appended to a copy of a page: once everything has loaded, list each <img> and whether the
# browser decoded it (naturalWidth > 0), as JSON in a <pre> that --dump-dom prints.
PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images].map(i => ({src: i.getAttribute("src").slice(0, 80),
                                                 loaded: i.complete && i.naturalWidth > 0}));
  const out = document.createElement("pre");
  out.id = "image-probe";
  out.textContent = JSON.stringify(images);
  document.body.appendChild(out);
});
</script>"""


def _images_in_browser(page: Path) -> list[dict]:
    """``[{src, loaded}]`` for every ``<img>`` of ``page`` after headless Chromium loaded it."""
    probe = page.with_name(f"_probe_{page.name}")  # beside the page, so relative paths still resolve
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    try:
        dom = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--virtual-time-budget=5000",
             "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=60, check=True).stdout
    finally:
        probe.unlink()
    found = re.search(r'<pre id="image-probe"[^>]*>(.*?)</pre>', dom, flags=re.S)  # the theme adds attributes
    assert found, f"the page did not finish loading in Chromium: {page}"
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def built_book(tiny_book, tmp_path_factory) -> Path:
    """A copy of the tiny book's HTML (one test here deletes a figure)."""
    copy = tmp_path_factory.mktemp("rendering") / "html"
    shutil.copytree(tiny_book[1], copy)
    return copy


@pytest.mark.parametrize("page", ["book/intro.html", "book/fig3_parity.html", "book/claims.html"])
def test_every_image_loads(built_book, page):
    path = built_book / page
    sources = re.findall(r'<img[^>]*\ssrc="([^"]+)"', path.read_text())
    assert sources, f"{page} has no images"
    for src in sources:  # every file an <img> names is there ...
        assert src.startswith("data:") or (path.parent / src).is_file(), f"{page}: {src} is missing"
    images = _images_in_browser(path)  # ... and the browser decodes it
    assert len(images) >= len(sources)
    assert all(image["loaded"] for image in images), f"{page}: not loaded: {[i for i in images if not i['loaded']]}"


def test_a_missing_image_is_caught(built_book):
    """The browser check really fails when a figure's file is gone."""
    page = built_book / "book" / "fig3_parity.html"
    src = next(s for s in re.findall(r'<img[^>]*\ssrc="([^"]+)"', page.read_text()) if not s.startswith("data:"))
    (page.parent / src).unlink()
    images = _images_in_browser(page)
    assert any(not image["loaded"] for image in images)
