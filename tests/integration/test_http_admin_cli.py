"""`petrel admin` against a real petreld: every command, tables and --json,
tokens from the command line, a file and the environment, the exit
statuses, and HTTPS with --cafile.  petreld only."""

import json
import os
import subprocess
import unittest

import harness
from harness import skip_on_mosquitto
from mqttraw import RawClient
import http_helpers
from http_helpers import ADMIN_TOKEN, READ_TOKEN, HttpBroker
import tls_helpers

PETREL = os.environ.get('PETREL') or os.path.join(harness.REPO, 'build', 'cli', 'petrel')


def admin(b, *args, token=ADMIN_TOKEN, extra=(), env=None, host=None):
    cmd = [PETREL, 'admin', '-H', host or '127.0.0.1:%d' % b.http_port]
    if token:
        cmd += ['--token', token]
    cmd += list(extra) + list(args)
    e = dict(os.environ)
    e.pop('PETREL_TOKEN', None)
    e.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=e,
                          stdin=subprocess.DEVNULL)


@skip_on_mosquitto('petreld admin API')
class AdminCli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(PETREL):
            raise unittest.SkipTest('petrel not built')
        cls.b = HttpBroker().start()

    @classmethod
    def tearDownClass(cls):
        cls.b.stop()

    def ok(self, *args, **kw):
        r = admin(self.b, *args, **kw)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout

    def test_stats_table_and_json(self):
        out = self.ok('stats')
        self.assertRegex(out, r'(?m)^version +0\.1\.0$')
        self.assertRegex(out, r'(?m)^listener 127\.0\.0\.1:%d +tcp ' % self.b.port)
        st = json.loads(self.ok('--json', 'stats'))
        self.assertEqual(st['version'], '0.1.0')

    def test_clients_and_client(self):
        with RawClient(self.b.port) as c:
            c.connect('cli-client-1')
            c.subscribe([('cli/+', 1)])
            out = self.ok('clients', '--prefix', 'cli-client')
            lines = out.splitlines()
            self.assertTrue(lines[0].startswith('CLIENT ID'))
            self.assertEqual(len(lines), 2, out)
            self.assertTrue(lines[1].startswith('cli-client-1 '))
            out = self.ok('client', 'cli-client-1')
            self.assertRegex(out, r'(?m)^protocol +3\.1\.1$')
            self.assertIn('qos 1  cli/+', out)
            data = json.loads(self.ok('--json', 'clients', '--prefix', 'cli-client'))
            self.assertEqual([x['client_id'] for x in data['clients']], ['cli-client-1'])
            out = self.ok('disconnect', 'cli-client-1')
            self.assertIn('disconnected cli-client-1', out)
            c.wait_closed()
        r = admin(self.b, 'client', 'cli-client-1')
        self.assertEqual(r.returncode, 1)
        self.assertIn('404', r.stderr)

    def test_sessions_and_delete(self):
        c = RawClient(self.b.port)
        c.connect('cli-sess', clean=False)
        c.subscribe([('cs/#', 1)])
        c.close()
        with RawClient(self.b.port) as p:
            p.connect('cli-sess-pub')
            for i in range(3):
                p.publish('cs/%d' % i, b'abc', qos=1)
        out = self.ok('sessions', '--sort', 'queued', '--limit', '1')
        self.assertTrue(out.splitlines()[1].startswith('cli-sess '), out)
        out = self.ok('session', 'cli-sess')
        self.assertRegex(out, r'(?m)^queued_messages +3$')
        self.assertIn('cs/0', out)
        self.assertIn('deleted the session of cli-sess', self.ok('delete-session', 'cli-sess'))
        self.assertEqual(admin(self.b, 'session', 'cli-sess').returncode, 1)

    def test_retained(self):
        with RawClient(self.b.port) as p:
            p.connect('cli-ret')
            p.publish('cr/a', b'12', qos=1, retain=True)
            p.publish('cr/b/c', b'123', qos=1, retain=True)
        out = self.ok('retained', 'cr/#')
        self.assertEqual([l.split()[0] for l in out.splitlines()[1:]], ['cr/a', 'cr/b/c'])
        self.assertIn('deleted', self.ok('delete-retained', 'cr/a'))
        out = self.ok('retained', 'cr/#')
        self.assertEqual([l.split()[0] for l in out.splitlines()[1:]], ['cr/b/c'])
        self.assertEqual(admin(self.b, 'delete-retained', 'cr/a').returncode, 1)

    def test_reload(self):
        self.assertIn('reloaded', self.ok('reload'))

    def test_tokens_and_exit_statuses(self):
        r = admin(self.b, 'stats', token=None)
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertEqual(admin(self.b, 'stats', token='z' * 20).returncode, 4)
        self.assertEqual(admin(self.b, 'reload', token=READ_TOKEN).returncode, 4)
        self.ok('stats', token=None, env={'PETREL_TOKEN': READ_TOKEN})
        path = os.path.join(self.b.tmp, 'tokens')  # NAME ROLE TOKEN lines: the last word
        self.ok('stats', token=None, extra=['--token-file', path])
        self.assertEqual(admin(self.b, 'bogus').returncode, 2)
        self.assertEqual(admin(self.b, 'client').returncode, 2)
        self.assertEqual(admin(self.b, 'retained', 'a/#/b').returncode, 2)
        port = harness.free_port()
        r = admin(self.b, 'stats', host='127.0.0.1:%d' % port)
        self.assertEqual(r.returncode, 3, r.stderr)


@skip_on_mosquitto('petreld admin API')
class AdminCliTls(unittest.TestCase):
    def test_https(self):
        if not os.path.exists(PETREL):
            raise unittest.SkipTest('petrel not built')
        certs = tls_helpers.Certs()
        b = HttpBroker(http_extra='tls certfile=%s keyfile=%s' % (certs.server,
                                                                   certs.server_key))
        try:
            b.start()
            r = admin(b, 'stats', extra=['--cafile', certs.ca])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn('version', r.stdout)
            # the wrong CA: refused (3)
            r = admin(b, 'stats', extra=['--cafile', certs.ca2])
            self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
            # plain HTTP to a TLS listener gets no answer
            self.assertNotEqual(admin(b, 'stats').returncode, 0)
        finally:
            b.stop()
            certs.close()


if __name__ == '__main__':
    unittest.main()
