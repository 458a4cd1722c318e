"""test_install.py - `meson install --destdir` into a temporary directory
puts every file an operator needs where the FHS says (under this build's
prefix): petreld in sbin, petrel in bin, libpetrel with its header and
pkg-config file, the systemd unit, the configuration file (made from the
example, and kept on reinstall), the four manual pages and the guides.  The
installed programs run.  (A program compiled against the installed
pkg-config file is built and run by tests/client/test_install.py.)"""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from deploytest import BUILD_ROOT, SOURCE_ROOT, SYSTEMD_NOTIFY, main, run

ANALYZE = shutil.which('systemd-analyze')


def build_options():
    r = run(['meson', 'introspect', '--buildoptions', BUILD_ROOT])
    if r.returncode != 0:
        raise unittest.SkipTest('meson introspect failed: ' + r.stderr[-300:])
    return {o['name']: o['value'] for o in json.loads(r.stdout)}


@unittest.skipUnless(BUILD_ROOT and shutil.which('meson'), 'needs the build directory and meson')
class Install(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='petrel-deploy-install-')
        cls.dest = os.path.join(cls.tmp, 'root')
        cls.opt = build_options()
        cls.first = cls.install()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def install(cls):
        return run(['meson', 'install', '-C', BUILD_ROOT, '--no-rebuild', '--destdir', cls.dest],
                   timeout=150)

    def path(self, dirname, *names):
        """dest + the absolute form of a meson directory option."""
        d = os.path.join(self.opt['prefix'], self.opt.get(dirname, dirname))
        return os.path.join(self.dest + d, *names)

    def test_install_succeeds(self):
        self.assertEqual(self.first.returncode, 0, self.first.stdout + self.first.stderr)

    def test_every_file(self):
        expected = [
            self.path('sbindir', 'petreld'),
            self.path('bindir', 'petrel'),
            self.path('libdir', 'libpetrel.so.0'),
            self.path('libdir', 'libpetrel.so'),
            self.path('libdir', 'pkgconfig', 'petrel.pc'),
            self.path('includedir', 'petrel.h'),
            self.path('sysconfdir', 'petrel', 'petreld.conf'),
            self.path('mandir', 'man8', 'petreld.8'),
            self.path('mandir', 'man5', 'petreld.conf.5'),
            self.path('mandir', 'man1', 'petrel.1'),
            self.path('mandir', 'man3', 'libpetrel.3'),
            self.path('datadir', 'doc', 'petrel', 'operations.md'),
            self.path('datadir', 'doc', 'petrel', 'petreld.conf.example'),
            self.dest + os.path.join(self.opt['prefix'], os.environ['PETREL_UNITDIR'],
                                     'petreld.service'),
        ]
        missing = [p[len(self.dest):] for p in expected if not os.path.isfile(p)]
        self.assertEqual(missing, [])
        for exe in expected[:2]:
            self.assertTrue(os.access(exe, os.X_OK), exe)
        # FHS: nothing outside the prefix, /etc and the unit directory
        allowed = (self.opt['prefix'], '/etc', '/lib/systemd', '/usr/lib/systemd')
        for d, _, files in os.walk(self.dest):
            for f in files:
                p = os.path.join(d, f)[len(self.dest):]
                self.assertTrue(p.startswith(allowed), p)

    def test_configuration_file(self):
        conf = self.path('sysconfdir', 'petrel', 'petreld.conf')
        with open(conf) as f, open(os.path.join(SOURCE_ROOT, 'deploy',
                                                'petreld.conf.example')) as g:
            self.assertEqual(f.read(), g.read())
        # Every setting line is commented out, so the file means the defaults.
        with open(conf) as f:
            live = [l for l in f if l.strip() and not l.lstrip().startswith('#')]
        self.assertEqual(live, [])
        # Reinstalling keeps what the operator changed.
        with open(conf, 'a') as f:
            f.write('max_inflight = 7\n')
        r = self.install()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(conf) as f:
            self.assertTrue(f.read().endswith('max_inflight = 7\n'))

    def test_installed_unit(self):
        unit = self.dest + os.path.join(self.opt['prefix'], os.environ['PETREL_UNITDIR'],
                                        'petreld.service')
        with open(unit) as f:
            text = f.read()
        start = re.search(r'^ExecStart=(\S+) -c (\S+)', text, re.M)
        self.assertEqual(start.group(1), self.path('sbindir', 'petreld')[len(self.dest):])
        self.assertEqual(start.group(2),
                         self.path('sysconfdir', 'petrel', 'petreld.conf')[len(self.dest):])
        self.assertIn('Type=notify' if SYSTEMD_NOTIFY else 'Type=exec', text)
        if not ANALYZE:
            return
        # verify with the man pages checked, against the installed ones
        local = os.path.join(self.tmp, 'unit')
        os.makedirs(local, exist_ok=True)
        with open(os.path.join(local, 'petreld.service'), 'w') as f:
            # ExecStart= and ExecReload= both run petreld
            f.write(text.replace('=%s ' % start.group(1),
                                 '=%s ' % self.path('sbindir', 'petreld')))
        env = dict(os.environ, MANPATH=self.path('mandir'))
        r = run([ANALYZE, 'verify', os.path.join(local, 'petreld.service')], env=env)
        if r.returncode != 0 and 'man' in r.stderr and not shutil.which('man'):
            self.skipTest('man is not installed')
        self.assertEqual((r.returncode, r.stderr.strip()), (0, ''), r.stderr)

    def env_for_installed(self):
        env = dict(os.environ)
        env['LD_LIBRARY_PATH'] = self.path('libdir')
        return env

    def test_installed_petrel_runs(self):
        petrel = self.path('bindir', 'petrel')
        r = run([petrel, '--version'], env=self.env_for_installed())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r'^petrel \d+\.\d+\.\d+')
        r = run(['ldd', petrel], env=self.env_for_installed())
        self.assertIn(self.dest, r.stdout, 'not linked with the installed libpetrel')

    def test_installed_petreld_runs_with_installed_config(self):
        petreld = self.path('sbindir', 'petreld')
        r = run([petreld, '--version'])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r'^petreld \d+\.\d+\.\d+')
        data = os.path.join(self.tmp, 'data')
        log_path = os.path.join(self.tmp, 'petreld.log')
        with open(log_path, 'w') as log:
            p = subprocess.Popen([petreld, '-c', self.path('sysconfdir', 'petrel', 'petreld.conf'),
                                  '--listen', '127.0.0.1:0', '--data-dir', data],
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and p.poll() is None:
                with open(log_path) as f:
                    if re.search(r'\bready\b', f.read()):
                        break
                time.sleep(0.05)
            with open(log_path) as f:
                text = f.read()
            self.assertRegex(text, r'\bready\b', text)
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(20), 0, text)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(5)

    @unittest.skipUnless(shutil.which('man'), 'man not installed')
    def test_installed_man_pages_render(self):
        for sect, name in (('8', 'petreld.8'), ('5', 'petreld.conf.5'), ('1', 'petrel.1'),
                           ('3', 'libpetrel.3')):
            page = self.path('mandir', 'man' + sect, name)
            r = run(['man', '-l', page], env=dict(os.environ, MANWIDTH='80'))
            self.assertEqual((r.returncode, r.stderr), (0, ''), page)
            text = re.sub('.\b', '', r.stdout)   # undo overstriking
            self.assertRegex(text, r'\nNAME\n +%s ' % re.escape(name.rsplit('.', 1)[0]))


if __name__ == '__main__':
    main()
