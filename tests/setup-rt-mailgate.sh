#!/bin/sh
# Extract Debian's real rt-mailgate (package rt5-clients) into tests/.rt/
# without installing it, so no MTA is pulled in.  It needs libwww-perl.
# Used by README's set-up command and by .ci/run; safe to run again.
set -eu
dir=$(cd "$(dirname "$0")" && pwd)/.rt
[ -x "$dir/usr/bin/rt-mailgate-5" ] && exit 0
mkdir -p "$dir"
cd "$dir"
apt-get download rt5-clients >/dev/null
dpkg -x rt5-clients_*.deb "$dir"
rm -f rt5-clients_*.deb
test -x "$dir/usr/bin/rt-mailgate-5"
echo "rt-mailgate: $dir/usr/bin/rt-mailgate-5"
