"""sendmail compatibility (SPEC 2, sendmail row; issue 5): RT's invocations,
bad options (T46), sysexits codes, sendmail's other modes, and the outbound
role of T26 (what the smarthost sees)."""
import os
import subprocess

import pytest

from conftest import needs_root, tool
from smarthost import Sink
from test_spool import queue_ids, relay_conf

# Run as root: sendmail -C and the spool as root.
pytestmark = needs_root


def sendmail(gw, args, data, name="sendmail", env=None, preexec=None):
    link = gw.base / name
    if not link.exists():
        os.symlink(gw.shared_binary(), link)
    return subprocess.run([str(link), "-C", str(gw.conf), *args], input=data,
                          capture_output=True, timeout=60, env=env, preexec_fn=preexec)


@pytest.fixture
def sink():
    s = Sink().start()
    yield s
    s.stop()


def test_rt_invocations(gw, sink):
    """RT's own: sendmail -oi -t, and sendmail -oi -f "<>" -t (auto-replies)."""
    relay_conf(gw, sink.port, run_after_accept=False)
    gw.write_aliases('rt: "|@REC@"\n')
    msg = (b"From: RT <rt@example.com>\nTo: requestor@remote.example, rt@example.com\n"
           b"Bcc: secret@remote.example\nSubject: [rt #1] ack\n\nThanks.\n.\nstill body\n")
    r = sendmail(gw, ["-oi", "-t"], msg)
    assert r.returncode == 0, r.stderr
    r = sendmail(gw, ["-oi", "-f", "<>", "-t"], msg)
    assert r.returncode == 0, r.stderr
    recs = gw.records()
    assert len(recs) == 2
    assert recs[0].env["SENDER"] == "root@mx.example.com" and recs[1].env["SENDER"] == ""
    body = recs[0].stdin
    assert b"Bcc:" not in body and b"\n.\nstill body\n" in body        # -oi: "." is data
    assert b"Message-ID: <" in body and b"Date: " in body             # added
    assert b"From: RT <rt@example.com>\n" in body                      # kept
    assert gw.run("-q").returncode == 0
    msgs = sink.wait_messages(2)
    assert sorted(tuple(sorted(m.rcpts)) for m in msgs) == \
        [("requestor@remote.example", "secret@remote.example")] * 2
    assert {m.sender for m in msgs} == {"root@mx.example.com", ""}
    assert all(b"Bcc" not in m.data for m in msgs)


def test_dot_ends_message_without_i_and_stray_cr(gw, sink):
    """T26: without -i a lone "." ends the message; a stray CR and LF endings reach
    the smarthost as CRLF only, in exactly one message."""
    relay_conf(gw, sink.port, run_after_accept=False)
    r = sendmail(gw, ["bob@remote.example"],
                 b"Subject: t\n\nline one\nstray\rcr\n.\nMAIL FROM:<x@y>\n")
    assert r.returncode == 0, r.stderr
    assert gw.run("-q").returncode == 0
    (m,) = sink.wait_messages(1)
    assert m.data.endswith(b"\r\n\r\nline one\r\nstray cr\r\n")
    assert b"\n" not in m.data.replace(b"\r\n", b"") and b"\r" not in m.data.replace(b"\r\n", b"")
    assert b"MAIL FROM" not in m.data


@pytest.mark.parametrize("args", [["-X", "/tmp/x"], ["-O", "QueueDirectory=/tmp"],
                                  ["-oQ/tmp"], ["-oA/tmp/aliases"], ["-N", "never"],
                                  ["--", "-Xfile@example.com"], ["a@b.example", "-X/tmp/x"]])
def test_dangerous_options_refused(gw, args):
    """T46: -X, -O, -oQ, -oA... exit 64 with nothing written (CVE-2016-10033)."""
    target = gw.base / "x"
    args = [a.replace("/tmp/x", str(target)) for a in args]
    r = sendmail(gw, args, b"Subject: x\n\nbody\n")
    assert r.returncode == 64, (args, r.stderr)
    assert not target.exists()
    assert queue_ids(gw) == []


