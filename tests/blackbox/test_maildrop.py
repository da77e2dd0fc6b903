"""sendmail run by an ordinary user (SPEC 11; issue 5): the setgid maildrop
helper undersmtpd-drop, the queue picking the maildrop up, and
make install-sendmail.  T46 (option injection) for this path too.

An ordinary user may not name a configuration (-C), so these tests run a
second undersmtpd built with its configuration and helper paths inside
MDTEST_DIR (Makefile: MDTEST_BIN); the test, as root, writes that directory
afresh and installs the helper there setgid, as make install-sendmail does.
"""
import grp
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import NOBODY, MAIL, ROOT, UNDERSMTPD, base_env
from smarthost import Sink, free_port
from test_daemon import Daemon, daemon_conf
from test_spool import queue_ids, relay_conf

DROP = os.environ.get("UNDERSMTPD_DROP", str(Path(UNDERSMTPD).parent / "undersmtpd-drop"))
MDTEST = os.environ.get("UNDERSMTPD_MDTEST", str(Path(UNDERSMTPD).parent / "mdtest" /
                                                 "undersmtpd"))
MDTEST_DIR = Path(os.environ.get("MDTEST_DIR", "/tmp/undersmtpd-maildrop-test"))
GROUP = "undersmtpd-drop"


def drop_gid():
    try:
        return grp.getgrnam(GROUP).gr_gid
    except KeyError:
        subprocess.run(["groupadd", "--system", GROUP], check=True)
        return grp.getgrnam(GROUP).gr_gid


def as_nobody():
    os.setgroups([])
    os.setgid(NOBODY.pw_gid)
    os.setuid(NOBODY.pw_uid)


class Maildrop:
    """A gateway whose spool has a maildrop, and a sendmail for ordinary users."""

    def __init__(self, gw):
        self.gw = gw
        self.gid = drop_gid()
        shutil.rmtree(MDTEST_DIR, ignore_errors=True)
        MDTEST_DIR.mkdir(mode=0o755)
        MDTEST_DIR.chmod(0o755)
        self.helper = MDTEST_DIR / "undersmtpd-drop"
        shutil.copy2(DROP, self.helper)
        os.chown(self.helper, 0, self.gid)
        self.helper.chmod(0o2755)
        (MDTEST_DIR / "undersmtpd.conf").symlink_to(gw.conf)
        self.sendmail = MDTEST_DIR / "sendmail"
        shutil.copy2(MDTEST, self.sendmail)
        self.sendmail.chmod(0o755)
        # What make install-sendmail does to the spool.
        gw.spool.mkdir(mode=0o710)
        os.chown(gw.spool, MAIL.pw_uid, self.gid)
        gw.spool.chmod(0o710)
        self.dir = gw.spool / "maildrop"
        self.dir.mkdir()
        os.chown(self.dir, MAIL.pw_uid, self.gid)
        self.dir.chmod(0o1730)

    def send(self, args, data, user=as_nobody):
        return subprocess.run([str(self.sendmail), *args], input=data, capture_output=True,
                              timeout=60, env=base_env(), preexec_fn=user, cwd="/")

    def files(self):
        return sorted(p.name for p in self.dir.iterdir())

    def close(self):
        shutil.rmtree(MDTEST_DIR, ignore_errors=True)


@pytest.fixture
def md(gw):
    m = Maildrop(gw)
    yield m
    m.close()


@pytest.fixture
def sink():
    s = Sink().start()
    yield s
    s.stop()


CRON_MAIL = b"To: ops@remote.example\n\nThe nightly backup failed.\n"


