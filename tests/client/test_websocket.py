"""test_websocket.py - libpetrel and the petrel CLI over WebSocket against
petreld's ws and wss listeners: -L ws://HOST:PORT/PATH and --ws/--ws-path
for pub and sub, messages across to and from TCP clients (mosquitto_pub,
mosquitto_sub) at QoS 0, 1 and 2, wss:// with the test CA, a wrong path
refused (the server's 404 is a protocol error, exit status 1), bad URLs,
and bench refusing --ws clearly."""

import os
import sys

import clienttest as ct

sys.path.insert(0, os.path.join(os.environ.get('PETREL_SOURCE_ROOT',
                                               os.path.dirname(os.path.dirname(
                                                   os.path.dirname(os.path.abspath(__file__))))),
                                'tests', 'integration'))
import tls_helpers  # noqa: E402  (needs the path above)

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = range(3)


class WsPetreld(ct.Broker):
    """petreld with a plain listener, a ws one on /mqtt, one on /other and a wss one."""
    kind = 'petreld'

    def __init__(self, certs):
        super().__init__()
        self.certs = certs

    def start(self):
        if not ct.have(ct.PETRELD):
            raise ct.unittest.SkipTest('petreld not built')
        data = os.path.join(self.tmp, 'data')
        os.makedirs(data, exist_ok=True)
        conf = os.path.join(self.tmp, 'petreld.conf')
        with open(conf, 'w') as f:
            f.write('listen = 127.0.0.1:0\n')
            f.write('listen = 127.0.0.1:0 ws\n')
            f.write('listen = 127.0.0.1:0 ws ws_path=/other\n')
            f.write('listen = 127.0.0.1:0 wss certfile=%s keyfile=%s\n'
                    % (self.certs.server, self.certs.server_key))
            f.write('data_dir = %s\nlog_level = info\n' % data)
        listeners = self._start([ct.PETRELD, '-c', conf], ct.petreltest.petreld_listeners)
        self.port, self.ws, self.ws_other, self.wss = [p for h, p in listeners]
        return self


def petrel(*args, **kw):
    return ct.run([ct.PETREL] + [str(a) for a in args], **kw)


class WebSocketCliTest(ct.unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if not ct.have(ct.PETREL):
            raise ct.unittest.SkipTest('petrel not built')
        cls.certs = tls_helpers.Certs()
        try:
            cls.broker = WsPetreld(cls.certs).start()
        except BaseException:
            cls.certs.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.broker.stop()
        cls.certs.close()

    def setUp(self):
        self.bg = []

    def tearDown(self):
        for b in self.bg:
            b.stop()

    def topic(self):
        return 'ws/%s' % self._testMethodName

    def sub(self, *conn, qos=2, count=3):
        s = ct.Background([ct.PETREL, 'sub', '-d', '-t', self.topic(), '-q', str(qos),
                           '-C', str(count), '--timeout', '10'] + [str(a) for a in conn])
        self.bg.append(s)
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
        self.bg.append(m)
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
        self._across(['-L', 'ws://127.0.0.1:%d/mqtt' % self.broker.ws])

    def test_flags_ws(self):
        self._across(['--ws', '-h', '127.0.0.1', '-p', self.broker.ws])
        self._across(['--ws-path', '/other', '-h', '127.0.0.1', '-p', self.broker.ws_other])

    def test_url_wss(self):
        self._across(['-L', 'wss://localhost:%d/mqtt' % self.broker.wss,
                      '--cafile', self.certs.ca])

    def test_wrong_path_is_refused(self):
        r = petrel('pub', '-L', 'ws://127.0.0.1:%d/nope' % self.broker.ws, '-t', self.topic(),
                   '-m', 'x', '--timeout', 5)
        self.assertEqual(r.returncode, EXIT_FAILURE, r.stderr)
        self.assertIn('protocol error from the server', r.stderr)

    def test_plain_mqtt_on_the_ws_port_fails(self):
        r = petrel('pub', '-h', '127.0.0.1', '-p', self.broker.ws, '-t', self.topic(),
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

    def test_bench_refuses_ws(self):
        r = petrel('bench', '-L', 'ws://127.0.0.1:%d/mqtt' % self.broker.ws)
        self.assertEqual(r.returncode, EXIT_USAGE, r.stderr)
        self.assertIn('not supported by bench', r.stderr)


if __name__ == '__main__':
    ct.unittest.main()