def test_c_option_only_for_root_and_user(gw):
    """T46/SPEC 2: -C is honoured for root and `user`, refused for anyone else."""
    from conftest import NOBODY
    gw.base.chmod(0o755)

    def as_nobody():
        os.setgroups([])
        os.setgid(NOBODY.pw_gid)
        os.setuid(NOBODY.pw_uid)
    r = sendmail(gw, ["bob@remote.example"], b"Subject: x\n\nbody\n", preexec=as_nobody)
    assert r.returncode == 64 and b"-C is only for root" in r.stderr


def test_exit_codes(gw, sink):
    relay_conf(gw, sink.port, run_after_accept=False)
    gw.write_aliases('bad: "|@REC@ --exit 67"\nflaky: "|@REC@ --exit 75"\n')
    assert sendmail(gw, ["nosuch@example.com"], b"x\n").returncode == 67
    assert sendmail(gw, ["-t"], b"Subject: none\n\nx\n").returncode == 65
    r = sendmail(gw, ["bad@example.com"], b"x\n")
    assert r.returncode == 67 and b"bad@example.com" in r.stderr
    # A program's temporary failure is spooled and retried: exit 0 (never 75).
    assert sendmail(gw, ["flaky@example.com"], b"x\n").returncode == 0
    assert len(queue_ids(gw)) == 1


def test_other_modes(gw, sink):
    """-bv, -bp (and mailq), -bi (and newaliases), -bs, -q."""
    relay_conf(gw, sink.port, run_after_accept=False)
    gw.write_aliases('rt: "|@REC@"\n')
    r = sendmail(gw, ["-bv", "rt@example.com", "nosuch@example.com"], b"")
    assert b"rt@example.com: pipe" in r.stdout and b"rejected 550 5.1.1" in r.stdout
    assert sendmail(gw, ["bob@remote.example"], b"Subject: q\n\nx\n").returncode == 0
    assert b"bob@remote.example" in sendmail(gw, ["-bp"], b"").stdout
    assert b"bob@remote.example" in sendmail(gw, [], b"", name="mailq").stdout
    assert sendmail(gw, ["-bi"], b"").returncode == 0
    assert sendmail(gw, [], b"", name="newaliases").returncode == 0
    r = sendmail(gw, ["-bs"], b"EHLO x\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<rt@example.com>\r\n"
                 b"DATA\r\nSubject: bs\r\n\r\nvia -bs\r\n.\r\nQUIT\r\n")
    assert b"250 2.0.0 Ok: delivered to command" in r.stdout
    assert sendmail(gw, ["-q"], b"").returncode == 0
    assert len(sink.wait_messages(1)) == 1


def test_disk_full_exits_75(gw):
    """T69: sendmail on a full disk -> exit 75, never 0."""
    relay_conf(gw, 9, extra="min_free_space = 1k\n", run_after_accept=False)
    gw.spool.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(gw.spool)],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        big = b"Subject: big\n\n" + (b"z" * 900 + b"\n") * 200
        r = sendmail(gw, ["bob@remote.example"], big)
        assert r.returncode == 75, r.stderr
    finally:
        subprocess.run(["umount", str(gw.spool)])


@pytest.mark.skipif(tool("mutt") is None, reason="mutt not installed")
def test_mutt_batch_mode(gw, sink):
    """A real MUA: mutt in batch mode with `set sendmail` pointing at us."""
    relay_conf(gw, sink.port, run_after_accept=False)
    muttrc = gw.base / "muttrc"
    muttrc.write_text(f'set sendmail="{gw.argv()[0]} --sendmail -C {gw.conf}"\n'
                      'set use_from=yes\nset from="Alice <alice@example.com>"\n'
                      'set realname="Alice"\nset copy=no\n')
    r = subprocess.run(["mutt", "-n", "-F", str(muttrc), "-s", "from mutt",
                        "bob@remote.example"], input=b"Hello from mutt.\n",
                       capture_output=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "HOME": str(gw.base), "TERM": "dumb"})
    assert r.returncode == 0, r.stderr
    assert gw.run("-q").returncode == 0
    (m,) = sink.wait_messages(1)
    assert m.rcpts == ["bob@remote.example"]
    assert b"Subject: from mutt" in m.data and b"Hello from mutt." in m.data


