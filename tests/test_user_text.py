"""A user's text is data, never markup or a path (issue 21, class 7), and `status --watch` ends
when nothing runs any more (class 8)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from cli import cli_env, run_cli
from test_report import DEGRADING, make_sweep, write_job

from resnet_exp import status
from resnet_exp.report.build import build_report
from resnet_exp.tracking.folder_lock import FolderLock

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
# Overrides a user may type, each spelling markup of some kind (markdown, HTML, rich).
HOSTILE = [
    "logger.notes=see ![pixel](https://tracker.example.net/p.gif) and [here](http://example.com)",
    "+logger.tags=[<img src=http://example.org/i.png>]",
    "logger.group=[bold red]x[/] [/link] [link=http://example.com]y",
]


def _hostile_sweep(tmp_path: Path) -> Path:
    sweep = make_sweep(tmp_path, DEGRADING)
    job = sweep / "0"
    overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides + HOSTILE))
    summary = json.loads((job / "summary.json").read_text())
    summary["overrides"] = overrides + HOSTILE
    (job / "summary.json").write_text(json.dumps(summary))
    error = "ValueError: ![e](https://example.org/e.png) [/x] <script>alert(1)</script>"
    write_job(sweep, 9, "plain", 44, 30.0, status="failed", error=error)
    failed = json.loads((sweep / "9" / "summary.json").read_text())  # logger text names no
    failed["job"] = ",".join(HOSTILE)  # configuration (machine-only), but a job's name is shown
    (sweep / "9" / "summary.json").write_text(json.dumps(failed))
    return sweep


@pytest.fixture()
def offline_browser(tmp_path: Path):
    """Headless Chromium that logs every request it would make, with http(s) blocked."""
    if not (CHROMIUM and DRIVER):
        pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["http://*", "https://*"]})
        yield driver
    finally:
        driver.quit()


def test_the_report_shows_user_text_as_text_and_fetches_nothing(
    tmp_path: Path, offline_browser
) -> None:
    sweep = _hostile_sweep(tmp_path)
    page = build_report(sweep).paths["report_html"]
    offline_browser.get_log("performance")  # the browser's own start-up (its new-tab page)
    offline_browser.get(page.as_uri())
    time.sleep(0.5)
    requests = [
        json.loads(entry["message"])["message"]["params"].get("request", {}).get("url", "")
        for entry in offline_browser.get_log("performance")
        if json.loads(entry["message"])["message"]["method"] == "Network.requestWillBeSent"
    ]
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    sources = [i.get_attribute("src") for i in offline_browser.find_elements("tag name", "img")]
    assert sources and all(s.startswith("data:image/") for s in sources), sources
    links = [a.get_attribute("href") for a in offline_browser.find_elements("tag name", "a")]
    assert all(h.startswith("data:") for h in links), links
    assert not offline_browser.find_elements("tag name", "script")
    text = offline_browser.find_element("tag name", "body").text
    assert "![pixel](https://tracker.example.net/p.gif)" in text
    assert "<img src=http://example.org/i.png>" in text


def test_status_prints_markup_in_user_text_as_it_is(tmp_path: Path) -> None:
    sweep = _hostile_sweep(tmp_path)
    done = run_cli(str(sweep), cwd=tmp_path, module="resnet_exp.status", env={"COLUMNS": "400"})
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stderr == ""
    flat = " ".join(done.stdout.split())
    assert "[bold red]x[/] [/link] [link=http://example.com]y" in flat
    assert "[/x]" in flat


@pytest.mark.slow
def test_no_name_leads_outside_the_run_folder(tmp_path: Path) -> None:
    """Members the issue does not name: an absolute job name, Hydra's record folder sent up."""
    cwd = tmp_path / "deep" / "er"
    cwd.mkdir(parents=True)
    for bad in ("hydra.job.name=/tmp/abs_name", "hydra.output_subdir=../../meta"):
        done = run_cli(bad, "logger=none", f"hydra.run.dir={cwd / 'run'}", cwd=cwd)
        assert done.returncode == 2, done.stderr
        assert "would write outside the run or sweep folder" in done.stderr
        assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["deep", "er"]


def _watch(folder: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "resnet_exp.status", str(folder), "--watch", "--interval", "0.1"],
        cwd=folder, env=cli_env(folder), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _stopped_sweep(tmp_path: Path) -> Path:
    """A sweep of completed jobs, one terminated, one lost and one pending."""
    sweep = make_sweep(tmp_path, {("plain", 20): 10.0})
    write_job(sweep, 1, "plain", 32, 12.0, status="terminated")
    lost = write_job(sweep, 2, "plain", 44, 14.0, status="running")
    summary = json.loads((lost / "summary.json").read_text())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    summary |= {"pid": dead.pid, "host": os.uname().nodename}
    (lost / "summary.json").write_text(json.dumps(summary))
    write_job(sweep, 3, "plain", 56, summary=False)  # pending: Hydra's folder, no record yet
    return sweep


def test_the_watch_waits_only_while_the_sweeps_process_holds_its_folder(tmp_path: Path) -> None:
    """Interrupted, lost and pending (a folder with no record yet) jobs: the watch's rule; the
    job with no record is pending while the sweep's process holds its folder, then lost."""
    sweep = _stopped_sweep(tmp_path)
    lock = FolderLock(sweep, "the sweep folder").acquire()  # the sweep's process, alive
    try:
        rows = status.sweep_status(sweep)
        assert {r.state for r in rows} == {"completed", "lost", "pending", "terminated"}
        assert status._still_running(sweep, rows)  # pending jobs may still start
    finally:
        lock.release()  # the sweep's process ends
    rows = status.sweep_status(sweep)
    assert sorted(r.state for r in rows) == ["completed", "lost", "lost", "terminated"]
    assert not status._still_running(sweep, rows) and status.exit_code(rows) == 1


@pytest.mark.slow  # its rule in this process: ..._waits_only_while_the_sweeps_process_holds_...
def test_watch_ends_when_nothing_runs_any_more(tmp_path: Path) -> None:
    """The watch of the rule above, through the command line."""
    sweep = _stopped_sweep(tmp_path)
    lock = FolderLock(sweep, "the sweep folder").acquire()  # the sweep's process, alive
    watch = _watch(sweep)
    try:
        time.sleep(3)
        assert watch.poll() is None, watch.communicate()
        lock.release()  # the sweep's process ends
        out, err = watch.communicate(timeout=60)
    finally:
        if watch.poll() is None:
            watch.kill()
    assert watch.returncode == 1, err
    # the job with no record: pending while the sweep's process held its folder, then lost
    assert "1 terminated, 2 lost" in out
