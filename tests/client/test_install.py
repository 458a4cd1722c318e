"""test_install.py - libpetrel as a real shared library: only petrel_*
symbols exported, a soname, and a program built against the installed
header with `pkg-config --cflags --libs petrel` (meson install --destdir
into a temporary directory) that links and runs against petreld."""

import os
import re
import shutil
import subprocess
import tempfile

import clienttest as ct

BUILD = os.environ.get('PETREL_BUILD_ROOT', '')
SANITIZE = os.environ.get('PETREL_SANITIZE', 'none')

PROGRAM = r'''
#include <stdio.h>
#include <string.h>
#include <petrel.h>

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    petrel_options *o = petrel_options_new();
    petrel_options_set_server(o, "127.0.0.1", (uint16_t)atoi(argv[1]));
    int err;
    petrel_sync *s = petrel_sync_connect(o, 5000, &err);
    petrel_options_free(o);
    if (!s) {
        fprintf(stderr, "connect: %s\n", petrel_strerror(err));
        return 1;
    }
    int granted = -1;
    if (petrel_sync_subscribe(s, "installed/t", 1, &granted, 5000) != PETREL_OK)
        return 1;
    if (petrel_sync_publish(s, "installed/t", "it works", 8, 1, false, 5000) != PETREL_OK)
        return 1;
    petrel_message *m;
    if (petrel_sync_receive(s, &m, 5000) != PETREL_OK)
        return 1;
    printf("libpetrel %s: %s\n", petrel_version(), (const char *)m->payload);
    petrel_message_free(m);
    return petrel_sync_disconnect(s, 2000) == PETREL_OK ? 0 : 1;
}
'''


class SharedLibrary(ct.unittest.TestCase):

    def setUp(self):
        self.so = os.path.join(BUILD, 'client-lib', 'libpetrel.so')
        if not os.path.exists(self.so):
            self.skipTest('libpetrel.so not built')

    def test_only_petrel_symbols_exported(self):
        r = ct.run(['nm', '-D', '--defined-only', self.so])
        self.assertEqual(r.returncode, 0, r.stderr)
        names = []
        for line in r.stdout.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] != 'A':   # 'A': the version node PETREL_0
                names.append(parts[2].split('@')[0])
        self.assertTrue(names)
        stray = [n for n in names if not n.startswith('petrel_')]
        self.assertEqual(stray, [], 'symbols outside petrel_*')
        for api in ('petrel_client_new', 'petrel_publish', 'petrel_strerror',
                    'petrel_sync_connect', 'petrel_sync_receive', 'petrel_options_set_will'):
            self.assertIn(api, names)

    def test_soname(self):
        r = ct.run(['readelf', '-d', self.so])
        self.assertRegex(r.stdout, r'SONAME.*\[libpetrel\.so\.0\]')


def compile_program(tmp, flags, env):
    """Writes PROGRAM to tmp/prog.c and compiles it with the given
    pkg-config flags (with the library's sanitizers, if it has any);
    returns the CompletedProcess and the path of the executable."""
    src = os.path.join(tmp, 'prog.c')
    with open(src, 'w') as f:
        f.write('#include <stdlib.h>\n' + PROGRAM)
    exe = os.path.join(tmp, 'prog')
    cmd = ['cc', '-std=c11', '-Wall', '-Werror', src, '-o', exe] + flags
    if SANITIZE not in ('', 'none'):
        # The library was built with sanitizers: so must its user be.
        cmd.insert(1, '-fsanitize=' + SANITIZE)
    r = ct.run(cmd, env=env)
    r.cmd = ' '.join(cmd)
    return r, exe


def run_program(test, exe, libdir):
    """Runs the compiled program against a fresh petreld with libpetrel
    from libdir, and asserts it round-tripped a message through it."""
    broker = ct.Petreld().start()
    try:
        run_env = dict(os.environ)
        run_env['LD_LIBRARY_PATH'] = libdir
        r = ct.run([exe, str(broker.port)], env=run_env, timeout=30)
        test.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        test.assertRegex(r.stdout, r'^libpetrel \d+\.\d+\.\d+: it works$')
        # It really used the copy in libdir.
        r = ct.run(['ldd', exe], env=run_env)
        test.assertIn(libdir, r.stdout)
    finally:
        broker.stop()


class UninstalledProgram(ct.unittest.TestCase):
    """A program built against the build tree with petrel-uninstalled.pc,
    as meson writes it into meson-uninstalled/."""

    def test_compile_with_uninstalled_pkg_config_and_run(self):
        if not BUILD or not shutil.which('pkg-config') or not shutil.which('cc'):
            self.skipTest('needs the build directory, pkg-config and cc')
        pcdir = os.path.join(BUILD, 'meson-uninstalled')
        self.assertTrue(os.path.exists(os.path.join(pcdir, 'petrel-uninstalled.pc')),
                        'petrel-uninstalled.pc not in ' + pcdir)
        tmp = tempfile.mkdtemp(prefix='petrel-uninstalled-')
        try:
            env = dict(os.environ)
            env['PKG_CONFIG_PATH'] = pcdir
            r = ct.run(['pkg-config', '--cflags', '--libs', 'petrel-uninstalled'], env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            flags = r.stdout.split()
            self.assertIn('-lpetrel', flags)
            r, exe = compile_program(tmp, flags, env)
            self.assertEqual(r.returncode, 0, r.cmd + '\n' + r.stderr)
            run_program(self, exe, os.path.join(BUILD, 'client-lib'))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class InstalledProgram(ct.unittest.TestCase):

    def test_compile_with_pkg_config_and_run(self):
        if not BUILD or not shutil.which('pkg-config') or not shutil.which('cc'):
            self.skipTest('needs the build directory, pkg-config and cc')
        tmp = tempfile.mkdtemp(prefix='petrel-install-')
        try:
            dest = os.path.join(tmp, 'root')
            r = ct.run(['meson', 'install', '-C', BUILD, '--no-rebuild', '--quiet',
                        '--destdir', dest], timeout=120)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            pcs = [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs
                   if f == 'petrel.pc']
            self.assertEqual(len(pcs), 1, 'petrel.pc installed once')
            headers = [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs
                       if f == 'petrel.h']
            self.assertEqual(len(headers), 1, 'petrel.h installed once')
            libs = [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs
                    if f.startswith('libpetrel.so')]
            names = sorted(os.path.basename(l) for l in libs)
            self.assertEqual(len(names), 3, names)
            self.assertEqual(names[:2], ['libpetrel.so', 'libpetrel.so.0'])
            self.assertRegex(names[2], r'^libpetrel\.so\.0\.\d+\.\d+$')

            env = dict(os.environ)
            env['PKG_CONFIG_PATH'] = os.path.dirname(pcs[0])
            env['PKG_CONFIG_SYSROOT_DIR'] = dest
            r = ct.run(['pkg-config', '--cflags', '--libs', 'petrel'], env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            flags = r.stdout.split()
            self.assertTrue(any(f.startswith('-I' + dest) for f in flags), flags)
            self.assertIn('-lpetrel', flags)

            r, exe = compile_program(tmp, flags, env)
            self.assertEqual(r.returncode, 0, r.cmd + '\n' + r.stderr)
            run_program(self, exe, os.path.dirname(libs[0]))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    ct.main()
