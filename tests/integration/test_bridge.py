"""Bridges between two petreld brokers (docs/bridges.md): the local broker A
has a bridge to the remote B.  QoS 0/1/2 in both directions with topic
prefixes, retained messages and their clearing, a two-way bridge on
overlapping topics (each message once on each side), the state topics on
both sides, the reserved client ids, the queue kept while the remote is
down and drained in order after it restarts, and SIGHUP adding and removing
a bridge without touching the other."""

import os
import signal
import time
import unittest

import harness
from bridge_helpers import (BridgedBroker, HttpBridgedBroker, assert_once_each_side,
                            bridge_section, bridged_to_remote, collect_numbers, persistent_sub,
                            wait_connects)
from harness import free_port


def paho(port, client_id='', clean=True):
    c = harness.PahoClient(port, client_id=client_id, clean_session=clean)
    c.connect()
    return c


class PetreldToPetreld(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.b_port = free_port()
        cls.B = harness.Broker({'listen': '127.0.0.1:%d' % cls.b_port}).start()
        rules = ['out s/# qos=2 remote_prefix=site/',
                 'in c/# qos=2 local_prefix=cmd/',
                 'out both/# qos=1',
                 'in both/# qos=1']
        cls.A = BridgedBroker([bridge_section('edge', cls.b_port, rules,
                                              notification_topic='bridges/edge/state',
                                              client_id='edge-1')]).start()
        if not cls.A.wait_bridge('edge'):
            raise AssertionError('bridge did not connect\n' + cls.A.tail())
        cls.clients = []

    @classmethod
    def tearDownClass(cls):
        cls.A.stop()
        cls.B.stop()

    def tearDown(self):
        for c in self.clients:
            c.close()
        self.clients = []
        self.assertTrue(self.A.alive() and self.B.alive(), 'a broker died\n' + self.A.tail())

    def client(self, port, **kw):
        c = paho(port, **kw)
        self.clients.append(c)
        return c

    def each_qos(self, pub, sub, topic, arrives_on):
        """Publishes at QoS 0, 1, 2 on topic+N; each must arrive on
        arrives_on+N with its payload and QoS."""
        for qos in (0, 1, 2):
            pub.publish('%sq%d' % (topic, qos), b'hello %d' % qos, qos=qos)
            m = sub.get(5)
            self.assertEqual((m.topic, m.payload, m.qos), ('%sq%d' % (arrives_on, qos),
                                                            b'hello %d' % qos, qos))

    def test_out_each_qos_with_prefix(self):
        sub = self.client(self.b_port)
        sub.subscribe('site/s/out/#', 2)
        pub = self.client(self.A.port)
        self.each_qos(pub, sub, 's/out/', 'site/s/out/')
        # Not matching any out rule: stays local.
        pub.publish('other/x', b'no', qos=1)
        sub2 = self.client(self.b_port)
        sub2.subscribe('other/#', 1)
        sub2.subscribe('site/other/#', 1)
        pub.publish('other/y', b'no', qos=1)
        sub2.expect_nothing(1.0)

    def test_in_each_qos_with_prefix(self):
        sub = self.client(self.A.port)
        sub.subscribe('cmd/c/in/#', 2)
        pub = self.client(self.b_port)
        self.each_qos(pub, sub, 'c/in/', 'cmd/c/in/')
        # The remote's prefix-less topic is not under the in rule.
        pub.publish('cmd/c/in/x', b'no', qos=1)
        sub.expect_nothing(1.0)

    def test_retained_crosses_and_clears(self):
        pub = self.client(self.A.port)
        pub.publish('s/ret/a', b'kept', qos=1, retain=True)
        deadline = time.monotonic() + 5
        got = None
        while time.monotonic() < deadline:
            late = paho(self.b_port)
            late.subscribe('site/s/ret/a', 1)
            try:
                got = late.get(0.5)
            except AssertionError:
                got = None
            late.close()
            if got is not None:
                break
        self.assertIsNotNone(got, 'the retained message did not reach the remote')
        self.assertEqual((got.payload, got.retain), (b'kept', 1))
        pub.publish('s/ret/a', b'', qos=1, retain=True)
        time.sleep(0.5)
        late = self.client(self.b_port)
        late.subscribe('site/s/ret/a', 1)
        late.expect_nothing(1.0)

    def test_two_way_overlapping_topics_once_each_side(self):
        sa = self.client(self.A.port)
        sa.subscribe('both/#', 1)
        sb = self.client(self.b_port)
        sb.subscribe('both/#', 1)
        pa = self.client(self.A.port)
        pb = self.client(self.b_port)
        for i in range(5):
            pa.publish('both/from-a', b'a%d' % i, qos=1)
            pb.publish('both/from-b', b'b%d' % i, qos=1)
        # once each, no echo coming back over the bridge
        assert_once_each_side(self, (sa, sb), [b'a%d' % i for i in range(5)] +
                              [b'b%d' % i for i in range(5)])

    def test_state_topics(self):
        sa = self.client(self.A.port)
        sa.subscribe('$SYS/broker/bridges/edge/state', 0)
        m = sa.get(5)
        self.assertEqual((m.payload, m.retain), (b'connected', 1))
        sb = self.client(self.b_port)
        sb.subscribe('bridges/edge/state', 1)
        m = sb.get(5)
        self.assertEqual((m.payload, m.retain), (b'1', 1))

    def test_bridge_client_ids_are_reserved(self):
        for cid in ('$bridge/edge', '$bridge/other'):
            c = harness.PahoClient(self.A.port, client_id=cid, clean_session=False)
            c.connect(expect_rc=2)
            c.close()
        # The bridge itself was not disturbed.
        sb = self.client(self.b_port)
        sb.subscribe('site/s/still/#', 1)
        self.client(self.A.port).publish('s/still/x', b'ok', qos=1)
        self.assertEqual(sb.get(5).payload, b'ok')


class TwoWay311(unittest.TestCase):
    """A 3.1.1 bridge has no No Local: it sets Mosquitto's bridge flag
    (level 0x84), and petreld as the remote then does not send it back its
    own messages.  Without that a two-way bridge would echo each message."""

    def test_bridge_flag_stops_the_echo(self):
        A, B, b_port = bridged_to_remote(self, 'v3', ['out t/# qos=1', 'in t/# qos=1'],
                                         protocol='3.1.1')
        sa, sb = paho(A.port), paho(b_port)
        sa.subscribe('t/#', 1)
        sb.subscribe('t/#', 1)
        pa, pb = paho(A.port), paho(b_port)
        pa.publish('t/a', b'from-a', qos=1)
        pb.publish('t/b', b'from-b', qos=1)
        assert_once_each_side(self, (sa, sb), [b'from-a', b'from-b'])
        for c in (sa, sb, pa, pb):
            c.close()


class TwoBridgesLoop(unittest.TestCase):
    """Two petreld that each bridge their `loop/#` messages to the other:
    No Local cannot stop the echo (the bridges are different clients), the
    origin each message carries does.  Each message arrives once per side,
    and with the user properties of the origin and the hops."""

    def test_each_side_once(self):
        pa_port, pb_port = free_port(), free_port()
        A = BridgedBroker([bridge_section('toB', pb_port, ['out loop/# qos=1'])],
                          settings={'listen': '127.0.0.1:%d' % pa_port})
        B = BridgedBroker([bridge_section('toA', pa_port, ['out loop/# qos=1'])],
                          settings={'listen': '127.0.0.1:%d' % pb_port})
        A.start()
        B.start()
        try:
            self.assertTrue(A.wait_bridge('toB') and B.wait_bridge('toA'),
                            A.tail() + B.tail())
            sa, sb = paho(pa_port), paho(pb_port)
            sa.subscribe('loop/#', 1)
            sb.subscribe('loop/#', 1)
            pa, pb = paho(pa_port), paho(pb_port)
            for i in range(3):
                pa.publish('loop/a', b'a%d' % i, qos=1)
                pb.publish('loop/b', b'b%d' % i, qos=1)
            assert_once_each_side(self, (sa, sb), [b'a%d' % i for i in range(3)] +
                                  [b'b%d' % i for i in range(3)])
            for c in (sa, sb, pa, pb):
                c.close()
        finally:
            A.stop()
            B.stop()


class WithAcl(unittest.TestCase):
    """With an acl_file the bridge's local connection is user $bridge/NAME:
    here only that user may read what goes out and write what comes in."""

    def test_acl_user_of_the_bridge(self):
        b_port = free_port()
        B = harness.Broker({'listen': '127.0.0.1:%d' % b_port}).start()
        A = BridgedBroker([bridge_section('acl', b_port, ['out s/# qos=1', 'in c/# qos=1'])])
        acl = os.path.join(A.tmp, 'acl')
        with open(acl, 'w') as f:
            f.write('topic write s/#\ntopic read c/#\n'
                    'user $bridge/acl\ntopic read s/#\ntopic write c/#\n')
        A.settings['acl_file'] = acl
        A.start()
        try:
            self.assertTrue(A.wait_bridge('acl'), A.tail())
            sb, sa = paho(b_port), paho(A.port)
            sb.subscribe('s/#', 1)
            sa.subscribe('c/#', 1)
            pa, pb = paho(A.port), paho(b_port)
            pa.publish('s/1', b'out', qos=1)
            self.assertEqual(sb.get(5).payload, b'out')
            pb.publish('c/1', b'in', qos=1)
            self.assertEqual(sa.get(5).payload, b'in')
            for c in (sa, sb, pa, pb):
                c.close()
        finally:
            A.stop()
            B.stop()


class AddressesAndNames(unittest.TestCase):
    """Several addresses are tried in turn (the first refuses), a host name
    is resolved (evdns, from /etc/hosts for localhost), a bad section stops
    petreld with file:line, and --inspect shows the bridge's queue."""

    def test_failover_name_and_inspect(self):
        b_port, dead = free_port(), free_port()
        B = harness.Broker({'listen': '127.0.0.1:%d' % b_port}).start()
        sec = ('bridge fo\n    address = 127.0.0.1:%d, localhost:%d\n'
               '    reconnect_min = 1\n    out f/# qos=1\n' % (dead, b_port))
        A = BridgedBroker([sec]).start()
        try:
            self.assertTrue(A.wait_log(r'bridge fo: connected to localhost:%d' % b_port, 15),
                            A.tail())
            self.assertTrue(A.wait_log(r'bridge fo: 127\.0\.0\.1:%d: connection refused' % dead,
                                       1), A.tail())
            sb = paho(b_port)
            sb.subscribe('f/#', 1)
            pa = paho(A.port)
            pa.publish('f/1', b'via the second address', qos=1)
            self.assertEqual(sb.get(5).payload, b'via the second address')
            sb.close()
            B.stop(keep=True)
            self.assertTrue(A.wait_log(r'bridge fo: .*trying', 10), A.tail())
            for i in range(3):
                pa.publish('f/2', b'%d' % i, qos=1)
            pa.close()
            A.stop(keep=True)
            out = A.inspect()
            self.assertEqual(out.returncode, 0, out.stderr)
            # The bridge's session: its out rule, and the 3 waiting messages.
            self.assertRegex(out.stdout, r'session "\$bridge/fo" offline since \S+, never '
                             r'expires\n  subscription "f/#" qos 1\n  queue 3 messages')
            B.start()
        finally:
            A.stop()
            B.stop()

    def test_unresolvable_name_moves_on(self):
        # The lookup fails from the loop (NXDOMAIN, or a dead nameserver's
        # ~3 s), the next address is tried, and the failure is the status's
        # last error until then.
        b_port = free_port()
        B = harness.Broker({'listen': '127.0.0.1:%d' % b_port}).start()
        sec = ('bridge nx\n    address = no-such-host.invalid:%d, localhost:%d\n'
               '    out n/# qos=1\n' % (b_port, b_port))
        A = BridgedBroker([sec]).start()
        try:
            self.assertTrue(A.wait_log(r'bridge nx: cannot resolve no-such-host\.invalid', 10),
                            A.tail())
            self.assertTrue(A.wait_log(r'bridge nx: connected to localhost:%d' % b_port, 10),
                            A.tail())
        finally:
            A.stop()
            B.stop()

    def test_bad_section_stops_petreld(self):
        A = BridgedBroker(['bridge bad\n    address = 127.0.0.1:1\n    out a/#/b\n'])
        try:
            rc, log = A.run_to_exit()
            self.assertNotEqual(rc, 0)
            self.assertRegex(log, r'broker\.conf:\d+: out: .a/#/b. is not a valid topic filter')
        finally:
            A.remove()


class StatusSurfaces(unittest.TestCase):
    """State, queue depth, lag and last error of a bridge in the admin API,
    /metrics and $SYS, while its remote is down and after it is back."""

    def test_status_while_down_and_up(self):
        A, B, b_port = bridged_to_remote(self, 'st', ['out q/# qos=1'], local=HttpBridgedBroker,
                                         settings={'sys_interval': 1})
        # The bridge's local connection has no address: the log says so.
        self.assertTrue(A.wait_log(r'client \$bridge/st connected from in-process', 1),
                        A.tail())
        B.stop(keep=True)
        self.assertTrue(A.wait_log(r'bridge st: .*trying', 10), A.tail())
        pa = paho(A.port)
        for i in range(5):
            pa.publish('q/x', b'%d' % i, qos=1)
        j = A.get_json('/api/v1/bridges')
        self.assertEqual(len(j['bridges']), 1)
        st = j['bridges'][0]
        self.assertEqual(st['name'], 'st')
        self.assertNotEqual(st['state'], 'connected')
        self.assertEqual(st['queued'], 5)
        self.assertTrue(st['last_error'], st)
        self.assertEqual(st['remote'], '127.0.0.1:%d' % b_port)
        status, _, body = A.request('GET', '/metrics')
        self.assertEqual(status, 200)
        self.assertIn(b'petrel_bridge_up{bridge="st"} 0\n', body)
        self.assertIn(b'petrel_bridge_queued_messages{bridge="st"} 5\n', body)
        sa = paho(A.port)
        sa.subscribe('$SYS/broker/bridges/st/queued', 0)
        deadline = time.monotonic() + 5
        while True:
            m = sa.get(3)
            if m.payload == b'5' or time.monotonic() > deadline:
                break
        self.assertEqual(m.payload, b'5')
        sa.close()
        B.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            st = A.get_json('/api/v1/bridges')['bridges'][0]
            if st['state'] == 'connected' and st['queued'] == 0 and st['inflight'] == 0:
                break
            time.sleep(0.1)
        self.assertEqual((st['state'], st['queued'], st['inflight'], st['lag_ms']),
                         ('connected', 0, 0, 0), st)
        self.assertGreaterEqual(st['sent'], 5)
        self.assertEqual(st['connects'], 2)
        pa.close()


def publish_while_remote_down(test, A, B, name, sub_id, topic, n, window):
    """A persistent session `sub_id` on the remote B subscribed to the first
    level of `topic` and below; then B stopped, A's bridge `name` retrying,
    and n numbered QoS 1 messages published to A on `topic`.  Returns the
    publisher, closed."""
    persistent_sub(B.port, sub_id, topic.split('/')[0] + '/#')
    B.stop(keep=True)
    test.assertTrue(A.wait_log(r'bridge %s: .*trying' % name, 10), A.tail())
    pub = harness.PipelinedPublisher(A.port, topic, qos=1, window=window)
    pub.run(n)
    pub.close()
    return pub


class QueueBound(unittest.TestCase):
    """A bridge's own max_queued_messages bounds its queue while the remote
    is down (the offline policy, drop-new here, keeps the first ones)."""

    def test_bridge_queue_bound(self):
        A, B, b_port = bridged_to_remote(self, 'qb', ['out qb/# qos=1'], max_queued_messages=5,
                                         local=HttpBridgedBroker)
        publish_while_remote_down(self, A, B, 'qb', 'qb-sub', 'qb/n', 12, window=1)
        st = A.bridge_status('qb')
        self.assertEqual(st['queued'], 5, st)
        self.assertIsNotNone(A.wait_log(r'queue of an offline session full', 2), A.tail())
        B.start()
        self.assertEqual(collect_numbers(b_port, 'qb-sub', set(range(5))), list(range(5)))


class RemoteRestart(unittest.TestCase):
    """Messages acknowledged locally while the remote is down wait in the
    bridge's session and arrive, in order, after the remote is back - also
    when it is down for longer than session_expiry (the bridge's session
    does not expire)."""

    def test_queue_while_remote_down(self):
        A, B, b_port = bridged_to_remote(self, 'r', ['out q/# qos=1'],
                                         settings={'session_expiry': 1})
        pub = publish_while_remote_down(self, A, B, 'r', 'remote-sub', 'q/n', 200, window=10)
        self.assertEqual(len(pub.acked), 200)
        time.sleep(2.5)  # past session_expiry (expiry is checked each second)
        B.start()
        self.assertEqual(wait_connects(A, 'r', 2), 2, A.tail())
        self.assertEqual(collect_numbers(b_port, 'remote-sub', set(range(200))),
                         list(range(200)))


class Reload(unittest.TestCase):
    """SIGHUP adds a bridge and removes another; the one that did not
    change keeps its connection."""

    def test_sighup_adds_and_removes(self):
        b_port = free_port()
        B = harness.Broker({'listen': '127.0.0.1:%d' % b_port}).start()
        keep = bridge_section('keep', b_port, ['out k/# qos=1'])
        gone = bridge_section('gone', b_port, ['out g/# qos=1'])
        new = bridge_section('new', b_port, ['out n/# qos=1'])
        A = BridgedBroker([keep, gone]).start()
        try:
            self.assertTrue(A.wait_bridge('keep') and A.wait_bridge('gone'), A.tail())
            A.sections = [keep, new]
            A.rewrite()
            A.signal(signal.SIGHUP)
            self.assertTrue(A.wait_bridge('new'), A.tail())
            self.assertTrue(A.wait_log(r'SIGHUP: bridge gone removed', 5), A.tail())
            self.assertEqual(A.count_log(r'bridge keep: connected to'), 1)
            sb = paho(b_port)
            sb.subscribe('#', 1)
            pa = paho(A.port)
            for t in ('k/1', 'g/1', 'n/1'):
                pa.publish(t, b'x', qos=1)
            got = sorted(sb.get(5).topic for _ in range(2))
            self.assertEqual(got, ['k/1', 'n/1'])
            sb.expect_nothing(1.0)
            sb.close()
            pa.close()
        finally:
            A.stop()
            B.stop()


if __name__ == '__main__':
    unittest.main(verbosity=2)
