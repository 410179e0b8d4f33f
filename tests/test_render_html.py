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


def visible_rows(browser):
    from selenium.webdriver.common.by import By

    return [tr for tr in browser.find_elements(By.CSS_SELECTOR, "#cost-table tbody tr") if tr.is_displayed()]


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
    # the page opens at the requested depth: only its diagram and table body are shown
    assert len(browser.find_elements(By.CSS_SELECTOR, "#diagram .view:not([hidden]) svg g.node")) == len(view.boxes)
    assert len(visible_rows(browser)) == len(table.rows)
    assert browser.title == "resnet50 · netc"

    # click the box of the second bottleneck of layer2: its table row is selected, and only it
    box = "d2-" + view.block_box["layer2.1"]
    browser.find_element(By.CSS_SELECTOR, f"#{box} text").click()
    selected = browser.find_elements(By.CSS_SELECTOR, "#cost-table tr.sel")
    assert [tr.find_element(By.TAG_NAME, "td").text for tr in selected] == ["layer2.1"]
    assert "sel" in classes(browser.find_element(By.ID, box))

    # and back: clicking the row of layer3.0 selects its box and unselects the previous one
    row = browser.find_element(By.XPATH, "//tbody[not(@hidden)]/tr[td[1][normalize-space()='layer3.0']]")
    row.click()
    assert "sel" in classes(row)
    assert "sel" in classes(browser.find_element(By.ID, "d2-" + view.block_box["layer3.0"]))
    assert "sel" not in classes(browser.find_element(By.ID, box))
    # a stage's subtotal row belongs to its cluster
    browser.find_element(By.XPATH, "//tbody[not(@hidden)]/tr[td[1][normalize-space()='layer4']]").click()
    assert "sel" in classes(browser.find_element(By.ID, "d2-" + view.clusters["layer4"].id))

    # hovering a row highlights its box
    conv1 = browser.find_element(By.XPATH, "//tbody[not(@hidden)]/tr[td[1][normalize-space()='conv1']]")
    ActionChains(browser).move_to_element(conv1).perform()
    assert "hl" in classes(browser.find_element(By.ID, "d2-" + view.box_of[1]))
    assert console_errors(browser) == []


def test_report_is_self_contained(tmp_path):
    html = mini().render("html")
    # nothing to fetch: no external URLs in src/href, and a policy that would refuse them anyway
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "default-src 'none'" in html
    assert html.count("<script") == 1 and "<svg" in html
    # an id is unique on the page although each depth has its own diagram
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))


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
    first_cells = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#cost-table tbody:not([hidden]) tr td:first-child")]
    assert f"{EVIL['s1']}.{EVIL['conv']}" in first_cells
    assert browser.execute_script("return document.querySelectorAll('script').length") == 1
    # a click still links box and row
    stem = "dall-" + build_view(net.graph, net.order).box_of[1]
    browser.find_element(By.CSS_SELECTOR, f"#{stem} text").click()
    selected = [tr.find_element(By.TAG_NAME, "td").text for tr in
                browser.find_elements(By.CSS_SELECTOR, "#cost-table tr.sel")]
    assert len(selected) == 1 and selected[0].startswith('a\\b"c<d>&e')
    assert console_errors(browser) == []


def test_depth_switch_and_bar_chart(browser, tmp_path):
    from selenium.webdriver.common.by import By

    net = netc.load(SPECS / "resnet50.yaml")
    open_report(browser, net, tmp_path, depth=1)
    buttons = browser.find_elements(By.CSS_SELECTOR, "#depth-switch button")
    # resnet50 nests blocks 3 deep (layer1 > layer1.0 > layer1.0.downsample): depths 1, 2, 3 and every layer
    assert [b.text for b in buttons] == ["1", "2", "3", "all"]
    report = analyse(net)
    for depth, label in ((None, "all"), (2, "2"), (1, "1")):
        browser.find_element(By.CSS_SELECTOR, f"#depth-switch button[data-depth='{label}']").click()
        view = build_view(net.graph, net.order, depth)
        shown = browser.find_elements(By.CSS_SELECTOR, "#diagram .view:not([hidden]) svg g.node")
        assert len(shown) == len(view.boxes), label
        assert len(visible_rows(browser)) == len(build(report, depth).rows), label
        assert len(browser.find_elements(By.CSS_SELECTOR, "#diagram .view:not([hidden])")) == 1
    # at every layer, a click on conv1's box selects conv1's row of that depth's table
    browser.find_element(By.CSS_SELECTOR, "#depth-switch button[data-depth='all']").click()
    browser.find_element(By.CSS_SELECTOR, "#dall-n1 text").click()
    assert [tr.find_element(By.TAG_NAME, "td").text for tr in visible_rows(browser) if "sel" in classes(tr)] == ["conv1"]

    # the chart: one row per top-level block or layer, bars proportional to the table's numbers
    top = [r for r in build(report, 1).rows if r.level == 0]
    chart_rows = browser.find_elements(By.CSS_SELECTOR, "#chart .bar-row")
    assert [g.find_element(By.TAG_NAME, "text").text for g in chart_rows] == [r.scope for r in top]
    widths = {g.find_element(By.TAG_NAME, "text").text: [float(rect.get_attribute("width"))
                                                          for rect in g.find_elements(By.TAG_NAME, "rect")]
              for g in chart_rows}
    values = {g.find_element(By.TAG_NAME, "text").text: [int(rect.get_attribute("data-value"))
                                                          for rect in g.find_elements(By.TAG_NAME, "rect")]
              for g in chart_rows}
    by_scope = {r.scope: r for r in top}
    assert values["layer3"] == [by_scope["layer3"].cost.macs, by_scope["layer3"].cost.params,
                                by_scope["layer3"].cost.activation_bytes]
    # layer3 has the most MACs of resnet50's stages, layer4 the most params: their bars are full length
    assert widths["layer3"][0] == max(w[0] for w in widths.values())
    assert widths["layer4"][1] == max(w[1] for w in widths.values())
    # clicking a stage's bars switches to depth 1 and selects the stage's box and row
    browser.find_element(By.CSS_SELECTOR, "#depth-switch button[data-depth='all']").click()
    next(g for g in chart_rows if g.find_element(By.TAG_NAME, "text").text == "layer2").find_element(
        By.TAG_NAME, "rect").click()
    view1 = build_view(net.graph, net.order, 1)
    assert "sel" in classes(browser.find_element(By.ID, "d1-" + view1.block_box["layer2"]))
    assert [tr.find_element(By.TAG_NAME, "td").text for tr in visible_rows(browser) if "sel" in classes(tr)] == ["layer2"]
    assert console_errors(browser) == []


