"""test_deb.py - the Debian package from deploy/build-deb.sh: it builds,
holds petreld with its unit and configuration (a conffile), the petrel CLI
and libpetrel with petrel.h and petrel.pc, all for /usr and /etc; its
control files name the libraries petreld links against and the maintainer
scripts that start and stop the service; and lintian finds no error in it.
(test_nspawn.py installs it on a booted Debian.)  Skipped in sanitizer
builds: the package comes from a normal build of its own."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

from deploytest import SANITIZED, build_deb, main, run

LINTIAN = shutil.which('lintian')


@unittest.skipIf(SANITIZED, 'the package is a normal build: checked in the normal pass')
@unittest.skipUnless(os.environ.get('PETREL_BUILD_ROOT') and shutil.which('dpkg-deb')
                     and shutil.which('dpkg-shlibdeps') and shutil.which('meson'),
                     'needs the build directory, meson and dpkg-dev')
class Package(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.deb, cls.output = build_deb()
        cls.tmp = tempfile.mkdtemp(prefix='petrel-deb-')
        r = run(['dpkg-deb', '-R', cls.deb, cls.tmp])
        assert r.returncode == 0, r.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def field(self, name):
        r = run(['dpkg-deb', '-f', self.deb, name])
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.strip()

    def read(self, path):
        with open(os.path.join(self.tmp, path)) as f:
            return f.read()

    def test_name(self):
        arch = run(['dpkg', '--print-architecture']).stdout.strip()
        self.assertEqual(os.path.basename(self.deb),
                         'petrel_%s_%s.deb' % (self.field('Version'), arch))
        self.assertEqual(self.field('Package'), 'petrel')

    def test_files(self):
        r = run(['dpkg-deb', '-c', self.deb])
        paths = {re.sub(r'^\./', '/', line.split()[5]) for line in r.stdout.splitlines()}
        multiarch = run(['dpkg-architecture', '-qDEB_HOST_MULTIARCH']).stdout.strip()
        lib = '/usr/lib/%s/' % multiarch
        unitdir = run(['pkg-config', '--variable=systemdsystemunitdir', 'systemd']).stdout.strip()
        want = {
            '/usr/sbin/petreld', '/usr/bin/petrel',
            (unitdir or '/lib/systemd/system') + '/petreld.service',
            '/etc/petrel/petreld.conf',
            lib + 'libpetrel.so.0', lib + 'libpetrel.so', lib + 'pkgconfig/petrel.pc',
            '/usr/include/petrel.h',
            '/usr/share/man/man8/petreld.8.gz', '/usr/share/man/man5/petreld.conf.5.gz',
            '/usr/share/man/man1/petrel.1.gz', '/usr/share/man/man3/libpetrel.3.gz',
            '/usr/share/doc/petrel/copyright', '/usr/share/doc/petrel/changelog.gz',
            '/usr/share/doc/petrel/operations.md',
        }
        self.assertEqual(sorted(want - paths), [])
        self.assertEqual([p for p in paths if p.startswith('/usr/local')], [])
        pc = self.read(lib[1:] + 'pkgconfig/petrel.pc')
        self.assertIn('prefix=/usr\n', pc)

    def test_unit(self):
        unitdir = run(['pkg-config', '--variable=systemdsystemunitdir', 'systemd']).stdout.strip()
        unit = self.read((unitdir or '/lib/systemd/system')[1:] + '/petreld.service')
        self.assertIn('\nType=notify\n', unit)
        self.assertIn('\nExecStart=/usr/sbin/petreld -c /etc/petrel/petreld.conf '
                      '--data-dir /var/lib/petrel\n', unit)
        self.assertIn('\nExecReload=/usr/sbin/petreld --data-dir /var/lib/petrel --reload\n',
                      unit)
        self.assertNotIn('/bin/kill', unit)

    def test_control(self):
        depends = self.field('Depends')
        for lib in ('libc6', 'libevent-core-2.1-7', 'libevent-openssl-2.1-7', 'libsqlite3-0',
                    'libssl3', 'libsystemd0'):
            self.assertRegex(depends, r'(^|, )%s( |,|$)' % re.escape(lib), depends)
        self.assertNotRegex(depends, r'(^|, )petrel\b', 'depends on itself')
        self.assertEqual(self.read('DEBIAN/conffiles'), '/etc/petrel/petreld.conf\n')
        self.assertRegex(self.read('DEBIAN/shlibs'), r'^libpetrel 0 petrel \(>= [\d.]+\)\n$')
        self.assertIn('activate-noawait ldconfig', self.read('DEBIAN/triggers'))
        self.assertIn('deb-systemd-invoke start petreld.service', self.read('DEBIAN/postinst'))
        self.assertIn('deb-systemd-invoke stop petreld.service', self.read('DEBIAN/prerm'))
        for script in ('postinst', 'prerm', 'postrm'):
            r = run(['sh', '-n', os.path.join(self.tmp, 'DEBIAN', script)])
            self.assertEqual(r.returncode, 0, script + ': ' + r.stderr)

    @unittest.skipUnless(LINTIAN, 'lintian not installed')
    def test_lintian(self):
        r = run([LINTIAN, '--pedantic', '--display-info', self.deb], timeout=300)
        tags = [l for l in r.stdout.splitlines() if re.match(r'[EWIPX]: ', l)]
        print('lintian --pedantic --display-info: %d tags' % len(tags))
        for line in tags:
            print('  ' + line)
        self.assertEqual([l for l in tags if l.startswith('E: ')], [], r.stdout)
        # exit status 2: lintian itself failed
        self.assertIn(r.returncode, (0, 1), r.stderr)


if __name__ == '__main__':
    main()
