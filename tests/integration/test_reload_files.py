"""Reloading a password file or an ACL file that never ends (issue #14
item 7): a FIFO without a writer, /dev/zero, a file over the size bound.
The files are read off the event loop and bounded: the reload fails with a
clear error, the users and rules in force stay, `petreld --reload` answers
at once with exit status 1, other clients' round trips stay fast and the
RSS stays flat.  petreld only."""

import os
import signal
import subprocess
import sys
import threading
import time

import harness
from harness import BrokerTestCase, skip_on_mosquitto
import mqttraw
import security_helpers as sec

USERS = {'alice': 'a1ice'}
ACL = """user alice
topic readwrite alice/#
"""


class RoundTrips(threading.Thread):
    """Another client's QoS 0 round trips through the broker, all the
    while: the slowest one tells whether the loop stopped."""

    def __init__(self, port, topic):
        super().__init__(daemon=True)
        self.sub = mqttraw.RawClient(port)
        self.sub.connect('rt-sub', username='alice', password=USERS['alice'])
        self.sub.subscribe([(topic, 0)])
        self.pub = mqttraw.RawClient(port)
        self.pub.connect('rt-pub', username='alice', password=USERS['alice'])
        self.topic = topic
        self.worst = 0.0
        self.count = 0
        self.failed = None
        self.stop = threading.Event()

    def run(self):
        try:
            while not self.stop.is_set():
                t0 = time.monotonic()
                self.pub.publish(self.topic, b'rt', qos=0)
                self.sub.expect_publish(timeout=10)
                self.worst = max(self.worst, time.monotonic() - t0)
                self.count += 1
                time.sleep(0.01)
        except Exception as e:     # reported by the test
            self.failed = e

    def finish(self):
        self.stop.set()
        self.join(15)
        self.sub.close()
        self.pub.close()


