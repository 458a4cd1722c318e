"""test_cli.py - the petrel command-line tool: `petrel sub` receiving from
mosquitto_pub and `petrel pub` reaching mosquitto_sub (against petreld and
against Mosquitto), every message source and output format, --help and
--version, and the documented exit codes."""

import base64
import json
import os
import signal
import subprocess
import tempfile
import time

import clienttest as ct

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_REFUSED, EXIT_NOT_AUTHORIZED, EXIT_TIMEOUT = range(6)


def petrel(*args, **kw):
    return ct.run([ct.PETREL] + [str(a) for a in args], **kw)


class CliBase(ct.SharedBroker):
    broker_kind = None
    needs_cli = True

    def setUp(self):
        self.bg = []

    def tearDown(self):
        for b in self.bg:
            b.stop()

    def topic(self, suffix=''):
        return 'cli/%s/%s%s' % (self.broker_kind, self._testMethodName, suffix)

    def petrel_sub(self, *args):
        """petrel sub in the background, returned once subscribed."""
        s = ct.Background([ct.PETREL, 'sub', '-p', str(self.port), '-d'] + [str(a) for a in args])
        self.bg.append(s)
        s.wait_stderr(r'subscribed: \d+ of \d+ granted')
        return s

    def mosquitto_sub(self, *args):
        s = ct.Background(['stdbuf', '-oL', ct.MOSQUITTO_SUB, '-p', str(self.port), '-d']
                          + [str(a) for a in args])
        self.bg.append(s)
        ct.wait_until(lambda: any('received SUBACK' in l for l in s.out),
                      what='mosquitto_sub SUBACK')
        return s

    def mosquitto_pub(self, *args):
        r = ct.run([ct.MOSQUITTO_PUB, '-p', str(self.port)] + [str(a) for a in args])
        self.assertEqual(r.returncode, 0, r.stderr)

    def pub(self, *args, **kw):
        r = petrel('pub', '-p', self.port, *args, **kw)
        return r

    def payload_lines(self, s, n):
        """n message lines of mosquitto_sub -d output (debug lines skipped)."""
        out = []
        while len(out) < n:
            line = s.line()
            if line.startswith('Client ') or line.startswith('Subscribed'):
                continue
            out.append(line)
        return out

    # ---- both directions
    def test_sub_receives_from_mosquitto_pub(self):
        t = self.topic()
        s = self.petrel_sub('-t', t + '/#', '-q', 2, '-v', '-C', 3)
        for q in (0, 1, 2):
            self.mosquitto_pub('-t', '%s/q%d' % (t, q), '-q', q, '-m', 'qos %d' % q)
        self.assertEqual([s.line() for _ in range(3)],
                         ['%s/q%d qos %d' % (t, q, q) for q in (0, 1, 2)])
        self.assertEqual(s.wait(), EXIT_OK)

    def test_pub_reaches_mosquitto_sub(self):
        t = self.topic()
        s = self.mosquitto_sub('-t', t, '-q', 2, '-v', '-C', 3)
        for q in (0, 1, 2):
            r = self.pub('-t', t, '-q', q, '-m', 'petrel qos %d' % q)
            self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertEqual(self.payload_lines(s, 3), ['%s petrel qos %d' % (t, q) for q in (0, 1, 2)])
        self.assertEqual(s.wait(), 0)

    def test_pub_lines_from_a_pipe(self):
        t = self.topic()
        s = self.petrel_sub('-t', t, '-q', 1, '-C', 4, '--json')
        p = ct.Background([ct.PETREL, 'pub', '-p', str(self.port), '-t', t, '-q', '1', '-l'],
                          stdin=subprocess.PIPE)
        self.bg.append(p)
        # Each line goes out as it is written, on one connection.
        p.proc.stdin.write(b'first\n')
        p.proc.stdin.flush()
        self.assertEqual(json.loads(s.line())['payload'], 'first')
        p.proc.stdin.write(b'second\n\nlast without newline')
        p.proc.stdin.close()
        self.assertEqual(p.wait(), EXIT_OK, p.stderr_now())
        self.assertEqual([json.loads(s.line())['payload'] for _ in range(3)],
                         ['second', '', 'last without newline'])
        self.assertEqual(s.wait(), EXIT_OK)

    def test_pub_lines_from_a_file(self):
        t = self.topic()
        s = self.petrel_sub('-t', t, '-q', 1, '-C', 300)
        with tempfile.TemporaryFile() as f:
            f.write(b''.join(b'line %d\n' % i for i in range(300)))
            f.seek(0)
            r = subprocess.run([ct.PETREL, 'pub', '-p', str(self.port), '-t', t, '-q', '1', '-l'],
                               stdin=f, capture_output=True, timeout=30)
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertEqual(s.wait(), EXIT_OK)
        self.assertEqual(s.out, ['line %d' % i for i in range(300)])

    def test_pub_file_stdin_and_null(self):
        t = self.topic()
        s = self.petrel_sub('-t', t, '--json', '-C', 3)
        blob = bytes(range(256))
        with tempfile.NamedTemporaryFile() as f:
            f.write(blob)
            f.flush()
            r = self.pub('-t', t, '-f', f.name, '-q', 1)
            self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        r = subprocess.run([ct.PETREL, 'pub', '-p', str(self.port), '-t', t, '-s'],
                           input='héllo "json"\nsecond line\n'.encode(), capture_output=True,
                           timeout=30)
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        r = self.pub('-t', t, '-n')
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertEqual(s.wait(), EXIT_OK)
        msgs = [json.loads(l) for l in s.out]
        self.assertEqual(base64.b64decode(msgs[0]['payload_base64']), blob)
        self.assertEqual(msgs[0]['qos'], 0)
        self.assertEqual(msgs[1]['payload'], 'héllo "json"\nsecond line\n')
        self.assertEqual(msgs[2], {'topic': t, 'payload': '', 'qos': 0, 'retain': False})

    def test_retained_and_skip_retained(self):
        t = self.topic()
        r = self.pub('-t', t, '-m', 'kept', '-r', '-q', 1)
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        r = petrel('sub', '-p', self.port, '-t', t, '-C', 1, '-W', 5, '--json')
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertEqual(json.loads(r.stdout), {'topic': t, 'payload': 'kept', 'qos': 0,
                                                'retain': True})
        # -R: the stale retained value is not shown; -W ends the wait (0).
        r = petrel('sub', '-p', self.port, '-t', t, '-R', '-W', 1)
        self.assertEqual((r.returncode, r.stdout), (EXIT_OK, ''))
        # -C not reached within -W: timeout.
        r = petrel('sub', '-p', self.port, '-t', t, '-R', '-W', 1, '-C', 1)
        self.assertEqual(r.returncode, EXIT_TIMEOUT)
        self.pub('-t', t, '-n', '-r')

    def test_no_newline(self):
        t = self.topic()
        s = self.petrel_sub('-t', t, '-N', '-C', 2)
        self.mosquitto_pub('-t', t, '-m', 'a')
        self.mosquitto_pub('-t', t, '-m', 'b')
        self.assertEqual(s.wait(), EXIT_OK)
        self.assertEqual(s.out, ['ab'])

    def test_sub_stops_cleanly_on_sigint(self):
        t = self.topic()
        s = self.petrel_sub('-t', t, '-c', '-i', 'sigint-%s-%d' % (self.broker_kind, os.getpid()),
                            '--will-topic', t, '--will-payload', 'unclean')
        w = self.mosquitto_sub('-t', t, '-C', 1, '-W', 1)
        s.proc.send_signal(signal.SIGINT)
        self.assertEqual(s.wait(), EXIT_OK)
        # A clean DISCONNECT: no will (it would come at once).
        w.wait(5)
        self.assertNotIn('unclean', w.out)


