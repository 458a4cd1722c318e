"""Connection log lines are rate-limited (issue #14 item 8): a client that
connects and disconnects in a loop writes at most max_connection_log_rate
"connected" / "disconnected" / "refused" lines per second, and what was
left out is summed up in one line and counted in
$SYS/broker/limits/max_connection_log_rate.  petreld only."""

import re
import time

import harness
from harness import BrokerTestCase, skip_on_mosquitto
import mqttraw

RATE = 20
ROUNDS = 400


@skip_on_mosquitto('petreld max_connection_log_rate')
class ConnectionLogRateTest(BrokerTestCase):
    def test_connect_flood_log_is_bounded(self):
        b = self.start_broker({'max_connection_log_rate': RATE, 'sys_interval': 1},
                              log_pipe=True)
        # Start just before a second of the monotonic clock (petreld's, on
        # Linux too) ends, so that the flood runs across two seconds: what
        # the second one leaves out must be summed up too (it once waited
        # for the next connection).
        frac = time.monotonic() % 1.0
        time.sleep((0.97 - frac) % 1.0)
        t0 = time.monotonic()
        for i in range(ROUNDS):
            c = mqttraw.RawClient(b.port)
            c.connect('flood-%d' % i)
            c.disconnect()
        took = time.monotonic() - t0
        # the summary comes when the next second starts, from a timer: the
        # last one at most a second after the flood
        self.assertTrue(b.wait_log(r'\d+ connection log lines \(connected, disconnected, '
                                   r'refused\) not written', 3), b.tail())
        time.sleep(1.5)
        log = b.log_text()
        connected = len(re.findall(r'client flood-\d+ connected from', log))
        disconnected = len(re.findall(r'client flood-\d+ disconnected', log))
        seconds = int(took) + 2
        print('\n%d connect/disconnect rounds in %.1f s: %d + %d lines written, %d bytes of log'
              % (ROUNDS, took, connected, disconnected, len(log)))
        self.assertLessEqual(connected + disconnected, RATE * seconds)
        self.assertGreater(connected, 0)
        left_out = sum(int(n) for n in re.findall(r'(\d+) connection log lines', log))
        # every line is written or counted in a summary
        self.assertGreaterEqual(left_out + connected + disconnected, 2 * ROUNDS)
        counted = self.sys_value(b, '$SYS/broker/limits/max_connection_log_rate',
                                 2 * ROUNDS - RATE * seconds)
        self.assertGreaterEqual(counted, 2 * ROUNDS - RATE * seconds)

    def test_unlimited_when_zero(self):
        b = self.start_broker({'max_connection_log_rate': 0}, log_pipe=True)
        for i in range(3 * RATE):
            c = mqttraw.RawClient(b.port)
            c.connect('every-%d' % i)
            c.disconnect()
        self.assertTrue(b.wait_log(r'client every-%d disconnected' % (3 * RATE - 1), 3))
        log = b.log_text()
        self.assertEqual(len(re.findall(r'client every-\d+ connected from', log)), 3 * RATE)
        self.assertNotIn('not written', log)


if __name__ == '__main__':
    harness.main()
