"""ACL: denied publishes (acknowledged and dropped), denied subscriptions
(0x80), messages filtered on every delivery (live, retained on subscribe,
wills), %c/%u patterns, sessions that change hands, and SIGHUP reloads that
apply to connected clients.  petreld only."""

import re
import signal
import time

import harness
from harness import BrokerTestCase, skip_on_mosquitto
import mqttraw
import security_helpers as sec

DENIED = 0x80

ACL = """# anonymous clients
topic read public/#
topic subscribe #

user admin
topic readwrite #
topic read $SYS/#

user alice
topic readwrite alice/#
topic deny alice/secret/#
topic subscribe firehose/#
topic read firehose/alice/#
topic write firehose/#
topic write wills/alice

user bob
topic readwrite bob/#
topic write firehose/#

pattern readwrite clients/%c/#
pattern read users/%u/inbox
"""

USERS = {'admin': 'adm1n', 'alice': 'a1ice', 'bob': 'b0b'}


def expect_only_queued(test, alice, cid, topic, payload):
    """The raw client `alice` logs in as alice to her persistent session
    `cid`, which must be there, and gets exactly one queued message."""
    test.assertTrue(alice.connect(cid, clean=False, username='alice',
                                  password=USERS['alice']).session_present)
    m = alice.expect_publish()
    test.assertEqual((m.topic, bytes(m.payload)), (topic, payload))
    alice.expect_nothing(0.5)
    alice.disconnect()


