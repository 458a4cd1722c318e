"""TLS listeners: the right CA works (Paho, mosquitto_pub/mosquitto_sub), a
wrong CA or an expired certificate is refused by the client, required client
certificates are enforced, the certificate's CN as user name with the ACL,
TLS 1.1 refused, a stalled handshake cut off by connect_timeout while others
keep working, plain MQTT on the TLS port refused, start-up errors for broken
certificate files, and certificates reloaded on SIGHUP.  petreld only."""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import unittest

import harness
from harness import Broker, BrokerTestCase, skip_on_mosquitto
import mqttraw
import security_helpers as sec
import tls_helpers
from tls_helpers import TlsRawClient, client_context, tls_connect_outcome

CONNECT_TIMEOUT = 2


def tls_listen(certs, cert=None, key=None, extra=''):
    return ('127.0.0.1:0 tls certfile=%s keyfile=%s %s' %
            (cert or certs.server, key or certs.server_key, extra)).strip()


def mosquitto_tls_pub(port, topic, message, cafile, extra=(), timeout=10.0):
    cmd = [harness.MOSQUITTO_PUB, '-h', 'localhost', '-p', str(port), '-V', 'mqttv311',
           '--cafile', cafile, '-t', topic, '-m', message, '-q', '1'] + list(extra)
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


