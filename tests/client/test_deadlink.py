"""test_deadlink.py - the heartbeat: a broker that stops answering (SIGSTOP)
is reported as a dead link (PETREL_EKEEPALIVE) within about 1.5 x keep
alive, and the client reconnects by itself once the broker runs again.
Against petreld and Mosquitto."""

import time

import clienttest as ct

KEEPALIVE = 2
SLACK = 0.6   # scheduling, and sanitizer builds


class DeadLink:
    broker_kind = None

    def test_dead_link_reported_and_recovered(self):
        broker = ct.BROKERS[self.broker_kind]().start()
        d = None
        try:
            d = ct.Driver(broker.port, '--keepalive', KEEPALIVE, '--reconnect', 200, 400,
                          '--connect-timeout', 1000)
            d.call('connect')
            d.expect('connected sp=0')
            d.call('sub 1 dl/#')
            d.expect('subscribed')
            time.sleep(0.5)   # somewhere inside a keep alive period
            stopped = time.monotonic()
            broker.suspend()
            m = d.expect(r'disconnected reason=(\S+) retry=1 t=(\d+)',
                         timeout=1.5 * KEEPALIVE + 5)
            self.assertEqual(m.group(1), 'PETREL_EKEEPALIVE')
            # The driver stamps events with the same monotonic clock.
            elapsed = int(m.group(2)) / 1000.0 - stopped
            print('%s: dead link reported %.2f s after SIGSTOP (keep alive %d s, bound %.1f s)'
                  % (self.broker_kind, elapsed, KEEPALIVE, 1.5 * KEEPALIVE))
            self.assertLessEqual(elapsed, 1.5 * KEEPALIVE + SLACK)
            self.assertGreater(elapsed, 0.4 * KEEPALIVE)
            broker.resume()
            d.expect('connected', timeout=10)
            # Still subscribed after the new connection (clean session:
            # the library renewed the subscription).
            r = ct.run([ct.MOSQUITTO_PUB, '-p', str(broker.port), '-t', 'dl/x', '-q', '1',
                        '-m', 'after'])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(d.messages(1)[0][4], 'after')
        finally:
            if d:
                d.close()
            broker.kill()
            broker.stop()


class PetreldDeadLink(DeadLink, ct.unittest.TestCase):
    broker_kind = 'petreld'


class MosquittoDeadLink(DeadLink, ct.unittest.TestCase):
    broker_kind = 'mosquitto'


if __name__ == '__main__':
    ct.main()