@skip_on_mosquitto('petreld ACL file')
class AclTest(sec.AclBrokerTestCase):
    acl_text = ACL
    users = USERS

    def user(self, name, client_id=None, **kw):
        c = self.raw()
        c.connect(client_id or '%s-%s' % (name, self.id().rsplit('.', 1)[-1][-20:]),
                  username=name, password=USERS[name], **kw)
        return c

    def admin_watch(self, *filters):
        a = self.user('admin', client_id='admin-watch-' + self.id().rsplit('.', 1)[-1][-20:])
        a.subscribe([(f, 1) for f in filters])
        return a

    def test_publish_denied_is_acknowledged_and_dropped(self):
        a = self.admin_watch('#')
        alice = self.user('alice')
        alice.publish('bob/x', b'not hers', qos=1)        # PUBACK all the same
        alice.publish('bob/y', b'not hers', qos=2)        # PUBREC, PUBREL, PUBCOMP
        alice.publish('alice/secret/x', b'denied', qos=0)
        alice.publish('alice/x', b'hers', qos=1)
        p = a.expect_publish()
        self.assertEqual((p.topic, p.payload), ('alice/x', b'hers'))
        a.expect_nothing(0.3)
        # the log line is rate-limited: an earlier test may have taken it
        self.assertTrue(self.broker.wait_log(r"publish to '[^']*' denied by the ACL", 3))

    def test_subscribe_denied_gets_0x80(self):
        alice = self.user('alice')
        granted = alice.subscribe([('alice/#', 1), ('bob/#', 1), ('alice/secret/#', 0),
                                   ('firehose/#', 1), ('#', 0), ('alice/+/x', 2)])
        self.assertEqual(granted, [1, DENIED, DENIED, 1, DENIED, 2])
        anon = self.raw_connected('anon-sub')
        self.assertEqual(anon.subscribe([('#', 0), ('$SYS/#', 0)]), [0, DENIED])

    def test_read_checked_per_message(self):
        alice = self.user('alice')
        alice.subscribe([('firehose/#', 0), ('alice/#', 0)])
        bob = self.user('bob')
        bob.publish('firehose/bob/1', b'for bob only', qos=1)
        bob.publish('firehose/alice/1', b'for alice', qos=1)
        admin = self.user('admin')
        admin.publish('alice/secret/1', b'denied inside her tree', qos=1)
        admin.publish('alice/2', b'hers', qos=1)
        got = [(alice.expect_publish().topic) for _ in range(2)]
        self.assertEqual(sorted(got), ['alice/2', 'firehose/alice/1'])
        alice.expect_nothing(0.3)

    def test_retained_filtered_on_subscribe(self):
        admin = self.user('admin')
        for t in ('public/r', 'private/r', 'alice/secret/r', 'alice/r'):
            admin.publish(t, ('retained ' + t).encode(), qos=1, retain=True)
        anon = self.raw_connected('anon-retained')
        anon.subscribe([('#', 0)])
        p = anon.expect_publish()
        self.assertEqual((p.topic, p.retain), ('public/r', True))
        anon.expect_nothing(0.3)
        alice = self.user('alice')
        alice.subscribe([('alice/#', 0)])
        p = alice.expect_publish()
        self.assertEqual((p.topic, p.retain), ('alice/r', True))
        alice.expect_nothing(0.3)

    def test_wills(self):
        a = self.admin_watch('wills/#')
        anon = self.raw_connected('anon-wills')
        anon.subscribe([('wills/#', 0)])
        alice = self.user('alice', will=('wills/alice', b'alice gone', 1, False))
        alice.close()                                   # abnormal end: will
        p = a.expect_publish(timeout=3)
        self.assertEqual((p.topic, p.payload), ('wills/alice', b'alice gone'))
        anon.expect_nothing(0.5)                        # not readable there
        # a will the client could not publish itself: refused at CONNECT
        c = self.raw()
        ack = c.connect('bob-bad-will', username='bob', password=USERS['bob'],
                        will=('wills/alice', b'forged', 0, False), expect_rc=5)
        self.assertEqual(ack.rc, 5)
        self.assertTrue(c.wait_closed(3))
        a.expect_nothing(0.3)

    def test_patterns(self):
        a = self.admin_watch('clients/#', 'users/#')
        bob = self.user('bob', client_id='dev1')
        bob.publish('clients/dev1/state', b'mine', qos=1)
        bob.publish('clients/dev2/state', b'not mine', qos=1)
        p = a.expect_publish()
        self.assertEqual(p.topic, 'clients/dev1/state')
        a.expect_nothing(0.3)
        self.assertEqual(bob.subscribe([('clients/dev1/#', 0), ('clients/#', 0),
                                        ('users/bob/inbox', 0), ('users/+/inbox', 0)]),
                         [0, DENIED, 0, DENIED])
        admin = self.user('admin')
        admin.publish('users/alice/inbox', b'for alice', qos=1)
        admin.publish('users/bob/inbox', b'for bob', qos=1)
        admin.publish('clients/dev1/cmd', b'to dev1', qos=1)
        got = sorted(bob.expect_publish().topic for _ in range(2))
        self.assertEqual(got, ['clients/dev1/cmd', 'users/bob/inbox'])
        bob.expect_nothing(0.3)

    def test_ids_cannot_widen_patterns(self):
        # `pattern readwrite clients/%c/#` must give client "a/b" nothing of
        # client "a", and client "+" nothing of anyone.
        a = self.admin_watch('clients/#')
        widening = []
        for cid in ('a/b', '+', '#', 'x/+'):
            c = self.raw_connected(cid)                 # anonymous, loopback
            c.publish('clients/a/b/x', b'widened', qos=1)
            c.publish('clients/x/y', b'widened', qos=1)
            # anonymous clients may subscribe anywhere (`topic subscribe #`),
            # but reading still needs a rule
            self.assertEqual(c.subscribe([('clients/#', 0)]), [0])
            widening.append(c)
        a.expect_nothing(0.3)
        owner = self.raw_connected('a')                  # the real owner of clients/a/#
        owner.publish('clients/a/b/x', b'owner', qos=1)
        self.assertEqual(a.expect_publish().payload, b'owner')
        for c in widening:
            c.expect_nothing(0.1)

    def test_session_does_not_pass_to_another_user(self):
        alice = self.user('alice', client_id='shared-id', clean=False)
        alice.subscribe([('alice/queued', 1)])
        alice.disconnect()
        admin = self.user('admin')
        admin.publish('alice/queued', b'for alice only', qos=1)
        # bob knows alice's client id: he is refused (issue #14 item 6),
        # with a clean session too, and her session is untouched
        for clean in (False, True):
            bob = self.raw()
            bob.connect('shared-id', clean=clean, username='bob', password=USERS['bob'],
                        expect_rc=0x05)
            self.assertTrue(bob.wait_closed(3))
        self.assertTrue(self.broker.wait_log(
            r"client id 'shared-id' belongs to another user's session \(user 'bob'\)", 3))
        alice = self.raw()
        self.assertTrue(alice.connect('shared-id', clean=False, username='alice',
                                      password=USERS['alice']).session_present)
        m = alice.expect_publish()
        self.assertEqual(bytes(m.payload), b'for alice only')
        alice.disconnect()

    def test_no_takeover_by_another_user(self):
        """alice is connected; bob connects with her client id: bob is
        refused and alice's connection stays (3.1.1 0x05, 5.0 0x87)."""
        alice = self.user('alice', client_id='online-id', clean=False)
        alice.subscribe([('alice/x', 1)])
        bob = self.raw()
        bob.connect('online-id', username='bob', password=USERS['bob'], expect_rc=0x05)
        self.assertTrue(bob.wait_closed(3))
        bob5 = mqttraw.Raw5(self.port)
        self._clients.append(bob5)
        ack = bob5.connect5('online-id', username='bob', password=USERS['bob'], expect_rc=0x87)
        self.assertEqual(ack.rc, 0x87)
        alice.ping()
        admin = self.user('admin')
        admin.publish('alice/x', b'still hers', qos=1)
        self.assertEqual(bytes(alice.expect_publish().payload), b'still hers')
        # the owner herself may take it over
        again = self.user('alice', client_id='online-id', clean=False)
        self.assertTrue(alice.wait_closed(3))
        again.ping()
        again.disconnect()


