"""The cluster as $SYS and `petreld --inspect` show it (broker/cluster_nodes.c,
the lag in broker/cluster_stream.c): three nodes on one nats-server.

Checked: every node names itself in $SYS/broker/cluster/node and counts
3 nodes (list "n1 n2 n3", 3 with their stream ready) within a bounded
wait; QoS 1 across nodes leaves stream/pending and stream/lag_ms as
numbers, and lag_ms near 2.5 s once a node stopped that long (SIGSTOP)
runs again; --inspect names the node and the cluster and says it did not ask
NATS; hostile heartbeats (bad names, a huge payload, this node's own name,
9000 fake names) are counted and bounded (at most 1024 nodes), the
node still serves, and the fakes are forgotten after 3 intervals; a node
killed with -9 leaves the count (3 -> 2) within 3 heartbeat intervals and
slack, and comes back when it restarts.  The test names carry their order:
the kill is last."""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import mqttraw  # noqa: E402
from nats_helpers import ClusterNodes, cluster_test, NatsServer  # noqa: E402

HB_INTERVAL = 2.0   # CLUSTER_HB_INTERVAL_MS
HB_MISSED = 3       # CLUSTER_HB_MISSED
NODES_MAX = 1024    # CLUSTER_NODES_MAX
# A node gone is forgotten after HB_MISSED intervals, seen in $SYS within
# its next second (sys_interval 1); the rest is slack for a loaded machine.
GONE_WITHIN = HB_MISSED * HB_INTERVAL + 1 + 5


class RawNats:
    """A NATS client speaking the protocol itself, to send what no library
    would: any payload on any subject."""

    def __init__(self, port):
        self.s = socket.create_connection(('127.0.0.1', port), timeout=10)
        self.s.recv(65536)  # INFO
        self.s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n')

    def pub(self, subject, payload):
        self.s.sendall(b'PUB %s %d\r\n%s\r\n' % (subject.encode(), len(payload), payload))

    def flush(self):
        """PING, then reads until the PONG: the server has taken all."""
        self.s.sendall(b'PING\r\n')
        got = b''
        deadline = time.monotonic() + 10
        while b'PONG' not in got and time.monotonic() < deadline:
            chunk = self.s.recv(65536)
            if not chunk:
                break
            got += chunk
        if b'PONG' not in got:
            raise AssertionError('nats-server did not answer: %r' % got[-200:])

    def close(self):
        self.s.close()


