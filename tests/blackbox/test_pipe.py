"""TESTCATALOGUE H: pipe delivery and the program's faults (alias x: "|prog args")."""
import os
import subprocess
import threading
import time

import pytest

from conftest import NOBODY, MAIL, needs_root, Client


def deliver(gw, alias_line, rcpt="x@example.com", body=None):
    gw.write_aliases(alias_line + "\n")
    c = gw.session()
    c.greet()
    r = c.mail(rcpts=[rcpt], body=body)
    c.cmd("QUIT")
    c.close()
    return r


@pytest.mark.parametrize("status,code,dsn", [
    (0, 250, "2.0.0"), (75, 451, "4.3.0"), (71, 451, "4.3.0"), (74, 451, "4.3.0"),
    (67, 550, "5.1.1"), (68, 550, "5.1.2"), (77, 550, "5.7.0"), (65, 550, "5.6.0"),
    (78, 550, "5.3.5"), (73, 550, "5.2.0"), (76, 554, "5.5.0"), (64, 554, "5.3.0"),
    (1, 554, "5.3.0"), (99, 554, "5.3.0")])
def test_exit_status_table(gw, status, code, dsn):
    """T70: exit status -> reply, the table of SPEC 7 (1 is RT's permanent failure)."""
    r = deliver(gw, f'x: "|@REC@ --exit {status}"')
    assert r.code == code and r.lines[0].startswith(dsn), r
    assert len(gw.records()) == 1


def test_configurable_tempfail_list(gw):
    """T70: pipe.tempfail decides which statuses are temporary."""
    gw.write_conf("pipe { tempfail = { 75, 1 } }\n")
    r = deliver(gw, 'x: "|@REC@ --exit 1"')
    assert r.code == 451
    r = deliver(gw, 'x: "|@REC@ --exit 74"')
    assert r.code == 554            # 74 no longer listed: permanent
    gw.write_conf("pipe { tempfail = { 75 } }\n")
    r = deliver(gw, 'x: "|@REC@ --exit 71"')
    assert r.code == 554


def test_killed_by_signal(gw):
    """T71: child killed by a signal -> 451 4.3.0."""
    r = deliver(gw, 'x: "|@REC@ --signal 9"')
    assert r.code == 451 and "signal 9" in r.text


@pytest.mark.parametrize("cmd,why", [
    ("/nonexistent/program", "No such file"),
    ("no-such-program-anywhere", "No such file"),
    ("/etc/passwd", "Permission denied"),
])
def test_exec_failure(gw, cmd, why):
    """T72: exec fails (ENOENT, EACCES) -> 451 and a log line; never 250."""
    r = deliver(gw, f'x: "|{cmd}"')
    assert r.code == 451 and why in r.text, r
    assert "status=deferred" in gw.log_text()


def test_exec_format_error(gw):
    """T72: ENOEXEC -> 451."""
    bad = gw.base / "notaprogram"
    bad.write_bytes(b"\x7fELF garbage")
    bad.chmod(0o755)
    r = deliver(gw, f'x: "|{bad}"')
    assert r.code == 451 and "format" in r.text.lower()


def test_shell_127_is_temporary(gw):
    """SPEC 7: /bin/sh's 126 and 127 mean the command could not start -> 451."""
    r = deliver(gw, 'x: "|no-such-command-xyz > /dev/null"')
    assert r.code == 451


def test_timeout_kills_process_group(gw):
    """T73: a hung child and its grandchild -> the whole group killed at the timeout -> 451."""
    gw.write_conf("pipe { timeout = 2s }\n")
    start = time.time()
    r = deliver(gw, 'x: "|@REC@ --grandchild-sleep 4 --sleep 60"')
    took = time.time() - start
    assert r.code == 451 and "timed out" in r.text
    assert took < 2 + 5, took
    time.sleep(3)
    assert not (gw.rec / "grandchild-survived").exists()


def test_daemonized_grandchild_does_not_hold_reply(gw):
    """T74: a grandchild keeps stdout open, the child exits 0 -> 250 within grace."""
    start = time.time()
    r = deliver(gw, 'x: "|@REC@ --daemonize 20"')
    assert r.code == 250
    assert time.time() - start < 5


