"""Topic matching: wildcards, '$' topics, and the $SYS statistics."""

import re
import time

import harness
from harness import BrokerTestCase
import mqttraw


def matches(filt, topic):
    """Reference matcher (MQTT 3.1.1 section 4.7), independent of the broker."""
    if topic.startswith('$') and filt[:1] in ('+', '#'):
        return False
    f, t = filt.split('/'), topic.split('/')
    for i, level in enumerate(f):
        if level == '#':
            return True
        if i >= len(t):
            return False
        if level != '+' and level != t[i]:
            return False
    return len(f) == len(t)


class MatcherSelfTest(harness.unittest.TestCase):
    def test_reference_matcher(self):
        yes = [('a/#', 'a'), ('a/#', 'a/b/c'), ('#', 'a'), ('+', 'a'), ('+/+', '/a'),
               ('/+', '/a'), ('a/+/c', 'a//c'), ('+/#', 'a'), ('a/+', 'a/')]
        no = [('a/+', 'a'), ('+', '/a'), ('a', 'a/b'), ('#', '$SYS/x'), ('+/x', '$SYS/x'),
              ('a/+/c', 'a/b/c/d'), ('b/#', 'a')]
        for f, t in yes:
            self.assertTrue(matches(f, t), (f, t))
        for f, t in no:
            self.assertFalse(matches(f, t), (f, t))


class WildcardTest(BrokerTestCase):

    def test_matching_table(self):
        # Runs on its own broker: filters starting with a wildcard see
        # everything published on it.
        b = self.start_broker()
        topics = ['a', 'a/b', 'a/b/c', 'a/c', 'b/b', '/a', 'a/', 'a//c', 'A/b', 'a/b/c/d',
                  '/', '$app/a', '$app']
        filters = ['a', 'a/#', 'a/+', '+/b', '+/+', '#', 'a/+/c', '+', '/+', 'a/b/#',
                   '+/#', 'a/+/+/d', '+/+/+', '$app/#', '$app/+', '$app', 'A/#', '/#']
        subs = {}
        for f in filters:
            c = self.raw_connected(port=b.port)
            c.subscribe([(f, 1), ('zz/end', 1)], expect_granted=[1, 1])
            subs[f] = c
        p = self.raw_connected(port=b.port)
        for t in topics:
            p.publish(t, t.encode(), qos=1)
        p.publish('zz/end', b'end', qos=1)
        for f, c in subs.items():
            got = []
            while True:
                m = c.expect_publish()
                if m.topic == 'zz/end':
                    break
                got.append(m.topic)
            want = [t for t in topics if matches(f, t)]
            self.assertEqual(got, want, 'filter %r' % f)

    def test_sys_not_matched_by_leading_wildcards(self):
        b = self.start_broker({'sys_interval': 1})
        hash_sub = self.raw_connected(port=b.port)
        hash_sub.subscribe([('#', 0), ('+/broker/#', 0), ('+/+/version', 0)])
        sys_sub = self.raw_connected(port=b.port)
        sys_sub.subscribe([('$SYS/#', 0)])
        m = sys_sub.expect_publish(timeout=3)
        self.assertTrue(m.topic.startswith('$SYS/'), m.topic)
        hash_sub.expect_nothing(1.5)


