"""Interoperability with the stock mosquitto_pub / mosquitto_sub tools and
Paho."""

import subprocess

import harness
from harness import BrokerTestCase


class InteropTest(BrokerTestCase):

    def test_qos_levels(self):
        for q in (0, 1, 2):
            with self.subTest(qos=q):
                sub = self.mosquitto_sub(self.topic('q%d' % q), qos=q)
                sub.wait_subscribed()
                self.mosquitto_pub(self.topic('q%d' % q), 'mosq qos %d' % q, qos=q)
                self.assertEqual(sub.get(), (q, False, self.topic('q%d' % q), 'mosq qos %d' % q))
                sub.close()

    def test_qos_downgrade(self):
        sub = self.mosquitto_sub(self.topic(), qos=1)
        sub.wait_subscribed()
        self.mosquitto_pub(self.topic(), 'two', qos=2)
        self.assertEqual(sub.get()[0], 1)

    def test_retained_set_and_clear(self):
        self.mosquitto_pub(self.topic(), 'retained value', qos=1, retain=True)
        sub = self.mosquitto_sub(self.topic(), qos=1, extra=['-C', '1', '-W', '5'])
        self.assertEqual(sub.get(), (1, True, self.topic(), 'retained value'))
        self.assertEqual(sub.wait_exit(), 0)
        self.mosquitto_pub(self.topic(), qos=1, retain=True, null=True)
        sub = self.mosquitto_sub(self.topic(), qos=1, extra=['--retained-only', '-W', '1'])
        sub.wait_subscribed()
        sub.expect_nothing(1.0)
        sub.wait_exit(5)

    def test_hash_verbose(self):
        sub = self.mosquitto_sub('#', verbose_format=True)
        sub.wait_subscribed()
        self.mosquitto_pub(self.topic('one'), 'first message')
        self.mosquitto_pub(self.topic('two/deep'), 'second')
        lines = set()
        while len(lines) < 2:
            line = sub.get()
            if line.startswith(self.topic()):
                lines.add(line)
        self.assertEqual(lines, {self.topic('one') + ' first message',
                                 self.topic('two/deep') + ' second'})

    def test_count_and_exit(self):
        sub = self.mosquitto_sub(self.topic(), qos=1, extra=['-C', '3', '-W', '10'])
        sub.wait_subscribed()
        for i in range(3):
            self.mosquitto_pub(self.topic(), 'm%d' % i, qos=1)
        self.assertEqual([sub.get()[3] for _ in range(3)], ['m0', 'm1', 'm2'])
        self.assertEqual(sub.wait_exit(), 0)

    def test_pub_stdin_lines(self):
        sub = self.mosquitto_sub(self.topic(), qos=1, extra=['-C', '3', '-W', '10'])
        sub.wait_subscribed()
        r = subprocess.run([harness.MOSQUITTO_PUB, '-h', '127.0.0.1', '-p', str(self.port),
                            '-t', self.topic(), '-q', '1', '-l'],
                           input=b'line one\nline two\nline three\n', capture_output=True,
                           timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([sub.get()[3] for _ in range(3)], ['line one', 'line two', 'line three'])

    def test_mosquitto_pub_to_paho(self):
        p = self.paho()
        p.connect()
        p.subscribe(self.topic(), 2)
        self.mosquitto_pub(self.topic(), 'to paho', qos=2)
        m = p.get()
        self.assertEqual((m.payload, m.qos), (b'to paho', 2))
        p.disconnect()

    def test_paho_to_mosquitto_sub(self):
        sub = self.mosquitto_sub(self.topic(), qos=2)
        sub.wait_subscribed()
        p = self.paho()
        p.connect()
        p.publish(self.topic(), b'from paho', qos=1)
        self.assertEqual(sub.get(), (1, False, self.topic(), 'from paho'))
        p.disconnect()

    def test_raw_to_mosquitto_sub_large(self):
        sub = self.mosquitto_sub(self.topic(), qos=1)
        sub.wait_subscribed()
        payload = 'x' * 100000
        self.raw_connected().publish(self.topic(), payload.encode(), qos=1)
        self.assertEqual(sub.get()[3], payload)


if __name__ == '__main__':
    harness.main()
