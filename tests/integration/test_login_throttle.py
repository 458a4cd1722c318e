"""Failed logins are throttled per source address and per user name: a
flood of wrong passwords for one user name (each costing a real password
hash) must not keep other users out.  The
attacker comes from other loopback addresses (127.0.0.2 and up), the good
user from 127.0.0.1; the good user's logins are timed during the attack.
petreld only."""

import socket
import threading
import time

import harness
from harness import BrokerTestCase, skip_on_mosquitto
import mqttraw
import security_helpers as sec

ATTACK_RATE = 50        # wrong-password CONNECTs per second
ATTACK_SECONDS = 6.0
GOOD_LOGINS = 6
SLOW_LOGIN = 5.0        # a good login slower than this counts as kept out
# (before the throttle they timed out: connect_timeout, 10 s)


def loopback_source_usable(addr):
    s = socket.socket()
    try:
        s.bind((addr, 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


class Attacker(threading.Thread):
    """Sends wrong-password CONNECTs for `user` at ATTACK_RATE a second,
    from the given source addresses in turn, never waiting for answers;
    each connection is closed 1.5 s after it was opened."""

    def __init__(self, port, user, sources):
        super().__init__(daemon=True)
        self.port, self.user, self.sources = port, user, sources
        self.stop = threading.Event()
        self.sent = 0

    def run(self):
        open_socks = []
        t0 = time.monotonic()
        while not self.stop.is_set() and time.monotonic() - t0 < ATTACK_SECONDS + 5:
            due = t0 + self.sent / ATTACK_RATE
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            try:
                s = socket.socket()
                s.bind((self.sources[self.sent % len(self.sources)], 0))
                s.settimeout(2)
                s.connect(('127.0.0.1', self.port))
                s.sendall(mqttraw.connect_packet('attack-%d' % self.sent, username=self.user,
                                                 password='guess-%d' % self.sent))
                open_socks.append((time.monotonic(), s))
            except OSError:
                pass
            self.sent += 1
            while open_socks and time.monotonic() - open_socks[0][0] > 1.5:
                open_socks.pop(0)[1].close()
        for _, s in open_socks:
            s.close()


@skip_on_mosquitto('petreld login throttling')
class LoginThrottleTest(BrokerTestCase):

    @classmethod
    def setUpClass(cls):
        cls.files = sec.Files()
        # a real hash cost (half the default): the attack is about CPU, and
        # 50 checks a second are more than one worker thread can do
        cls.passwd = cls.files.passwd({'alice': 'a1ice-secret', 'bob': 'b0b-secret'},
                                      iterations=100000)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.files.close()

    def setUp(self):
        super().setUp()
        if not loopback_source_usable('127.0.0.2'):
            self.skipTest('cannot bind 127.0.0.2 as a source address')

    def good_logins_under_attack(self, sources):
        b = self.start_broker({'password_file': self.passwd, 'sys_interval': 1})
        attacker = Attacker(b.port, 'alice', sources)
        self.addCleanup(attacker.stop.set)
        attacker.start()
        time.sleep(1.0)  # the attack is under way
        times, codes = [], []
        t_end = time.monotonic() + ATTACK_SECONDS - 1.5
        for i in range(GOOD_LOGINS):
            c = mqttraw.RawClient(b.port, timeout=15)
            try:
                t0 = time.monotonic()
                c.send(mqttraw.connect_packet('bob-%d' % i, username='bob',
                                              password='b0b-secret'))
                try:
                    codes.append(c.expect(mqttraw.CONNACK, timeout=12).rc)
                except (mqttraw.Closed, mqttraw.Timeout) as e:
                    codes.append(repr(e))
                times.append(time.monotonic() - t0)
            finally:
                c.close()
            time.sleep(max(0.0, (t_end - time.monotonic()) / max(1, GOOD_LOGINS - i - 1)))
        attacker.stop.set()
        attacker.join(10)
        report = ('good logins: %s; times %s s; attacker sent %d in %.0f s'
                  % (codes, ' '.join('%.2f' % t for t in times), attacker.sent, ATTACK_SECONDS))
        print(report)
        self.assertEqual(codes, [0] * GOOD_LOGINS, report)
        self.assertLess(max(times), SLOW_LOGIN, report)
        self.assertTrue(b.wait_log(r"too many failed logins", 3), b.tail())
        # counted in $SYS
        w = self.raw_connected('sys-watch', port=b.port)
        w.subscribe([('$SYS/broker/auth/throttled', 0)])
        p = w.expect_publish(timeout=5)
        self.assertGreater(int(p.payload), 0)
        return b

    def test_flood_from_one_address(self):
        self.good_logins_under_attack(['127.0.0.2'])

    def test_flood_from_many_addresses_for_one_user(self):
        # Each address fails only a few times: the user name's budget is
        # what stops it.
        self.good_logins_under_attack(['127.0.0.%d' % i for i in range(2, 250)])

    def test_the_budget_comes_back(self):
        fast = self.files.passwd({'alice': 'a1ice-secret'}, name='fast')
        b = self.start_broker({'password_file': fast,
                               'max_login_failures_per_source': 3,
                               'max_login_failures_per_user': 0})
        # at once: one by one, each refusal's delay would let one be forgiven
        wrong = [self.raw(b.port) for _ in range(3)]
        for i, c in enumerate(wrong):
            c.send(mqttraw.connect_packet('wrong-%d' % i, username='alice', password='wrong'))
        time.sleep(0.3)  # cheap hashes: checked by now
        # spent: even the right password is refused, without a check
        c = self.raw(b.port)
        c.connect('right-too-soon', username='alice', password='a1ice-secret', expect_rc=5)
        time.sleep(1.2)  # one failure forgiven
        c = self.raw(b.port)
        c.connect('right-later', username='alice', password='a1ice-secret')


if __name__ == '__main__':
    harness.main()
