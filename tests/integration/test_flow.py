"""Flow control: a full queue slows its publishers instead of losing what
they were acknowledged (queue_full_policy = block, the default).

- A flood into an online subscriber's queue, far past max_queued_messages,
  loses nothing acknowledged, persistent or clean session; the same flood
  with drop-new does lose (and counts it): the tests do reach the bound.
- A slow subscriber holds the publisher's acknowledgements back, and the
  publisher goes on when the subscriber catches up.
- A publisher that ignores held acknowledgements (large messages) stops
  being read ($SYS/broker/flow/paused), and resumes.
- MQTT 5.0: a message no queue took because of its bound gets 0x97.
- Many C publishers flooding (tests/bench/mqtt_bench, 1000 in flight each)
  leave the subscriber its messages, every one of them, and a bystander its
  round trip.
"""

import os
import statistics
import subprocess
import sys
import threading
import time

import harness
from harness import BrokerTestCase, Collector, PipelinedPublisher, numbered, skip_on_mosquitto
import mqttraw

MQTT_BENCH = os.environ.get('MQTT_BENCH')


class FlowTest(BrokerTestCase):

    def broker_with(self, **settings):
        s = {'sys_interval': 1}
        s.update(settings)
        return self.start_broker(s, persistence=True)

    def online_collector(self, b, cid, topic, clean=False, count=0, timeout=30):
        """A subscriber reading in a thread until it has `count` messages."""
        sub = Collector(b.port, cid, clean=clean, keepalive=30)
        self._clients.append(sub)
        sub.subscribe([(topic, 1)])
        t = threading.Thread(target=sub.collect,
                             kwargs={'done': lambda s: len(s.messages) >= count,
                                     'idle': 0.3, 'timeout': timeout})
        t.start()
        return sub, t

    def flood(self, b, topic, count, window=1000, size=16):
        pub = PipelinedPublisher(b.port, topic, qos=1, window=window, payload_size=size,
                                 keepalive=30)
        self._clients.append(pub)
        pub.run(count, stall_timeout=20)
        return pub

    def flood_into_online(self, policy, clean, n=20000):
        b = self.broker_with(max_queued_messages=100, max_inflight=20,
                             queue_full_policy=policy)
        t = self.topic()
        sub, th = self.online_collector(b, 'flow-flood', t, clean=clean, count=n)
        pub = self.flood(b, t, n)
        th.join(60)
        self.assertFalse(th.is_alive(), 'subscriber still collecting')
        return b, pub, sub

    def slow_reader_and_flood(self, b, cid, n, window, payload_size):
        """A persistent raw subscriber `cid` (QoS 1) on this test's topic
        that reads nothing yet, and a PipelinedPublisher sending it n
        messages in a thread.  Returns (subscriber, publisher, thread)."""
        t = self.topic()
        sub = mqttraw.RawClient(b.port)
        self._clients.append(sub)
        sub.connect(cid, clean=False, keepalive=30)
        sub.subscribe([(t, 1)])
        pub = PipelinedPublisher(b.port, t, qos=1, window=window, payload_size=payload_size,
                                 keepalive=30)
        self._clients.append(pub)
        th = threading.Thread(target=pub.run, args=(n,), kwargs={'stall_timeout': 30})
        th.start()
        return sub, pub, th

    @skip_on_mosquitto('queue_full_policy')
    def test_flood_online_persistent_loses_nothing(self):
        n = 20000
        b, pub, sub = self.flood_into_online('block', clean=False, n=n)
        self.assertEqual(len(pub.acked), n, 'every publish acknowledged')
        self.assertEqual(sub.numbers(), list(range(n)),
                         'each acknowledged message exactly once, in order')
        self.assertGreaterEqual(self.sys_value(b, '$SYS/broker/flow/slowed', 1), 1,
                                'the publisher was never slowed: the test did not reach '
                                'the bound')
        self.assertEqual(self.sys_value(b, '$SYS/broker/publish/dropped'), 0)

    @skip_on_mosquitto('queue_full_policy')
    def test_flood_online_clean_session_loses_nothing(self):
        n = 20000
        b, pub, sub = self.flood_into_online('block', clean=True, n=n)
        self.assertEqual(len(pub.acked), n)
        self.assertEqual(sub.numbers(), list(range(n)))
        self.assertGreaterEqual(self.sys_value(b, '$SYS/broker/flow/slowed', 1), 1)

    @skip_on_mosquitto('queue_full_policy')
    def test_same_flood_with_drop_new_loses_and_counts(self):
        # The control: the flood above does pass the bound, and drop-new
        # drops what was acknowledged, counted in $SYS.
        n = 20000
        b, pub, sub = self.flood_into_online('drop-new', clean=False, n=n)
        self.assertEqual(len(pub.acked), n, 'drop-new acknowledges all the same')
        got = len(set(sub.numbers()))
        self.assertLess(got, n, 'nothing dropped: the flood never filled the queue')
        dropped = self.sys_value(b, '$SYS/broker/publish/dropped', n - got)
        self.assertEqual(dropped, n - got)

    @skip_on_mosquitto('flow control figures')
    def test_slow_subscriber_slows_publisher_which_resumes(self):
        b = self.broker_with(max_queued_messages=50, max_inflight=10)
        n = 2000
        sub, pub, th = self.slow_reader_and_flood(b, 'flow-slow', n, window=n, payload_size=8)
        got = []
        # ~100 msg/s for 1.5 s: the publisher may get about what the queue
        # and the window hold beyond what was consumed, not all 2000.
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            m = sub.expect_publish(timeout=5)
            got.append(harness.number_of(m.payload))
            time.sleep(0.01)
        acked_while_slow = len(pub.acked)
        self.assertLess(acked_while_slow, len(got) + 50 + 10 + 200,
                        'the publisher was not slowed: %d acknowledged while the '
                        'subscriber took %d' % (acked_while_slow, len(got)))
        self.assertGreater(acked_while_slow, 0)
        # the subscriber catches up: the publisher finishes
        while len(got) < n:
            m = sub.expect_publish(timeout=10)
            got.append(harness.number_of(m.payload))
        th.join(30)
        self.assertFalse(th.is_alive())
        self.assertEqual(len(pub.acked), n, 'the publisher did not resume')
        self.assertEqual(got, list(range(n)))
        self.assertGreaterEqual(self.sys_value(b, '$SYS/broker/flow/slowed', 1), 1)

    @skip_on_mosquitto('flow control figures')
    def test_publisher_past_held_bytes_is_not_read_then_resumes(self):
        # 64 KiB messages and a window of 100: past 1 MiB queued beyond the
        # bound its socket is not read (flow/paused) until the queue drains.
        b = self.broker_with(max_queued_messages=4, max_inflight=2)
        n = 60
        sub, pub, th = self.slow_reader_and_flood(b, 'flow-paused', n, window=100,
                                                  payload_size=65536)
        self.assertGreaterEqual(self.sys_value(b, '$SYS/broker/flow/paused', 1), 1,
                                'a publisher past 1 MiB over the bound was still read')
        self.assertLess(len(pub.acked), n)
        got = []
        while len(got) < n:
            m = sub.expect_publish(timeout=10)
            got.append(harness.number_of(m.payload))
        th.join(30)
        self.assertEqual(len(pub.acked), n)
        self.assertEqual(got, list(range(n)))

    @skip_on_mosquitto('reason code 0x97 for a bounded queue')
    def test_mqtt5_quota_exceeded_when_no_queue_took_it(self):
        b = self.broker_with(max_queued_messages=2)
        t = self.topic()
        off = mqttraw.RawClient(b.port)
        self._clients.append(off)
        off.connect('flow-offline', clean=False, keepalive=30)
        off.subscribe([(t, 1)])
        off.disconnect()
        p = mqttraw.Raw5(b.port)
        self._clients.append(p)
        p.connect5('flow-v5-pub', keepalive=30)
        rcs = [p.publish5(t, numbered(i), qos=1).rc for i in range(4)]
        self.assertEqual(rcs, [0, 0, 0x97, 0x97], 'offline queue of 2: then 0x97')
        # with a subscriber that takes it as well, it is a success
        on = mqttraw.RawClient(b.port)
        self._clients.append(on)
        on.connect('flow-online', keepalive=30)
        on.subscribe([(t, 1)])
        self.assertEqual(p.publish5(t, numbered(9), qos=1).rc, 0)
        self.assertEqual(harness.number_of(on.expect_publish().payload), 9)
        # QoS 2 too, once the broker has ended the online session (the
        # publish must not overtake its DISCONNECT on the other connection)
        on.try_send(mqttraw.DISCONNECT_BYTES)
        self.assertTrue(on.wait_closed(), 'the broker did not close after DISCONNECT')
        self.assertEqual(p.publish5(t, numbered(10), qos=2).rc, 0x97)

    @skip_on_mosquitto('flow control figures')
    def test_many_flooding_publishers_leave_subscriber_and_bystander_served(self):
        if not MQTT_BENCH:
            self.skipTest('MQTT_BENCH (tests/bench/mqtt_bench) not set')
        pubs, each = 20, 5000
        b = self.broker_with(max_queued_messages=2000)
        t = self.topic()
        sub, th = self.online_collector(b, 'flow-many', t + '/+', count=pubs * each,
                                        timeout=60)
        by = mqttraw.RawClient(b.port)
        self._clients.append(by)
        by.connect('flow-bystander', keepalive=30)
        start = time.monotonic()
        procs = [subprocess.Popen([MQTT_BENCH, 'pub', str(b.port), '%s/%d' % (t, i), str(each),
                                   '16', '1000'], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
                 for i in range(pubs)]
        for pr in procs:
            harness.track(pr)
        rtts = []
        while any(pr.poll() is None for pr in procs) and time.monotonic() - start < 60:
            t0 = time.monotonic()
            by.ping(timeout=10)
            rtts.append(time.monotonic() - t0)
            time.sleep(0.02)
        for pr in procs:
            pr.wait(30)
            self.assertEqual(pr.returncode, 0, pr.stderr.read().decode(errors='replace'))
        th.join(60)
        elapsed = time.monotonic() - start
        got = len(sub.messages)
        self.assertEqual(got, pubs * each, 'every acknowledged message delivered once')
        rate = got / elapsed
        self.assertGreater(rate, 1000, 'the subscriber starved: %.0f msg/s' % rate)
        self.assertTrue(rtts, 'no round trip measured')
        self.assertLess(statistics.median(rtts), 0.25,
                        'bystander round trip median %.0f ms' % (statistics.median(rtts) * 1e3))
        self.assertLess(max(rtts), 2.0, 'bystander round trip max %.0f ms' % (max(rtts) * 1e3))
        sys.stderr.write('subscriber %.0f msg/s; bystander rtt median %.1f ms, max %.1f ms\n' % (
            rate, statistics.median(rtts) * 1e3, max(rtts) * 1e3))


if __name__ == '__main__':
    harness.main()
