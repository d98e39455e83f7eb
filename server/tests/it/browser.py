"""Drives the dashboard in headless Chromium (the system's browser and driver, through
Selenium) as a user would, and prints what it saw as JSON for the Rust test to check; a
screenshot of each page goes to SCREENSHOT_DIR.

    browser.py compare BASE USER PASSWORD PROJECT UUID,UUID,... SCREENSHOT_DIR
        signs in, ticks runs in the runs table, opens their comparison, reads back what the
        charts draw, moves the smoothing slider, changes the x axis, opens a run's page.
    browser.py media BASE USER PASSWORD PROJECT UUID SCREENSHOT_DIR
        signs in, opens a run's page with what polyaxon.tracking logged (images, text, HTML,
        a histogram, a curve), reads what is shown, previews an image and a text file.
    browser.py live BASE USER PASSWORD PROJECT RUNNING_UUID OTHER_UUID SCREENSHOT_DIR TOKEN
        signs in, watches a running run's page while lines and points are added through the
        API, edits its name, stops it from the page, then has a page of another origin post a
        stop of the other run to the API, as a forged cross-site form would.
    browser.py pipelines BASE USER PASSWORD PROJECT SEARCH DAG,OP1,OP2 SCREENSHOT_DIR TOKEN
        signs in, opens a search's page (reads its trials' order, brushes its parallel
        coordinates with the mouse on two axes, clears them by a click and by Escape), then a
        running DAG's page while its operations' statuses change through the API.
"""

import http.server
import json
import os
import sys
import threading
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

scenario = sys.argv[1]
if scenario == "compare":
    base, user, password, project, runs, shots = sys.argv[2:8]
    runs = runs.split(",")
elif scenario == "media":
    base, user, password, project, running, shots = sys.argv[2:8]
elif scenario == "pipelines":
    base, user, password, project, search, dag, shots, token = sys.argv[2:10]
    dag, op1, op2 = dag.split(",")
else:
    base, user, password, project, running, other, shots, token = sys.argv[2:10]
os.makedirs(shots, exist_ok=True)

opts = Options()
opts.binary_location = os.environ.get("POLYAXON_TEST_CHROMIUM", "/usr/bin/chromium")
for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
          "--window-size=1400,1100", "--lang=en-US"]:
    opts.add_argument(a)
driver = webdriver.Chrome(
    service=Service(os.environ.get("POLYAXON_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")),
    options=opts,
)
driver.set_page_load_timeout(30)
# Pages reload under some checks (after an edit): an element gone meanwhile is looked up again.
wait = WebDriverWait(driver, 20, ignored_exceptions=(StaleElementReferenceException, NoSuchElementException))
out = {}

READ = """
const o = {};
for (const [m, u] of Object.entries(window.plxCharts || {})) {
  o[m] = {runs: u.plxRuns, series: u.series.map(s => s.label),
          data: u.data.map(a => Array.from(a, v => (v == null ? null : Number(v))))};
}
return o;
"""

def sign_in():
    """The login page, then back to where the user was going."""
    driver.get(f"{base}/ui/{user}/{project}")
    wait.until(lambda d: "/ui/login" in d.current_url)
    driver.find_element(By.NAME, "username").send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form button, form input[type=submit]").click()
    wait.until(lambda d: d.current_url.rstrip("/").endswith(f"/ui/{user}/{project}"))
    out["signed_in_at"] = driver.current_url


def text_of(d, selector):
    """The text of the first element `selector` names, or "" (also while a page reloads, when
    the driver may lose the node it looked up)."""
    try:
        return d.execute_script(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : ''",
            selector) or ""
    except WebDriverException:
        return ""


