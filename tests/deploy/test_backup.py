"""test_backup.py - `petreld --backup DEST`: taken while the broker runs and
writes, it is one consistent snapshot, a single self-contained file that a
fresh petreld starts from with the same persistent sessions (subscriptions,
queued messages) and retained messages; --inspect reads it; bad
destinations are refused without touching anything."""

import os
import shutil
import sqlite3
import stat
import tempfile
import threading
import time
import unittest

from deploytest import PETRELD, harness, main, mqttraw, run


def backup(data_dir, dest):
    return run([PETRELD, '--backup', dest, '--data-dir', data_dir], timeout=60)


@unittest.skipIf(harness.IS_MOSQUITTO, 'petreld only')
class Backup(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='petrel-backup-')
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()

    def broker(self):
        b = harness.Broker({'log_level': 'info'})
        self.addCleanup(b.stop)
        return b

    def client(self, b, cid='', clean=True):
        c = mqttraw.RawClient(b.port)
        self.clients.append(c)
        c.connect(cid, clean=clean, keepalive=30)
        return c

    def test_online_backup_restores_sessions_queues_and_retained(self):
        a = self.broker().start()
        sub = self.client(a, 'bk-sub', clean=False)
        self.assertEqual(sub.subscribe([('bk/q/#', 1), ('bk/two', 2)]), [1, 2])
        sub.disconnect()
        pub = self.client(a, 'bk-pub')
        pub.publish('bk/q/1', b'm1', qos=1)
        pub.publish('bk/two', b'm2', qos=2)
        pub.publish('bk/q/3', b'm3', qos=1)
        pub.publish('bk/ret', b'kept', qos=1, retain=True)

        # A writer keeps the store busy during the backup: retained
        # messages load/0, load/1, ... each acknowledged (so committed)
        # before the next is sent.
        stop = threading.Event()
        sent = []
        loader = self.client(a, 'bk-load')

        def load():
            n = 0
            while not stop.is_set() and n < 5000:
                loader.publish('load/%d' % n, b'x' * 100, qos=1, retain=True)
                sent.append(n)
                n += 1
        t = threading.Thread(target=load, daemon=True)
        t.start()
        while len(sent) < 20 and t.is_alive():
            time.sleep(0.01)
        dest = os.path.join(self.tmp, 'petrel-backup.db')
        r = backup(a.data_dir, dest)
        stop.set()
        t.join(30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r'integrity ok.*: sessions 1, subscriptions 2, '
                                   r'queued messages 3, in flight 0, retained \d+')
        self.assertTrue(a.alive())
        # published after the backup: not in it
        pub.publish('bk/q/after', b'late', qos=1)

        # One file, private, in rollback-journal mode, nothing left beside it.
        self.assertEqual(sorted(os.listdir(self.tmp)), ['petrel-backup.db'])
        self.assertEqual(stat.S_IMODE(os.stat(dest).st_mode), 0o600)
        with open(dest, 'rb') as f:
            header = f.read(20)
        self.assertEqual(header[:16], b'SQLite format 3\0')
        self.assertEqual(header[18:20], b'\x01\x01', 'not in WAL mode')

        # A snapshot: the retained load/N it holds are exactly 0..K-1.
        db = sqlite3.connect('file:%s?mode=ro' % dest, uri=True)
        loads = sorted(int(bytes(t).decode().split('/')[1]) for (t,) in
                       db.execute("SELECT topic FROM retained WHERE CAST(topic AS TEXT) "
                                  "LIKE 'load/%'"))
        db.close()
        self.assertEqual(loads, list(range(len(loads))), 'the backup is not one snapshot')
        self.assertGreaterEqual(len(loads), 20)
        print('backup taken under load: %d of %d retained writes in it' % (len(loads), len(sent)))

        # A fresh broker on a data directory holding only the backup.
        b = self.broker()
        shutil.copy(dest, os.path.join(b.data_dir, 'petrel.db'))
        r = b.inspect(['--data-dir', b.data_dir])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('session "bk-sub" offline since', r.stdout)
        self.assertIn('subscription "bk/q/#" qos 1', r.stdout)
        self.assertIn('subscription "bk/two" qos 2', r.stdout)
        self.assertIn('queue 3 messages, 6 bytes, 0 in flight', r.stdout)
        self.assertIn('retained "bk/ret" qos 1, 4 bytes', r.stdout)
        b.start()
        sub = mqttraw.RawClient(b.port)
        self.clients.append(sub)
        self.assertTrue(sub.connect('bk-sub', clean=False).session_present)
        # the window holds all three: read them, then acknowledge
        msgs = [sub.expect_publish(ack=False) for _ in range(3)]
        self.assertEqual([(p.topic, p.payload, p.qos) for p in msgs],
                         [('bk/q/1', b'm1', 1), ('bk/two', b'm2', 2), ('bk/q/3', b'm3', 1)])
        for p in msgs:
            if p.qos == 1:
                sub.send(mqttraw.ack_packet(mqttraw.PUBACK, p.pid))
            else:
                sub.send(mqttraw.ack_packet(mqttraw.PUBREC, p.pid))
                self.assertEqual(sub.expect(mqttraw.PUBREL).pid, p.pid)
                sub.send(mqttraw.ack_packet(mqttraw.PUBCOMP, p.pid))
        sub.expect_nothing(0.5)
        fresh = mqttraw.RawClient(b.port)
        self.clients.append(fresh)
        fresh.connect('bk-fresh')
        fresh.subscribe([('bk/ret', 1)])
        p = fresh.expect_publish()
        self.assertEqual((p.topic, p.payload, p.retain), ('bk/ret', b'kept', True))

    def test_backup_of_a_stopped_broker_and_replacing_an_old_backup(self):
        a = self.broker().start()
        c = self.client(a, 'offline-sub', clean=False)
        c.subscribe([('x/#', 1)])
        c.disconnect()
        a.stop(keep=True)
        dest = os.path.join(self.tmp, 'b.db')
        with open(dest, 'wb') as f:
            f.write(b'an older backup')
        r = backup(a.data_dir, dest)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('sessions 1, subscriptions 1', r.stdout)
        with open(dest, 'rb') as f:
            self.assertEqual(f.read(16), b'SQLite format 3\0')
        shutil.rmtree(a.tmp, ignore_errors=True)

    def test_refusals_touch_nothing(self):
        a = self.broker().start()
        before = sorted(os.listdir(a.data_dir))
        cases = [
            (os.path.join(a.data_dir, 'petrel.db'), 'in the data directory'),
            (os.path.join(a.data_dir, 'petrel.db-wal'), 'in the data directory'),
            (self.tmp, 'is a directory'),
            (os.path.join(self.tmp, 'missing', 'b.db'), 'cannot create'),
        ]
        for dest, why in cases:
            r = backup(a.data_dir, dest)
            self.assertEqual(r.returncode, 1, dest)
            self.assertIn(why, r.stderr)
        self.assertEqual(sorted(os.listdir(a.data_dir)), before)
        self.assertEqual(os.listdir(self.tmp), [])
        # a data directory without a store, and a foreign database
        empty = os.path.join(self.tmp, 'empty')
        os.mkdir(empty)
        r = backup(empty, os.path.join(self.tmp, 'b.db'))
        self.assertEqual(r.returncode, 1)
        self.assertIn('cannot open', r.stderr)
        db = sqlite3.connect(os.path.join(empty, 'petrel.db'))
        db.execute('CREATE TABLE other(x)')
        db.commit()
        db.close()
        r = backup(empty, os.path.join(self.tmp, 'b.db'))
        self.assertEqual(r.returncode, 1)
        self.assertIn('not a Petrel database', r.stderr)
        self.assertEqual(sorted(os.listdir(self.tmp)), ['empty'])
        self.assertTrue(a.alive())


if __name__ == '__main__':
    main()