def test_child_closes_stdin_at_once(gw):
    """T75: the child closes stdin and exits 0 -> 250; exits 75 -> 451; we do not die."""
    body = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 2000
    assert deliver(gw, 'x: "|@REC@ --close-stdin --exit 0"', body=body).code == 250
    assert deliver(gw, 'x: "|@REC@ --close-stdin --exit 75"', body=body).code == 451


def test_output_before_input_no_deadlock(gw):
    """T76: child writes 1 MiB before reading a 10 MiB message -> completes."""
    gw.write_conf("max_message_size = 20M\n")
    body = b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 10500
    r = deliver(gw, 'x: "|@REC@ --spew 1048576 --read --exit 0"', body=body)
    assert r.code == 250
    rec = gw.one_record()
    assert rec.body() == (b"y" * 998 + b"\n") * 10500


def deliver_measured(gw, alias_line):
    """deliver(), and the largest resident set (kB) of the session and of every
    process under it that it waited for (the launcher's worker, the program):
    wait4()'s rusage of the process started, which counts its descendants."""
    gw.write_aliases(alias_line + "\n")
    c = gw.session()
    c.greet()
    r = c.mail(rcpts=["x@example.com"])
    c.cmd("QUIT")
    c.sock.close()
    _pid, status, usage = os.wait4(c.proc.pid, 0)
    c.proc.returncode = os.waitstatus_to_exitcode(status)
    assert c.proc.returncode == 0
    return r, usage.ru_maxrss


def test_huge_output_is_capped(gw):
    """T77: 100 MB of output -> read and discarded: the reply carries a capped
    excerpt, and no process of the delivery grows by more than 2 MB over one
    whose program prints a line (memory flat)."""
    r, small = deliver_measured(gw, 'x: "|@REC@ --spew 100 --exit 75"')
    assert r.code == 451
    r, huge = deliver_measured(gw, 'x: "|@REC@ --spew 104857600 --exit 75"')
    assert r.code == 451
    assert len(r.lines[0]) < 512
    if os.environ.get("UNDERSMTPD_SANITIZED") != "1":   # their own memory is theirs
        assert huge - small < 2048, (small, huge)


def test_no_zombies_or_descendants_after_many_runs(gw):
    """T78 (inetd form): 200 sessions with pipes leave no zombie and no descendant."""
    gw.write_aliases('x: "|@REC@ --exit 0"\ny: "|@REC@ --signal 9"\n')
    gw.write_conf('alias "y" { breaker = 0 }\n')   # every run fails, on purpose
    for i in range(100):
        for rcpt in ("x@example.com", "y@example.com"):
            c = gw.session()
            c.greet()
            c.mail(rcpts=[rcpt])
            c.cmd("QUIT")
            c.close()
    # Nothing of these sessions survives them: no program, no launcher, no zombie
    # (a zombie needs a living parent, and every process of a session is gone).
    out = subprocess.run(["ps", "-eo", "stat,args"], capture_output=True, text=True).stdout
    assert str(gw.rec) not in out and str(gw.conf) not in out


@needs_root
def test_program_runs_as_pipe_user_without_groups(gw):
    """T79: the program runs as pipe.user (nobody), supplementary groups dropped."""
    deliver(gw, 'x: "|@REC@"')
    rec = gw.one_record()
    assert rec.ids == (f"uid={NOBODY.pw_uid} euid={NOBODY.pw_uid} gid={NOBODY.pw_gid} "
                       f"egid={NOBODY.pw_gid} groups=")


@pytest.mark.parametrize("user", ["root", "mail"])
@needs_root
def test_pipe_user_root_or_spool_owner_refused(gw, user):
    """T79: pipe.user = root or the spool owner -> refused (451), the program never runs."""
    gw.write_conf(f'pipe {{ user = "{user}" }}\n')
    r = deliver(gw, 'x: "|@REC@"')
    assert r.code == 451
    assert gw.records() == []
    assert "pipe.user may not be root or the spool owner" in gw.log_text()


def test_child_fds_signals_cwd_umask(gw):
    """T80: only fds 0-2, SIGPIPE default, no blocked signals, own session, cwd and umask."""
    deliver(gw, 'x: "|@REC@"')
    rec = gw.one_record()
    assert rec.fds == [0, 1, 2]
    assert rec.signals == "sigpipe=default blocked=0 pgid_is_pid=1 sid_is_pid=1"
    assert rec.cwd in ("cwd=/ umask=077", f"cwd={NOBODY.pw_dir} umask=077")


