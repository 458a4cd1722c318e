"""Sessions: takeover, persistent sessions (offline queueing, resend of
unacknowledged messages with DUP, in order), clean sessions."""

import time

import harness
from harness import BrokerTestCase
import mqttraw
from mqttraw import PUBACK, PUBREC, PUBREL, PUBCOMP, ack_packet


class SessionTest(BrokerTestCase):

    def cid(self, name):
        """A client id made from `name`; its session is removed when the
        test ends, so that it cannot affect later tests."""
        cid = '%s-%d' % (name, int(time.time() * 1000) % 1000000)
        self.addCleanup(self.cleanup_session, cid)
        return cid

    def persistent_subscriber(self, name, qos):
        """cid(name) and its persistent session, connected and subscribed to
        the test's topic at qos."""
        cid = self.cid(name)
        return cid, self.subscribed(qos, cid, clean=False)

    def reconnect(self, cid, clean, present):
        """A new connection with client id cid and the clean flag; asserts
        what CONNACK says of a present session."""
        c = self.raw()
        self.assertEqual(c.connect(cid, clean=clean).session_present, present)
        return c

    def taken_over(self, name, clean, present):
        """A persistent subscriber (cid(name), QoS 1) whose session a new
        connection with the clean flag takes over: asserts what CONNACK
        says of a present session and that the old connection is closed;
        returns the new one."""
        cid, old = self.persistent_subscriber(name, 1)
        new = self.reconnect(cid, clean, present)
        self.assertTrue(old.wait_closed(3), 'old connection not closed on takeover')
        return new

    def publish_from_new(self, payload, qos=1):
        """Publishes payload to the test's topic from a new connection,
        which it returns."""
        p = self.raw_connected()
        p.publish(self.topic(), payload, qos=qos)
        return p

    def cleanup_session(self, cid):
        """Removes a persistent session."""
        c = self.raw()
        c.connect(cid, clean=True)
        c.disconnect()

    def test_takeover_closes_old_connection(self):
        old = self.raw_connected('takeover-me')
        new = self.raw_connected('takeover-me')
        self.assertTrue(old.wait_closed(3), 'old connection not closed on takeover')
        new.ping()
        # and once more, so a takeover of a takeover works
        newer = self.raw_connected('takeover-me')
        self.assertTrue(new.wait_closed(3))
        newer.ping()

    def test_takeover_keeps_persistent_session(self):
        new = self.taken_over('takeover-persistent', False, True)
        self.publish_from_new(b'to-new')
        self.assertEqual(new.expect_publish().payload, b'to-new')
        new.disconnect()

    def test_takeover_with_clean_session_drops_subscriptions(self):
        new = self.taken_over('takeover-clean', True, False)
        self.publish_from_new(b'nobody')
        new.expect_nothing(0.5)

    def test_offline_queue_with_paho(self):
        cid = self.cid('paho-offline')
        sub = self.paho(cid, clean_session=False)
        sub.connect()
        sub.subscribe(self.topic(), 2)
        sub.disconnect()
        pub = self.paho()
        pub.connect()
        pub.publish(self.topic(), b'q1-a', qos=1)
        pub.publish(self.topic(), b'q0-lost', qos=0)
        pub.publish(self.topic(), b'q2-b', qos=2)
        pub.publish(self.topic(), b'q1-c', qos=1)
        pub.disconnect()
        sub = self.paho(cid, clean_session=False)
        self.assertTrue(sub.connect())
        got = [(m.payload, m.qos) for m in (sub.get(), sub.get(), sub.get())]
        # paho hands a QoS 2 message over only at PUBREL, so order is only
        # comparable within one QoS
        self.assertEqual(sorted(got), [(b'q1-a', 1), (b'q1-c', 1), (b'q2-b', 2)])
        self.assertEqual([g for g in got if g[1] == 1], [(b'q1-a', 1), (b'q1-c', 1)])
        sub.expect_nothing(0.5)   # QoS 0 is not queued for offline clients
        sub.disconnect()

    def test_offline_queue_with_mosquitto_sub(self):
        cid = self.cid('msub-offline')
        first = self.mosquitto_sub(self.topic(), qos=1, client_id=cid, clean=False, extra=['-E'])
        first.wait_subscribed()
        self.assertEqual(first.wait_exit(5), 0)
        for i in range(3):
            self.mosquitto_pub(self.topic(), 'offline-%d' % i, qos=1)
        again = self.mosquitto_sub(self.topic(), qos=1, client_id=cid, clean=False,
                                   extra=['-C', '3', '-W', '10'])
        got = [again.get()[3] for _ in range(3)]
        self.assertEqual(got, ['offline-0', 'offline-1', 'offline-2'])
        self.assertEqual(again.wait_exit(5), 0)

    def test_persistent_subscription_survives_reconnect(self):
        cid, c = self.persistent_subscriber('persist-sub', 1)
        c.disconnect()
        c = self.reconnect(cid, False, True)
        self.publish_from_new(b'live-after-reconnect')
        self.assertEqual(c.expect_publish().payload, b'live-after-reconnect')
        c.disconnect()

    def test_unacked_resent_with_dup_in_order(self):
        cid, c = self.persistent_subscriber('dup-resend', 1)
        p = self.raw_connected()
        for i in range(3):
            p.publish(self.topic(), b'inflight-%d' % i, qos=1)
        first = [c.expect_publish(ack=False) for _ in range(3)]
        self.assertEqual([m.payload for m in first], [b'inflight-%d' % i for i in range(3)])
        self.assertFalse(any(m.dup for m in first))
        c.close()   # no acks, no DISCONNECT
        time.sleep(0.2)
        for i in range(2):
            p.publish(self.topic(), b'queued-%d' % i, qos=1)
        c = self.reconnect(cid, False, True)
        again = [c.expect_publish(ack=False) for _ in range(5)]
        self.assertEqual([m.payload for m in again],
                         [b'inflight-0', b'inflight-1', b'inflight-2', b'queued-0', b'queued-1'])
        self.assertEqual([m.dup for m in again[:3]], [True] * 3)
        self.assertEqual([m.pid for m in again[:3]], [m.pid for m in first])
        self.assertEqual([m.dup for m in again[3:]], [False] * 2)
        for m in again:
            c.send(ack_packet(PUBACK, m.pid))
        c.expect_nothing(0.5)
        c.disconnect()
        c = self.reconnect(cid, False, True)
        c.expect_nothing(0.5)   # everything was acknowledged
        c.disconnect()

    def test_qos2_pubrel_resent_after_reconnect(self):
        cid, c = self.persistent_subscriber('pubrel-resend', 2)
        self.publish_from_new(b'exactly-once', qos=2)
        m = c.expect_publish(ack=False)
        c.send(ack_packet(PUBREC, m.pid))
        rel = c.expect(PUBREL)
        self.assertEqual(rel.pid, m.pid)
        c.close()   # PUBREL not answered
        c = self.reconnect(cid, False, True)
        rel = c.expect(PUBREL)   # not the PUBLISH again
        self.assertEqual((rel.pid, rel.flags), (m.pid, 0x02))
        c.send(ack_packet(PUBCOMP, m.pid))
        c.expect_nothing(0.5)
        c.disconnect()

    def test_qos2_unreceived_publish_resent_with_dup(self):
        cid, c = self.persistent_subscriber('q2-resend', 2)
        self.publish_from_new(b'q2-again', qos=2)
        m = c.expect_publish(ack=False)
        c.close()
        c = self.raw()
        c.connect(cid, clean=False)
        m2 = c.expect_publish(ack=False)
        self.assertEqual((m2.payload, m2.dup, m2.pid, m2.qos), (b'q2-again', True, m.pid, 2))
        c.send(ack_packet(PUBREC, m2.pid))
        self.assertEqual(c.expect(PUBREL).pid, m2.pid)
        c.send(ack_packet(PUBCOMP, m2.pid))
        c.expect_nothing(0.3)
        c.disconnect()

    def test_inbound_qos2_state_survives_reconnect(self):
        # publisher: PUBLISH QoS 2, PUBREC, drops, reconnects, sends PUBREL
        cid = self.cid('q2-inbound')
        s = self.subscribed(2)
        p = self.raw_connected(cid, clean=False)
        p.send(mqttraw.publish_packet(self.topic(), b'in-q2', qos=2, pid=321))
        self.assertEqual(p.expect(PUBREC).pid, 321)
        p.close()
        p = self.reconnect(cid, False, True)
        p.send(ack_packet(PUBREL, 321))
        self.assertEqual(p.expect(PUBCOMP).pid, 321)
        self.assertEqual(s.expect_publish().payload, b'in-q2')
        s.expect_nothing(0.5)
        p.disconnect()

    def test_clean_session_discards_state(self):
        cid, c = self.persistent_subscriber('clean-discard', 1)
        c.disconnect()
        c = self.reconnect(cid, True, False)
        c.disconnect()
        self.publish_from_new(b'after-clean')
        c = self.reconnect(cid, False, False)
        c.expect_nothing(0.5)
        c.disconnect()

    def test_clean_session_gets_nothing_from_while_offline(self):
        cid = self.cid('clean-offline')
        c = self.subscribed(1, cid, clean=True)
        c.disconnect()
        self.raw_connected().publish(self.topic(), b'missed', qos=1)
        c = self.reconnect(cid, True, False)
        c.expect_nothing(0.5)

    def test_queue_survives_takeover_while_online_messages_pending(self):
        cid, c = self.persistent_subscriber('pending-takeover', 1)
        self.publish_from_new(b'pending')
        m = c.expect_publish(ack=False)
        c2 = self.reconnect(cid, False, True)
        m2 = c2.expect_publish(ack=False)
        self.assertEqual((m2.payload, m2.dup, m2.pid), (b'pending', True, m.pid))
        c2.send(ack_packet(PUBACK, m2.pid))
        c2.disconnect()


class QueueLimitTest(BrokerTestCase):
    broker_settings = {'max_queued_messages': 5, 'max_inflight': 20}

    def test_queue_bounded(self):
        cid = 'bounded-queue'
        c = self.subscribed(1, cid, clean=False)
        c.disconnect()
        p = self.raw_connected()
        for i in range(12):
            p.publish(self.topic(), b'%d' % i, qos=1)   # each still acknowledged
        c = self.raw()
        c.connect(cid, clean=False)
        got = []
        while True:
            try:
                got.append(int(c.expect_publish(timeout=0.7).payload))
            except mqttraw.Timeout:
                break
        self.assertGreater(len(got), 0)
        self.assertLessEqual(len(got), 5)
        self.assertEqual(got, sorted(got), 'queued messages out of order')
        c.disconnect()
        self.raw_connected(cid, clean=True).disconnect()


if __name__ == '__main__':
    harness.main()
