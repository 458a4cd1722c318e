"""Abuse through retained messages (issue #14 item 3): the retained store is
bounded by max_retained_messages and max_retained_bytes, in memory and on
disk.  A new retained topic over the limit is not kept but still routed;
replacing or clearing a topic works at the limit.  petreld only."""

import glob
import os
import time

import harness
from harness import BrokerTestCase, skip_on_mosquitto
import mqttraw
import security_helpers as sec
from test_abuse import sys_values


def disk_bytes(data_dir):
    return sum(os.path.getsize(p) for p in glob.glob(os.path.join(data_dir, 'petrel.db*')))


@skip_on_mosquitto('petreld retained limits')
class RetainedFloodTest(sec.SmallAsanQuarantine, BrokerTestCase):
    """600 retained messages of 1 MB from one anonymous client, with the
    default limits: memory and disk stay near max_retained_bytes (64 MiB)."""

    broker_settings = {'log_level': 'notice'}
    N, SIZE = 600, 1000000

    def test_flood_bounded(self):
        pid = self.broker.pid
        time.sleep(0.2)
        rss0 = sec.rss_kb(pid)
        c = self.raw_connected('flooder')
        payload = os.urandom(self.SIZE)
        t0 = time.monotonic()
        for i in range(self.N):
            c.publish('big/%d' % i, payload, qos=1, retain=True)
        took = time.monotonic() - t0
        rss1 = sec.rss_kb(pid)
        disk = disk_bytes(self.broker.data_dir)
        print('\n%d x %d B retained in %.1f s: RSS %+d kB, disk %d MB'
              % (self.N, self.SIZE, took, rss1 - rss0, disk // 2 ** 20))
        # what a watcher sees: live messages still flow to subscribers
        w = self.raw_connected('watch')
        w.subscribe([('big/#', 0)], expect_granted=[0])
        kept = 0
        try:
            while True:
                w.expect_publish(timeout=1.0)
                kept += 1
        except mqttraw.Timeout:
            pass
        self.assertGreater(kept, 0)
        self.assertLessEqual(kept * self.SIZE, 64 * 2 ** 20)
        self.assertLess(rss1 - rss0, 120 * 1024, 'RSS grew %d kB' % (rss1 - rss0))
        self.assertLess(disk, 200 * 2 ** 20, 'store holds %d bytes' % disk)
        c.publish('big/live', b'x', qos=1, retain=True)   # small ones fit... or not
        self.assertTrue(self.broker.wait_log(r"retained message for 'big/\d+' not kept: "
                                             r"max_retained_bytes reached", 3))


@skip_on_mosquitto('petreld retained limits')
class RetainedLimitsTest(BrokerTestCase):
    broker_settings = {'max_retained_messages': 3, 'max_retained_bytes': 2000,
                       'sys_interval': 1}

    def retained_of(self, filt, n_expected):
        c = self.raw_connected()
        c.subscribe([(filt, 0)], expect_granted=[0])
        got = {}
        try:
            while True:
                p = c.expect_publish(timeout=0.5)
                got[p.topic] = p.payload
        except mqttraw.Timeout:
            pass
        c.disconnect()
        self.assertEqual(len(got), n_expected, got)
        return got

    def test_count_limit(self):
        t = self.topic
        live = self.raw_connected()
        live.subscribe([(t('#'), 0)], expect_granted=[0])
        p = self.raw_connected()
        for name in 'abc':
            p.publish(t(name), name.encode(), qos=1, retain=True)
            live.expect_publish()
        # a fourth topic: routed, not retained
        p.publish(t('d'), b'd', qos=1, retain=True)
        self.assertEqual(live.expect_publish().payload, b'd')
        self.assertEqual(self.retained_of(t('#'), 3),
                         {t('a'): b'a', t('b'): b'b', t('c'): b'c'})
        # replacing one is fine at the limit, clearing one makes room
        p.publish(t('b'), b'B', qos=1, retain=True)
        p.publish(t('a'), b'', qos=1, retain=True)
        p.publish(t('d'), b'd2', qos=1, retain=True)
        self.assertEqual(self.retained_of(t('#'), 3),
                         {t('b'): b'B', t('c'): b'c', t('d'): b'd2'})
        self.assertTrue(self.broker.wait_log(
            r"retained message for '%s' not kept: max_retained_messages reached" % t('d'), 3))
        for name in 'bcd':
            p.publish(t(name), b'', qos=1, retain=True)

    def test_bytes_limit(self):
        t = self.topic
        p = self.raw_connected()
        p.publish(t('x'), b'1' * 1000, qos=1, retain=True)
        p.publish(t('y'), b'2' * 1000, qos=1, retain=True)    # over 2000 with topics
        self.assertEqual(set(self.retained_of(t('#'), 1)), {t('x')})
        p.publish(t('x'), b'3' * 1500, qos=1, retain=True)    # replacing, within
        self.assertEqual(self.retained_of(t('#'), 1)[t('x')], b'3' * 1500)
        p.publish(t('x'), b'4' * 2500, qos=1, retain=True)    # replacing, over: kept as is
        self.assertEqual(self.retained_of(t('#'), 1)[t('x')], b'3' * 1500)
        p.publish(t('x'), b'', qos=1, retain=True)
        self.assertTrue(self.broker.wait_log(r"not kept: max_retained_bytes reached", 3))

    def test_restart_counts_stored(self):
        """The totals include what the store loads at start."""
        b = self.start_broker({'max_retained_messages': 2})
        c = self.raw_connected(port=b.port)
        c.publish('k/1', b'1', qos=1, retain=True)
        c.publish('k/2', b'2', qos=1, retain=True)
        c.disconnect()
        b.restart()
        c = self.raw_connected(port=b.port)
        c.publish('k/3', b'3', qos=1, retain=True)
        w = self.raw_connected(port=b.port)
        w.subscribe([('k/#', 0)], expect_granted=[0])
        got = set()
        try:
            while True:
                got.add(w.expect_publish(timeout=0.5).topic)
        except mqttraw.Timeout:
            pass
        self.assertEqual(got, {'k/1', 'k/2'})

    def test_zz_counter(self):
        w = self.raw_connected()
        w.subscribe([('$SYS/broker/limits/max_retained', 0)])
        got = sys_values(w, '$SYS/broker/limits/',
                         lambda v: v.get('$SYS/broker/limits/max_retained', 0) >= 1)
        self.assertGreaterEqual(got.get('$SYS/broker/limits/max_retained', 0), 1, got)


if __name__ == '__main__':
    harness.main()