def test_content_seen_by_program(gw):
    """T81: dot-unstuffed, LF endings, Return-Path, Delivered-To and Received prepended;
    an incoming Return-Path is removed; otherwise byte for byte."""
    body = (b"Return-Path: <forged@evil.test>\r\n\tcontinued\r\nSubject: s\r\n"
            b"X-Other: y\r\n\r\n..dot\r\nline\r\n")
    deliver(gw, 'x: "|@REC@"', body=body)
    stdin = gw.one_record().stdin
    head, _, rest = stdin.partition(b"Received: ")
    assert head == b"Return-Path: <sender@remote.test>\nDelivered-To: x@example.com\n"
    assert b"forged" not in stdin and b"continued" not in stdin
    assert rest.split(b"\n", 3)[3] == b"Subject: s\nX-Other: y\n\n.dot\nline\n"
    assert b"\r" not in stdin


def test_second_program_in_transaction_gets_452(gw):
    """T64, T82: a recipient for a second, different program -> 452 4.5.3 at RCPT;
    the client sends it in a new transaction; never a 451 after A succeeded."""
    gw.write_aliases('a: "|@REC@ --exit 0"\nb: "|@REC@ --exit 75"\n')
    c = gw.session()
    c.greet()
    assert c.cmd("MAIL FROM:<s@remote.test>").code == 250
    assert c.cmd("RCPT TO:<a@example.com>").code == 250
    r = c.cmd("RCPT TO:<b@example.com>")
    assert r.code == 452 and r.lines[0].startswith("4.5.3")
    assert c.cmd("DATA").code == 354
    c.send("Subject: x\r\n\r\nx\r\n.\r\n")
    assert c.reply().code == 250
    assert c.mail(rcpts=["b@example.com"]).code == 451
    c.cmd("QUIT")
    c.close()
    assert len(gw.records()) == 2


def test_same_extension_is_one_run_other_extension_another(gw):
    """SPEC 7: the same alias with another extension is another run (452)."""
    gw.write_aliases('rt: "|@REC@"\n')
    c = gw.session()
    c.greet()
    assert c.cmd("MAIL FROM:<s@remote.test>").code == 250
    assert c.cmd("RCPT TO:<rt+1@example.com>").code == 250
    assert c.cmd("RCPT TO:<RT+1@example.com>").code == 250
    assert c.cmd("RCPT TO:<rt+2@example.com>").code == 452
    c.cmd("RSET")
    c.cmd("QUIT")
    c.close()


def test_same_program_twice_runs_once(gw):
    """T83: the same recipient twice, or two recipients of the same alias -> one run."""
    gw.write_aliases('x: "|@REC@"\nalso: x\n')
    c = gw.session()
    c.greet()
    assert c.cmd("MAIL FROM:<s@remote.test>").code == 250
    for rcpt in ("x@example.com", "x@example.com", "also@example.com"):
        assert c.cmd(f"RCPT TO:<{rcpt}>").code == 250
    assert c.cmd("DATA").code == 354
    c.send("Subject: x\r\n\r\nx\r\n.\r\n")
    assert c.reply().code == 250
    c.cmd("QUIT")
    c.close()
    assert len(gw.records()) == 1


@pytest.mark.parametrize("mode", [0o664, 0o646])
def test_unsafe_aliases_file_disables_pipes(gw, mode):
    """T84: a group- or world-writable aliases file -> pipe aliases refused (451), logged."""
    gw.write_aliases('x: "|@REC@"\n', mode=mode)
    c = gw.session()
    c.greet()
    c.cmd("MAIL FROM:<s@remote.test>")
    r = c.cmd("RCPT TO:<x@example.com>")
    assert r.code == 451 and r.lines[0].startswith("4.3.0")
    c.cmd("QUIT")
    c.close()
    assert "pipe alias refused" in gw.log_text()
    assert gw.records() == []
    check = gw.run("--check-config")
    assert check.returncode != 0 and "pipe aliases are refused" in check.stderr


