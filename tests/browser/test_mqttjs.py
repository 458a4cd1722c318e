"""Browser test 1: MQTT.js (npm package mqtt, its browser bundle) in
headless Chromium connects to petreld over ws:// and wss:// (the test CA's
certificate: Chromium is told to ignore certificate errors), subscribes,
receives what mosquitto_pub publishes over TCP and publishes what
mosquitto_sub receives, at QoS 0, 1 and 2, with MQTT 5.0 user properties
and content type both ways.  Driven by Debian's python3-selenium and
chromium-driver; the page is served by a small HTTP server on 127.0.0.1.
Skips only if Chromium or its driver is not installed."""

import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, 'tests', 'integration'))

import harness  # noqa: E402
from harness import Broker, MosquittoSub  # noqa: E402
import tls_helpers  # noqa: E402

CHROMIUM = os.environ.get('CHROMIUM', '/usr/bin/chromium')
CHROMEDRIVER = os.environ.get('CHROMEDRIVER', '/usr/bin/chromedriver')
DEPS = os.environ.get('PETREL_BROWSER_DEPS', os.path.join(REPO, 'build', 'tests', 'browser',
                                                          'node'))
SCRIPT_TIMEOUT = 20


def chromium_missing():
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            return '%s not installed (Debian packages chromium and chromium-driver)' % path
    try:
        import selenium  # noqa: F401
    except ImportError:
        return 'python3-selenium not installed'
    return None


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass


class StaticServer:
    """The page and MQTT.js's bundle over HTTP on 127.0.0.1."""

    def __init__(self, files):
        self.dir = tempfile.mkdtemp(prefix='petrel-browser-')
        for name, src in files.items():
            shutil.copy(src, os.path.join(self.dir, name))
        handler = lambda *a, **kw: QuietHandler(*a, directory=self.dir, **kw)  # noqa: E731
        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        shutil.rmtree(self.dir, ignore_errors=True)


@unittest.skipIf(harness.IS_MOSQUITTO, 'petreld WebSocket listeners')
class MqttJsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        why = chromium_missing()
        if why:
            raise unittest.SkipTest(why)
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        r = subprocess.run([os.path.join(HERE, 'install-mqttjs.sh'), DEPS],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise AssertionError('MQTT.js could not be installed: %s' % r.stderr)
        cls.cleanups = []
        cls.certs = tls_helpers.Certs()
        cls.cleanups.append(cls.certs.close)
        try:
            cls.broker = Broker({'listen': [
                '127.0.0.1:0', '127.0.0.1:0 ws',
                '127.0.0.1:0 wss certfile=%s keyfile=%s' % (cls.certs.server, cls.certs.server_key)]
            }).start()
            cls.cleanups.append(cls.broker.stop)
            cls.port = cls.broker.port
            cls.ws = cls.broker.listeners[1][1]
            cls.wss = cls.broker.listeners[2][1]
            cls.web = StaticServer({
                'index.html': os.path.join(HERE, 'mqttjs_page.html'),
                'mqtt.min.js': os.path.join(DEPS, 'node_modules', 'mqtt', 'dist', 'mqtt.min.js')})
            cls.cleanups.append(cls.web.close)
            opts = webdriver.ChromeOptions()
            opts.binary_location = CHROMIUM
            for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                      '--ignore-certificate-errors', '--no-first-run', '--disable-extensions'):
                opts.add_argument(a)
            cls.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
            cls.cleanups.append(cls.driver.quit)
            cls.driver.set_script_timeout(SCRIPT_TIMEOUT)
            cls.driver.get('http://127.0.0.1:%d/index.html' % cls.web.port)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for f in reversed(cls.cleanups):
            try:
                f()
            except Exception as e:  # keep cleaning up
                sys.stderr.write('cleanup: %r\n' % e)
        cls.cleanups = []

    def call(self, fn, *args):
        """Runs window.fn(*args) in the page and returns what its Promise gives."""
        return self.driver.execute_async_script(
            'var done = arguments[arguments.length - 1];'
            'window[arguments[0]].apply(null, Array.prototype.slice.call(arguments, 1, -1))'
            '.then(done, function (e) { done("rejected: " + e); });', fn, *args)

    def received(self, topic, n, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = [m for m in self.driver.execute_script('return window.received;')
                   if m['topic'] == topic]
            if len(got) >= n:
                return got
            time.sleep(0.05)
        log = self.driver.execute_script('return document.getElementById("log").textContent;')
        self.fail('the browser got %r on %s, not %d messages; page log:\n%s\nbroker:\n%s'
                  % (got, topic, n, log, self.broker.tail()))

    def run_both_ways(self, name, url):
        topic = 'browser/%s' % name
        self.assertEqual(self.call('connectTo', name, url), 'connected')
        self.assertEqual(self.call('subscribe', name, topic + '/in'), [2])
        sub = MosquittoSub(self.port, topic + '/out', qos=2, verbose_format=True,
                           extra=['-V', 'mqttv5', '-F', '%q %t %p %P %C'])
        try:
            sub.wait_subscribed()
            for qos in (0, 1, 2):
                harness.mosquitto_pub(self.port, topic + '/in', 'from-tcp-%d' % qos, qos=qos,
                                      extra=['-V', 'mqttv5', '-D', 'publish', 'user-property',
                                             'origin', 'mosquitto', '-D', 'publish',
                                             'content-type', 'text/x-test'])
                got = self.received(topic + '/in', qos + 1)[qos]
                self.assertEqual(got['payload'], 'from-tcp-%d' % qos)
                self.assertEqual(got['qos'], qos)
                self.assertEqual(got['userProperties'], {'origin': 'mosquitto'})
                self.assertEqual(got['contentType'], 'text/x-test')
                props = {'userProperties': {'origin': 'browser'}, 'contentType': 'text/x-web'}
                self.assertEqual(self.call('publish', name, topic + '/out', 'from-browser-%d' % qos,
                                           qos, props), 'ok')
                line = sub.get_line(timeout=10)
                self.assertEqual(line, '%d %s/out from-browser-%d origin:browser text/x-web'
                                 % (qos, topic, qos))
        finally:
            sub.proc.terminate()
            sub.proc.wait(5)
        self.assertEqual(self.call('end', name), 'ended')

    def test_ws(self):
        self.run_both_ways('ws', 'ws://127.0.0.1:%d/mqtt' % self.ws)

    def test_wss(self):
        self.run_both_ways('wss', 'wss://localhost:%d/mqtt' % self.wss)


if __name__ == '__main__':
    unittest.main()
