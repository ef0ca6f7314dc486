#!/usr/bin/python3
"""The operator's page in a real browser (run by tests/t_browser.sh).

    browser.py BASE_URL RECEIVER_PORT EXPECT_JSON [SCREENSHOT]
    browser.py BASE_URL - -      (the figures alone: tests/page_big.sh)

Headless Chromium through Selenium (Debian's chromium, chromium-driver and
python3-selenium, for /usr/bin/python3) against a page that t_browser.sh
serves with known traffic in the spool. EXPECT_JSON names the figures each
destination must show, the MessageId to search for, and the XSS event's
Address. Prints one line per check ("ok: ..." / "FAIL: ..."), the figures
measured ("figure: ..."), then "N passed, N failed".
"""
import json
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

passed = failed = 0


def check(cond, desc):
    global passed, failed
    if cond:
        passed += 1
        print("ok: " + desc)
    else:
        failed += 1
        print("FAIL: " + desc)
    sys.stdout.flush()
    return cond


def start():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu",
              "--disable-dev-shm-usage", "--window-size=1280,1000",
              "--no-first-run", "--disable-extensions"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"),
                         options=opts)
    # Before any script of the page: an alert (the XSS event's onerror)
    # counts instead of showing.
    d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source":
                      "window.__alerts = 0; window.alert = function () "
                      "{ window.__alerts++; };"})
    d.execute_cdp_cmd("Network.enable", {})
    d.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    return d


def wait(d, seconds, fn, desc):
    try:
        return WebDriverWait(d, seconds, poll_frequency=0.1).until(
            lambda _: fn())
    except TimeoutException:
        return check(False, desc + " (waited %d s)" % seconds)


def row_cells(d, dest):
    """The text of each cell of dest's row, by its column's class."""
    return d.execute_script("""
        const tr = document.querySelector('#dests tr[data-dest="' +
                                          arguments[0] + '"]');
        if (!tr) return null;
        const out = {};
        for (const k of ['pending', 'retrying', 'dead', 'delivered'])
            out[k] = tr.querySelector('td.' + k).textContent;
        out.error = tr.querySelector('td.err').textContent;
        return out;""", dest)


def severe_logs(d):
    return [e for e in d.get_log("browser") if e.get("level") == "SEVERE"]


def first_load(d, base):
    """Loads the page, checks it, measures it."""
    d.get(base)
    wait(d, 15, lambda: d.execute_script(
        "return document.body.dataset.loaded === 'yes'"), "the page loads")
    figures = d.execute_script("""
        const nav = performance.getEntriesByType('navigation')[0];
        let bytes = nav.transferSize, n = 1;
        for (const r of performance.getEntriesByType('resource')) {
            bytes += r.transferSize; n++;
        }
        const at = (name) => {
            const m = performance.getEntriesByName(name)[0];
            return m ? m.startTime : -1;
        };
        return {bytes: bytes, requests: n, filled: at('slh-table-filled'),
                drawn: at('slh-chart-drawn')};""")
    print("figure: first load %d bytes transferred in %d requests; table "
          "filled %.0f ms, chart drawn %.0f ms after navigation start"
          % (figures["bytes"], figures["requests"], figures["filled"],
             figures["drawn"]))
    check(0 < figures["bytes"] < 100 * 1024,
          "first load under 100 KB (%d bytes)" % figures["bytes"])
    check(figures["filled"] > 0, "the table was filled")
    return figures


