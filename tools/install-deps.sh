#!/bin/sh
# Install what undersmtpd needs to build and to run its tests on Debian 12,
# from Debian's archive only.  Python tests use Debian's /usr/bin/python3 with
# its python3-* packages (no PyPI).  Safe to run again.
set -eu
if [ "$(id -u)" -ne 0 ]; then
	exec sudo sh "$0" "$@"
fi
export DEBIAN_FRONTEND=noninteractive
# Postfix is the real smarthost of the end-to-end test and the benchmark's
# reference; preseeded so it installs unconfigured and never runs on port 25.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
# Request Tracker 5 for the real-RT tests (tests/blackbox/test_real_rt.py): its
# database is made by the tests in a temporary directory, never by dbconfig.
echo "request-tracker5 request-tracker5/dbconfig-install boolean false" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
	build-essential clang clang-tidy cppcheck libclang-rt-14-dev llvm pkg-config ca-certificates openssl \
	libpcre2-dev libconfuse-dev libssl-dev libcrypt-dev libcmocka-dev \
	python3 python3-pytest python3-aiosmtpd python3-cryptography \
	swaks libwww-perl libnet-ssleay-perl libio-socket-ssl-perl libauthen-sasl-perl \
	mandoc procps strace valgrind systemd xinetd postfix sasl2-bin libsasl2-modules haproxy mutt bsd-mailx \
	testssl.sh nmap pflogsumm fail2ban \
	debhelper dpkg-dev lintian debootstrap \
	request-tracker5 rt5-db-sqlite rt5-clients rt5-standalone >/dev/null
# pflogsumm and fail2ban: the tests read undersmtpd's log with the tools
# mail administrators run on Postfix's (fail2ban is installed, not started).
# sasl2-bin: saslpasswd2 for the SASL users of the probe tests' private Postfix
# (its saslauthd is not started either).
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
	systemctl disable --now fail2ban saslauthd >/dev/null 2>&1 || true
fi
# The real rt-mailgate for the tests, extracted without pulling in an MTA.
sh "$(dirname "$0")/../tests/setup-rt-mailgate.sh"
# promtool, to check the metrics endpoint's output (without the Prometheus server).
sh "$(dirname "$0")/../tests/setup-promtool.sh"
echo "install-deps: done"
