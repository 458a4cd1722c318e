"""deploytest.py - what the deployment tests share: the paths meson gives
them, bounded subprocess runs, building the Debian package, and the
integration harness (imported from tests/integration, unchanged) for
brokers and raw MQTT clients."""

import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get('PETREL_SOURCE_ROOT') or os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE_ROOT, 'tests', 'integration'))

import harness  # noqa: E402  (needs the path above)
import mqttraw  # noqa: E402

BUILD_ROOT = os.environ.get('PETREL_BUILD_ROOT', '')
PETRELD = harness.PETRELD
PETREL_CLI = os.environ.get('PETREL_CLI', '')
SANITIZED = os.environ.get('PETREL_SANITIZE', 'none') not in ('', 'none')
SYSTEMD_NOTIFY = os.environ.get('PETREL_SYSTEMD', '1') == '1'
UNIT_SOURCE = os.path.join(SOURCE_ROOT, 'deploy', 'petreld.service')


def run(cmd, timeout=60, **kw):
    """Runs cmd to completion (text output); never hangs the suite."""
    kw.setdefault('stdin', subprocess.DEVNULL)
    kw.setdefault('capture_output', True)
    return subprocess.run(cmd, text=True, errors='replace', timeout=timeout, **kw)


def build_deb(timeout=900):
    """Builds the Debian package with deploy/build-deb.sh into
    BUILD_ROOT/deb (a meson build of its own, kept there, so a second call
    is incremental).  Returns (path of the .deb, the script's output);
    raises AssertionError with the output when it fails."""
    out = os.path.join(BUILD_ROOT, 'deb')
    r = run([os.path.join(SOURCE_ROOT, 'deploy', 'build-deb.sh'), out], timeout=timeout)
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or not lines or not lines[-1].endswith('.deb'):
        raise AssertionError('deploy/build-deb.sh failed (%d):\n%s%s' % (
            r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
    return lines[-1], r.stdout + r.stderr


def main():
    """unittest's main, with meson's exit status 77 (skipped) when every
    test was skipped, so that the summary shows what did not run."""
    result = unittest.main(verbosity=2, exit=False).result
    if not result.wasSuccessful():
        sys.exit(1)
    if result.testsRun and len(result.skipped) == result.testsRun:
        sys.exit(77)
    sys.exit(0)
