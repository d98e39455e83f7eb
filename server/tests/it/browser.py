"""Drives the dashboard in headless Chromium (the system's browser and driver, through
Selenium) as a user would: signs in, ticks runs in the runs table, opens their comparison,
reads back what the charts draw, moves the smoothing slider, and saves a screenshot of each
page. Prints what it saw as JSON for the Rust test to check.

    browser.py BASE USER PASSWORD PROJECT UUID,UUID,... SCREENSHOT_DIR
"""

import json
import os
import sys

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

base, user, password, project, runs, shots = sys.argv[1:7]
runs = runs.split(",")
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
wait = WebDriverWait(driver, 20)
out = {}

READ = """
const o = {};
for (const [m, u] of Object.entries(window.plxCharts || {})) {
  o[m] = {runs: u.plxRuns, series: u.series.map(s => s.label),
          data: u.data.map(a => Array.from(a, v => (v == null ? null : Number(v))))};
}
return o;
"""

try:
    # Signing in: the login page, then back to where the user was going.
    driver.get(f"{base}/ui/{user}/{project}")
    wait.until(lambda d: "/ui/login" in d.current_url)
    driver.find_element(By.NAME, "username").send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form button, form input[type=submit]").click()
    wait.until(lambda d: d.current_url.rstrip("/").endswith(f"/ui/{user}/{project}"))
    out["signed_in_at"] = driver.current_url
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
