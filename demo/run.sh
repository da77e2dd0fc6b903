#!/bin/sh
# make demo: run the undersmtpd daemon on 127.0.0.1:2525 with the built-in
# demo configuration, in the foreground (Ctrl-C stops it).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
port=${DEMO_PORT:-2525}
run=$top/demo/run
# Pipe programs run as `nobody` when we are root: the demo directory must be
# reachable by that user, which a checkout under a private home is not.
if [ "$(id -u)" -eq 0 ] && ! runuser -u nobody -- test -x "$top/demo/file-message" 2>/dev/null; then
	run=${TMPDIR:-/tmp}/undersmtpd-demo
	echo "demo: $top is not reachable by the user 'nobody'; using $run instead"
fi
mkdir -p "$run/inbox"
chmod 755 "$run"
chmod 1777 "$run/inbox"
install -m 0755 "$top/demo/file-message" "$run/file-message"
sed -e "s|@RUN@|$run|g" -e "s|@PORT@|$port|g" "$top/demo/undersmtpd.conf.in" \
	> "$run/undersmtpd.conf"
sed "s|@RUN@|$run|g" "$top/demo/aliases.in" > "$run/aliases"
chmod 0644 "$run/undersmtpd.conf" "$run/aliases"
bin="$top/build/undersmtpd"
"$bin" -C "$run/undersmtpd.conf" --check-config
cat <<EOT

undersmtpd demo listening on 127.0.0.1:$port (Ctrl-C stops it).
  Send a message:   swaks --server 127.0.0.1:$port --to inbox@demo.localhost
  A retry (451):    swaks --server 127.0.0.1:$port --to busy@demo.localhost
  A regex alias:    swaks --server 127.0.0.1:$port --to ticket-42@demo.localhost
  Remote mail:      swaks --server 127.0.0.1:$port --to someone@example.org   (then: $bin -C $run/undersmtpd.conf --queue)
  What happens:     $bin -C $run/undersmtpd.conf --route inbox@demo.localhost
  Filed messages:   ls $run/inbox/
  Log:              tail -f $run/undersmtpd.log

EOT
exec "$bin" -d -C "$run/undersmtpd.conf"
