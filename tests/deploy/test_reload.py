"""test_reload.py - `petreld --reload`, the unit's ExecReload=, outside
systemd: it signals the petreld that holds the data directory, waits for
the reload, prints what was reloaded and exits 0; a configuration file with
an error makes it exit 1 with the error (the broker keeps running on its
settings); with no petreld on the directory it exits 1 at once."""

import re
import time
import unittest

from deploytest import PETRELD, harness, main, mqttraw, run


@unittest.skipIf(harness.IS_MOSQUITTO, 'petreld only')
class Reload(unittest.TestCase):

    def setUp(self):
        self.broker = harness.Broker().start()
        self.addCleanup(self.broker.stop)

    def reload(self, *args):
        return run([PETRELD, '--data-dir', self.broker.data_dir, '--reload'] + list(args),
                   timeout=40)

    def set_log_level(self, level):
        with open(self.broker.conf_path) as f:
            conf = f.read()
        with open(self.broker.conf_path, 'w') as f:
            f.write(re.sub(r'(?m)^log_level = .*$', 'log_level = ' + level, conf))

    def test_reload_prints_what_was_reloaded(self):
        self.set_log_level('warning')
        start = time.monotonic()
        r = self.reload()
        took = time.monotonic() - start
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stderr, '')
        pid = self.broker.pid
        self.assertEqual(r.stdout.splitlines(), [
            'petreld %d reloaded (reload 1, 0 errors):' % pid,
            'notice SIGHUP: configuration reloaded from %s (log_level warning)'
            % self.broker.conf_path,
            'notice SIGHUP: no password_file: clients are anonymous',
            'notice SIGHUP: no acl_file: every client may do everything',
        ])
        self.assertLess(took, 5)
        # Lines at notice level are reported even when the new log level
        # keeps them out of the log.
        self.assertNotIn('SIGHUP: no acl_file', self.broker.log_text())
        # The next reload is the next one, and its level is in force at once.
        self.set_log_level('info')
        r = self.reload()
        self.assertRegex(r.stdout, r'^petreld %d reloaded \(reload 2, 0 errors\):' % pid)
        self.assertIn('SIGHUP: no acl_file', self.broker.log_text())
        c = mqttraw.RawClient(self.broker.port)
        c.connect('after-reload')
        c.subscribe([('r/#', 1)])
        c.disconnect()
        self.assertTrue(self.broker.wait_log(r'\binfo\b.*client after-reload', 5))

    def test_broken_file_fails_and_broker_keeps_running(self):
        with open(self.broker.conf_path, 'a') as f:
            f.write('no_such_setting = 1\n')
        r = self.reload()
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r'reload 1, 1 error\):\nerror SIGHUP: reload failed, keeping '
                                   r'the current settings: \S+:\d+: unknown setting')
        self.assertIn('the reload logged 1 error;', r.stderr)
        self.assertTrue(self.broker.alive())
        c = mqttraw.RawClient(self.broker.port)
        c.connect('still-serving')
        c.disconnect()

    def test_no_broker(self):
        self.broker.stop(keep=True)
        r = self.reload()
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r'no petreld runs on .*petreld\.lock is not locked')
        r = run([PETRELD, '--data-dir', self.broker.data_dir + '/missing', '--reload'])
        self.assertEqual(r.returncode, 1)
        self.assertIn('no petreld runs on', r.stderr)
        self.assertTrue(re.search(r'No such file', r.stderr), r.stderr)


if __name__ == '__main__':
    main()