def api(method, path, body):
    req = urllib.request.Request(
        f"{base}{path}", method=method, data=json.dumps(body).encode(),
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def live():
    sign_in()
    page = f"{base}/ui/{user}/{project}/runs/{running}"
    driver.get(page)
    wait.until(lambda d: d.execute_script("return window.plxChartsReady === true && !!window.plxLive"))
    before = driver.execute_script("return window.plxCharts.loss.data[0].length")
    # Written while the page is open: a log line and three points.
    t0 = time.time()
    api("POST", f"/streams/v1/polyaxon/{user}/{project}/runs/{running}/logs",
        {"logs": [{"value": "epoch 2 done"}]})
    api("POST", f"/streams/v1/polyaxon/{user}/{project}/runs/{running}/metrics",
        {"metrics": [{"name": "loss", "step": [10, 11, 12], "value": [0.3, 0.2, 0.1]}]})
    WebDriverWait(driver, 10, poll_frequency=0.05).until(
        lambda d: "epoch 2 done" in d.find_element(By.CSS_SELECTOR, "pre.plx-logs").text
        and d.execute_script("return window.plxCharts.loss.data[0].length") >= before + 3)
    out["live_after_s"] = time.time() - t0
    out["live_points"] = driver.execute_script("return Array.from(window.plxCharts.loss.data[1])")
    out["reloads"] = driver.execute_script("return performance.getEntriesByType('navigation').length")
    driver.save_screenshot(os.path.join(shots, "live.png"))

    out["t_live"] = time.time() - t0
    # Zoomed in and panned with the keyboard, the chart keeps its range as points arrive; 0
    # resets it to every point.
    scale = lambda: driver.execute_script("const s = window.plxCharts.loss.scales.x; return [s.min, s.max]")
    chart = driver.find_element(By.CSS_SELECTOR, ".plx-plot[data-metric=loss]")
    out["x_full"] = scale()
    chart.send_keys("+")
    out["x_zoomed"] = scale()
    chart.send_keys(Keys.ARROW_RIGHT)
    out["x_panned"] = scale()
    n = driver.execute_script("return window.plxCharts.loss.data[0].length")
    api("POST", f"/streams/v1/polyaxon/{user}/{project}/runs/{running}/metrics",
        {"metrics": [{"name": "loss", "step": [20, 21], "value": [0.09, 0.08]}]})
    WebDriverWait(driver, 10, poll_frequency=0.05).until(
        lambda d: d.execute_script("return window.plxCharts.loss.data[0].length") >= n + 2)
    out["x_after_points"] = scale()
    chart.send_keys("0")
    out["x_reset"] = scale()
    # Editing its name from the page.
    driver.find_element(By.CSS_SELECTOR, ".plx-actions summary").click()
    field = driver.find_element(By.CSS_SELECTOR, "form.plx-edit input[name=name]")
    field.clear()
    field.send_keys("renamed-from-the-page")
    driver.find_element(By.CSS_SELECTOR, "form.plx-edit button").click()
    def renamed(d):
        said = text_of(d, ".plx-action-status")
        if said.startswith("saving:"):
            raise SystemExit(f"the edit failed: {said}")
        return "renamed-from-the-page" in text_of(d, "h2")
    wait.until(renamed)

    out["t_renamed"] = time.time() - t0
    # Stopping it: confirmed first, then its status follows.
    driver.find_element(By.CSS_SELECTOR, "button[data-action=stop]").click()
    alert = wait.until(lambda d: d.switch_to.alert)
    out["confirm"] = alert.text
    alert.accept()
    wait.until(lambda d: text_of(d, ".plx-run-status") in ("stopping", "stopped"))
    out["stopped_status"] = text_of(driver, ".plx-run-status")
    out["t_stopped"] = time.time() - t0
    driver.save_screenshot(os.path.join(shots, "stopped.png"))

    # The other run (not started) had no metric when its page was opened: its first ones get
    # a chart as they arrive.
    driver.get(f"{base}/ui/{user}/{project}/runs/{other}")
    wait.until(lambda d: d.execute_script("return !!window.plxLive && window.plxLive.ticks > 0"))
    out["charts_at_load"] = driver.execute_script("return Object.keys(window.plxCharts || {})")
    out["controls_hidden_at_load"] = driver.execute_script(
        "return document.querySelector('.plx-controls').offsetParent === null")
    api("POST", f"/streams/v1/polyaxon/{user}/{project}/runs/{other}/metrics",
        {"metrics": [{"name": "acc", "step": [0, 1], "value": [0.25, 0.5]}]})
    WebDriverWait(driver, 10, poll_frequency=0.05).until(
        lambda d: d.execute_script("return !!(window.plxCharts.acc && window.plxCharts.acc.data[0].length === 2)"))
    out["discovered"] = driver.execute_script(READ)
    out["controls_hidden_after"] = driver.execute_script(
        "return document.querySelector('.plx-controls').offsetParent === null")

    # Another site's page posts a stop of the other run, as a forged form would, and tries
    # the same from a script.
    forged = (f"<form id=f method=post action='{base}/api/v1/{user}/{project}/runs/{other}/stop'>"
              "<input name=x value=1></form><script>"
              f"fetch('{base}/api/v1/{user}/{project}/runs/{other}/stop', {{method: 'POST', credentials: 'include',"
              " headers: {'X-CSRF-Token': 'guessed'}}).catch(() => {}).finally(() => document.getElementById('f').submit());"
              "</script>")

    class Evil(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(forged.encode())

        def log_message(self, *a):
            pass

        timeout = 5

    # A thread per connection: the browser may open one it sends nothing on (a preconnect),
    # which would hold a single-threaded server's loop, and its shutdown, for a minute.
    evil = http.server.ThreadingHTTPServer(("127.0.0.2", 0), Evil)
    evil.daemon_threads = True
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    driver.get(f"http://127.0.0.2:{evil.server_address[1]}/")
    time.sleep(2)
    out["t_forged"] = time.time() - t0
    out["forged_landed_on"] = driver.current_url
    out["forged_page"] = driver.find_element(By.TAG_NAME, "body").text[:300]
    # Away from the other origin's page before the browser goes (else it lingers on it).
    driver.get("about:blank")
    evil.shutdown()
    evil.server_close()


def media():
    sign_in()
    driver.get(f"{base}/ui/{user}/{project}/runs/{running}")
    wait.until(lambda d: d.execute_script(
        "return Array.from(document.querySelectorAll('.media img')).every(i => i.complete)"))
    out["images"] = driver.execute_script(
        "return Array.from(document.querySelectorAll('.media[data-kind=image] img'),"
        " i => ({alt: i.alt, w: i.naturalWidth, h: i.naturalHeight}))")
    out["kinds"] = driver.execute_script(
        "return Array.from(document.querySelectorAll('.media'), m => m.dataset.kind + ':' + m.dataset.name)")
    out["html"] = driver.execute_script(
        "const f = document.querySelector('.media[data-kind=html] iframe');"
        " return f ? {srcdoc: f.srcdoc, sandbox: f.getAttribute('sandbox')} : null")
    out["text"] = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".media[data-kind=text] td")]
    out["bars"] = len(driver.find_elements(By.CSS_SELECTOR, ".media[data-kind=histogram] svg rect[fill='#2457c5']"))
    out["curve"] = driver.execute_script(
        "const p = document.querySelector('.media[data-kind=curve] polyline'); return p ? p.getAttribute('points') : null")
    table = ("return Array.from(document.querySelectorAll(arguments[0] + ' tr'),"
             " r => Array.from(r.children, c => c.textContent))")
    out["dataframe"] = driver.execute_script(table, ".media[data-kind=dataframe] table")
    out["confusion"] = driver.execute_script(table, ".media[data-kind=confusion] table")
    driver.save_screenshot(os.path.join(shots, "media.png"))
    # A file's preview: the image itself, then a text file.
    driver.get(f"{base}/ui/{user}/{project}/runs/{running}/file?path=assets/image/sample_1.png")
    wait.until(lambda d: d.execute_script("const i = document.querySelector('img.preview'); return i && i.complete"))
    out["preview_image_width"] = driver.execute_script("return document.querySelector('img.preview').naturalWidth")
    driver.get(f"{base}/ui/{user}/{project}/runs/{running}/file?path=notes.txt")
    out["preview_text"] = driver.find_element(By.CSS_SELECTOR, "pre.preview").text
    out["console"] = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def pipelines():
    sign_in()
    driver.get(f"{base}/ui/{user}/{project}/runs/{search}")
    wait.until(lambda d: d.execute_script("return !!(window.plxSearch && window.plxSearch.clear)"))
    rows = lambda: driver.execute_script(
        "return Array.from(document.querySelectorAll('table.plx-trials tr[data-uuid]'))"
        ".filter(r => !r.hidden).map(r => r.dataset.uuid)")
    out["ranked"] = rows()
    out["axes"] = driver.execute_script(
        "return JSON.parse(document.querySelector('svg.plx-pc').dataset.axes)")
    out["scatters"] = driver.execute_script(
        "return Array.from(document.querySelectorAll('.plx-scatter'), s => [s.dataset.param, s.querySelectorAll('circle').length])")
    out["best_so_far"] = driver.execute_script(
        "return JSON.parse(document.querySelector('.plx-best-line').dataset.best)")
    driver.execute_script("document.querySelector('svg.plx-pc').scrollIntoView({block: 'center'})")

    def at(axis, t):
        """Where on the screen axis `axis` is at `t` (0 its bottom, 1 its top; beyond, off it)."""
        return driver.execute_script("""
            const svg = document.querySelector('svg.plx-pc');
            const a = JSON.parse(svg.dataset.axes).find(a => a.name === arguments[0]);
            const top = Number(svg.dataset.top), bottom = Number(svg.dataset.bottom);
            const p = svg.createSVGPoint();
            p.x = a.x; p.y = bottom - arguments[1] * (bottom - top);
            const q = p.matrixTransform(svg.getScreenCTM());
            return [Math.round(q.x), Math.round(q.y)];""", axis, t)

    def drag(axis, t0, t1):
        (x0, y0), (x1, y1) = at(axis, t0), at(axis, t1)
        ab = ActionBuilder(driver)
        ab.pointer_action.move_to_location(x0, y0).pointer_down()
        for k in range(1, 6):
            ab.pointer_action.move_to_location(x0, round(y0 + (y1 - y0) * k / 5))
        ab.pointer_action.pointer_up()
        ab.perform()

    def click(axis, t):
        x, y = at(axis, t)
        ab = ActionBuilder(driver)
        ab.pointer_action.move_to_location(x, y).pointer_down().pointer_up()
        ab.perform()

    metric = out["axes"][-1]["name"]
    state = lambda: driver.execute_script(
        "return {ranges: window.plxSearch.ranges, selected: window.plxSearch.selected}")
    # The lower half of the metric's axis, dragged from its middle to below its end.
    drag(metric, 0.5, -0.1)
    out["brushed"] = state()
    out["brushed_rows"] = rows()
    out["faded"] = driver.execute_script(
        "return Array.from(document.querySelectorAll('polyline.trial')).filter(l => l.style.opacity === '0.08').length")
    driver.save_screenshot(os.path.join(shots, "search-brushed.png"))
    # And the top of the activation's axis (a category).
    drag("act", 0.9, 1.1)
    out["both"] = state()
    out["both_rows"] = rows()
    # A click on the metric's axis clears its range; Escape clears the rest.
    click(metric, 0.8)
    out["cleared_one"] = state()
    driver.find_element(By.TAG_NAME, "body").send_keys("\ue00c")
    out["cleared_all"] = state()
    out["rows_after_clear"] = rows()
    # By keyboard: the lr axis focused, its middle half, moved up a tenth.
    driver.execute_script("document.querySelector(`rect.plx-hit[data-axis='${arguments[0]}']`).focus()",
                          [a["name"] for a in out["axes"]].index("lr"))
    active = driver.switch_to.active_element
    active.send_keys(Keys.ARROW_UP)
    active.send_keys(Keys.ARROW_UP)
    out["keyboard"] = state()
    active.send_keys(Keys.DELETE)
    out["keyboard_cleared"] = state()
    driver.save_screenshot(os.path.join(shots, "search.png"))
    # Ranked by another metric, by the form.
    driver.get(f"{base}/ui/{user}/{project}/runs/{search}?metric=acc&order=max")
    wait.until(lambda d: d.execute_script("return !!(window.plxSearch && window.plxSearch.clear)"))
    out["by_acc"] = rows()

    # A running DAG's page follows its operations' statuses.
    driver.get(f"{base}/ui/{user}/{project}/runs/{dag}")
    wait.until(lambda d: d.execute_script("return !!window.plxLive && window.plxLive.ticks > 0"))
    node = lambda u: driver.execute_script(
        "const n = document.querySelector(`a.node[href$='${arguments[0]}']`); return n ? n.dataset.status : null", u)
    out["dag_before"] = [node(op1), node(op2)]
    t0 = time.time()
    api("POST", f"/api/v1/{user}/{project}/runs/{op1}/statuses", {"condition": {"type": "succeeded"}, "force": True})
    for st in ["queued", "scheduled", "running"]:
        api("POST", f"/api/v1/{user}/{project}/runs/{op2}/statuses", {"condition": {"type": st}, "force": True})
    WebDriverWait(driver, 10, poll_frequency=0.05).until(
        lambda d: node(op1) == "succeeded" and node(op2) == "running")
    out["dag_after_s"] = time.time() - t0
    out["dag_after"] = [node(op1), node(op2)]
    out["dag_table"] = driver.execute_script(
        "return Array.from(document.querySelectorAll('.plx-pipeline table tr td:nth-child(2)'), t => t.textContent)")
    out["reloads"] = driver.execute_script("return performance.getEntriesByType('navigation').length")
    driver.save_screenshot(os.path.join(shots, "dag.png"))
    out["console"] = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


