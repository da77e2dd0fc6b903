"""The standalone daemon (undersmtpd -d; TESTCATALOGUE J): many clients at once,
connection limits, SIGHUP, SIGTERM, kill -9, socket activation, no leaks."""
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import UNDERSMTPD, base_env, needs_root, tool
from smarthost import Sink, free_port
from test_spool import queue_ids


class Daemon:
    def __init__(self, gw, port, argv=None, env=None):
        self.gw = gw
        self.port = port
        self.proc = subprocess.Popen(argv or gw.argv("-d"), env=env or base_env(),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        end = time.time() + 15
        while time.time() < end:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                # That probe was a session: let it end so it counts against no limit.
                gw.wait_log("disconnect from")
                time.sleep(0.2)
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("daemon died: " + self.proc.stderr.read().decode())
                time.sleep(0.05)
        raise RuntimeError("daemon did not listen")

    def master(self):
        """The daemon master: the launcher's first child when started as root;
        otherwise the process we started (its children are session processes
        and queue runs)."""
        if os.geteuid() != 0:
            return self.proc.pid
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            kids = []
        return kids[0] if kids else self.proc.pid

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


def connect(port):
    from test_superservers import Connected
    return Connected(socket.create_connection(("127.0.0.1", port), timeout=10))


def daemon_conf(gw, port, extra=""):
    gw.write_conf(f'listen = {{ "127.0.0.1:{port}" }}\n' + extra)


def footprint(pids):
    """{pid: (VmRSS in kB, open fds)} of the daemon's long-lived processes."""
    out = {}
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        out[pid] = (rss, len(os.listdir(f"/proc/{pid}/fd")))
    return out


def children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(x) for x in f.read().split()]


def idle_session_process(pid):
    """A session process between connections: fds 0 and 1 on /dev/null."""
    try:
        return all(os.readlink(f"/proc/{pid}/fd/{n}") == "/dev/null" for n in (0, 1))
    except OSError:
        return False


def describe(pid):
    """What a process is doing, for a failure message: its state and fds 0-2."""
    out = [str(pid)]
    try:
        with open(f"/proc/{pid}/stat") as f:
            out.append(f.read().rsplit(")", 1)[1].split()[0])
        out += [os.readlink(f"/proc/{pid}/fd/{n}") for n in (0, 1, 2)]
        with open(f"/proc/{pid}/wchan") as f:
            out.append(f.read())
    except OSError as e:
        out.append(repr(e))
    return " ".join(out)


def retire_session_processes(d, timeout=30):
    """SIGHUP lets every idle session process go (they were started with the
    configuration just replaced); wait until the master has no child left."""
    os.kill(d.master(), signal.SIGHUP)
    end = time.time() + timeout
    while children(d.master()) and time.time() < end:
        time.sleep(0.05)
    assert children(d.master()) == []


