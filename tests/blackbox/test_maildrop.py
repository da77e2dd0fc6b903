"""sendmail run by an ordinary user (SPEC 11; issue 5): the setgid maildrop
helper undersmtpd-drop, the queue picking the maildrop up, and
make install-sendmail.  T46 (option injection) for this path too.

An ordinary user may not name a configuration (-C), so these tests run a
second undersmtpd built with its configuration and helper paths inside
MDTEST_DIR (Makefile: MDTEST_BIN); the test, as root, writes that directory
afresh and installs the helper there setgid, as make install-sendmail does.
"""
import fcntl
import grp
import os
import re
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import NOBODY, MAIL, ROOT, UNDERSMTPD, base_env, needs_root
from smarthost import Sink, free_port
from test_daemon import Daemon, daemon_conf
from test_spool import queue_ids, relay_conf

DROP = os.environ.get("UNDERSMTPD_DROP", str(Path(UNDERSMTPD).parent / "mdtest" /
                                           "undersmtpd-drop"))
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
    if os.geteuid() != 0:
        pytest.skip("SKIP: needs root (installs the setgid helper, chowns the spool)")
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
    log = gw.log_text()
    assert re.search(r" undersmtpd/pickup\[\d+\]: \w+: uid=65534 from=<nobody@mx\.example\.com> "
                     + re.escape(f"(maildrop {name})"), log), log


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
    assert r.returncode == 64 and b"is not the maildrop of" in r.stderr, r.stderr
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


def helper(md, data, size=None, user=as_nobody):
    """The helper run straight, as a user could, bypassing sendmail."""
    return subprocess.run([str(md.helper), str(md.dir), str(len(data) if size is None
                                                           else size)],
                          input=data, capture_output=True, preexec_fn=user, timeout=60)


def maildrop_file(rcpts=("a@remote.example",), body=b"Subject: x\n\nhi\n", sender="+"):
    return (b"undersmtpd-maildrop 1\nsender " + sender.encode() + b"\n" +
            b"".join(b"rcpt " + r.encode() + b"\n" for r in rcpts) + b"end\n" + body)


