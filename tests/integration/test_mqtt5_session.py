"""MQTT 5.0 sessions: Session Expiry Interval (in memory, changed by
DISCONNECT, across a restart of the broker), Will Delay Interval and the
reason codes of DISCONNECT that decide about the will, and pending wills
kept across a restart (SIGTERM or kill -9) of the broker."""

import time

from harness import BrokerTestCase, OwnBrokers, skip_on_mosquitto
import mqttraw
from mqttraw import Raw5, P_SESSION_EXPIRY, P_WILL_DELAY


class Base(BrokerTestCase):

    def raw5(self, client_id='', props=(), port=None, expect_rc=0, **kw):
        c = Raw5(port or self.port)
        self._clients.append(c)
        c.ack = c.connect5(client_id, props=props, expect_rc=expect_rc, **kw)
        return c

    def bye(self, c, reason=0, props=()):
        c.send(mqttraw.disconnect5_packet(reason, props))
        self.assertTrue(c.wait_closed(3))

    def cid(self, name):
        return '%s-%f' % (name, time.time())


@skip_on_mosquitto()
class Mqtt5SessionExpiryTest(Base):

    def test_expiry_zero_is_a_clean_session(self):
        cid = self.cid('zero')
        c = self.raw5(cid, clean=False)
        c.subscribe5([(self.topic(), 1)])
        self.bye(c)
        c = self.raw5(cid, clean=False)
        self.assertFalse(c.ack.session_present)

    def test_session_kept_for_its_interval(self):
        cid = self.cid('keep')
        t = self.topic()
        c = self.raw5(cid, props=[(P_SESSION_EXPIRY, 2)])
        c.subscribe5([(t, 1)])
        self.bye(c)
        pub = self.raw5()
        pub.publish5(t, 'queued', 1)
        c = self.raw5(cid, clean=False, props=[(P_SESSION_EXPIRY, 2)])
        self.assertTrue(c.ack.session_present)
        self.assertEqual(c.expect_publish5().payload, b'queued')
        self.bye(c)
        time.sleep(3.5)
        c = self.raw5(cid, clean=False, props=[(P_SESSION_EXPIRY, 2)])
        self.assertFalse(c.ack.session_present)

    def assert_session_gone_after(self, name, bye, clean):
        """A session (expiry 60 s) with a subscription ends with DISCONNECT
        (keywords `bye` of self.bye); connecting again with Clean Start
        `clean` finds no session."""
        cid = self.cid(name)
        c = self.raw5(cid, props=[(P_SESSION_EXPIRY, 60)])
        c.subscribe5([(self.topic(), 1)])
        self.bye(c, **bye)
        c = self.raw5(cid, clean=clean, props=[(P_SESSION_EXPIRY, 60)])
        self.assertFalse(c.ack.session_present)

    def test_clean_start_discards_the_session(self):
        self.assert_session_gone_after('clean', {}, clean=True)

    def test_disconnect_changes_expiry(self):
        self.assert_session_gone_after('change', {'props': [(P_SESSION_EXPIRY, 0)]},
                                       clean=False)

    def test_311_session_uses_session_expiry_setting(self):
        cid = self.cid('old')
        c = self.raw_connected(cid, clean=False)
        c.disconnect()
        c = self.raw()
        self.assertTrue(c.connect(cid, clean=False).session_present)
        c.disconnect()


@skip_on_mosquitto()
class Mqtt5SessionRestartTest(OwnBrokers, Base):
    def test_session_expiry_across_restart(self):
        b = self.start_broker()
        t = self.topic()
        kept, short = self.cid('kept'), self.cid('short')
        for cid, exp in ((kept, 120), (short, 2)):
            c = self.raw5(cid, props=[(P_SESSION_EXPIRY, exp)], port=b.port)
            c.subscribe5([(t, 1)])
            self.bye(c)
        pub = self.raw5(port=b.port)
        pub.publish5(t, 'while-away', 1, props=[(mqttraw.P_CONTENT_TYPE, 'text/plain')])
        pub.close()
        b.restart()
        # 2 s from the bye, never earlier: the store counts from the whole
        # second rounded up, and expiry is checked every second
        time.sleep(4.1)
        c = self.raw5(kept, clean=False, props=[(P_SESSION_EXPIRY, 120)], port=b.port)
        self.assertTrue(c.ack.session_present)
        m = c.expect_publish5()
        self.assertEqual((m.payload, m.prop(mqttraw.P_CONTENT_TYPE)), (b'while-away', 'text/plain'))
        c = self.raw5(short, clean=False, props=[(P_SESSION_EXPIRY, 2)], port=b.port)
        self.assertFalse(c.ack.session_present)

    def test_expired_while_stopped(self):
        b = self.start_broker()
        cid = self.cid('stopped')
        c = self.raw5(cid, props=[(P_SESSION_EXPIRY, 1)], port=b.port)
        c.subscribe5([(self.topic(), 1)])
        self.bye(c)
        b.stop(keep=True)
        time.sleep(2.2)
        b.start()
        b.wait_log(r'1 sessions expired while petreld was stopped')
        c = self.raw5(cid, clean=False, props=[(P_SESSION_EXPIRY, 1)], port=b.port)
        self.assertFalse(c.ack.session_present)


