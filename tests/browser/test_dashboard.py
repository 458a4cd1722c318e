"""test_dashboard.py - Browser test 2 of issue #15: the dashboard petreld
serves at "/" of its http_listen, loaded in Debian's headless Chromium
(chromium-driver, driven by python3-selenium) against a real petreld.

Every check compares what the page shows with the broker's real state
(its /api/v1 answers, the MQTT connections the test holds): the connection
count rising as 50 clients connect, the rate chart drawing the publish rate
under load, a client leaving the list (and really being disconnected) after
its Disconnect button is confirmed, the page on a phone-sized viewport, the
unreachable banner and its recovery, the token prompt, and retained topics
(attacker-chosen names) in the topic tree as text.  Every wait is bounded.
A screenshot of each state is written to $DASHBOARD_SCREENS (meson: the
build directory's tests/browser/screens) and its path printed.
"""

import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, 'tests', 'integration'))

import harness  # noqa: E402
import mqttraw  # noqa: E402
from harness import free_port  # noqa: E402

CHROMIUM = os.environ.get('CHROMIUM', '/usr/bin/chromium')
CHROMEDRIVER = os.environ.get('CHROMEDRIVER', '/usr/bin/chromedriver')
SCREENS = os.environ.get('DASHBOARD_SCREENS') or os.path.join(
    REPO, 'build', 'tests', 'browser', 'screens')

try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:   # meson counts exit 77 as skipped
    print('SKIP: python3-selenium is not installed (deploy/install-deps.sh test)')
    sys.exit(77)
for need in (CHROMIUM, CHROMEDRIVER):
    if not os.access(need, os.X_OK):
        print('SKIP: %s is missing (deploy/install-deps.sh test)' % need)
        sys.exit(77)

WAIT = 20.0         # seconds for the page to show a change (polls are 1-3 s)
CLIENTS = 50
ADMIN_TOKEN = 'dash-admin-0123456789abcdef'
READ_TOKEN = 'dash-read-0123456789abcdef'


def browser(tmp, width=1280, height=800):
    """A headless Chromium with its own profile in tmp, the viewport set to
    width x height, and every host name but the loopback unresolvable: the
    page must need no outside network."""
    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
              '--no-first-run', '--no-default-browser-check', '--disable-extensions',
              '--disable-background-networking', '--disable-component-update', '--disable-sync',
              '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
              '--user-data-dir=' + os.path.join(tmp, 'profile'),
              '--window-size=%d,%d' % (width, height)):
        o.add_argument(a)
    o.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER, log_path=os.path.join(tmp, 'chromedriver.log')),
                         options=o)
    d.set_page_load_timeout(WAIT)
    d.set_script_timeout(WAIT)
    viewport(d, width, height)
    return d


def viewport(d, width, height):
    d.execute_cdp_cmd('Emulation.setDeviceMetricsOverride',
                      {'width': width, 'height': height, 'deviceScaleFactor': 1,
                       'mobile': width < 600})


def screenshot(d, name):
    os.makedirs(SCREENS, exist_ok=True)
    path = os.path.join(SCREENS, name)
    d.save_screenshot(path)
    print('screenshot: %s' % path)
    return path


