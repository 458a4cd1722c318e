"""Log injection (issue #14 item 14): client ids, user names, topics, share
names and will topics that carry line breaks, escape sequences and forged
log lines reach the log escaped, so every line of the log is one of
petreld's own.  petreld only."""

import re

import harness
from harness import BrokerTestCase, skip_on_mosquitto
import security_helpers as sec

# What an attacker would like to see as a line of its own.
FORGED = '\n2026-01-01T00:00:00.000Z notice client FORGED connected from 6.6.6.6'
# Terminal control: ESC [ 2 J and the C1 CSI (U+009B).
TERMINAL = '\x1b[2J\u009b2J\r'
LINE = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (error|warning|notice|info|debug) ')

ACL = """topic readwrite ok/#
topic read $SYS/#
"""


@skip_on_mosquitto('petreld log format')
class LogInjectionTest(BrokerTestCase):

    @classmethod
    def setUpClass(cls):
        cls.files = sec.Files()
        cls.broker_settings = {'acl_file': cls.files.write('acl', ACL), 'log_level': 'info'}
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.files.close()

    def assert_log_clean(self, expect):
        """Waits for the lines `expect` (regexes) and checks that no line of
        the log is foreign."""
        for pattern in expect:
            self.assertIsNotNone(self.broker.wait_log(pattern), pattern)
        text = self.broker.run_log_text()
        for line in text.split('\n'):
            if not line:
                continue
            self.assertRegex(line, LINE, 'a line not written by petreld:\n%r' % line)
            self.assertNotIn('\x1b', line)
            self.assertNotIn('\u009b', line)
            self.assertNotIn('\r', line)
            self.assertNotIn('\ufffd', line, 'bytes that are not UTF-8: %r' % line)
        self.assertNotIn('FORGED connected', re.sub(r'\\x0a2026-01-01T[^ ]* notice client '
                                                    r'FORGED connected', '', text))

    def test_network_strings_are_escaped(self):
        cid = 'id' + FORGED + TERMINAL
        c = self.raw()
        c.connect(cid, will=('ok/will' + FORGED, b'w', 0, False))
        c.subscribe([('ok/sub' + FORGED + TERMINAL, 0),
                     ('$share/grp' + FORGED + '/ok/shared', 0)])
        c.unsubscribe(['ok/sub' + FORGED + TERMINAL])
        c.publish('denied' + FORGED, b'x', qos=1)           # the ACL refuses it
        c.publish('$SYS/forged' + FORGED, b'x', qos=1)      # reserved
        c.close()                                            # the will goes out
        # a user name: no such user section, so its will is refused, and
        # the refusal names the user
        r = self.raw()
        r.connect('u', username='user' + FORGED + TERMINAL, will=('ok/w', b'w', 0, False),
                  expect_rc=5)
        self.assert_log_clean([r'subscribed to .*shared', r'unsubscribed from',
                               r'denied by the ACL', r'\$SYS is reserved',
                               r'publishing will of', r'connected from',
                               r"will topic not allowed by the ACL \(user 'user\\x0a"])
        # the escaped forms are there, so the strings were logged at all
        text = self.broker.run_log_text()
        self.assertIn('ok/sub\\x0a2026-01-01T00:00:00.000Z notice client FORGED', text)
        self.assertIn('\\x1b[2J\\u009b2J\\x0d', text)
        self.assertIn('$share/grp\\x0a2026', text)

    def test_long_topic_is_cut(self):
        c = self.raw()
        c.connect('long-topic')
        c.publish('$SYS/' + 'x' * 5000, b'x', qos=1)
        m = self.broker.wait_log(r"publish to '(\$SYS/x+)\.\.\.' ignored")
        self.assertIsNotNone(m, 'no cut topic in the log')
        self.assertLess(len(m.group(1)), 300)
        c.disconnect()


if __name__ == '__main__':
    harness.main()