@skip_on_mosquitto()
class Mqtt5WillTest(Base):

    def watch(self):
        w = self.raw5()
        w.subscribe5([(self.topic('#'), 1)])
        return w

    def test_will_delay(self):
        w = self.watch()
        c = self.raw5(self.cid('delay'), props=[(P_SESSION_EXPIRY, 30)],
                      will=(self.topic('w'), 'late', 1, False), will_props=[(P_WILL_DELAY, 2)])
        t0 = time.monotonic()
        c.close()
        w.expect_nothing(1.2)
        m = w.expect_publish5(timeout=3)
        self.assertEqual(m.payload, b'late')
        self.assertGreater(time.monotonic() - t0, 1.8)

    def test_will_cancelled_by_reconnect(self):
        w = self.watch()
        cid = self.cid('back')
        c = self.raw5(cid, props=[(P_SESSION_EXPIRY, 30)],
                      will=(self.topic('w'), 'never', 1, False), will_props=[(P_WILL_DELAY, 2)])
        c.close()
        time.sleep(0.5)
        self.raw5(cid, clean=False, props=[(P_SESSION_EXPIRY, 30)])
        w.expect_nothing(2.5)

    def test_will_sent_when_session_ends_first(self):
        w = self.watch()
        c = self.raw5(self.cid('ends'), props=[(P_SESSION_EXPIRY, 1)],
                      will=(self.topic('w'), 'ended', 1, False), will_props=[(P_WILL_DELAY, 60)])
        c.close()
        m = w.expect_publish5(timeout=4)
        self.assertEqual(m.payload, b'ended')

    def test_will_without_session_is_not_delayed(self):
        w = self.watch()
        c = self.raw5(self.cid('nosess'), will=(self.topic('w'), 'now', 1, False),
                      will_props=[(P_WILL_DELAY, 60)])
        c.close()
        self.assertEqual(w.expect_publish5(timeout=2).payload, b'now')

    def test_disconnect_0x04_publishes_will(self):
        w = self.watch()
        c = self.raw5(self.cid('with-will'), will=(self.topic('w'), 'asked', 0, False))
        self.bye(c, reason=0x04)
        self.assertEqual(w.expect_publish5(timeout=2).payload, b'asked')

    def test_normal_disconnect_discards_will(self):
        w = self.watch()
        c = self.raw5(self.cid('normal'), will=(self.topic('w'), 'no', 0, False))
        self.bye(c, reason=0)
        w.expect_nothing(0.5)

    def test_protocol_error_publishes_will(self):
        w = self.watch()
        c = self.raw5(self.cid('err'), will=(self.topic('w'), 'err', 0, False))
        c.send(mqttraw.connect5_packet('again'))
        self.assertEqual(c.expect_disconnect().rc, 0x82)
        self.assertEqual(w.expect_publish5(timeout=2).payload, b'err')

    def test_will_message_expiry_starts_when_published(self):
        w = self.watch()
        c = self.raw5(self.cid('wexp'), props=[(P_SESSION_EXPIRY, 30)],
                      will=(self.topic('w'), 'fresh', 1, False),
                      will_props=[(P_WILL_DELAY, 2), (mqttraw.P_MESSAGE_EXPIRY, 1)])
        c.close()
        m = w.expect_publish5(timeout=4)
        self.assertEqual(m.payload, b'fresh')
        self.assertEqual(m.prop(mqttraw.P_MESSAGE_EXPIRY), 1)


