"""The HTTP listener (http_listen): health checks, the dashboard's embedded
files, tokens and roles, the bounds on requests and connections, TLS, and
the admin API under /api/v1/.  petreld only."""

import json
import os
import socket
import ssl
import time
import unittest

import harness
from harness import Broker, skip_on_mosquitto
import http_helpers
from http_helpers import ADMIN_TOKEN, READ_TOKEN, HttpBroker
import tls_helpers


class HttpCase(unittest.TestCase):
    http_extra = ''
    tokens = True
    settings = None

    @classmethod
    def setUpClass(cls):
        cls.b = HttpBroker(cls.settings, http_extra=cls.http_extra, tokens=cls.tokens).start()

    @classmethod
    def tearDownClass(cls):
        cls.b.stop()

    def setUp(self):
        if not self.b.alive():
            self.fail('broker is not running\n' + self.b.tail())

    def tearDown(self):
        if not self.b.alive():
            self.fail('broker died\n' + self.b.tail())


@skip_on_mosquitto('petreld HTTP listener')
class HealthAndFiles(HttpCase):
    def test_healthz(self):
        self.assertEqual(self.b.get_json('/healthz'), {'status': 'ok'})

    def test_readyz(self):
        self.assertEqual(self.b.get_json('/readyz'), {'status': 'ready'})

    def test_head_healthz(self):
        status, headers, body = self.b.request('HEAD', '/healthz')
        self.assertEqual(status, 200)
        self.assertEqual(body, b'')

    def test_health_only_get(self):
        err = self.b.get_json('/healthz', method='POST', expect=405)
        self.assertEqual(err['error'], 'method_not_allowed')
        self.assertIn('message', err)

    def test_dashboard_page(self):
        status, headers, body = self.b.request('GET', '/')
        self.assertEqual(status, 200)
        self.assertEqual(headers['content-type'], 'text/html; charset=utf-8')
        here = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(here, '..', '..', 'broker', 'web', 'index.html'), 'rb') as f:
            self.assertEqual(body, f.read())

    def test_unknown_static_file(self):
        err = self.b.get_json('/static/nothing.js', expect=404)
        self.assertEqual(err['error'], 'not_found')

    def test_static_needs_no_token_but_api_does(self):
        err = self.b.get_json('/api/v1/stats', expect=401)
        self.assertEqual(err['error'], 'unauthorized')
        status, headers, _ = self.b.request('GET', '/metrics')
        self.assertEqual(status, 401)
        self.assertIn('bearer', headers.get('www-authenticate', '').lower())

    def test_bad_token(self):
        err = self.b.get_json('/api/v1/stats', token='x' * 30, expect=401)
        self.assertEqual(err['error'], 'unauthorized')
        status, _, _ = self.b.request('GET', '/api/v1/stats',
                                      headers={'Authorization': 'Basic Zm9vOmJhcg=='})
        self.assertEqual(status, 401)
        # a prefix of a real token is no token
        err = self.b.get_json('/api/v1/stats', token=READ_TOKEN[:-1], expect=401)

    def test_oversized_headers(self):
        reply = self.b.raw(b'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ' + b'a' * 9000 +
                           b'\r\n\r\n')
        status = reply.split(b'\r\n', 1)[0]
        self.assertTrue(status == b'' or b' 413 ' in status or b' 400 ' in status, reply[:200])
        self.assertEqual(self.b.get_json('/healthz'), {'status': 'ok'})

    def test_oversized_body(self):
        status, _, _ = self.b.request('POST', '/api/v1/reload', token=ADMIN_TOKEN,
                                      body=b'x' * (70 * 1024))
        self.assertEqual(status, 413)
        self.assertEqual(self.b.get_json('/healthz'), {'status': 'ok'})

    def test_garbage_request(self):
        reply = self.b.raw(b'\x00\x01\x02 nonsense\r\n\r\n')
        self.assertTrue(reply == b'' or b' 400 ' in reply.split(b'\r\n', 1)[0], reply[:200])
        self.assertEqual(self.b.get_json('/healthz'), {'status': 'ok'})

    def test_keep_alive(self):
        s = socket.create_connection(('127.0.0.1', self.b.http_port), timeout=10)
        try:
            f = s.makefile('rb')
            for _ in range(3):
                s.sendall(b'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
                line = f.readline()
                self.assertIn(b' 200 ', line)
                length = 0
                while True:
                    h = f.readline()
                    if h in (b'\r\n', b''):
                        break
                    if h.lower().startswith(b'content-length:'):
                        length = int(h.split(b':')[1])
                self.assertEqual(json.loads(f.read(length)), {'status': 'ok'})
        finally:
            s.close()

    def test_connection_limit(self):
        """64 idle connections take every slot; the 65th waits (is not
        served) until one closes, and is served then."""
        socks = []
        try:
            for _ in range(64):
                socks.append(socket.create_connection(('127.0.0.1', self.b.http_port),
                                                      timeout=10))
            # each is accepted by the time it answers
            socks[-1].sendall(b'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
            self.assertIn(b' 200 ', socks[-1].recv(4096))
            self.assertTrue(self.b.wait_log(r'http: 64 connections open', timeout=5))
            extra = socket.create_connection(('127.0.0.1', self.b.http_port), timeout=10)
            extra.sendall(b'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
            extra.settimeout(0.5)
            with self.assertRaises(socket.timeout):
                extra.recv(4096)
            socks.pop(0).close()
            extra.settimeout(10)
            self.assertIn(b' 200 ', extra.recv(4096))
            extra.close()
        finally:
            for s in socks:
                s.close()
        self.assertEqual(self.b.get_json('/healthz'), {'status': 'ok'})


@skip_on_mosquitto('petreld HTTP listener')
class HttpConfig(unittest.TestCase):
    def start_fails(self, http_listen, why):
        b = Broker({'http_listen': http_listen})
        try:
            rc, log = b.run_to_exit()
        finally:
            b.remove()
        self.assertEqual(rc, 2, log)
        self.assertIn(why, log)

    def test_anonymous_only_on_loopback(self):
        self.start_fails('0.0.0.0:0 anonymous=read', 'only allowed on a loopback address')

    def test_bad_anonymous(self):
        self.start_fails('127.0.0.1:0 anonymous=everyone', 'not one of none, read or admin')

    def test_tls_needs_files(self):
        self.start_fails('127.0.0.1:0 tls', 'needs certfile= and keyfile=')

    def test_bad_token_file(self):
        b = Broker()
        try:
            path = http_helpers.write_tokens(b.tmp, ['alice superuser %s' % ADMIN_TOKEN])
            b.settings['http_token_file'] = path
            rc, log = b.run_to_exit()
        finally:
            b.remove()
        self.assertEqual(rc, 2, log)
        self.assertIn('tokens:1: role', log)

    def test_short_token_refused(self):
        b = Broker()
        try:
            b.settings['http_token_file'] = http_helpers.write_tokens(b.tmp, ['a read short'])
            rc, log = b.run_to_exit()
        finally:
            b.remove()
        self.assertEqual(rc, 2, log)
        self.assertIn('must have 16 to 256', log)

    def test_off_by_default(self):
        b = Broker().start()
        try:
            self.assertNotIn('http listener', b.log_text())
        finally:
            b.stop()

    def test_print_config_round_trip(self):
        import subprocess
        b = Broker({'http_listen': '127.0.0.1:9999 anonymous=read'})
        try:
            with open(b.conf_path, 'w') as f:
                f.write(b._petreld_conf())
            out = subprocess.run([harness.PETRELD, '-c', b.conf_path, '--print-config'],
                                 capture_output=True, text=True, timeout=10)
        finally:
            b.remove()
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn('http_listen = 127.0.0.1:9999 anonymous=read\n', out.stdout)


@skip_on_mosquitto('petreld HTTP listener')
class AnonymousRead(HttpCase):
    http_extra = 'anonymous=read'
    tokens = False

    def test_read_without_token(self):
        status, _, _ = self.b.request('GET', '/api/v1/nothing')
        self.assertEqual(status, 404)


@skip_on_mosquitto('petreld HTTP listener')
class HttpsListener(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = tls_helpers.Certs()
        c = cls.certs
        cls.b = HttpBroker(http_extra='tls certfile=%s keyfile=%s' % (c.server, c.server_key))
        cls.b.start()

    @classmethod
    def tearDownClass(cls):
        cls.b.stop()
        cls.certs.close()

    def test_https(self):
        ctx = ssl.create_default_context(cafile=self.certs.ca)
        ctx.check_hostname = False
        status, _, body = self.b.request('GET', '/healthz', context=ctx)
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body), {'status': 'ok'})

    def test_plain_http_on_tls_port_refused(self):
        reply = self.b.raw(b'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
        self.assertNotIn(b'"status"', reply)

    def test_wrong_ca_refused(self):
        ctx = ssl.create_default_context(cafile=self.certs.ca2)
        ctx.check_hostname = False
        with self.assertRaises(ssl.SSLError):
            self.b.request('GET', '/healthz', context=ctx)


if __name__ == '__main__':
    unittest.main()
