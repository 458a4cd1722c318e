"""Publish/subscribe: QoS 0/1/2 in both directions, QoS downgrade,
overlapping subscriptions, unsubscribe, ordering and payload sizes."""

import time

import harness
from harness import BrokerTestCase
import mqttraw
from mqttraw import PUBACK, PUBREC, PUBREL, PUBCOMP, PUBLISH, ack_packet


class PubSubTest(BrokerTestCase):

    def test_qos0_roundtrip(self):
        s = self.subscribed(0, granted=True)
        p = self.raw_connected()
        p.publish(self.topic(), b'hello q0', qos=0)
        m = s.expect_publish()
        self.assertEqual((m.topic, m.payload, m.qos, m.dup, m.retain, m.pid),
                         (self.topic(), b'hello q0', 0, False, False, None))

    def test_qos1_both_directions(self):
        s = self.subscribed(1, granted=True)
        p = self.raw_connected()
        p.send(mqttraw.publish_packet(self.topic(), b'hello q1', qos=1, pid=4242))
        ack = p.expect(PUBACK)
        self.assertEqual((ack.pid, ack.flags, ack.body), (4242, 0, b'\x10\x92'))
        m = s.expect_publish(ack=False)
        self.assertEqual((m.payload, m.qos, m.dup, m.retain), (b'hello q1', 1, False, False))
        self.assertNotEqual(m.pid, 0)
        s.send(ack_packet(PUBACK, m.pid))
        s.expect_nothing(0.3)

    def test_qos2_both_directions(self):
        s = self.subscribed(2, granted=True)
        p = self.raw_connected()
        p.send(mqttraw.publish_packet(self.topic(), b'hello q2', qos=2, pid=77))
        rec = p.expect(PUBREC)
        self.assertEqual((rec.pid, rec.flags), (77, 0))
        p.send(ack_packet(PUBREL, 77))
        comp = p.expect(PUBCOMP)
        self.assertEqual((comp.pid, comp.flags), (77, 0))
        m = s.expect_publish(ack=False)
        self.assertEqual((m.payload, m.qos, m.dup), (b'hello q2', 2, False))
        s.send(ack_packet(PUBREC, m.pid))
        rel = s.expect(PUBREL)
        self.assertEqual((rel.pid, rel.flags), (m.pid, 0x02))
        s.send(ack_packet(PUBCOMP, m.pid))
        s.expect_nothing(0.3)

    def test_qos2_exactly_once_with_duplicate_publish(self):
        s = self.subscribed(2)
        p = self.raw_connected()
        pkt = mqttraw.publish_packet(self.topic(), b'once', qos=2, pid=9)
        dup = mqttraw.publish_packet(self.topic(), b'once', qos=2, pid=9, dup=True)
        p.send(pkt)
        self.assertEqual(p.expect(PUBREC).pid, 9)
        p.send(dup)
        self.assertEqual(p.expect(PUBREC).pid, 9)
        p.send(ack_packet(PUBREL, 9))
        self.assertEqual(p.expect(PUBCOMP).pid, 9)
        self.assertEqual(s.expect_publish().payload, b'once')
        s.expect_nothing(0.5)
        # the packet id is free again: the same id carries a new message
        p.publish(self.topic(), b'twice', qos=2, pid=9)
        self.assertEqual(s.expect_publish().payload, b'twice')
        s.expect_nothing(0.3)

    def test_qos2_pubrel_for_unknown_id_gets_pubcomp(self):
        p = self.raw_connected()
        p.send(ack_packet(PUBREL, 1234))
        self.assertEqual(p.expect(PUBCOMP).pid, 1234)

    def test_qos1_duplicate_publish_is_acked(self):
        # at-least-once: a resent QoS 1 PUBLISH is acknowledged again
        s = self.subscribed(1)
        p = self.raw_connected()
        p.send(mqttraw.publish_packet(self.topic(), b'q1', qos=1, pid=5))
        self.assertEqual(p.expect(PUBACK).pid, 5)
        p.send(mqttraw.publish_packet(self.topic(), b'q1', qos=1, pid=5, dup=True))
        self.assertEqual(p.expect(PUBACK).pid, 5)
        self.assertEqual(s.expect_publish().payload, b'q1')

    def test_delivered_qos_is_minimum(self):
        s = self.raw_connected()
        s.subscribe([(self.topic('g0'), 0), (self.topic('g1'), 1), (self.topic('g2'), 2)],
                    expect_granted=[0, 1, 2])
        p = self.raw_connected()
        for g in range(3):
            for q in range(3):
                p.publish(self.topic('g%d' % g), b'%d%d' % (g, q), qos=q)
                m = s.expect_publish()
                self.assertEqual((m.payload, m.qos), (b'%d%d' % (g, q), min(g, q)),
                                 'granted %d, published %d' % (g, q))

    def test_overlapping_subscriptions_deliver_once_at_highest_qos(self):
        s = self.raw_connected()
        s.subscribe([(self.topic('a/+'), 0), (self.topic('a/#'), 2), (self.topic('a/b'), 1)],
                    expect_granted=[0, 2, 1])
        s.subscribe([(self.topic('#'), 1)], expect_granted=[1])
        p = self.raw_connected()
        for q in (2, 1, 0):
            p.publish(self.topic('a/b'), b'ov%d' % q, qos=q)
            m = s.expect_publish()
            self.assertEqual(m.payload, b'ov%d' % q)
            if not harness.IS_MOSQUITTO:  # mosquitto 2.0.11 does not take the highest
                self.assertEqual(m.qos, q)
            s.expect_nothing(0.3)

    def test_resubscribe_replaces_qos(self):
        s = self.subscribed(2)
        s.subscribe([(self.topic(), 0)], expect_granted=[0])
        p = self.raw_connected()
        p.publish(self.topic(), b'r', qos=2)
        m = s.expect_publish()
        self.assertEqual(m.qos, 0)
        s.expect_nothing(0.3)

    def test_unsubscribe(self):
        s = self.raw_connected()
        s.subscribe([(self.topic('x'), 1), (self.topic('y'), 1)])
        ack = s.unsubscribe([self.topic('x'), self.topic('never-subscribed')])
        self.assertEqual((ack.flags, len(ack.body)), (0, 2))
        p = self.raw_connected()
        p.publish(self.topic('x'), b'gone', qos=1)
        p.publish(self.topic('y'), b'kept', qos=1)
        self.assertEqual(s.expect_publish().payload, b'kept')
        s.expect_nothing(0.3)

    def test_client_receives_own_messages(self):
        c = self.subscribed(1)
        c.send(mqttraw.publish_packet(self.topic(), b'self', qos=1, pid=3))
        got = {}
        for _ in range(2):
            pkt = c.read_packet()
            got[pkt.type] = pkt
            if pkt.type == PUBLISH:
                c.send(ack_packet(PUBACK, pkt.pid))
        self.assertEqual(got[PUBACK].pid, 3)
        self.assertEqual(got[PUBLISH].payload, b'self')

    def test_order_preserved_qos1(self):
        s = self.subscribed(1)
        p = self.raw_connected()
        n = 200
        for i in range(n):
            p.send(mqttraw.publish_packet(self.topic(), b'%d' % i, qos=1, pid=i + 1))
        acks = [p.expect(PUBACK).pid for _ in range(n)]
        self.assertEqual(sorted(acks), list(range(1, n + 1)))
        got = [int(s.expect_publish().payload) for _ in range(n)]
        self.assertEqual(got, list(range(n)))

    def test_order_preserved_qos0_burst(self):
        s = self.subscribed(0)
        p = self.raw_connected()
        n = 500
        p.send(b''.join(mqttraw.publish_packet(self.topic(), b'%d' % i) for i in range(n)))
        got = [int(s.expect_publish().payload) for _ in range(n)]
        self.assertEqual(got, list(range(n)))

    def test_payload_sizes(self):
        s = self.subscribed(1)
        p = self.raw_connected()
        for size in (0, 1, 127, 128, 16383, 16384, 200000):
            payload = bytes(i % 251 for i in range(size))
            p.publish(self.topic(), payload, qos=1)
            m = s.expect_publish()
            self.assertEqual(len(m.payload), size)
            self.assertEqual(m.payload, payload)

    def test_binary_payload_and_utf8_topic(self):
        s = self.raw_connected()
        topic = self.topic('\u00fcber/\u65e5\u672c/\U0001F426')
        s.subscribe([(topic, 0)])
        p = self.raw_connected()
        p.publish(topic, b'\x00\xff\x00\x10', qos=0)
        m = s.expect_publish()
        self.assertEqual((m.topic, m.payload), (topic, b'\x00\xff\x00\x10'))

    def test_fan_out(self):
        subs = []
        for i in range(20):
            c = self.raw_connected()
            c.subscribe([(self.topic(), i % 3)])
            subs.append(c)
        p = self.raw_connected()
        p.publish(self.topic(), b'fan', qos=2)
        for i, c in enumerate(subs):
            m = c.expect_publish()
            self.assertEqual((m.payload, m.qos), (b'fan', i % 3))

    def test_subscribe_many_filters_in_one_packet(self):
        s = self.raw_connected()
        filters = [(self.topic('f%d' % i), i % 3) for i in range(50)]
        self.assertEqual(s.subscribe(filters), [q for _, q in filters])

    def test_paho_qos_levels(self):
        sub = self.paho()
        sub.connect()
        self.assertEqual(sub.subscribe(self.topic('#'), 2), [2])
        pub = self.paho()
        pub.connect()
        for q in (0, 1, 2):
            pub.publish(self.topic('q%d' % q), b'paho-%d' % q, qos=q)
            m = sub.get()
            self.assertEqual((m.topic, m.payload, m.qos), (self.topic('q%d' % q), b'paho-%d' % q, q))
        pub.disconnect()
        sub.disconnect()


class InvalidFilterTest(BrokerTestCase):

    def test_invalid_filter_closes_the_connection(self):
        # A filter against the wildcard rules [MQTT-4.7.1-1/2] is a protocol
        # violation: the connection is closed [MQTT-4.8.0-1], as Mosquitto
        # does; the valid filters of the same packet are not applied.
        for bad in ('a/#/b', 'a+', '#a', 'a/b#', '+a/b'):
            with self.subTest(filter=bad):
                s = self.raw_connected()
                s.send(mqttraw.subscribe_packet(1, [(self.topic('ok'), 1), (bad, 1)]))
                self.assertTrue(s.wait_closed(3), 'connection left open')
                self.assertEqual(s.before_close, [])
        # the broker serves others
        s = self.raw_connected()
        self.assertEqual(s.subscribe([(self.topic('ok'), 1)]), [1])
        p = self.raw_connected()
        p.publish(self.topic('ok'), b'v', qos=1)
        self.assertEqual(s.expect_publish().payload, b'v')

if __name__ == '__main__':
    harness.main()
