"""Several petreld nodes as one broker over NATS (broker/cluster.c): routing
(QoS 0 over core NATS, QoS 1/2 through JetStream: test_cluster_js.py has
its faults).

One nats-server with JetStream on a free loopback port and three petreld
nodes with
cluster_nats.  Checked: a message published on one node reaches the
matching subscribers of the others, at QoS 0, 1 and 2, once each (no echo
back to its own node, no second copy through overlapping subscriptions);
wildcards and '#' with its parent level; MQTT 5.0 properties; wills; the
NATS subscriptions follow the local ones; a native NATS client (libnats)
reads what MQTT clients published and publishes what they receive; hostile
NATS messages are dropped and counted; a node reconnects after its NATS
server restarts."""

import base64
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import mqttraw  # noqa: E402
from nats_helpers import ClusterNodes, cluster_test, NatsServer  # noqa: E402
from petreltest import free_port, track  # noqa: E402

PROBE = os.environ.get('NATS_PROBE', '')


def probe(*args, timeout=15):
    return subprocess.run([PROBE] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout)


@cluster_test
class Cluster(ClusterNodes, harness.BrokerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.nats = NatsServer().start()

        def wait(b):
            b.wait_log('cluster: node n[0-9] connected to NATS', timeout=10)
            b.wait_log('cluster: JetStream stream', timeout=20)  # QoS 1/2 cross nodes
        # Nodes 2 and 3 get a list whose other server is down: it is skipped.
        cls.start_nodes(lambda i: cls.nats.url if i == 1 else '%s,nats://127.0.0.1:%d'
                        % (cls.nats.url, free_port()), wait)

    # ---- helpers
    def client(self, node, client_id='', **kw):
        c = self.raw(node.port)
        c.connect(client_id, **kw)
        return c

    def until_routed(self, pub_node, sub, topic, timeout=10.0):
        """Publishes markers on pub_node until `sub` (subscribed to `topic`
        on another node) receives one: the other node's NATS subscription
        is then in force.  Drains the markers."""
        p = self.client(pub_node)
        deadline = time.monotonic() + timeout
        while True:
            self.assertLess(time.monotonic(), deadline, 'no route to the other node for %s' % topic)
            p.publish(topic, b'marker', qos=0)
            try:
                m = sub.expect_publish(timeout=0.2)
                if m.payload == b'marker':
                    break
            except mqttraw.Timeout:
                continue
        p.disconnect()
        while True:  # markers still on their way
            try:
                sub.expect_publish(timeout=0.3)
            except mqttraw.Timeout:
                break

    def counter(self, node, name, at_least=None, timeout=5.0):
        return self.sys_value(node, '$SYS/broker/cluster/' + name, at_least, timeout)

    # ---- tests
    def test_cross_node_each_qos(self):
        n1, n2 = self.nodes[0], self.nodes[1]
        topic = self.topic('q')
        for qos in (0, 1, 2):
            sub = self.client(n2)
            sub.subscribe([(topic, qos)], expect_granted=[qos])
            self.until_routed(n1, sub, topic)
            pub = self.client(n1)
            got = []
            for i in range(20):
                pub.publish(topic, b'q%d-%d' % (qos, i), qos=qos)
                if qos == 2:  # the raw client completes one QoS 2 flow at a time
                    got.append(sub.expect_publish(timeout=5))
            got += [sub.expect_publish(timeout=5) for _ in range(20 - len(got))]
            self.assertEqual([m.payload for m in got], [b'q%d-%d' % (qos, i) for i in range(20)])
            self.assertEqual({m.qos for m in got}, {qos})
            sub.expect_nothing(0.5)
            pub.disconnect()
            sub.disconnect()

    def test_mosquitto_clients_across_nodes(self):
        n1, n3 = self.nodes[0], self.nodes[2]
        topic = self.topic('mosq')
        s = self.mosquitto_sub(topic, port=n3.port, qos=1).wait_subscribed()
        deadline = time.monotonic() + 10
        got = None
        while got is None and time.monotonic() < deadline:
            self.mosquitto_pub(topic, 'hello-from-n1', port=n1.port, qos=1)
            try:
                got = s.get(timeout=0.5)
            except AssertionError:
                pass
        self.assertIsNotNone(got, 'mosquitto_sub on n3 got nothing from n1')
        self.assertEqual(got[2:], (topic, 'hello-from-n1'))

    def test_wildcards_and_parent_level(self):
        n1, n2, n3 = self.nodes
        base = self.topic('w')
        sub = self.client(n1)
        sub.subscribe([(base + '/#', 1)])
        self.until_routed(n2, sub, base + '/x')
        sent = []
        for node, t in ((n2, base + '/a/b'), (n3, base + '/c'), (n2, base), (n3, base + '/d.e')):
            p = self.client(node)
            deadline = time.monotonic() + 10
            while True:  # n3's first message may beat n1's interest there
                p.publish(t, t.encode(), qos=1)
                try:
                    m = sub.expect_publish(timeout=0.5)
                    break
                except mqttraw.Timeout:
                    self.assertLess(time.monotonic(), deadline, 'nothing for ' + t)
            sent.append(t)
            self.assertEqual((m.topic, m.payload), (t, t.encode()))
            p.disconnect()

    def test_once_each_no_echo_no_duplicates(self):
        n1, n2 = self.nodes[0], self.nodes[1]
        base = self.topic('dup')
        local = self.client(n1)
        local.subscribe([(base + '/#', 0)])
        a = self.client(n2)
        a.subscribe([(base + '/#', 0)])
        b = self.client(n2)
        b.subscribe([(base + '/+', 0)])
        both = self.client(n2)
        both.subscribe([(base + '/#', 0), (base + '/+', 0)])
        for s in (a, b, both):
            self.until_routed(n1, s, base + '/m')
        for s in (local, a, b, both):  # markers sent for one reached all
            while True:
                try:
                    s.expect_publish(timeout=0.3)
                except mqttraw.Timeout:
                    break
        dups = self.counter(n2, 'messages/duplicates') or 0
        pub = self.client(n1)
        for i in range(10):  # QoS 0: over core NATS, one subscription per filter
            pub.publish(base + '/x', b'%d' % i, qos=0)
        for c in (local, a, b, both):
            got = [c.expect_publish(timeout=5).payload for _ in range(10)]
            self.assertEqual(got, [b'%d' % i for i in range(10)])
            c.expect_nothing(0.7)
        # n2 holds two NATS subscriptions that both match: it saw copies.
        self.assertGreaterEqual(self.counter(n2, 'messages/duplicates', at_least=dups + 10),
                                dups + 10)

    def test_properties_cross(self):
        n1, n3 = self.nodes[0], self.nodes[2]
        topic = self.topic('props')
        sub = mqttraw.Raw5(n3.port)
        self._clients.append(sub)
        sub.connect5('')
        sub.subscribe5([(topic, 1)])
        p = mqttraw.Raw5(n1.port)
        self._clients.append(p)
        p.connect5('')
        deadline = time.monotonic() + 10
        while True:
            p.publish5(topic, b'warm', qos=0)
            try:
                sub.expect_publish5(timeout=0.3)
                break
            except mqttraw.Timeout:
                self.assertLess(time.monotonic(), deadline)
        while True:
            try:
                sub.expect_publish5(timeout=0.3)
            except mqttraw.Timeout:
                break
        props = [(mqttraw.P_CONTENT_TYPE, 'text/plain'),
                 (mqttraw.P_USER_PROPERTY, ('k1', 'v1')),
                 (mqttraw.P_USER_PROPERTY, ('k2', 'v2')),
                 (mqttraw.P_RESPONSE_TOPIC, 'resp/x'),
                 (mqttraw.P_CORRELATION_DATA, b'\x00\x01'),
                 (mqttraw.P_MESSAGE_EXPIRY, 300)]
        p.publish5(topic, b'with-props', qos=1, props=props)
        m = sub.expect_publish5(timeout=5)
        self.assertEqual(m.payload, b'with-props')
        self.assertEqual(m.prop(mqttraw.P_CONTENT_TYPE), 'text/plain')
        self.assertEqual(m.all(mqttraw.P_USER_PROPERTY), [('k1', 'v1'), ('k2', 'v2')])
        self.assertEqual(m.prop(mqttraw.P_RESPONSE_TOPIC), 'resp/x')
        self.assertEqual(m.prop(mqttraw.P_CORRELATION_DATA), b'\x00\x01')
        self.assertTrue(0 < m.prop(mqttraw.P_MESSAGE_EXPIRY) <= 300)
        # Large properties cross too (their header is 4/3 their size).
        big = 'v' * 6000
        p.publish5(topic, b'big-props', qos=1, props=[(mqttraw.P_USER_PROPERTY, ('big', big))])
        m = sub.expect_publish5(timeout=5)
        self.assertEqual((m.payload, m.all(mqttraw.P_USER_PROPERTY)), (b'big-props', [('big', big)]))

    def test_bench_across_nodes(self):
        """petrel bench with its subscribers on another node (--sub-port):
        every QoS 1 message of a 2,000-message burst arrives, once."""
        n1, n2 = self.nodes[0], self.nodes[1]
        topic = self.topic('bench')
        sub = self.client(n2)  # warm the route for the bench's filter
        sub.subscribe([(topic + '/#', 0)])
        self.until_routed(n1, sub, topic + '/warm')
        r = subprocess.run([os.environ.get('PETREL', 'petrel'), 'bench', '-p', str(n1.port),
                            '--sub-port', str(n2.port), '--no-progress', '-q', '1', '-n', '2000',
                            '-t', topic + '/%p', '-T', topic + '/#', '-w', '100'],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn('expected 2000, delivered 2000, lost 0', r.stdout)
        self.assertIn('duplicates 0', r.stdout)

    def test_will_reaches_other_nodes(self):
        n1, n2 = self.nodes[0], self.nodes[1]
        topic = self.topic('will')
        sub = self.client(n2)
        sub.subscribe([(topic, 1)])
        self.until_routed(n1, sub, topic)
        dying = self.raw(n1.port)
        dying.connect('dying-%d' % os.getpid(), will=(topic, b'gone', 1, False))
        dying.close()  # no DISCONNECT: the will goes out
        m = sub.expect_publish(timeout=5)
        self.assertEqual((m.topic, m.payload), (topic, b'gone'))

    def test_nats_interest_follows_subscriptions(self):
        n3 = self.nodes[2]
        # Earlier tests' clients may still be leaving: wait for a steady value.
        before, deadline = None, time.monotonic() + 10
        while True:
            v = self.counter(n3, 'subjects')
            if v == before:
                break
            self.assertLess(time.monotonic(), deadline, 'subjects never steady')
            before = v
            time.sleep(1.1)
        c = self.client(n3)
        c.subscribe([(self.topic('i/#'), 0), (self.topic('j'), 0)])
        # "i/#" needs two subjects (i.> and i), "j" one.
        self.assertEqual(self.counter(n3, 'subjects', at_least=before + 3), before + 3)
        c2 = self.client(n3)
        c2.subscribe([(self.topic('j'), 0)])  # a second local subscriber: no new subject
        c.unsubscribe([self.topic('i/#')])
        c.unsubscribe([self.topic('j')])
        time.sleep(1.2)
        self.assertEqual(self.counter(n3, 'subjects'), before + 1)
        c2.disconnect()
        deadline = time.monotonic() + 5
        while self.counter(n3, 'subjects') != before:
            self.assertLess(time.monotonic(), deadline, 'subjects not dropped')
            time.sleep(0.3)

    @unittest.skipUnless(PROBE, 'NATS_PROBE not set (run through meson)')
    def test_native_nats_client_reads_and_writes(self):
        n1, n2 = self.nodes[0], self.nodes[1]
        # MQTT -> NATS: the subject is the mapped topic under the prefix.
        reader = track(subprocess.Popen(
            [PROBE, self.nats.url, 'sub', 'petrel.native.>', '1', '10000'],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL))
        self.assertEqual(reader.stdout.readline().strip(), b'ready')
        # n1 forwards only what some node wants: a subscriber on n2 for it.
        sub = self.client(n2)
        sub.subscribe([('native/#', 1)])
        self.until_routed(n1, sub, 'native/warm')
        # (the probe got a warm-up marker first: start a fresh one)
        reader.kill()
        reader.wait()
        # QoS 0 on the core subject, QoS 1/2 on the JetStream stream's.
        for qos, subject in ((0, 'petrel.native.x//y.z'), (1, 'petrel-js.native.x//y.z')):
            reader = track(subprocess.Popen(
                [PROBE, self.nats.url, 'sub', subject, '1', '10000'],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL))
            self.assertEqual(reader.stdout.readline().strip(), b'ready')
            self.mosquitto_pub('native/x.y/z', 'to-nats', port=n1.port, qos=qos)
            out, err = reader.communicate(timeout=15)
            self.assertEqual(reader.returncode, 0, err)
            got = out.decode().rstrip('\n').split('\t')
            self.assertEqual(tuple(got), (subject, str(qos), 'to-nats'))
            sub.expect_publish(timeout=5)
        # NATS -> MQTT: a native publish reaches the MQTT subscriber on n2.
        r = probe(self.nats.url, 'pub', 'petrel.native.from//nats', 'hi-mqtt', 'Nmqtt-Pub=1')
        self.assertEqual(r.returncode, 0, r.stderr)
        m = sub.expect_publish(timeout=5)
        self.assertEqual((m.topic, m.payload, m.qos), ('native/from.nats', b'hi-mqtt', 1))

    @unittest.skipUnless(PROBE, 'NATS_PROBE not set (run through meson)')
    def test_hostile_nats_messages_are_dropped(self):
        n2 = self.nodes[1]
        sub = self.client(n2)
        sub.subscribe([('hostile/#', 1)])
        self.until_routed(self.nodes[0], sub, 'hostile/warm')
        dropped = self.counter(n2, 'messages/dropped') or 0
        bad = [
            ('petrel.hostile.a+b', []),                        # '+' in a topic name
            ('petrel.hostile.p', ['Petrel-Props=!!!!']),        # not base64
            ('petrel.hostile.p', ['Petrel-Props=' + base64.b64encode(b'\xff\x01').decode()]),
            ('petrel.hostile.p', ['Petrel-Props=' + base64.b64encode(
                b'\x26\x00\x05k').decode()]),                  # truncated user property
            ('petrel.hostile.p', ['Petrel-Props=' + base64.b64encode(
                b'\x03\x00\x02\xc3\x28').decode()]),           # content type not UTF-8
        ]
        for subject, hdrs in bad:
            r = probe(self.nats.url, 'pub', subject, 'evil', *hdrs)
            self.assertEqual(r.returncode, 0, r.stderr)
        sub.expect_nothing(1.0)
        self.assertGreaterEqual(self.counter(n2, 'messages/dropped', at_least=dropped + len(bad)),
                                dropped + len(bad))
        # A QoS header out of range is read as QoS 0, not trusted.
        r = probe(self.nats.url, 'pub', 'petrel.hostile.q', 'odd-qos', 'Nmqtt-Pub=7')
        self.assertEqual(r.returncode, 0, r.stderr)
        m = sub.expect_publish(timeout=5)
        self.assertEqual((m.topic, m.payload, m.qos), ('hostile/q', b'odd-qos', 0))
        # And the node still routes.
        self.until_routed(self.nodes[2], sub, 'hostile/after')

    @unittest.skipUnless(PROBE, 'NATS_PROBE not set (run through meson)')
    def test_retained_stream_native_and_hostile(self):
        """A native NATS publish into the retained stream is a retained
        value on every node; one that is no valid topic is dropped."""
        for subject in ('petrel-retained.native.ret.a+b', 'petrel-retained.native.ret.ok'):
            r = probe(self.nats.url, 'pub', subject, 'native-value')
            self.assertEqual(r.returncode, 0, r.stderr)
        for node in self.nodes:
            deadline = time.monotonic() + 10
            got = None
            while got is None and time.monotonic() < deadline:
                c = self.client(node)
                c.subscribe([('native/ret/#', 0)])
                try:
                    got = c.expect_publish(timeout=0.5)
                except AssertionError:
                    c.disconnect()
            self.assertIsNotNone(got, 'no retained value on %s' % node.settings['node_name'])
            self.assertEqual((got.topic, got.payload, got.retain),
                             ('native/ret/ok', b'native-value', True))
            c.expect_nothing(0.3)
            c.disconnect()


@cluster_test
class Reconnect(harness.OwnBrokers, harness.BrokerTestCase):

    def test_node_reconnects_after_nats_restarts(self):
        nats = NatsServer().start()
        self.addCleanup(nats.remove)
        settings = {'cluster_nats': nats.url, 'sys_interval': 1}
        n1 = self.start_broker(dict(settings, node_name='r1'))
        n2 = self.start_broker(dict(settings, node_name='r2'))
        for b in (n1, n2):
            b.wait_log('connected to NATS', timeout=10)
        sub = self.raw(n2.port)
        sub.connect('')
        sub.subscribe([('re/#', 0)])
        pub = self.raw(n1.port)
        pub.connect('')

        def routed(timeout):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                pub.publish('re/x', b'ping', qos=0)
                try:
                    sub.expect_publish(timeout=0.3)
                    return True
                except mqttraw.Timeout:
                    pass
            return False

        self.assertTrue(routed(10))
        nats.stop()
        n1.wait_log('lost its NATS connection', timeout=10)
        # Meanwhile the nodes serve their own clients.
        local = self.raw(n1.port)
        local.connect('')
        local.subscribe([('re/local', 0)])
        pub.publish('re/local', b'still', qos=1)
        self.assertEqual(local.expect_publish(timeout=5).payload, b'still')
        nats.start()
        self.assertTrue(routed(20), 'no route after the NATS server came back')
        self.assertGreaterEqual(self.sys_value(n2, '$SYS/broker/cluster/reconnects', at_least=1), 1)


if __name__ == '__main__':
    unittest.main(verbosity=2)