def test_cron_style_mail_from_an_ordinary_user(gw, md, sink):
    """Issue 5: only To: and a body, as cron sends it, from a user who may not
    touch the spool; delivered after the next queue run, with our Received:."""
    relay_conf(gw, sink.port, run_after_accept=False)
    # Debian cron's own invocation.
    r = md.send(["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "ops@remote.example"],
                CRON_MAIL)
    assert r.returncode == 0, r.stderr
    assert r.stderr == b""
    (name,) = md.files()
    assert not name.startswith("tmp.")
    st = (md.dir / name).stat()
    assert st.st_uid == NOBODY.pw_uid and st.st_gid == md.gid
    assert queue_ids(gw) == []                     # not in the queue yet
    assert gw.run("-q").returncode == 0
    (m,) = sink.wait_messages(1)
    assert m.sender == "nobody@mx.example.com"
    assert m.rcpts == ["ops@remote.example"]
    assert b"Received: by mx.example.com (undersmtpd, from userid 65534)" in m.data
    assert b"From: CronDaemon <nobody@mx.example.com>\r\n" in m.data
    assert b"Message-ID: <" in m.data and b"Date: " in m.data
    assert m.data.endswith(b"\r\n\r\nThe nightly backup failed.\r\n")
    assert md.files() == []
    assert f"uid=65534, nrcpt=1 (maildrop {name})" in gw.log_text()


def test_the_user_cannot_read_or_change_the_spool(gw, md):
    """SPEC 11: the invoking user can never read or change the spool - not the
    maildrop listing, not its own file, not the queue, not mailq."""
    relay_conf(gw, free_port(), run_after_accept=False)
    assert md.send(["-t"], CRON_MAIL).returncode == 0
    (name,) = md.files()
    probe = ("import os, sys\n"
             "for f in (lambda: os.listdir(sys.argv[1]),\n"
             "          lambda: open(sys.argv[1] + '/' + sys.argv[2]).read(),\n"
             "          lambda: os.unlink(sys.argv[1] + '/' + sys.argv[2]),\n"
             "          lambda: open(sys.argv[1] + '/x', 'w'),\n"
             "          lambda: os.listdir(sys.argv[3])):\n"
             "    try:\n"
             "        f(); print('ALLOWED')\n"
             "    except PermissionError:\n"
             "        print('denied')\n")
    r = subprocess.run(["/usr/bin/python3", "-c", probe, str(md.dir), name,
                        str(gw.spool / "queue")], capture_output=True, text=True,
                       preexec_fn=as_nobody, timeout=30)
    assert r.stdout.split() == ["denied"] * 5, r.stdout + r.stderr
    mailq = subprocess.run([str(MDTEST_DIR / "sendmail"), "-bp"], capture_output=True,
                           preexec_fn=as_nobody, timeout=30, env=base_env())
    assert mailq.returncode != 0 and b"nightly" not in mailq.stdout
    # Nor can the helper be pointed at a directory of the user's choosing.
    own = Path(gw.base) / "mine"
    own.mkdir()
    os.chown(own, NOBODY.pw_uid, NOBODY.pw_gid)
    r = subprocess.run([str(md.helper), str(own), "40"], input=b"undersmtpd-maildrop 1\n" * 2,
                       capture_output=True, preexec_fn=as_nobody, timeout=30)
    assert r.returncode == 78 and b"is not a maildrop" in r.stderr
    assert list(own.iterdir()) == []


def test_pipe_alias_runs_from_the_queue(gw, md):
    """SPEC 11: maildrop mail to a pipe alias runs the program with policy queue:
    at the queue run, as the pipe user, with the user's envelope."""
    relay_conf(gw, free_port(), run_after_accept=False)
    gw.write_aliases('support: "|@REC@"\n')
    r = md.send(["-oi", "-f", "<>", "-t"],
                b"From: RT <rt@example.com>\nTo: support@example.com\n"
                b"Bcc: hidden@example.com\nSubject: ticket\n\nbody\n.\nmore\n")
    assert r.returncode == 67, r.stderr           # hidden@: no such user, the rest goes
    assert b"<hidden@example.com>: 550 5.1.1" in r.stderr
    assert gw.records() == []
    assert gw.run("-q").returncode == 0
    rec = gw.one_record()
    assert rec.env["SENDER"] == "" and rec.env["RECIPIENT"] == "support@example.com"
    assert rec.ids.startswith(f"uid={NOBODY.pw_uid} ")      # run as the pipe user
    assert b"Bcc" not in rec.stdin and b"\n.\nmore\n" in rec.stdin
    assert b"from userid 65534" in rec.stdin


def test_refusals_write_nothing(gw, md):
    """Unknown recipients (67), bad options (T46: 64), -C (64), a message over
    max_message_size (65): non-zero exit and nothing in the maildrop."""
    relay_conf(gw, free_port(), extra="max_message_size = 1k\n", run_after_accept=False)
    cases = [(["nosuch@example.com"], CRON_MAIL, 67),
             (["-X", "/tmp/x", "ops@remote.example"], CRON_MAIL, 64),
             (["-C", str(gw.conf), "ops@remote.example"], CRON_MAIL, 64),
             (["-oQ/tmp", "ops@remote.example"], CRON_MAIL, 64),
             (["ops@remote.example"], b"Subject: big\n\n" + (b"x" * 70 + b"\n") * 30, 65),
             (["-t"], b"Subject: nobody to send to\n\nbody\n", 65)]
    for args, data, code in cases:
        r = md.send(args, data)
        assert r.returncode == code, (args, r.stderr)
    assert md.files() == []


def test_without_the_helper_exit_75(gw, md):
    """Where make install-sendmail has not installed the helper: exit 75 (the
    caller keeps the message) and a message naming the helper."""
    relay_conf(gw, free_port(), run_after_accept=False)
    md.helper.unlink()
    r = md.send(["-t"], CRON_MAIL)
    assert r.returncode == 75
    assert b"cannot run the maildrop helper " + str(md.helper).encode() in r.stderr
    assert md.files() == []


def test_helper_keeps_nothing_incomplete(gw, md):
    """The helper stores exactly the announced bytes of a maildrop file, or
    nothing: short input, long input and non-maildrop input are refused."""
    good = b"undersmtpd-maildrop 1\nsender +\nrcpt a@example.com\nend\nSubject: x\n\nhi\n"
    for data, size in [(good[:-3], len(good)), (good + b"extra", len(good)),
                       (b"MAIL FROM:<x>\n" + good, len(good) + 14)]:
        r = subprocess.run([str(md.helper), str(md.dir), str(size)], input=data,
                           capture_output=True, preexec_fn=as_nobody, timeout=30)
        assert r.returncode != 0 and r.stderr, data
    assert md.files() == []
    r = subprocess.run([str(md.helper), str(md.dir), str(len(good))], input=good,
                       capture_output=True, preexec_fn=as_nobody, timeout=30)
    assert r.returncode == 0, r.stderr
    (name,) = md.files()
    assert (md.dir / name).read_bytes() == good
    assert stat.S_IMODE((md.dir / name).stat().st_mode) == 0o644


def test_forged_and_stale_maildrop_files(gw, md, sink):
    """A maildrop file is the user's input: damaged ones go to bad/ with the
    reason, a hard link is refused, a helper's stale tmp file is removed."""
    relay_conf(gw, sink.port, run_after_accept=False)
    (md.dir / "1.1").write_bytes(b"undersmtpd-maildrop 1\nsender +\nrcpt <x@y>\nend\nhi\n")
    (md.dir / "1.2").write_bytes(b"garbage\n")
    other = gw.base / "elsewhere"
    other.write_bytes(b"undersmtpd-maildrop 1\nsender +\nrcpt a@remote.example\nend\n\nx\n")
    os.link(other, md.dir / "1.3")
    stale = md.dir / "tmp.1.1.1"
    stale.write_bytes(b"undersmtpd-maildrop 1\n")
    os.utime(stale, (time.time() - 2 * 86400,) * 2)
    fresh = md.dir / "tmp.2.2.2"
    fresh.write_bytes(b"undersmtpd-maildrop 1\n")
    assert gw.run("-q").returncode == 0
    assert md.files() == ["tmp.2.2.2"]
    bad = sorted(p.name for p in (gw.spool / "bad").iterdir())
    assert bad == ["maildrop.1.1", "maildrop.1.1.why", "maildrop.1.2", "maildrop.1.2.why",
                   "maildrop.1.3", "maildrop.1.3.why"]
    assert "bad rcpt address" in (gw.spool / "bad" / "maildrop.1.1.why").read_text()
    assert "not a maildrop file" in (gw.spool / "bad" / "maildrop.1.2.why").read_text()
    assert "one link" in (gw.spool / "bad" / "maildrop.1.3.why").read_text()
    assert sink.messages == []


def test_daemon_picks_the_maildrop_up(gw, md, sink):
    """The daemon notices the maildrop changing and delivers without -q; the
    spool keeps the maildrop's group and mode 0710 across the daemon's start."""
    port = free_port()
    daemon_conf(gw, port, f'smarthost "sink" {{ host = "127.0.0.1" port = {sink.port} '
                          f'tls = none }}\n')
    d = Daemon(gw, port)
    try:
        assert stat.S_IMODE(gw.spool.stat().st_mode) == 0o710
        assert gw.spool.stat().st_gid == md.gid
        r = md.send(["-t"], CRON_MAIL)
        assert r.returncode == 0, r.stderr
        (m,) = sink.wait_messages(1, timeout=30)
        assert m.rcpts == ["ops@remote.example"]
    finally:
        d.stop()
    assert md.files() == []


def test_install_sendmail(gw, tmp_path):
    """make install-sendmail: links, the setgid helper, the maildrop - and it
    never replaces another MTA's sendmail."""
    build = str(Path(UNDERSMTPD).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    dest = tmp_path / "root"
    drop_gid()

    def install():
        return subprocess.run(["make", "-s", "-C", str(ROOT), f"BUILD={build}",
                               f"DESTDIR={dest}", "PREFIX=/usr", "SPOOL_DIR=/var/spool/usd",
                               "install-sendmail"], capture_output=True, text=True,
                              env=env, timeout=300)

    (dest / "usr/sbin").mkdir(parents=True)
    (dest / "usr/sbin/sendmail").write_text("another MTA\n")
    r = install()
    assert r.returncode != 0 and "is not undersmtpd" in r.stderr
    assert (dest / "usr/sbin/sendmail").read_text() == "another MTA\n"
    assert not (dest / "var/spool/usd").exists()
    (dest / "usr/sbin/sendmail").unlink()
    r = install()
    assert r.returncode == 0, r.stdout + r.stderr
    for link in ("usr/sbin/sendmail", "usr/bin/mailq", "usr/bin/newaliases"):
        assert os.readlink(dest / link) == "/usr/sbin/undersmtpd"
    helper = (dest / "usr/libexec/undersmtpd/undersmtpd-drop").stat()
    assert stat.S_IMODE(helper.st_mode) == 0o2755 and helper.st_gid == drop_gid()
    spool = (dest / "var/spool/usd").stat()
    maildrop = (dest / "var/spool/usd/maildrop").stat()
    assert stat.S_IMODE(spool.st_mode) == 0o710 and spool.st_gid == drop_gid()
    assert stat.S_IMODE(maildrop.st_mode) == 0o1730 and maildrop.st_uid == MAIL.pw_uid
    assert install().returncode == 0              # again: our own links are fine
