"""test_websocket.py - libpetrel and the petrel CLI over WebSocket against
petreld's ws and wss listeners: -L ws://HOST:PORT/PATH and --ws/--ws-path
for pub and sub, messages across to and from TCP clients (mosquitto_pub,
mosquitto_sub) at QoS 0, 1 and 2, wss:// with the test CA, a wrong path
refused (the server's 404 is a protocol error, exit status 1) and bad
URLs.  `petrel bench` over WebSocket is test_bench_ws.py's."""

import os
import sys

import clienttest as ct

sys.path.insert(0, os.path.join(os.environ.get('PETREL_SOURCE_ROOT',
                                               os.path.dirname(os.path.dirname(
                                                   os.path.dirname(os.path.abspath(__file__))))),
                                'tests', 'integration'))
import tls_helpers  # noqa: E402  (needs the path above)

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = range(3)


def petrel(*args, **kw):
    return ct.run([ct.PETREL] + [str(a) for a in args], **kw)


class WebSocketBroker(ct.unittest.TestCase):
    """One petreld for the class: a plain listener, ws on /mqtt, ws on
    /other, wss with the test CA's certificate (test_bench_ws.py too)."""

    @classmethod
    def setUpClass(cls):
        if not ct.have(ct.PETREL):
            raise ct.unittest.SkipTest('petrel not built')
        cls.certs = c = tls_helpers.Certs()
        cls.addClassCleanup(c.close)
        # a plain listener, ws on /mqtt, ws on /other, wss
        cls.broker = ct.Petreld(listens=[
            '127.0.0.1:0 ws', '127.0.0.1:0 ws ws_path=/other',
            '127.0.0.1:0 wss certfile=%s keyfile=%s' % (c.server, c.server_key)]).start()
        cls.addClassCleanup(cls.broker.stop)
        cls.ws, cls.ws_other, cls.wss = cls.broker.ports[1:]


class WebSocketCliTest(WebSocketBroker):

    def topic(self):
        return 'ws/%s' % self._testMethodName

    def sub(self, *conn, qos=2, count=3):
        s = ct.Background([ct.PETREL, 'sub', '-d', '-t', self.topic(), '-q', str(qos),
                           '-C', str(count), '--timeout', '10'] + [str(a) for a in conn])
        self.addCleanup(s.stop)
        s.wait_stderr(r'subscribed: 1 of 1 granted')
        return s

    def _across(self, conn):
        """A petrel sub over `conn` gets mosquitto_pub's messages over TCP,
        and mosquitto_sub over TCP gets petrel pub's over `conn`."""
        s = self.sub(*conn)
        for qos in (0, 1, 2):
            r = ct.run([ct.MOSQUITTO_PUB, '-h', '127.0.0.1', '-p', str(self.broker.port),
                        '-t', self.topic(), '-q', str(qos), '-m', 'tcp %d' % qos])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(s.line(), 'tcp %d' % qos)
        self.assertEqual(s.proc.wait(10), EXIT_OK)
        m = ct.Background([ct.MOSQUITTO_SUB, '-h', '127.0.0.1', '-p', str(self.broker.port),
                           '-t', self.topic(), '-q', '2', '-C', '3', '-d'])
        self.addCleanup(m.stop)
        deadline = ct.time.monotonic() + 5
        while not any('SUBACK' in l for l in m.out) and ct.time.monotonic() < deadline:
            ct.time.sleep(0.02)
        for qos in (0, 1, 2):
            r = petrel('pub', '-t', self.topic(), '-q', qos, '-m', 'ws %d' % qos, *conn)
            self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        lines = []
        while len(lines) < 3:
            l = m.line()
            if not l.startswith('Client ') and not l.startswith('Subscribed'):
                lines.append(l)
        self.assertEqual(lines, ['ws 0', 'ws 1', 'ws 2'])

    def test_url_ws(self):
        self._across(['-L', 'ws://127.0.0.1:%d/mqtt' % self.ws])

    def test_flags_ws(self):
        self._across(['--ws', '-h', '127.0.0.1', '-p', self.ws])
        self._across(['--ws-path', '/other', '-h', '127.0.0.1', '-p', self.ws_other])

    def test_url_wss(self):
        self._across(['-L', 'wss://localhost:%d/mqtt' % self.wss,
                      '--cafile', self.certs.ca])

    def test_wrong_path_is_refused(self):
        r = petrel('pub', '-L', 'ws://127.0.0.1:%d/nope' % self.ws, '-t', self.topic(),
                   '-m', 'x', '--timeout', 5)
        self.assertEqual(r.returncode, EXIT_FAILURE, r.stderr)
        self.assertIn('protocol error from the server', r.stderr)

    def test_plain_mqtt_on_the_ws_port_fails(self):
        r = petrel('pub', '-h', '127.0.0.1', '-p', self.ws, '-t', self.topic(),
                   '-m', 'x', '--timeout', 3)
        self.assertNotEqual(r.returncode, EXIT_OK, r.stderr)

    def test_bad_urls(self):
        for url, msg in (('http://h/x', 'is not an mqtt://'),
                         ('ws://:80/x', 'no host'),
                         ('ws://h:99999/x', 'is not a port number'),
                         ('mqtt://h:1883/topic', 'has no path')):
            r = petrel('pub', '-L', url, '-t', 't', '-m', 'x')
            self.assertEqual(r.returncode, EXIT_USAGE, (url, r.stderr))
            self.assertIn(msg, r.stderr)
        r = petrel('pub', '--ws-path', 'mqtt', '-t', 't', '-m', 'x')
        self.assertEqual(r.returncode, EXIT_USAGE, r.stderr)


if __name__ == '__main__':
    ct.unittest.main()
