"""The HTML report, opened in headless Chromium (Debian's chromium + chromedriver, from `make setup`)."""
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

import netc
from netc.analysis.cost import analyse
from netc.analysis.table import build
from netc.backends.render.view import build_view
from tests.conftest import SPECS
from tests.test_render import EVIL, HOSTILE_NAME, hostile, mini

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz 'dot' not installed (make setup)")


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.environ.get("CI"):
            pytest.fail("Debian chromium and chromium-driver are missing: `make setup` installs them")
        pytest.skip("Debian chromium / chromium-driver not installed (make setup)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="netc-chromium-")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", f"--user-data-dir={profile}", "--window-size=1400,900"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # an explicit driver path: selenium then never tries to download one
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def open_report(browser, net, tmp_path, depth=None, name="report.html"):
    path = tmp_path / name
    net.render("html", depth=depth, path=path)
    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(path.as_uri())
    assert browser.execute_script("return document.readyState") == "complete"
    return path


def console_errors(browser):
    return [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]


def classes(el):
    return set((el.get_attribute("class") or "").split())


def test_report_loads_and_links_diagram_and_table(browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    net = netc.load(SPECS / "resnet50.yaml")
    open_report(browser, net, tmp_path, depth=2)
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    assert console_errors(browser) == []

    view = build_view(net.graph, net.order, 2)
    table = build(analyse(net), 2)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#diagram svg g.node")) == len(view.boxes)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#cost-table tbody tr")) == len(table.rows)
    assert browser.title == "resnet50 · netc"

    # click the box of the second bottleneck of layer2: its table row is selected, and only it
    box = view.block_box["layer2.1"]
    browser.find_element(By.CSS_SELECTOR, f"#{box} text").click()
    selected = browser.find_elements(By.CSS_SELECTOR, "#cost-table tr.sel")
    assert [tr.find_element(By.TAG_NAME, "td").text for tr in selected] == ["layer2.1"]
    assert "sel" in classes(browser.find_element(By.ID, box))

    # and back: clicking the row of layer3.0 selects its box and unselects the previous one
    row = browser.find_element(By.XPATH, "//tbody/tr[td[1][normalize-space()='layer3.0']]")
    row.click()
    assert "sel" in classes(row)
    assert "sel" in classes(browser.find_element(By.ID, view.block_box["layer3.0"]))
    assert "sel" not in classes(browser.find_element(By.ID, box))
    # a stage's subtotal row belongs to its cluster
    browser.find_element(By.XPATH, "//tbody/tr[td[1][normalize-space()='layer4']]").click()
    assert "sel" in classes(browser.find_element(By.ID, view.clusters["layer4"].id))

    # hovering a row highlights its box
    conv1 = browser.find_element(By.XPATH, "//tbody/tr[td[1][normalize-space()='conv1']]")
    ActionChains(browser).move_to_element(conv1).perform()
    assert "hl" in classes(browser.find_element(By.ID, view.box_of[1]))
    assert console_errors(browser) == []


def test_report_is_self_contained(tmp_path):
    html = mini().render("html")
    # nothing to fetch: no external URLs in src/href, and a policy that would refuse them anyway
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "default-src 'none'" in html
    assert html.count("<script") == 1 and "<svg" in html


def test_hostile_names_in_report(browser, tmp_path):
    from selenium.webdriver.common.by import By

    description = "<img src=x onerror=alert(2)> & </title><script>alert(4)</script>"
    net = hostile(description)
    path = open_report(browser, net, tmp_path)
    html = path.read_text()
    assert html.count("<script") == 1  # ours; every name was escaped
    assert "<img" not in html
    # the browser shows the names as text, character for character
    assert browser.title == f"{HOSTILE_NAME} · netc"
    assert browser.find_element(By.CSS_SELECTOR, "header .desc").text == description
    first_cells = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#cost-table tbody tr td:first-child")]
    assert f"{EVIL['s1']}.{EVIL['conv']}" in first_cells
    assert browser.execute_script("return document.querySelectorAll('script').length") == 1
    # a click still links box and row
    stem = build_view(net.graph, net.order).box_of[1]
    browser.find_element(By.CSS_SELECTOR, f"#{stem} text").click()
    selected = [tr.find_element(By.TAG_NAME, "td").text for tr in
                browser.find_elements(By.CSS_SELECTOR, "#cost-table tr.sel")]
    assert len(selected) == 1 and selected[0].startswith('a\\b"c<d>&e')
    assert console_errors(browser) == []
