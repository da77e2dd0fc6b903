"""Root and the spool user's links (issue 15 item 1; CATALOGUE "privilege"):
the spool belongs to `mail`, so `mail` can put symbolic links in it.  Each
root entry point (inetd session, -d, -q, --queue, sendmail) must then leave
the link's root-owned target alone, fail with an error naming the path, and
lose nothing that was queued.  The same for a log_file in a directory that
`mail` may write, and for the maildrop.

The attack as reported: as mail, `mv spool/bad spool/bad.old; ln -s /etc
spool/bad`; root's next `undersmtpd -q` made /etc mail:mail 0700."""
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import MAIL, base_env
from test_sendmail import sendmail
from test_spool import queue_ids, relay_conf

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="SKIP: needs root")


def as_mail():
    os.setgroups([])
    os.setresgid(MAIL.pw_gid, MAIL.pw_gid, MAIL.pw_gid)
    os.setresuid(MAIL.pw_uid, MAIL.pw_uid, MAIL.pw_uid)


def mail_does(*argv):
    """A command run as the spool user, as a compromised session could."""
    subprocess.run(argv, check=True, preexec_fn=as_mail, timeout=30)


def root_target(gw, name="target"):
    """A directory of root's, 0755, with a file in it: what the link points at."""
    t = gw.base / name
    t.mkdir()
    t.chmod(0o755)
    (t / "keep").write_text("root's\n")
    return t


def snapshot(path):
    st = os.lstat(path)
    files = sorted((p.name, p.stat().st_uid, p.read_bytes()) for p in path.iterdir()) \
        if path.is_dir() else path.read_bytes()
    return (st.st_uid, st.st_gid, st.st_mode, files)


def queued_message(gw, port):
    """One message in the queue (the smarthost is down), so "nothing lost" can be checked."""
    relay_conf(gw, port, run_after_accept=False)
    c = gw.session()
    c.greet()
    assert c.mail(rcpts=["bob@remote.example"]).code == 250
    c.cmd("QUIT")
    c.close()
    (qid,) = queue_ids(gw)
    return qid


def daemon_start(gw):
    """undersmtpd -d on a free port; its exit status and output (it must not start)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    gw.conf.write_text(gw.conf.read_text() + f'listen = {{ "127.0.0.1:{port}" }}\n')
    p = subprocess.Popen(gw.argv("-d"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=base_env())
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
        return None, err
    return p.returncode, err


def entry_points(gw):
    """Each root entry point once: (name, failed, what it said)."""
    out = []
    c = gw.session()
    greeting = c.reply()
    c.close()
    out.append(("inetd session", greeting.code == 421, gw.log_text()))
    rc, err = daemon_start(gw)
    out.append(("-d", rc not in (None, 0), err + gw.log_text()))
    r = gw.run("-q")
    out.append(("-q", r.returncode != 0, r.stderr))
    r = gw.run("--queue")
    out.append(("--queue", r.returncode != 0, r.stderr))
    r = sendmail(gw, ["bob@remote.example"], b"Subject: x\n\nbody\n")
    out.append(("sendmail", r.returncode != 0, r.stderr.decode()))
    return out


@pytest.mark.parametrize("sub", ["bad", "queue", "tmp"])
def test_spool_subdirectory_link_to_root_directory(gw, sub):
    """T107: A spool subdirectory replaced by a link to a root-owned directory: no root
    entry point chowns, chmods or writes the target; each refuses, naming the path;
    the queued message stays."""
    qid = queued_message(gw, 9)          # port 9: nothing listens, the message waits
    target = root_target(gw)
    before = snapshot(target)
    mail_does("mv", str(gw.spool / sub), str(gw.spool / f"{sub}.old"))
    mail_does("ln", "-s", str(target), str(gw.spool / sub))
    for name, failed, said in entry_points(gw):
        assert snapshot(target) == before, f"{name} changed the link's target"
        assert failed, f"{name} went on with a tampered spool"
        assert f"{gw.spool}/{sub} is a symbolic link" in said, (name, said)
    # Nothing lost: the message is where mail moved it, and comes back with it.
    mail_does("rm", str(gw.spool / sub))
    mail_does("mv", str(gw.spool / f"{sub}.old"), str(gw.spool / sub))
    assert queue_ids(gw) == [qid]
    assert gw.run("--queue").returncode == 0


def test_spool_dir_link_in_a_directory_mail_writes(gw):
    """T107: spool_dir itself in a directory the spool user owns, swapped for a link to
    a root directory: refused at every entry point, the target untouched."""
    home = gw.base / "mailhome"
    home.mkdir()
    os.chown(home, MAIL.pw_uid, MAIL.pw_gid)
    spool = home / "spool"
    gw.spool = spool
    gw.write_conf()
    gw.conf.write_text(gw.conf.read_text().replace(str(gw.base / "spool"), str(spool)))
    c = gw.session()
    assert c.reply().code == 220             # the spool is made, mail's
    c.close()
    assert spool.stat().st_uid == MAIL.pw_uid
    target = root_target(gw)
    before = snapshot(target)
    mail_does("mv", str(spool), str(home / "spool.old"))
    mail_does("ln", "-s", str(target), str(spool))
    for name, failed, said in entry_points(gw):
        assert snapshot(target) == before, f"{name} changed the link's target"
        assert failed, name
        assert '"spool" is a symbolic link in a directory that others may write' in said, \
            (name, said)


def test_roots_directory_moved_into_place_not_given_away(gw):
    """T107: A directory of root's that mail moved to where spool_dir should be (its
    parent is mail's): root does not chown it to mail; a spool_dir root makes
    there itself is mail's as usual."""
    home = gw.base / "mailhome"
    home.mkdir()
    os.chown(home, MAIL.pw_uid, MAIL.pw_gid)
    spool = home / "spool"
    gw.conf.write_text(gw.conf.read_text().replace(str(gw.base / "spool"), str(spool)))
    target = root_target(gw)
    before = snapshot(target)
    os.rename(target, spool)                # as if mail had moved it (it may rename in home)
    r = gw.run("--queue")
    assert r.returncode != 0
    assert f"{spool} is root's, in a directory others may write" in r.stderr, r.stderr
    os.rename(spool, target)
    assert snapshot(target) == before
    assert gw.run("--queue").returncode == 0
    assert spool.stat().st_uid == MAIL.pw_uid


