"""Per-client publish rate limits (issue #14 item 8): max_publish_rate
(PUBLISH packets per second) and max_publish_bytes_rate (their bytes per
second).  A client over either is not read until it is within the rate
again: its flood arrives whole but spread out, other clients are served
at their own pace meanwhile, and each pause is counted in
$SYS/broker/limits/.  petreld only."""

import time

import harness
from harness import BrokerTestCase, skip_on_mosquitto
import mqttraw

RATE = 100
BYTES_RATE = 100000


def flood(port, topic, count, size):
    """Sends `count` QoS 0 publishes of `size` bytes in one write."""
    c = mqttraw.RawClient(port)
    c.connect('flooder-%s' % topic.replace('/', '-'))
    c.send(b''.join(mqttraw.publish_packet(topic, b'%08d' % i + b'x' * (size - 8))
                    for i in range(count)))
    return c


def receive(w, count, timeout):
    """The numbers of the next `count` messages (payloads ending in
    'unhurried' count but give -1)."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        try:
            p = w.expect_publish(timeout=max(0.05, deadline - time.monotonic()))
        except mqttraw.Timeout:
            break
        got.append(-1 if p.payload.endswith(b'unhurried') else int(p.payload[:8]))
    return got


@skip_on_mosquitto('petreld max_publish_rate')
class PublishRateTest(BrokerTestCase):
    broker_settings = {'max_publish_rate': RATE, 'max_publish_bytes_rate': BYTES_RATE,
                       'sys_interval': 1}

    def test_message_rate_spreads_a_flood(self):
        w = self.watcher()
        other = self.raw_connected('other')
        count = 4 * RATE              # a second's burst, then three at the rate
        t0 = time.monotonic()
        f = flood(self.port, self.topic('msgs'), count, 20)
        # another client is served meanwhile
        other.publish(self.topic('other'), b'00000000-unhurried', qos=1)
        took_other = time.monotonic() - t0
        got = receive(w, count + 1, 10)
        took = time.monotonic() - t0
        f.close()
        print('\n%d publishes at max_publish_rate %d: %.2f s, the other client %.3f s'
              % (count, RATE, took, took_other))
        self.assertEqual(sorted(got), [-1] + list(range(count)),
                         'messages lost or doubled: %d of %d' % (len(got), count + 1))
        self.assertGreater(took, 2.5, 'not limited to %d/s' % RATE)
        self.assertLess(took, 6.0)
        self.assertLess(took_other, 0.5)
        self.assertGreaterEqual(self.sys_value(self.broker, '$SYS/broker/limits/max_publish_rate',
                                               1), 1)

    def test_byte_rate_spreads_a_flood(self):
        w = self.watcher()
        size = 10000
        count = 4 * BYTES_RATE // size    # 400 kB: a second's burst, three more
        t0 = time.monotonic()
        f = flood(self.port, self.topic('bytes'), count, size)
        got = receive(w, count, 10)
        took = time.monotonic() - t0
        f.close()
        print('\n%d x %d B at max_publish_bytes_rate %d: %.2f s' % (count, size, BYTES_RATE, took))
        self.assertEqual(sorted(got), list(range(count)))
        self.assertGreater(took, 2.5, 'not limited to %d B/s' % BYTES_RATE)
        self.assertLess(took, 6.0)
        self.assertGreaterEqual(self.sys_value(
            self.broker, '$SYS/broker/limits/max_publish_bytes_rate', 1), 1)

    def test_within_the_rate_not_slowed(self):
        w = self.watcher()
        c = self.raw_connected('polite')
        t0 = time.monotonic()
        for i in range(RATE // 2):
            c.publish(self.topic('polite'), b'%08d' % i, qos=1)
        self.assertEqual(receive(w, RATE // 2, 5), list(range(RATE // 2)))
        self.assertLess(time.monotonic() - t0, 1.0)


if __name__ == '__main__':
    harness.main()