@skip_on_mosquitto('petreld TLS listener options')
class TlsTest(BrokerTestCase):
    """One broker: a plain listener (first, for the harness), a TLS one, one
    that requires client certificates, and one with an expired
    certificate."""

    @classmethod
    def setUpClass(cls):
        cls.certs = tls_helpers.Certs()
        c = cls.certs
        cls.broker_settings = {
            'listen': ['127.0.0.1:0',
                       tls_listen(c),
                       tls_listen(c, extra='cafile=%s require_certificate=true' % c.ca),
                       tls_listen(c, c.expired, c.expired_key)],
            'connect_timeout': CONNECT_TIMEOUT,
        }
        try:
            super().setUpClass()
        except BaseException:
            c.close()
            raise
        cls.plain, cls.tls, cls.mutual, cls.expired = [p for _, p in cls.broker.listeners]

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.certs.close()

    def tls_client(self, port=None, **ctx_kw):
        ctx_kw.setdefault('cafile', self.certs.ca)
        c = TlsRawClient(port or self.tls, client_context(**ctx_kw))
        self._clients.append(c)
        return c

    def paho_tls(self, port, cafile, certfile=None, keyfile=None):
        import paho.mqtt.client as mqtt
        c = mqtt.Client(client_id='', clean_session=True, protocol=mqtt.MQTTv311)
        c.tls_set(ca_certs=cafile, certfile=certfile, keyfile=keyfile)
        return c

    # ---- the right CA
    def test_paho_with_the_right_ca(self):
        import paho.mqtt.client as mqtt
        topic = self.topic()
        got = []
        c = self.paho_tls(self.tls, self.certs.ca)
        c.on_message = lambda cl, u, m: got.append((m.topic, m.payload))
        self.assertEqual(c.connect('localhost', self.tls, 30), mqtt.MQTT_ERR_SUCCESS)
        c.loop_start()
        try:
            res, mid = c.subscribe(topic, 1)
            self.assertEqual(res, 0)
            time.sleep(0.3)
            info = c.publish(topic, b'over tls', 1)
            info.wait_for_publish(5)
            self.assertTrue(info.is_published())
            deadline = time.monotonic() + 5
            while not got and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertEqual(got, [(topic, b'over tls')])
        finally:
            c.disconnect()
            c.loop_stop()
        # the handshake is logged at debug only; the connection at notice
        self.assertTrue(self.broker.wait_log(r'client \S+ connected from 127\.0\.0\.1'))

    def test_mosquitto_sub_and_pub_with_cafile(self):
        topic = self.topic()
        sub = self.mosquitto_sub(topic, port=self.tls, qos=1,
                                 extra=['-h', 'localhost', '--cafile', self.certs.ca])
        sub.wait_subscribed()
        r = mosquitto_tls_pub(self.tls, topic, 'hello tls', self.certs.ca)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sub.get(), (1, False, topic, 'hello tls'))

    def test_tls_and_plain_clients_meet(self):
        w = self.watcher()
        c = self.tls_client()
        c.connect('tls-meets-plain')
        c.publish(self.topic('x'), b'from tls', qos=1)
        self.assertEqual(w.expect_publish().payload, b'from tls')

    # ---- refusals on the client side
    def test_wrong_ca_is_refused(self):
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.tls_client(cafile=self.certs.ca2)
        r = mosquitto_tls_pub(self.tls, self.topic(), 'x', self.certs.ca2)
        self.assertNotEqual(r.returncode, 0)
        # the broker logs the failed handshake with OpenSSL's reason and the peer
        self.assertTrue(self.broker.wait_log(
            r'connection from 127\.0\.0\.1:\d+ closed: TLS handshake failed: .*unknown ca'),
            self.broker.tail())

    def test_expired_server_certificate_is_refused(self):
        with self.assertRaises(ssl.SSLCertVerificationError) as cm:
            self.tls_client(self.expired)
        self.assertIn('expired', str(cm.exception))
        r = mosquitto_tls_pub(self.expired, self.topic(), 'x', self.certs.ca)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('certfile %s: the certificate has expired' % self.certs.expired,
                      self.broker.log_text())

    # ---- client certificates
    def assert_handshake_refused(self, ctx, why):
        """A client with context ctx gets no MQTT session on the listener
        that requires certificates; the broker logs the failure, `why`."""
        out = tls_connect_outcome(self.mutual, ctx)
        self.assertNotEqual(out, 'connected')
        self.assertFalse(out.startswith('connack'), out)
        self.assertTrue(self.broker.wait_log(r'TLS handshake failed: .*' + why),
                        self.broker.tail())

    def test_required_certificate_missing_is_refused(self):
        self.assert_handshake_refused(client_context(cafile=self.certs.ca),
                                      r'peer did not return a certificate')

    def test_required_certificate_from_another_ca_is_refused(self):
        self.assert_handshake_refused(client_context(
            cafile=self.certs.ca, cert=self.certs.mallory, key=self.certs.mallory_key),
            r'certificate verify failed')

    def test_required_certificate_good_is_accepted(self):
        out = tls_connect_outcome(self.mutual, client_context(
            cafile=self.certs.ca, cert=self.certs.alice, key=self.certs.alice_key))
        self.assertEqual(out, 'connected')
        # mosquitto_pub with --cert/--key too
        r = mosquitto_tls_pub(self.mutual, self.topic(), 'x', self.certs.ca,
                              extra=['--cert', self.certs.bob, '--key', self.certs.bob_key])
        self.assertEqual(r.returncode, 0, r.stderr)

    # ---- protocol versions
    def test_tls_1_1_is_refused(self):
        try:
            ctx = client_context(cafile=self.certs.ca, min_version=ssl.TLSVersion.TLSv1,
                                 max_version=ssl.TLSVersion.TLSv1_1)
            ctx.set_ciphers('DEFAULT:@SECLEVEL=0')
        except (ssl.SSLError, ValueError) as e:
            self.skipTest('this OpenSSL cannot even offer TLS 1.1: %s' % e)
        try:
            c = TlsRawClient(self.tls, ctx)
        except ssl.SSLError as e:
            reason = getattr(e, 'reason', '') or ''
            if reason == 'NO_PROTOCOLS_AVAILABLE' or 'no protocols available' in str(e):
                self.skipTest('this OpenSSL refuses to offer TLS 1.1 (%s)' % e)
            # The attempt was made: the broker must have refused it.
            self.assertTrue(self.broker.wait_log(r'TLS handshake failed: .*(unsupported '
                                                 r'protocol|no shared cipher|version)'),
                            self.broker.tail())
            return
        c.close()
        self.fail('a TLS 1.1 handshake succeeded (%s)' % c.sock.version())

    def test_tls_1_2_is_accepted(self):
        c = self.tls_client(max_version=ssl.TLSVersion.TLSv1_2)
        self.assertEqual(c.sock.version(), 'TLSv1.2')
        c.connect('tls12')

    # ---- stalled handshakes and plain MQTT on the TLS port
    def test_stalled_handshake_is_cut_off_by_connect_timeout(self):
        w = self.watcher()
        good = self.tls_client()
        good.connect('tls-good-during-stall')
        good.subscribe(self.topic('#'), expect_granted=[0])
        silent = socket.create_connection(('127.0.0.1', self.tls))
        partial = socket.create_connection(('127.0.0.1', self.tls))
        # a TLS record header promising a ClientHello that never comes
        partial.sendall(b'\x16\x03\x01\x02\x00\x01')
        t0 = time.monotonic()
        try:
            for s in (silent, partial):
                s.settimeout(CONNECT_TIMEOUT + 5)
                try:
                    data = s.recv(100)
                except (ConnectionResetError, socket.timeout) as e:
                    data = e
                # closed by the broker (EOF, or an alert then EOF), not left open
                if data and not isinstance(data, bytes):
                    self.fail('connection not closed in time: %r' % data)
                while data:
                    data = s.recv(100)
            elapsed = time.monotonic() - t0
        finally:
            silent.close()
            partial.close()
        self.assertGreaterEqual(elapsed, CONNECT_TIMEOUT - 0.5)
        self.assertLess(elapsed, CONNECT_TIMEOUT + 3)
        self.assertTrue(self.broker.wait_log(r'no CONNECT within connect_timeout'))
        # the established TLS client and the plain one were not disturbed
        good.publish(self.topic('after'), b'still here', qos=0)
        self.assertEqual(good.expect_publish().payload, b'still here')
        self.assertEqual(w.expect_publish().payload, b'still here')
        self.assert_broker_serves(w)

    def test_plain_mqtt_on_the_tls_port_is_refused(self):
        w = self.watcher()
        good = self.tls_client()
        good.connect('tls-good-during-plain')
        plain = self.raw(self.tls)
        plain.try_send(mqttraw.connect_packet('plain-on-tls'))
        self.assertTrue(plain.wait_closed(CONNECT_TIMEOUT + 3))
        self.assertFalse(any(p.type == mqttraw.CONNACK for p in plain.before_close))
        self.assertTrue(self.broker.wait_log(r'closed: TLS handshake failed'))
        good.publish(self.topic('x'), b'unaffected', qos=1)
        self.assertEqual(w.expect_publish().payload, b'unaffected')


