"""Durable store: `petreld --inspect` prints what the database holds, while
the broker runs and after it stopped, and the database itself has the
promised identity (application_id, user_version) and schema.

    database /path/petrel.db (schema 4)
    sessions 1
    session "sub1" offline since 2026-11-22T11:00:00Z, expires in 2592000 s
      subscription "a/#" qos 1
      queue 3 messages, 15 bytes, 0 in flight
    retained 1
    retained "r/1" qos 0, 4 bytes
"""

import calendar
import os
import re
import sqlite3
import time

import harness
from harness import BrokerTestCase, Collector
import mqttraw


def parse(text):
    """{'database': (path, schema), 'sessions': n, 'session': {cid: {...}},
    'retained_count': n, 'retained': {topic: (qos, bytes)}} from --inspect."""
    out = {'session': {}, 'retained': {}, 'lines': text.splitlines()}
    cur = None
    for line in text.splitlines():
        m = re.fullmatch(r'database (.+) \(schema (\d+)\)', line)
        if m:
            out['database'] = (m.group(1), int(m.group(2)))
            continue
        m = re.fullmatch(r'sessions (\d+)', line)
        if m:
            out['sessions'] = int(m.group(1))
            continue
        m = re.fullmatch(r'session "(.*)" online', line)
        if m:
            cur = out['session'][m.group(1)] = {'online': True, 'subs': {}}
            continue
        m = re.fullmatch(r'session "(.*)" offline since (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ), '
                         r'expires in (\d+) s', line)
        if m:
            cur = out['session'][m.group(1)] = {
                'online': False, 'subs': {},
                'since': calendar.timegm(time.strptime(m.group(2), '%Y-%m-%dT%H:%M:%SZ')),
                'expires_in': int(m.group(3))}
            continue
        m = re.fullmatch(r'  subscription "(.*)" qos (\d)', line)
        if m and cur is not None:
            cur['subs'][m.group(1)] = int(m.group(2))
            continue
        m = re.fullmatch(r'  queue (\d+) messages?, (\d+) bytes?, (\d+) in flight', line)
        if m and cur is not None:
            cur['queue'] = tuple(int(x) for x in m.groups())
            continue
        m = re.fullmatch(r'retained (\d+)', line)
        if m:
            out['retained_count'] = int(m.group(1))
            cur = None
            continue
        m = re.fullmatch(r'retained "(.*)" qos (\d), (\d+) bytes?', line)
        if m:
            out['retained'][m.group(1)] = (int(m.group(2)), int(m.group(3)))
            continue
    return out


