"""Durable store: faults.

At start-up, a database that cannot be opened, is not a Petrel database or
has a newer schema is a clear error: petreld exits with status 1, says why
on stderr, never listens, and leaves the file as it was.

At run time, a write failure (here: a file-size limit, RLIMIT_FSIZE, put on
the running broker with prlimit) stops the acknowledging of QoS 1 publishes
that cannot be stored (the publisher's connection is closed instead), is
logged, leaves the broker serving others, and recovers by itself once
writes succeed again (the limit is lifted).  Nothing acknowledged is lost.
"""

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import unittest

import harness
from harness import Broker, BrokerTestCase, Collector, numbered
import mqttraw
from mqttraw import PUBACK, P_SESSION_EXPIRY, P_WILL_DELAY, Raw5

EXIT_TIMEOUT = 10.0


@harness.skip_on_mosquitto('petreld store faults')
class StartupFaultTest(BrokerTestCase):

    def setUp(self):
        super().setUp()
        self.port = harness.free_port()
        self.b = Broker({'listen': '127.0.0.1:%d' % self.port})
        self.addCleanup(shutil.rmtree, self.b.tmp, True)
        self.db = os.path.join(self.b.data_dir, 'petrel.db')

    def expect_refusal(self, *patterns):
        """Starts petreld and asserts a start-up failure: exit status 1
        within EXIT_TIMEOUT, one of the patterns on stderr, no 'ready',
        nothing listening.  Returns the log."""
        t0 = time.monotonic()
        rc, log = self.b.run_to_exit(EXIT_TIMEOUT)
        took = time.monotonic() - t0
        self.assertIsNotNone(rc, 'petreld still running after %.0fs; log:\n%s'
                             % (EXIT_TIMEOUT, log))
        self.assertEqual(rc, 1, 'exit status %s, expected 1; log:\n%s' % (rc, log))
        self.assertTrue(any(p in log for p in patterns),
                        'none of %r on stderr:\n%s' % (patterns, log))
        self.assertNotRegex(log, r'\bready\b', 'ready although the store failed')
        self.assertFalse(harness.port_open(self.port), 'port %d still listening' % self.port)
        marker = self.b.sanitizer_report()
        self.assertIsNone(marker, 'sanitizer report: %s\n%s' % (marker, log))
        self.assertLess(took, EXIT_TIMEOUT)
        return log

    def file_bytes(self):
        with open(self.db, 'rb') as f:
            return f.read()

    def test_database_path_is_a_directory(self):
        os.mkdir(self.db)
        self.expect_refusal('petrel.db')
        self.assertTrue(os.path.isdir(self.db))

    @unittest.skipIf(os.geteuid() == 0, 'root reads a file whatever its mode')
    def test_unreadable_database_file(self):
        # a real Petrel database, then made unreadable
        self.b.start()
        self.b.stop(keep=True)
        os.chmod(self.db, 0)
        try:
            self.expect_refusal('petrel.db')
        finally:
            os.chmod(self.db, 0o640)

    def test_random_bytes(self):
        with open(self.db, 'wb') as f:
            f.write(os.urandom(16384))
        before = self.file_bytes()
        self.expect_refusal('not a database', 'not a Petrel database')
        self.assertEqual(self.file_bytes(), before, 'foreign file modified')

    def test_text_file(self):
        with open(self.db, 'w') as f:
            f.write('these are my notes, not a database\n' * 50)
        before = self.file_bytes()
        log = self.expect_refusal('not a database', 'not a Petrel database')
        self.assertIn('petrel.db', log)
        self.assertEqual(self.file_bytes(), before, 'foreign file modified')

    def test_sqlite_database_of_another_application(self):
        con = sqlite3.connect(self.db)
        con.execute('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)')
        con.executemany('INSERT INTO notes (body) VALUES (?)', [('note %d' % i,) for i in range(50)])
        con.commit()
        con.close()
        before = self.file_bytes()
        self.expect_refusal('not a Petrel database')
        self.assertEqual(self.file_bytes(), before, 'database of another application modified')
        con = sqlite3.connect(self.db)
        try:
            self.assertEqual(con.execute('SELECT count(*) FROM notes').fetchone()[0], 50)
            names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            con.close()
        self.assertEqual(names, {'notes'}, 'tables added to a foreign database')

    def test_newer_schema(self):
        # a real Petrel database from this build, then "upgraded" to 99
        self.b.start()
        self.b.stop(keep=True)
        con = sqlite3.connect(self.db)
        try:
            self.assertEqual(con.execute('PRAGMA application_id').fetchone()[0], 0x5045544C)
            self.assertEqual(con.execute('PRAGMA user_version').fetchone()[0], 4)
            con.execute('PRAGMA user_version = 99')
            con.commit()
        finally:
            con.close()
        before = self.file_bytes()
        log = self.expect_refusal('newer')
        self.assertIn('petrel.db', log)
        self.assertEqual(self.file_bytes(), before, 'newer database modified')


# the columns of schema 3: a session's pending will (MQTT 5.0 Will Delay)
WILL_COLUMNS = ('will_at', 'will_topic', 'will_payload', 'will_qos', 'will_retain',
                'will_properties', 'will_expiry')