def test_concurrent_clients_exactly_once(gw):
    """T101/J: 20 concurrent clients x 30 messages (25 sessions each, the last
    one carrying 6 messages), twice, half to a program and half to the
    smarthost: every message delivered exactly once (counted at the program
    and the sink); and the daemon's own processes (master, and the launcher
    when root) hold no more fds and at most 512 kB more memory after the
    second 500 sessions than after the first."""
    sink = Sink().start()
    port = free_port()
    counter = gw.rec / "count"
    daemon_conf(gw, port, f'smarthost "s" {{ host = "127.0.0.1" port = {sink.port} '
                          f'tls = none }}\n')
    gw.write_aliases(f'x: "|@REC@ --count {counter}"\n'.replace(
        "@REC@", f"{gw.recorder}"))
    d = Daemon(gw, port)
    errors = []

    def client(k, rnd):
        """25 messages, one session each; the last session pipelines 5 more."""
        try:
            for i in range(25):
                n = rnd * 30 + i
                rcpt = "x@example.com" if n % 2 else f"c{k}m{n}@remote.example"
                c = connect(port)
                c.greet()
                r = c.mail(rcpts=[rcpt], body=b"Subject: %d/%d\r\n\r\nbody\r\n" % (k, n))
                if r.code != 250:
                    errors.append((k, n, r))
                if i == 24:
                    for n in range(rnd * 30 + 25, rnd * 30 + 30):
                        rcpt = "x@example.com" if n % 2 else f"c{k}m{n}@remote.example"
                        r = c.mail(rcpts=[rcpt], body=b"Subject: %d/%d\r\n\r\nbody\r\n" % (k, n))
                        if r.code != 250:
                            errors.append((k, n, r))
                c.cmd("QUIT")
                c.sock.close()
        except Exception as e:       # noqa: BLE001 - reported below
            errors.append((k, repr(e)))

    def settle(expect):
        """The round's mail delivered, every session done (its process idle),
        no queue run; then the idle session processes let go, so that what the
        master holds is compared with nothing of theirs in it."""
        msgs = sink.wait_messages(expect, timeout=90)
        end = time.time() + 30
        while True:
            # One look for the loop and the verdict: a queue run the last
            # session's mail started may come and go between two looks.
            queued = queue_ids(gw)
            busy = [describe(p) for p in children(d.master()) if not idle_session_process(p)]
            if (not queued and not busy) or time.time() >= end:
                break
            time.sleep(0.1)
        assert queued == [] and busy == []
        retire_session_processes(d)         # waits for any queue run too
        return msgs

    prints = []
    try:
        for rnd in range(2):
            threads = [threading.Thread(target=client, args=(k, rnd)) for k in range(20)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert errors == [], [l for l in gw.log_text().splitlines() if "warn" in l.lower()
                                  or "cannot" in l or "spool" in l][:20]
            msgs = settle(20 * 15 * (rnd + 1))
            prints.append(footprint({d.proc.pid, d.master()}))
        rcpts = sorted(r for m in msgs for r in m.rcpts)
        assert rcpts == sorted(f"c{k}m{n}@remote.example" for k in range(20)
                               for n in range(0, 60, 2))
        assert counter.read_text().count("1\n") == 20 * 30
        first, second = prints
        for pid in first:
            (rss1, fds1), (rss2, fds2) = first[pid], second[pid]
            assert fds2 == fds1, (pid, fds1, fds2)
            if os.environ.get("UNDERSMTPD_SANITIZED") != "1":   # ASan's quarantine grows
                assert rss2 - rss1 < 512, (pid, rss1, rss2)  # kB, after 500 more sessions
        print(f"\ndaemon processes after 500 and 1,000 sessions (kB RSS, fds): {prints}")
    finally:
        assert d.stop() == 0
        sink.stop()


def test_connection_limits(gw):
    """T102: over max_connections -> 421 4.7.0 for the extra client; existing sessions
    unaffected.  Per-IP limit for clients outside relay_networks."""
    port = free_port()
    daemon_conf(gw, port, "max_connections = 2\n")
    d = Daemon(gw, port)
    try:
        a, b = connect(port), connect(port)
        assert a.reply().code == 220 and b.reply().code == 220
        c = connect(port)
        r = c.reply()
        assert r.code == 421 and r.lines[0].startswith("4.7.0")
        assert a.cmd("NOOP").code == 250
        a.cmd("QUIT")
        b.cmd("QUIT")
        a.sock.close()
        b.sock.close()
    finally:
        d.stop()
    port = free_port()
    daemon_conf(gw, port, 'max_connections_per_ip = 1\nrelay_networks = { "10.0.0.0/8" }\n')
    d = Daemon(gw, port)
    try:
        a = connect(port)
        assert a.reply().code == 220
        b = connect(port)
        assert b.reply().code == 421
        a.cmd("QUIT")
        a.sock.close()
    finally:
        d.stop()


def session_pids(gw):
    """The pid that served each connection so far, in order, from the log."""
    return [int(m) for m in re.findall(r"undersmtpd/smtpd\[(\d+)\]: connect from", gw.log_text())]


def test_session_processes_reused_with_nothing_carried_over(gw):
    """T78/J: the daemon's session processes serve one connection after another
    (as Postfix's smtpd does): the next connection to the same process finds no
    transaction, no HELO, and the aliases the last one re-read; a process
    serves at most 100 connections; a client's socket is closed when its
    session ends, whatever the process does next."""
    port = free_port()
    daemon_conf(gw, port)
    gw.write_aliases('a: "|@REC@ --exit 0"\n')
    d = Daemon(gw, port)
    try:
        c = connect(port)
        c.greet()
        c.cmd("MAIL FROM:<s@remote.test>")
        assert c.cmd("RCPT TO:<a@example.com>").code == 250
        ended = gw.log_count("disconnect from")
        c.sock.close()                          # gone mid-transaction
        assert gw.wait_log_more("disconnect from", ended)
        c = connect(port)
        assert c.reply().code == 220
        assert c.cmd("MAIL FROM:<s@remote.test>").code == 503   # no HELO carried over
        c.cmd("HELO client.test")
        assert c.cmd("RCPT TO:<a@example.com>").code == 503     # no MAIL either
        c.cmd("QUIT")
        assert c.read_eof() == b""              # closed when the session ended
        pids = session_pids(gw)
        assert len(pids) == 3 and pids[0] == pids[1] == pids[2], pids
        # The aliases file changes: the process re-reads it, and keeps the new
        # table for its next connection.
        gw.write_aliases('a: "|@REC@ --exit 0"\nb: "|@REC@ --exit 0"\n')
        for _ in range(2):
            c = connect(port)
            c.greet()
            assert c.mail(rcpts=["b@example.com"]).code == 250
            c.cmd("QUIT")
            assert c.read_eof() == b""          # then the process is idle again
        assert len(set(session_pids(gw))) == 1
        for _ in range(100):
            c = connect(port)
            assert c.reply().code == 220
            c.cmd("QUIT")
            assert c.read_eof() == b""
        pids = session_pids(gw)
        assert max(pids.count(p) for p in set(pids)) == 100, pids
        assert len(set(pids)) == 2
    finally:
        assert d.stop() == 0


def test_spooled_mail_goes_out_at_once(gw):
    """T101/J: mail the daemon spooled is forwarded at once, one message after
    another, with run_interval at an hour: the session process tells the
    master (not only the queue directory's time, which two changes within one
    tick of the file system's clock leave the same: make bench saw messages
    wait the whole run_interval)."""
    sink = Sink().start()
    port = free_port()
    daemon_conf(gw, port, f'smarthost "s" {{ host = "127.0.0.1" port = {sink.port} '
                          f'tls = none }}\nqueue {{ run_interval = 1h }}\n')
    d = Daemon(gw, port)
    # The worst case for the directory's time, made the rule: whatever happens
    # in queue/, its time is set back at once to the same instant.
    stop = threading.Event()
    queue = gw.spool / "queue"

    def freeze():
        while not stop.is_set():
            try:
                os.utime(queue, (946684800, 946684800))
            except OSError:
                pass
            time.sleep(0.0005)
    frozen = threading.Thread(target=freeze)
    frozen.start()
    try:
        time.sleep(0.2)
        for n in range(40):
            c = connect(port)
            c.greet()
            assert c.mail(rcpts=[f"m{n}@remote.example"]).code == 250
            c.cmd("QUIT")
            assert c.read_eof() == b""
            assert len(sink.wait_messages(n + 1, timeout=10)) == n + 1, n
    finally:
        stop.set()
        frozen.join()
        assert d.stop() == 0
        sink.stop()


def test_session_max_use_one_gives_each_connection_its_process(gw):
    """session_max_use = 1: no reuse at all (each connection a fresh process),
    for sites that want one connection's process never to see another's."""
    port = free_port()
    daemon_conf(gw, port, "session_max_use = 1\n")
    d = Daemon(gw, port)
    try:
        for _ in range(5):
            c = connect(port)
            assert c.reply().code == 220
            c.cmd("QUIT")
            assert c.read_eof() == b""
        pids = session_pids(gw)
        assert len(pids) == 6 and len(set(pids)) == 6, pids
    finally:
        assert d.stop() == 0


def test_sighup_reload_good_and_broken(gw):
    """SIGHUP re-reads configuration and aliases; a broken file keeps the old ones.
    Each step waits for a log line that is new since the signal, and the first
    checks a key only a reload can bring in (sessions re-read the aliases by
    themselves, never the configuration)."""
    port = free_port()
    daemon_conf(gw, port)
    gw.write_aliases('a: "|@REC@ --exit 0"\nb: "|@REC@"\n')
    d = Daemon(gw, port)
    reloaded = "SIGHUP: configuration"
    kept = "keeping the running configuration"
    try:
        def rcpts(*addrs):
            c = connect(port)
            c.greet()
            c.cmd("MAIL FROM:<s@remote.test>")
            codes = [c.cmd(f"RCPT TO:<{a}>").code for a in addrs]
            c.cmd("QUIT")
            c.sock.close()
            return codes
        assert rcpts("a@example.com", "a@example.com") == [250, 250]
        before = gw.log_count(reloaded)
        gw.conf.write_text(gw.conf.read_text() + "max_recipients = 1\n")
        os.kill(d.master(), signal.SIGHUP)
        assert gw.wait_log_more(reloaded, before)
        assert rcpts("a@example.com", "a@example.com") == [250, 452]
        before = gw.log_count(kept)
        gw.write_aliases('a: "|@REC@"\nbroken line\n')
        os.kill(d.master(), signal.SIGHUP)
        assert gw.wait_log_more(kept, before)
        assert rcpts("b@example.com") == [250]              # the old table is in force
        before = gw.log_count(kept)
        gw.conf.write_text(gw.conf.read_text() + "bogus_key = 1\n")
        os.kill(d.proc.pid, signal.SIGHUP)       # to the launcher: passed on
        assert gw.wait_log_more(kept, before)
        assert rcpts("a@example.com", "a@example.com") == [250, 452]
    finally:
        assert d.stop() == 0


@needs_root
def test_alias_user_added_by_reload_runs_as_that_user(gw):
    """T79: The root launcher runs programs only as accounts the configuration
    names (pipe.user, alias blocks).  An alias block added later and loaded by
    SIGHUP to the daemon master alone (the launcher never gets the signal) is
    followed: the launcher re-reads the file when it changed."""
    import pwd
    port = free_port()
    daemon_conf(gw, port)
    gw.write_aliases('ops: "|@REC@"\n')
    daemon = pwd.getpwnam("daemon")
    d = Daemon(gw, port)
    try:
        def deliver():
            c = connect(port)
            c.greet()
            assert c.mail(rcpts=["ops@example.com"]).code == 250
            c.cmd("QUIT")
            c.sock.close()
        deliver()
        assert gw.records()[-1].ids.startswith(f"uid={pwd.getpwnam('nobody').pw_uid} ")
        daemon_conf(gw, port, 'alias "ops" { user = "daemon" }\n')
        os.kill(d.master(), signal.SIGHUP)
        assert gw.wait_log("SIGHUP: configuration")
        deliver()
        assert gw.records()[-1].ids == (f"uid={daemon.pw_uid} euid={daemon.pw_uid} "
                                        f"gid={daemon.pw_gid} egid={daemon.pw_gid} groups=")
        assert "refused to run a program" not in gw.log_text()
    finally:
        assert d.stop() == 0


def test_sigterm_during_data_and_idle(gw):
    """T14: SIGTERM -> idle sessions get 421 4.3.2; a message in DATA finishes with
    its true reply; the daemon exits 0."""
    port = free_port()
    daemon_conf(gw, port)
    gw.write_aliases('x: "|@REC@"\n')
    d = Daemon(gw, port)
    idle = connect(port)
    idle.greet()
    busy = connect(port)
    busy.greet()
    assert busy.cmd("MAIL FROM:<s@remote.test>").code == 250
    assert busy.cmd("RCPT TO:<x@example.com>").code == 250
    assert busy.cmd("DATA").code == 354
    busy.send(b"Subject: t\r\n\r\nhalf\r\n")
    time.sleep(0.3)
    d.proc.send_signal(signal.SIGTERM)
    r = idle.reply()
    assert r.code == 421 and r.lines[0].startswith("4.3.2")
    time.sleep(0.3)
    busy.send(b"rest\r\n.\r\n")
    assert busy.reply().code == 250
    assert d.proc.wait(timeout=40) == 0
    assert gw.one_record().body() == b"half\nrest\n"


def test_kill_9_after_250_then_restart_delivers(gw):
    """F/J: kill -9 of the daemon after a 250 -> the message is delivered after restart."""
    port, sport = free_port(), free_port()
    daemon_conf(gw, port, f'smarthost "s" {{ host = "127.0.0.1" port = {sport} tls = none }}\n'
                          'queue { run_interval = 1s retry_min = 1s retry_max = 1s }\n')
    d = Daemon(gw, port)
    c = connect(port)
    c.greet()
    assert c.mail(rcpts=["bob@remote.example"]).code == 250
    c.cmd("QUIT")
    c.sock.close()
    os.kill(d.master(), signal.SIGKILL)
    d.proc.kill()
    d.proc.wait(timeout=10)
    assert len(queue_ids(gw)) == 1
    sink = Sink(port=sport).start()
    try:
        d = Daemon(gw, port)
        assert len(sink.wait_messages(1, timeout=20)) == 1
    finally:
        d.stop()
        sink.stop()


def test_no_leaks_after_many_sessions(gw):
    """T78/J: after 1,000 sessions with pipes, timeouts and aborts: no zombie, the
    master's fd count unchanged."""
    port = free_port()
    daemon_conf(gw, port, "pipe { timeout = 1s }\n")
    gw.write_aliases('ok: "|@REC@ --exit 0"\nslow: "|@REC@ --sleep 5"\n')
    d = Daemon(gw, port)
    try:
        master = d.master()
        retire_session_processes(d)       # the one that served the start-up probe
        before = len(os.listdir(f"/proc/{master}/fd"))
        for i in range(1000):
            c = connect(port)
            c.greet()
            if i % 200 == 0:
                c.mail(rcpts=["slow@example.com"])
            elif i % 3 == 0:
                c.send(b"MAIL FROM:<a@b.test>\r\n")      # abort mid-way
                c.sock.close()
                continue
            else:
                c.mail(rcpts=["ok@example.com"])
            c.cmd("QUIT")
            c.sock.close()
        time.sleep(1.5)
        retire_session_processes(d)
        after = len(os.listdir(f"/proc/{master}/fd"))
        assert after == before
        out = subprocess.run(["ps", "-eo", "stat,ppid,args"], capture_output=True,
                             text=True).stdout
        # No zombie among the master's (or the launcher's) children.
        parents = {str(master), str(d.proc.pid)}
        assert not [l for l in out.splitlines()
                    if l.split()[0].startswith("Z") and l.split()[1] in parents]
    finally:
        assert d.stop() == 0


def test_systemd_socket_activation(gw):
    """LISTEN_FDS: the daemon serves the socket systemd passes (no Accept=yes)."""
    if tool("systemd-socket-activate") is None:
        pytest.skip("systemd-socket-activate not installed")
    port = free_port()
    gw.write_conf('listen = { "127.0.0.1:1" }\n')      # must not be used
    gw.write_aliases('x: "|@REC@"\n')
    d = Daemon(gw, port, argv=["systemd-socket-activate", f"--listen=127.0.0.1:{port}"]
               + gw.argv("-d"))
    try:
        c = connect(port)
        c.greet()
        assert c.mail(rcpts=["x@example.com"]).code == 250
        c.cmd("QUIT")
        c.sock.close()
        assert "using 1 socket(s) passed by systemd" in gw.log_text()
    finally:
        d.stop()


def test_slowloris_and_slow_data(gw):
    """T103/T104: 200 idle sockets trickling bytes are closed at the per-command
    deadline; DATA trickled below min_data_rate gets 421; a real client is served."""
    port = free_port()
    daemon_conf(gw, port, "timeout = 2s\nmin_data_rate = 1000\nmax_connections = 300\n")
    gw.write_aliases('x: "|@REC@"\n')
    d = Daemon(gw, port)
    try:
        idle = []
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"N")                       # a command that never ends
            idle.append(s)
        slow = connect(port)
        slow.greet()
        slow.cmd("MAIL FROM:<a@remote.test>")
        slow.cmd("RCPT TO:<x@example.com>")
        assert slow.cmd("DATA").code == 354
        start = time.time()
        r = None
        for _ in range(20):                      # one short line a second: < 1000 B/s
            try:
                slow.send(b"x\r\n")
            except OSError:
                break
            time.sleep(1)
            slow.sock.settimeout(0.01)
            try:
                r = slow.reply()
                break
            except (socket.timeout, BlockingIOError, EOFError):
                pass
            finally:
                slow.sock.settimeout(10)
        assert r is not None and r.code == 421, r
        assert time.time() - start < 10
        for s in idle:
            s.settimeout(10)
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            assert b"421 4.7.0" in data          # closed at the deadline
            s.close()
        c = connect(port)
        c.greet()
        assert c.mail(rcpts=["x@example.com"]).code == 250
        c.cmd("QUIT")
        c.sock.close()
        assert len(gw.records()) == 1
    finally:
        d.stop()


