"""The HTTP listener (http_listen): health checks, the dashboard's embedded
files, tokens and roles, the bounds on requests and connections, TLS, and
the admin API under /api/v1/.  petreld only."""

import json
import os
import signal
import socket
import sys
import ssl
import time
import unittest
import urllib.parse

import harness
from harness import Broker, skip_on_mosquitto
import http_helpers
import mqttraw
from mqttraw import RawClient
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

    def healthz_closing(self):
        """A new connection that has asked GET /healthz, Connection: close."""
        s = socket.create_connection(('127.0.0.1', self.b.http_port), timeout=10)
        s.sendall(b'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
        return s

    def hold_idle(self, socks, n):
        """Appends n connections to `socks` (closed by the caller) and
        returns once the last has been answered, so all are accepted."""
        for _ in range(n):
            socks.append(socket.create_connection(('127.0.0.1', self.b.http_port), timeout=10))
        socks[-1].sendall(b'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
        self.assertIn(b' 200 ', socks[-1].recv(4096))


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

@skip_on_mosquitto('petreld HTTP listener')
class ConnectionLimits(HttpCase):
    # one address may hold every slot here: the total bound is what is tested
    http_extra = 'max_per_source=0'

    def test_connection_limit(self):
        """64 idle connections take every slot; the 65th waits (is not
        served) until one closes, and is served then (max_per_source=0)."""
        socks = []
        try:
            self.hold_idle(socks, 64)
            self.assertTrue(self.b.wait_log(r'http: 64 connections open', timeout=5))
            extra = self.healthz_closing()
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
        _, _, body = self.b.request('GET', '/metrics', token=READ_TOKEN)
        self.assertRegex(body.decode(), r'(?m)^petrel_http_connection_limit_hits_total [1-9]')



@skip_on_mosquitto('petreld HTTP listener')
class PerSourceLimit(HttpCase):
    http_extra = 'max_per_source=4'

    def test_one_address_gets_its_share(self):
        """With max_per_source=4, four idle connections from 127.0.0.1 are
        held; the fifth is closed at once without an answer, is counted and
        logged; once one of the four closes, a new one is served."""
        socks = []
        try:
            self.hold_idle(socks, 4)
            extra = self.healthz_closing()
            try:
                got = extra.recv(4096)
            except ConnectionResetError:
                got = b''
            self.assertEqual(got, b'', 'the fifth connection was served')
            extra.close()
            self.assertTrue(self.b.wait_log(
                r'http: 127\.0\.0\.1 already has 4 connections open \(max_per_source\)',
                timeout=5))
            socks.pop(0).close()
            deadline = time.monotonic() + 10
            while True:
                # the close reaches the broker a little after ours
                again = self.healthz_closing()
                try:
                    got = again.recv(4096)
                except ConnectionResetError:
                    got = b''
                again.close()
                if got or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            self.assertIn(b' 200 ', got)
        finally:
            for s in socks:
                s.close()
        deadline = time.monotonic() + 10
        while True:
            # until the broker has seen our four close
            try:
                _, _, body = self.b.request('GET', '/metrics', token=READ_TOKEN)
                break
            except (ConnectionError, http_helpers.http.client.HTTPException):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.assertRegex(body.decode(), r'(?m)^petrel_http_source_limit_hits_total [1-9]')


@skip_on_mosquitto('petreld HTTP listener')
class HttpConfig(unittest.TestCase):
    def start_fails(self, http_listen, why, tokens=None):
        """petreld refuses to start (exit 2) and says why; `tokens`, when
        given, are the lines of its http_token_file."""
        b = Broker({'http_listen': http_listen} if http_listen else {})
        try:
            if tokens is not None:
                b.settings['http_token_file'] = http_helpers.write_tokens(b.tmp, tokens)
            rc, log = b.run_to_exit()
        finally:
            b.remove()
        self.assertEqual(rc, 2, log)
        self.assertIn(why, log)

    def test_anonymous_only_on_loopback(self):
        self.start_fails('0.0.0.0:0 anonymous=read', 'only allowed on a loopback address')

    def test_bad_anonymous(self):
        self.start_fails('127.0.0.1:0 anonymous=everyone', 'not one of none, read or admin')

    def test_bad_max_per_source(self):
        for bad in ('max_per_source=65', 'max_per_source=-1', 'max_per_source=x',
                    'max_per_source=99999999999999999999'):
            self.start_fails('127.0.0.1:0 ' + bad, 'is not a number in 0..64')

    def test_tls_needs_files(self):
        self.start_fails('127.0.0.1:0 tls', 'needs certfile= and keyfile=')

    def test_bad_token_file(self):
        self.start_fails(None, 'tokens:1: role', tokens=['alice superuser %s' % ADMIN_TOKEN])

    def test_short_token_refused(self):
        self.start_fails(None, 'must have 16 to 256', tokens=['a read short'])

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
class AnonymousAdminFromBrowsers(HttpCase):
    """A listener open without a token, as a web page in the operator's
    browser could reach it: cross-site changes and DNS rebinding."""
    http_extra = 'anonymous=admin'
    tokens = False

    def test_cross_site_post_refused(self):
        host = '127.0.0.1:%d' % self.b.http_port
        for headers in ({'Origin': 'http://evil.example', 'Content-Type': 'text/plain'},
                        {'Origin': 'null'},
                        {'Sec-Fetch-Site': 'cross-site'}):
            status, _, data = self.b.request('POST', '/api/v1/reload', headers=headers)
            self.assertEqual(status, 403, (headers, data))
            self.assertEqual(json.loads(data)['error'], 'forbidden')
        # The dashboard's own (same-origin) requests, and clients that send
        # no Origin (curl, petrel admin), still work.
        status, _, data = self.b.request('POST', '/api/v1/reload',
                                         headers={'Origin': 'http://' + host,
                                                  'Sec-Fetch-Site': 'same-origin'})
        self.assertEqual(status, 200, data)
        status, _, _ = self.b.request('POST', '/api/v1/reload')
        self.assertEqual(status, 200)

    def test_rebound_host_refused(self):
        for host in ('evil.example', 'evil.example:%d' % self.b.http_port, '127.0.0.1.evil.example'):
            status, _, data = self.b.request('GET', '/api/v1/stats', headers={'Host': host})
            self.assertEqual(status, 403, (host, data))
        for host in ('localhost', 'localhost:%d' % self.b.http_port, '127.0.0.1', '[::1]:80'):
            status, _, data = self.b.request('GET', '/api/v1/stats', headers={'Host': host})
            self.assertEqual(status, 200, (host, data))

    def test_security_headers(self):
        status, headers, _ = self.b.request('GET', '/')
        self.assertEqual(status, 200)
        self.assertIn("frame-ancestors 'none'", headers.get('content-security-policy', ''))
        self.assertIn("default-src 'self'", headers.get('content-security-policy', ''))
        self.assertEqual(headers.get('referrer-policy'), 'no-referrer')


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


def q(s):
    return urllib.parse.quote(s, safe='')


@skip_on_mosquitto('petreld admin API')
class AdminApi(HttpCase):
    """Every endpoint with a read token, an admin token and none."""

    def client(self, cid, clean=True, level5=False):
        c = RawClient(self.b.port)
        if level5:
            c.send(mqttraw.connect5_packet(cid, clean=clean))
            c.expect(mqttraw.CONNACK)
        else:
            c.connect(cid, clean=clean)
        return c

    def test_stats(self):
        st = self.b.get_json('/api/v1/stats', token=READ_TOKEN)
        for key in ('version', 'node', 'uptime_seconds', 'time_ms', 'connections',
                    'connections_by_listener', 'sessions_online', 'sessions_offline',
                    'subscriptions', 'retained_messages', 'retained_bytes', 'queued_messages',
                    'queued_bytes', 'messages_received', 'messages_sent', 'messages_dropped',
                    'bytes_received', 'bytes_sent', 'store'):
            self.assertIn(key, st)
        self.assertEqual(st['version'], '0.1.0')
        self.assertEqual(set(st['store']), {'commits', 'commit_p50_ms', 'commit_p99_ms',
                                            'status'})
        self.assertEqual(st['store']['status'], 'ok')
        self.assertAlmostEqual(st['time_ms'] / 1000, time.time(), delta=5)
        before = st['messages_received']
        with self.client('stats-pub') as c:
            for i in range(4):
                c.publish('stats/t', b'x', qos=1)
            st = self.b.get_json('/api/v1/stats', token=ADMIN_TOKEN)
            self.assertEqual(st['messages_received'] - before, 4)
            ours = [l for l in st['connections_by_listener']
                    if l['listener'] == '127.0.0.1:%d' % self.b.port]
            self.assertEqual(len(ours), 1)
            self.assertEqual(ours[0]['transport'], 'tcp')
            self.assertGreaterEqual(ours[0]['connections'], 1)

    def test_clients_list_paging_prefix(self):
        ids = ['page-%02d' % i for i in range(7)]
        conns = [self.client(i) for i in reversed(ids)]
        try:
            r = self.b.get_json('/api/v1/clients?prefix=page-&limit=3', token=READ_TOKEN)
            self.assertEqual([c['client_id'] for c in r['clients']], ids[:3])
            self.assertEqual(r['next'], ids[2])
            r = self.b.get_json('/api/v1/clients?prefix=page-&limit=3&after=' + r['next'],
                                token=READ_TOKEN)
            self.assertEqual([c['client_id'] for c in r['clients']], ids[3:6])
            r = self.b.get_json('/api/v1/clients?prefix=page-&limit=3&after=' + r['next'],
                                token=READ_TOKEN)
            self.assertEqual([c['client_id'] for c in r['clients']], ids[6:])
            self.assertIsNone(r['next'])
            one = r['clients'][0]
            self.assertEqual(one['protocol'], '3.1.1')
            self.assertEqual(one['transport'], 'tcp')
            self.assertEqual(one['listener'], '127.0.0.1:%d' % self.b.port)
            self.assertTrue(one['address'].startswith('127.0.0.1:'))
            self.assertIsNone(one['username'])
            self.assertEqual(one['keepalive'], 60)
        finally:
            for c in conns:
                c.close()

    def test_client_detail_and_unicode_id(self):
        cid = 'caf\u00e9/ #?&%'
        with self.client(cid, level5=True) as c:
            c.send(mqttraw.subscribe5_packet(1, [('d/+', 1)]))
            c.expect(mqttraw.SUBACK)
            one = self.b.get_json('/api/v1/clients/' + q(cid), token=READ_TOKEN)
            self.assertEqual(one['client_id'], cid)
            self.assertEqual(one['protocol'], '5.0')
            self.assertEqual(one['subscriptions'], [{'filter': 'd/+', 'qos': 1}])
        err = self.b.get_json('/api/v1/clients/nobody-here', token=READ_TOKEN, expect=404)
        self.assertEqual(err['error'], 'not_found')

    def test_disconnect_needs_admin(self):
        with self.client('kick-me', level5=True) as c:
            err = self.b.get_json('/api/v1/clients/kick-me/disconnect', token=READ_TOKEN,
                                  method='POST', expect=403)
            self.assertEqual(err['error'], 'forbidden')
            err = self.b.get_json('/api/v1/clients/kick-me/disconnect', method='POST',
                                  expect=401)
            r = self.b.get_json('/api/v1/clients/kick-me/disconnect', token=ADMIN_TOKEN,
                                method='POST')
            self.assertEqual(r, {'disconnected': True})
            p = c.expect(mqttraw.DISCONNECT)
            self.assertEqual(p.body[0], 0x98)
            c.wait_closed()
        self.assertTrue(self.b.wait_log(r'token boss\) disconnected client kick-me'))
        self.b.get_json('/api/v1/clients/kick-me', token=READ_TOKEN, expect=404)
        self.b.get_json('/api/v1/clients/kick-me/disconnect', token=ADMIN_TOKEN,
                        method='POST', expect=404)

    def test_disconnect_keeps_persistent_session(self):
        c = self.client('kick-keep', clean=False)
        c.subscribe([('keep/#', 1)])
        self.b.get_json('/api/v1/clients/kick-keep/disconnect', token=ADMIN_TOKEN,
                        method='POST')
        c.wait_closed()
        c.close()
        s = self.b.get_json('/api/v1/sessions/kick-keep', token=READ_TOKEN)
        self.assertFalse(s['online'])
        self.assertEqual(s['subscriptions'], [{'filter': 'keep/#', 'qos': 1}])

    def test_sessions_and_queue(self):
        c = self.client('deep-q', clean=False)
        c.subscribe([('deep/#', 1)])
        c.close()
        with self.client('deep-pub') as p:
            for i in range(5):
                p.publish('deep/%d' % i, b'y' * (10 + i), qos=1)
        s = self.b.get_json('/api/v1/sessions/deep-q', token=READ_TOKEN)
        self.assertEqual(s['queued_messages'], 5)
        self.assertEqual(s['queued_bytes'], sum(10 + i for i in range(5)))
        self.assertEqual(s['subscription_count'], 1)
        self.assertFalse(s['online'])
        # The default session_expiry (30 days) counted from the disconnect.
        self.assertGreater(s['expires_in_seconds'], 30 * 86400 - 60)
        self.assertLessEqual(s['expires_in_seconds'], 30 * 86400 + 1)  # rounded up
        self.assertFalse(s['queued_truncated'])
        self.assertEqual(s['queued'], [{'topic': 'deep/%d' % i, 'bytes': 10 + i, 'qos': 1}
                                       for i in range(5)])
        deepest = self.b.get_json('/api/v1/sessions?sort=queued&limit=1', token=READ_TOKEN)
        self.assertEqual(deepest['sessions'][0]['client_id'], 'deep-q')
        self.assertIsNone(deepest['next'])
        lst = self.b.get_json('/api/v1/sessions?prefix=deep-', token=READ_TOKEN)
        self.assertIn('deep-q', [x['client_id'] for x in lst['sessions']])
        one = [x for x in lst['sessions'] if x['client_id'] == 'deep-q'][0]
        self.assertEqual(one['subscriptions'], 1)
        self.assertIsNone(self.b.get_json('/api/v1/sessions?sort=client_id',
                                          token=READ_TOKEN)['next'])

    def test_delete_session(self):
        c = self.client('doomed', clean=False)
        c.subscribe([('doom/#', 1)])
        self.b.get_json('/api/v1/sessions/doomed', token=READ_TOKEN, method='DELETE',
                        expect=403)
        r = self.b.get_json('/api/v1/sessions/doomed', token=ADMIN_TOKEN, method='DELETE')
        self.assertEqual(r, {'deleted': True})
        c.wait_closed()
        c.close()
        self.b.get_json('/api/v1/sessions/doomed', token=READ_TOKEN, expect=404)
        # gone from the store too: a new connection finds no session
        c = RawClient(self.b.port)
        ack = c.connect('doomed', clean=False)
        self.assertEqual(ack.body[0] & 1, 0, 'session present')
        c.close()
        self.b.get_json('/api/v1/sessions/doomed', token=ADMIN_TOKEN, method='DELETE')

    def test_retained_list_and_delete(self):
        with self.client('ret-pub') as p:
            for t in ('rt/a', 'rt/b', 'rt/c/d'):
                p.publish(t, b'v' * 3, qos=1, retain=True)
        r = self.b.get_json('/api/v1/retained?filter=' + q('rt/#') + '&limit=2',
                            token=READ_TOKEN)
        self.assertEqual([x['topic'] for x in r['retained']], ['rt/a', 'rt/b'])
        self.assertEqual(r['next'], 'rt/b')
        r = self.b.get_json('/api/v1/retained?filter=' + q('rt/#') + '&after=rt/b',
                            token=READ_TOKEN)
        self.assertEqual(r['retained'], [{'topic': 'rt/c/d', 'bytes': 3, 'qos': 1}])
        r = self.b.get_json('/api/v1/retained?filter=' + q('rt/+'), token=READ_TOKEN)
        self.assertEqual([x['topic'] for x in r['retained']], ['rt/a', 'rt/b'])
        self.b.get_json('/api/v1/retained?topic=rt/a', token=READ_TOKEN, method='DELETE',
                        expect=403)
        self.assertEqual(self.b.get_json('/api/v1/retained?topic=rt/a', token=ADMIN_TOKEN,
                                         method='DELETE'), {'deleted': True})
        self.b.get_json('/api/v1/retained?topic=rt/a', token=ADMIN_TOKEN, method='DELETE',
                        expect=404)
        # a new subscriber no longer gets it
        with self.client('ret-sub') as s:
            s.subscribe([('rt/a', 0)])
            s.expect_nothing(0.3)
        self.b.get_json('/api/v1/retained?topic=rt/%2B', token=ADMIN_TOKEN, method='DELETE',
                        expect=400)

    def test_reload(self):
        self.b.get_json('/api/v1/reload', token=READ_TOKEN, method='POST', expect=403)
        r = self.b.get_json('/api/v1/reload', token=ADMIN_TOKEN, method='POST')
        self.assertEqual(r, {'reloaded': True, 'errors': []})
        self.b.get_json('/api/v1/reload', token=ADMIN_TOKEN, expect=405)

    def test_bad_queries(self):
        for path in ('/api/v1/clients?limit=0', '/api/v1/clients?limit=1001',
                     '/api/v1/clients?limit=abc', '/api/v1/clients?limit=-1',
                     '/api/v1/clients?nonsense=1', '/api/v1/clients?limit=1&limit=2',
                     '/api/v1/sessions?sort=age', '/api/v1/sessions?sort=queued&after=x',
                     '/api/v1/clients?prefix=%00', '/api/v1/clients?prefix=%ff',
                     '/api/v1/retained?filter=a/%23/b',
                     '/api/v1/clients/%00x', '/api/v1/clients/%ff%fe',
                     '/api/v1/clients?prefix=' + 'a' * 5000):
            err = self.b.get_json(path, token=READ_TOKEN, expect=400)
            self.assertEqual(err['error'], 'bad_request', path)
            self.assertTrue(err['message'])

    def test_unknown_and_wrong_method(self):
        self.b.get_json('/api/v1/nothing', token=READ_TOKEN, expect=404)
        self.b.get_json('/api/v1/clients/a/b', token=READ_TOKEN, expect=404)
        self.b.get_json('/api/v1/stats', token=ADMIN_TOKEN, method='DELETE', expect=405)
        self.b.get_json('/api/v1/clients', token=ADMIN_TOKEN, method='POST', expect=405)

    def test_bad_body(self):
        with self.client('body-check'):
            self.b.get_json('/api/v1/clients/body-check/disconnect', token=ADMIN_TOKEN,
                            method='POST', body=b'not json', expect=400)
            self.b.get_json('/api/v1/clients/body-check/disconnect', token=ADMIN_TOKEN,
                            method='POST', body=b'{}')

    def test_metrics_with_read_token(self):
        status, _, body = self.b.request('GET', '/metrics', token=READ_TOKEN)
        self.assertEqual(status, 200)
        self.assertIn(b'petrel_build_info', body)


@skip_on_mosquitto('petreld admin API')
class TokenReload(unittest.TestCase):
    def test_sighup_rereads_tokens(self):
        b = HttpBroker().start()
        try:
            new = 'n' * 20 + 'fresh'
            http_helpers.write_tokens(b.tmp, ['newbie admin %s' % new])
            b.signal(signal.SIGHUP)
            self.assertTrue(b.wait_log(r'SIGHUP: 1 HTTP API tokens'), b.tail())
            b.get_json('/api/v1/stats', token=new)
            b.get_json('/api/v1/stats', token=READ_TOKEN, expect=401)
            # a broken file keeps the tokens in force
            http_helpers.write_tokens(b.tmp, ['broken line'])
            b.signal(signal.SIGHUP)
            self.assertTrue(b.wait_log(r'http_token_file not reloaded'), b.tail())
            b.get_json('/api/v1/stats', token=new)
            r = b.get_json('/api/v1/reload', token=new, method='POST')
            self.assertEqual(len(r['errors']), 1)
            self.assertIn('tokens:1', r['errors'][0])
        finally:
            b.stop()


@skip_on_mosquitto('petreld HTTP listener')
class ReadyzAndTimeouts(unittest.TestCase):
    def test_readyz_store_unwritable(self):
        """petrel.db deleted under petreld: /readyz turns 503 within seconds,
        /healthz stays 200."""
        b = HttpBroker().start()
        try:
            self.assertEqual(b.get_json('/readyz'), {'status': 'ready'})
            os.unlink(b.db_path)
            deadline = time.monotonic() + 10
            while True:
                status, _, body = b.request('GET', '/readyz')
                if status == 503 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            self.assertEqual(status, 503, body)
            self.assertEqual(json.loads(body), {'status': 'not_ready',
                                                'reasons': ['store_unwritable']})
            self.assertEqual(b.get_json('/healthz'), {'status': 'ok'})
        finally:
            b.stop()

    def test_idle_connection_closed(self):
        """A connection that sends nothing is closed after HTTP_TIMEOUT_S
        (10 s), not kept."""
        b = HttpBroker().start()
        try:
            s = socket.create_connection(('127.0.0.1', b.http_port), timeout=20)
            t0 = time.monotonic()
            try:
                data = s.recv(100)
            except ConnectionResetError:
                data = b''
            took = time.monotonic() - t0
            s.close()
            self.assertEqual(data, b'')
            self.assertGreater(took, 8)
            self.assertLess(took, 16)
        finally:
            b.stop()


class EmbedScript(unittest.TestCase):
    """broker/web/embed.py: paths, content types and bytes of the C table,
    and the files it refuses."""

    def run_embed(self, files):
        import subprocess
        import tempfile
        d = tempfile.mkdtemp(prefix='petrel-embed-')
        paths = []
        for name, data in files:
            sub = os.path.join(d, str(len(paths)))
            os.mkdir(sub)
            path = os.path.join(sub, name)
            with open(path, 'wb') as f:
                f.write(data)
            paths.append(path)
        out = os.path.join(d, 'out.c')
        script = os.path.join(harness.REPO, 'broker', 'web', 'embed.py')
        r = subprocess.run([sys.executable, script, out] + paths, capture_output=True, text=True,
                           timeout=30)
        text = ''
        if r.returncode == 0:
            with open(out) as f:
                text = f.read()
        return r, text

    def test_table(self):
        r, text = self.run_embed([('index.html', b'<p>hi</p>'), ('app.js', b'let a = "\\x01";'),
                                  ('style.css', b'')])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('{"/", "text/html; charset=utf-8", asset_0, 9}', text)
        self.assertIn('{"/static/app.js", "application/javascript", asset_1, 15}', text)
        self.assertIn('{"/static/style.css", "text/css", asset_2, 0}', text)
        self.assertIn('0x3c, 0x70, 0x3e', text)  # "<p>"

    def test_refused(self):
        r, _ = self.run_embed([('app.exe', b'x')])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('no content type', r.stderr)
        r, _ = self.run_embed([('app.js', b'x'), ('app.js', b'y')])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('both be served', r.stderr)


@skip_on_mosquitto('petreld admin API')
class DeletesReachTheStore(unittest.TestCase):
    def test_after_restart(self):
        """What the API deletes stays deleted across a restart: the
        retained message and the session were removed from the store."""
        b = HttpBroker().start()
        try:
            with RawClient(b.port) as p:
                p.connect('store-pub')
                p.publish('st/keep', b'1', qos=1, retain=True)
                p.publish('st/gone', b'2', qos=1, retain=True)
            c = RawClient(b.port)
            c.connect('store-sess', clean=False)
            c.subscribe([('st/#', 1)])
            c.close()
            b.get_json('/api/v1/retained?topic=st/gone', token=ADMIN_TOKEN, method='DELETE')
            b.get_json('/api/v1/sessions/store-sess', token=ADMIN_TOKEN, method='DELETE')
            b.restart()  # HttpBroker.start finds the new run's port
            r = b.get_json('/api/v1/retained?filter=' + q('st/#'), token=READ_TOKEN)
            self.assertEqual([x['topic'] for x in r['retained']], ['st/keep'])
            b.get_json('/api/v1/sessions/store-sess', token=READ_TOKEN, expect=404)
        finally:
            b.stop()


@skip_on_mosquitto('petreld HTTP listener')
class HostileRequests(HttpCase):
    """Malformed and hostile HTTP: each gets an error or a closed
    connection, never a crash, and the listener keeps answering."""

    def test_malformed(self):
        import random
        rnd = random.Random(15)
        cases = [
            b'GET /healthz HTTP/1.1\r\n' + b'X: y\r\n' * 3000 + b'\r\n',
            b'GET /' + b'a' * 20000 + b' HTTP/1.1\r\nHost: x\r\n\r\n',
            b'GET /api/v1/clients/' + b'%' * 3000 + b' HTTP/1.1\r\nHost: x\r\n\r\n',
            b'POST /api/v1/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n',
            b'POST /api/v1/reload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n'
            b'fffffffffffffff\r\nx\r\n',
            b'POST /api/v1/reload HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n',
            b'GET /healthz HTTP/9.9\r\n\r\n',
            b'GET\r\n\r\n',
            b'\r\n\r\n\r\n',
            b'GET /api/v1/stats HTTP/1.1\r\nAuthorization: Bearer ' + b'x' * 7000 + b'\r\n\r\n',
            b'GET /api/v1/stats HTTP/1.1\r\nAuthorization: Bearer \x00\x01\xff\r\n\r\n',
            b'GET /api/v1/stats?' + b'&' * 3000 + b' HTTP/1.1\r\n\r\n',
            b'GET /api/v1/stats?a=%00 HTTP/1.1\r\n\r\n',
        ]
        for _ in range(40):
            cases.append(bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 600))) +
                         b'\r\n\r\n')
            cases.append(b'GET /api/v1/' + bytes(rnd.choice(b'abc/%?&=#+0F\x00\xff ')
                                                 for _ in range(rnd.randrange(1, 80)))
                         + b' HTTP/1.1\r\nHost: x\r\n\r\n')
        for data in cases:
            reply = self.b.raw(data, read_until_close=False, timeout=3)
            first = reply.split(b'\r\n', 1)[0]
            self.assertNotIn(b' 200 ', first, data[:80])
            self.assertTrue(self.b.alive(), self.b.tail())
        self.assertEqual(self.b.get_json('/healthz'), {'status': 'ok'})


if __name__ == '__main__':
    unittest.main()