@skip_on_mosquitto('petreld ACL and the store')
class AclRestartTest(BrokerTestCase):
    """A stored session keeps its owner across a restart: the ACL applies
    to it while it is offline, and only its owner can resume it."""

    def test_owner_survives_restart(self):
        files = sec.Files()
        self.addCleanup(files.close)
        settings = {'password_file': files.passwd(USERS), 'acl_file': files.write('acl', ACL)}
        b = self.start_broker(settings)
        alice = self.raw(b.port)
        alice.connect('kept-id', clean=False, username='alice', password=USERS['alice'])
        alice.subscribe([('firehose/#', 1)])
        alice.disconnect()
        b.restart()
        admin = self.raw(b.port)
        admin.connect('admin-pub', username='admin', password=USERS['admin'])
        admin.publish('firehose/bob/x', b'not for alice', qos=1)
        admin.publish('firehose/alice/x', b'for alice', qos=1)
        admin.disconnect()
        bob = self.raw(b.port)
        bob.connect('kept-id', clean=False, username='bob', password=USERS['bob'],
                    expect_rc=0x05)
        self.assertTrue(bob.wait_closed(3), "bob got alice's session after a restart")
        expect_only_queued(self, self.raw(b.port), 'kept-id', 'firehose/alice/x', b'for alice')


