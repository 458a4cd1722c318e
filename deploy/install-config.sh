#!/bin/sh
# install-config.sh - meson install script: installs the example
# configuration as petreld.conf unless the file already exists, so that
# reinstalling or upgrading never overwrites an operator's settings.
# Usage: install-config.sh EXAMPLE CONFDIR   (DESTDIR is honoured)
set -eu
src=$1
dest="${DESTDIR:-}$2/petreld.conf"
if [ -e "$dest" ]; then
    echo "Keeping the existing $dest (the example is in the documentation directory)"
    exit 0
fi
mkdir -p "$(dirname "$dest")"
install -m 0644 "$src" "$dest"
echo "Installing $src to $dest"
