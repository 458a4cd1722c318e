"""Durable store: what survives a graceful restart (SIGTERM, then a new
petreld on the same data directory).

Persistent sessions (clean session 0) with their subscriptions, their queued
QoS 1 and QoS 2 messages, in-flight QoS 2 handshakes, inbound QoS 2 packet
ids, and retained messages survive; clean sessions do not.  The same checks
run with durability = process (the default) and durability = power.

With PETREL_TEST_BROKER=mosquitto these run against mosquitto with
persistence true (which saves its state on SIGTERM), to check the tests.
"""

import time

import harness
from harness import BrokerTestCase, Collector
import mqttraw
from mqttraw import PUBREC, PUBREL, PUBCOMP, ack_packet


class RestartTest(BrokerTestCase):
    settings = {}

    def broker_for_test(self, extra=None):
        s = dict(self.settings)
        s.update(extra or {})
        return self.start_broker(s, persistence=True)

    def collector(self, b, cid, clean=False):
        c = Collector(b.port, cid, clean=clean, keepalive=20)
        self._clients.append(c)
        return c

    def raw_on(self, b, cid='', clean=True):
        c = self.raw(b.port)
        c.connect(cid, clean=clean, keepalive=20)
        return c

    def broker_with_subscriber(self, cid, qos):
        """A broker of this test, a topic, and the persistent session `cid`
        connected and subscribed to it at `qos`."""
        b = self.broker_for_test()
        t = self.topic()
        sub = self.raw_on(b, cid, clean=False)
        sub.subscribe([(t, qos)])
        return b, t, sub

    def publish_three(self, b, t, prefix):
        """`prefix`-0 .. -2 to t at QoS 1, from a fresh client."""
        pub = self.raw_on(b)
        for i in range(3):
            pub.publish(t, b'%s-%d' % (prefix, i), qos=1)
        pub.disconnect()

    def test_sessions_queues_retained_survive_sigterm_restart(self):
        b = self.broker_for_test()
        t = self.topic()
        # retained: a QoS 0 and a QoS 1 one, and one set then cleared
        pub = self.raw_on(b)
        pub.publish(t + '/r/zero', b'ret0', qos=0, retain=True)
        pub.publish(t + '/r/one', b'ret1', qos=1, retain=True)
        pub.publish(t + '/r/gone', b'old', qos=1, retain=True)
        pub.publish(t + '/r/gone', b'', qos=1, retain=True)
        # a persistent subscriber with two subscriptions goes offline
        sub = self.raw_on(b, 'rs-sub', clean=False)
        self.assertEqual(sub.subscribe([(t + '/q/#', 2), (t + '/one', 1)]), [2, 1])
        sub.disconnect()
        # a clean session stays connected through the restart
        clean = self.raw_on(b, 'rs-clean', clean=True)
        clean.subscribe([(t + '/q/#', 1)])
        pub.publish(t + '/q/a', b'm1', qos=1)
        pub.publish(t + '/q/b', b'm2', qos=2)
        pub.publish(t + '/q/a', b'lost-qos0', qos=0)   # not queued for offline sessions
        pub.publish(t + '/q/a', b'm3', qos=1)
        pub.publish(t + '/one', b'm4', qos=1)
        pub.publish(t + '/q/c', b'm5', qos=2)
        pub.ping()
        pub.disconnect()

        b.restart()

        # the persistent session is back, with its queue in order
        sub = self.collector(b, 'rs-sub')
        self.assertTrue(sub.session_present, 'persistent session lost in the restart')
        want = [(b'm1', 1), (b'm2', 2), (b'm3', 1), (b'm4', 1), (b'm5', 2)]
        got = sub.collect(done=lambda s: len(s.messages) >= len(want), idle=0.5, timeout=5)
        self.assertEqual([(bytes(m.payload), m.qos) for m in got], want,
                         'queued messages after the restart')
        self.assertEqual([m.retain for m in got], [False] * len(want))
        self.assertFalse(sub.awaiting_rel, 'QoS 2 handshakes not completed')
        # still subscribed: new messages arrive without a new SUBSCRIBE
        pub = self.raw_on(b)
        pub.publish(t + '/q/new', b'after-1', qos=1)
        pub.publish(t + '/one', b'after-2', qos=2)   # subscription QoS 1: downgraded
        got = sub.collect(done=lambda s: len(s.messages) >= len(want) + 2, idle=0.3, timeout=5)
        self.assertEqual([(bytes(m.payload), m.qos) for m in got[len(want):]],
                         [(b'after-1', 1), (b'after-2', 1)])
        sub.disconnect()
        # ... and nothing is delivered twice on the next connection
        again = self.collector(b, 'rs-sub')
        self.assertTrue(again.session_present)
        self.assertEqual(again.collect(idle=0.5), [], 'acknowledged messages redelivered')
        again.disconnect()

        # retained messages: both back, the cleared one stays cleared
        r = self.collector(b, 'rs-retained-reader', clean=True)
        r.subscribe([(t + '/r/#', 1)])
        got = r.collect(done=lambda s: len(s.messages) >= 2, idle=0.5, timeout=5)
        self.assertEqual(sorted((m.topic, bytes(m.payload), m.retain, m.qos) for m in got),
                         [(t + '/r/one', b'ret1', True, 1), (t + '/r/zero', b'ret0', True, 0)])

        # the clean session did not survive: no session, no subscription
        c = self.raw(b.port)
        self.assertFalse(c.connect('rs-clean', clean=False, keepalive=20).session_present,
                         'a clean session was restored after the restart')
        self.raw_on(b).publish(t + '/q/x', b'not-for-clean', qos=1)
        c.expect_nothing(0.5)
        c.disconnect()

    def test_restart_twice_and_offline_queue_across_restarts(self):
        # messages queued before the first restart, more between the two
        b, t, sub = self.broker_with_subscriber('rs-twice', 1)
        sub.disconnect()
        self.publish_three(b, t, b'before')
        b.restart()
        self.publish_three(b, t, b'between')
        b.restart()
        sub = self.collector(b, 'rs-twice')
        self.assertTrue(sub.session_present)
        got = sub.collect(done=lambda s: len(s.messages) >= 6, idle=0.5, timeout=5)
        self.assertEqual([bytes(m.payload) for m in got],
                         [b'before-0', b'before-1', b'before-2',
                          b'between-0', b'between-1', b'between-2'])
        sub.disconnect()

    def test_inflight_qos2_handshake_survives_restart(self):
        b, t, sub = self.broker_with_subscriber('rs-q2-inflight', 2)
        pub = self.raw_on(b)
        pub.publish(t, b'half-done', qos=2)
        pub.publish(t, b'not-received', qos=2)
        first = sub.expect_publish(ack=False)
        second = sub.expect_publish(ack=False)
        self.assertEqual((first.payload, second.payload), (b'half-done', b'not-received'))
        sub.send(ack_packet(PUBREC, first.pid))
        self.assertEqual(sub.expect(PUBREL).pid, first.pid)
        # no PUBCOMP for the first, no PUBREC for the second
        sub.ping()
        sub.close()
        pub.disconnect()

        b.restart()

        sub = self.raw(b.port)
        self.assertTrue(sub.connect('rs-q2-inflight', clean=False, keepalive=20).session_present)
        # the first is waiting for PUBCOMP: its PUBREL comes again, not the
        # PUBLISH; the second comes again (DUP allowed) - each exactly once
        seen_rel = []
        seen_pub = []
        deadline = time.monotonic() + 5
        while len(seen_rel) + len(seen_pub) < 2 and time.monotonic() < deadline:
            p = sub.read_packet(max(0.05, deadline - time.monotonic()))
            if p.type == PUBREL:
                seen_rel.append(p.pid)
                sub.send(ack_packet(PUBCOMP, p.pid))
            elif p.type == mqttraw.PUBLISH:
                seen_pub.append(p)
            else:
                self.fail('unexpected %r' % p)
        self.assertEqual(seen_rel, [first.pid], 'PUBREL of the half-done handshake')
        self.assertEqual([bytes(p.payload) for p in seen_pub], [b'not-received'],
                         'a PUBLISH whose PUBREC was sent came again, or the unreceived one is lost')
        m = seen_pub[0]
        self.assertEqual(m.qos, 2)
        sub.send(ack_packet(PUBREC, m.pid))
        self.assertEqual(sub.expect(PUBREL).pid, m.pid)
        sub.send(ack_packet(PUBCOMP, m.pid))
        sub.expect_nothing(0.5)
        sub.disconnect()
        again = self.raw(b.port)
        self.assertTrue(again.connect('rs-q2-inflight', clean=False, keepalive=20).session_present)
        again.expect_nothing(0.5)
        again.disconnect()

    def test_inflight_qos1_resent_with_its_id_after_restart(self):
        """3.1.1 [MQTT-4.4.0-1]: unacknowledged QoS 1 messages are resent with
        their original packet ids and DUP, also across a graceful restart."""
        b, t, sub = self.broker_with_subscriber('rs-q1-inflight', 1)
        pub = self.raw_on(b)
        pub.publish(t, b'unacked-1', qos=1)
        pub.publish(t, b'unacked-2', qos=1)
        sent = [sub.expect_publish(ack=False) for _ in range(2)]
        self.assertEqual([bytes(p.payload) for p in sent], [b'unacked-1', b'unacked-2'])
        sub.close()
        pub.disconnect()

        b.restart()

        sub = self.raw(b.port)
        self.assertTrue(sub.connect('rs-q1-inflight', clean=False, keepalive=20).session_present)
        again = [sub.expect_publish(ack=True) for _ in range(2)]
        self.assertEqual([(bytes(p.payload), p.pid, p.dup) for p in again],
                         [(bytes(p.payload), p.pid, True) for p in sent],
                         'in-flight QoS 1 not resent in order with its packet id and DUP')
        sub.expect_nothing(0.5)
        sub.disconnect()

    def test_inbound_qos2_id_survives_restart(self):
        # The publisher's QoS 2 handshake spans the restart: the broker
        # must remember packet id 321 so that a resent PUBLISH is not a
        # second message.
        b = self.broker_for_test()
        t = self.topic()
        sub = self.collector(b, 'rs-q2-in-sub')
        sub.subscribe([(t, 2)])
        pub = self.raw_on(b, 'rs-q2-in-pub', clean=False)
        pub.send(mqttraw.publish_packet(t, b'once', qos=2, pid=321))
        self.assertEqual(pub.expect(PUBREC).pid, 321)
        pub.ping()
        sub.collect(idle=0.5)     # the broker may deliver it now (or at PUBREL)
        pub.close()               # no PUBREL yet
        sub.close()

        b.restart()

        pub = self.raw(b.port)
        self.assertTrue(pub.connect('rs-q2-in-pub', clean=False, keepalive=20).session_present,
                        'persistent publisher session lost in the restart')
        # as a client that missed the PUBREC would: the same PUBLISH with DUP
        pub.send(mqttraw.publish_packet(t, b'once', qos=2, pid=321, dup=True))
        self.assertEqual(pub.expect(PUBREC).pid, 321)
        pub.send(ack_packet(PUBREL, 321))
        self.assertEqual(pub.expect(PUBCOMP).pid, 321)
        sub2 = self.collector(b, 'rs-q2-in-sub')
        self.assertTrue(sub2.session_present)
        sub2.collect(idle=0.7)
        copies = [bytes(m.payload) for m in sub.messages + sub2.messages]
        self.assertEqual(copies, [b'once'], 'QoS 2 message not delivered exactly once')
        # the id is free again: a new message with id 321 is a new message
        pub.publish(t, b'next', qos=2, pid=321)
        sub2.collect(done=lambda s: any(bytes(m.payload) == b'next' for m in s.messages),
                     idle=0.3, timeout=5)
        self.assertIn(b'next', [bytes(m.payload) for m in sub2.messages])
        pub.disconnect()
        sub2.disconnect()


class PowerRestartTest(RestartTest):
    """The same with durability = power (fsync before acknowledging)."""
    settings = {'durability': 'power'}


if harness.IS_MOSQUITTO:
    del PowerRestartTest   # no such setting


if __name__ == '__main__':
    harness.main()
