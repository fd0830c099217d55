"""The upload page in a real headless Chromium: pick a photo, see the 28x28 the model saw and three bars.

Needs Debian's `chromium` and Python Playwright (the dev extra; .ci/run installs chromium). Set
FASHIONBENCH_SCREENSHOTS=DIR to keep the screenshot."""

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("FASHIONBENCH_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PHOTO = Path(__file__).resolve().parents[1] / "photos" / "clothing" / "dress.jpg"

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install -e '.[dev]')")
pytest.importorskip("fastapi", reason="pip install 'fashionbench[serve]'")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does it)", allow_module_level=True)


@pytest.fixture(scope="module")
def server(onnx_file, start_server):
    proc, url = start_server(onnx_file)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.mark.slow  # about 10 s (a server and a browser); make test-all and .ci/run include it
def test_upload_page_shows_label_bars_and_the_28x28(server, tmp_path, band_data):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 420, "height": 860})  # a phone-sized window
        page.goto(server + "/")
        assert "fastnet" in page.inner_text("#about")
        page.set_input_files("#file", str(PHOTO))
        page.wait_for_selector("#result", state="visible", timeout=30_000)
        label = page.inner_text("#label")
        assert label.split(":")[0] in band_data.class_names and label.endswith("%")
        assert page.locator("#bars .bar").count() == 3
        widths = page.eval_on_selector_all("#bars .fill", "els => els.map(e => parseFloat(e.style.width))")
        assert widths == sorted(widths, reverse=True) and 0 < widths[0] <= 100
        seen = page.eval_on_selector("#seen", "i => [i.complete, i.naturalWidth, i.naturalHeight]")
        assert seen == [True, 28, 28]
        assert page.eval_on_selector("#photo", "i => i.naturalWidth") > 100
        assert not page.is_visible("#error")
        # a file that is not an image: the server's message, not a broken page
        bad = tmp_path / "notes.jpg"
        bad.write_text("not a photo")
        page.set_input_files("#file", str(bad))
        page.wait_for_selector("#error", state="visible", timeout=30_000)
        assert "notes.jpg" in page.inner_text("#error") and "not an image" in page.inner_text("#error")
        page.set_input_files("#file", str(PHOTO))
        page.wait_for_selector("#result", state="visible", timeout=30_000)
        shot = tmp_path / "upload-page.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert shot.stat().st_size > 20_000
    keep = os.environ.get("FASHIONBENCH_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)


@pytest.mark.slow  # a second server and browser: about 10 s
def test_upload_page_names_an_ensembles_members(fast_run, second_run, start_server):
    proc, url = start_server(fast_run, "--ensemble", str(second_run))
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page()
            page.goto(url + "/")
            about = page.inner_text("#about")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)
    assert "ensemble of fastnet, fastnet" in about and about.count("%") == 2 and "on their test set" in about
