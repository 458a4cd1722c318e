"""test_tls.py - libpetrel and the petrel CLI over TLS against petreld: pub
and sub with --cafile, the server name checked by default (a mismatch is a
clear error with exit status 3), --insecure with its warning, client
certificates with --cert/--key, an expired certificate, wrong or missing CA
files, and the 8883 default port."""

import os
import re
import sys

import clienttest as ct

sys.path.insert(0, os.path.join(os.environ.get('PETREL_SOURCE_ROOT',
                                               os.path.dirname(os.path.dirname(
                                                   os.path.dirname(os.path.abspath(__file__))))),
                                'tests', 'integration'))
import tls_helpers  # noqa: E402  (needs the path above)

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_REFUSED, EXIT_NOT_AUTHORIZED, EXIT_TIMEOUT = range(6)


class TlsPetreld(ct.Broker):
    """petreld with a plain listener and the TLS listeners given."""
    kind = 'petreld'

    def __init__(self, tls_listens):
        super().__init__()
        self.tls_listens = tls_listens

    def start(self):
        if not ct.have(ct.PETRELD):
            raise ct.unittest.SkipTest('petreld not built')
        data = os.path.join(self.tmp, 'data')
        os.makedirs(data, exist_ok=True)
        conf = os.path.join(self.tmp, 'petreld.conf')
        with open(conf, 'w') as f:
            f.write('listen = 127.0.0.1:0\n')
            for l in self.tls_listens:
                f.write('listen = 127.0.0.1:0 tls %s\n' % l)
            f.write('data_dir = %s\nlog_level = info\n' % data)
        listeners = self._start([ct.PETRELD, '-c', conf], ct.petreltest.petreld_listeners)
        ports = [p for h, p in listeners if h == '127.0.0.1']
        self.port, self.tls_ports = ports[0], ports[1:]
        return self


def petrel(*args, **kw):
    return ct.run([ct.PETREL] + [str(a) for a in args], **kw)


class TlsBrokerCase(ct.unittest.TestCase):
    """One petreld per test class with a plain listener and four TLS ones:
    self.tls (a certificate for localhost and 127.0.0.1), self.wrongname
    (a certificate for another name), self.mutual (client certificate
    required) and self.expired (an expired certificate)."""

    @classmethod
    def setUpClass(cls):
        if not ct.have(ct.PETREL):
            raise ct.unittest.SkipTest('petrel not built')
        cls.certs = c = tls_helpers.Certs()
        try:
            cls.broker = TlsPetreld([
                'certfile=%s keyfile=%s' % (c.server, c.server_key),
                'certfile=%s keyfile=%s' % (c.wrongname, c.wrongname_key),
                'certfile=%s keyfile=%s cafile=%s require_certificate=true'
                % (c.server, c.server_key, c.ca),
                'certfile=%s keyfile=%s' % (c.expired, c.expired_key),
            ]).start()
        except BaseException:
            c.close()
            raise
        cls.tls, cls.wrongname, cls.mutual, cls.expired = cls.broker.tls_ports

    @classmethod
    def tearDownClass(cls):
        cls.broker.stop()
        cls.certs.close()