@needs_root
def test_aliases_owned_by_another_user_disables_pipes(gw):
    """T108, T84: pipes only from a file owned by root or by the account undersmtpd runs
    as, and writable by no one else.  Started as root that is root alone: a file
    of the spool user's could have been written by a session taken over, and the
    root launcher would run what it names (issue 15 item 2)."""
    def rcpt_code():
        c = gw.session()
        c.greet()
        c.cmd("MAIL FROM:<s@remote.test>")
        code = c.cmd("RCPT TO:<x@example.com>").code
        c.cmd("QUIT")
        c.close()
        return code
    gw.write_aliases('x: "|@REC@"\n')
    os.chown(gw.aliases, NOBODY.pw_uid, NOBODY.pw_gid)
    assert rcpt_code() == 451
    os.chown(gw.aliases, MAIL.pw_uid, MAIL.pw_gid)     # the spool user's: refused too
    assert rcpt_code() == 451
    assert "pipe alias refused" in gw.log_text()
    os.chown(gw.aliases, 0, 0)
    os.chmod(gw.aliases, 0o664)                        # root's, but group-writable
    assert rcpt_code() == 451
    os.chmod(gw.aliases, 0o644)
    assert rcpt_code() == 250
    # Started as an ordinary user, that user's own file may name programs
    # (test_ordinary_user_mode runs such a session).


def test_catastrophic_regex_answers_451_fast(gw):
    """T85: (a+)+$ against a's and '!' -> match limit -> 451 within 1 s.
    (63 a's: with the '!' that is the 64-octet local part RFC 5321 allows.)"""
    gw.write_aliases('/^(a+)+$/: "|@REC@"\n')
    c = gw.session()
    c.greet()
    c.cmd("MAIL FROM:<s@remote.test>")
    start = time.time()
    # "!" itself would make it a bang path (exact aliases only), so end in "b".
    r = c.cmd("RCPT TO:<" + "a" * 63 + "b@example.com>")
    assert time.time() - start < 1.0
    assert r.code == 451 and r.lines[0].startswith("4.3.0"), r
    c.cmd("QUIT")
    c.close()


def test_max_concurrency_per_alias(gw):
    """T86: 6 messages at once for an alias with max_concurrency = 2 -> at most 2 children."""
    count = gw.rec / "running"
    gw.write_conf('alias "slow" { max_concurrency = 2 }\n')
    gw.write_aliases(f'slow: "|/bin/sh -c \'echo + >> {count}; sleep 1; echo - >> {count}\'"\n')
    results = []

    def one():
        c = gw.session()
        c.greet()
        results.append(c.mail(rcpts=["slow@example.com"]).code)
        c.cmd("QUIT")
        c.close()
    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [250] * 6
    running = peak = 0
    for mark in count.read_text().split():
        running += 1 if mark == "+" else -1
        peak = max(peak, running)
    assert peak == 2


