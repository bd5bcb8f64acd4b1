"""The HTML model card in a real browser (Debian's ``chromium``, headless): the DOM it builds holds the
tables and the charts, and its screenshot shows them — the bars counted in the pixels.

Skipped where chromium is not installed (``apt-get install chromium``; .ci/run installs it).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from modelops.plugin import card as cardpage
from plugin import htmlkit
from plugin.cardkit import CHARTS, TABLES, card_view

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")

# Tall enough for the whole card at this width: the screenshot is the window.
WIDTH, HEIGHT = 1000, 7000
BAR = (0x2F, 0x6F, 0xB2)  # svg.chart rect.bar's fill in the card's style


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={WIDTH},{HEIGHT}", "--force-device-scale-factor=1",
        *args,
    ]  # fmt: skip
    # A busy machine starts a browser slowly; the deadline is for a hung one.
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture
def page_file(tmp_path: Path) -> Path:
    path = tmp_path / "card.html"
    path.write_text(cardpage.to_html(card_view()), encoding="utf-8")
    return path


def test_the_rendered_dom_has_the_tables_and_the_bars(tmp_path: Path, page_file: Path) -> None:
    result = chromium(tmp_path, "--dump-dom", page_file.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    root = htmlkit.parse(result.stdout)
    assert [t.attrs["data-table"] for t in root.find_all("table")] == TABLES
    drawn = {s.attrs["data-chart"]: len(s.find_all("rect", **{"class": "bar"})) for s in root.find_all("svg")}
    assert drawn == CHARTS
    assert htmlkit.external_references(root) == []


def bar_bands(image: Image.Image) -> list[tuple[int, int]]:
    """Runs of screen rows that hold bar-coloured pixels: one run per bar drawn.

    A bar a pixel wide is cut in two by its whisker (drawn over its middle): rows a few pixels
    apart are one bar; bars are 10 rows apart.
    """
    rgb = image.convert("RGB")
    pixels = rgb.load()
    assert pixels is not None
    width, height = rgb.size
    rows = [y for y in range(height) if sum(1 for x in range(0, width, 2) if pixels[x, y] == BAR) >= 1]
    bands: list[tuple[int, int]] = []
    for y in rows:
        if bands and bands[-1][1] >= y - 4:
            bands[-1] = (bands[-1][0], y)
        else:
            bands.append((y, y))
    return bands


def test_the_screenshot_shows_the_page_and_every_bar(tmp_path: Path, page_file: Path) -> None:
    shot = tmp_path / "card.png"
    result = chromium(tmp_path, f"--screenshot={shot}", page_file.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    image = Image.open(shot)
    assert image.size == (WIDTH, HEIGHT)
    colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None
    assert len(colours) > 20, "the screenshot is (nearly) blank"
    bands = bar_bands(image)
    assert len(bands) == sum(CHARTS.values()), bands
    # Each bar is drawn 14 units tall at a device scale of 1.
    assert all(12 <= bottom - top + 1 <= 16 for top, bottom in bands), bands