@harness.skip_on_mosquitto('petreld --inspect')
class InspectTest(BrokerTestCase):

    def client(self, b, cid, clean=False):
        c = Collector(b.port, cid, clean=clean, keepalive=20)
        self._clients.append(c)
        return c

    def inspect(self, b, args=None):
        r = b.inspect(args)
        self.assertEqual(r.returncode, 0, 'petreld --inspect exit %d\nstdout:\n%s\nstderr:\n%s'
                         % (r.returncode, r.stdout, r.stderr))
        return r.stdout, parse(r.stdout)

    def test_inspect_running_and_stopped(self):
        b = self.start_broker({'sys_interval': 1})
        sub1 = self.client(b, 'sub1')
        self.assertEqual(sub1.subscribe([('a/#', 1)]), [1])
        sub1.disconnect()
        t_off = time.time()
        ctl = self.client(b, 'ctl\x01id')
        ctl.subscribe([('c/\x02', 0)])
        ctl.disconnect()
        online = self.client(b, 'x')
        online.subscribe([('b/+', 2), ('b/#', 0)])
        clean = self.client(b, 'not-stored', clean=True)
        clean.subscribe([('a/#', 1)])
        p = self.raw(b.port)
        p.connect('', keepalive=20)
        for payload in (b'one..', b'two..', b'three'):
            p.publish('a/x', payload, qos=1)
        p.publish('a/zero', b'qos0 not queued', qos=0)
        p.publish('r/1', b'abcd', qos=0, retain=True)
        p.publish('r/2', b'gone', qos=1, retain=True)
        p.publish('r/2', b'', qos=1, retain=True)
        p.disconnect()
        time.sleep(1.5)   # $SYS retained messages exist now (not stored)

        text, got = self.inspect(b)
        msg = '\n--inspect output:\n' + text
        self.assertIn('database', got, msg)
        path, schema = got['database']
        self.assertEqual(schema, 4, msg)
        self.assertTrue(os.path.exists(path) and os.path.samefile(path, b.db_path), msg)
        self.assertEqual(got.get('sessions'), 3, msg)
        self.assertEqual(set(got['session']), {'sub1', 'x', 'ctl\\x01id'}, msg)
        s = got['session']['sub1']
        self.assertFalse(s['online'], msg)
        self.assertLessEqual(abs(s['since'] - t_off), 5, 'offline since' + msg)
        self.assertTrue(30 * 86400 - 60 <= s['expires_in'] <= 30 * 86400, 'expires in' + msg)
        self.assertEqual(s['subs'], {'a/#': 1}, msg)
        self.assertEqual(s.get('queue'), (3, 15, 0), msg)
        x = got['session']['x']
        self.assertTrue(x['online'], msg)
        self.assertEqual(x['subs'], {'b/+': 2, 'b/#': 0}, msg)
        self.assertEqual(x.get('queue', (0, 0, 0)), (0, 0, 0), msg)
        ctl_s = got['session']['ctl\\x01id']
        self.assertEqual(ctl_s['subs'], {'c/\\x02': 0}, msg)
        self.assertEqual(got.get('retained_count'), 1, msg)
        self.assertEqual(got['retained'], {'r/1': (0, 4)}, msg)
        # the lines are in the documented order
        kinds = [l.split(' ', 1)[0] for l in got['lines'] if l and not l.startswith(' ')]
        self.assertEqual(kinds[:2], ['database', 'sessions'], msg)
        self.assertEqual(kinds[-2:], ['retained', 'retained'], msg)

        b.stop(keep=True)
        # stopped, and with --data-dir instead of -c
        text, got = self.inspect(b, ['--data-dir', b.data_dir])
        msg = '\n--inspect output:\n' + text
        self.assertEqual(got.get('sessions'), 3, msg)
        x = got['session']['x']
        self.assertFalse(x['online'], 'session still online after the broker stopped' + msg)
        self.assertEqual(got['session']['sub1'].get('queue'), (3, 15, 0), msg)
        self.assertEqual(got['retained'], {'r/1': (0, 4)}, msg)

    def test_inspect_shows_in_flight(self):
        # QoS 2 deliveries sent and not yet completed are on disk as "in
        # flight"; the rest are queued.  (QoS 1 ones in flight are not
        # recorded as such: they count as queued and are resent as new
        # deliveries after a crash.)
        b = self.start_broker({'max_inflight': 2})
        c = Collector(b.port, 'slow', keepalive=20, ack=False)
        self._clients.append(c)
        c.subscribe([('s/#', 2)])
        p = self.raw(b.port)
        p.connect('', keepalive=20)
        for i in range(5):
            p.publish('s/1', b'%03d' % i, qos=2)
        c.collect(done=lambda s: len(s.messages) >= 2, idle=0.3, timeout=5)
        self.assertEqual(len(c.messages), 2)
        text, got = self.inspect(b)
        msg = '\n--inspect output:\n' + text
        s = got['session']['slow']
        self.assertTrue(s['online'], msg)
        self.assertEqual(s.get('queue'), (3, 9, 2), msg)
        # one PUBREC: still in flight (waiting for PUBCOMP)
        c.client.send(mqttraw.ack_packet(mqttraw.PUBREC, c.messages[0].pid))
        self.assertEqual(c.client.expect(mqttraw.PUBREL).pid, c.messages[0].pid)
        text, got = self.inspect(b)
        self.assertEqual(got['session']['slow'].get('queue'), (3, 9, 2),
                         '\n--inspect output:\n' + text)

    def test_inspect_shows_pending_will(self):
        # a 5.0 will waiting for its Will Delay Interval is on disk with its
        # session, shown with the time left; gone once published
        b = self.start_broker()
        c = mqttraw.Raw5(b.port)
        self._clients.append(c)
        c.connect5('willing', props=[(mqttraw.P_SESSION_EXPIRY, 600)],
                   will=('w/willing', 'bye', 1, False), will_props=[(mqttraw.P_WILL_DELAY, 120)])
        c.close()
        deadline = time.monotonic() + 5
        while True:
            text, got = self.inspect(b)
            line = [l for l in got['lines'] if l.startswith('  will ')]
            if line or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertTrue(line, '\n--inspect output:\n' + text)
        m = re.fullmatch(r'  will "w/willing" qos 1, due in (\d+) s', line[0])
        self.assertTrue(m, line[0])
        self.assertTrue(100 <= int(m.group(1)) <= 120, line[0])

    def test_database_identity_and_schema(self):
        b = self.start_broker()
        c = self.client(b, 'ident')
        c.subscribe([('i/#', 1)])
        c.disconnect()
        b.stop(keep=True)
        con = sqlite3.connect('file:%s?mode=ro' % b.db_path, uri=True)
        try:
            self.assertEqual(con.execute('PRAGMA application_id').fetchone()[0], 0x5045544C)
            self.assertEqual(con.execute('PRAGMA user_version').fetchone()[0], 4)
            self.assertEqual(con.execute('PRAGMA journal_mode').fetchone()[0].lower(), 'wal')
            tables = {r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}
            for t in ('sessions', 'subscriptions', 'messages', 'deliveries', 'inbound_qos2',
                      'retained', 'cluster_outbox', 'cluster_inbox'):
                self.assertIn(t, tables)
            self.assertEqual(con.execute('SELECT count(*) FROM sessions').fetchone()[0], 1)
            self.assertEqual(con.execute('PRAGMA integrity_check').fetchone()[0], 'ok')
        finally:
            con.close()


if __name__ == '__main__':
    harness.main()