def test_max_concurrency_pools_are_per_alias(gw):
    """T86: aliases whose names differ only in punctuation ("a-b", "a.b") each have a
    pool of their own: one message for each, max_concurrency = 1 -> both run at once."""
    count = gw.rec / "running"
    gw.write_conf('alias "a-b" { max_concurrency = 1 }\nalias "a.b" { max_concurrency = 1 }\n')
    prog = f'"|/bin/sh -c \'echo + >> {count}; sleep 2; echo - >> {count}\'"'
    gw.write_aliases(f"a-b: {prog}\na.b: {prog}\n")
    results = []

    def one(rcpt):
        c = gw.session()
        c.greet()
        results.append(c.mail(rcpts=[rcpt]).code)
        c.cmd("QUIT")
        c.close()
    threads = [threading.Thread(target=one, args=(r,))
               for r in ("a-b@example.com", "a.b@example.com")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [250, 250]
    running = peak = 0
    for mark in count.read_text().split():
        running += 1 if mark == "+" else -1
        peak = max(peak, running)
    assert peak == 2


def test_program_output_in_reply_and_enhanced_code(gw):
    """SPEC 7: the first non-empty output line goes into the reply; an enhanced code in
    it decides the reply after a failure; output never turns a failure into success."""
    # Output "\n\n  \nhello there\nsecond line\n", given in hex: no shell on the way.
    lines = "0a0a20200a68656c6c6f2074686572650a7365636f6e64206c696e650a"
    r = deliver(gw, f'x: "|@REC@ --print-hex {lines} --exit 0"')
    assert r.code == 250 and r.lines[0].startswith("2.0.0 "), r
    assert r.lines[0].endswith(": hello there, id " + gw.one_record().env["QUEUE_ID"]), r
    assert "second line" not in r.text
    r = deliver(gw, f'x: "|@REC@ --print-hex {lines} --exit 75"')
    assert r.code == 451 and r.lines == ["4.3.0 temporary failure: exit 75 (EX_TEMPFAIL): "
                                         "hello there"], r
    r = deliver(gw, 'x: "|@REC@ --print 5.7.1\\x20go\\x20away --exit 75"'.replace("\\x20", " "))
    assert r.code == 550 and r.lines[0].startswith("5.7.1"), r
    r = deliver(gw, 'x: "|@REC@ --print 2.0.0\\x20fine --exit 75"'.replace("\\x20", " "))
    assert r.code == 451
    r = deliver(gw, 'x: "|@REC@ --print 4.2.2\\x20mailbox\\x20full --exit 1"'.replace("\\x20", " "))
    assert r.code == 451 and r.lines[0].startswith("4.2.2")
    r = deliver(gw, 'x: "|@REC@ --print 5.1.1\\x20ignored --exit 0"'.replace("\\x20", " "))
    assert r.code == 250


def test_delivered_to_loop_refused(gw):
    """SPEC 7: a message that already has Delivered-To: this recipient -> 554 5.4.6."""
    r = deliver(gw, 'x: "|@REC@"',
                body=b"Delivered-To: X@example.com\r\nSubject: auto-reply\r\n\r\nx\r\n")
    assert r.code == 554 and r.lines[0].startswith("5.4.6")
    assert gw.records() == []


def test_delivery_id_stable_across_retries(gw):
    """SPEC 7: DELIVERY_ID is the same for the same message and recipient on a retry."""
    for _ in range(2):
        deliver(gw, 'x: "|@REC@ --exit 75"', body=b"Subject: same\r\n\r\nbody\r\n")
    deliver(gw, 'x: "|@REC@ --exit 75"', body=b"Subject: other\r\n\r\nbody\r\n")
    a, b, c = gw.records()
    assert a.env["DELIVERY_ID"] == b.env["DELIVERY_ID"] != c.env["DELIVERY_ID"]
    assert a.env["QUEUE_ID"] != b.env["QUEUE_ID"]


@needs_root
def test_ordinary_user_mode(gw):
    """SPEC 11: started as an ordinary user, the program runs as that user, and a
    pipe.user naming someone else is a 451."""
    gw.base.chmod(0o777)
    gw.spool.mkdir()
    os.chown(gw.spool, NOBODY.pw_uid, NOBODY.pw_gid)
    gw.log.touch()
    os.chown(gw.log, NOBODY.pw_uid, NOBODY.pw_gid)
    gw.write_aliases('x: "|@REC@"\n')
    os.chown(gw.aliases, NOBODY.pw_uid, NOBODY.pw_gid)  # its own file may name programs

    def as_nobody():
        os.setgroups([])
        os.setgid(NOBODY.pw_gid)
        os.setuid(NOBODY.pw_uid)
    argv = [gw.shared_binary(), "-C", str(gw.conf)]
    c = Client(argv, preexec=as_nobody)
    c.greet()
    assert c.mail(rcpts=["x@example.com"]).code == 250
    c.cmd("QUIT")
    c.close()
    assert gw.one_record().ids.startswith(f"uid={NOBODY.pw_uid} ")
    gw.write_conf('pipe { user = "daemon" }\n')
    c = Client(argv, preexec=as_nobody)
    c.greet()
    assert c.mail(rcpts=["x@example.com"]).code == 451
    c.cmd("QUIT")
    c.close()


def test_inherited_sigchld_ignore_does_not_lose_statuses(gw):
    """Regression (found with swaks): started with SIGCHLD ignored, exit statuses
    must still be seen: exit 75 is a 451, never a 250."""
    import signal as sig
    gw.write_aliases('x: "|@REC@ --exit 75"\n')
    c = gw.session(preexec=lambda: sig.signal(sig.SIGCHLD, sig.SIG_IGN))
    c.greet()
    assert c.mail(rcpts=["x@example.com"]).code == 451
    c.cmd("QUIT")
    c.close()
