"""test_bench_tls.py - `petrel bench` over TLS against petreld's TLS
listeners: publishers and subscribers lose nothing and the report says TLS;
a wrong CA or a name mismatch is a clear failure, printed once, with exit
status 3; --insecure accepts the mismatch with its warning; client
certificates; unusable files are bad arguments; the 8883 default."""

import os
import re

import clienttest as ct
from test_tls import TlsBrokerCase

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_REFUSED, EXIT_NOT_AUTHORIZED, EXIT_TIMEOUT = range(6)


def bench(*args, timeout=60):
    return ct.run([ct.PETREL, 'bench', '--no-progress', '--timeout', '5']
                  + [str(a) for a in args], timeout=timeout)


report = ct.bench_report


class BenchTlsTest(TlsBrokerCase):

    def topics(self):
        name = self._testMethodName
        return ('-t', 'bt/%s/%%p' % name, '-T', 'bt/%s/#' % name)

    def assert_no_loss(self, r, expected):
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        d = report(r)
        self.assertEqual(d['received']['expected'], expected, d)
        self.assertEqual(d['received']['unique'], expected, d)
        self.assertEqual(d['received']['lost'], 0, d)
        self.assertEqual(d['received']['duplicates'], 0, d)
        return d

    def test_publishers_and_subscribers_over_tls_lose_nothing(self):
        for qos in (0, 1, 2):
            r = bench('-h', 'localhost', '-p', self.tls, '--cafile', self.certs.ca,
                      '--pubs', 3, '--subs', 4, '-q', qos, '-n', 300, '--json', *self.topics())
            d = self.assert_no_loss(r, 3 * 4 * 300)
            tls = d['tls']
            self.assertTrue(tls['enabled'], tls)
            self.assertTrue(tls['verified'], tls)
            self.assertRegex(tls['version'], r'^TLSv1\.[23]$')
            self.assertTrue(tls['cipher'], tls)
            self.assertEqual(tls['handshakes_failed'], 0, tls)
            self.assertEqual(tls['handshake_us']['count'], 7, tls)
            self.assertEqual(d['connections']['connected'], 7, d)
            if qos:
                self.assertEqual(d['published']['unacked'], 0, d)

    def test_large_messages_span_many_records(self):
        # 100 kB payloads: each message is several TLS records and more than
        # one read; the read buffer fills while OpenSSL still holds data.
        r = bench('-h', 'localhost', '-p', self.tls, '--cafile', self.certs.ca,
                  '--pubs', 2, '--subs', 2, '-q', 1, '-s', 100000, '-n', 40, '--json',
                  *self.topics())
        self.assert_no_loss(r, 2 * 2 * 40)

    def test_text_report_says_tls(self):
        r = bench('-h', '127.0.0.1', '-p', self.tls, '--cafile', self.certs.ca,
                  '--pubs', 1, '--subs', 1, '-n', 50, *self.topics())
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertIn('127.0.0.1:%d (TLS)' % self.tls, r.stdout)
        self.assertRegex(r.stdout, r'TLS +TLSv1\.[23], \S+, server certificate and name checked')
        self.assertIn('expected 50, lost 0, duplicates 0', r.stdout)

    def test_plain_run_reports_no_tls(self):
        r = bench('-h', '127.0.0.1', '-p', self.broker.port, '--pubs', 1, '--subs', 1,
                  '-n', 20, '--json', *self.topics())
        d = self.assert_no_loss(r, 20)
        self.assertFalse(d['tls']['enabled'], d['tls'])
        self.assertNotIn('(TLS)', r.stdout)

    def test_connect_only_over_tls(self):
        r = bench('-h', 'localhost', '-p', self.tls, '--cafile', self.certs.ca,
                  '--connect-only', '--clients', 60, '--parallel', 20, '-D', 0.2, '--json')
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        d = report(r)
        self.assertEqual(d['connections']['connected'], 60, d)
        self.assertEqual(d['tls']['handshake_us']['count'], 60, d)

    def test_wrong_ca_fails_clearly_once(self):
        r = bench('-h', 'localhost', '-p', self.tls, '--cafile', self.certs.ca2,
                  '--pubs', 10, '--subs', 10, '-n', 10, '--json', *self.topics())
        self.assertEqual(r.returncode, EXIT_REFUSED, r.stderr)
        why = 'server certificate not accepted: unable to get local issuer certificate'
        self.assertEqual(r.stderr.count(why), 1, r.stderr)
        d = report(r)
        self.assertGreaterEqual(d['tls']['handshakes_failed'], 1, d)
        self.assertEqual(d['tls']['first_error'], why, d)
        self.assertEqual(d['connections']['connected'], 0, d)
        self.assertEqual(d['exit_status'], EXIT_REFUSED, d)
        # the text report names the failure too
        r = bench('-h', 'localhost', '-p', self.tls, '--cafile', self.certs.ca2,
                  '--pubs', 1, '--subs', 1, '-n', 1)
        self.assertEqual(r.returncode, EXIT_REFUSED, r.stderr)
        self.assertRegex(r.stdout, r'failed +\d+ handshake\(s\); the first: ' + re.escape(why))

    def test_system_store_does_not_know_the_test_ca(self):
        r = bench('-h', 'localhost', '-p', self.tls, '--tls', '--pubs', 1, '--subs', 1,
                  '-n', 1)
        self.assertEqual(r.returncode, EXIT_REFUSED, r.stderr)
        self.assertIn('server certificate not accepted', r.stderr)

    def test_name_mismatch_is_refused_and_insecure_accepts_it(self):
        r = bench('-h', 'localhost', '-p', self.wrongname, '--cafile', self.certs.ca,
                  '--pubs', 2, '--subs', 2, '-n', 10)
        self.assertEqual(r.returncode, EXIT_REFUSED, r.stderr)
        self.assertIn("server certificate not accepted: hostname mismatch (the certificate is "
                      "not for 'localhost')", r.stderr)
        for extra in (('--cafile', self.certs.ca), ()):
            r = bench('-h', 'localhost', '-p', self.wrongname, '--insecure', *extra,
                      '--pubs', 2, '--subs', 2, '-q', 1, '-n', 100, '--json', *self.topics())
            d = self.assert_no_loss(r, 2 * 2 * 100)
            self.assertIn('warning: --insecure', r.stderr)
            self.assertTrue(d['tls']['enabled'], d)
            self.assertFalse(d['tls']['verified'], d)

    def test_ip_address_is_checked_against_the_certificate(self):
        # the server certificate carries IP:127.0.0.1; the wrong-name one not
        r = bench('-h', '127.0.0.1', '-p', self.wrongname, '--cafile', self.certs.ca,
                  '--pubs', 1, '--subs', 1, '-n', 1)
        self.assertEqual(r.returncode, EXIT_REFUSED, r.stderr)
        self.assertIn('IP address mismatch', r.stderr)

    def test_client_certificate(self):
        c = self.certs
        r = bench('-h', 'localhost', '-p', self.mutual, '--cafile', c.ca, '--pubs', 1,
                  '--subs', 1, '-n', 1)
        self.assertEqual(r.returncode, EXIT_REFUSED, r.stderr)
        self.assertIn('TLS failed', r.stderr)
        r = bench('-h', 'localhost', '-p', self.mutual, '--cafile', c.ca, '--cert', c.alice,
                  '--key', c.alice_key, '--pubs', 2, '--subs', 2, '-n', 50, '--json',
                  *self.topics())
        self.assert_no_loss(r, 2 * 2 * 50)

    def test_tls_against_a_plain_listener_fails_cleanly(self):
        r = bench('-h', '127.0.0.1', '-p', self.broker.port, '--insecure', '--pubs', 1,
                  '--subs', 1, '-n', 1)
        self.assertEqual(r.returncode, EXIT_REFUSED, r.stderr)
        self.assertIn('TLS failed: handshake failed', r.stderr)

    def test_unusable_files_are_bad_arguments(self):
        c = self.certs
        missing = os.path.join(c.dir, 'missing.pem')
        r = bench('-h', 'localhost', '-p', self.tls, '--cafile', missing)
        self.assertEqual(r.returncode, EXIT_USAGE, r.stderr)
        self.assertIn('cafile %s: No such file or directory' % missing, r.stderr)
        self.assertEqual(r.stdout, '')
        r = bench('-h', 'localhost', '-p', self.mutual, '--cafile', c.ca, '--cert', c.alice,
                  '--key', c.bob_key)
        self.assertEqual(r.returncode, EXIT_USAGE, r.stderr)
        self.assertIn('does not belong to the certificate', r.stderr)
        r = bench('-h', 'localhost', '-p', self.tls, '--key', c.alice_key)
        self.assertEqual(r.returncode, EXIT_USAGE, r.stderr)
        self.assertIn('--key needs --cert', r.stderr)

    def test_tls_port_defaults_to_8883(self):
        # Whatever answers on 8883 (probably nothing): the attempt is what
        # counts, and the report shows it.
        r = bench('-h', '127.0.0.1', '--cafile', self.certs.ca, '--pubs', 1, '--subs', 1,
                  '-n', 1, '--timeout', 2)
        self.assertNotEqual(r.returncode, EXIT_USAGE, r.stderr)
        self.assertIn('127.0.0.1:8883 (TLS)', r.stdout)

    def test_help_lists_the_tls_flags(self):
        r = ct.run([ct.PETREL, 'bench', '--help'])
        for flag in ('--tls', '--cafile FILE', '--cert FILE', '--key FILE', '--insecure'):
            self.assertIn(flag, r.stdout)


if __name__ == '__main__':
    ct.unittest.main(verbosity=2)