@harness.skip_on_mosquitto('petreld store schema')
class MigrationTest(BrokerTestCase):
    """A database of schema 1 (before session owners were stored) is
    upgraded in place at start-up and keeps its sessions, subscriptions,
    queued and retained messages."""

    def queue_offline(self, b, cid, topic, retained=False):
        """`cid`-sub: a persistent subscriber to `topic`/# (QoS 1), gone
        offline with `topic`/1 "queued" waiting for it (and `topic`/r
        "kept" retained)."""
        sub = self.raw(b.port)
        sub.connect(cid + '-sub', clean=False)
        sub.subscribe([(topic + '/#', 1)])
        sub.disconnect()
        pub = self.raw(b.port)
        pub.connect(cid + '-pub')
        pub.publish(topic + '/1', b'queued', qos=1)
        if retained:
            pub.publish(topic + '/r', b'kept', qos=0, retain=True)
        pub.disconnect()

    def downgrade_and_start(self, b, version, drop_columns):
        """Stops b, turns its database back into what a petreld of schema
        `version` wrote (without those columns of sessions), starts it
        again and returns the column names of sessions it upgraded to."""
        b.stop(keep=True)
        con = sqlite3.connect(b.db_path)
        try:
            for col in drop_columns:
                con.execute('ALTER TABLE sessions DROP COLUMN ' + col)
            # the cluster tables came with schema 4
            con.execute('DROP TABLE IF EXISTS cluster_outbox')
            con.execute('DROP TABLE IF EXISTS cluster_inbox')
            con.execute('PRAGMA user_version = %d' % version)
            con.commit()
        finally:
            con.close()
        b.start()
        con = sqlite3.connect('file:%s?mode=ro' % b.db_path, uri=True)
        try:
            self.assertEqual(con.execute('PRAGMA user_version').fetchone()[0], 4)
            cols = {r[1] for r in con.execute('PRAGMA table_info(sessions)')}
            self.pending_wills = con.execute('SELECT count(*) FROM sessions WHERE will_at '
                                             'IS NOT NULL').fetchone()[0]
        finally:
            con.close()
        return cols

    def expect_queued(self, b, cid, topic):
        """`cid`-sub finds its session and gets `topic`/1 "queued"."""
        sub = self.raw(b.port)
        self.assertTrue(sub.connect(cid + '-sub', clean=False).session_present)
        m = sub.expect_publish()
        self.assertEqual((m.topic, bytes(m.payload)), (topic + '/1', b'queued'))
        return sub

    def test_schema_1_upgraded_to_2(self):
        b = self.start_broker()
        self.queue_offline(b, 'old', 'm', retained=True)
        cols = self.downgrade_and_start(b, 1, WILL_COLUMNS + ('username', 'identified'))
        self.assertTrue({'username', 'identified'} | set(WILL_COLUMNS) <= cols, cols)
        sub = self.expect_queued(b, 'old', 'm')
        sub.subscribe([('m/r', 0)])
        r = sub.expect_publish()
        self.assertEqual((r.topic, bytes(r.payload), r.retain), ('m/r', b'kept', True))
        sub.disconnect()

    def test_schema_2_upgraded_to_3(self):
        # schema 3 adds the pending will of a session: a database of schema
        # 2 keeps its sessions and queues, and then stores wills
        b = self.start_broker()
        self.queue_offline(b, 'v2', 'v2')
        cols = self.downgrade_and_start(b, 2, WILL_COLUMNS)
        self.assertTrue(set(WILL_COLUMNS) <= cols, cols)
        self.assertEqual(self.pending_wills, 0)
        self.expect_queued(b, 'v2', 'v2')
        # a pending will is stored in the new columns and survives a restart
        w = Raw5(b.port)
        self._clients.append(w)
        w.connect5('v2-will', props=[(P_SESSION_EXPIRY, 60)], will=('v2/will', 'late', 1, False),
                   will_props=[(P_WILL_DELAY, 2)])
        w.close()
        time.sleep(0.3)
        b.restart()
        sub = self.raw(b.port)
        self.assertTrue(sub.connect('v2-sub', clean=False).session_present)
        m = sub.expect_publish(timeout=4)
        self.assertEqual((m.topic, bytes(m.payload)), ('v2/will', b'late'))
        sub.disconnect()


PRLIMIT = shutil.which('prlimit')


@harness.skip_on_mosquitto('petreld store faults')
@unittest.skipUnless(PRLIMIT, 'prlimit (util-linux) is not installed: cannot limit the '
                     'file size of the running broker')