@skip_on_mosquitto('petreld ACL reload')
class AclReloadTest(sec.AclBrokerTestCase):
    acl_text = ACL
    users = USERS
    extra_settings = {'sys_interval': 1}

    def hup(self, pattern):
        n = len(re.findall(pattern, self.broker.log_text()))
        self.broker.signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if len(re.findall(pattern, self.broker.log_text())) > n:
                return
            time.sleep(0.02)
        self.fail('no %r after SIGHUP\n%s' % (pattern, self.broker.tail()))

    def test_reload_applies_to_connected_clients(self):
        admin = self.raw()
        admin.connect('admin-r', username='admin', password=USERS['admin'])
        admin.subscribe([('shared/#', 0)])
        alice = self.raw()
        alice.connect('alice-r', username='alice', password=USERS['alice'])
        anon = self.raw_connected('anon-r')
        anon.subscribe([('#', 0)])
        alice.publish('shared/x', b'before', qos=1)
        admin.expect_nothing(0.3)

        # alice may now write shared/#; anonymous clients may no longer read
        new = ACL.replace('topic write wills/alice',
                          'topic write wills/alice\ntopic write shared/#')
        new = new.replace('topic read public/#\n', '')
        self.files.write('acl', new)
        self.hup(r'SIGHUP: ACL file .*: \d+ rules')
        alice.publish('shared/x', b'after', qos=1)
        self.assertEqual(admin.expect_publish().payload, b'after')
        admin.publish('public/news', b'unreadable now', qos=1)
        anon.expect_nothing(0.5)

        # a broken file keeps the rules in force, and says where it broke
        self.files.write('acl', 'topic read a\nuser x\nbogus line\n')
        self.hup(r'ACL file not reloaded')
        self.assertRegex(self.broker.log_text(),
                         r'ACL file not reloaded, the previous rules stay: %s:3: unknown '
                         r'keyword' % re.escape(self.acl))
        alice.publish('shared/y', b'still allowed', qos=1)
        self.assertEqual(admin.expect_publish().payload, b'still allowed')
        alice.ping()
        anon.ping()                                     # nobody was dropped

        # the counters say what the ACL refused
        admin.subscribe([('$SYS/broker/acl/#', 0)])
        seen = {}
        deadline = time.monotonic() + 5     # values are published every second
        while time.monotonic() < deadline and not (
                seen.get('$SYS/broker/acl/denied/publish', 0) >= 1 and
                seen.get('$SYS/broker/acl/denied/read', 0) >= 1):
            p = admin.expect_publish(timeout=3)
            if p.topic.startswith('$SYS/broker/acl/'):
                seen[p.topic] = int(p.payload)
        self.assertGreaterEqual(seen.get('$SYS/broker/acl/denied/publish', 0), 1, seen)
        self.assertGreaterEqual(seen.get('$SYS/broker/acl/denied/read', 0), 1, seen)

        # restore for other tests
        self.files.write('acl', ACL)
        self.hup(r'SIGHUP: ACL file .*: \d+ rules')

    def test_will_dropped_when_reload_denies_it(self):
        admin = self.raw()
        admin.connect('admin-w', username='admin', password=USERS['admin'])
        admin.subscribe([('wills/#', 0)])
        alice = self.raw()
        alice.connect('alice-w', username='alice', password=USERS['alice'],
                      will=('wills/alice', b'gone', 0, False))
        self.files.write('acl', ACL.replace('topic write wills/alice\n', ''))
        self.hup(r'SIGHUP: ACL file .*: \d+ rules')
        self.assertTrue(self.broker.wait_log(r"will on 'wills/alice' dropped", 3))
        alice.close()
        admin.expect_nothing(0.5)
        self.files.write('acl', ACL)
        self.hup(r'SIGHUP: ACL file .*: \d+ rules')

    def test_delayed_will_checked_when_published(self):
        """A 5.0 will waiting for its Will Delay Interval when a reload
        revokes it is not published (issue #14 item 8)."""
        admin = self.raw()
        admin.connect('admin-dw', username='admin', password=USERS['admin'])
        admin.subscribe([('wills/#', 0)])
        alice = mqttraw.Raw5(self.port)
        self._clients.append(alice)
        alice.send(mqttraw.connect5_packet(
            'alice-dw', clean=True, username='alice', password=USERS['alice'],
            props=[(mqttraw.P_SESSION_EXPIRY, 60)],
            will=('wills/alice', b'late', 0, False), will_props=[(mqttraw.P_WILL_DELAY, 2)]))
        self.assertEqual(alice.expect5(mqttraw.CONNACK).rc, 0)
        alice.close()                      # abnormal end: the will waits 2 s
        time.sleep(0.3)
        self.files.write('acl', ACL.replace('topic write wills/alice\n', ''))
        self.hup(r'SIGHUP: ACL file .*: \d+ rules')
        admin.expect_nothing(3.0)
        self.assertTrue(self.broker.wait_log(
            r"client alice-dw: will on 'wills/alice' dropped: the ACL in force denies it", 3))
        self.files.write('acl', ACL)
        self.hup(r'SIGHUP: ACL file .*: \d+ rules')

    def test_queued_messages_checked_again_after_reload(self):
        # alice's offline queue holds a message she could read when it came;
        # a reload takes that right away before she returns
        alice = self.raw()
        alice.connect('alice-q', clean=False, username='alice', password=USERS['alice'])
        alice.subscribe([('alice/#', 1)])
        alice.disconnect()
        admin = self.raw()
        admin.connect('admin-q', username='admin', password=USERS['admin'])
        admin.publish('alice/old', b'readable when queued', qos=1)
        admin.publish('alice/kept', b'still readable', qos=1)
        self.files.write('acl', ACL.replace('topic deny alice/secret/#',
                                            'topic deny alice/secret/#\ntopic deny alice/old'))
        self.hup(r'SIGHUP: ACL file .*: \d+ rules')
        expect_only_queued(self, self.raw(), 'alice-q', 'alice/kept', b'still readable')
        admin.disconnect()
        self.files.write('acl', ACL)
        self.hup(r'SIGHUP: ACL file .*: \d+ rules')


if __name__ == '__main__':
    harness.main()
