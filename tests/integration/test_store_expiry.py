"""Durable store: abandoned persistent sessions expire.

session_expiry = 2s: a persistent session offline for longer than that is
removed with its subscriptions and queued messages (the broker checks every
min(60 s, session_expiry)); one that stays connected is kept.  A session
that expired while the broker was down is removed at start-up.
"""

import sqlite3
import time

import harness
from harness import BrokerTestCase, Collector, numbered

EXPIRY = 2


def db_rows(path, sql, args=()):
    """A query on the broker's database, read-only, on a fresh connection."""
    con = sqlite3.connect('file:%s?mode=ro' % path, uri=True, timeout=5)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def session_id(path, cid):
    rows = db_rows(path, 'SELECT id FROM sessions WHERE client_id = ? OR client_id = ?',
                   (cid.encode(), cid))
    return rows[0][0] if rows else None


@harness.skip_on_mosquitto('mosquitto expires sessions by the hour at best')
class ExpiryTest(BrokerTestCase):

    def expiring_broker(self, **extra):
        s = {'session_expiry': '%ds' % EXPIRY}
        s.update(extra)
        return self.start_broker(s)

    def back(self, b, cid):
        """A Collector for the persistent session `cid` (keep alive 20 s)."""
        c = Collector(b.port, cid, keepalive=20)
        self._clients.append(c)
        return c

    def assert_session_kept(self, b, cid, msg):
        c = self.back(b, cid)
        self.assertTrue(c.session_present, msg)
        c.disconnect()

    def persistent(self, b, cid, topic, stay=False):
        c = self.back(b, cid)
        c.subscribe([(topic, 1)])
        if not stay:
            c.disconnect()
        return c

    def expiring_with_session(self, cid, stay=False):
        """An expiring broker, a topic, and the persistent session `cid`
        subscribed to it (and disconnected, unless `stay`)."""
        b = self.expiring_broker()
        t = self.topic()
        self.persistent(b, cid, t, stay=stay)
        return b, t

    def publish(self, b, topic, n):
        p = self.raw(b.port)
        p.connect('', keepalive=20)
        p.publish(topic, numbered(n), qos=1)
        p.disconnect()

    def test_offline_session_expires(self):
        b, t = self.expiring_with_session('exp-gone')
        stay = self.persistent(b, 'exp-stays', t + '/other', stay=True)
        self.publish(b, t, 1)           # queued for exp-gone
        t_off = time.monotonic()
        sid = session_id(b.db_path, 'exp-gone')
        self.assertIsNotNone(sid, 'persistent session not in the database')
        self.assertEqual(db_rows(b.db_path, 'SELECT count(*) FROM deliveries WHERE session_id = ?',
                                 (sid,))[0][0], 1, 'queued message not in the database')
        time.sleep(0.5)
        self.assertIsNotNone(session_id(b.db_path, 'exp-gone'), 'expired far too early')
        # removed within expiry + one check interval (+ slack)
        deadline = t_off + 2 * EXPIRY + 4
        while time.monotonic() < deadline and session_id(b.db_path, 'exp-gone') is not None:
            time.sleep(0.2)
        gone_after = time.monotonic() - t_off
        self.assertIsNone(session_id(b.db_path, 'exp-gone'),
                          'session still stored %.1fs after it went offline' % gone_after)
        self.assertGreaterEqual(gone_after, EXPIRY - 1, 'expired before session_expiry')
        for table in ('subscriptions', 'deliveries'):
            self.assertEqual(db_rows(b.db_path, 'SELECT count(*) FROM %s WHERE session_id = ?'
                                     % table, (sid,))[0][0], 0,
                             '%s rows of the expired session left' % table)
        # the broker forgot it too
        again = self.back(b, 'exp-gone')
        self.assertFalse(again.session_present, 'expired session still present')
        self.assertEqual(again.collect(idle=0.4), [])
        again.disconnect()
        # the connected one was kept
        stay.disconnect()
        self.assert_session_kept(b, 'exp-stays', 'a connected session expired')

    def test_reconnect_before_expiry_keeps_session(self):
        b, t = self.expiring_with_session('exp-renewed')
        time.sleep(EXPIRY * 0.5)
        c = self.back(b, 'exp-renewed')
        self.assertTrue(c.session_present)
        time.sleep(EXPIRY + 1.5)      # online: not expiring
        c.disconnect()
        self.assert_session_kept(b, 'exp-renewed', 'session expired while connected')

    def test_expired_while_broker_down(self):
        b, t = self.expiring_with_session('exp-down')
        self.publish(b, t, 2)
        b.stop(keep=True)
        time.sleep(EXPIRY + 1.2)
        b.start()
        # straight after "ready", before any periodic check could run
        c = self.back(b, 'exp-down')
        self.assertFalse(c.session_present, 'session that expired while the broker was '
                         'down was restored')
        self.assertEqual(c.collect(idle=0.4), [], 'messages of an expired session delivered')
        c.disconnect()

    def test_session_online_at_kill9_expires_after_restart(self):
        # connected when the broker died: offline from the restart on
        b, t = self.expiring_with_session('exp-killed', stay=True)
        b.crash_restart()
        t_restart = time.monotonic()
        self.assertIsNotNone(session_id(b.db_path, 'exp-killed'),
                             'session lost or expired at once after kill -9')
        deadline = t_restart + 2 * EXPIRY + 4
        while time.monotonic() < deadline and session_id(b.db_path, 'exp-killed') is not None:
            time.sleep(0.2)
        self.assertIsNone(session_id(b.db_path, 'exp-killed'),
                          'a session that was online at kill -9 never expires')


if __name__ == '__main__':
    harness.main()
