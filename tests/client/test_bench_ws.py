"""test_bench_ws.py - `petrel bench` over WebSocket against petreld's ws
and wss listeners: -L ws://HOST:PORT/PATH, --ws/--ws-path and wss:// with
the test CA; every mode (QoS 0, 1 and 2 with exact counts, the open-loop
--rate schedule, --persistent sessions kept across two runs), payloads
larger than a read so that frames cross reads, the report naming the
transport, and a wrong path failing the run.  The broker is
test_websocket.py's."""

import os

import clienttest as ct
import test_websocket  # its broker class (a module import: its tests stay its own)

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def bench(*args, timeout=60):
    return ct.run([ct.PETREL, 'bench', '--no-progress', '--timeout', '5'] +
                  [str(a) for a in args], timeout=timeout)


class BenchOverWebSocket(test_websocket.WebSocketBroker):

    def url(self):
        return ('-L', 'ws://127.0.0.1:%d/mqtt' % self.ws)

    def topics(self):
        name = self._testMethodName
        return ('-t', 'bw/%s/%%p' % name, '-T', 'bw/%s/#' % name)

    def run_ok(self, *args):
        r = bench(*args, '--json')
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        return ct.bench_report(r)

    def check_counts(self, d, qos, sent, subs):
        pub, rec, dl = d['published'], d['received'], d['delivery']
        self.assertEqual(dl['qos'], qos)
        self.assertEqual(pub['sent'], sent)
        if qos:
            self.assertEqual(pub['accepted'], sent)
        self.assertEqual(dl['expected'], subs * sent)
        self.assertEqual(dl['delivered'], subs * sent, dl)
        self.assertEqual(rec['unique'], subs * sent)
        self.assertEqual((dl['lost'], dl['duplicates']), (0, 0), dl)

    def test_every_qos_counts_exactly(self):
        for qos in (0, 1, 2):
            d = self.run_ok(*self.url(), '--pubs', 2, '--subs', 2, '-q', qos, '-n', 300,
                            *self.topics())
            self.assertEqual(d['websocket'], '/mqtt')
            self.assertEqual(d['connections']['connected'], 4)
            self.check_counts(d, qos, 600, 2)

    def test_flags_and_other_path(self):
        d = self.run_ok('--ws', '--ws-path', '/other', '-h', '127.0.0.1', '-p', self.ws_other,
                        '-q', 1, '-n', 200, *self.topics())
        self.assertEqual(d['websocket'], '/other')
        self.check_counts(d, 1, 200, 1)

    def test_open_loop_rate(self):
        d = self.run_ok(*self.url(), '--pubs', 2, '--subs', 1, '-q', 1, '-r', 1000, '-D', 2,
                        *self.topics())
        s = d['schedule']
        self.assertEqual(s['offered_per_sec'], 1000)
        self.assertLessEqual(s['behind'], 50, s)
        self.assertAlmostEqual(s['sent_per_sec'], 1000, delta=150)
        self.assertEqual(d['delivery']['delivered'], d['published']['sent'])
        self.assertEqual(d['delivery']['acked_lost'], 0)

    def test_persistent_sessions_over_ws(self):
        sid = 'bw-persist-%d' % os.getpid()
        args = self.url() + ('--pubs', 1, '--subs', 2, '-q', 1, '-n', 300, '--persistent',
                             '-i', sid) + self.topics()
        d = self.run_ok(*args)
        self.assertEqual(d['connections']['sessions_present'], 0)
        self.check_counts(d, 1, 300, 2)
        d = self.run_ok(*args)
        self.assertEqual(d['connections']['sessions_present'], 2)
        self.check_counts(d, 1, 300, 2)

    def test_large_payloads_cross_reads(self):
        # 200 kB messages: every frame spans many reads on both sides.
        d = self.run_ok(*self.url(), '-q', 1, '-s', 200000, '-n', 40, *self.topics())
        self.check_counts(d, 1, 40, 1)
        self.assertEqual(d['config']['payload'], 200000)

    def test_wss(self):
        d = self.run_ok('-L', 'wss://localhost:%d/mqtt' % self.wss, '--cafile', self.certs.ca,
                        '--pubs', 1, '--subs', 1, '-q', 2, '-n', 200, *self.topics())
        self.assertTrue(d['tls']['enabled'])
        self.assertEqual(d['websocket'], '/mqtt')
        self.check_counts(d, 2, 200, 1)

    def test_text_report_says_websocket(self):
        r = bench(*self.url(), '-q', 0, '-n', 50, *self.topics())
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertIn('(WebSocket)', r.stdout)

    def test_wrong_path_fails_the_run(self):
        r = bench('-L', 'ws://127.0.0.1:%d/nope' % self.ws, '-q', 0, '-n', 10, *self.topics())
        self.assertNotEqual(r.returncode, EXIT_OK, r.stdout)
        self.assertIn('WebSocket upgrade was refused', r.stderr)

    def test_plain_mqtt_bench_on_tcp_still_works(self):
        d = self.run_ok('-h', '127.0.0.1', '-p', self.broker.port, '-q', 1, '-n', 100,
                        *self.topics())
        self.assertIsNone(d['websocket'])
        self.check_counts(d, 1, 100, 1)


if __name__ == '__main__':
    ct.unittest.main()