class SysTest(BrokerTestCase):
    broker_settings = {'sys_interval': 1}

    REQUIRED = ['$SYS/broker/version', '$SYS/broker/uptime',
                '$SYS/broker/clients/connected', '$SYS/broker/messages/received',
                '$SYS/broker/messages/sent', '$SYS/broker/bytes/received',
                '$SYS/broker/bytes/sent', '$SYS/broker/subscriptions/count',
                '$SYS/broker/retained messages/count',
                '$SYS/broker/publish/messages/dropped' if harness.IS_MOSQUITTO
                else '$SYS/broker/publish/dropped']

    def collect(self, c, topics, timeout=4.0):
        """Latest value of each topic, waiting until all were seen."""
        seen = {}
        deadline = time.monotonic() + timeout
        while not all(t in seen for t in topics):
            left = deadline - time.monotonic()
            if left <= 0:
                self.fail('$SYS topics missing after %.0fs: %s' %
                          (timeout, sorted(set(topics) - set(seen))))
            try:
                m = c.expect_publish(timeout=left)
            except mqttraw.Timeout:
                continue
            seen[m.topic] = m
        return seen

    def test_sys_topics_present_and_retained(self):
        c = self.raw_connected()
        c.subscribe([('$SYS/broker/#', 0)])
        seen = self.collect(c, self.REQUIRED)
        # a new subscription gets the current values as retained messages
        late = self.raw_connected()
        late.subscribe([('$SYS/broker/version', 0)])
        m = late.expect_publish(timeout=3)
        self.assertTrue(m.retain)
        self.assertTrue(m.payload)
        for t in self.REQUIRED:
            if t.endswith('/version') or t.endswith('/uptime'):
                continue
            self.assertRegex(seen[t].payload.decode(), r'^\d+$', t)

    def test_sys_stats_change(self):
        c = self.raw_connected()
        c.subscribe([('$SYS/broker/messages/received', 0), ('$SYS/broker/uptime', 0),
                     ('$SYS/broker/clients/connected', 0)])
        first = self.collect(c, ['$SYS/broker/messages/received', '$SYS/broker/uptime',
                                 '$SYS/broker/clients/connected'])
        before = int(first['$SYS/broker/messages/received'].payload)
        connected = int(first['$SYS/broker/clients/connected'].payload)
        p = self.raw_connected()
        for i in range(10):
            p.publish(self.topic(), b'count me', qos=1)
        deadline = time.monotonic() + 4
        uptime0 = first['$SYS/broker/uptime'].payload
        uptime_changed = False
        received = before
        # the first values may predate this test's clients: wait for fresh ones
        while time.monotonic() < deadline and not (
                uptime_changed and received >= before + 10 and connected >= 2):
            try:
                m = c.expect_publish(timeout=max(0.05, deadline - time.monotonic()))
            except mqttraw.Timeout:
                break
            if m.topic == '$SYS/broker/uptime' and m.payload != uptime0:
                uptime_changed = True
            elif m.topic == '$SYS/broker/messages/received':
                received = int(m.payload)
            elif m.topic == '$SYS/broker/clients/connected':
                connected = int(m.payload)
        self.assertTrue(uptime_changed, 'uptime did not change')
        self.assertGreaterEqual(received, before + 10)
        self.assertGreaterEqual(connected, 2)

    def test_sys_retained_count(self):
        c = self.raw_connected()
        p = self.raw_connected()
        p.publish(self.topic('r1'), b'x', qos=1, retain=True)
        p.publish(self.topic('r2'), b'x', qos=1, retain=True)
        value = harness.read_counter(c, '$SYS/broker/retained messages/count', 2, 4)
        self.assertIsNotNone(value)
        self.assertGreaterEqual(value, 2)
        p.publish(self.topic('r1'), b'', qos=1, retain=True)
        p.publish(self.topic('r2'), b'', qos=1, retain=True)

    @harness.skip_on_mosquitto('$SYS value formats differ')
    def test_sys_version_and_uptime_format(self):
        c = self.raw_connected()
        c.subscribe([('$SYS/broker/version', 0), ('$SYS/broker/uptime', 0)])
        seen = self.collect(c, ['$SYS/broker/version', '$SYS/broker/uptime'])
        self.assertIn(b'petrel', seen['$SYS/broker/version'].payload.lower())
        self.assertRegex(seen['$SYS/broker/uptime'].payload.decode(), r'^\d+( seconds)?$')

    def test_clients_cannot_match_sys_with_plus_prefix(self):
        c = self.raw_connected()
        c.subscribe([('+/broker/version', 0)])
        c.expect_nothing(1.3)


if __name__ == '__main__':
    harness.main()