try:
    if scenario == "pipelines":
        pipelines()
        raise SystemExit(0)
    if scenario == "live":
        live()
        raise SystemExit(0)
    if scenario == "media":
        media()
        raise SystemExit(0)
    sign_in()
    # Columns chosen once are kept for the project; a column's header sorts by it.
    driver.get(f"{base}/ui/{user}/{project}?cols=name,status,params.lr,metrics.loss")
    driver.get(f"{base}/ui/{user}/{project}")
    wait.until(lambda d: "cols=" in d.current_url)
    out["kept_cols"] = [th.text for th in driver.find_elements(By.CSS_SELECTOR, "table.runs th")]
    driver.find_element(By.LINK_TEXT, "loss").click()
    wait.until(lambda d: "sort=metrics.loss" in d.current_url)
    out["by_loss"] = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "table.runs td > a")]
    # The query box, with the field names it suggests.
    out["suggests"] = driver.execute_script(
        "return Array.from(document.querySelectorAll('#plx-fields option'), o => o.value)")
    q = driver.find_element(By.NAME, "query")
    q.clear()
    q.send_keys("params.lr: 0.3")
    q.submit()
    wait.until(lambda d: "query=params.lr" in d.current_url)
    out["queried"] = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "table.runs td > a")]
    driver.get(f"{base}/ui/{user}/{project}?cols=name,status,created,duration,user,params.lr,params.layers,metrics.acc,metrics.loss,tags")
    driver.save_screenshot(os.path.join(shots, "runs-table.png"))

    # The runs table: tick the runs, compare them.
    for u in runs:
        driver.find_element(By.CSS_SELECTOR, f"input[name=runs][value='{u}']").click()
    driver.find_element(By.XPATH, "//button[normalize-space()='compare selected']").click()
    wait.until(lambda d: "/compare?runs=" in d.current_url)
    out["compare_url"] = driver.current_url
    wait.until(lambda d: d.execute_script("return window.plxChartsReady === true"))
    out["drawn"] = driver.execute_script(READ)
    out["legend"] = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".u-legend .u-series .u-label")]
    out["differs"] = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "table.cmp tr.differs td:first-child")]
    driver.save_screenshot(os.path.join(shots, "compare.png"))

    # Smoothing: the slider redraws the charts with the moving average.
    driver.execute_script(
        "const s = document.querySelector('input[name=smooth]');"
        "s.value = '0.6'; s.dispatchEvent(new Event('input'));"
    )
    out["smoothed"] = driver.execute_script(READ)
    driver.save_screenshot(os.path.join(shots, "compare-smoothed.png"))

    # The x axis by relative time, and the log scale.
    driver.execute_script(
        "const x = document.querySelector('select[name=x]'); x.value = 'rel';"
        "x.dispatchEvent(new Event('change'));"
    )
    out["relative"] = driver.execute_script(READ)

    # A run's own page: its charts too.
    driver.get(f"{base}/ui/{user}/{project}/runs/{runs[0]}")
    wait.until(lambda d: d.execute_script("return window.plxChartsReady === true"))
    out["run_page"] = driver.execute_script(READ)
    driver.save_screenshot(os.path.join(shots, "run.png"))
    out["console"] = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
finally:
    driver.quit()
    print(json.dumps(out))