def test_log_file_link_in_a_directory_mail_writes(gw):
    """T107: log_file in a directory the spool user may write, replaced by a link to a
    root-owned file (or a second name of it): root never appends to that file;
    sessions go on, logging to syslog, and say why."""
    logs = gw.base / "logs"
    logs.mkdir()
    os.chown(logs, MAIL.pw_uid, MAIL.pw_gid)
    secret = gw.base / "shadow"
    secret.write_text("root:x:0:\n")
    secret.chmod(0o600)
    log = logs / "undersmtpd.log"
    gw.conf.write_text(gw.conf.read_text().replace(str(gw.log), str(log)))
    before = snapshot(secret)
    mail_does("ln", "-s", str(secret), str(log))
    c = gw.session()
    assert c.reply().code == 220
    c.cmd("QUIT")
    c.close()
    r = gw.run("--queue")
    assert snapshot(secret) == before, "root appended to the link's target"
    assert r.returncode == 0
    assert f"{log} is a symbolic link in a directory that others may write" in r.stderr
    rc, err = daemon_start(gw)
    assert rc == 78 and f"{log} is a symbolic link" in err, (rc, err)
    assert snapshot(secret) == before
    # A hard link is as bad (a system without protected_hardlinks lets mail make one).
    os.unlink(log)
    os.link(secret, log)
    r = gw.run("--queue")
    assert "is not a plain file with a single name" in r.stderr, r.stderr
    c = gw.session()
    assert c.reply().code == 220
    c.close()
    assert snapshot(secret) == before


def test_maildrop_link_to_root_directory(gw):
    """T107: spool/maildrop replaced by a link to a root directory of the maildrop's
    mode: no entry point changes the target or takes its group for the spool."""
    qid = queued_message(gw, 9)
    target = root_target(gw)
    target.chmod(0o1730)
    before = snapshot(target)
    mail_does("ln", "-s", str(target), str(gw.spool / "maildrop"))
    for name, failed, said in entry_points(gw):
        assert snapshot(target) == before, f"{name} changed the link's target"
    assert os.stat(gw.spool).st_gid == MAIL.pw_gid and \
        oct(os.stat(gw.spool).st_mode & 0o777) == "0o700"
    assert qid in queue_ids(gw)


PIPE_EXITED, PIPE_REFUSED = 0, 5


def session_process(launcher_pid):
    """The session a root launcher serves: its child, running as the spool user."""
    for _ in range(300):
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == launcher_pid:
                return int(pid)
        time.sleep(0.01)
    raise AssertionError("the session process was not found")


