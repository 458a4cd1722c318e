"""GET /metrics: the Prometheus text format (checked by promtool), with
values that follow what clients do: publishes counted by QoS, connections
by listener and protocol, sessions, subscriptions, retained messages,
queues, limits, and the latency histograms.  petreld only."""

import re
import shutil
import subprocess
import time
import unittest

from harness import skip_on_mosquitto
import mqttraw
from mqttraw import RawClient
from http_helpers import READ_TOKEN, HttpBroker

PROMTOOL = shutil.which('promtool')


def parse(text):
    """{'name{labels}': float} for every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith('#'):
            continue
        key, value = line.rsplit(' ', 1)
        out[key] = float(value)
    return out


@skip_on_mosquitto('petreld /metrics')
class Metrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.b = HttpBroker({'max_subscriptions_per_client': 3}).start()

    @classmethod
    def tearDownClass(cls):
        cls.b.stop()

    def scrape(self):
        status, headers, body = self.b.request('GET', '/metrics', token=READ_TOKEN)
        self.assertEqual(status, 200, body[:200])
        self.assertTrue(headers['content-type'].startswith('text/plain; version=0.0.4'))
        return body.decode('utf-8')

    def value(self, samples, key):
        self.assertIn(key, samples, 'no sample %s' % key)
        return samples[key]

    def wait_value(self, key, want, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            v = parse(self.scrape()).get(key)
            if v == want or time.monotonic() > deadline:
                self.assertEqual(v, want, key)
                return
            time.sleep(0.05)

    @unittest.skipUnless(PROMTOOL, 'promtool (Debian package prometheus) is not installed')
    def test_promtool_accepts(self):
        # with some traffic, so that histograms and labelled series are filled
        with RawClient(self.b.port) as sub, RawClient(self.b.port) as pub:
            sub.connect('promtool-sub')
            sub.subscribe([('p/#', 1)])
            pub.connect('promtool-pub')
            pub.publish('p/x', b'hello', qos=1)
            sub.expect_publish()
        text = self.scrape()
        r = subprocess.run([PROMTOOL, 'check', 'metrics'], input=text, capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual((r.stdout + r.stderr).strip(), '', 'promtool lint findings')

    def test_publishes_counted_by_qos(self):
        n = 7
        before = parse(self.scrape())
        with RawClient(self.b.port) as pub:
            pub.connect('counting-pub')
            for qos in (0, 1, 2):
                for i in range(n):
                    pub.publish('count/%d' % qos, b'x' * 10, qos=qos)
            pub.ping()  # QoS 0 ones are in before the scrape
        after = parse(self.scrape())
        for qos in (0, 1, 2):
            key = 'petrel_messages_received_total{qos="%d"}' % qos
            self.assertEqual(self.value(after, key) - self.value(before, key), n, key)
            key = 'petrel_received_payload_bytes_total{qos="%d"}' % qos
            self.assertEqual(self.value(after, key) - self.value(before, key), 10 * n, key)
        self.assertGreater(after['petrel_received_bytes_total'],
                           before['petrel_received_bytes_total'] + 30 * n)

    def test_deliveries_and_latency(self):
        before = parse(self.scrape())
        with RawClient(self.b.port) as sub, RawClient(self.b.port) as pub:
            sub.connect('latency-sub', clean=False)  # stored: its deliveries are committed
            sub.subscribe([('lat/#', 2)])
            pub.connect('latency-pub')
            for qos in (0, 1, 2):
                pub.publish('lat/%d' % qos, b'abc', qos=qos)
                p = sub.expect_publish()
                self.assertEqual(p.qos, qos)
        after = parse(self.scrape())
        for qos in (0, 1, 2):
            key = 'petrel_messages_sent_total{qos="%d"}' % qos
            self.assertEqual(self.value(after, key) - self.value(before, key), 1, key)
        c = 'petrel_delivery_latency_seconds_count'
        self.assertGreaterEqual(after[c] - before[c], 3)
        inf = 'petrel_delivery_latency_seconds_bucket{le="+Inf"}'
        self.assertEqual(after[inf], after[c])
        # buckets are cumulative
        buckets = sorted((float(m.group(1)), v) for k, v in after.items()
                         for m in [re.match(r'petrel_delivery_latency_seconds_bucket\{le="([^"+]+)"\}', k)]
                         if m)
        counts = [v for _, v in buckets]
        self.assertEqual(counts, sorted(counts))
        self.assertGreater(after['petrel_store_commit_duration_seconds_count'],
                           before['petrel_store_commit_duration_seconds_count'])

    def test_connections_sessions_subscriptions(self):
        listener = '127.0.0.1:%d' % self.b.port
        key5 = ('petrel_connections{listener="%s",transport="tcp",protocol="5.0"}' % listener)
        key3 = ('petrel_connections{listener="%s",transport="tcp",protocol="3.1.1"}' % listener)
        before = parse(self.scrape())
        subs_before = before['petrel_subscriptions']
        c3 = RawClient(self.b.port)
        c3.connect('gauge-311', clean=False)
        c3.subscribe([('g/1', 1), ('g/2', 0)])
        c5 = RawClient(self.b.port)
        c5.send(mqttraw.connect5_packet('gauge-5'))
        c5.expect(mqttraw.CONNACK)
        mid = parse(self.scrape())
        self.assertEqual(mid[key3] - before[key3], 1)
        self.assertEqual(mid[key5] - before[key5], 1)
        self.assertEqual(mid['petrel_subscriptions'] - subs_before, 2)
        self.assertEqual(mid['petrel_sessions{state="online"}'] -
                         before['petrel_sessions{state="online"}'], 2)
        c3.close()
        c5.close()
        # the persistent 3.1.1 session stays, offline, with its subscriptions
        self.wait_value(key3, before[key3])
        after = parse(self.scrape())
        self.assertEqual(after['petrel_sessions{state="offline"}'] -
                         before['petrel_sessions{state="offline"}'], 1)
        self.assertEqual(after['petrel_subscriptions'] - subs_before, 2)
        # messages for it queue up
        with RawClient(self.b.port) as pub:
            pub.connect('gauge-pub')
            for i in range(5):
                pub.publish('g/1', b'q' * 100, qos=1)
        after = parse(self.scrape())
        self.assertEqual(after['petrel_queued_messages'] - before['petrel_queued_messages'], 5)
        self.assertEqual(after['petrel_queued_bytes'] - before['petrel_queued_bytes'], 500)

    def test_retained(self):
        before = parse(self.scrape())
        with RawClient(self.b.port) as pub:
            pub.connect('retainer')
            pub.publish('ret/a', b'12345', qos=1, retain=True)
            pub.publish('ret/b', b'12345', qos=1, retain=True)
        after = parse(self.scrape())
        self.assertEqual(after['petrel_retained_messages'] - before['petrel_retained_messages'], 2)
        self.assertEqual(after['petrel_retained_bytes'] - before['petrel_retained_bytes'],
                         2 * (5 + 5))

    def test_limit_hits(self):
        key = 'petrel_limit_hits_total{limit="max_subscriptions_per_client"}'
        before = parse(self.scrape())
        with RawClient(self.b.port) as c:
            c.connect('limited')
            c.subscribe([('l/1', 0), ('l/2', 0), ('l/3', 0), ('l/4', 0), ('l/5', 0)])
        after = parse(self.scrape())
        self.assertEqual(after[key] - before[key], 2)

    def test_build_info_and_uptime(self):
        samples = parse(self.scrape())
        self.assertEqual(samples['petrel_build_info{version="0.1.0"}'], 1)
        self.assertGreaterEqual(samples['petrel_uptime_seconds'], 0)
        self.assertEqual(samples['petrel_store_writable'], 1)
        self.assertGreaterEqual(samples['petrel_http_connections'], 1)  # this scrape's
        again = parse(self.scrape())
        self.assertGreater(again['petrel_http_replies_total{code="2xx"}'],
                           samples['petrel_http_replies_total{code="2xx"}'])

    def test_needs_read_token(self):
        status, _, _ = self.b.request('GET', '/metrics')
        self.assertEqual(status, 401)


@skip_on_mosquitto('petreld /metrics')
class FsyncHistogram(unittest.TestCase):
    def test_power_durability_fsyncs_counted(self):
        b = HttpBroker({'durability': 'power'}).start()
        try:
            def count():
                status, _, body = b.request('GET', '/metrics', token=READ_TOKEN)
                return parse(body.decode())['petrel_store_fsync_duration_seconds_count']
            before = count()
            with RawClient(b.port) as c:
                c.connect('fsync-client', clean=False)
                c.subscribe([('fs/#', 1)])
                for i in range(3):
                    c.publish('fs/x', b'p', qos=1, wait=False)
                # three PUBACKs, sent once each publish was fsynced, and the three
                # messages themselves
                kinds = [c.read_packet().type for _ in range(6)]
                self.assertEqual(kinds.count(mqttraw.PUBACK), 3)
            self.assertGreater(count(), before)
        finally:
            b.stop()


if __name__ == '__main__':
    unittest.main()
