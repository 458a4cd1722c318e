"""Wills: published on every abnormal end of a connection, never after
DISCONNECT."""

import signal
import subprocess
import sys
import time

import harness
from harness import BrokerTestCase
import mqttraw


PAHO_CHILD = """
import sys, time, threading
import paho.mqtt.client as mqtt
port, topic, keepalive = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
c = mqtt.Client(client_id='doomed-process', protocol=mqtt.MQTTv311)
c.will_set(topic, b'process died', 1, False)
done = threading.Event()
c.on_connect = lambda *a: done.set()
c.connect('127.0.0.1', port, keepalive)
c.loop_start()
if done.wait(5):
    print('connected', flush=True)
time.sleep(10)
"""


class WillTest(BrokerTestCase):

    def watch_will(self, qos=0):
        w = self.raw_connected()
        w.subscribe([(self.topic('will'), qos)])
        return w

    def test_will_on_sigkill_of_client_process(self):
        # a separate paho process (mosquitto_sub refuses keep alives below 5 s)
        keepalive = 2
        w = self.watch_will()
        child = harness.track(subprocess.Popen(
            [sys.executable, '-c', PAHO_CHILD, str(self.port), self.topic('will'), str(keepalive)],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL))
        self.addCleanup(child.kill)
        line = child.stdout.readline()   # bounded: the child exits after 10 s
        self.assertEqual(line.strip(), b'connected')
        t0 = time.monotonic()
        child.send_signal(signal.SIGKILL)
        child.wait(5)
        m = w.expect_publish(timeout=1.5 * keepalive + 1)
        self.assertEqual((m.topic, m.payload), (self.topic('will'), b'process died'))
        self.assertLess(time.monotonic() - t0, 1.5 * keepalive + 1)

    def test_will_on_sigkill_of_mosquitto_sub(self):
        w = self.watch_will()
        sub = self.mosquitto_sub(self.topic('other'), client_id='killed-sub', keepalive=5,
                                 will=(self.topic('will'), 'sub died', 1, False))
        sub.wait_subscribed()
        sub.kill(signal.SIGKILL)
        m = w.expect_publish(timeout=3)
        self.assertEqual((m.topic, m.payload), (self.topic('will'), b'sub died'))

    def test_will_on_keepalive_timeout(self):
        w = self.watch_will()
        c = self.raw_connected('silent-will', keepalive=1,
                               will=(self.topic('will'), b'timed out', 0, False))
        t0 = time.monotonic()
        m = w.expect_publish(timeout=1.5 + harness.KEEPALIVE_SLACK)
        self.assertEqual(m.payload, b'timed out')
        self.assertGreater(time.monotonic() - t0, 0.9)
        self.assertTrue(c.wait_closed(1))

    def test_will_on_protocol_violation(self):
        w = self.watch_will()
        c = self.raw_connected('violator', will=(self.topic('will'), b'violated', 0, False))
        c.send(mqttraw.publish_packet('bad/#', b'x'))
        self.assertTrue(c.wait_closed(3))
        self.assertEqual(w.expect_publish(timeout=3).payload, b'violated')

    def test_will_on_socket_close_without_disconnect(self):
        w = self.watch_will()
        c = self.raw_connected('closer', will=(self.topic('will'), b'closed', 0, False))
        c.close()
        self.assertEqual(w.expect_publish(timeout=3).payload, b'closed')

    def test_will_on_takeover(self):
        w = self.watch_will()
        old = self.raw_connected('taken', will=(self.topic('will'), b'taken over', 0, False))
        new = self.raw_connected('taken')
        self.assertTrue(old.wait_closed(3))
        self.assertEqual(w.expect_publish(timeout=3).payload, b'taken over')
        new.ping()
        new.disconnect()
        w.expect_nothing(0.5)

    def test_no_will_after_disconnect(self):
        w = self.watch_will()
        c = self.raw_connected('polite', keepalive=1,
                               will=(self.topic('will'), b'should not appear', 0, False))
        c.send(mqttraw.DISCONNECT_BYTES)
        self.assertTrue(c.wait_closed(3))
        w.expect_nothing(1.6)

    def test_no_will_after_disconnect_with_paho(self):
        w = self.watch_will()
        p = self.paho('paho-polite', will=(self.topic('will'), b'nope', 1, False))
        p.connect()
        p.disconnect()
        w.expect_nothing(1.0)

    def test_will_qos_and_retain(self):
        w = self.watch_will(qos=2)
        c = self.raw_connected('retained-will', will=(self.topic('will'), b'last words', 1, True))
        c.close()
        m = w.expect_publish(timeout=3)
        self.assertEqual((m.payload, m.qos, m.retain), (b'last words', 1, False))
        late = self.raw_connected()
        late.subscribe([(self.topic('will'), 2)])
        m = late.expect_publish()
        self.assertEqual((m.payload, m.qos, m.retain), (b'last words', 1, True))
        # clean up the retained will for other tests
        self.raw_connected().publish(self.topic('will'), b'', qos=1, retain=True)

    def test_will_of_persistent_session(self):
        w = self.watch_will()
        cid = 'persistent-will-%f' % time.time()
        c = self.raw_connected(cid, clean=False, will=(self.topic('will'), b'p-will', 0, False))
        c.close()
        self.assertEqual(w.expect_publish(timeout=3).payload, b'p-will')
        # reconnecting without a will and disconnecting cleanly sends nothing
        c = self.raw_connected(cid, clean=True)
        c.disconnect()
        w.expect_nothing(0.5)

    def test_empty_will_payload(self):
        w = self.watch_will()
        c = self.raw_connected('empty-will', will=(self.topic('will'), b'', 0, False))
        c.close()
        m = w.expect_publish(timeout=3)
        self.assertEqual(m.payload, b'')


    @harness.skip_on_mosquitto('petreld refuses $SYS wills (issue #14 item 7)')
    def test_will_on_sys_refused(self):
        """A will may not publish where a PUBLISH may not: a retained forged
        $SYS/broker/version must never reach a subscriber."""
        for level in (4, 5):
            c = mqttraw.Raw5(self.port) if level == 5 else self.raw()
            if level == 5:
                self._clients.append(c)
                c.send(mqttraw.connect5_packet('sys-will-5', will=('$SYS/broker/version',
                                                                   b'forged', 0, True)))
                self.assertEqual(c.expect5(mqttraw.CONNACK).rc, 0x87)
            else:
                c.connect('sys-will', will=('$SYS/broker/version', b'forged', 0, True),
                          expect_rc=0x05)
            self.assertTrue(c.wait_closed(3))
        self.assertTrue(self.broker.wait_log(r'will topic in \$SYS, reserved for the broker', 3))
        w = self.raw_connected()
        w.subscribe([('$SYS/broker/version', 0)])
        try:
            while True:
                self.assertNotEqual(w.expect_publish(timeout=1.5).payload, b'forged')
        except mqttraw.Timeout:
            pass


if __name__ == '__main__':
    harness.main()
