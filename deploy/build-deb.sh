#!/usr/bin/env bash
# deploy/build-deb.sh - build a Debian package, petrel_VERSION_ARCH.deb, from
# this tree: a release build (Debian's hardening flags, --prefix=/usr) put
# together with `meson install --destdir` and `dpkg-deb`.  One package holds
# petreld with its unit and configuration (a conffile), the petrel CLI, and
# libpetrel with petrel.h and petrel.pc.  Installing it starts petreld and
# enables it at boot, as Debian does for its daemons; removing it stops it.
#
# Usage: deploy/build-deb.sh [OUTDIR]     (default: build-deb/ at the top)
# OUTDIR/build is the meson build directory (kept: a rebuild is incremental),
# OUTDIR/root the tree packed, OUTDIR/petrel_*.deb the package.  Needs
# meson, ninja, gcc, the -dev packages of `deploy/install-deps.sh build`
# and dpkg-dev.
# DEBFULLNAME and DEBEMAIL name the maintainer, as for other Debian tools.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$(mkdir -p "${1:-$SRC/build-deb}" && cd "${1:-$SRC/build-deb}" && pwd)
BUILD=$OUT/build
ROOT=$OUT/root

missing=()
for tool in meson ninja pkg-config cc strip dpkg-shlibdeps dpkg-buildflags; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "build-deb.sh: ${missing[*]} not found; install the build dependencies:" >&2
  echo "  apt-get install meson ninja-build pkg-config gcc dpkg-dev libevent-dev" \
    "libsqlite3-dev libssl-dev libsystemd-dev libnats-dev libwslay-dev libhttp-parser-dev" >&2
  exit 1
fi

# One build at a time in OUTDIR (the deploy tests may ask for it together).
exec 9>"$OUT/.lock"
flock 9

ARCH=$(dpkg --print-architecture)
MULTIARCH=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
# The distribution's unit directory: /lib/systemd/system on Debian 12.
UNITDIR=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || true)
UNITDIR=${UNITDIR:-/lib/systemd/system}
MAINTAINER="${DEBFULLNAME:-Petrel maintainers} <${DEBEMAIL:-maintainers@petrel.invalid}>"

# ---- build and install into ROOT --------------------------------------------
if [ ! -f "$BUILD/build.ninja" ]; then
  (
    cd "$SRC"
    export DEB_BUILD_MAINT_OPTIONS=hardening=+all
    eval "$(dpkg-buildflags --export=sh)"
    meson setup "$BUILD" --buildtype=plain --prefix=/usr --sysconfdir=/etc \
      --localstatedir=/var --libdir="lib/$MULTIARCH" \
      -Dtests=false -Dfuzz=disabled -Dsystemd=enabled \
      -Dsystemdsystemunitdir="$UNITDIR" -Dwerror=false
  )
