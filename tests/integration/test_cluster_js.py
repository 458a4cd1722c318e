"""QoS 1/2 between cluster nodes through JetStream (broker/cluster_outbox.c,
broker/cluster_stream.c), with faults.

A three-server NATS cluster with JetStream (routes on 127.0.0.1, free
ports) and three petreld nodes; n3 reaches NATS only through a TCP proxy
the test can cut.  Checked:
  - QoS 1 and 2 cross nodes with Paho and mosquitto_pub/sub; QoS 2 arrives
    exactly once;
  - kill -9 of the publisher's node while it publishes a numbered QoS 1
    stream to persistent sessions on the other nodes, restarted, 5 rounds:
    every acknowledged message reaches both sessions;
  - kill -9 of the subscriber's node likewise (3 rounds; and 2 at QoS 2:
    each message once);
  - one nats-server of three killed under load: nothing acknowledged lost;
  - a node cut off from NATS keeps accepting QoS 1 into its outbox
    (counted), and after the link is back both directions catch up;
  - the outbox's bound (cluster_outbox_max_bytes): beyond it a message
    stays local, is counted, and a 5.0 publisher no local queue took it
    for hears 0x97; a node started before any NATS server drains its
    outbox once one comes.
Exact counts are printed."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import mqttraw  # noqa: E402
from nats_helpers import ClusterNodes, cluster_test, NatsCluster, NatsServer, TcpProxy  # noqa: E402
from petreltest import free_port  # noqa: E402


def report(what, **counts):
    sys.stderr.write('  %s: %s\n' % (what, ', '.join('%s %s' % kv for kv in counts.items())))


@cluster_test
class ClusterJetStream(ClusterNodes, harness.BrokerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.nats = NatsCluster().start()
        cls.proxy = TcpProxy(cls.nats.servers[2].port).start()
        cls.start_nodes(lambda i: cls.proxy.url if i == 3 else cls.nats.urls, cls.wait_stream,
                        cluster_stream_replicas=3)
        cls.wait_flowing()

    @classmethod
    def wait_flowing(cls, timeout=60.0):
        """Until a QoS 1 message from each node reaches a subscriber on the
        next one through the stream: the stream and every consumer have a
        leader.  (A fault test that kills a server while JetStream is still
        forming - its first API request timed out - left the stream
        delivering nothing for minutes on nats-server 2.9.10 under load.)"""
        deadline = time.monotonic() + timeout
        for i, pub_node in enumerate(cls.nodes):
            sub_node = cls.nodes[(i + 1) % len(cls.nodes)]
            topic = 't/warm/%d' % i
            sub = harness.PahoClient(sub_node.port, 'warm-sub-%d' % i)
            pub = harness.PahoClient(pub_node.port, 'warm-pub-%d' % i)
            try:
                sub.connect()
                sub.subscribe(topic, qos=1)
                pub.connect()
                while True:
                    pub.publish(topic, b'warm', qos=1)
                    try:
                        sub.get(timeout=1.0)
                        break
                    except AssertionError:
                        if time.monotonic() > deadline:
                            raise AssertionError('QoS 1 does not cross from %s to %s'
                                                 % (pub_node.settings['node_name'],
                                                    sub_node.settings['node_name']))
            finally:
                pub.close()
                sub.close()

    @classmethod
    def wait_stream(cls, b):
        """Until the log of b's current run says its consumer is ready."""
        deadline = time.monotonic() + 30
        while 'cluster: JetStream stream' not in b.run_log_text():
            if time.monotonic() > deadline:
                raise AssertionError('no JetStream consumer on %s:\n%s' % (b.settings['node_name'],
                                                                          b.tail()))
            time.sleep(0.05)

    def setUp(self):
        super().setUp()
        for s in self.nats.servers:
            if not s.alive():
                s.start()
        self.wait_flowing()  # also after the last test restarted a server

    def counter(self, node, name, at_least=None, timeout=5.0):
        return self.sys_value(node, '$SYS/broker/cluster/' + name, at_least, timeout) or 0

    def restart_node(self, b):
        b.crash_restart()
        self.wait_stream(b)

    def session(self, node, cid, topic, qos=1):
        """A persistent session on node subscribed to topic, left offline."""
        c = harness.Collector(node.port, cid, clean=False)
        c.subscribe([(topic, qos)])
        c.disconnect()

    def collect(self, node, cid, want, timeout=30.0):
        """Connects session cid on node and reads until every number of
        `want` arrived (or timeout); returns the numbers received."""
        c = harness.Collector(node.port, cid, clean=False)
        c.collect(done=lambda s: len(s.messages) >= len(want) and want <= set(s.numbers()),
                  idle=0.5, timeout=timeout)
        c.disconnect()
        return c.numbers()

    # ---- tests
    def test_qos1_qos2_cross_nodes_paho_and_mosquitto(self):
        n1, n2, n3 = self.nodes
        topic = self.topic('pq')
        sub = self.paho('js-paho-sub', port=n2.port)
        sub.connect()
        sub.subscribe(topic + '/#', qos=2)
        pub = self.paho('js-paho-pub', port=n1.port)
        pub.connect()
        n = 200
        for i in range(n):
            pub.c.publish(topic + '/2', b'%d' % i, qos=2)
        got = [sub.get(timeout=15).payload for _ in range(n)]
        sub.expect_nothing(1.5)  # QoS 2: no second copy
        self.assertEqual(sorted(int(x) for x in got), list(range(n)))
        for i in range(n):
            pub.c.publish(topic + '/1', b'%d' % i, qos=1)
        got1 = [sub.get(timeout=15) for _ in range(n)]
        self.assertEqual(sorted(int(m.payload) for m in got1), list(range(n)))
        self.assertEqual({m.qos for m in got1}, {1})
        report('paho across nodes', qos2_sent=n, qos2_received=len(got), qos1_received=len(got1))
        # mosquitto clients, n1 -> n3 (through the proxy) at QoS 2 and 1
        for qos in (2, 1):
            s = self.mosquitto_sub(topic + '/m%d' % qos, port=n3.port, qos=qos).wait_subscribed()
            self.mosquitto_pub(topic + '/m%d' % qos, 'mosq-%d' % qos, port=n1.port, qos=qos)
            self.assertEqual(s.get(timeout=10)[2:], (topic + '/m%d' % qos, 'mosq-%d' % qos))
            s.expect_nothing(1.0)

    def test_publisher_node_killed(self):
        n1, n2, n3 = self.nodes
        topic = self.topic('kp')
        self.session(n2, 'kp-n2', topic)
        self.session(n3, 'kp-n3', topic)
        acked, sent, nxt = set(), 0, 0
        for rnd in range(5):
            p = self.publish_and_kill(n1, topic, 3000, 300 + 100 * rnd, n1, nxt)
            acked |= set(p.acked)
            sent += len(p.sent)
            report('publisher node round %d' % (rnd + 1), sent=len(p.sent), acked=len(p.acked))
            nxt += 3000
            self.restart_node(n1)
        for node, cid in ((n2, 'kp-n2'), (n3, 'kp-n3')):
            got = self.collect(node, cid, acked)
            missing = acked - set(got)
            report('publisher node killed x5, session %s' % cid, acknowledged=len(acked),
                   received=len(got), distinct=len(set(got)), missing=len(missing))
            self.assertFalse(missing, 'acknowledged but lost on %s: %s' % (cid, sorted(missing)[:20]))
        self.outbox_empties(n1)

    def test_subscriber_node_killed(self):
        n1, n2 = self.nodes[0], self.nodes[1]
        topic = self.topic('ks')
        self.session(n2, 'ks-n2', topic)
        acked, nxt = set(), 0
        for rnd in range(3):
            p = self.publish_and_kill(n1, topic, 2000, 500, n2, nxt)
            # the publisher's node was not killed: it published everything
            self.assertEqual(len(p.acked), 2000)
            acked |= set(p.acked)
            report('subscriber node round %d' % (rnd + 1), acked=len(p.acked))
            nxt += 2000
            self.restart_node(n2)
        got = self.collect(n2, 'ks-n2', acked, timeout=40)
        missing = acked - set(got)
        report('subscriber node killed x3', acknowledged=len(acked), received=len(got),
               distinct=len(set(got)), missing=len(missing))
        self.assertFalse(missing, 'acknowledged but lost: %s' % sorted(missing)[:20])
        self.outbox_empties(n1)

    def test_subscriber_node_killed_qos2_once(self):
        """QoS 2 with the subscriber's node killed: every acknowledged
        message queued once (cluster_inbox recognises what JetStream
        delivers again)."""
        n1, n2 = self.nodes[0], self.nodes[1]
        topic = self.topic('k2')
        self.session(n2, 'k2-n2', topic, qos=2)
        acked, nxt = set(), 0
        for rnd in range(2):
            p = self.publish_and_kill(n1, topic, 1500, 400, n2, nxt, qos=2)
            self.assertEqual(len(p.acked), 1500)
            acked |= set(p.acked)
            nxt += 1500
            self.restart_node(n2)
        got = self.collect(n2, 'k2-n2', acked, timeout=40)
        missing = acked - set(got)
        report('subscriber node killed x2, QoS 2', acknowledged=len(acked), received=len(got),
               distinct=len(set(got)), missing=len(missing),
               recognised_again=self.counter(n2, 'stream/duplicates'))
        self.assertFalse(missing, 'acknowledged but lost: %s' % sorted(missing)[:20])
        self.assertEqual(len(got), len(set(got)), 'QoS 2 delivered twice')

    def outbox_empties(self, node):
        report('%s stream counters' % node.settings['node_name'],
               **{k: self.counter(node, 'stream/' + k)
                  for k in ('sent', 'stored', 'retried', 'received', 'redelivered')})
        deadline = time.monotonic() + 15
        while self.counter(node, 'outbox/messages') != 0:
            self.assertLess(time.monotonic(), deadline, 'the outbox did not empty')
            time.sleep(0.5)

    def test_nats_server_killed_under_load(self):
        n1, n2 = self.nodes[0], self.nodes[1]
        topic = self.topic('kn')
        self.session(n2, 'kn-n2', topic)
        # the server n1 is connected to
        urls = re.findall(r'node n1 connected to NATS nats://127\.0\.0\.1:(\d+)', n1.run_log_text())
        victim = next(s for s in self.nats.servers if s.port == int(urls[-1]))
        if victim is self.nats.servers[2]:  # n3's only server (through the proxy): keep it
            victim = self.nats.servers[0]
        p = self.publish_and_kill(n1, topic, 4000, 1000, victim, 0)
        acked = set(p.acked)
        self.assertEqual(len(acked), 4000, 'the publisher was not served to the end')
        got = self.collect(n2, 'kn-n2', acked, timeout=40)
        missing = acked - set(got)
        report('nats-server %s killed' % victim.name, acknowledged=len(acked), received=len(got),
               distinct=len(set(got)), missing=len(missing))
        self.assertFalse(missing, 'acknowledged but lost: %s' % sorted(missing)[:20])
        self.outbox_empties(n1)
        victim.start()
        self.assertTrue(victim.alive())

    def test_node_cut_off_catches_up(self):
        n1, n3 = self.nodes[0], self.nodes[2]
        topic = self.topic('cut')
        self.session(n1, 'cut-n1', topic + '/from3')
        self.session(n3, 'cut-n3', topic + '/from1')
        self.proxy.cut()
        self.assertTrue(n3.wait_log('node n3 lost its NATS connection', timeout=10), n3.tail())
        a = harness.PipelinedPublisher(n3.port, topic + '/from3', qos=1, window=20)
        a.run(500)
        b = harness.PipelinedPublisher(n1.port, topic + '/from1', qos=1, window=20)
        b.run(500)
        self.assertEqual((len(a.acked), len(b.acked)), (500, 500))
        held = self.counter(n3, 'outbox/messages', at_least=500)
        self.assertGreaterEqual(held, 500, 'the cut-off node did not keep them in its outbox')
        self.proxy.mend()
        got1 = self.collect(n1, 'cut-n1', set(a.acked))
        got3 = self.collect(n3, 'cut-n3', set(b.acked))
        if set(b.acked) - set(got3):
            sys.stderr.write('n3:\n%s\n' % n3.run_log_text()[-5000:])
            report('n3', **{k: self.counter(n3, k) for k in (
                'connected', 'stream/received', 'stream/redelivered', 'outbox/messages')})
        report('partition', outbox_held=held, n3_to_n1=len(set(got1) & set(a.acked)),
               n1_to_n3=len(set(got3) & set(b.acked)))
        self.assertEqual(set(a.acked) - set(got1), set())
        self.assertEqual(set(b.acked) - set(got3), set())
        self.outbox_empties(n3)

    # ---- retained messages cluster-wide (broker/cluster_retained.c)
    def retained_at(self, node, topic_filter, want, timeout=15.0):
        """Subscribes afresh on node until what arrives at once with the
        retain flag is exactly `want` ({topic: payload}); returns the last
        set seen."""
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            s = self.mosquitto_sub(topic_filter, port=node.port, qos=1).wait_subscribed()
            got = {}
            while True:
                try:
                    qos, retain, topic, payload = s.get(timeout=0.5)
                except AssertionError:
                    break
                if retain:
                    got[topic] = payload
            s.close()
            if got == want:
                return got
            time.sleep(0.2)
        return got

    def test_retained_cluster_wide(self):
        n1, n2, n3 = self.nodes
        t = self.topic('ret')
        self.mosquitto_pub(t + '/a', 'from-n1', port=n1.port, retain=True)
        p = self.paho('ret-pub-n2', port=n2.port)
        p.connect()
        p.publish(t + '/b', b'from-n2', qos=1, retain=True)
        p.disconnect()
        both = {t + '/a': 'from-n1', t + '/b': 'from-n2'}
        for node in self.nodes:
            self.assertEqual(self.retained_at(node, t + '/#', both), both,
                             'retained on %s' % node.settings['node_name'])
        # A delete (empty retained payload) on the third node reaches all.
        self.mosquitto_pub(t + '/a', port=n3.port, retain=True, null=True)
        only_b = {t + '/b': 'from-n2'}
        for node in self.nodes:
            self.assertEqual(self.retained_at(node, t + '/#', only_b), only_b,
                             'after the delete, on %s' % node.settings['node_name'])
        report('retained', set_on=2, deleted=1, nodes_agreeing=3)

    def test_retained_reaches_a_node_that_was_down(self):
        n1, n2, n3 = self.nodes
        t = self.topic('ret-down')
        self.mosquitto_pub(t + '/old', 'to-delete', port=n1.port, retain=True)
        self.assertEqual(self.retained_at(n2, t + '/#', {t + '/old': 'to-delete'}),
                         {t + '/old': 'to-delete'})
        n2.kill()
        self.mosquitto_pub(t + '/new', 'while-n2-down', port=n1.port, retain=True, qos=1)
        self.mosquitto_pub(t + '/old', port=n3.port, retain=True, null=True)
        n2.start()
        self.wait_stream(n2)
        want = {t + '/new': 'while-n2-down'}
        self.assertEqual(self.retained_at(n2, t + '/#', want), want)
        for node in (n1, n3):
            self.assertEqual(self.retained_at(node, t + '/#', want), want)
        self.assertGreaterEqual(self.counter(n2, 'retained/received', at_least=1), 1)
        # Back with an empty store under its old name: every value again.
        n2.kill()
        for suffix in ('', '-wal', '-shm'):
            if os.path.exists(n2.db_path + suffix):
                os.remove(n2.db_path + suffix)
        n2.start()
        self.wait_stream(n2)
        self.assertEqual(self.retained_at(n2, t + '/#', want), want, 'after an empty store')

    def test_retained_reaches_a_node_cut_off(self):
        n1, n3 = self.nodes[0], self.nodes[2]
        t = self.topic('ret-cut')
        self.mosquitto_pub(t + '/gone', 'set-before', port=n1.port, retain=True)
        self.assertEqual(self.retained_at(n3, t + '/#', {t + '/gone': 'set-before'}),
                         {t + '/gone': 'set-before'})
        self.proxy.cut()
        self.assertTrue(n3.wait_log('node n3 lost its NATS connection', timeout=10), n3.tail())
        self.mosquitto_pub(t + '/new', 'from-n1', port=n1.port, retain=True, qos=1)
        self.mosquitto_pub(t + '/gone', port=n1.port, retain=True, null=True)
        self.mosquitto_pub(t + '/cut', 'from-n3', port=n3.port, retain=True, qos=1)
        # n3 serves what it has meanwhile, from its own store.
        self.assertEqual(self.retained_at(n3, t + '/#', {t + '/gone': 'set-before',
                                                         t + '/cut': 'from-n3'}),
                         {t + '/gone': 'set-before', t + '/cut': 'from-n3'})
        self.proxy.mend()
        want = {t + '/new': 'from-n1', t + '/cut': 'from-n3'}
        for node in self.nodes:
            self.assertEqual(self.retained_at(node, t + '/#', want, timeout=30), want,
                             'after the partition, on %s' % node.settings['node_name'])



