"""Bridges from petreld to Debian's mosquitto as the remote (started by the
test with its own configuration on a free port): MQTT 3.1.1 (with
Mosquitto's bridge flag) and 5.0, QoS 1 and 2 both ways with prefixes,
retained messages, a two-way bridge on one topic without echoes, reconnect
after mosquitto restarts, and TLS with a client certificate (certificates
made with openssl) - including a bridge without one, which is refused and
says why."""

import time
import unittest

import harness
from bridge_helpers import (BridgedBroker, Mosquitto, assert_once_each_side, bridge_section,
                            collect_numbers, persistent_sub, wait_connects)
from tls_helpers import Certs


def paho(port):
    c = harness.PahoClient(port)
    c.connect()
    return c


class ToMosquitto(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.M = Mosquitto().start()
        sections = []
        for name, proto in (('m311', '3.1.1'), ('m5', '5')):
            sections.append(bridge_section(
                name, cls.M.port,
                ['out s/# qos=2 remote_prefix=%s/' % name,
                 'in c/# qos=2 remote_prefix=%s/ local_prefix=cmd/%s/' % (name, name),
                 'out both%s/# qos=1' % name, 'in both%s/# qos=1' % name],
                protocol=proto, client_id='petrel-%s' % name))
        cls.A = BridgedBroker(sections).start()
        for name in ('m311', 'm5'):
            if not cls.A.wait_bridge(name):
                raise AssertionError('bridge %s did not connect\n%s\n%s' %
                                     (name, cls.A.tail(), cls.M.tail()))

    @classmethod
    def tearDownClass(cls):
        cls.A.stop()
        cls.M.close()

    def setUp(self):
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()
        self.assertTrue(self.A.alive(), self.A.tail())

    def client(self, port):
        c = paho(port)
        self.clients.append(c)
        return c

    def test_out_and_in_qos_1_2(self):
        for name in ('m311', 'm5'):
            with self.subTest(protocol=name):
                ms = self.client(self.M.port)
                ms.subscribe('%s/s/#' % name, 2)
                ls = self.client(self.A.port)
                ls.subscribe('cmd/%s/#' % name, 2)
                lp = self.client(self.A.port)
                mp = self.client(self.M.port)
                for qos in (1, 2):
                    lp.publish('s/q%d' % qos, b'out%d' % qos, qos=qos)
                    m = ms.get(5)
                    self.assertEqual((m.topic, m.payload, m.qos),
                                     ('%s/s/q%d' % (name, qos), b'out%d' % qos, qos))
                    mp.publish('%s/c/q%d' % (name, qos), b'in%d' % qos, qos=qos)
                    m = ls.get(5)
                    self.assertEqual((m.topic, m.payload, m.qos),
                                     ('cmd/%s/c/q%d' % (name, qos), b'in%d' % qos, qos))

    def test_retained_reaches_mosquitto(self):
        lp = self.client(self.A.port)
        lp.publish('s/ret', b'r1', qos=1, retain=True)
        time.sleep(0.5)
        for name in ('m311', 'm5'):
            late = self.client(self.M.port)
            late.subscribe('%s/s/ret' % name, 1)
            m = late.get(5)
            self.assertEqual((m.payload, m.retain), (b'r1', 1), name)

    def test_two_way_no_echo(self):
        for name in ('m311', 'm5'):
            with self.subTest(protocol=name):
                topic = 'both%s/t' % name
                ls = self.client(self.A.port)
                ls.subscribe(topic, 1)
                ms = self.client(self.M.port)
                ms.subscribe(topic, 1)
                self.client(self.A.port).publish(topic, b'from-local', qos=1)
                self.client(self.M.port).publish(topic, b'from-remote', qos=1)
                assert_once_each_side(self, (ls, ms), [b'from-local', b'from-remote'])


class MosquittoRestart(unittest.TestCase):

    def test_reconnect_after_restart(self):
        M = Mosquitto(persistence=True).start()
        A = BridgedBroker([bridge_section('mr', M.port, ['out q/# qos=1'], protocol='3.1.1',
                                          client_id='petrel-mr')]).start()
        try:
            self.assertTrue(A.wait_bridge('mr'), A.tail())
            persistent_sub(M.port, 'mosq-sub', 'q/#')
            time.sleep(0.2)
            M.stop()
            self.assertTrue(A.wait_log(r'bridge mr: .*trying', 10), A.tail())
            pub = harness.PipelinedPublisher(A.port, 'q/x', qos=1, window=10)
            pub.run(100)
            pub.close()
            self.assertEqual(len(pub.acked), 100)
            M.start()
            self.assertEqual(wait_connects(A, 'mr', 2), 2, A.tail())
            # What petreld acknowledged while mosquitto was down, in order.
            self.assertEqual(collect_numbers(M.port, 'mosq-sub', set(range(100))),
                             list(range(100)))
        finally:
            A.stop()
            M.close()


class TlsClientCertificate(unittest.TestCase):

    def test_tls_with_client_certificate(self):
        certs = Certs()
        port = harness.free_port()
        M = Mosquitto(lines=['listener %d 127.0.0.1' % port,
                             'cafile %s' % certs.ca, 'certfile %s' % certs.server,
                             'keyfile %s' % certs.server_key,
                             'require_certificate true']).start()
        # The first listener (plain) is for the test's own clients.
        good = bridge_section('tlsok', port, ['out t/# qos=1'], tls='true', cafile=certs.ca,
                              certfile=certs.alice, keyfile=certs.alice_key,
                              client_id='petrel-tls-ok')
        nocert = bridge_section('tlsno', port, ['out t/# qos=1'], tls='true', cafile=certs.ca,
                                client_id='petrel-tls-no')
        A = BridgedBroker([good, nocert]).start()
        try:
            self.assertTrue(A.wait_bridge('tlsok'), A.tail() + M.tail())
            ms = paho(M.port)
            ms.subscribe('t/#', 1)
            lp = paho(A.port)
            lp.publish('t/secure', b'over tls', qos=1)
            m = ms.get(5)
            self.assertEqual(m.payload, b'over tls')
            ms.expect_nothing(1.0)  # once: the bridge without a certificate is not up
            self.assertIsNotNone(A.wait_log(r'bridge tlsno: .*(TLS|closed|reset)', 10),
                                 A.tail())
            self.assertEqual(A.count_log(r'bridge tlsno: connected'), 0)
            lp.close()
            ms.close()
        finally:
            A.stop()
            M.close()
            certs.close()


if __name__ == '__main__':
    unittest.main(verbosity=2)
