"""report.html in a real headless Chromium: tables hold the runs, every figure decodes, no console
errors. Skips only where Chromium or its driver is absent (.ci/run installs both)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_report import DEGRADING, make_sweep, write_job

from resnet_exp.report.build import build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture()
def browser(tmp_path: Path):
    if not (CHROMIUM and DRIVER):
        pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_report_html_opens_offline_with_tables_and_figures(tmp_path: Path, browser) -> None:
    sweep = make_sweep(tmp_path, DEGRADING)
    result = build_report(sweep)
    page = (
        tmp_path / "elsewhere" / "report.html"
    )  # alone, away from the PNGs: must be self-contained
    page.parent.mkdir()
    page.write_bytes(result.paths["report_html"].read_bytes())
    browser.get(page.as_uri())
    images = browser.find_elements("tag name", "img")
    assert len(images) == 3
    for image in images:
        assert (
            browser.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth", image
            )
            > 0
        )
    text = browser.find_element("tag name", "body").text
    for label in ("plain-20", "plain-32", "ResNet-20", "ResNet-32"):
        cells = browser.find_elements("xpath", f"//table//td[normalize-space()='{label}']")
        assert cells, label
    assert "Verdict" in text and "Table 6 view" in text and "Environment" in text
    errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert not errors, errors


def test_report_html_tables_fit_a_1200_px_page(tmp_path: Path, browser) -> None:
    """Issue 29 item 6: long job folders and errors wrap inside their cells; nothing overflows."""
    sweep = tmp_path / "sweep"
    long = "experiment=degradation_quick,model_block={},model_depth={},seed=0-806fd97c"
    for block, depth in DEGRADING:
        write_job(sweep, long.format(block, depth), block, depth, DEGRADING[block, depth])
    write_job(sweep, "x" * 120, "plain", 56, rows=[], status="failed", error="E" * 300)
    result = build_report(sweep)
    browser.set_window_size(1200, 900)
    browser.get(result.paths["report_html"].as_uri())
    page = "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    scroll, client = browser.execute_script(page)
    assert scroll <= client, (scroll, client)
    right = browser.execute_script("return document.body.getBoundingClientRect().right")
    for table in browser.find_elements("tag name", "table"):
        assert (
            browser.execute_script("return arguments[0].getBoundingClientRect().right", table)
            <= right
        )