def warm_loads(d, base, n):
    """n more loads (the browser started, its cache off): the median time
    to the table filled."""
    times = []
    for _ in range(n):
        d.get(base)
        wait(d, 15, lambda: d.execute_script(
            "return document.body.dataset.loaded === 'yes'"), "reload")
        times.append(d.execute_script("return performance.getEntriesByName("
                                      "'slh-table-filled')[0].startTime"))
    times.sort()
    print("figure: %d more loads: table filled in %.0f ms (median), %.0f ms "
          "(slowest)" % (n, times[n // 2], times[-1]))


def check_rows(d, want):
    for dest, figures in want["destinations"].items():
        got = wait(d, 10, lambda: (lambda c: c if c and all(
            c[k] == str(v) for k, v in figures.items()) else None)(
                row_cells(d, dest)), "row %s" % dest)
        check(bool(got), "%s shows %s (page: %s)"
              % (dest, figures, row_cells(d, dest)))


def check_chart(d):
    points = wait(d, 10, lambda: int(d.find_element(
        By.ID, "chart").get_attribute("data-points") or 0), "chart data")
    check(bool(points) and points > 0,
          "the chart has data points (%s minutes)" % points)
    check(len(d.find_elements(By.CSS_SELECTOR, "#chart .uplot canvas")) == 1,
          "uPlot drew the chart")


def search(d, q):
    box = d.find_element(By.CSS_SELECTOR, "#search input[name=q]")
    box.clear()
    box.send_keys(q)
    d.find_element(By.CSS_SELECTOR, "#search button").click()


def check_search(d, want):
    search(d, want["message_id"])
    shown = wait(d, 10, lambda: d.find_element(By.ID, "event").is_displayed()
                 and d.find_element(By.ID, "event-id").text, "event opened")
    facts = d.find_element(By.ID, "event-facts").text
    check(bool(shown) and want["message_id"] in facts,
          "search by MessageId opens its event (%s)" % shown)
    attempts = d.find_elements(By.CSS_SELECTOR, "#attempts tbody tr")
    dests = sorted(r.find_element(By.TAG_NAME, "td").text for r in attempts)
    check(dests == sorted(want["attempts_of_message"]),
          "its attempts, one row per destination: %s" % dests)
    body = d.find_element(By.ID, "event-body").text
    check(want["message_id"] in body and "SecretKey" not in body,
          "its body, without SecretKey")
    check("/events/" in d.current_url, "the address names the event")
    return shown


def check_xss(d, want):
    search(d, want["xss_address"])
    wait(d, 10, lambda: want["xss_address"] in d.find_element(
        By.ID, "event-facts").text, "the XSS event opens")
    check(want["xss_address"] in d.find_element(By.ID, "event-facts").text,
          "the XSS Address shows as text")
    time.sleep(0.5)
    alerts = d.execute_script("return window.__alerts")
    imgs = d.execute_script("return document.querySelectorAll("
                            "'img[src=x], img[onerror]').length")
    try:
        d.switch_to.alert
        shown = True
    except NoAlertPresentException:
        shown = False
    check(alerts == 0 and imgs == 0 and not shown,
          "no script ran from the Address (alerts %s, imgs %s)"
          % (alerts, imgs))


def check_direct(d, base, event_id):
    d.get(base + "events/" + event_id)
    got = wait(d, 10, lambda: d.find_element(By.ID, "event-id").text,
               "/events/ID opens")
    check(got == event_id, "/events/ID opens that event (%s)" % got)


def check_retry(d, base, receiver_port, dest, want_delivered):
    d.get(base)
    wait(d, 10, lambda: row_cells(d, dest), "row of " + dest)
    urllib.request.urlopen(urllib.request.Request(
        "http://127.0.0.1:%s/_mode/%s" % (receiver_port, dest),
        data=b"200", method="PUT")).read()
    button = d.find_element(By.CSS_SELECTOR,
                            '#dests tr[data-dest="%s"] td.actions button'
                            % dest)
    check(button.is_enabled(), "retry is offered for %s's dead letters" % dest)
    button.click()
    got = wait(d, 30, lambda: (lambda c: c if c and c["dead"] == "0" and
                               c["delivered"] == str(want_delivered)
                               else None)(row_cells(d, dest)),
               "retried dead letters delivered")
    check(bool(got), "after retry, %s shows them delivered: %s"
          % (dest, row_cells(d, dest)))
    result = d.find_element(By.ID, "action-result").text
    check("queued again" in result, "the page says what it did: " + result)


def main():
    base, receiver_port, expect_path = sys.argv[1:4]
    shot = sys.argv[4] if len(sys.argv) > 4 else None
    d = start()
    if expect_path == "-":
        # Figures only (tests/page_big.sh): a big spool, no known traffic.
        try:
            first_load(d, base)
            warm_loads(d, base, 5)
            check_chart(d)
            check(not severe_logs(d), "no console errors")
        finally:
            d.quit()
        print("%d passed, %d failed" % (passed, failed))
        return 1 if failed else 0
    with open(expect_path, encoding="utf-8") as f:
        want = json.load(f)
    try:
        first_load(d, base)
        warm_loads(d, base, 5)
        check_rows(d, want)
        check_chart(d)
        if shot:
            time.sleep(0.3)
            d.save_screenshot(shot)
        event_id = check_search(d, want)
        check_xss(d, want)
        if event_id:
            check_direct(d, base, event_id)
        check_retry(d, base, receiver_port, want["retry_dest"],
                    want["retry_delivered"])
        logs = severe_logs(d)
        check(not logs, "no console errors: %s" % logs)
        d.set_window_size(390, 844)
        d.get(base)
        wait(d, 10, lambda: d.execute_script(
            "return document.body.dataset.loaded === 'yes'"), "phone load")
        wide = d.execute_script(
            "return document.documentElement.scrollWidth")
        check(wide <= 390, "a phone's width: nothing wider (%s px)" % wide)
    finally:
        d.quit()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
