"""test_nspawn.py - Petrel deployed as a user would, under a real systemd.

A minimal Debian tree (debootstrap --variant=minbase, the release and mirror
of this machine's apt, with systemd, dbus, mosquitto-clients and the
libraries the package depends on) is built once and kept in
BUILD_ROOT/nspawn; later runs boot it again at once.  systemd-nspawn boots
it with a private network (its own 127.0.0.1, so the default port 1883 and
nothing on this machine's addresses) and a volatile overlay (the tree is
never changed: every run starts from a fresh system).  In it, in order:
  - `apt-get install ./petrel_*.deb` (from deploy/build-deb.sh) starts
    petreld: Type=notify, READY=1, active;
  - `systemctl status` shows petreld's status text, and
    `systemd-analyze security` rates the running unit 2.0 or better;
  - mosquitto_pub and mosquitto_sub go through the service;
  - `systemctl reload` (petreld --reload, no kill(1)) applies a new
    log_level and logs what it reloaded; a broken file fails the reload and
    the broker runs on;
  - a persistent session's queued message survives `systemctl restart`;
  - a password file and ACL placed as docs/operations.md says are read by
    the service's dynamic user and enforced;
  - the journal keeps petreld's lines with their priority;
  - the watchdog (WatchdogSec=5s in a drop-in) kills and restarts a petreld
    stopped with SIGSTOP within WatchdogSec + RestartSec + a margin;
  - `systemctl stop` is clean (exit 0, "stopped" logged);
  - `apt-get remove` leaves no petreld running and `purge` removes its data.
The container is stopped with a bounded wait whatever happens.  Skipped in
sanitizer builds (the package is a normal build), when not root, without
systemd-nspawn or debootstrap, and where systemd-nspawn cannot boot."""

import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from deploytest import BUILD_ROOT, SANITIZED, build_deb, harness, main, run

NSPAWN = shutil.which('systemd-nspawn')
DEBOOTSTRAP = shutil.which('debootstrap')
NSENTER = shutil.which('nsenter')
# What the tree holds besides the package's own dependencies.
BASE_PACKAGES = ['systemd', 'dbus', 'mosquitto-clients']
# The watchdog period the test gives the unit (the unit's own is 30 s).
WATCHDOG_SEC = 5
RESTART_SEC = 2          # the unit's RestartSec=
ENV = ['env', '-i', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'LANG=C.UTF-8',
       'DEBIAN_FRONTEND=noninteractive', 'SYSTEMD_PAGER=', 'SYSTEMD_COLORS=0']


def os_release():
    vals = {}
    with open('/etc/os-release') as f:
        for line in f:
            k, _, v = line.strip().partition('=')
            vals[k] = v.strip('"')
    return vals


def apt_sources():
    """(type, uri, suite, components) of every entry in this machine's apt
    sources, one-line and deb822 alike."""
    files = ['/etc/apt/sources.list']
    d = '/etc/apt/sources.list.d'
    if os.path.isdir(d):
        files += sorted(os.path.join(d, f) for f in os.listdir(d))
    out = []
    for path in files:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        if path.endswith('.sources') or re.search(r'(?mi)^Types:', text):
            for stanza in re.split(r'\n\s*\n', text):
                fields = {}
                for line in stanza.splitlines():
                    if line.startswith('#') or ':' not in line:
                        continue
                    k, _, v = line.partition(':')
                    fields[k.strip().lower()] = v.split()
                if fields.get('enabled') == ['no']:
                    continue
                for t in fields.get('types', []):
                    for uri in fields.get('uris', []):
                        for suite in fields.get('suites', []):
                            out.append((t, uri, suite, fields.get('components', [])))
        else:
            for line in text.splitlines():
                line = re.sub(r'\[[^]]*\]', '', line.split('#', 1)[0]).split()
                if len(line) >= 3:
                    out.append((line[0], line[1], line[2], line[3:]))
    return out


