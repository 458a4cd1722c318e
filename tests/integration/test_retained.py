"""Retained messages: stored per topic, flagged on new subscriptions,
replaced, cleared by an empty payload, QoS capped by the subscription."""

import harness
from harness import BrokerTestCase


class RetainedTest(BrokerTestCase):

    def test_new_subscriber_gets_retained_with_flag(self):
        p = self.raw_connected()
        p.publish(self.topic(), b'kept', qos=1, retain=True)
        s = self.subscribed(1)
        m = s.expect_publish()
        self.assertEqual((m.payload, m.retain, m.qos), (b'kept', True, 1))
        s.expect_nothing(0.3)

    def test_established_subscriber_gets_flag_clear(self):
        s = self.subscribed(1)
        p = self.raw_connected()
        p.publish(self.topic(), b'live', qos=1, retain=True)
        m = s.expect_publish()
        self.assertEqual((m.payload, m.retain), (b'live', False))

    def assert_retained_is(self, payload):
        """A new subscriber to the test's topic gets `payload`, only."""
        s = self.subscribed(0)
        self.assertEqual(s.expect_publish().payload, payload)
        s.expect_nothing(0.3)

    def test_latest_replaces(self):
        p = self.raw_connected()
        for i in range(5):
            p.publish(self.topic(), b'v%d' % i, qos=1, retain=True)
        self.assert_retained_is(b'v4')

    def test_non_retained_publish_keeps_retained(self):
        p = self.raw_connected()
        p.publish(self.topic(), b'retained', qos=1, retain=True)
        p.publish(self.topic(), b'transient', qos=1, retain=False)
        self.assert_retained_is(b'retained')

    def test_empty_payload_clears(self):
        p = self.raw_connected()
        p.publish(self.topic(), b'soon gone', qos=1, retain=True)
        live = self.subscribed(0)
        self.assertEqual(live.expect_publish().payload, b'soon gone')
        p.publish(self.topic(), b'', qos=1, retain=True)
        # established subscribers still receive the (empty) message
        m = live.expect_publish()
        self.assertEqual((m.payload, m.retain), (b'', False))
        s = self.subscribed(0)
        s.expect_nothing(0.5)

    def test_retained_qos_capped_by_subscription(self):
        p = self.raw_connected()
        p.publish(self.topic('q2'), b'two', qos=2, retain=True)
        p.publish(self.topic('q0'), b'zero', qos=0, retain=True)
        s = self.raw_connected()
        s.subscribe([(self.topic('q2'), 1)])
        m = s.expect_publish()
        self.assertEqual((m.payload, m.qos, m.retain), (b'two', 1, True))
        s.subscribe([(self.topic('q0'), 2)])
        m = s.expect_publish()
        self.assertEqual((m.payload, m.qos, m.retain), (b'zero', 0, True))

    def test_wildcard_subscription_gets_all_matching(self):
        p = self.raw_connected()
        topics = [self.topic('a'), self.topic('a/b'), self.topic('a/b/c'), self.topic('x/b')]
        for t in topics:
            p.publish(t, t.encode(), qos=1, retain=True)
        s = self.raw_connected()
        s.subscribe([(self.topic('a/#'), 0)])
        got = sorted(s.expect_publish().topic for _ in range(3))
        self.assertEqual(got, sorted(topics[:3]))
        s.expect_nothing(0.3)
        s2 = self.raw_connected()
        s2.subscribe([(self.topic('+/b'), 0)])
        got = sorted(s2.expect_publish().topic for _ in range(2))
        self.assertEqual(got, sorted([self.topic('a/b'), self.topic('x/b')]))

    def test_resubscribe_sends_retained_again(self):
        p = self.raw_connected()
        p.publish(self.topic(), b'again', qos=0, retain=True)
        s = self.subscribed(0)
        self.assertTrue(s.expect_publish().retain)
        s.subscribe([(self.topic(), 0)])
        m = s.expect_publish()
        self.assertEqual((m.payload, m.retain), (b'again', True))

    def test_retained_survives_publisher_disconnect(self):
        p = self.raw_connected()
        p.publish(self.topic(), b'orphan', qos=1, retain=True)
        p.disconnect()
        s = self.subscribed(1)
        self.assertEqual(s.expect_publish().payload, b'orphan')

    def test_retained_large_payload(self):
        payload = bytes(range(256)) * 400
        p = self.raw_connected()
        p.publish(self.topic(), payload, qos=1, retain=True)
        s = self.subscribed(1)
        self.assertEqual(s.expect_publish().payload, payload)

    def test_retained_with_paho(self):
        pub = self.paho()
        pub.connect()
        pub.publish(self.topic(), b'paho-retained', qos=1, retain=True)
        sub = self.paho()
        sub.connect()
        sub.subscribe(self.topic(), 1)
        m = sub.get()
        self.assertEqual((m.payload, m.retain), (b'paho-retained', 1))
        pub.disconnect()
        sub.disconnect()


if __name__ == '__main__':
    harness.main()