class Api:
    """The broker's admin API as the test reads it (independently of the page)."""

    def __init__(self, port, token=None):
        self.base = 'http://127.0.0.1:%d' % port
        self.token = token

    def call(self, method, path):
        req = urllib.request.Request(self.base + path, method=method)
        if self.token:
            req.add_header('Authorization', 'Bearer ' + self.token)
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, json.loads(r.read() or b'null')
        except urllib.error.HTTPError as e:
            body = e.read()
            try:
                return e.code, json.loads(body)
            except ValueError:
                return e.code, body

    def get(self, path):
        status, body = self.call('GET', path)
        if status != 200:
            raise AssertionError('GET %s: HTTP %s %r' % (path, status, body))
        return body

    def wait_up(self, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.call('GET', '/healthz')[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError('the HTTP listener at %s did not answer' % self.base)


class DashboardCase(unittest.TestCase):
    """One broker with an HTTP listener on a port chosen here (so that a
    restarted broker is found again at the same address) and one browser."""

    http_options = 'anonymous=admin'
    extra_settings = {}
    token = None          # the test's own API calls: anonymous

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='petrel-dash-')
        cls.http_port = free_port()
        settings = {'http_listen': ('127.0.0.1:%d %s' % (cls.http_port, cls.http_options)).strip()}
        settings.update(cls.extra_settings)
        cls.broker = harness.Broker(settings).start()
        cls.api = Api(cls.http_port, cls.token)
        cls.api.wait_up()
        cls.url = 'http://127.0.0.1:%d/' % cls.http_port
        cls.d = browser(cls.tmp)
        cls.clients = []

    @classmethod
    def tearDownClass(cls):
        for c in cls.clients:
            c.close()
        try:
            cls.d.quit()
        finally:
            cls.broker.stop()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def run(self, result=None):
        before = len(result.failures) + len(result.errors) if result else 0
        out = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > before:
            sys.stderr.write('\n' + self.broker.tail() + '\n')
            try:
                screenshot(self.d, 'failed-%s.png' % self._testMethodName)
                for e in self.d.get_log('browser'):
                    sys.stderr.write('browser: %s\n' % e)
            except Exception:
                pass
        return out

    # ---- reading the page
    def js(self, script, *args):
        return self.d.execute_script(script, *args)

    def figure(self, element_id):
        """The raw value the page shows in a figure (data-value), or None."""
        v = self.js('const e = document.getElementById(arguments[0]);'
                    'return e ? e.dataset.value : null;', element_id)
        return float(v) if v not in (None, '') else None

    def wait_for(self, what, cond, timeout=WAIT):
        """Polls cond() until it returns something true and returns it."""
        last = [None]

        def check(_):
            try:
                last[0] = cond()
            except StaleElementReferenceException:
                return False
            return last[0]
        try:
            return WebDriverWait(self.d, timeout, poll_frequency=0.2).until(check)
        except TimeoutException:
            self.fail('timed out after %.0fs waiting for %s (last: %r)' % (timeout, what, last[0]))

    def client_rows(self):
        return self.js("return [...document.querySelectorAll('#clients tbody tr')]"
                       ".map((r) => r.dataset.clientId);")

    def chart_points(self, chart_id):
        """The points (x, y) of the first line drawn in a chart, in the
        chart's 300 x 100 viewBox (y = 100 is zero), and the y scale's top."""
        d, top = self.js("const c = document.getElementById(arguments[0]);"
                         "return [c.querySelector('path.line').getAttribute('d'), c.dataset.max];",
                         chart_id)
        nums = [float(x) for x in re.findall(r'-?\d+(?:\.\d+)?', d or '')]
        return list(zip(nums[0::2], nums[1::2])), float(top or 0)

    def act(self, what, find, *args, action=lambda e: e.click()):
        """Finds an element with the script `find` (returning it) and acts
        on it, again if the page re-rendered it meanwhile (stale)."""
        def attempt():
            e = self.js(find, *args)
            if e is None:
                return False
            action(e)
            return True
        return self.wait_for(what, attempt)

    def load(self, again=True):
        """Opens the dashboard (again=False: keeps the page if it is open,
        with its charts' history)."""
        if again or self.d.current_url != self.url:
            self.d.get(self.url)
        self.wait_for('the page to show the broker live',
                      lambda: self.js("return document.getElementById('live').dataset.state") == 'live')

    def connect_clients(self, n, prefix):
        """n raw MQTT 3.1.1 clients (and client `prefix`17 speaking 5.0)."""
        out = []
        for i in range(n):
            cid = '%s%02d' % (prefix, i)
            if i == 17:
                c = mqttraw.Raw5(self.broker.port)
                c.connect5(cid)
            else:
                c = mqttraw.RawClient(self.broker.port)
                c.connect(cid)
            out.append(c)
            self.clients.append(c)
        return out


class TestDashboard(DashboardCase):
    """The dashboard on an anonymous-admin loopback listener. The tests run
    in name order and build on each other (the 50 clients stay)."""

    def test_1_connection_count_rises(self):
        self.load()
        start = type(self).start_connections = self.api.get('/api/v1/stats')['connections']
        self.wait_for('the connection count to show %d' % start,
                      lambda: self.figure('connections') == start)
        screenshot(self.d, 'dashboard-1-idle-1280x800.png')
        self.connect_clients(CLIENTS, 'dash-c-')
        real = self.api.get('/api/v1/stats')['connections']
        self.assertEqual(real, start + CLIENTS)
        self.wait_for('the connection count to reach %d' % real,
                      lambda: self.figure('connections') == real)
        # The chart's last point is drawn at that count on its y scale.
        pts, top = self.wait_for('the chart to draw %d' % real,
                                 lambda: (lambda p: p if p[0] and abs((100 - p[0][-1][1]) / 100 * p[1] - real) < 0.5
                                          else None)(self.chart_points('chart-connections')))
        self.assertGreaterEqual(top, real)
        rows = self.wait_for('the client list to show the new clients',
                             lambda: (lambda r: r if len(r) == 20 else None)(self.client_rows()))
        self.assertEqual(rows, sorted(rows), 'the list is sorted by client id')
        self.assertTrue(all(r.startswith('dash-c-') for r in rows), rows)
        self.assertTrue(self.js("return !document.getElementById('clients-next').disabled"),
                        '50 clients fill more than one page of 20')
        screenshot(self.d, 'dashboard-2-50-clients-1280x800.png')
        # Nothing was fetched from anywhere but the broker.
        urls = self.js("return performance.getEntriesByType('resource').map((e) => e.name);")
        self.assertTrue(urls, 'the page fetched its files and the API')
        for u in urls:
            self.assertTrue(u.startswith(self.url), 'fetched from outside the broker: %s' % u)

    def queue_rows(self):
        return self.js("return [...document.querySelectorAll('#queues tbody tr')]"
                       ".map((r) => [r.dataset.clientId, r.cells[2].textContent]);")

    def test_2_rate_chart_moves_under_load(self):
        self.load(again=False)
        # Two offline persistent sessions with queues of 30 and 12 messages:
        # the deepest first.
        for cid, n in (('dash-q-less', 12), ('dash-q-deep', 30)):
            s = mqttraw.RawClient(self.broker.port)
            s.connect(cid, clean=False)
            s.subscribe([('dash/q/%s' % cid, 1)])
            s.disconnect()
            s.close()
            p = mqttraw.RawClient(self.broker.port)
            p.connect('dash-q-pub')
            for i in range(n):
                p.publish('dash/q/%s' % cid, b'queued %d' % i, qos=1)
            p.disconnect()
            p.close()
        deepest = [(x['client_id'], x['queued_messages'])
                   for x in self.api.get('/api/v1/sessions?sort=queued&limit=10')['sessions']
                   if x['queued_messages'] > 0]
        self.assertEqual(deepest, [('dash-q-deep', 30), ('dash-q-less', 12)])
        self.wait_for('the deepest queues table', lambda: self.queue_rows() ==
                      [['dash-q-deep', '30'], ['dash-q-less', '12']])
        self.wait_for('the received rate to be back at 0', lambda: self.figure('rate-received') == 0)
        flat, _ = self.chart_points('chart-received')
        self.assertEqual(flat[-1][1], 100, 'no load now: %r' % flat[-5:])
        sub = mqttraw.RawClient(self.broker.port)
        sub.connect('dash-load-sub')
        sub.subscribe([('dash/load/#', 0)])
        pub = mqttraw.RawClient(self.broker.port)
        pub.connect('dash-load-pub')
        stop = threading.Event()

        def publish():   # about 250 messages a second, until stopped
            n = 0
            t0 = time.monotonic()
            while not stop.is_set():
                pub.publish('dash/load/%d' % (n % 10), b'x' * 64)
                n += 1
                time.sleep(max(0, t0 + n / 250.0 - time.monotonic()))

        def drain():
            while not stop.is_set():
                try:
                    sub.read_packet(0.2)
                except mqttraw.Timeout:
                    pass
                except mqttraw.Closed:
                    return
        threads = [threading.Thread(target=f, daemon=True) for f in (publish, drain)]
        for t in threads:
            t.start()
        try:
            # The broker's own rate, from its counters over 3 seconds.
            time.sleep(1.5)
            a = self.api.get('/api/v1/stats')
            time.sleep(3)
            b = self.api.get('/api/v1/stats')
            real = (b['messages_received'] - a['messages_received']) / ((b['time_ms'] - a['time_ms']) / 1000)
            self.assertGreater(real, 50, 'the publisher does not get through')
            def near(v):
                return v is not None and real / 2 < v < real * 2

            def drawn():
                """The rate shown and the chart's last point, both near the
                broker's rate (read together: a poll may land between)."""
                shown = self.figure('rate-received')
                pts, top = self.chart_points('chart-received')
                last = (100 - pts[-1][1]) / 100 * top if pts else None
                if near(shown) and near(last) and top >= shown:
                    return shown, pts
                return None
            shown, pts = self.wait_for('the rate %.0f/s shown and drawn' % real, drawn)
            self.assertNotEqual(pts, flat, 'the chart did not move')
            self.wait_for('the sent rate (the subscriber gets them too)',
                          lambda: near(self.figure('rate-sent')))
            # A few seconds more, so the screenshot shows the rise.
            time.sleep(4)
            screenshot(self.d, 'dashboard-3-load-1280x800.png')
        finally:
            stop.set()
            for t in threads:
                t.join(5)
            pub.close()
            sub.close()

    def test_3_disconnect_button(self):
        self.load()
        target = 'dash-c-17'   # the MQTT 5.0 one
        victim = self.clients[17]
        # The 50 of test 1 (test 2's publisher and subscriber have gone).
        before = self.start_connections + CLIENTS
        self.wait_for('the broker to count %d connections' % before,
                      lambda: self.api.get('/api/v1/stats')['connections'] == before)
        box = self.d.find_element('id', 'clients-prefix')
        box.clear()
        box.send_keys(target)
        self.wait_for('the prefix filter to leave %s alone' % target,
                      lambda: self.client_rows() == [target])
        self.act('to click its Disconnect button',
                 "return document.querySelector('#clients tbody tr button.disconnect');")
        self.wait_for('the confirmation dialog',
                      lambda: self.js("return document.getElementById('confirm-dialog').open"))
        text = self.js("return document.getElementById('confirm-text').textContent")
        self.assertIn(target, text)
        screenshot(self.d, 'dashboard-4-confirm-1280x800.png')
        self.d.find_element('id', 'confirm-ok').click()
        self.wait_for('%s to leave the list' % target, lambda: self.client_rows() == [])
        # The broker really disconnected it: DISCONNECT 0x98 (administrative action).
        p = victim.expect_disconnect(timeout=5)
        self.assertEqual(p.rc, 0x98)
        status, _ = self.api.call('GET', '/api/v1/clients/' + target)
        self.assertEqual(status, 404)
        self.wait_for('the broker to count %d connections' % (before - 1),
                      lambda: self.api.get('/api/v1/stats')['connections'] == before - 1)
        # It stays gone across the list's next polls.
        time.sleep(3.5)
        self.assertEqual(self.client_rows(), [])
        self.assertFalse(self.js("return document.getElementById('clients-empty').hidden"))
        screenshot(self.d, 'dashboard-5-disconnected-1280x800.png')
        # Clearing the filter shows the others, still connected.
        box.clear()
        box.send_keys('dash-c-1')
        rows = self.wait_for('the other dash-c-1* clients',
                             lambda: (lambda r: r if len(r) == 9 else None)(self.client_rows()))
        self.assertNotIn(target, rows)
        # Emptied by keys (clear() fires no input event): the whole list again.
        box.send_keys(Keys.BACKSPACE * len(box.get_attribute('value')))
        self.wait_for('the unfiltered list', lambda: len(self.client_rows()) == 20)

    def test_4_phone_viewport(self):
        viewport(self.d, 375, 667)
        try:
            self.load(again=False)   # the same page, narrower: the charts keep their history
            self.d.execute_script('window.scrollTo(0, 0)')
            self.wait_for('the rates', lambda: self.figure('rate-received') is not None)
            self.wait_for('the connection count',
                          lambda: self.figure('connections') == self.api.get('/api/v1/stats')['connections'])
            self.wait_for('the client list', lambda: len(self.client_rows()) == 20)
            screenshot(self.d, 'dashboard-6-phone-375x667.png')
            # Nothing is wider than the screen; each client's button is on it.
            width = self.js('return document.documentElement.scrollWidth')
            self.assertLessEqual(width, 375)
            rights = self.js("return [...document.querySelectorAll('#clients button.disconnect')]"
                             ".map((b) => b.getBoundingClientRect().right);")
            self.assertEqual(len(rights), 20)
            self.assertTrue(all(0 < r <= 375 for r in rights), rights)
            rights = self.js("return [...document.querySelectorAll('#queues button.delete-session')]"
                             ".map((b) => b.getBoundingClientRect().right);")
            self.assertEqual(len(rights), 2)
            self.assertTrue(all(0 < r <= 375 for r in rights), rights)
            # The four chart tiles sit two by two.
            tops = self.js("return [...document.querySelectorAll('.tile')]"
                           ".map((t) => Math.round(t.getBoundingClientRect().top));")
            self.assertEqual(tops[0], tops[1])
            self.assertEqual(tops[2], tops[3])
            self.assertLess(tops[1], tops[2])
        finally:
            viewport(self.d, 1280, 800)

    def test_4a_dark_scheme(self):
        def colours():
            return self.js("const b = getComputedStyle(document.body);"
                           "return [b.backgroundColor, b.color];")

        def luminance(css):
            r, g, b = [int(x) for x in re.findall(r'\d+', css)[:3]]
            return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255
        self.load(again=False)
        light_bg, light_fg = colours()
        self.d.execute_cdp_cmd('Emulation.setEmulatedMedia',
                               {'features': [{'name': 'prefers-color-scheme', 'value': 'dark'}]})
        try:
            bg, fg = self.wait_for('the dark colours', lambda: (lambda c: c if c[0] != light_bg else None)(colours()))
            self.assertGreater(luminance(light_bg), 0.8)
            self.assertLess(luminance(light_fg), 0.3)
            self.assertLess(luminance(bg), 0.2)
            self.assertGreater(luminance(fg), 0.7)
            self.js('window.scrollTo(0, 0)')
            screenshot(self.d, 'dashboard-6a-dark-1280x800.png')
        finally:
            self.d.execute_cdp_cmd('Emulation.setEmulatedMedia', {'features': []})

    def test_5_retained_tree(self):
        # Attacker-chosen topic names: shown as text, never run.
        topics = ['dash/tree/a/temp', 'dash/tree/a/hum', 'dash/tree/b',
                  'dash/tree/<img src=x onerror="window.__xss=1">']
        pub = mqttraw.RawClient(self.broker.port)
        pub.connect('dash-retainer')
        for t in topics:
            pub.publish(t, b'v' * 10, qos=1, retain=True)
        pub.close()
        self.load(again=False)
        self.d.find_element('id', 'retained-refresh').click()
        self.wait_for('the tree to hold the retained topics',
                      lambda: self.js("return [...document.querySelectorAll('#retained-tree li')]"
                                      ".some((l) => l.dataset.topic === 'dash')"))
        # Open dash, then tree, then a: levels appear as they are opened.
        for path in ('dash', 'dash/tree', 'dash/tree/a'):
            self.act('to open level %s' % path,
                     "const l = [...document.querySelectorAll('#retained-tree li')]"
                     ".find((l) => l.dataset.topic === arguments[0]);"
                     "return l ? l.querySelector('summary') : null;", path)
        want = sorted(topics + ['dash/tree/a'])
        self.wait_for('the opened levels to show %r' % want, lambda: sorted(self.js(
            "return [...document.querySelectorAll('#retained-tree li')].map((l) => l.dataset.topic)"
            ".filter((t) => t.startsWith('dash/tree/'));")) == want)
        labels = self.js("return [...document.querySelectorAll('#retained-tree .seg')].map((s) => s.textContent);")
        self.assertIn('<img src=x onerror="window.__xss=1">', labels)
        self.assertIsNone(self.js('return window.__xss'))
        self.assertEqual(self.js("return document.querySelectorAll('#retained-tree img').length"), 0)
        self.js("document.getElementById('retained-card').scrollIntoView()")
        screenshot(self.d, 'dashboard-7-retained-1280x800.png')
        # Its delete button (shown on hover) removes it from the broker.
        hostile = topics[3]
        def hover_and_delete(leaf):
            ActionChains(self.d).move_to_element(leaf).perform()
            leaf.find_element('css selector', 'button.delete').click()
        self.act('to delete %s' % hostile,
                 "const l = [...document.querySelectorAll('#retained-tree li')]"
                 ".find((l) => l.dataset.topic === arguments[0]);"
                 "return l ? l.querySelector('.leaf') : null;", hostile, action=hover_and_delete)
        self.wait_for('the confirmation dialog',
                      lambda: self.js("return document.getElementById('confirm-dialog').open"))
        self.assertIn(hostile, self.js("return document.getElementById('confirm-text').textContent"))
        self.d.find_element('id', 'confirm-ok').click()
        self.wait_for('the topic to leave the tree', lambda: self.js(
            "return ![...document.querySelectorAll('#retained-tree li')].some((l) => l.dataset.topic === arguments[0])"
            " && [...document.querySelectorAll('#retained-tree li')].some((l) => l.dataset.topic === 'dash/tree/b');",
            hostile))
        left = [r['topic'] for r in self.api.get('/api/v1/retained?filter=dash/%23')['retained']]
        self.assertEqual(sorted(left), sorted(topics[:3]))

    def test_5a_delete_session(self):
        self.load(again=False)
        self.wait_for('the deepest queues of test 2', lambda: self.queue_rows() ==
                      [['dash-q-deep', '30'], ['dash-q-less', '12']])
        self.act('to click the Delete button of dash-q-less',
                 "const r = [...document.querySelectorAll('#queues tbody tr')]"
                 ".find((r) => r.dataset.clientId === 'dash-q-less');"
                 "return r ? r.querySelector('button.delete-session') : null;")
        self.wait_for('the confirmation dialog',
                      lambda: self.js("return document.getElementById('confirm-dialog').open"))
        self.assertIn('dash-q-less', self.js("return document.getElementById('confirm-text').textContent"))
        self.d.find_element('id', 'confirm-ok').click()
        self.wait_for('dash-q-less to leave the table',
                      lambda: self.queue_rows() == [['dash-q-deep', '30']])
        status, _ = self.api.call('GET', '/api/v1/sessions/dash-q-less')
        self.assertEqual(status, 404)
        self.assertEqual(self.api.get('/api/v1/sessions/dash-q-deep')['queued_messages'], 30)

    def test_6_unreachable_banner(self):
        self.load(again=False)
        self.assertTrue(self.js("return document.getElementById('banner').hidden"))
        for c in self.clients:
            c.close()
        self.clients.clear()
        self.broker.stop(keep=True)
        self.wait_for('the unreachable banner', lambda: self.js(
            "const b = document.getElementById('banner');"
            "return !b.hidden && b.dataset.kind === 'down' && b.textContent.includes('Cannot reach');"))
        self.assertEqual(self.js("return document.getElementById('live').dataset.state"), 'down')
        # Scrolled down (to the retained tree), the banner is still in view.
        self.assertGreater(self.js('return window.scrollY'), 0)
        top = self.js("return document.getElementById('banner').getBoundingClientRect().top")
        self.assertTrue(0 <= top < 50, top)
        time.sleep(3)   # a gap in the charts for the screenshot
        screenshot(self.d, 'dashboard-8-unreachable-scrolled-1280x800.png')
        self.js('window.scrollTo(0, 0)')
        screenshot(self.d, 'dashboard-8-unreachable-1280x800.png')
        self.broker.start()
        self.api.wait_up()
        self.wait_for('the banner to go', lambda: self.js("return document.getElementById('banner').hidden"))
        self.wait_for('live figures again', lambda: self.figure('connections') ==
                      self.api.get('/api/v1/stats')['connections'])


class TestDashboardToken(DashboardCase):
    """A listener without anonymous access: the page asks for a token."""

    http_options = ''
    token = ADMIN_TOKEN

    @classmethod
    def setUpClass(cls):
        path = os.path.join(tempfile.gettempdir(), 'petrel-dash-tokens-%d' % os.getpid())
        with open(path, 'w') as f:
            f.write('# name role token\nops admin %s\nviewer read %s\n' % (ADMIN_TOKEN, READ_TOKEN))
        cls.token_path = path
        cls.extra_settings = {'http_token_file': path}
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            os.unlink(cls.token_path)

    def dialog_open(self):
        return self.js("return document.getElementById('token-dialog').open")

    def give_token(self, token):
        box = self.d.find_element('id', 'token-input')
        box.clear()
        box.send_keys(token)
        self.d.find_element('id', 'token-save').click()

    def test_token_prompt(self):
        status, body = Api(self.http_port).call('GET', '/api/v1/stats')
        self.assertEqual(status, 401, body)
        victim = self.connect_clients(1, 'dash-t-')[0]
        self.d.get(self.url)
        self.wait_for('the token dialog', self.dialog_open)
        self.assertEqual(self.js("return document.getElementById('live').dataset.state"), 'token')
        screenshot(self.d, 'dashboard-9-token-1280x800.png')
        self.give_token('not-a-token')
        self.wait_for('the dialog to say the token was refused', lambda: self.dialog_open() and self.js(
            "const e = document.getElementById('token-error'); return !e.hidden && e.textContent.includes('refused');"))
        # A read-only token shows everything...
        self.give_token(READ_TOKEN)
        self.wait_for('figures with the read token',
                      lambda: self.figure('connections') == self.api.get('/api/v1/stats')['connections'])
        self.assertFalse(self.dialog_open())
        self.assertEqual(self.js("return sessionStorage.getItem('petrel.token')"), READ_TOKEN)
        self.wait_for('the client list', lambda: self.client_rows() == ['dash-t-00'])
        # ...but may not disconnect: the page says so and the client stays.
        self.act('to click its Disconnect button',
                 "return document.querySelector('#clients tbody tr button.disconnect');")
        self.wait_for('the confirmation dialog',
                      lambda: self.js("return document.getElementById('confirm-dialog').open"))
        self.d.find_element('id', 'confirm-ok').click()
        self.wait_for('the read-only message', lambda: self.js(
            "const t = document.getElementById('toast'); return !t.hidden && t.textContent.includes('admin token');"))
        victim.ping()
        self.assertEqual(self.api.get('/api/v1/clients/dash-t-00')['client_id'], 'dash-t-00')
        # A reload of the tab keeps the token (sessionStorage): no prompt.
        self.d.refresh()
        self.wait_for('figures after a reload',
                      lambda: self.figure('connections') == self.api.get('/api/v1/stats')['connections'])
        self.assertFalse(self.dialog_open())


if __name__ == '__main__':
    # Screenshots of a failure in an earlier run would mislead.
    if os.path.isdir(SCREENS):
        for name in os.listdir(SCREENS):
            if name.startswith('failed-') and name.endswith('.png'):
                os.unlink(os.path.join(SCREENS, name))
    unittest.main(verbosity=2)