def mirror_for(suite):
    """The mirror apt uses here for SUITE main: debootstrap must use what is
    reachable from this machine (a mirror or a proxy), not a default."""
    for t, uri, s, comps in apt_sources():
        if t == 'deb' and s == suite and 'main' in comps:
            return uri
    return None


def apt_proxy_env():
    env = dict(os.environ)
    for scheme in ('http', 'https'):
        r = run(['apt-config', 'shell', 'P', 'Acquire::%s::Proxy' % scheme])
        m = re.search(r"P='([^']+)'", r.stdout)
        if m and m.group(1) not in ('DIRECT', 'false'):
            env['%s_proxy' % scheme] = m.group(1)
    return env


def deb_dependencies(deb):
    """The package names in the .deb's Depends (first of alternatives)."""
    r = run(['dpkg-deb', '-f', deb, 'Depends'])
    names = []
    for item in r.stdout.strip().split(','):
        item = item.split('|')[0].strip()
        if item:
            names.append(re.split(r'[\s(:]', item)[0])
    return names


def umount_below(path):
    """Lazily unmounts whatever a killed debootstrap left mounted in path
    (proc, sys, devices), so that removing the tree cannot reach them."""
    path = os.path.realpath(path)
    with open('/proc/self/mounts') as f:
        points = [l.split()[1].replace('\\040', ' ') for l in f]
    for p in sorted((p for p in points if p.startswith(path + '/')), reverse=True):
        run(['umount', '-l', p])


def remove_tree(path):
    if os.path.lexists(path):
        umount_below(path)
        run(['rm', '-rf', '--one-file-system', path], timeout=300)


def ensure_tree(base, packages):
    """BUILD_ROOT/nspawn/tree, made by debootstrap unless a tree made with
    the same release, mirror and packages is there.  Returns (tree, seconds
    spent building it: 0 when kept)."""
    osr = os_release()
    suite = osr.get('VERSION_CODENAME')
    if not suite:
        raise unittest.SkipTest('no VERSION_CODENAME in /etc/os-release')
    mirror = mirror_for(suite)
    if not mirror:
        raise unittest.SkipTest('no apt source for %s main on this machine' % suite)
    want = {'suite': suite, 'mirror': mirror, 'variant': 'minbase',
            'packages': sorted(set(packages))}
    tree = os.path.join(base, 'tree')
    stamp = os.path.join(base, 'tree.json')
    try:
        with open(stamp) as f:
            if json.load(f) == want and os.path.exists(os.path.join(tree, 'lib/systemd/systemd')):
                return tree, 0.0
    except (OSError, ValueError):
        pass
    os.makedirs(base, exist_ok=True)
    for p in (tree, tree + '.new', stamp):
        remove_tree(p)
    start = time.monotonic()
    log = os.path.join(base, 'debootstrap.log')
    r = run([DEBOOTSTRAP, '--variant=minbase', '--include=' + ','.join(want['packages']),
             suite, tree + '.new', mirror], timeout=1200, env=apt_proxy_env())
    with open(log, 'w') as f:
        f.write(r.stdout + r.stderr)
    if r.returncode != 0:
        raise AssertionError('debootstrap %s %s failed (%d), see %s:\n%s' % (
            suite, mirror, r.returncode, log, (r.stdout + r.stderr)[-2000:]))
    # Nothing in the container needs the downloaded packages again.
    run(['rm', '-rf', '--one-file-system', tree + '.new/var/cache/apt/archives'])
    os.rename(tree + '.new', tree)
    with open(stamp, 'w') as f:
        json.dump(want, f)
    return tree, time.monotonic() - start