class TlsCliTest(TlsBrokerCase):

    def setUp(self):
        self.bg = []

    def tearDown(self):
        for b in self.bg:
            b.stop()

    def topic(self):
        return 'tls/%s' % self._testMethodName

    def pub(self, port, *args):
        return petrel('pub', '-h', 'localhost', '-p', port, '-t', self.topic(), '-m', 'x',
                      '--timeout', 5, *args)

    def test_pub_and_sub_with_cafile(self):
        s = ct.Background([ct.PETREL, 'sub', '-h', 'localhost', '-p', str(self.tls), '-d',
                           '--cafile', self.certs.ca, '-t', self.topic(), '-q', '1', '-C', '2'])
        self.bg.append(s)
        s.wait_stderr(r'subscribed: 1 of 1 granted')
        self.assertTrue(any(re.search(r'TLS established \(TLSv1\.[23], ', l) for l in s.err),
                        s.err)
        for i in range(2):
            r = petrel('pub', '-h', 'localhost', '-p', self.tls, '--cafile', self.certs.ca,
                       '-t', self.topic(), '-q', '1', '-m', 'secret %d' % i)
            self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertEqual([s.line(), s.line()], ['secret 0', 'secret 1'])
        self.assertEqual(s.proc.wait(10), EXIT_OK)
        # mosquitto_sub sees what petrel pub sends over TLS, and the other way
        r = petrel('pub', '-h', '127.0.0.1', '-p', self.tls, '--cafile', self.certs.ca,
                   '-t', self.topic(), '-m', 'by address')
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)

    def test_server_name_mismatch_is_refused(self):
        r = self.pub(self.wrongname, '--cafile', self.certs.ca)
        self.assertEqual(r.returncode, EXIT_REFUSED, r.stderr)
        self.assertIn('cannot connect to localhost port %d: server certificate not accepted: '
                      'hostname mismatch' % self.wrongname, r.stderr)
        self.assertIn("not for 'localhost'", r.stderr)

    def test_insecure_accepts_the_mismatch_with_a_warning(self):
        r = self.pub(self.wrongname, '--cafile', self.certs.ca, '--insecure')
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertIn('warning: --insecure', r.stderr)
        # even with no CA at all
        r = self.pub(self.wrongname, '--insecure')
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)

    def test_wrong_ca_is_refused(self):
        r = self.pub(self.tls, '--cafile', self.certs.ca2)
        self.assertEqual(r.returncode, EXIT_REFUSED, r.stderr)
        self.assertIn('server certificate not accepted', r.stderr)

    def test_system_store_does_not_know_the_test_ca(self):
        r = self.pub(self.tls, '--tls')
        self.assertEqual(r.returncode, EXIT_REFUSED, r.stderr)
        self.assertIn('server certificate not accepted', r.stderr)

    def test_expired_certificate_is_refused(self):
        r = self.pub(self.expired, '--cafile', self.certs.ca)
        self.assertEqual(r.returncode, EXIT_REFUSED, r.stderr)
        self.assertIn('certificate has expired', r.stderr)

    def test_client_certificate(self):
        c = self.certs
        r = self.pub(self.mutual, '--cafile', c.ca)
        self.assertEqual(r.returncode, EXIT_REFUSED, r.stderr)
        self.assertIn('TLS failed', r.stderr)
        r = self.pub(self.mutual, '--cafile', c.ca, '--cert', c.mallory, '--key', c.mallory_key)
        self.assertEqual(r.returncode, EXIT_REFUSED, r.stderr)
        r = self.pub(self.mutual, '--cafile', c.ca, '--cert', c.alice, '--key', c.alice_key)
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        # sub too, with the key in the certificate's file
        both = os.path.join(c.dir, 'alice-both.pem')
        with open(both, 'w') as f:
            f.write(open(c.alice).read() + open(c.alice_key).read())
        s = ct.Background([ct.PETREL, 'sub', '-h', 'localhost', '-p', str(self.mutual), '-d',
                           '--cafile', c.ca, '--cert', both, '-t', self.topic(), '-C', '1'])
        self.bg.append(s)
        s.wait_stderr(r'subscribed: 1 of 1 granted')
        r = self.pub(self.mutual, '--cafile', c.ca, '--cert', c.bob, '--key', c.bob_key)
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertEqual(s.line(), 'x')

    def test_unusable_files_are_bad_arguments(self):
        c = self.certs
        r = self.pub(self.tls, '--cafile', os.path.join(c.dir, 'missing.pem'))
        self.assertEqual(r.returncode, EXIT_USAGE, r.stderr)
        self.assertIn('cafile %s: No such file or directory'
                      % os.path.join(c.dir, 'missing.pem'), r.stderr)
        r = self.pub(self.mutual, '--cafile', c.ca, '--cert', c.alice, '--key', c.bob_key)
        self.assertEqual(r.returncode, EXIT_USAGE, r.stderr)
        self.assertIn('does not belong to the certificate', r.stderr)
        r = self.pub(self.tls, '--key', c.alice_key)
        self.assertEqual(r.returncode, EXIT_USAGE, r.stderr)
        self.assertIn('--key needs --cert', r.stderr)

    def test_tls_port_defaults_to_8883(self):
        # Whatever answers on 8883 (probably nothing; a TLS broker there
        # would not pass the check against the throw-away CA): the attempt
        # is what counts.
        r = petrel('pub', '-h', '127.0.0.1', '--cafile', self.certs.ca, '-t', 'petrel-tls-test',
                   '-m', 'y', '-d', '--timeout', 2)
        self.assertIn('connecting to 127.0.0.1 port 8883', r.stderr)

    def test_plain_client_on_the_tls_port_fails_cleanly(self):
        r = self.pub(self.tls)
        self.assertNotEqual(r.returncode, EXIT_OK)
        self.assertIn('cannot connect', r.stderr)

    def test_help_lists_the_tls_flags(self):
        for cmd in ('pub', 'sub'):
            r = petrel(cmd, '--help')
            for flag in ('--tls', '--cafile FILE', '--cert FILE', '--key FILE', '--insecure'):
                self.assertIn(flag, r.stdout)


if __name__ == '__main__':
    ct.unittest.main(verbosity=2)