fi
ninja -C "$BUILD"
VERSION=$(meson introspect --projectinfo "$BUILD" | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')

rm -rf "$ROOT"
DESTDIR="$ROOT" meson install -C "$BUILD" --no-rebuild --quiet
DOC=$ROOT/usr/share/doc/petrel
LIBDIR=usr/lib/$MULTIARCH
LIBFILE=$(cd "$ROOT/$LIBDIR" && echo libpetrel.so.*.*)
# Policy 8.1: shared libraries are not executable (meson installs 0755).
chmod 0644 "$ROOT/$LIBDIR/$LIBFILE"
# Stripped as dh_strip does it (no separate debug symbols package).
strip --remove-section=.comment --remove-section=.note "$ROOT/usr/sbin/petreld" \
  "$ROOT/usr/bin/petrel"
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$ROOT/$LIBDIR/$LIBFILE"

# Debian wants manual pages and changelogs compressed, reproducibly.
find "$ROOT/usr/share/man" -type f -name '*.[0-9]' -exec gzip -9n {} +

COMMIT=$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE=$(git -C "$SRC" log -1 --format=%aD 2>/dev/null || date -R)
YEAR=$(date -d "$DATE" +%Y)
cat > "$DOC/changelog" <<EOF
petrel ($VERSION) unstable; urgency=medium

  * Built from git commit $COMMIT with deploy/build-deb.sh.

 -- $MAINTAINER  $DATE
EOF
gzip -9n "$DOC/changelog"

cat > "$DOC/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: petrel
Source: the Petrel source tree (deploy/build-deb.sh)

Files: *
Copyright: $YEAR the Petrel authors
License: MIT

License: MIT
 Permission is hereby granted, free of charge, to any person obtaining a
 copy of this software and associated documentation files (the "Software"),
 to deal in the Software without restriction, including without limitation
 the rights to use, copy, modify, merge, publish, distribute, sublicense,
 and/or sell copies of the Software, and to permit persons to whom the
 Software is furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included
 in all copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS
 OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF
 MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT.
 IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY
 CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT,
 TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE
 SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
EOF

# One package holds the library with its development files and the
# programs, on purpose (petrel_*.deb): lintian's advice for split library
# packages does not apply.
mkdir -p "$ROOT/usr/share/lintian/overrides"
cat > "$ROOT/usr/share/lintian/overrides/petrel" <<EOF
# libpetrel, petrel.h and petrel.pc ship with the programs in one package.
petrel: package-name-doesnt-match-sonames libpetrel0
petrel: link-to-shared-library-in-wrong-package $LIBDIR/$LIBFILE [$LIBDIR/libpetrel.so]
EOF

# ---- control files ----------------------------------------------------------
mkdir -p "$ROOT/DEBIAN"

# Depends: the libraries the programs link, as dpkg-shlibdeps finds them
# (it wants a debian/control to read; a scratch one does).
SCRATCH=$OUT/shlibdeps
rm -rf "$SCRATCH"
mkdir -p "$SCRATCH/debian"
printf 'Source: petrel\n\nPackage: petrel\nArchitecture: any\n' > "$SCRATCH/debian/control"
# libpetrel is in the package itself: dpkg-shlibdeps must not look for it
# elsewhere.
printf 'libpetrel 0 petrel (>= %s)\n' "$VERSION" > "$SCRATCH/debian/shlibs.local"
DEPENDS=$(cd "$SCRATCH" && dpkg-shlibdeps -O -S"$ROOT" \
  "$ROOT/usr/sbin/petreld" "$ROOT/usr/bin/petrel" "$ROOT/$LIBDIR/libpetrel.so.0" \
  2>"$SCRATCH/shlibdeps.log" | sed -n 's/^shlibs:Depends=//p')
if [ -z "$DEPENDS" ]; then
  cat "$SCRATCH/shlibdeps.log" >&2
  echo "build-deb.sh: dpkg-shlibdeps found no dependencies" >&2
  exit 1
fi
# dpkg-shlibdeps names petrel itself for libpetrel; the package provides it.
DEPENDS=$(echo "$DEPENDS" | sed -E 's/(^|, )petrel \([^)]*\)//; s/^, //')

SIZE=$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
cat > "$ROOT/DEBIAN/control" <<EOF
Package: petrel
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $SIZE
Depends: $DEPENDS
Section: net
Priority: optional
Description: MQTT broker with durable persistent sessions
 Petrel is an MQTT 3.1.1 and 5.0 broker.  Its daemon, petreld, stores every
 message it acknowledges in SQLite before acknowledging it, so persistent
 sessions, their queues and retained messages survive restarts and crashes.
 .
 This package holds petreld with its systemd unit (started on install,
 listening on 127.0.0.1:1883), its configuration in /etc/petrel, the petrel
 command-line client (pub, sub, bench, passwd), and libpetrel, the client
 library, with its header and pkg-config file.
EOF

printf '/etc/petrel/petreld.conf\n' > "$ROOT/DEBIAN/conffiles"
printf 'libpetrel 0 petrel (>= %s)\n' "$VERSION" > "$ROOT/DEBIAN/shlibs"
printf 'activate-noawait ldconfig\n' > "$ROOT/DEBIAN/triggers"

# The maintainer scripts do for petreld.service what dh_installsystemd
# writes for Debian's own daemons: enable and start on install, restart on
# upgrade, stop on removal, forget it on purge.
cat > "$ROOT/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ] || [ "$1" = abort-upgrade ] || [ "$1" = abort-deconfigure ] ||
   [ "$1" = abort-remove ]; then
	deb-systemd-helper unmask petreld.service >/dev/null || true
	# was-enabled is true for a new installation: enable it then.
	if deb-systemd-helper --quiet was-enabled petreld.service; then
		deb-systemd-helper enable petreld.service >/dev/null || true
	else
		deb-systemd-helper update-state petreld.service >/dev/null || true
	fi
	if [ -d /run/systemd/system ]; then
		systemctl --system daemon-reload >/dev/null || true
		if [ -n "$2" ]; then
			deb-systemd-invoke restart petreld.service >/dev/null || true
		else
			deb-systemd-invoke start petreld.service >/dev/null || true
		fi
	fi
fi
EOF
cat > "$ROOT/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
	deb-systemd-invoke stop petreld.service >/dev/null || true
fi
EOF
cat > "$ROOT/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
# Masked on removal (unmasked by a new installation) before systemd reloads,
# so that systemd sees the unit gone and says nothing about stale files.
if [ "$1" = remove ]; then
	if command -v deb-systemd-helper >/dev/null; then
		deb-systemd-helper mask petreld.service >/dev/null || true
	fi
fi
if [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = purge ]; then
	if command -v deb-systemd-helper >/dev/null; then
		deb-systemd-helper purge petreld.service >/dev/null || true
		deb-systemd-helper unmask petreld.service >/dev/null || true
	fi
	# The store of the DynamicUser= service (/var/lib/petrel points there).
	rm -rf /var/lib/private/petrel /var/lib/petrel
fi
EOF
chmod 0755 "$ROOT/DEBIAN/postinst" "$ROOT/DEBIAN/prerm" "$ROOT/DEBIAN/postrm"

(cd "$ROOT" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
  xargs -0 md5sum) > "$ROOT/DEBIAN/md5sums"
chmod 0644 "$ROOT"/DEBIAN/{control,conffiles,shlibs,triggers,md5sums}

DEB=$OUT/petrel_${VERSION}_${ARCH}.deb
rm -f "$OUT"/petrel_*.deb
dpkg-deb --root-owner-group -Zxz --build "$ROOT" "$DEB" >/dev/null
echo "$DEB"