@skip_on_mosquitto('petreld TLS listener options')
class TlsIdentityTest(BrokerTestCase):
    """use_identity_as_username: the CN is the user name, and the ACL applies
    to it; the CONNECT's user name and password do not count."""

    ACL = """topic read #
topic subscribe #

user alice
topic readwrite alice/#
"""

    @classmethod
    def setUpClass(cls):
        cls.certs = tls_helpers.Certs()
        cls.files = sec.Files()
        c = cls.certs
        cls.broker_settings = {
            'listen': ['127.0.0.1:0',
                       tls_listen(c, extra='cafile=%s use_identity_as_username=true' % c.ca)],
            'acl_file': cls.files.write('acl', cls.ACL),
            'password_file': cls.files.passwd({'bob': 'b0b'}),
        }
        try:
            super().setUpClass()
        except BaseException:
            c.close()
            cls.files.close()
            raise
        cls.ident = cls.broker.listeners[1][1]

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.certs.close()
        cls.files.close()

    def client(self, cert=None, key=None):
        c = TlsRawClient(self.ident, client_context(cafile=self.certs.ca, cert=cert, key=key))
        self._clients.append(c)
        return c

    def test_cn_is_the_user_for_the_acl(self):
        w = self.raw_connected()
        w.subscribe('#', expect_granted=[0])
        alice = self.client(self.certs.alice, self.certs.alice_key)
        # claims to be bob, with bob's password: the certificate says alice
        alice.connect('by-cert', username='bob', password='b0b')
        alice.publish('bob/x', b'as bob?', qos=1)       # denied: acknowledged, dropped
        alice.publish('alice/x', b'as alice', qos=1)
        p = w.expect_publish()
        self.assertEqual((p.topic, p.payload), ('alice/x', b'as alice'))
        w.expect_nothing(0.3)
        self.assertTrue(self.broker.wait_log(r"client by-cert connected .*user 'alice'"))

    def test_other_cn_gets_no_rights(self):
        w = self.raw_connected()
        w.subscribe('alice/#', expect_granted=[0])
        bob = self.client(self.certs.bob, self.certs.bob_key)
        bob.connect('bob-by-cert')
        bob.publish('alice/x', b'not his', qos=1)
        w.expect_nothing(0.5)

    def test_no_certificate_gets_connack_5(self):
        c = self.client()
        c.connect('no-cert', username='bob', password='b0b', expect_rc=5)
        self.assertTrue(c.wait_closed())

    def test_certificate_from_another_ca_is_refused(self):
        out = tls_connect_outcome(self.ident, client_context(
            cafile=self.certs.ca, cert=self.certs.mallory, key=self.certs.mallory_key))
        self.assertNotEqual(out, 'connected')


