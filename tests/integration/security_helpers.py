"""security_helpers.py - what the authentication, ACL and abuse tests share:
the `petrel passwd` command, password and ACL files in a temporary
directory, a non-loopback address of this machine, and a process's RSS."""

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import unittest

import harness
import petreltest  # (tests/lib, on the path harness set)

PETREL = os.environ.get('PETREL') or os.path.join(harness.REPO, 'build', 'cli', 'petrel')
# Tests that log in many times use cheap hashes; the format is the same.
FAST_ITERATIONS = 1000


def petrel_passwd(args, stdin=None, timeout=30.0):
    """Runs `petrel passwd ARGS`; returns the CompletedProcess (bytes)."""
    if not os.path.exists(PETREL):
        raise unittest.SkipTest('petrel not built at %s' % PETREL)
    return subprocess.run([PETREL, 'passwd'] + list(args), input=stdin,
                          stdin=None if stdin is not None else subprocess.DEVNULL,
                          capture_output=True, timeout=timeout)


class Files:
    """A temporary directory for password and ACL files."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix='petrel-sec-')

    def path(self, name):
        return os.path.join(self.dir, name)

    def passwd(self, users, name='passwd', iterations=FAST_ITERATIONS):
        """Writes a password file with `petrel passwd -b`; users: {name: pw}."""
        p = self.path(name)
        if os.path.exists(p):
            os.unlink(p)
        for user, pw in users.items():
            r = petrel_passwd(['-b', '--iterations', str(iterations), p, user, pw])
            if r.returncode != 0:
                raise AssertionError('petrel passwd failed: %s' % r.stderr.decode())
        return p

    def write(self, name, text):
        p = self.path(name)
        tmp = p + '.tmp'
        with open(tmp, 'w') as f:
            f.write(text)
        os.replace(tmp, p)   # as an operator's editor would, atomically
        return p

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class AclBrokerTestCase(harness.BrokerTestCase):
    """One broker per class with a password file of `users` ({name: pw})
    and an ACL file of `acl_text` (its path in cls.acl), removed with the
    broker; `extra_settings`: more settings of that broker."""

    users = {}
    acl_text = ''
    extra_settings = {}

    @classmethod
    def setUpClass(cls):
        cls.files = Files()
        cls.acl = cls.files.write('acl', cls.acl_text)
        cls.broker_settings = {'password_file': cls.files.passwd(cls.users),
                               'acl_file': cls.acl}
        cls.broker_settings.update(cls.extra_settings)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.files.close()


def non_loopback_address():
    """An IPv4 address of this machine outside 127.0.0.0/8 that can be
    bound, or None.  Only local interfaces are looked at; nothing is sent."""
    candidates = []
    try:
        out = subprocess.run(['ip', '-o', '-4', 'addr', 'show'], capture_output=True,
                             text=True, timeout=5).stdout
        candidates += re.findall(r'\binet (\d+\.\d+\.\d+\.\d+)/', out)
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        candidates += socket.gethostbyname_ex(socket.gethostname())[2]
    except OSError:
        pass
    for addr in candidates:
        if addr.startswith('127.'):
            continue
        try:
            s = socket.socket()
            s.bind((addr, 0))
            s.close()
            return addr
        except OSError:
            continue
    return None


def rss_kb(pid):
    kib = petreltest.rss_kib(pid)
    if kib is None:
        raise AssertionError('no VmRSS for pid %d' % pid)
    return kib


def sanitized_build():
    """True when the broker under test was built with AddressSanitizer."""
    try:
        with open(harness.PETRELD, 'rb') as f:
            return b'__asan_init' in f.read()
    except OSError:
        return False


@contextlib.contextmanager
def small_asan_quarantine():
    """Brokers started inside keep a 4 MB ASan quarantine (256 MB by
    default), so that a test reading RSS measures what petreld keeps, not
    freed memory the sanitizer holds back.  No effect on other builds."""
    saved = os.environ.get('ASAN_OPTIONS')
    if saved is None and not sanitized_build():
        yield
        return
    os.environ['ASAN_OPTIONS'] = ((saved + ':') if saved else '') + 'quarantine_size_mb=4'
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop('ASAN_OPTIONS', None)
        else:
            os.environ['ASAN_OPTIONS'] = saved


class SmallAsanQuarantine:
    """Put first among a BrokerTestCase's bases: the class's broker starts
    inside small_asan_quarantine(), for tests that read its RSS."""

    @classmethod
    def setUpClass(cls):
        with small_asan_quarantine():
            super().setUpClass()