class WriteFailureTest(BrokerTestCase):
    PAYLOAD = 4096

    def set_fsize(self, pid, soft):
        r = subprocess.run([PRLIMIT, '--pid', str(pid), '--fsize=%s:unlimited' % soft],
                           capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            self.skipTest('prlimit --pid failed: %s' % r.stderr.strip())

    def sizes(self, b):
        out = {}
        for suffix in ('', '-wal', '-shm'):
            try:
                out[suffix] = os.path.getsize(b.db_path + suffix)
            except OSError:
                out[suffix] = 0
        return out

    def wait_log_words(self, b, *words, timeout=5.0):
        """Log lines holding all the words (any case), waiting up to timeout."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [l for l in b.log_text().splitlines()
                     if all(re.search(r'\b%s\b' % w, l, re.I) for w in words)]
            if lines or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)

    def test_write_failure_stops_acks_and_recovers(self):
        # The log goes through a pipe: the limit must not cut the broker's log.
        b = self.start_broker({'max_queued_messages': 100000, 'max_queued_bytes': 0},
                              log_pipe=True)
        t = self.topic()
        sub = Collector(b.port, 'wf-sub', keepalive=30)
        self._clients.append(sub)
        sub.subscribe([(t + '/stored', 1)])
        sub.disconnect()
        watcher = self.raw_connected(port=b.port)
        watcher.subscribe([(t + '/others', 0)])

        acked = []
        pub = self.raw_connected(port=b.port)
        for n in range(5):
            pub.publish(t + '/stored', numbered(n, self.PAYLOAD), qos=1)
            acked.append(n)

        before = self.sizes(b)
        limit = max(before.values()) + 64 * 1024
        self.set_fsize(b.pid, limit)

        # publish (one at a time) until one is not acknowledged
        failed_at = None
        n = 5
        while n < 5 + 3000:
            pid = pub.pid()
            pub.send(mqttraw.publish_packet(t + '/stored', numbered(n, self.PAYLOAD), qos=1,
                                            pid=pid))
            try:
                p = pub.read_packet(5)
            except mqttraw.Closed:
                failed_at = n
                break
            except mqttraw.Timeout:
                self.fail('neither PUBACK nor close within 5 s for message %d (file size '
                          'limit %d, files %s)' % (n, limit, self.sizes(b)))
            self.assertEqual((p.type, p.pid), (PUBACK, pid))
            acked.append(n)
            n += 1
        self.assertIsNotNone(failed_at, 'every publish was acknowledged although writes '
                             'beyond %d bytes fail (files now %s)' % (limit, self.sizes(b)))
        self.assertTrue(self.wait_log_words(b, 'store', 'failed'),
                        'no log line with the words "store" and "failed"')
        self.assertTrue(b.alive(), 'broker died on a write failure (SIGXFSZ?)')
        sys.stderr.write('write failure: limit %d bytes (files were %s), %d acknowledged, '
                         'message %d not; log: %s\n' % (limit, before, len(acked), failed_at,
                                                        self.wait_log_words(b, 'store', 'failed')[0]))

        # the broker still serves others
        other = self.raw_connected(port=b.port)
        other.ping()
        other.publish(t + '/others', b'still serving', qos=0)
        self.assertEqual(watcher.expect_publish(timeout=5).payload, b'still serving')
        # more publishes to the persistent session: none may be acknowledged
        # unless stored (acknowledged ones must survive like the rest)
        for k in range(3):
            m = 10000 + k
            p2 = self.raw_connected(port=b.port)
            p2.send(mqttraw.publish_packet(t + '/stored', numbered(m, self.PAYLOAD), qos=1,
                                           pid=1))
            p2.wait_closed(3)
            if any(x.type == PUBACK for x in p2.before_close):
                acked.append(m)

        # lift the limit: the store recovers by itself
        self.set_fsize(b.pid, 'unlimited')
        deadline = time.monotonic() + 10
        recovered_n = None
        m = 20000
        while time.monotonic() < deadline:
            p3 = self.raw_connected(port=b.port)
            p3.send(mqttraw.publish_packet(t + '/stored', numbered(m, self.PAYLOAD), qos=1,
                                           pid=7))
            try:
                p = p3.read_packet(3)
                if p.type == PUBACK and p.pid == 7:
                    acked.append(m)
                    recovered_n = m
                    break
            except (mqttraw.Closed, mqttraw.Timeout):
                pass
            p3.close()
            m += 1
            time.sleep(0.2)
        self.assertIsNotNone(recovered_n, 'no QoS 1 publish acknowledged within 10 s of '
                             'lifting the limit')
        self.assertTrue(self.wait_log_words(b, 'store', 'recovered'),
                        'no log line with the words "store" and "recovered"')
        self.assertTrue(b.alive())
        sys.stderr.write('write failure: recovered, message %d acknowledged; log: %s\n'
                         % (recovered_n, self.wait_log_words(b, 'store', 'recovered')[0]))

        # nothing acknowledged is lost, across a restart too
        b.restart()
        sub = Collector(b.port, 'wf-sub', keepalive=30)
        self._clients.append(sub)
        self.assertTrue(sub.session_present)
        want = set(acked)
        sub.collect(done=lambda s: want <= set(s.numbers()), idle=0.3, timeout=5)
        missing = sorted(want - set(sub.numbers()))
        if missing:
            self.fail('%d acknowledged messages lost, e.g. %s (of %d; failure at %d)'
                      % (len(missing), missing[:10], len(acked), failed_at))
        self.assertIn(recovered_n, sub.numbers())
        sub.disconnect()


if __name__ == '__main__':
    harness.main()
