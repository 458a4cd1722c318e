"""Shared subscription groups under the ACL (issue #14 item 13): with
`share` rules in the ACL, a tenant joins only the groups its rules name,
so it cannot take part of another tenant's $share/group/filter messages,
though it may read the filter itself.  petreld only."""

import signal

import harness
from harness import BrokerTestCase, skip_on_mosquitto
import mqttraw
from mqttraw import Raw5
import security_helpers as sec
from test_shared_subs import drain

REFUSED = 0x80

ACL = """user alice
topic read jobs/#

user bob
topic read jobs/#

user pub
topic write #

# each tenant's groups start with its user name
pattern share %u-*
"""
USERS = {'alice': 'a1ice', 'bob': 'b0b', 'pub': 'pub'}


@skip_on_mosquitto('petreld ACL file')
class AclShareTest(BrokerTestCase):

    @classmethod
    def setUpClass(cls):
        cls.files = sec.Files()
        cls.acl = cls.files.write('acl', ACL)
        cls.broker_settings = {'password_file': cls.files.passwd(USERS), 'acl_file': cls.acl}
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.files.close()

    def user(self, name, suffix='', v5=False):
        c = Raw5(self.port) if v5 else mqttraw.RawClient(self.port)
        self._clients.append(c)
        cid = '%s-%s%s' % (name, self.id().rsplit('.', 1)[-1][-20:], suffix)
        (c.connect5 if v5 else c.connect)(cid, username=name, password=USERS[name])
        return c

    def test_other_tenants_group_refused(self):
        alice = self.user('alice')
        alice.subscribe([('$share/alice-workers/jobs/#', 1)], expect_granted=[1])
        bob = self.user('bob')
        # bob may read jobs/# and join his own groups, not alice's
        self.assertEqual(bob.subscribe([('$share/alice-workers/jobs/#', 1),
                                        ('$share/bob-workers/jobs/#', 1),
                                        ('$share/workers/jobs/#', 1),
                                        ('jobs/plain', 1)]),
                         [REFUSED, 1, REFUSED, 1])
        self.assertIsNotNone(self.broker.wait_log(
            r"subscription to '\$share/alice-workers/jobs/#' refused: not allowed by the ACL"))
        # so every message of alice's group goes to alice, each once, and
        # bob's own group gets its copy
        pub = self.user('pub')
        for i in range(6):
            pub.publish('jobs/%d' % i, b'm%d' % i, qos=1)
        got = drain([alice], 6)
        self.assertEqual(got, [[b'm%d' % i for i in range(6)]])
        got = drain([bob], 6)
        self.assertEqual(sorted(got[0]), sorted([b'm%d' % i for i in range(6)]))

    def test_mqtt5_not_authorized(self):
        c = self.user('bob', v5=True)
        ack = c.subscribe5([('$share/alice-x/jobs/#', 1), ('$share/bob-x/jobs/#', 1)])
        self.assertEqual(ack.codes, [0x87, 1])

    def test_reload_without_share_rules_opens_groups(self):
        bob = self.user('bob')
        bob.subscribe([('$share/alice-r/jobs/#', 1)], expect_granted=[REFUSED])
        self.files.write('acl', ACL.replace('pattern share %u-*\n', ''))
        try:
            self.broker.signal(signal.SIGHUP)
            self.assertIsNotNone(self.broker.wait_log(r'SIGHUP: ACL file .*: 3 rules'))
            bob.subscribe([('$share/alice-r/jobs/#', 1)], expect_granted=[1])
        finally:
            self.files.write('acl', ACL)
            self.broker.signal(signal.SIGHUP)
            self.assertIsNotNone(self.broker.wait_log(r'SIGHUP: ACL file .*: 4 rules'))


if __name__ == '__main__':
    harness.main()