def test_forged_and_stale_maildrop_files(gw, md, sink):
    """T110: A maildrop file is the user's input: a damaged one is rejected with a log
    line and removed (not kept in bad/, where it could fill the disk), a hard
    link too; a helper's tmp file is removed once its helper is gone."""
    relay_conf(gw, sink.port, run_after_accept=False)
    (md.dir / "1.1").write_bytes(b"undersmtpd-maildrop 1\nsender +\nrcpt <x@y>\nend\nhi\n")
    (md.dir / "1.2").write_bytes(b"garbage\n")
    other = gw.base / "elsewhere"
    other.write_bytes(b"undersmtpd-maildrop 1\nsender +\nrcpt a@remote.example\nend\n\nx\n")
    os.link(other, md.dir / "1.3")
    dead = md.dir / "tmp.1.1.1"                    # readable and unlocked: its helper died
    dead.write_bytes(b"undersmtpd-maildrop 1\n")
    alive = md.dir / "tmp.2.2.2"                   # locked: a helper still writes it
    alive.write_bytes(b"undersmtpd-maildrop 1\n")
    born = md.dir / "tmp.3.3.3"                    # mode 0: a helper about to lock it
    born.write_bytes(b"")
    born.chmod(0)
    old_born = md.dir / "tmp.4.4.4"                # mode 0 for two hours: died at birth
    old_born.write_bytes(b"")
    old_born.chmod(0)
    os.utime(old_born, (time.time() - 7200,) * 2)
    with open(alive, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert gw.run("-q").returncode == 0
        assert md.files() == ["tmp.2.2.2", "tmp.3.3.3"]
    log = gw.log_text()
    assert "maildrop file 1.1 from uid 0 (" in log and "rejected and removed: bad rcpt" in log
    assert "rejected and removed: not a maildrop file" in log
    assert "rejected and removed: not a plain file with one link" in log
    assert "removed tmp.1.1.1, the partial maildrop file of a helper that died" in log
    assert "removed tmp.4.4.4" in log
    assert list((gw.spool / "bad").iterdir()) == []
    assert other.exists()                           # only the maildrop's name went
    assert sink.messages == []


def test_killed_helper_removed_at_next_pickup(gw, md, sink):
    """T110: Issue 15 item 3: a helper killed while writing (SIGKILL, as its own timeout
    or an OOM kill would) leaves a partial tmp file; it stays while the helper
    lives, and the next pickup after its death removes it."""
    relay_conf(gw, sink.port, run_after_accept=False)
    data = maildrop_file(body=b"Subject: x\n\n" + b"y" * 100000 + b"\n")
    p = subprocess.Popen([str(md.helper), str(md.dir), str(len(data))],
                         stdin=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=as_nobody)
    p.stdin.write(data[:50000])
    p.stdin.flush()
    for _ in range(500):
        files = md.files()
        if files and (md.dir / files[0]).stat().st_size > 0:
            break
        time.sleep(0.01)
    (name,) = md.files()
    assert name.startswith("tmp.")
    assert gw.run("-q").returncode == 0
    assert md.files() == [name]                     # its helper still writes it
    p.kill()
    p.wait()
    p.stdin.close()
    p.stderr.close()
    assert gw.run("-q").returncode == 0
    assert md.files() == []
    assert f"removed {name}, the partial maildrop file of a helper that died" in gw.log_text()
    assert sink.messages == []


def test_helper_enforces_the_configured_limits(gw, md):
    """T110: Issue 15 item 3: the helper, run straight, enforces max_message_size (73)
    and min_free_space (75) of the system configuration before writing."""
    relay_conf(gw, free_port(), extra="max_message_size = 1k\n", run_after_accept=False)
    r = helper(md, b"", size=10 * 1024 * 1024)
    assert r.returncode == 73, r.stderr
    assert b"is more than max_message_size (1024) allows" in r.stderr
    relay_conf(gw, free_port(), extra="min_free_space = 100000G\n", run_after_accept=False)
    r = helper(md, maildrop_file())
    assert r.returncode == 75, r.stderr
    assert b"not enough free space in " + str(md.dir).encode() in r.stderr
    assert md.files() == []
    # Through sendmail, the helper's 73 reaches the caller (its own check is first
    # when the file is the same; here the helper's limit is the tighter one).
    relay_conf(gw, free_port(), run_after_accept=False)
    assert md.send(["-t"], CRON_MAIL).returncode == 0


def test_disk_filling_while_the_helper_writes(gw, md):
    """T110: Issue 15 item 3: free space falls below min_free_space while the helper
    writes: it stops, exits 75 and leaves no file."""
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(md.dir)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: " + r.stderr.strip())
    try:
        os.chown(md.dir, MAIL.pw_uid, md.gid)
        md.dir.chmod(0o1730)
        relay_conf(gw, free_port(), extra="min_free_space = 2M\nmax_message_size = 10M\n",
                   run_after_accept=False)
        data = maildrop_file(body=b"Subject: x\n\n" + (b"z" * 999 + b"\n") * 3000)
        p = subprocess.Popen([str(md.helper), str(md.dir), str(len(data))],
                             stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                             preexec_fn=as_nobody)
        p.stdin.write(data[:1500000])
        p.stdin.flush()
        time.sleep(0.3)
        (md.dir / "filler").write_bytes(b"f" * (4 * 1024 * 1024))   # the disk fills
        try:
            p.stdin.write(data[1500000:])
            p.stdin.close()
        except BrokenPipeError:
            pass
        err = p.stderr.read()
        assert p.wait(timeout=60) == 75, err
        assert b"not enough free space" in err
        assert md.files() == ["filler"]
    finally:
        subprocess.run(["umount", str(md.dir)], check=True)


@pytest.mark.parametrize("body,why", [
    (b"Subject: x\n\nnul \0 byte\n", "the message contains a NUL byte"),
    (b"Subject: x\n\nbare\rcr\n", "the message contains a CR"),
    (b"Subject: x\n\n" + b"l" * 1200 + b"\n", "a line is longer than 998 characters"),
    (b"Received: by a\n" * 101 + b"Subject: x\n\nloop\n",
     "too many Received: headers (mail loop)"),
], ids=["nul", "bare-cr", "long-line", "hops"])
def test_bypassing_sendmail_checked_at_pickup(gw, md, sink, body, why):
    """T111: Issue 15 item 3: a file written with the helper straight gets at pickup the
    checks SMTP and sendmail make: NUL, bare CR, line length, hop count."""
    relay_conf(gw, sink.port, run_after_accept=False)
    assert helper(md, maildrop_file(body=body)).returncode == 0
    assert helper(md, maildrop_file(body=b"Subject: fine\n\nok\n")).returncode == 0
    assert gw.run("-q").returncode == 0
    assert "rejected and removed: " + why in gw.log_text()
    (m,) = sink.wait_messages(1)
    assert b"Subject: fine" in m.data
    time.sleep(0.2)
    assert len(sink.messages) == 1
    assert md.files() == [] and queue_ids(gw) == []


def test_bypassing_sendmail_max_recipients(gw, md, sink):
    """T111: Issue 15 item 3: more recipients than max_recipients in a maildrop file."""
    relay_conf(gw, sink.port, extra="max_recipients = 5\n", run_after_accept=False)
    rcpts = [f"r{i}@remote.example" for i in range(6)]
    assert helper(md, maildrop_file(rcpts=rcpts)).returncode == 0
    assert gw.run("-q").returncode == 0
    assert "rejected and removed: 6 recipients, max_recipients is 5" in gw.log_text()
    assert md.files() == [] and queue_ids(gw) == [] and sink.messages == []


def test_bad_directory_has_an_age_limit(gw, sink):
    """T110: Issue 15 item 3: bad/ keeps files queue.bad_lifetime (30 days by default)."""
    relay_conf(gw, sink.port, run_after_accept=False)
    assert gw.run("-q").returncode == 0             # makes the spool
    bad = gw.spool / "bad"
    for name, age in (("OLD.msg", 31), ("OLD.why", 31), ("NEW.msg", 29)):
        (bad / name).write_text("x\n")
        os.utime(bad / name, (time.time() - age * 86400,) * 2)
    assert gw.run("-q").returncode == 0
    assert sorted(p.name for p in bad.iterdir()) == ["NEW.msg"]
    assert "removed " + str(bad) + "/OLD.msg, in bad/ for longer than" in gw.log_text()
    gw.write_conf(f'smarthost "sink" {{ host = "127.0.0.1" port = {sink.port} tls = none }}\n'
                  'queue { bad_lifetime = 1d run_after_accept = false }\n')
    assert gw.run("-q").returncode == 0
    assert list(bad.iterdir()) == []


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


@needs_root
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


def test_dash_c_is_judged_by_the_default_configuration(gw, md, tmp_path):
    """Issue 15: -C FILE is honoured for root and the `user` of the default
    configuration, never for the user a chosen file names (which is anyone)."""
    relay_conf(gw, free_port(), run_after_accept=False)
    mine = gw.base / "mine.conf"
    theirs = gw.base / "theirs"
    theirs.mkdir()
    os.chown(theirs, NOBODY.pw_uid, NOBODY.pw_gid)
    mine.write_text(f'user = "nobody"\nspool_dir = "{theirs}/spool"\n'
                    f'hostname = "evil.example"\n')
    for args in (["-C", str(mine), "ops@remote.example"], ["-C", str(mine), "-bp"],
                 ["-C", str(mine), "-q"]):
        r = md.send(args, CRON_MAIL)
        assert r.returncode == 64, (args, r.stderr)
        assert b"-C is only for root and the user of " + str(MDTEST_DIR).encode() in r.stderr
    assert not (theirs / "spool").exists() and md.files() == []
