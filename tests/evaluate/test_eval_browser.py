"""Open the generated pages in a real headless Chromium: every image loads, tables hold their rows.

Needs Debian's `chromium` and Python Playwright (the dev extra; .ci/run installs chromium). Set
FASHIONBENCH_SCREENSHOTS=DIR to keep the screenshots for a look."""

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("FASHIONBENCH_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install -e '.[dev]')")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does it)", allow_module_level=True)


@pytest.fixture(scope="module")
def page():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 900})
        yield pg
        browser.close()


def _open(page, path: Path, shot: Path) -> None:
    page.goto(path.resolve().as_uri())
    page.wait_for_load_state("load")
    broken = page.eval_on_selector_all("img", "imgs => imgs.filter(i => !(i.complete && i.naturalWidth > 0))"
                                              ".map(i => i.alt)")
    assert not broken, f"images that did not load: {broken}"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    keep = os.environ.get("FASHIONBENCH_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)


def _rows(page, table_id: str) -> list[list[str]]:
    return page.eval_on_selector_all(f"#{table_id} tbody tr",
                                     "rows => rows.map(r => [...r.cells].map(c => c.innerText))")


def test_run_report_in_chromium(page, tiny_run, tmp_path):
    _open(page, tiny_run / "report.html", tmp_path / "report.png")
    assert page.eval_on_selector_all("img", "imgs => imgs.length") == 10
    assert [r[0] for r in _rows(page, "per-class")] == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    assert [r[0] for r in _rows(page, "history")] == ["1", "2"]
    assert len(_rows(page, "top-losses")) == 10
    assert any(r[0] == "model" and r[1] == "mlp_002" for r in _rows(page, "config"))
    assert "test accuracy" in page.inner_text("h1")


def test_compare_page_in_chromium(page, tiny_run, tmp_path):
    from fashionbench.evaluate.compare import write_comparison

    other = tmp_path / "copy-s0"
    shutil.copytree(tiny_run, other)
    html_path, _, _ = write_comparison([tiny_run, other], tmp_path / "cmp")
    _open(page, html_path, tmp_path / "compare.png")
    assert len(_rows(page, "compare-groups")) == 1  # same config: one group of two
    assert len(_rows(page, "compare-runs")) == 2