def steal_launcher_socket(pid):
    """The launcher socket a session holds, taken as an attacker who ran code in
    the session would hold it (pidfd_getfd(2); needs root)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            try:
                if not os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                    continue
            except OSError:
                continue
            fd = libc.syscall(438, pidfd, int(name), 0)      # SYS_pidfd_getfd
            if fd < 0:
                continue
            s = socket.socket(fileno=fd)
            if s.type == socket.SOCK_SEQPACKET:
                return s
            s.close()
    finally:
        os.close(pidfd)
    raise AssertionError("no launcher socket in the session")


def test_launcher_refuses_forged_requests(gw):
    """T108: Issue 15 item 2: a session taken over sends its root launcher requests for
    /bin/sh, with LD_PRELOAD, as an account the configuration does not name, for
    aliases that are not pipes, with oversized counts and fields, a control
    character, a capture that would be an option; issue 20: a filter the
    configuration has not, a kind of request it does not know, a program given
    an output descriptor of the requester's.  Each is refused and logged, for
    its own reason, nothing runs, and the session's own delivery still works."""
    marker = gw.base / "forged"
    gw.write_conf('alias "x" { filter = "/bin/cat" }\n')
    gw.write_aliases('x: "|@REC@"\nfwd: bob@remote.example\n'
                     '/^rt-(.*)$/: "|@REC@ $1"\n')
    c = gw.session()
    c.greet()
    stolen = steal_launcher_socket(session_process(c.proc.pid))
    # A copy the session user can read (a checkout in /root is not reachable).
    script = gw.base / "forge_launcher.py"
    shutil.copy2(Path(__file__).parent / "forge_launcher.py", script)
    script.chmod(0o644)
    forge = subprocess.run(
        ["/usr/bin/python3", str(script), str(stolen.fileno()), str(marker)],
        pass_fds=(stolen.fileno(),), preexec_fn=as_mail, capture_output=True, text=True,
        timeout=60, env=base_env())
    stolen.close()
    assert forge.returncode == 0, forge.stderr
    answers = [line.split("\t") for line in forge.stdout.splitlines()]
    assert len(answers) == 15, forge.stdout
    for name, outcome, words in answers:
        assert int(outcome) == PIPE_REFUSED, (name, outcome, words)
    why = {name: words for name, outcome, words in answers}
    assert "not a pipe alias" in why["unknown alias"]
    assert "no filter applies to <fwd@example.com>" in why["filter nobody configured"]
    assert "does not rewrite" in why["filter output of ours"]
    assert "kind is neither" in why["kind of its own"]
    assert "output is ours to read" in why["program with an output of ours"]
    assert not marker.exists() and not Path(f"{marker}.so").exists()
    assert gw.records() == []                      # no program of ours ran either
    assert gw.log_text().count("launcher: refused a request") == 15, gw.log_text()
    assert c.mail(rcpts=["x@example.com"]).code == 250
    c.cmd("QUIT")
    c.close()
    assert gw.one_record().env["RECIPIENT"] == "x@example.com"


def test_pipe_max_concurrency_caps_programs(gw):
    """T109: Issue 15 item 2: pipe.max_concurrency caps programs of all aliases together,
    across sessions; over it a delivery waits its turn (here: until its timeout,
    then 451), never a fork per request."""
    gw.write_conf('pipe { max_concurrency = 1 timeout = 1s }\n'
                  'alias "slow" { timeout = 20s }\n')
    gw.write_aliases('slow: "|/bin/sleep 4"\nx: "|@REC@"\n')
    first = gw.session()
    first.greet()
    second = gw.session()
    second.greet()
    first.cmd("MAIL FROM:<a@remote.test>")
    assert first.cmd("RCPT TO:<slow@example.com>").code == 250
    assert first.cmd("DATA").code == 354
    first.send(b"Subject: 1\r\n\r\nslow\r\n.\r\n")
    time.sleep(0.5)                                # the program runs
    r = second.mail(rcpts=["x@example.com"])
    assert r.code == 451 and "Too many concurrent deliveries" in r.text, r
    assert gw.records() == []
    assert first.reply().code == 250               # sleep 4 ended well
    r = second.mail(rcpts=["x@example.com"])       # the slot is free again
    assert r.code == 250, r
    for c in (first, second):
        c.cmd("QUIT")
        c.close()
