"""Limits: max_packet_size, connect_timeout, max_inflight, max_qos,
max_connections."""

import time

import harness
from harness import BrokerTestCase, skip_on_mosquitto
import mqttraw
from mqttraw import PUBACK, PUBREC, PUBREL, PUBCOMP, ack_packet


class PacketSizeTest(BrokerTestCase):
    broker_settings = {'max_packet_size': 1024}

    def publish_of_size(self, total, qos=0):
        """A PUBLISH packet of exactly `total` bytes."""
        topic = self.topic()
        overhead = len(mqttraw.publish_packet(topic, b'', qos=qos))
        n = total - overhead
        pkt = mqttraw.publish_packet(topic, b'p' * n, qos=qos)
        if len(pkt) != total:   # the remaining length grew by a byte
            pkt = mqttraw.publish_packet(topic, b'p' * (n - 1), qos=qos)
        assert len(pkt) == total, (len(pkt), total)
        return pkt

    def test_oversized_publish_closes_connection(self):
        w = self.watcher()
        bad = self.raw_connected('too-big', will=(self.topic('will'), b'big', 0, False))
        bad.try_send(mqttraw.publish_packet(self.topic(), b'x' * 2000))
        self.assertTrue(bad.wait_closed(3))
        self.assertEqual(w.expect_publish(timeout=3).payload, b'big')
        self.assert_broker_serves(w)

    @skip_on_mosquitto('mosquitto does not count the remaining length bytes')
    def test_packet_size_boundary(self):
        w = self.watcher()
        ok = self.raw_connected()
        ok.send(self.publish_of_size(1024))
        self.assertGreater(len(w.expect_publish().payload), 900)
        ok.ping()
        bad = self.raw_connected()
        bad.try_send(self.publish_of_size(1025))
        self.assertTrue(bad.wait_closed(3))
        w.expect_nothing(0.3)

    def test_declared_size_checked_before_body(self):
        # only the fixed header arrives: the broker must not wait for 1 MB
        w = self.watcher()
        bad = self.raw_connected()
        bad.send(b'\x30' + mqttraw.varint(1000000) + b'\x00\x01a')
        self.assertTrue(bad.wait_closed(2), 'broker waited for the body of an oversized packet')
        self.assert_broker_serves(w)

    def test_oversized_connect(self):
        bad = self.raw()
        bad.try_send(mqttraw.connect_packet('c' * 2000))
        self.assertTrue(bad.wait_closed(3))
        for p in bad.before_close:
            self.assertNotEqual(p.rc, 0)

    def test_large_packet_under_limit_in_pieces(self):
        w = self.watcher()
        ok = self.raw_connected()
        pkt = self.publish_of_size(1000)
        for i in range(0, len(pkt), 100):
            ok.send(pkt[i:i + 100])
            time.sleep(0.01)
        expected = mqttraw.Packet(pkt[0], pkt[3:]).payload   # 2-byte remaining length
        self.assertEqual(w.expect_publish().payload, expected)

    def test_qos1_publish_under_limit(self):
        w = self.watcher()
        ok = self.raw_connected()
        ok.send(self.publish_of_size(1000, qos=1))
        ok.expect(PUBACK)
        self.assertGreater(len(w.expect_publish().payload), 900)


@skip_on_mosquitto('mosquitto has no connect_timeout setting')
class ConnectTimeoutTest(BrokerTestCase):
    broker_settings = {'connect_timeout': 2}

    def test_silent_connection_closed(self):
        w = self.watcher()
        c = self.raw()
        t0 = time.monotonic()
        self.assertTrue(c.wait_closed(2 + 1.5), 'silent connection not closed')
        self.assertGreater(time.monotonic() - t0, 1.5)
        self.assert_broker_serves(w)

    def test_slowloris_partial_connect_closed(self):
        w = self.watcher()
        c = self.raw()
        pkt = mqttraw.connect_packet('slow-loris-client-with-a-long-id', keepalive=60)
        t0 = time.monotonic()
        closed = False
        for b in pkt[:-1]:
            if not c.try_send(bytes([b])):
                closed = True
                break
            try:
                c.read_packet(0.3)
            except mqttraw.Timeout:
                continue
            except mqttraw.Closed:
                closed = True
                break
            if time.monotonic() - t0 > 5:
                break
        if not closed:
            closed = c.wait_closed(max(0.1, 2 + 1.5 - (time.monotonic() - t0)))
        self.assertTrue(closed, 'partial CONNECT kept the connection open')
        self.assertLess(time.monotonic() - t0, 2 + 1.5)
        self.assert_broker_serves(w)

    def test_connected_client_not_affected(self):
        c = self.raw_connected('timely', keepalive=60)
        time.sleep(2.5)
        c.ping()