class PetreldCli(CliBase, ct.unittest.TestCase):
    broker_kind = 'petreld'


class MosquittoCli(CliBase, ct.unittest.TestCase):
    broker_kind = 'mosquitto'


class ExitCodes(ct.unittest.TestCase):
    """Exit codes for refused, not authorized, timeout and bad arguments."""

    @classmethod
    def setUpClass(cls):
        if not ct.have(ct.PETREL):
            raise ct.unittest.SkipTest('petrel not built')

    def test_help_and_version(self):
        for args in (['--help'], ['pub', '--help'], ['sub', '--help'], ['help', 'sub']):
            r = petrel(*args)
            self.assertEqual(r.returncode, EXIT_OK, args)
            self.assertIn('Usage: petrel', r.stdout)
            self.assertIn('Exit status', r.stdout)
        r = petrel('pub', '--help')
        for flag in ('-h, --host', '-p, --port', '-t, --topic', '-m, --message', '-f, --file',
                     '-s, --stdin-file', '-l, --stdin-line', '-q, --qos', '-r, --retain',
                     '-i, --id', '-u, --username', '-P, --pw', '-k, --keepalive',
                     '--will-topic', '--will-payload', '--will-qos', '--will-retain',
                     '-d, --debug'):
            self.assertIn(flag, r.stdout)
        r = petrel('sub', '--help')
        for flag in ('-t, --topic', '-q, --qos', '-v, --verbose', '-C, --count', '-W, --wait',
                     '-c, --disable-clean-session', '-N', '-R, --no-retained', '--json'):
            self.assertIn(flag, r.stdout)
        r = petrel('--version')
        self.assertEqual(r.returncode, EXIT_OK)
        self.assertRegex(r.stdout, r'^petrel \d+\.\d+\.\d+ ')

    def test_bad_arguments(self):
        cases = [
            [],
            ['frobnicate'],
            ['pub', '-m', 'no topic'],
            ['pub', '-t', 'a'],
            ['pub', '-t', 'a', '-m', 'x', '-n'],
            ['pub', '-t', 'a', '-m', 'x', '-q', '3'],
            ['pub', '-t', 'a', '-m', 'x', '-p', 'http'],
            ['pub', '-t', 'a', '-m', 'x', '-c'],
            ['pub', '-t', 'a', '-m', 'x', '-V', 'mqttv6'],
            ['pub', '-t', 'a', '-m', 'x', '--bogus'],
            ['pub', '-t', 'a', '-m', 'x', '-P', 'pw'],
            ['pub', '-t', 'a', '-m', 'x', '--will-qos', '1'],
            ['pub', '-t', 'a/+', '-m', 'x', '-p', '1'],
            ['pub', '-t', 'a', '-f', '/nonexistent/file'],
            ['sub'],
            ['sub', '-t', 'a/#/b', '-p', '1'],
            ['sub', '-t', 'a', '-C', '0'],
            ['sub', '-t', 'a', '-W', 'x'],
            ['sub', '-t', 'a', 'extra'],
            ['sub', '-t'],
        ]
        for args in cases:
            r = petrel(*args)
            expect = 1 if '/nonexistent/file' in args else EXIT_USAGE
            self.assertEqual(r.returncode, expect, '%s: %s' % (args, r.stderr))
            self.assertTrue(r.stderr.strip(), args)   # says why

    def test_connection_refused(self):
        port = ct.free_port()
        r = petrel('pub', '-p', port, '-t', 'a', '-m', 'x')
        self.assertEqual(r.returncode, EXIT_REFUSED, r.stderr)
        self.assertIn('connection refused', r.stderr)
        r = petrel('sub', '-p', port, '-t', 'a')
        self.assertEqual(r.returncode, EXIT_REFUSED, r.stderr)
        # Looked up asynchronously: an answer, or a silent nameserver's ~3 s.
        t0 = time.monotonic()
        r = petrel('pub', '-h', 'no-such-host.invalid', '-t', 'a', '-m', 'x')
        self.assertEqual(r.returncode, EXIT_REFUSED, r.stderr)
        self.assertIn('host name could not be resolved', r.stderr)
        self.assertLess(time.monotonic() - t0, 5)

    def test_timeout(self):
        b = ct.Petreld().start()
        try:
            b.suspend()   # accepts TCP (backlog), never answers CONNECT
            t0 = time.monotonic()
            r = petrel('pub', '-p', b.port, '-t', 'a', '-m', 'x', '--timeout', 1)
            self.assertEqual(r.returncode, EXIT_TIMEOUT, r.stderr)
            self.assertLess(time.monotonic() - t0, 5)
            r = petrel('sub', '-p', b.port, '-t', 'a', '--timeout', 1)
            self.assertEqual(r.returncode, EXIT_TIMEOUT, r.stderr)
        finally:
            b.kill()
            b.stop()

    def test_ack_timeout(self):
        """Connected, but the QoS 1 acknowledgement never comes."""
        b = ct.Petreld().start()
        try:
            p = ct.Background([ct.PETREL, 'pub', '-p', str(b.port), '-t', 'a', '-q', '1', '-l',
                               '--timeout', '1', '-d'], stdin=subprocess.PIPE)
            p.wait_stderr('received CONNACK')
            b.suspend()
            p.proc.stdin.write(b'never acknowledged\n')
            p.proc.stdin.close()
            self.assertEqual(p.wait(), EXIT_TIMEOUT)
        finally:
            b.kill()
            b.stop()

    def test_not_authorized(self):
        b = ct.Mosquitto(passwords={'alice': 'secret'}).start()
        try:
            r = petrel('pub', '-p', b.port, '-t', 'a', '-m', 'x')
            self.assertEqual(r.returncode, EXIT_NOT_AUTHORIZED, r.stderr)
            r = petrel('sub', '-p', b.port, '-t', 'a', '-u', 'alice', '-P', 'wrong')
            self.assertEqual(r.returncode, EXIT_NOT_AUTHORIZED, r.stderr)
            r = petrel('pub', '-p', b.port, '-t', 'a', '-m', 'x', '-u', 'alice', '-P', 'secret',
                       '-q', 1)
            self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        finally:
            b.stop()


if __name__ == '__main__':
    ct.main()
