"""Fork failing (strace fault injection, clone -> EAGAIN; T86's second half):
a program that cannot be started is a 451 4.3.0 the client retries, a session
that cannot be forked is a 421 from a daemon that goes on, never a 250 and
never a crash.  strace counts injections per process (`when=2+`: every clone
after that process's first)."""
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import Client, base_env, needs_root, tool
from smarthost import free_port
from test_daemon import daemon_conf

pytestmark = pytest.mark.skipif(tool("strace") is None, reason="strace not installed")


def strace(argv, when):
    # vfork too, every one: only the launcher uses it, to start programs (strace
    # counts each syscall on its own, so "when" cannot count vforks as forks).
    return ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=clone,clone3,vfork",
            "-e", f"inject=clone,clone3:error=EAGAIN:when={when}",
            "-e", "inject=vfork:error=EAGAIN"] + argv


def quiet_env():
    env = base_env()
    if "ASAN_OPTIONS" in env:          # LeakSanitizer cannot run under ptrace
        env["ASAN_OPTIONS"] += ":detect_leaks=0"
    return env


@needs_root
def test_program_fork_fails_451(gw):
    """T86: the launcher cannot start the program (vfork fails) -> 451 4.3.0,
    nothing delivered, and the session goes on (the client may try again at once)."""
    gw.write_aliases('support: "|@REC@"\n')
    # The session's first process forks once (privilege separation); every
    # fork after that - the launcher's vfork of the program - fails.
    c = Client(strace(gw.argv(), "2+"), env=quiet_env())
    c.greet()
    r = c.cmd("MAIL FROM:<alice@remote.test>")
    assert r.code == 250
    assert c.cmd("RCPT TO:<support@example.com>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(b"Subject: x\r\n\r\nbody\r\n.\r\n")
    r = c.reply()
    assert r.code == 451, r
    assert "4.3.0" in r.text
    assert c.cmd("NOOP").code == 250
    c.cmd("QUIT")
    c.close()
    assert gw.records() == []
    assert gw.wait_log("status=deferred")


def test_session_fork_fails_421_daemon_lives(gw):
    """T86: The daemon cannot fork a session -> the client gets 421 4.3.0 at once,
    the daemon logs why and keeps listening."""
    port = free_port()
    daemon_conf(gw, port)
    # The master's first fork is its start-up queue run; every later one fails.
    proc = subprocess.Popen(strace(gw.argv("-d"), "2+"), env=quiet_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        end = time.time() + 20
        replies = []
        while time.time() < end and len(replies) < 3:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
            except OSError:
                time.sleep(0.1)
                continue
            replies.append(s.makefile("rb").readline())
            s.close()
        assert len(replies) == 3
        assert all(r.startswith(b"421 4.3.0") for r in replies), replies
        assert proc.poll() is None
        assert gw.wait_log("fork a session")
    finally:
        stop_all(proc)


def descendants(top):
    out, todo = [], [top]
    while todo:
        pid = todo.pop()
        out.append(pid)
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                todo.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return out


def daemon_failing_accept(gw, port, when):
    """The daemon under strace, its accept4 failing with EMFILE as `when` says."""
    daemon_conf(gw, port)
    argv = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=accept4",
            "-e", f"inject=accept4:error=EMFILE:when={when}"] + gw.argv("-d")
    return subprocess.Popen(argv, env=quiet_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def stop_all(proc):
    """The daemon and everything under strace, at once (a graceful stop under
    strace waits out the 35 s grace for nothing)."""
    for pid in reversed(descendants(proc.pid)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=60)


def test_accept_out_of_descriptors_pauses_then_serves(gw):
    """accept() failing with EMFILE (the daemon out of descriptors) leaves the
    connection in the backlog and the listener readable: the daemon pauses a
    second each time instead of spinning on it (one warning a second, not
    thousands), and serves the client once accept() works again."""
    port = free_port()
    proc = daemon_failing_accept(gw, port, "1+")
    try:
        s = None
        end = time.time() + 20
        while s is None and time.time() < end:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
            except OSError:
                time.sleep(0.1)
        assert s is not None
        assert gw.wait_log("accept: pausing")
        time.sleep(3)
        warnings = gw.log_text().count("accept: pausing")
        assert 2 <= warnings <= 6, warnings
        assert proc.poll() is None
        s.close()
    finally:
        stop_all(proc)
    gw.log.unlink()
    proc = daemon_failing_accept(gw, port, "1..2")
    try:
        end = time.time() + 20
        greeting = b""
        while not greeting and time.time() < end:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=15)
                greeting = s.makefile("rb").readline()
                s.close()
            except OSError:
                time.sleep(0.1)
        assert greeting.startswith(b"220 "), greeting
        assert gw.log_text().count("accept: pausing") == 2
    finally:
        stop_all(proc)