@cluster_test
class ClusterWatch(ClusterNodes, harness.BrokerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.nats = NatsServer().start()
        cls.start_nodes(lambda i: cls.nats.url,
                        lambda b: b.wait_log('cluster: JetStream stream', timeout=30))

    def sys_text(self, node, topic, until=None, timeout=5.0):
        """$SYS `topic` of `node` as text: the first value, or with `until`
        the first for which until(value) holds (the last seen, or None,
        when `timeout` passes first)."""
        c = self.raw(node.port)
        c.connect('', keepalive=20)
        c.subscribe([(topic, 0)])
        deadline = time.monotonic() + timeout
        value = None
        try:
            while time.monotonic() < deadline:
                try:
                    m = c.expect_publish(timeout=max(0.05, deadline - time.monotonic()))
                except mqttraw.Timeout:
                    break
                value = m.payload.decode()
                if until is None or until(value):
                    break
        finally:
            c.disconnect()
        return value

    def nodes_become(self, node, n, timeout):
        return self.sys_text(node, '$SYS/broker/cluster/nodes',
                             until=lambda v: int(v) == n, timeout=timeout)

    def test_1_each_node_sees_all(self):
        for i, b in enumerate(self.nodes, 1):
            self.assertEqual(self.sys_text(b, '$SYS/broker/cluster/node'), 'n%d' % i)
            # Heard within two intervals once its stream was ready.
            self.assertEqual(self.nodes_become(b, 3, timeout=3 * HB_INTERVAL + 2), '3',
                             'node n%d' % i)
            self.assertEqual(self.sys_text(b, '$SYS/broker/cluster/nodes/list'), 'n1 n2 n3')
            self.assertEqual(self.sys_text(b, '$SYS/broker/cluster/nodes/ready',
                                           until=lambda v: v == '3',
                                           timeout=3 * HB_INTERVAL + 2), '3')
            self.assertEqual(self.sys_text(b, '$SYS/broker/cluster/nodes/refused'), '0')

    @staticmethod
    def receive(sub, n, timeout=20.0):
        """How many messages (up to n) `sub` receives within timeout."""
        got = 0
        deadline = time.monotonic() + timeout
        while got < n and time.monotonic() < deadline:
            try:
                sub.expect_publish(timeout=1)
                got += 1
            except mqttraw.Timeout:
                pass
        return got

    def test_2_stream_lag(self):
        n1, n2 = self.nodes[0], self.nodes[1]
        topic = self.topic('lag')
        sub = self.raw(n2.port)
        sub.connect('watch-lag', keepalive=60)
        sub.subscribe([(topic, 1)], expect_granted=[1])
        pub = self.raw(n1.port)
        pub.connect('', keepalive=60)
        try:
            before = self.sys_value(n2, '$SYS/broker/cluster/stream/received')
            for i in range(20):
                pub.publish(topic, b'm%d' % i, qos=1)
            self.assertEqual(self.receive(sub, 20), 20, 'QoS 1 across nodes')
            self.assertGreaterEqual(self.sys_value(n2, '$SYS/broker/cluster/stream/received',
                                                   at_least=before + 20), before + 20)
            pending = self.sys_text(n2, '$SYS/broker/cluster/stream/pending')
            lag = self.sys_text(n2, '$SYS/broker/cluster/stream/lag_ms')
            print('\nn2 after 20 QoS 1 messages from n1: stream/pending %s, stream/lag_ms %s'
                  % (pending, lag))
            self.assertRegex(pending, r'^\d+$')
            self.assertRegex(lag, r'^\d+$')
            # Every delivery behind it was taken (20 of 20): nothing left.
            self.assertEqual(int(pending), 0)
            self.assertLess(int(lag), 20000, 'one delivery waited more than the whole test')

            # n2 stopped (SIGSTOP) while n1 publishes: once it runs again,
            # its last delivery had waited in the stream about as long.
            n2.suspend()
            try:
                t0 = time.monotonic()
                for i in range(20):
                    pub.publish(topic, b'late%d' % i, qos=1)
                time.sleep(max(0.0, 2.5 - (time.monotonic() - t0)))
            finally:
                n2.resume()
            self.assertEqual(self.receive(sub, 20), 20, 'QoS 1 across nodes after n2 ran again')
            lag = self.sys_text(n2, '$SYS/broker/cluster/stream/lag_ms',
                                until=lambda v: int(v) >= 1500, timeout=5)
            print('n2 stopped 2.5 s while n1 published 20: stream/lag_ms %s' % lag)
            self.assertGreaterEqual(int(lag), 1500)
            self.assertLess(int(lag), 20000)
        finally:
            pub.disconnect()
            sub.disconnect()

    def test_3_inspect_names_the_node(self):
        r = self.nodes[1].inspect()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        lines = r.stdout.splitlines()
        self.assertTrue(lines and lines[0].startswith('cluster petrel, node n2, NATS nats://'),
                        r.stdout)
        self.assertIn('NATS not contacted', r.stdout)
        self.assertRegex(r.stdout, r'(?m)^sessions \d+$')
        self.assertRegex(r.stdout, r'(?m)^cluster outbox \d+ messages, \d+ bytes$')

    def test_4_hostile_heartbeats(self):
        n1 = self.nodes[0]
        refused0 = int(self.sys_text(n1, '$SYS/broker/cluster/nodes/refused'))
        bad = [b'', b'garbage', b'2 n9 1 1', b'1 bad/name 1 1', b'1 ' + b'a' * 65 + b' 1 1',
               b'1 n9 1 2', b'1 n9 x 1', b'1 n9 1', b'1 n9 1 1x', b'1 n\x009 1 1',
               b'1 n9 12345678901234567890 1', b'1 n1 5 1',  # n1's own name
               b'1 n9 1 1' + b'x' * 300, b'1 n9 1 1 ' + b'y' * 200000]
        # More than the 4096 queued per interval (two intervals at most:
        # the burst takes far less than one), beyond the table's 1024.
        fakes = 9000
        nc = RawNats(self.nats.port)
        try:
            for p in bad:
                nc.pub('petrel-hb.evil', p)
            for i in range(fakes):
                nc.pub('petrel-hb.f%d' % i, b'1 fake%d 1 0' % i)
            nc.flush()
        finally:
            nc.close()
        refused = self.sys_text(n1, '$SYS/broker/cluster/nodes/refused',
                                until=lambda v: int(v) >= refused0 + len(bad), timeout=10)
        self.assertEqual(int(refused), refused0 + len(bad))
        # Each fake is in the table or counted as refused there.
        full = dropped = 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            full = int(self.sys_text(n1, '$SYS/broker/cluster/nodes/full'))
            dropped = int(self.sys_text(n1, '$SYS/broker/cluster/nodes/dropped'))
            if full + dropped >= fakes - (NODES_MAX - 3):
                break
            time.sleep(0.2)
        seen = int(self.sys_text(n1, '$SYS/broker/cluster/nodes'))
        listed = self.sys_text(n1, '$SYS/broker/cluster/nodes/list').split()
        print('\nn1 after %d bad heartbeats and %d fake names: nodes %d (list of %d), refused '
              '+%d, full %d, dropped %d' % (len(bad), fakes, seen, len(listed),
                                           int(refused) - refused0, full, dropped))
        self.assertLessEqual(seen, NODES_MAX)
        self.assertEqual(len(listed), seen)
        self.assertGreaterEqual(full + dropped, fakes - (NODES_MAX - 3))
        self.assertGreater(dropped, 0)
        self.assertIn('n1', listed)
        self.assertIn('n2', listed)
        # Still serving, and the fakes go once not heard for 3 intervals.
        self.assert_broker_serves(self.watcher())
        self.assertEqual(self.nodes_become(n1, 3, timeout=GONE_WITHIN), '3')
        self.assertEqual(self.sys_text(n1, '$SYS/broker/cluster/nodes/list'), 'n1 n2 n3')
        self.assertTrue(n1.wait_log(r'another node calls itself n1 too', timeout=1), n1.tail())
        # A node heard again with another start time restarted (logged
        # once the interval's budget of join and leave lines, spent on the
        # fakes leaving, is new).
        time.sleep(HB_INTERVAL + 0.5)
        nc = RawNats(self.nats.port)
        try:
            nc.pub('petrel-hb.r1', b'1 r1 100 1')
            nc.pub('petrel-hb.r1', b'1 r1 200 1')
            nc.flush()
        finally:
            nc.close()
        self.assertTrue(n1.wait_log(r'cluster: node r1 restarted', timeout=5), n1.tail())
        list_topic = '$SYS/broker/cluster/nodes/list'
        self.assertEqual(self.sys_text(n1, list_topic, until=lambda v: 'r1' in v.split(),
                                       timeout=3), 'n1 n2 n3 r1')
        self.assertEqual(self.sys_text(n1, list_topic, until=lambda v: v == 'n1 n2 n3',
                                       timeout=GONE_WITHIN), 'n1 n2 n3')

    def test_9_killed_node_leaves_the_count(self):
        n1, n2, n3 = self.nodes
        for b in self.nodes:
            self.assertEqual(self.nodes_become(b, 3, timeout=3 * HB_INTERVAL + 2), '3')
        n3.kill()
        try:
            t0 = time.monotonic()
            for b in (n1, n2):
                left = GONE_WITHIN - (time.monotonic() - t0)
                self.assertEqual(self.nodes_become(b, 2, timeout=left), '2',
                                 'n3 still counted after %.1f s' % (time.monotonic() - t0))
                self.assertEqual(self.sys_text(b, '$SYS/broker/cluster/nodes/list'), 'n1 n2')
            print('\nn3 killed: n1 and n2 count 2 nodes after %.1f s' % (time.monotonic() - t0))
            self.assertTrue(n1.wait_log(r'cluster: node n3 not heard for 6 s; 2 nodes seen',
                                        timeout=1), n1.tail())
            n3.start()
            deadline = time.monotonic() + 30
            while ('cluster: JetStream stream' not in n3.run_log_text() and
                   time.monotonic() < deadline):
                time.sleep(0.05)
            for b in self.nodes:
                self.assertEqual(self.nodes_become(b, 3, timeout=3 * HB_INTERVAL + 2), '3')
            self.assertGreaterEqual(n1.log_text().count('cluster: node n3 heard'), 2, n1.tail())
        finally:
            if not n3.alive():
                n3.start()


if __name__ == '__main__':
    unittest.main()