@skip_on_mosquitto('petreld start-up checks')
class TlsStartupTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.certs = tls_helpers.Certs()

    @classmethod
    def tearDownClass(cls):
        cls.certs.close()

    def start_fails(self, listen, pattern):
        b = Broker({'listen': listen})
        try:
            rc, log = b.run_to_exit()
        finally:
            shutil.rmtree(b.tmp, ignore_errors=True)
        self.assertEqual(rc, 1, log)
        self.assertRegex(log, pattern)
        self.assertNotIn('listening on', log)
        return log

    def test_key_of_another_certificate(self):
        c = self.certs
        self.start_fails(tls_listen(c, c.server, c.alice_key),
                         r'broker\.conf:\d+: listen 127\.0\.0\.1:0: keyfile %s does not belong '
                         r'to the certificate in certfile %s: .*key values mismatch'
                         % (c.alice_key, c.server))

    def test_missing_certificate(self):
        c = self.certs
        missing = c.path('nope.crt')
        self.start_fails(tls_listen(c, missing),
                         r'broker\.conf:\d+: listen .*certfile %s: No such file or directory'
                         % missing)

    def test_certificate_that_is_not_pem(self):
        c = self.certs
        junk = c.path('junk.crt')
        with open(junk, 'w') as f:
            f.write('not a certificate\n')
        self.start_fails(tls_listen(c, junk), r'certfile %s: .*no start line' % junk)

    def test_bad_cafile(self):
        c = self.certs
        self.start_fails(tls_listen(c, extra='cafile=%s require_certificate=true'
                                    % c.path('none.pem')), r'cafile .*none\.pem: No such file')


@skip_on_mosquitto('petreld SIGHUP')
class TlsReloadTest(unittest.TestCase):

    def setUp(self):
        self.certs = tls_helpers.Certs()
        self.addCleanup(self.certs.close)
        c = self.certs
        self.cert = c.path('live.crt')
        self.key = c.path('live.key')
        shutil.copy(c.server, self.cert)
        shutil.copy(c.server_key, self.key)
        self.broker = Broker({'listen': ['127.0.0.1:0', tls_listen(c, self.cert, self.key)]})
        self.broker.start()
        self.addCleanup(self.broker.stop)
        self.port = self.broker.listeners[1][1]

    def outcome(self, ca):
        return tls_connect_outcome(self.port, client_context(cafile=ca))

    def test_sighup_reloads_certificates_and_keeps_them_on_error(self):
        c = self.certs
        held = TlsRawClient(self.port, client_context(cafile=c.ca))
        self.addCleanup(held.close)
        held.connect('held-over-reload')
        self.assertEqual(self.outcome(c.ca), 'connected')
        # renewed: a certificate from the other CA
        shutil.copy(c.server2, self.cert)
        shutil.copy(c.server2_key, self.key)
        self.broker.signal(signal.SIGHUP)
        self.assertTrue(self.broker.wait_log(r'SIGHUP: .*certificates reloaded'))
        self.assertEqual(self.outcome(c.ca2), 'connected')
        self.assertTrue(self.outcome(c.ca).startswith('handshake'))
        # the connection made before the reload is untouched
        held.ping()
        # a broken renewal: the key does not match; the last good pair stays
        shutil.copy(c.alice_key, self.key)
        self.broker.signal(signal.SIGHUP)
        self.assertTrue(self.broker.wait_log(r'SIGHUP: .*keeping the certificates in use: '
                                             r'keyfile .* does not belong'))
        self.assertEqual(self.outcome(c.ca2), 'connected')
        held.ping()


if __name__ == '__main__':
    unittest.main(verbosity=2)
