"""test_manpages.py - the manual pages in docs/man render without groff
warnings and stay true to the programs: every option, setting and function
a page names exists (`--help` output, the example configuration, petrel.h).
Things the programs have that a page does not mention yet are reported as
a skip, so that work on the programs is not blocked by the pages."""

import os
import re
import shutil
import unittest

from deploytest import PETREL_CLI, PETRELD, SOURCE_ROOT, main, run

MAN = os.path.join(SOURCE_ROOT, 'docs', 'man')
PAGES = ['petreld.8', 'petreld.conf.5', 'petrel.1', 'libpetrel.3']


def page_text(name, examples=True):
    """The page with roff escapes for '-' undone; examples=False leaves out
    the EXAMPLES section (other programs' flags appear there)."""
    with open(os.path.join(MAN, name)) as f:
        text = f.read().replace('\\-', '-').replace('\\&', '')
    if not examples:
        text = re.sub(r'^\.SH EXAMPLES?\n.*?(?=^\.SH )', '', text, flags=re.M | re.S)
    return text


def long_options(text):
    return set(re.findall(r'(?<![\w-])--[a-z][a-z0-9-]*', text))


def short_options(text):
    return set(re.findall(r'(?<![\w-])-[A-Za-z](?![\w-])', text))


class Render(unittest.TestCase):

    @unittest.skipUnless(shutil.which('groff'), 'groff not installed')
    def test_groff_has_no_warnings(self):
        for name in PAGES:
            r = run(['groff', '-man', '-ww', '-z', os.path.join(MAN, name)])
            self.assertEqual((r.returncode, r.stderr), (0, ''), name)

    def test_header(self):
        for name in PAGES:
            title, section = name.rsplit('.', 1)
            with open(os.path.join(MAN, name)) as f:
                th = [l for l in f if l.startswith('.TH ')]
            self.assertEqual(len(th), 1, name)
            self.assertTrue(th[0].split()[1:3] == [title.upper(), section], th[0])


class OptionsOfHelp:
    """Mixin: the manual page `page_name` (text in self.page) names only
    options the program's --help (self.help) has, and says when it does
    not yet describe all of them.  short_not_in_help: short options the
    page may name that --help does not list."""

    page_name = ''
    short_not_in_help = set()

    def test_options_named_exist(self):
        self.assertEqual(long_options(self.page) - long_options(self.help), set())
        self.assertEqual(short_options(self.page) - short_options(self.help)
                         - self.short_not_in_help, set())

    def test_options_complete(self):
        missing = sorted(long_options(self.help) - long_options(self.page))
        self.assertEqual(missing, [], '%s does not describe these' % self.page_name)


class Petreld(OptionsOfHelp, unittest.TestCase):
    page_name = 'petreld.8'
    short_not_in_help = {'-9'}

    def setUp(self):
        r = run([PETRELD, '--help'])
        self.assertEqual(r.returncode, 0)
        self.help = r.stdout
        self.page = page_text(self.page_name, examples=False)


class Config(unittest.TestCase):

    def setUp(self):
        with open(os.path.join(SOURCE_ROOT, 'deploy', 'petreld.conf.example')) as f:
            self.keys = set(re.findall(r'^#?[ \t]*([a-z_]+) = ', f.read(), re.M))
        self.assertIn('listen', self.keys)
        self.documented = set(re.findall(r'^\.BI ([a-z_]+) " = ', page_text('petreld.conf.5'),
                                         re.M))

    def test_settings_named_exist(self):
        self.assertEqual(self.documented - self.keys, set())

    def test_settings_complete(self):
        missing = sorted(self.keys - self.documented)
        self.assertEqual(missing, [], 'petreld.conf.5 does not describe these')


@unittest.skipUnless(PETREL_CLI and os.path.exists(PETREL_CLI), 'petrel not built')
class PetrelCli(OptionsOfHelp, unittest.TestCase):
    page_name = 'petrel.1'

    def setUp(self):
        self.help = ''
        for cmd in (['--help'], ['pub', '--help'], ['sub', '--help'], ['bench', '--help'],
                    ['passwd', '--help'], ['admin', '--help']):
            r = run([PETREL_CLI] + cmd)
            self.assertEqual(r.returncode, 0, cmd)
            self.help += r.stdout
        self.page = page_text(self.page_name, examples=False)

    def test_exit_statuses_match(self):
        codes = set(re.findall(r'^\s+(\d)\s+\S', self.help, re.M))
        documented = set(re.findall(r'^\.B (\d)$', self.page, re.M))
        self.assertEqual(documented, codes)


class Library(unittest.TestCase):

    def setUp(self):
        with open(os.path.join(SOURCE_ROOT, 'client-lib', 'include', 'petrel.h')) as f:
            header = f.read()
        self.api = set(re.findall(r'PETREL_API[^;(]*?\b(petrel_\w+)\s*\(', header, re.S))
        self.names = set(re.findall(r'\b(?:petrel|PETREL)_\w+', header))
        self.page = page_text('libpetrel.3')
        self.assertGreater(len(self.api), 30)

    def test_names_documented_exist(self):
        named = set(re.findall(r'\b(?:petrel|PETREL)_\w+', self.page))
        # petrel_client_* and petrel_sync_* name families, not functions
        named -= {'petrel_client_', 'petrel_sync_'}
        self.assertEqual(named - self.names, set())

    def test_functions_complete(self):
        missing = sorted(f for f in self.api if not re.search(r'\b%s\b' % f, self.page))
        self.assertEqual(missing, [], 'libpetrel.3 does not describe these')


if __name__ == '__main__':
    main()