class Container:
    """A booted systemd-nspawn container; commands run in it through
    nsenter (no machined is needed on this machine)."""

    def __init__(self, tree, debdir, log_path):
        self.tree, self.debdir, self.log_path = tree, debdir, log_path
        self.proc = None
        self.leader = None

    def start(self, timeout=60):
        self.log = open(self.log_path, 'w')
        cmd = [NSPAWN, '--quiet', '--directory', self.tree, '--boot', '--register=no',
               '--keep-unit', '--private-network', '--volatile=overlay', '--settings=no',
               '--link-journal=no', '--timezone=off', '--resolv-conf=off',
               '--console=passive', '--machine=petrel-deploy-test',
               '--bind-ro=%s:/mnt/petrel' % self.debdir]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while self.leader is None:
            if self.proc.poll() is not None:
                raise unittest.SkipTest('systemd-nspawn cannot boot here (exit %s): %s' % (
                    self.proc.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                raise AssertionError('no container init after %ds: %s' % (timeout,
                                                                          self.log_tail()))
            self.leader = self._find_leader()
            time.sleep(0.05)
        # systemctl answers once systemd has its private socket.
        while True:
            r = self.run('systemctl', 'is-system-running', '--wait', check=False,
                         timeout=max(1, deadline - time.monotonic()))
            state = r.stdout.strip()
            if state in ('running', 'degraded'):
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError('container did not boot (%r): %s' % (
                    state, self.log_tail()))
            time.sleep(0.1)
        return state

    def _find_leader(self):
        """The container's init: the child of systemd-nspawn that is pid 1
        in its own pid namespace."""
        for d in os.listdir('/proc'):
            if not d.isdigit():
                continue
            try:
                with open('/proc/%s/status' % d) as f:
                    status = f.read()
            except OSError:
                continue
            ppid = re.search(r'^PPid:\s*(\d+)', status, re.M)
            nspid = re.search(r'^NSpid:\s*(.*)$', status, re.M)
            if ppid and int(ppid.group(1)) == self.proc.pid and nspid and \
                    nspid.group(1).split()[-1] == '1' and len(nspid.group(1).split()) > 1:
                return int(d)
        return None

    def log_tail(self, n=2000):
        try:
            with open(self.log_path, errors='replace') as f:
                return f.read()[-n:]
        except OSError:
            return ''

    def command(self, *cmd):
        return [NSENTER, '--target', str(self.leader), '--all', '--'] + ENV + list(cmd)

    def run(self, *cmd, check=True, timeout=60):
        r = run(self.command(*cmd), timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError('in the container: %s: exit %d\n%s%s' % (
                ' '.join(cmd), r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
        return r

    def popen(self, *cmd):
        return subprocess.Popen(self.command(*cmd), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stop(self, timeout=20):
        """Halts the container: SIGTERM to systemd-nspawn (which shuts the
        container down), then SIGKILL to its init and to systemd-nspawn.
        Bounded, and safe to call twice."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                # Killing nspawn alone would leave the container running.
                if self.leader:
                    try:
                        os.kill(self.leader, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        self.proc = None


_containers = []


def _stop_containers():
    for c in _containers:
        try:
            c.stop()
        except Exception:
            pass


atexit.register(_stop_containers)
_harness_sigterm = signal.getsignal(signal.SIGTERM)


def _on_sigterm(signum, frame):
    # meson's timeout: stop the container first, then the harness's clean-up.
    _stop_containers()
    if callable(_harness_sigterm):
        _harness_sigterm(signum, frame)
    os._exit(128 + signum)


signal.signal(signal.SIGTERM, _on_sigterm)


@unittest.skipIf(harness.IS_MOSQUITTO, 'petreld only')
@unittest.skipIf(SANITIZED, 'the package is a normal build: booted in the normal pass')
@unittest.skipUnless(os.geteuid() == 0, 'systemd-nspawn and debootstrap need root')
@unittest.skipUnless(NSPAWN and DEBOOTSTRAP and NSENTER,
                     'needs systemd-nspawn (systemd-container), debootstrap and nsenter')
@unittest.skipUnless(BUILD_ROOT and shutil.which('dpkg-deb'), 'needs the build directory and dpkg')
class Booted(unittest.TestCase):
    """One container for the class; the tests run in order (test_01...)."""

    @classmethod
    def setUpClass(cls):
        t0 = time.monotonic()
        cls.deb, _ = build_deb()
        t1 = time.monotonic()
        base = os.path.join(BUILD_ROOT, 'nspawn')
        tree, built = ensure_tree(base, BASE_PACKAGES + deb_dependencies(cls.deb))
        t2 = time.monotonic()
        cls.c = Container(tree, os.path.dirname(cls.deb), os.path.join(base, 'console.log'))
        _containers.append(cls.c)
        try:
            state = cls.c.start()
        except BaseException:
            cls.c.stop()
            raise
        t3 = time.monotonic()
        print('package %.1f s, tree %s, boot %.1f s (%s)' % (
            t1 - t0, 'built in %.1f s' % built if built else 'kept', t3 - t2, state))
        cls.debname = '/mnt/petrel/' + os.path.basename(cls.deb)
        cls.t_start = t0

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()
        print('whole run %.1f s' % (time.monotonic() - cls.t_start))

    # ---- helpers
    def sh(self, script, **kw):
        return self.c.run('sh', '-ec', script, **kw)

    def show(self, *props):
        r = self.c.run('systemctl', 'show', 'petreld', '-p', ','.join(props))
        return dict(l.split('=', 1) for l in r.stdout.strip().splitlines())

    def journal(self, *args):
        return self.c.run('journalctl', '-u', 'petreld', '--no-pager', '-o', 'cat',
                          *args).stdout

    def wait_for(self, what, predicate, timeout):
        deadline = time.monotonic() + timeout
        while True:
            v = predicate()
            if v:
                return v
            if time.monotonic() > deadline:
                self.fail('%s: not within %.0f s' % (what, timeout))
            time.sleep(0.1)

    def pub(self, topic, msg, *args, check=True):
        return self.c.run('mosquitto_pub', '-h', '127.0.0.1', '-p', '1883', '-t', topic,
                          '-m', msg, '-q', '1', *args, check=check, timeout=30)

    def sub_one(self, topic, *args, publish=None):
        """mosquitto_sub for one message (10 s at most); with publish,
        publishes it (again, until the subscriber is there) meanwhile."""
        p = self.c.popen('mosquitto_sub', '-h', '127.0.0.1', '-p', '1883', '-t', topic, '-q',
                         '1', '-C', '1', '-W', '10', '-v', *args)
        try:
            deadline = time.monotonic() + 12
            while p.poll() is None and time.monotonic() < deadline:
                if publish:
                    self.pub(*publish)
                time.sleep(0.2)
            out, err = p.communicate(timeout=5)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(5)
        return p.returncode, out, err

    def main_pid(self):
        return int(self.show('MainPID')['MainPID'])

    # ---- the steps, in order
    def test_01_install_starts_and_is_ready(self):
        r = self.c.run('apt-get', 'install', '-y', '--no-install-recommends', self.debname,
                       timeout=300)
        self.assertIn('Setting up petrel', r.stdout)
        s = self.show('Type', 'ActiveState', 'SubState', 'UnitFileState', 'MainPID',
                      'ExecMainStatus', 'NRestarts')
        # Type=notify: the start job finished only after READY=1.
        self.assertEqual((s['Type'], s['ActiveState'], s['SubState'], s['UnitFileState']),
                         ('notify', 'active', 'running', 'enabled'), s)
        self.assertGreater(int(s['MainPID']), 0)
        log = self.journal()
        self.assertRegex(log, r'notice ready \(data directory /var/lib/petrel,')
        self.assertIn('listening on 127.0.0.1:1883', log)
        # DynamicUser= with StateDirectory=: the store belongs to the
        # service's user, in /var/lib/private.
        r = self.sh('stat -c "%U %a" /var/lib/private/petrel /var/lib/private/petrel/petrel.db')
        owner = r.stdout.split()
        self.assertNotEqual(owner[0], 'root')
        self.assertEqual(owner[1], '700')
        # the installed tools run from the package
        self.assertRegex(self.c.run('petrel', '--version').stdout, r'^petrel \d')
        self.sh('test -f /usr/include/petrel.h && test -f /usr/lib/*/pkgconfig/petrel.pc')

    def test_02_status_text(self):
        r = self.c.run('systemctl', 'status', 'petreld', '--no-pager', check=False)
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertRegex(r.stdout, r'Active: active \(running\)')
        self.assertRegex(r.stdout, r'Status: "\d+ clients, \d+ sessions, \d+ queued messages '
                                   r'\(\d+ bytes\), \d+ in flight"')

    def test_02b_security_exposure(self):
        # test_unit.py rates the unit file offline; this asks the running
        # systemd, which applies what it really supports.
        r = self.c.run('systemd-analyze', 'security', '--no-pager', 'petreld.service',
                       check=False)
        m = re.search(r'Overall exposure level for petreld\.service: (\d+\.\d+)', r.stdout)
        self.assertTrue(m, r.stdout + r.stderr)
        print('systemd-analyze security petreld.service (booted): exposure %s' % m.group(1))
        self.assertLessEqual(float(m.group(1)), 2.0, r.stdout)

    def test_03_publish_subscribe(self):
        rc, out, err = self.sub_one('hello/#', publish=('hello/world', 'from-mosquitto_pub'))
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.strip().splitlines()[0], 'hello/world from-mosquitto_pub')
        # and with the package's own CLI (libpetrel from the package).  A
        # debootstrap tree has no /etc/hosts: "localhost" does not resolve.
        self.c.run('petrel', 'pub', '-h', '127.0.0.1', '-t', 'hello/cli', '-m', 'kept', '-q',
                   '1', '-r', timeout=20)
        rc, out, err = self.sub_one('hello/cli')
        self.assertEqual((rc, out.strip()), (0, 'hello/cli kept'), err)

    def test_04_reload(self):
        pid = self.main_pid()
        self.sh('echo "log_level = info" >> /etc/petrel/petreld.conf')
        start = time.monotonic()
        r = self.c.run('systemctl', 'reload', 'petreld', check=False, timeout=60)
        took = time.monotonic() - start
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr + self.journal('-n', '20'))
        self.assertLess(took, 10)
        log = self.journal()
        # petreld's own line, and petreld --reload's report of it
        self.assertIn('notice SIGHUP: configuration reloaded from /etc/petrel/petreld.conf '
                      '(log_level info)', log)
        self.assertRegex(log, r'petreld %d reloaded \(reload 1, 0 errors\):\nnotice SIGHUP: '
                              r'configuration reloaded' % pid)
        self.assertNotIn('203/EXEC', log)
        self.assertEqual(self.main_pid(), pid, 'a reload must not restart petreld')
        # The new level is in force: a client's subscription is logged (info).
        self.sub_one('reload/check', '-i', 'after-reload', publish=('reload/check', 'x'))
        self.wait_for('an info line', lambda: re.search(r'info client after-reload',
                                                        self.journal()), 5)
        # A broken file: the reload fails, says why, and petreld runs on.
        self.sh('cp /etc/petrel/petreld.conf /root/petreld.conf.good && '
                'echo "no_such_setting = 1" >> /etc/petrel/petreld.conf')
        r = self.c.run('systemctl', 'reload', 'petreld', check=False, timeout=60)
        self.assertNotEqual(r.returncode, 0, 'a broken file must fail the reload')
        self.assertEqual(self.show('ActiveState')['ActiveState'], 'active')
        self.assertEqual(self.main_pid(), pid)
        self.assertRegex(self.journal(), r"error SIGHUP: reload failed, keeping the current "
                                         r"settings: /etc/petrel/petreld.conf:\d+: unknown "
                                         r"setting 'no_such_setting'")
        self.sh('cp /root/petreld.conf.good /etc/petrel/petreld.conf')
        self.c.run('systemctl', 'reload', 'petreld')

    def test_05_restart_keeps_persistent_queue(self):
        # a persistent session subscribes and goes away
        self.c.run('mosquitto_sub', '-h', '127.0.0.1', '-p', '1883', '-i', 'worker-1', '-c',
                   '-q', '1', '-t', 'jobs/#', '-E', timeout=20)
        self.pub('jobs/1', 'queued-before-restart')   # acknowledged: stored
        before = self.main_pid()
        self.c.run('systemctl', 'restart', 'petreld', timeout=60)
        self.assertNotEqual(self.main_pid(), before)
        self.assertRegex(self.journal(), r'store: /var/lib/petrel/petrel.db loaded in [\d.]+ s: '
                                         r'\d+ sessions, \d+ subscriptions, 1 queued messages')
        rc, out, err = self.sub_one('jobs/#', '-i', 'worker-1', '-c')
        self.assertEqual((rc, out.strip()), (0, 'jobs/1 queued-before-restart'), err)

    def test_06_password_file_and_acl(self):
        # As docs/operations.md says: the password file in the state
        # directory, given to the service's user; the ACL in /etc/petrel.
        self.sh('petrel passwd -c -b /var/lib/petrel/passwd alice alice-secret >/dev/null && '
                'chown --reference=/var/lib/private/petrel /var/lib/petrel/passwd')
        self.sh('printf "topic read \\$SYS/#\\ntopic read status/#\\n\\nuser alice\\n'
                'topic readwrite alice/#\\ntopic read status/#\\n" > /etc/petrel/acl && '
                'chmod 0644 /etc/petrel/acl')
        self.sh('printf "password_file = /var/lib/petrel/passwd\\nacl_file = /etc/petrel/acl\\n"'
                ' >> /etc/petrel/petreld.conf')
        r = self.c.run('systemctl', 'reload', 'petreld', check=False)
        self.assertEqual(r.returncode, 0, self.journal('-n', '20'))
        log = self.journal()
        self.assertIn('SIGHUP: password file /var/lib/petrel/passwd: 1 users', log)
        self.assertRegex(log, r'SIGHUP: ACL file /etc/petrel/acl: 4 rules, 1 user sections')
        # alice may use her topics, with her password only
        rc, out, err = self.sub_one('alice/#', '-u', 'alice', '-P', 'alice-secret',
                                    publish=('alice/x', 'hi', '-u', 'alice', '-P',
                                             'alice-secret'))
        self.assertEqual((rc, out.strip()), (0, 'alice/x hi'), err)
        r = self.pub('alice/x', 'hi', '-u', 'alice', '-P', 'wrong', check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stderr, r'(?i)not authori[sz]ed')
        # anonymous clients may only read status/#: their filter is refused
        rc, out, err = self.sub_one('alice/#')
        self.assertIn('All subscription requests were denied', err)
        self.assertEqual(out, '')
        # and the restart reads both files too, as the service's user
        self.c.run('systemctl', 'restart', 'petreld', timeout=60)
        log = self.journal()
        self.assertNotRegex(log, r'Permission denied')
        self.assertRegex(log.split('Starting petreld.service')[-1],
                         r'notice password file /var/lib/petrel/passwd: 1 users\n(.*\n)*'
                         r'.*notice ACL file /etc/petrel/acl: 4 rules')

    def test_07_journal_priorities(self):
        r = self.c.run('journalctl', '-u', 'petreld', '--no-pager', '-o', 'json',
                       '--output-fields=PRIORITY,MESSAGE,SYSLOG_IDENTIFIER')
        entries = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
        mine = [e for e in entries if e.get('SYSLOG_IDENTIFIER') == 'petreld'
                and isinstance(e.get('MESSAGE'), str)
                and re.match(r'\d{4}-\d\d-\d\dT', e['MESSAGE'])]
        self.assertTrue(mine)
        levels = {'error': '3', 'warning': '4', 'notice': '5', 'info': '6', 'debug': '7'}
        seen = set()
        for e in mine:
            level = e['MESSAGE'].split()[1]
            self.assertEqual(e['PRIORITY'], levels[level], e)
            seen.add(level)
        self.assertLessEqual({'error', 'notice', 'info'}, seen)
        # no "<5>" prefix left in the text, and -p filters petreld's lines
        self.assertFalse([e for e in mine if e['MESSAGE'].startswith('<')])
        err = self.c.run('journalctl', '-u', 'petreld', '--no-pager', '-o', 'cat', '-p', 'err',
                         ).stdout
        self.assertIn('SIGHUP: reload failed', err)
        self.assertNotIn('notice ready', err)

    def test_08_watchdog_restarts_hung_petreld(self):
        self.sh('mkdir -p /etc/systemd/system/petreld.service.d && printf "[Service]\\n'
                'WatchdogSec=%ds\\n" > /etc/systemd/system/petreld.service.d/watchdog.conf'
                % WATCHDOG_SEC)
        self.c.run('systemctl', 'daemon-reload')
        self.c.run('systemctl', 'restart', 'petreld', timeout=60)
        s = self.show('WatchdogUSec', 'NRestarts', 'MainPID')
        self.assertEqual(s['WatchdogUSec'], '%ds' % WATCHDOG_SEC)
        hung, restarts = int(s['MainPID']), int(s['NRestarts'])
        self.c.run('systemctl', 'kill', '--kill-who=main', '-s', 'SIGSTOP', 'petreld')
        start = time.monotonic()
        margin = 10

        def restarted():
            s = self.show('MainPID', 'ActiveState', 'NRestarts')
            return (s['ActiveState'] == 'active' and int(s['MainPID']) not in (0, hung)
                    and int(s['NRestarts']) > restarts)

        self.wait_for('restart after the watchdog', restarted, WATCHDOG_SEC + RESTART_SEC + margin)
        took = time.monotonic() - start
        print('watchdog: SIGSTOP to active again in %.1f s (WatchdogSec=%ds, RestartSec=%ds)'
              % (took, WATCHDOG_SEC, RESTART_SEC))
        self.assertGreaterEqual(took, WATCHDOG_SEC - 1, 'restarted before the watchdog fired')
        log = self.journal()
        self.assertIn("Failed with result 'watchdog'", log)
        # serving again, with its users and rules
        alice = ('-u', 'alice', '-P', 'alice-secret')
        rc, out, err = self.sub_one('alice/#', *alice,
                                    publish=('alice/w', 'after-watchdog') + alice)
        self.assertEqual((rc, out.strip()), (0, 'alice/w after-watchdog'), err)

    def test_09_stop_is_clean(self):
        self.c.run('systemctl', 'stop', 'petreld', timeout=60)
        s = self.show('ActiveState', 'Result', 'ExecMainStatus', 'ExecMainCode', 'MainPID')
        self.assertEqual((s['ActiveState'], s['Result'], s['ExecMainStatus'], s['MainPID']),
                         ('inactive', 'success', '0', '0'), s)
        self.assertRegex(self.journal().split('starting')[-1],
                         r'notice received SIGTERM, shutting down\n(.*\n)*?.*notice stopped')
        self.assertEqual(self.petreld_processes(), [])

    def petreld_processes(self):
        r = self.sh('for p in /proc/[0-9]*; do c=$(cat $p/comm 2>/dev/null) || continue; '
                    '[ "$c" = petreld ] && echo ${p#/proc/}; done; true')
        return r.stdout.split()

    def test_10_remove_and_purge(self):
        self.c.run('systemctl', 'start', 'petreld', timeout=60)
        self.assertTrue(self.petreld_processes())
        r = self.c.run('apt-get', 'remove', '-y', 'petrel', timeout=300)
        self.assertIn('Removing petrel', r.stdout)
        self.assertEqual(self.petreld_processes(), [], 'apt-get remove left petreld running')
        r = self.c.run('systemctl', 'is-active', 'petreld', check=False)
        self.assertNotEqual(r.stdout.strip(), 'active')
        self.sh('test ! -e /usr/sbin/petreld && test -f /etc/petrel/petreld.conf')
        # purge: configuration and the store go too (the drop-in is ours)
        self.sh('rm -rf /etc/systemd/system/petreld.service.d')
        self.c.run('apt-get', 'purge', '-y', 'petrel', timeout=300)
        self.sh('test ! -e /etc/petrel/petreld.conf && test ! -e /var/lib/private/petrel')


if __name__ == '__main__':
    main()
