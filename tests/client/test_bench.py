"""test_bench.py - `petrel bench` as a measuring tool: the open-loop --rate
keeps its schedule (offered = achieved at a modest rate), --persistent
subscribers keep their sessions and get every message, the JSON counts are
consistent, --sub-rate holds a subscriber to its pace, and messages a broker
acknowledged but never delivered are found, reported and fail the run.  The
last two use a small fake MQTT broker in this file, which can be told to
acknowledge a PUBLISH and drop it, or to flood a subscriber."""

import os
import socket
import socketserver
import struct
import threading

import clienttest as ct

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def bench(port, *args, timeout=30):
    return ct.run([ct.PETREL, 'bench', '-h', '127.0.0.1', '-p', str(port), '--no-progress',
                   '--timeout', '5'] + [str(a) for a in args], timeout=timeout)


report = ct.bench_report


# ------------------------------------------------------------ a fake broker

def _remaining_length(n):
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _packet(first, body):
    return bytes([first]) + _remaining_length(len(body)) + body


class FakeBroker(socketserver.ThreadingTCPServer):
    """Just enough MQTT 3.1.1 for petrel bench: CONNECT, SUBSCRIBE, PUBLISH
    at QoS 0/1, PINGREQ, DISCONNECT.  policy(n) says, for the n-th PUBLISH
    received (from 0), whether to acknowledge it and whether to deliver
    it; flood: QoS 0 messages pushed to each new subscriber at once."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, policy=lambda n: (True, True), flood=0):
        super().__init__(('127.0.0.1', 0), _FakeConn)
        self.policy, self.flood = policy, flood
        self.lock = threading.Lock()
        self.subs = []          # (connection, filter)
        self.published = 0
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self):
        return self.server_address[1]

    def stop(self):
        self.shutdown()
        self.server_close()
        with self.lock:
            for c, _ in self.subs:
                c.close()


class _FakeConn(socketserver.BaseRequestHandler):

    def setup(self):
        self.request.settimeout(10)
        self.wlock = threading.Lock()
        self.next_pid = 0

    def send(self, data):
        with self.wlock:
            self.request.sendall(data)

    def close(self):
        try:
            self.request.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def read_exact(self, n):
        data = b''
        while len(data) < n:
            chunk = self.request.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def read_packet(self):
        first = self.read_exact(1)[0]
        length, mult = 0, 1
        while True:
            b = self.read_exact(1)[0]
            length += (b & 0x7f) * mult
            mult *= 128
            if not b & 0x80:
                break
        return first, self.read_exact(length)

    def handle(self):
        srv = self.server
        try:
            while True:
                first, body = self.read_packet()
                kind = first >> 4
                if kind == 1:                                   # CONNECT
                    self.send(b'\x20\x02\x00\x00')
                elif kind == 8:                                 # SUBSCRIBE
                    pid = body[:2]
                    flen = struct.unpack('>H', body[2:4])[0]
                    filt = body[4:4 + flen].decode()
                    qos = body[4 + flen]
                    with srv.lock:
                        srv.subs.append((self, filt))
                    self.send(_packet(0x90, pid + bytes([qos])))
                    for i in range(srv.flood):
                        self.deliver(filt.rstrip('#') + 'flood', b'x' * 64, 0)
                elif kind == 3:                                 # PUBLISH
                    qos = (first >> 1) & 3
                    tlen = struct.unpack('>H', body[:2])[0]
                    topic = body[2:2 + tlen].decode()
                    off = 2 + tlen
                    pid = body[off:off + 2] if qos else b''
                    payload = body[off + len(pid):]
                    with srv.lock:
                        n = srv.published
                        srv.published += 1
                        subs = list(srv.subs)
                    ack, deliver = srv.policy(n)
                    if deliver:
                        for conn, filt in subs:
                            if filt == topic or (filt.endswith('#')
                                                 and topic.startswith(filt[:-1])):
                                conn.deliver(topic, payload, qos)
                    if qos == 1 and ack:
                        self.send(_packet(0x40, pid))
                elif kind == 12:                                # PINGREQ
                    self.send(b'\xd0\x00')
                elif kind == 14:                                # DISCONNECT
                    return
                # PUBACK from a subscriber: nothing to do
        except (EOFError, OSError):
            return
        finally:
            with srv.lock:
                srv.subs = [(c, f) for c, f in srv.subs if c is not self]

    def deliver(self, topic, payload, qos):
        t = topic.encode()
        body = struct.pack('>H', len(t)) + t
        if qos:
            self.next_pid = self.next_pid % 65535 + 1
            body += struct.pack('>H', self.next_pid)
        try:
            self.send(_packet(0x30 | (qos << 1), body + payload))
        except OSError:
            pass


# ---------------------------------------------------------------- the tests

class BenchAgainstPetreld(ct.unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if not ct.have(ct.PETREL):
            raise ct.unittest.SkipTest('petrel not built')
        cls.broker = ct.Petreld().start()
        cls.port = cls.broker.port

    @classmethod
    def tearDownClass(cls):
        cls.broker.stop()

    def topics(self, pub='%p'):
        name = self._testMethodName
        return ('-t', 'tb/%s/%s' % (name, pub), '-T', 'tb/%s/#' % name)

    def test_open_loop_rate_is_kept(self):
        # 2,000 msg/s in all from 2 publishers for 2 s: a rate any broker
        # and any machine keep, so achieved = offered.
        r = bench(self.port, '--pubs', 2, '--subs', 1, '-q', 1, '-r', 2000, '-D', 2, '--json',
                  *self.topics())
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        d = report(r)
        c, s = d['config'], d['schedule']
        self.assertEqual(c['rate'], 2000)
        self.assertEqual(c['rate_per_pub'], 1000)
        self.assertTrue(c['open_loop'])
        self.assertEqual(s['offered_per_sec'], 2000)
        self.assertAlmostEqual(s['seconds'], 2.0, delta=0.3)
        self.assertAlmostEqual(s['due'], 4000, delta=400)
        self.assertLessEqual(s['behind'], 50, s)
        self.assertAlmostEqual(s['sent_per_sec'], 2000, delta=200)
        self.assertAlmostEqual(s['acked_per_sec'], 2000, delta=300)
        self.assertEqual(s['lag_us']['count'], d['published']['sent'])
        # Latency is counted for every message, from when it was due.
        self.assertEqual(d['latency_us']['count'], d['received']['unique'])
        self.assertEqual(d['latency_from_send_us']['count'], d['received']['unique'])
        self.assertGreaterEqual(d['latency_us']['max'], d['latency_from_send_us']['max'] - 1)
        self.assertEqual(d['delivery']['delivered'], d['published']['sent'])
        self.assertEqual(d['delivery']['acked_lost'], 0)

    def test_rate_per_publisher(self):
        r = bench(self.port, '--pubs', 3, '--subs', 1, '-q', 0, '--rate-per-pub', 100,
                  '-n', 20, '--json', *self.topics())
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        d = report(r)
        self.assertEqual(d['config']['rate'], 300)
        self.assertEqual(d['config']['rate_per_pub'], 100)
        self.assertEqual(d['received']['unique'], 60)
        r = bench(self.port, '-r', 10, '--rate-per-pub', 5)
        self.assertEqual(r.returncode, EXIT_USAGE)
        self.assertIn('--rate-per-pub', r.stderr)
        for bad in (('--sub-rate', 'x'), ('--drain-timeout', 0), ('--rate-per-pub', -1)):
            self.assertEqual(bench(self.port, *bad).returncode, EXIT_USAGE, bad)

    def test_persistent_subscribers_get_every_message_and_keep_their_session(self):
        sid = 'tb-persist-%d' % os.getpid()
        args = ('--pubs', 2, '--subs', 2, '-q', 1, '-n', 300, '--persistent', '-i', sid,
                '-w', 100, '--json') + self.topics()
        r = bench(self.port, *args)
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        d = report(r)
        self.assertTrue(d['config']['persistent'])
        self.assertEqual(d['connections']['sessions_present'], 0)
        dl = d['delivery']
        self.assertEqual((dl['published'], dl['acked'], dl['expected'], dl['delivered']),
                         (600, 600, 1200, 1200), dl)
        self.assertEqual((dl['lost'], dl['acked_lost'], dl['duplicates']), (0, 0, 0), dl)
        # Sent while the subscribers are away: kept in their sessions, and
        # told apart from this run's messages when they come back.
        p = ct.run([ct.PETREL, 'pub', '-h', '127.0.0.1', '-p', str(self.port), '-q', '1',
                    '-t', 'tb/%s/away' % self._testMethodName, '-m', 'kept'])
        self.assertEqual(p.returncode, 0, p.stderr)
        r = bench(self.port, *args)
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        d = report(r)
        self.assertEqual(d['connections']['sessions_present'], 2)
        self.assertEqual(d['received']['foreign'], 2)
        self.assertEqual(d['delivery']['delivered'], 1200)

    def test_json_counts_are_consistent(self):
        for qos in (0, 1, 2):
            r = bench(self.port, '--pubs', 2, '--subs', 3, '-q', qos, '-n', 200, '--json',
                      *self.topics())
            self.assertEqual(r.returncode, EXIT_OK, r.stderr)
            d = report(r)
            pub, rec, dl = d['published'], d['received'], d['delivery']
            self.assertEqual(dl['qos'], qos)
            self.assertEqual(pub['sent'], 400)
            self.assertEqual(dl['published'], pub['sent'])
            self.assertGreaterEqual(pub['sent'], dl['acked'])
            self.assertGreaterEqual(dl['acked'], pub['acked'] if qos else 0)
            if qos:
                self.assertEqual(pub['accepted'], 400)
            self.assertEqual(dl['expected'], 3 * pub['sent'])
            self.assertEqual(dl['delivered'], rec['unique'])
            self.assertEqual(dl['delivered'] + dl['lost'], dl['expected'])
            self.assertLessEqual(dl['acked_lost'], dl['lost'])
            self.assertEqual(dl['acked_lost'] + dl['unacked_lost'], dl['lost'])
            self.assertEqual(rec['acked_lost'], dl['acked_lost'])
            if qos:
                self.assertEqual((dl['lost'], dl['duplicates']), (0, 0), dl)

    def test_text_report_names_the_new_figures(self):
        r = bench(self.port, '--pubs', 1, '--subs', 1, '-q', 1, '-r', 1000, '-n', 200,
                  '--persistent', *self.topics())
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        for text in ('open loop', 'persistent subscribers', 'acknowledged but never delivered 0',
                     'offered 1000 msg/s', 'send lag', 'from send'):
            self.assertIn(text, r.stdout)


class BenchAgainstFakeBroker(ct.unittest.TestCase):

    def setUp(self):
        if not ct.have(ct.PETREL):
            raise ct.unittest.SkipTest('petrel not built')
        self.fake = None

    def tearDown(self):
        if self.fake:
            self.fake.stop()

    def test_acknowledged_but_undelivered_is_found(self):
        # Of every ten: the 4th acknowledged and dropped, the 8th neither
        # acknowledged nor delivered (lost, but no promise broken).
        self.fake = FakeBroker(policy=lambda n: {3: (True, False),
                                                 7: (False, False)}.get(n % 10, (True, True)))
        args = ('--pubs', 1, '--subs', 1, '-q', 1, '-n', 100, '-w', 1000, '--drain-timeout', 1,
                '-t', 'fk/x', '-T', 'fk/x')
        r = bench(self.fake.port, '--json', *args)
        self.assertEqual(r.returncode, EXIT_FAILURE, r.stdout + r.stderr)
        d = report(r)
        dl = d['delivery']
        self.assertEqual((dl['published'], dl['acked'], dl['delivered']), (100, 90, 80), dl)
        self.assertEqual((dl['lost'], dl['acked_lost'], dl['unacked_lost']), (20, 10, 10), dl)
        self.assertEqual(d['published']['unacked'], 10)
        self.assertTrue(d['stalled'])
        self.assertEqual(d['exit_status'], EXIT_FAILURE)
        r = bench(self.fake.port, '--allow-loss', *args)
        self.assertEqual(r.returncode, EXIT_OK, r.stdout + r.stderr)
        self.assertIn('acknowledged but never delivered 10', r.stdout)
        self.assertIn('LOSS', r.stdout)

    def test_only_acknowledged_loss_fails_a_run(self):
        # Everything acknowledged, one message in 50 dropped.
        self.fake = FakeBroker(policy=lambda n: (True, n % 50 != 49))
        r = bench(self.fake.port, '--pubs', 2, '--subs', 1, '-q', 1, '-n', 100,
                  '--drain-timeout', 1, '--json', '-t', 'fk/%p', '-T', 'fk/#')
        self.assertEqual(r.returncode, EXIT_FAILURE)
        d = report(r)
        self.assertEqual(d['delivery']['acked_lost'], 4)
        self.assertEqual(d['published']['unacked'], 0)

    def test_sub_rate_holds_the_subscriber_to_its_pace(self):
        # 3,000 messages are there at once; a subscriber at 500 msg/s
        # takes about 1,000 of them in 2 s.
        self.fake = FakeBroker(flood=3000)
        r = bench(self.fake.port, '--pubs', 0, '--subs', 1, '-q', 0, '-D', 2,
                  '--sub-rate', 500, '--json', '-T', 'fl/#')
        self.assertEqual(r.returncode, EXIT_OK, r.stdout + r.stderr)
        d = report(r)
        self.assertEqual(d['config']['sub_rate'], 500)
        self.assertGreater(d['received']['messages'], 700, d['received'])
        self.assertLess(d['received']['messages'], 1200, d['received'])


if __name__ == '__main__':
    ct.main()