def test_notebook_view(browser, tmp_path):
    from selenium.webdriver.common.by import By

    net = netc.load(SPECS / "resnet50.yaml")
    fragment = net._repr_html_()
    assert "<script" not in fragment
    # two cells on one notebook page: no id is shared between them
    page = tmp_path / "nb.html"
    page.write_text(f"<!DOCTYPE html><meta charset='utf-8'><title>nb</title>{fragment}{netc.load(SPECS / 'resnet18.yaml')._repr_html_()}")
    ids = re.findall(r'\bid="([^"]+)"', page.read_text())
    assert len(ids) == len(set(ids))
    browser.get(page.as_uri())
    cell = browser.find_elements(By.CSS_SELECTOR, ".netc-network")[0]
    assert "params 25,557,032" in cell.text
    view = build_view(net.graph, net.order, 1)
    assert len(cell.find_elements(By.CSS_SELECTOR, ".netc-diagram svg g.node")) == len(view.boxes)
    rows = build(analyse(net), 1).rows
    body = cell.find_elements(By.CSS_SELECTOR, "table.netc-blocks tbody tr")
    assert [tr.find_element(By.TAG_NAME, "td").text for tr in body[:len(rows)]] == [r.scope for r in rows]
    assert len(cell.find_elements(By.CSS_SELECTOR, "svg.chart .bar-row")) == len([r for r in rows if r.level == 0])
    assert console_errors(browser) == []


def test_notebook_view_without_graphviz_and_with_hostile_names(monkeypatch):
    import shutil as sh

    monkeypatch.setattr(sh, "which", lambda name: None)
    description = "<img src=x onerror=alert(1)>"
    html = hostile(description)._repr_html_()
    assert "diagram not drawn" in html and "<img" not in html and "&lt;img" in html
    assert "<script" not in html


def test_diff_page_draws_the_marked_boxes(browser, tmp_path):
    from selenium.webdriver.common.by import By

    a, b = netc.load(SPECS / "resnet50.yaml"), netc.load(SPECS / "resnet50_v1.yaml")
    page = tmp_path / "diff.html"
    page.write_text(netc.api.diff_html(a, b, depth=2))
    browser.get_log("browser")
    browser.get(page.as_uri())
    # at depth 2 the changed layers are inside the boxes of layer2.0, layer3.0 and layer4.0, in both diagrams
    view = build_view(a.graph, a.order, 2)
    for side in "ab":
        marked = browser.find_elements(By.CSS_SELECTOR, f"#side-{side} g.node[data-mark]")
        assert sorted(g.get_attribute("id") for g in marked) == sorted(
            f"{side}-{view.block_box[s]}" for s in ("layer2.0", "layer3.0", "layer4.0"))
        # the marking is drawn: the box outline takes the 'changed' colour, unmarked boxes keep theirs
        stroke = "return getComputedStyle(arguments[0].querySelector('polygon, path, ellipse')).stroke"
        assert {browser.execute_script(stroke, g) for g in marked} == {"rgb(245, 159, 0)"}
        plain = browser.find_elements(By.CSS_SELECTOR, f"#side-{side} g.node:not([data-mark])")
        assert "rgb(245, 159, 0)" not in {browser.execute_script(stroke, g) for g in plain}
    rows = browser.find_elements(By.CSS_SELECTOR, "#diff-table tbody tr")
    assert [r.find_element(By.TAG_NAME, "td").text for r in rows] == ["layer2.0", "layer3.0", "layer4.0"]
    assert console_errors(browser) == []
