#!/bin/sh
# Extract Debian's promtool (package prometheus) into tests/.prom/ without
# installing the package, whose scripts would start a Prometheus server on
# every address of the machine.  The metrics tests run `promtool check
# metrics` on what the daemon serves.  Used by tools/install-deps.sh; safe to
# run again.
set -eu
dir=$(cd "$(dirname "$0")" && pwd)/.prom
[ -x "$dir/usr/bin/promtool" ] && exit 0
mkdir -p "$dir"
cd "$dir"
apt-get download prometheus >/dev/null
dpkg -x prometheus_*.deb "$dir"
rm -f prometheus_*.deb
rm -f "$dir/usr/bin/prometheus"      # the server is not needed, only its checker
test -x "$dir/usr/bin/promtool"
echo "promtool: $dir/usr/bin/promtool"