@pytest.mark.parametrize("conf,why", [
    ('user = "root"\n', "is root"),
    ('pipe { user = "root" }\n', "is root or the spool owner"),
    ('alias "x" { user = "mail" }\n', "is root or the spool owner"),
])
@needs_root
def test_refuses_unsafe_accounts(gw, conf, why):
    """SPEC 11: started as root, the daemon refuses root or the spool owner as a
    program's user, and root as `user`."""
    daemon_conf(gw, free_port(), conf)
    r = gw.run("-d")
    assert r.returncode == 78
    assert why in gw.log_text()


def test_spool_mode_tightened(gw):
    """A spool directory others may read is set back to 0700."""
    port = free_port()
    daemon_conf(gw, port)
    gw.spool.mkdir()
    gw.spool.chmod(0o755)
    d = Daemon(gw, port)
    d.stop()
    assert oct(gw.spool.stat().st_mode & 0o777) == "0o700"


def test_smarthost_loop_stopped_by_hop_limit(gw):
    """T100: the smarthost sends the mail back to us -> the hop limit stops the loop:
    554 5.4.6 at our own door, a DSN, and the DSN (from <>) is not bounced again."""
    port = free_port()
    daemon_conf(gw, port, f'max_hops = 5\n'
                          f'smarthost "self" {{ host = "127.0.0.1" port = {port} tls = none }}\n'
                          'queue { run_interval = 1s retry_min = 1s retry_max = 1s }\n')
    d = Daemon(gw, port)
    try:
        c = connect(port)
        c.greet()
        assert c.mail(rcpts=["v@loop.example"]).code == 250
        c.cmd("QUIT")
        c.sock.close()
        assert gw.wait_log("Too many hops", timeout=30)
        end = time.time() + 30
        while queue_ids(gw) and time.time() < end:
            time.sleep(0.2)
        assert queue_ids(gw) == []
        log = gw.log_text()
        assert "sender non-delivery notification" in log
        assert "never a bounce of a bounce" in log
    finally:
        d.stop()