@skip_on_mosquitto('petreld reload')
class EndlessReloadTest(BrokerTestCase):

    def setUp(self):
        super().setUp()
        self.files = sec.Files()
        self.addCleanup(self.files.close)
        self.passwd = self.files.passwd(USERS)
        self.acl = self.files.write('acl', ACL)
        self.b = self.start_broker({'password_file': self.passwd, 'acl_file': self.acl})
        self.rt = RoundTrips(self.b.port, 'alice/rt')
        self.rt.start()
        self.addCleanup(self.rt.finish)

    def reload(self):
        """petreld --reload: (exit status, output, seconds)."""
        t0 = time.monotonic()
        r = subprocess.run([harness.PETRELD, '--reload', '-c', self.b.conf_path],
                           capture_output=True, text=True, timeout=40)
        return r.returncode, r.stdout + r.stderr, time.monotonic() - t0

    def swap(self, path, make):
        """Replaces the file at path with what make(path) creates."""
        os.unlink(path)
        make(path)

    def check_old_rules_stay(self):
        c = self.raw(self.b.port)
        c.connect('check', username='alice', password=USERS['alice'])
        self.assertEqual(c.subscribe([('alice/x', 0), ('bob/x', 0)]), [0, 0x80])
        c.disconnect()

    def check_endless(self, which, make, expect):
        path = self.acl if which == 'ACL' else self.passwd
        rss0 = sec.rss_kb(self.b.pid)
        self.swap(path, make)
        rc, out, took = self.reload()
        self.assertEqual(rc, 1, out)
        self.assertRegex(out, r'(password file|ACL file) not reloaded, the previous .* stay: '
                              r'.*' + expect)
        self.assertLess(took, 5.0)
        self.assertIsNotNone(self.b.wait_log(expect), expect)
        # the loop served meanwhile and still does
        time.sleep(0.3)
        self.assertIsNone(self.rt.failed, 'round trips failed: %r' % self.rt.failed)
        self.assertGreater(self.rt.count, 0)
        self.assertLess(self.rt.worst, 0.5, 'a round trip took %.2f s' % self.rt.worst)
        self.check_old_rules_stay()
        grew = sec.rss_kb(self.b.pid) - rss0
        sys.stderr.write('%s %s: --reload answered in %.2f s, worst round trip %.3f s over %d, '
                         'RSS %+d KiB\n' % (which, expect, took, self.rt.worst, self.rt.count,
                                             grew))
        self.assertLess(grew, 20 * 1024, 'RSS grew by %d KiB' % grew)
        return took

    def test_acl_fifo(self):
        self.check_endless('ACL', os.mkfifo, 'not a regular file')

    def test_password_file_fifo(self):
        self.check_endless('password', os.mkfifo, 'not a regular file')

    def test_dev_zero(self):
        self.check_endless('ACL', lambda p: os.symlink('/dev/zero', p), 'not a regular file')
        self.check_endless('password', lambda p: os.symlink('/dev/zero', p),
                           'not a regular file')

    def test_file_over_the_bound(self):
        def sparse(p):
            with open(p, 'wb') as f:
                f.truncate(65 * 1024 * 1024)    # sparse: no disk used
        self.check_endless('ACL', sparse, 'larger than 64 MiB')

    def test_fifo_with_a_writer_that_never_closes(self):
        # A writer holds the FIFO open and sends a valid-looking start, then
        # nothing: refused (not a regular file) without waiting for it.
        def fifo_held(p):
            os.mkfifo(p)
            fd = os.open(p, os.O_RDWR)     # a writer (and reader) that stays
            self.addCleanup(os.close, fd)
            os.write(fd, b'user alice\ntopic readwrite #\n')
        self.check_endless('ACL', fifo_held, 'not a regular file')

    def test_good_file_after_an_endless_one(self):
        self.check_endless('ACL', os.mkfifo, 'not a regular file')
        os.unlink(self.acl)
        self.files.write('acl', ACL + 'topic readwrite bob/#\n')
        rc, out, _ = self.reload()
        self.assertEqual(rc, 0, out)
        self.assertIn('ACL file %s: 2 rules' % self.acl, out)
        c = self.raw(self.b.port)
        c.connect('check2', username='alice', password=USERS['alice'])
        self.assertEqual(c.subscribe([('bob/x', 0)]), [0])

    def test_big_file_is_parsed_off_the_loop(self):
        # 300,000 users (some 40 MB): parsing takes a while, and the loop
        # serves meanwhile; then the new users are in force.
        with open(self.passwd) as f:
            line = f.readline().strip()
        hash_ = line.split(':', 1)[1]
        big = self.passwd + '.big'
        with open(big, 'w') as f:
            f.write(line + '\n')
            for i in range(300000):
                f.write('user%06d:%s\n' % (i, hash_))
        os.replace(big, self.passwd)
        rss0 = sec.rss_kb(self.b.pid)
        self.rt.worst = 0.0
        rc, out, took = self.reload()
        self.assertEqual(rc, 0, out)
        self.assertIn('password file %s: 300001 users' % self.passwd, out)
        time.sleep(0.2)
        sys.stderr.write('300001 users: reload took %.2f s, worst round trip meanwhile %.3f s, '
                         'RSS %+d KiB\n' % (took, self.rt.worst, sec.rss_kb(self.b.pid) - rss0))
        self.assertIsNone(self.rt.failed, 'round trips failed: %r' % self.rt.failed)
        self.assertLess(self.rt.worst, max(0.2, took / 4),
                        'a round trip took %.2f s of a %.2f s reload' % (self.rt.worst, took))
        c = self.raw(self.b.port)
        c.connect('big', username='user299999', password=USERS['alice'])

    def test_sighups_during_a_reload(self):
        for _ in range(5):
            self.b.signal(signal.SIGHUP)
        rc, out, took = self.reload()
        self.assertEqual(rc, 0, out)
        self.assertLess(took, 10)
        self.assertTrue(self.b.alive())


if __name__ == '__main__':
    harness.main()