@skip_on_mosquitto()
class Mqtt5WillRestartTest(OwnBrokers, Base):
    """A will waiting for its Will Delay Interval is stored with its session:
    it survives a restart and goes out when due, unless the client resumes
    the session first."""

    def watch(self, b):
        w = self.raw5(port=b.port)
        w.subscribe5([(self.topic('#'), 1)])
        return w

    def drop_with_will(self, b, name, payload, delay=3, expiry=60):
        cid = self.cid(name)
        c = self.raw5(cid, props=[(P_SESSION_EXPIRY, expiry)], port=b.port,
                      will=(self.topic(name), payload, 1, False),
                      will_props=[(P_WILL_DELAY, delay),
                                  (mqttraw.P_CONTENT_TYPE, 'text/plain'),
                                  (mqttraw.P_MESSAGE_EXPIRY, 30)])
        c.close()
        return cid, time.monotonic()

    def expect_will_on_time(self, w, payload, t0, delay=3):
        w.expect_nothing(max(0.0, t0 + delay - 0.6 - time.monotonic()))
        m = w.expect_publish5(timeout=max(0.5, t0 + delay + 1.5 - time.monotonic()))
        self.assertEqual((m.payload, m.prop(mqttraw.P_CONTENT_TYPE)), (payload, 'text/plain'))
        # the Message Expiry Interval started when it was published
        self.assertGreaterEqual(m.prop(mqttraw.P_MESSAGE_EXPIRY), 29)
        self.assertGreater(time.monotonic() - t0, delay - 0.6)

    def persistent_watch(self, b):
        """A watcher whose session outlives the restart: a will that falls
        due while the broker is still starting (a slow machine) is queued for
        it rather than published before anyone could subscribe.  Returns a
        function that reconnects it."""
        wid = self.cid('watch')
        w = self.raw5(wid, props=[(P_SESSION_EXPIRY, 300)], port=b.port)
        w.subscribe5([(self.topic('#'), 1)])
        w.close()

        def again():
            w = self.raw5(wid, props=[(P_SESSION_EXPIRY, 300)], port=b.port, clean=False)
            self.assertTrue(w.ack.session_present)
            return w
        return again

    def test_will_survives_restart(self):
        b = self.start_broker()
        watch = self.persistent_watch(b)
        _, t0 = self.drop_with_will(b, 'term', 'after-restart')
        time.sleep(0.3)  # the broker has seen the client go
        b.restart()
        self.expect_will_on_time(watch(), b'after-restart', t0)

    def test_will_survives_crash(self):
        b = self.start_broker()
        watch = self.persistent_watch(b)
        _, t0 = self.drop_with_will(b, 'crash', 'after-crash')
        time.sleep(1.0)
        b.crash_restart()
        self.expect_will_on_time(watch(), b'after-crash', t0)

    def test_resume_after_restart_cancels_will(self):
        b = self.start_broker()
        back, t0 = self.drop_with_will(b, 'back', 'never')
        self.drop_with_will(b, 'gone', 'gone-for-good')
        time.sleep(0.3)
        b.crash_restart()
        w = self.watch(b)
        c = self.raw5(back, clean=False, props=[(P_SESSION_EXPIRY, 60)], port=b.port)
        self.assertTrue(c.ack.session_present)
        # only the client that did not come back has its will published
        m = w.expect_publish5(timeout=max(0.5, t0 + 4.5 - time.monotonic()))
        self.assertEqual(m.payload, b'gone-for-good')
        w.expect_nothing(1.0)
        # and the cancellation is durable: no will after another restart
        c.close()
        time.sleep(0.3)
        b.restart()
        w = self.watch(b)
        w.expect_nothing(3.5)

    def test_session_expired_while_stopped_publishes_will(self):
        b = self.start_broker()
        # a persistent watcher: the will goes out before anyone can connect
        w = self.raw(port=b.port)
        wid = self.cid('watcher')
        w.connect(wid, clean=False)
        w.subscribe([(self.topic('#'), 1)])
        w.disconnect()
        cid, _ = self.drop_with_will(b, 'ended', 'session-ended', delay=60, expiry=1)
        time.sleep(0.3)
        b.stop(keep=True)
        time.sleep(2.2)
        b.start()
        w = self.raw(port=b.port)
        self.assertTrue(w.connect(wid, clean=False).session_present)
        m = w.expect_publish()
        self.assertEqual((m.topic, bytes(m.payload)), (self.topic('ended'), b'session-ended'))
        c = self.raw5(cid, clean=False, props=[(P_SESSION_EXPIRY, 1)], port=b.port)
        self.assertFalse(c.ack.session_present)


if __name__ == '__main__':
    import unittest
    unittest.main()