@pytest.mark.skipif(tool("bsd-mailx") is None,
                    reason="bsd-mailx not installed")
def test_bsd_mailx(gw, sink):
    """bsd-mailx with its sendmail setting."""
    relay_conf(gw, sink.port, run_after_accept=False)
    mailrc = gw.base / "mailrc"
    mailrc.write_text(f"set sendmail={gw.base}/sendmail-wrapper\n")
    wrapper = gw.base / "sendmail-wrapper"
    wrapper.write_text(f"#!/bin/sh\nexec {gw.argv()[0]} --sendmail -C {gw.conf} \"$@\"\n")
    wrapper.chmod(0o755)
    r = subprocess.run(["bsd-mailx", "-s", "from mailx", "bob@remote.example"],
                       input=b"Hello from mailx.\n", capture_output=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "HOME": str(gw.base),
                            "MAILRC": str(mailrc)})
    assert r.returncode == 0, r.stderr
    assert gw.run("-q").returncode == 0
    (m,) = sink.wait_messages(1)
    assert b"Subject: from mailx" in m.data


def test_full_name_cannot_inject_headers(gw, sink):
    """T112: sendmail -F with CR, LF (a Bcc: of the caller's) -> exit 64 and
    nothing queued; names that need it are quoted as RFC 5322 3.2.5 says."""
    relay_conf(gw, sink.port, run_after_accept=False)
    for name in ("Eve\nBcc: x@remote.example", "Eve\r\nBcc: x@remote.example", "Eve\rX"):
        r = sendmail(gw, ["-F", name, "bob@remote.example"], b"Subject: x\n\nbody\n")
        assert r.returncode == 64, (name, r.stderr)
        assert b"control character" in r.stderr
    assert queue_ids(gw) == []
    for name, shown in (("Eve Admin", b"Eve Admin"),
                        ("Eve, Admin", b'"Eve, Admin"'),
                        ('Eve "the" Admin', b'"Eve \\"the\\" Admin"'),
                        ("Eve <x@y>", b'"Eve <x@y>"')):
        r = sendmail(gw, ["-F", name, "bob@remote.example"], b"Subject: x\n\nbody\n")
        assert r.returncode == 0, r.stderr
    assert gw.run("-q").returncode == 0
    froms = sorted(line for m in sink.wait_messages(4)
                   for line in m.data.split(b"\r\n") if line.startswith(b"From:"))
    assert froms == sorted(b"From: " + shown + b" <root@mx.example.com>"
                           for shown in (b"Eve Admin", b'"Eve, Admin"',
                                         b'"Eve \\"the\\" Admin"', b'"Eve <x@y>"'))
    assert not any(b"Bcc" in m.data or b"x@remote.example" in m.rcpts
                   for m in sink.messages)


def test_root_sendmail_starts_a_background_run(gw, sink):
    """Issue 15 (SPEC 2): sendmail run by root that spools mail starts the
    queue.run_after_accept run, as a session does (the mail left only with cron
    before: the run found the message still locked by sendmail)."""
    relay_conf(gw, sink.port, run_after_accept=True)
    r = sendmail(gw, ["bob@remote.example"], b"Subject: now\n\nbody\n")
    assert r.returncode == 0, r.stderr
    (m,) = sink.wait_messages(1, timeout=30)
    assert m.rcpts == ["bob@remote.example"]


def test_root_sendmail_does_not_wait_for_the_run(gw):
    """The caller (RT, cron) gets sendmail's exit status at once, not after the
    background run: here the smarthost never answers its banner."""
    import socket
    import time
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(5)
    mute.settimeout(30)
    try:
        relay_conf(gw, mute.getsockname()[1], run_after_accept=True)
        gw.conf.write_text(gw.conf.read_text().replace("timeout = 10s", "timeout = 60s"))
        start = time.time()
        r = sendmail(gw, ["bob@remote.example"], b"Subject: now\n\nbody\n")
        took = time.time() - start
        assert r.returncode == 0, r.stderr
        assert took < 30, took                    # the run alone takes 60 s
        conn, _ = mute.accept()                   # the background run is there
        conn.close()
    finally:
        mute.close()