@cluster_test
class OutboxBound(harness.OwnBrokers, harness.BrokerTestCase):

    def test_bound_then_drained_when_nats_comes(self):
        nats_port = free_port()  # nothing listens there yet
        b = self.start_broker({'cluster_nats': 'nats://127.0.0.1:%d' % nats_port,
                               'node_name': 'ob1', 'sys_interval': 1,
                               'cluster_outbox_max_bytes': 1000})
        self.assertTrue(b.wait_log('no NATS server of .* answers yet', timeout=10), b.tail())
        p = mqttraw.Raw5(b.port)
        self._clients.append(p)
        p.connect5('')
        payload = b'x' * 96  # + 4 bytes of topic: 100 bytes each, 10 fit
        rcs = [p.publish5('ob/x', payload, qos=1).rc for _ in range(12)]
        self.assertEqual(rcs, [0] * 10 + [0x97] * 2)
        # with a local subscriber the message is taken here: no 0x97
        local = self.raw(b.port)
        local.connect('')
        local.subscribe([('ob/#', 1)])
        self.assertEqual(p.publish5('ob/x', payload, qos=1).rc, 0)
        self.assertEqual(local.expect_publish(timeout=5).payload, payload)
        held = self.sys_value(b, '$SYS/broker/cluster/outbox/messages', at_least=10)
        full = self.sys_value(b, '$SYS/broker/cluster/outbox/full', at_least=3)
        report('outbox bound', held=held, kept_local=full)
        self.assertEqual((held, full), (10, 3))
        r = b.inspect()
        self.assertIn('cluster outbox 10 messages, 1000 bytes', r.stdout, r.stdout + r.stderr)
        nats = NatsServer(port=nats_port).start()
        self.addCleanup(nats.remove)
        deadline = time.monotonic() + 30
        while self.sys_value(b, '$SYS/broker/cluster/outbox/messages') != 0:
            self.assertLess(time.monotonic(), deadline, 'the outbox did not drain: ' + b.tail())
            time.sleep(0.5)
        self.assertEqual(self.sys_value(b, '$SYS/broker/cluster/stream/stored', at_least=10), 10)

if __name__ == '__main__':
    harness.main()