class InflightTest(BrokerTestCase):
    broker_settings = {'max_inflight': 5}

    released = 0

    def publish_numbered(self, n, qos):
        """A fresh client publishes b'0' .. b'n-1' to the test's topic."""
        p = self.raw_connected()
        for i in range(n):
            p.publish(self.topic(), b'%d' % i, qos=qos)

    def drain(self, s, n, timeout=5.0, once=False):
        """Completes every flow until n PUBLISHes arrived (or, with once=True,
        handles what arrives within timeout); returns their payloads."""
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < n or once:
            try:
                pkt = s.read_packet(max(0.01, deadline - time.monotonic()))
            except mqttraw.Timeout:
                if once:
                    break
                raise
            if pkt.type == mqttraw.PUBLISH:
                got.append(int(pkt.payload))
                if pkt.qos == 1:
                    s.send(ack_packet(PUBACK, pkt.pid))
                elif pkt.qos == 2:
                    s.send(ack_packet(PUBREC, pkt.pid))
            elif pkt.type == PUBREL:
                s.send(ack_packet(PUBCOMP, pkt.pid))
                self.released += 1
        return got

    def test_qos1_window(self):
        s = self.subscribed(1, 'no-acks')
        self.publish_numbered(12, 1)
        first = [s.expect_publish(ack=False) for _ in range(5)]
        self.assertEqual([int(m.payload) for m in first], list(range(5)))
        s.expect_nothing(0.7)   # window full
        s.send(ack_packet(PUBACK, first[0].pid))
        pending = first[1:]
        if harness.IS_MOSQUITTO:
            # mosquitto 2.0.11 refills more than the freed slot after an ack
            while True:
                try:
                    pending.append(s.expect_publish(timeout=0.5, ack=False))
                except mqttraw.Timeout:
                    break
        else:
            pending.append(s.expect_publish(ack=False))   # exactly one slot freed
            s.expect_nothing(0.5)
        for m in pending:
            s.send(ack_packet(PUBACK, m.pid))
        rest = self.drain(s, 12 - 1 - len(pending))
        self.assertEqual([int(first[0].payload)] + [int(m.payload) for m in pending] + rest,
                         list(range(12)))
        s.expect_nothing(0.3)

    def test_qos2_window(self):
        s = self.subscribed(2, 'q2-window')
        self.publish_numbered(8, 2)
        first = [s.expect_publish(ack=False) for _ in range(5)]
        s.expect_nothing(0.7)   # no PUBREC: window full
        for m in first:
            s.send(ack_packet(PUBREC, m.pid))
        rest = self.drain(s, 3)
        self.assertEqual([int(m.payload) for m in first] + rest, list(range(8)))
        deadline = time.monotonic() + 3
        while self.released < 8 and time.monotonic() < deadline:
            self.drain(s, 0, timeout=0.2, once=True)
        self.assertEqual(self.released, 8)
        s.expect_nothing(0.3)

    def test_qos0_not_limited(self):
        s = self.subscribed(0, 'q0-window')
        self.publish_numbered(30, 0)
        got = [int(s.expect_publish().payload) for _ in range(30)]
        self.assertEqual(got, list(range(30)))


class MaxQosTest(BrokerTestCase):
    broker_settings = {'max_qos': 1}

    def test_granted_qos_capped(self):
        s = self.raw_connected()
        self.assertEqual(s.subscribe([(self.topic('a'), 2), (self.topic('b'), 1),
                                      (self.topic('c'), 0)]), [1, 1, 0])
        p = self.raw_connected()
        p.publish(self.topic('a'), b'capped', qos=1)
        m = s.expect_publish()
        self.assertEqual((m.payload, m.qos), (b'capped', 1))


class MaxConnectionsTest(BrokerTestCase):
    broker_settings = {'max_connections': 3}

    def test_connection_over_limit_refused(self):
        clients = [self.raw_connected('conn-%d' % i) for i in range(3)]
        extra = self.raw()
        extra.try_send(mqttraw.connect_packet('one-too-many'))
        self.assertTrue(extra.wait_closed(3), 'fourth connection accepted')
        for p in extra.before_close:
            self.assertNotEqual(p.rc, 0)
        for c in clients:
            c.ping()
        clients[0].disconnect()
        deadline = time.monotonic() + 3
        while True:   # the freed slot becomes usable once the close is processed
            again = self.raw()
            again.try_send(mqttraw.connect_packet('replacement'))
            try:
                if again.expect(mqttraw.CONNACK, 1).rc == 0:
                    break
            except (mqttraw.Closed, mqttraw.Timeout):
                pass
            again.close()
            self.assertLess(time.monotonic(), deadline, 'slot not freed')
            time.sleep(0.1)
        again.ping()


class SlowConsumerTest(BrokerTestCase):
    broker_settings = {'max_output_buffer': 65536, 'sys_interval': 1}

    def test_slow_consumer_does_not_hold_up_others(self):
        slow = mqttraw.RawClient(self.port, rcvbuf=4096)
        self._clients.append(slow)
        slow.connect('slow-reader')
        slow.subscribe([(self.topic(), 0)])
        fast = self.subscribed(0, 'fast-reader')
        pub = self.raw_connected('firehose')
        payload = b'z' * 8192
        batches, per_batch = 20, 50   # 8 MB in all, far past every buffer
        for b in range(batches):
            pub.send(b''.join(mqttraw.publish_packet(self.topic(), b'%04d' % (b * per_batch + i)
                                                     + payload) for i in range(per_batch)))
            for i in range(per_batch):
                m = fast.expect_publish(timeout=5)
                self.assertEqual(int(m.payload[:4]), b * per_batch + i)
        pub.ping()
        fast.ping()
        # the slow reader is still connected and what it gets is whole
        got = 0
        last = -1
        while True:
            try:
                m = slow.expect_publish(timeout=1.0)
            except mqttraw.Timeout:
                break
            self.assertEqual(len(m.payload), 4 + len(payload))
            n = int(m.payload[:4])
            self.assertGreater(n, last, 'out of order')
            last = n
            got += 1
        self.assertGreater(got, 0)
        slow.ping()
        if not harness.IS_MOSQUITTO:
            # petreld drops QoS 0 for a full output buffer, and counts it
            self.assertLess(got, batches * per_batch)
            c = self.raw_connected()
            c.subscribe([('$SYS/broker/publish/dropped', 0)])
            deadline = time.monotonic() + 4
            dropped = 0
            while dropped == 0 and time.monotonic() < deadline:
                try:
                    dropped = int(c.expect_publish(timeout=max(0.05, deadline - time.monotonic())).payload)
                except mqttraw.Timeout:
                    break
            self.assertGreater(dropped, 0)


if __name__ == '__main__':
    harness.main()
