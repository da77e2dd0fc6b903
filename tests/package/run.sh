#!/bin/sh
# tests/package/run.sh - the Debian package tier (issue 18; make test-package):
#
#   1. builds undersmtpd_VERSION_ARCH.deb with dpkg-buildpackage from a copy
#      of the tracked tree, and lintian must report no error;
#   2. makes a clean Debian 12 (bookworm) with debootstrap from the host's
#      Debian mirror, where no daemon may start (policy-rc.d);
#   3. installs the package and request-tracker5 with apt, and checks that
#      no other MTA came along (request-tracker5 depends on
#      default-mta | mail-transport-agent: undersmtpd must be that);
#   4. sends a message with /usr/sbin/sendmail as root to a pipe alias, and
#      one as an ordinary user through the setgid maildrop helper and a
#      queue run, and finds both in the program's output;
#   5. plants, as mail, a link where the maildrop was and configures the
#      package again: postinst must not follow it (SPEC 11);
#   6. removes the package (the spool stays) and purges it (the spool and
#      the helper's override go).
#
# Needs root, network access to the Debian mirror and a few minutes.  Prints
# SKIP and exits 0 when not root; any failure exits 1 with what failed.
set -eu

say() { printf 'package: %s\n' "$*"; }
fail() { printf 'package: FAILED: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
	say "SKIP: needs root (debootstrap, chroot)"
	exit 0
fi
for t in dpkg-buildpackage debootstrap lintian; do
	command -v "$t" >/dev/null || fail "$t is not installed (tools/install-deps.sh)"
done

TOP=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /var/tmp/undersmtpd-package.XXXXXX)
ROOT="$WORK/root"
cleanup() {
	for m in "$ROOT/proc" "$ROOT/dev/pts" "$ROOT/dev"; do
		mountpoint -q "$m" 2>/dev/null && umount -l "$m"
	done
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
	DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"; }

# 1. The package, from what git tracks (nothing of a local build comes along).
say "building the package"
mkdir "$WORK/src"
(cd "$TOP" && git ls-files -z | xargs -0 cp --parents -t "$WORK/src")
(cd "$WORK/src" && dpkg-buildpackage -us -uc -b >"$WORK/build.log" 2>&1) ||
	{ tail -n 30 "$WORK/build.log"; fail "dpkg-buildpackage"; }
DEB=$(ls "$WORK"/undersmtpd_*_*.deb)
lintian --fail-on error "$DEB" >"$WORK/lintian.log" 2>&1 ||
	{ cat "$WORK/lintian.log"; fail "lintian reports errors"; }
say "built $(basename "$DEB"); lintian: no errors"

# 2. A clean Debian 12 from the host's own mirror.
MIRROR=$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources \
	2>/dev/null | head -n 1)
[ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
say "debootstrap bookworm from $MIRROR"
debootstrap --variant=minbase bookworm "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
	{ tail -n 20 "$WORK/debootstrap.log"; fail "debootstrap"; }
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 0755 "$ROOT/usr/sbin/policy-rc.d"
mount -t proc proc "$ROOT/proc"
cp "$DEB" "$ROOT/tmp/"

# 3. The package and Request Tracker, with apt, and no other MTA.
say "apt install ./$(basename "$DEB") request-tracker5"
in_root apt-get update -qq >"$WORK/apt.log" 2>&1 || { cat "$WORK/apt.log"; fail "apt-get update"; }
in_root apt-get install -y -q --no-install-recommends "/tmp/$(basename "$DEB")" \
	request-tracker5 >>"$WORK/apt.log" 2>&1 ||
	{ tail -n 30 "$WORK/apt.log"; fail "apt-get install"; }
in_root dpkg-query -W -f '${Status}\n' request-tracker5 | grep -q "install ok installed" ||
	fail "request-tracker5 is not installed"
others=$(in_root dpkg-query -W -f '${Package} ${Status}\n' 2>/dev/null |
	awk '$NF == "installed" {print $1}' |
	grep -E '^(postfix|exim4.*|sendmail-bin|nullmailer|msmtp-mta|dma|opensmtpd|courier-mta|citadel-mta|ssmtp|esmtp-run|masqmail|lsb-invalid-mta)$' || true)
[ -z "$others" ] || fail "another MTA came along: $others"
say "installed next to request-tracker5; no other MTA ($(in_root dpkg-query -W -f '${Version}' request-tracker5))"
[ "$(in_root stat -c '%a %G' /usr/libexec/undersmtpd/undersmtpd-drop)" = "2755 undersmtpd-drop" ] ||
	fail "the maildrop helper is not setgid undersmtpd-drop"
[ "$(in_root readlink -f /usr/sbin/sendmail)" = /usr/sbin/undersmtpd ] ||
	fail "/usr/sbin/sendmail is not undersmtpd"

# 4. Mail through /usr/sbin/sendmail, from root and from an ordinary user.
printf 'pkgtest: "|/bin/sh -c '"'"'cat >> /var/tmp/pkgtest.out'"'"'"\n' >>"$ROOT/etc/aliases"
in_root /usr/sbin/undersmtpd --check-config >"$WORK/check.log" 2>&1 ||
	{ cat "$WORK/check.log"; fail "undersmtpd --check-config on the installed configuration"; }
printf 'Subject: from root\n\nsent as root\n' | in_root /usr/sbin/sendmail pkgtest ||
	fail "sendmail as root exited $?"
printf 'Subject: from nobody\n\nsent as nobody\n' |
	in_root setpriv --reuid=nobody --regid=nogroup --clear-groups /usr/sbin/sendmail pkgtest ||
	fail "sendmail as nobody exited $?"
in_root /usr/sbin/undersmtpd -q || fail "the queue run (-q) exited $?"
grep -q "sent as root" "$ROOT/var/tmp/pkgtest.out" 2>/dev/null ||
	fail "root's message did not reach the pipe alias"
grep -q "sent as nobody" "$ROOT/var/tmp/pkgtest.out" ||
	fail "nobody's message did not reach the pipe alias through the maildrop"
say "sendmail as root and as nobody: both messages reached the program"

# 5. SPEC 11: root never follows a link in a directory another account can
#    write.  The spool is mail's: mail puts a link to a root-only file where
#    the maildrop was, and the package is configured again (an upgrade).
mkdir -m 0700 "$ROOT/etc/undersmtpd-victim"        # root's, as /root is
in_root setpriv --reuid=mail --regid=mail --clear-groups sh -c \
	'rm -rf /var/spool/undersmtpd/maildrop && ln -s /etc/undersmtpd-victim /var/spool/undersmtpd/maildrop' ||
	fail "mail could not replace its maildrop (the attack's setup)"
in_root dpkg -i "/tmp/$(basename "$DEB")" >>"$WORK/apt.log" 2>&1 ||
	{ tail -n 20 "$WORK/apt.log"; fail "dpkg -i (reconfigure) with a planted link"; }
[ "$(in_root stat -c '%U:%G %a' /etc/undersmtpd-victim)" = "root:root 700" ] ||
	fail "postinst followed mail's link: /etc/undersmtpd-victim is now $(in_root stat -c '%U:%G %a' /etc/undersmtpd-victim)"
say "a link planted by mail in the spool: postinst did not follow it"
in_root setpriv --reuid=mail --regid=mail --clear-groups rm /var/spool/undersmtpd/maildrop

# 6. remove keeps the spool; purge removes it and the helper's override.
in_root apt-get remove -y -q undersmtpd >>"$WORK/apt.log" 2>&1 ||
	{ tail -n 20 "$WORK/apt.log"; fail "apt-get remove"; }
[ -d "$ROOT/var/spool/undersmtpd" ] || fail "remove deleted the spool"
[ -e "$ROOT/etc/undersmtpd.conf" ] || fail "remove deleted the configuration"
in_root dpkg --purge undersmtpd >>"$WORK/apt.log" 2>&1 ||
	{ tail -n 20 "$WORK/apt.log"; fail "dpkg --purge"; }
[ ! -e "$ROOT/var/spool/undersmtpd" ] || fail "purge left the spool"
[ ! -e "$ROOT/etc/undersmtpd.conf" ] || fail "purge left the configuration"
! in_root dpkg-statoverride --list /usr/libexec/undersmtpd/undersmtpd-drop >/dev/null ||
	fail "purge left the helper's statoverride"
say "remove kept the spool, purge removed it: all good"
