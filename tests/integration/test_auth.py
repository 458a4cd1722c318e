"""Authentication: the password file (good and bad passwords with the raw
client, mosquitto_pub and Paho), anonymous clients on loopback and other
listeners, `petrel passwd` end to end, hashes that do not give the password
away, logins that do not stall the broker, and reloading on SIGHUP.
petreld only."""

import os
import pty
import re
import signal
import stat
import subprocess
import threading
import time

import harness
from harness import BrokerTestCase, skip_on_mosquitto
import mqttraw
import security_helpers as sec

REFUSED = 5     # CONNACK: not authorized


@skip_on_mosquitto('petreld password file')
class PasswordTest(BrokerTestCase):
    """One broker with a password file on a loopback listener."""

    @classmethod
    def setUpClass(cls):
        cls.files = sec.Files()
        cls.passwd = cls.files.passwd({'alice': 'wonderland', 'bob': 'builder'})
        cls.broker_settings = {'password_file': cls.passwd}
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.files.close()

    def refused(self, *logins):
        """Sends one CONNECT per dict of connect_packet arguments, all at
        once; asserts that each gets CONNACK 5 after the refusal delay, and
        the close that follows."""
        clients = []
        t0 = time.monotonic()
        for kw in logins:
            c = self.raw()
            c.send(mqttraw.connect_packet(**kw))
            clients.append(c)
        for c, kw in zip(clients, logins):
            self.assertEqual(c.expect(mqttraw.CONNACK).rc, REFUSED, kw)
            self.assertGreater(time.monotonic() - t0, 0.8, 'refusal came without the delay')
            self.assertTrue(c.wait_closed(3))

    def test_good_password_raw(self):
        c = self.subscribed(1, 'alice-raw', username='alice', password='wonderland')
        c.publish(self.topic(), b'hi', qos=0)
        self.assertEqual(c.expect_publish().payload, b'hi')

    def test_wrong_password_raw(self):
        self.refused(dict(client_id='x1', username='alice', password='wonderlanD'),
                     dict(client_id='x2', username='alice', password=''),
                     dict(client_id='x3', username='alice', password='wonderland\x00x'))

    def test_unknown_user_and_missing_password(self):
        self.refused(dict(client_id='y1', username='mallory', password='wonderland'),
                     dict(client_id='y2', username='alice'),          # no password
                     dict(client_id='y3', username='', password=''),
                     dict(client_id='y4', username='Alice', password='wonderland'))

    def test_refusal_logged_without_password(self):
        self.refused(dict(client_id='logcheck', username='alice', password='S3cr3t-guess'))
        self.assertTrue(self.broker.wait_log(r"refused: wrong password \(user 'alice'\)", 3))
        self.assertNotIn('S3cr3t-guess', self.broker.log_text())

    def test_anonymous_allowed_on_loopback(self):
        c = self.raw_connected('anon-on-loopback')
        c.ping()

    def test_mosquitto_pub(self):
        w = self.subscribed(1, 'watcher', username='bob', password='builder')
        self.mosquitto_pub(self.topic(), 'from mosquitto_pub', qos=1,
                           extra=['-u', 'alice', '-P', 'wonderland'])
        self.assertEqual(w.expect_publish().payload, b'from mosquitto_pub')
        with self.assertRaisesRegex(AssertionError, r'(?i)not authori[sz]ed|refused'):
            self.mosquitto_pub(self.topic(), 'nope', qos=1,
                               extra=['-u', 'alice', '-P', 'wrong'])
        w.expect_nothing(0.3)

    def test_paho(self):
        good = self.paho('paho-good')
        good.c.username_pw_set('bob', 'builder')
        good.connect()
        self.assertEqual(good.subscribe(self.topic(), 1), [1])
        good.publish(self.topic(), b'paho', qos=1)
        self.assertEqual(good.get().payload, b'paho')
        bad = self.paho('paho-bad')
        bad.c.username_pw_set('bob', 'wrong')
        bad.connect(expect_rc=None)
        self.assertEqual(bad.connack[0], REFUSED)

    def test_logins_do_not_stall_others(self):
        # Slow hashes (the default count) for a burst of logins, while a
        # connected client pings: the loop must keep answering at once.
        files = sec.Files()
        self.addCleanup(files.close)
        path = files.passwd({'slow': 'hash'}, iterations=210000)
        b = self.start_broker({'password_file': path})
        pinger = self.raw(b.port)
        pinger.connect('pinger')
        # More logins than worker threads, so that they queue; few enough
        # that under ASan on a loaded 2-core machine the last CONNACK (each
        # hash takes up to a few seconds there) comes within the wait.
        n = 6
        results = []

        def login(i):
            c = mqttraw.RawClient(b.port, timeout=90)
            try:
                c.send(mqttraw.connect_packet('slow-%d' % i, username='slow', password='hash'))
                results.append(c.expect(mqttraw.CONNACK, timeout=90).rc)
            finally:
                c.close()

        threads = [threading.Thread(target=login, args=(i,)) for i in range(n)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        worst = 0.0
        while any(t.is_alive() for t in threads) and time.monotonic() - t0 < 90:
            p0 = time.monotonic()
            pinger.ping(timeout=5)
            worst = max(worst, time.monotonic() - p0)
            time.sleep(0.02)
        for t in threads:
            t.join(90)
        self.assertEqual(results, [0] * n)
        self.assertLess(worst, 0.5, 'a ping waited %.2f s behind password checks' % worst)

    def test_pipelined_packets_after_connect(self):
        # A client may send SUBSCRIBE and PUBLISH right behind its CONNECT:
        # they wait for the password check, then run in order.
        c = self.raw()
        t = self.topic()
        c.send(mqttraw.connect_packet('pipelined', username='alice', password='wonderland') +
               mqttraw.subscribe_packet(7, [(t, 1)]) +
               mqttraw.publish_packet(t, b'right behind', qos=1, pid=8))
        self.assertEqual(c.expect(mqttraw.CONNACK).rc, 0)
        got = {}
        for _ in range(3):
            p = c.read_packet()
            got[p.type] = p
            if p.type == mqttraw.PUBLISH and p.qos:
                c.send(mqttraw.ack_packet(mqttraw.PUBACK, p.pid))
        self.assertEqual(sorted(got), sorted([mqttraw.SUBACK, mqttraw.PUBACK, mqttraw.PUBLISH]))
        self.assertEqual(got[mqttraw.PUBLISH].payload, b'right behind')

    def test_close_while_checking(self):
        # The client goes away during the check and its delay: nothing is
        # left behind (the sanitizer build checks for leaks at stop).
        for i in range(5):
            c = self.raw()
            c.send(mqttraw.connect_packet('gone-%d' % i, username='alice',
                                          password='wonderland' if i % 2 else 'bad'))
            c.close()
        time.sleep(1.3)
        self.raw_connected('still-fine', username='bob', password='builder').ping()


@skip_on_mosquitto('petreld listeners and allow_anonymous')
class AnonymousTest(BrokerTestCase):
    """Loopback vs other listeners, allow_anonymous and its listener option."""

    @classmethod
    def setUpClass(cls):
        cls.broker = None
        cls.addr = sec.non_loopback_address()
        cls.files = sec.Files()
        cls.passwd = cls.files.passwd({'carol': 'c4r0l'})

    @classmethod
    def tearDownClass(cls):
        cls.files.close()

    def need_address(self):
        if not self.addr:
            self.skipTest('this machine has no non-loopback IPv4 address to listen on '
                          '(only local interfaces are used, never other hosts)')

    def ports(self, b):
        lo = [p for h, p in b.listeners if h.startswith('127.')][0]
        other = [p for h, p in b.listeners if h == self.addr]
        return lo, (other[0] if other else None)

    def connect(self, port, host, expect_rc, **kw):
        c = mqttraw.RawClient(port, host=host)
        self._clients.append(c)
        # one id per client: a session belongs to its user (or to
        # anonymous), and another may not take it over
        c.connect('anon-test-%d' % len(self._clients), expect_rc=expect_rc, **kw)
        return c

    def test_default_loopback_only(self):
        self.need_address()
        b = self.start_broker({'listen': ['127.0.0.1:0', '%s:0' % self.addr],
                               'password_file': self.passwd})
        lo, other = self.ports(b)
        self.connect(lo, '127.0.0.1', 0).ping()
        self.connect(other, self.addr, REFUSED)
        self.assertTrue(b.wait_log(r'refused: anonymous clients are not allowed', 3))
        # a verified user is welcome on either
        self.connect(other, self.addr, 0, username='carol', password='c4r0l').ping()
        # a user name alone, without a password, is no login
        self.connect(other, self.addr, REFUSED, username='carol')

    def test_no_password_file_non_loopback_refuses_everyone(self):
        self.need_address()
        b = self.start_broker({'listen': ['127.0.0.1:0', '%s:0' % self.addr]})
        lo, other = self.ports(b)
        self.connect(other, self.addr, REFUSED)
        # a user name cannot be verified without a password file
        self.connect(other, self.addr, REFUSED, username='carol', password='c4r0l')
        self.connect(lo, '127.0.0.1', 0, username='anyone').ping()

    def test_allow_anonymous_true(self):
        self.need_address()
        b = self.start_broker({'listen': ['%s:0' % self.addr], 'allow_anonymous': 'true'})
        self.connect(b.port, self.addr, 0).ping()

    def test_listener_option(self):
        self.need_address()
        b = self.start_broker({'listen': ['127.0.0.1:0 allow_anonymous=false',
                                          '%s:0 allow_anonymous=true' % self.addr],
                               'password_file': self.passwd})
        lo, other = self.ports(b)
        self.connect(lo, '127.0.0.1', REFUSED)
        self.connect(lo, '127.0.0.1', 0, username='carol', password='c4r0l').ping()
        self.connect(other, self.addr, 0).ping()

    def test_allow_anonymous_false_on_loopback(self):
        b = self.start_broker({'allow_anonymous': 'false', 'password_file': self.passwd})
        self.connect(b.port, '127.0.0.1', REFUSED)
        self.connect(b.port, '127.0.0.1', 0, username='carol', password='c4r0l').ping()
        text = b.log_text()
        self.assertIn('anonymous clients refused', text)


@skip_on_mosquitto('petrel passwd and petreld')
class PasswdCommandTest(harness.OwnBrokers, BrokerTestCase):
    """`petrel passwd` round trip: the file it writes is what petreld reads."""

    def setUp(self):
        super().setUp()
        self.files = sec.Files()
        self.addCleanup(self.files.close)
        self.path = self.files.path('users')

    def run_ok(self, args, stdin=None):
        r = sec.petrel_passwd(args, stdin=stdin)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        return r

    def entries(self):
        with open(self.path) as f:
            return dict(line.rstrip('\n').split(':', 1) for line in f if line.strip())

    def test_round_trip(self):
        self.run_ok(['-c', '-b', self.path, 'dave', 'pa55word'])     # default iterations
        self.run_ok([self.path, 'erin'], stdin=b'from-stdin\n')      # stdin not a tty
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        e = self.entries()
        self.assertEqual(sorted(e), ['dave', 'erin'])
        self.assertRegex(e['dave'], r'^\$pbkdf2-sha512\$210000\$[A-Za-z0-9+/=]{24}\$'
                                    r'[A-Za-z0-9+/=]{88}$')
        b = self.start_broker({'password_file': self.path})
        c = self.raw(b.port)
        c.connect('dave', username='dave', password='pa55word')
        c.ping()
        c = self.raw(b.port)
        c.connect('erin', username='erin', password='from-stdin')
        c = self.raw(b.port)
        c.connect('dave2', username='dave', password='pa55wordX', expect_rc=REFUSED)

        # change and delete, then SIGHUP: the broker follows the file
        self.run_ok(['-b', self.path, 'dave', 'new-one'])
        self.run_ok(['-D', self.path, 'erin'])
        self.assertEqual(sorted(self.entries()), ['dave'])
        b.signal(signal.SIGHUP)
        self.assertTrue(b.wait_log(r'SIGHUP: password file .*: 1 users', 5), b.tail())
        c = self.raw(b.port)
        c.connect('dave3', username='dave', password='new-one')
        c = self.raw(b.port)
        c.connect('erin2', username='erin', password='from-stdin', expect_rc=REFUSED)

    def test_hashes_not_reversible(self):
        pw = 'correct horse battery staple'
        for user in ('u1', 'u2'):
            self.run_ok(['-b', '--iterations', '1000', self.path, user, pw])
        with open(self.path, 'rb') as f:
            raw = f.read()
        self.assertNotIn(pw.encode(), raw)
        self.assertNotIn(b'horse', raw)
        e = self.entries()
        self.assertNotEqual(e['u1'], e['u2'])                  # salted
        salt1, salt2 = e['u1'].split('$')[3], e['u2'].split('$')[3]
        self.assertNotEqual(salt1, salt2)
        # setting the same password again gives yet another hash
        old = e['u1']
        self.run_ok(['-b', '--iterations', '1000', self.path, 'u1', pw])
        self.assertNotEqual(self.entries()['u1'], old)

    def test_prompt_on_a_terminal(self):
        def run(answers):
            master, slave = pty.openpty()
            p = subprocess.Popen([sec.PETREL, 'passwd', '--iterations', '1000', self.path,
                                  'tty-user'], stdin=slave, stdout=slave, stderr=slave)
            os.close(slave)
            out = b''
            for a in answers:
                deadline = time.monotonic() + 10
                while b'Password' not in out.split(b'\n')[-1] and time.monotonic() < deadline:
                    try:
                        out += os.read(master, 1024)
                    except OSError:
                        break
                os.write(master, a + b'\n')
                out += b'\n'
            rc = p.wait(20)
            try:
                while True:
                    chunk = os.read(master, 1024)
                    if not chunk:
                        break
                    out += chunk
            except OSError:
                pass
            os.close(master)
            return rc, out

        rc, out = run([b'tty-secret', b'tty-secret'])
        self.assertEqual(rc, 0, out)
        self.assertNotIn(b'tty-secret', out)     # not echoed
        self.assertIn('tty-user', self.entries())
        rc, out = run([b'one', b'two'])
        self.assertEqual(rc, 1, out)
        self.assertIn(b'do not match', out)

    def test_errors(self):
        r = sec.petrel_passwd(['-D', self.path, 'nobody'])
        self.assertEqual(r.returncode, 1)
        r = sec.petrel_passwd(['-b', self.path, 'a:b', 'x'])
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"without ':'", r.stderr)
        r = sec.petrel_passwd(['-b', self.path, 'only-user'])
        self.assertEqual(r.returncode, 2)
        r = sec.petrel_passwd(['--iterations', '5', '-b', self.path, 'u', 'p'])
        self.assertEqual(r.returncode, 2)
        r = sec.petrel_passwd(['--help'])
        self.assertEqual(r.returncode, 0)
        self.assertIn(b'-D', r.stdout)
        self.assertFalse(os.path.exists(self.path))

    def test_broken_file_refused_at_start_and_kept_on_reload(self):
        self.run_ok(['-b', '--iterations', '1000', self.path, 'frank', 'f'])
        bad = self.files.write('bad', 'frank:plaintext-password\n')
        rc, log = harness.Broker({'password_file': bad}).run_to_exit()
        self.assertEqual(rc, 2, log)
        self.assertIn('%s:1: user \'frank\': not a $pbkdf2-sha512$ hash' % bad, log)
        self.assertNotIn('plaintext-password', log)

        b = self.start_broker({'password_file': self.path})
        c = self.raw(b.port)
        c.connect('frank', username='frank', password='f')
        with open(self.path, 'a') as f:
            f.write('broken line\n')
        b.signal(signal.SIGHUP)
        self.assertTrue(b.wait_log(r'password file not reloaded, the previous users stay: '
                                   r'%s:2: expected' % re.escape(self.path), 5), b.tail())
        c.ping()                                    # connections are not dropped
        d = self.raw(b.port)
        d.connect('frank-again', username='frank', password='f')


if __name__ == '__main__':
    harness.main()
