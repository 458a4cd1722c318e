"""petreld's command line, configuration file, listeners, signals and logs.
petreld only: these are not mosquitto's interfaces."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import harness
from harness import BrokerTestCase, skip_on_mosquitto
import mqttraw

LOG_LINE = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z (error|warning|notice|info|debug) \S')


def run_petreld(args, timeout=10.0):
    """Runs petreld to completion (for cases where it must refuse to start)."""
    if not os.path.exists(harness.PETRELD):
        raise harness.unittest.SkipTest('petreld not built')
    try:
        return subprocess.run([harness.PETRELD] + args, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError('petreld %s kept running (it should have exited): %r'
                             % (' '.join(args), e.stderr))


@skip_on_mosquitto('petreld command line and configuration')
class CommandLineTest(BrokerTestCase):
    broker_settings = {}

    @classmethod
    def setUpClass(cls):
        cls.broker = None   # each test starts what it needs

    def tempdir(self):
        d = tempfile.mkdtemp(prefix='petrel-data-')
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def write_conf(self, text):
        fd, path = tempfile.mkstemp(prefix='petrel-conf-', suffix='.conf')
        with os.fdopen(fd, 'w') as f:
            f.write(text)
        self.addCleanup(os.unlink, path)
        return path

    def assert_refused(self, r, *needles):
        out = (r.stdout + r.stderr).decode('utf-8', 'replace')
        self.assertNotEqual(r.returncode, 0, out)
        self.assertNotIn('listening on', out)
        self.assertNotRegex(out, r'\bready\b')
        for n in needles:
            self.assertRegex(r.stderr.decode('utf-8', 'replace'), n)
        for m in harness.SANITIZER_MARKERS:
            self.assertNotIn(m, out)

    def test_bad_config_file_reports_file_and_line(self):
        d = self.tempdir()
        cases = [
            ('listen = 127.0.0.1:0\n# comment\nno_such_key = 1\n', 3),
            ('max_qos = 7\n', 1),
            ('\n\nmax_packet_size = lots\n', 3),
            ('log_level = loud\n', 1),
            ('# only a comment\njust some words\n', 2),
            ('max_inflight = -1\n', 1),
            ('listen = 127.0.0.1:99999\n', 1),
            ('listen = not-an-address\n', 1),
            ('max_connections = many\n', 1),
        ]
        for text, line in cases:
            with self.subTest(text=text):
                path = self.write_conf('data_dir = %s\n' % d + text)
                r = run_petreld(['-c', path])
                self.assert_refused(r, re.escape(path) + ':%d:' % (line + 1))

    def test_missing_config_file(self):
        r = run_petreld(['-c', '/nonexistent/petreld.conf'])
        self.assert_refused(r, re.escape('/nonexistent/petreld.conf'))

    def test_bad_flags(self):
        for args in (['--bogus'], ['--listen'], ['--listen', 'nonsense'],
                     ['--listen', '127.0.0.1:70000'], ['--log-level', 'shouting'], ['-c']):
            with self.subTest(args=args):
                self.assert_refused(run_petreld(args))

    def test_help(self):
        r = run_petreld(['--help'])
        self.assertEqual(r.returncode, 0)
        out = (r.stdout + r.stderr).decode()
        for flag in ('--listen', '--data-dir', '-c', '--log-level', '--version'):
            self.assertIn(flag, out)

    def test_version(self):
        r = run_petreld(['--version'])
        self.assertEqual(r.returncode, 0)
        self.assertRegex((r.stdout + r.stderr).decode(), r'\d+\.\d+\.\d+')

    def test_print_config(self):
        d = os.path.join(self.tempdir(), 'not-created')
        path = self.write_conf('data_dir = %s\nmax_inflight = 17\nlog_level = error\n'
                               'listen = 127.0.0.1:0\nmax_packet_size = 3M\n' % d)
        r = run_petreld(['-c', path, '--log-level', 'debug', '--listen', '[::1]:0',
                         '--print-config'])
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, b'')
        # the file's settings, then the flags over them, and the defaults
        for line in ('data_dir = %s' % d, 'max_inflight = 17', 'log_level = debug',
                     'listen = [::1]:0', 'max_packet_size = 3M',
                     'max_qos = 2', 'queue_full_policy = block', '#password_file = (not set)'):
            self.assertIn('\n' + line + '\n', out)
        self.assertNotIn('127.0.0.1:0', out)   # --listen replaced the file's listener
        self.assertEqual(out.count('\nlisten = '), 1)
        self.assertFalse(os.path.exists(d), 'nothing is opened or created')
        # each setting says what it is, and the output loads back to itself
        self.assertRegex(out, r'\n# [^\n]+\nmax_inflight = 17\n')
        again = run_petreld(['-c', self.write_conf(out), '--print-config'])
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(again.stdout.decode(), out)
        # a wrong setting is refused as without --print-config
        bad = self.write_conf('max_qos = 7\n')
        self.assert_refused(run_petreld(['-c', bad, '--print-config']),
                            re.escape(bad) + ':1:')

    def test_two_listeners_including_ipv6(self):
        if not harness.ipv6_loopback_available():
            self.skipTest('no IPv6 loopback')
        b = self.start_broker(args=['--listen', '127.0.0.1:0', '--listen', '[::1]:0'])
        hosts = sorted(h for h, _ in b.listeners)
        self.assertEqual(hosts, ['127.0.0.1', '::1'], b.listeners)
        self.assertRegex(b.log_text(), r'listening on \[::1\]:\d+')
        port4 = [p for h, p in b.listeners if h == '127.0.0.1'][0]
        port6 = [p for h, p in b.listeners if h == '::1'][0]
        s = mqttraw.RawClient(port6, host='::1')
        self._clients.append(s)
        s.connect('v6-sub')
        s.subscribe([('x/y', 1)])
        p = mqttraw.RawClient(port4)
        self._clients.append(p)
        p.connect('v4-pub')
        p.publish('x/y', b'across listeners', qos=1)
        self.assertEqual(s.expect_publish().payload, b'across listeners')

    def test_two_ipv4_listeners_from_file(self):
        b = self.start_broker({'listen': ['127.0.0.1:0', '127.0.0.1:0']})
        self.assertEqual(len(b.listeners), 2)
        for host, port in b.listeners:
            c = mqttraw.RawClient(port, host=host)
            self._clients.append(c)
            c.connect()
            c.ping()

    def test_listen_flag_replaces_file_listeners(self):
        taken = harness.free_port()
        b = self.start_broker({'listen': '127.0.0.1:%d' % taken},
                              args=['--listen', '127.0.0.1:0'])
        self.assertEqual(len(b.listeners), 1)
        self.assertNotEqual(b.port, taken)
        with self.assertRaises(OSError):
            socket.create_connection(('127.0.0.1', taken), timeout=1).close()

    def test_flags_override_file(self):
        # the file says error (which would hide the startup lines), the flag wins
        b = self.start_broker({'log_level': 'error'}, args=['--log-level', 'info'])
        self.assertTrue(b.listeners)
        b2 = self.start_broker({'log_level': 'error'}, args=['-v'])
        self.assertTrue(b2.listeners)

    def test_without_config_file(self):
        d = self.tempdir()
        b = self.start_broker(use_config=False,
                              args=['--listen', '127.0.0.1:0', '--data-dir', d])
        c = self.raw(b.port)
        c.connect('no-conf')
        c.ping()

    def test_every_key_accepted(self):
        d = self.tempdir()
        text = '\n'.join([
            '# every setting, with suffixes', '',
            'listen = 127.0.0.1:0', 'data_dir = %s' % d, 'max_connections = 1000',
            'max_packet_size = 256k', 'max_inflight = 10', 'max_queued_messages = 50',
            'max_keepalive = 600', 'connect_timeout = 5', 'max_qos = 1',
            'max_output_buffer = 2M', 'sys_interval = 0', 'log_level = info', ''])
        b = self.start_broker(config_text=text)
        c = self.raw(b.port)
        c.connect('all-keys', keepalive=600)
        self.assertEqual(c.subscribe([('k', 2)]), [1])
        # deploy/petreld.conf.example lists every setting as "#key = default":
        # uncommented, it must be a valid file
        example = os.path.join(harness.REPO, 'deploy', 'petreld.conf.example')
        with open(example) as f:
            settings = re.findall(r'(?m)^#([a-z_]+ = .*)$', f.read())
        keys = {kv.split(' ', 1)[0] for kv in settings}
        self.assertTrue({'listen', 'data_dir', 'max_connections', 'max_packet_size',
                         'max_inflight', 'max_queued_messages', 'max_keepalive',
                         'connect_timeout', 'max_qos', 'max_output_buffer', 'sys_interval',
                         'log_level', 'max_queued_bytes', 'queue_full_policy', 'durability',
                         'session_expiry'} <= keys, keys)
        active = [kv for kv in settings if not kv.startswith(('listen ', 'data_dir '))]
        active += ['listen = 127.0.0.1:0', 'data_dir = %s' % self.tempdir()]
        b2 = self.start_broker(config_text='\n'.join(active) + '\n')
        self.assertTrue(b2.listeners)

    def test_journal_priority_prefix(self):
        """Under systemd, stderr is the journal (JOURNAL_STREAM names it):
        each line then starts with its syslog priority so that
        journalctl -p filters petreld's lines; a redirected stderr does not."""
        for matching in (True, False):
            r, w = os.pipe()
            st = os.fstat(w)
            env = dict(os.environ)
            env['JOURNAL_STREAM'] = '%d:%d' % (st.st_dev, st.st_ino + (0 if matching else 1))
            d = self.tempdir()
            p = subprocess.Popen([harness.PETRELD, '--listen', '127.0.0.1:0', '--data-dir', d,
                                  '-v'],
                                 stderr=w, stdout=subprocess.DEVNULL, env=env)
            os.close(w)
            try:
                out = b''
                deadline = time.monotonic() + 10
                while b'ready' not in out and time.monotonic() < deadline:
                    chunk = os.read(r, 4096)
                    if not chunk:
                        break
                    out += chunk
            finally:
                p.send_signal(signal.SIGTERM)
                p.wait(10)
                os.close(r)
            lines = out.decode().splitlines()
            self.assertTrue(any('ready' in l for l in lines), out)
            if matching:
                self.assertTrue(all(re.match(r'<[3-7]>\d{4}-', l) for l in lines), lines)
                self.assertTrue(any(l.startswith('<5>') and 'ready' in l for l in lines), lines)
            else:
                self.assertFalse(any(l.startswith('<') for l in lines), lines)

    def test_log_lines(self):
        b = self.start_broker({'log_level': 'debug'})
        c = self.raw(b.port)
        c.connect('log-checker-42')
        c.disconnect()
        self.assertTrue(b.wait_log(r'client log-checker-42\b', 3),
                        'no log line mentions "client log-checker-42"')
        lines = [l for l in b.log_text().splitlines() if l.strip()]
        self.assertTrue(lines)
        for l in lines:
            self.assertRegex(l, LOG_LINE)
        self.assertRegex(b.log_text(), r'(?m)listening on 127\.0\.0\.1:%d\s*$' % b.port)

    def test_log_level_error_is_quiet(self):
        b = harness.Broker({'log_level': 'error'})
        b._wait_ready = lambda: time.sleep(0.8)
        b.start()
        try:
            self.assertTrue(b.alive())
            self.assertEqual(b.log_text().strip(), '')
        finally:
            b.stop()

    def test_sighup_keeps_running_and_reloads_log_level(self):
        b = self.start_broker({'log_level': 'notice'})
        c = self.raw(b.port)
        c.connect('before-hup')
        with open(b.conf_path) as f:
            conf = f.read()
        with open(b.conf_path, 'w') as f:
            f.write(re.sub(r'(?m)^log_level = .*$', 'log_level = debug', conf))
        b.signal(signal.SIGHUP)
        time.sleep(0.5)
        self.assertTrue(b.alive(), 'petreld died on SIGHUP')
        c.ping()   # existing connections survive
        d = self.raw(b.port)
        d.connect('after-hup-client')
        d.disconnect()
        self.assertTrue(b.wait_log(r'\bdebug\b.*|client after-hup-client', 3),
                        'no debug output after reloading log_level = debug')
        b.signal(signal.SIGHUP)
        time.sleep(0.2)
        self.assertTrue(b.alive())

    def test_sigint_graceful(self):
        b = harness.Broker().start()
        try:
            c = mqttraw.RawClient(b.port)
            c.connect('sigint', will=('w', b'x', 0, False))
            b.signal(signal.SIGINT)
            b.proc.wait(10)
            self.assertEqual(b.proc.returncode, 0, b.tail())
            self.assertTrue(c.wait_closed(2))
            c.close()
        finally:
            b.kill()
        for m in harness.SANITIZER_MARKERS:
            self.assertNotIn(m, b.log_text())

    def test_sigterm_with_clients_connected(self):
        b = harness.Broker().start()
        clients = []
        try:
            for i in range(10):
                c = mqttraw.RawClient(b.port)
                c.connect('term-%d' % i, clean=(i % 2 == 0))
                c.subscribe([('a/#', 1)])
                clients.append(c)
            mqttraw.RawClient(b.port).connect('half-open')   # left as is
            p = mqttraw.RawClient(b.port)
            p.connect()
            p.publish('a/b', b'x', qos=1, retain=True)
        finally:
            b.stop()   # asserts exit 0 and no sanitizer report
            for c in clients:
                c.close()

    def test_data_dir_created(self):
        d = os.path.join(self.tempdir(), 'not', 'yet')
        b = self.start_broker({'data_dir': d})
        self.assertTrue(os.path.isdir(d))
        c = self.raw(b.port)
        c.connect()
        c.ping()

    def test_data_dir_locked(self):
        d = self.tempdir()
        self.start_broker({'data_dir': d})
        path = self.write_conf('listen = 127.0.0.1:0\ndata_dir = %s\n' % d)
        r = run_petreld(['-c', path])
        self.assert_refused(r, re.escape(d))


if __name__ == '__main__':
    harness.main()
