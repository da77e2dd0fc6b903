"""Black-box harness: the real undersmtpd binary, real sockets, real programs.

Each test gets a Gateway: a private directory (mode 0755 so the pipe user
`nobody` can reach it) holding undersmtpd.conf, an aliases file, a spool and
a log file.  Gateway.session() runs one inetd-style session exactly as inetd
does: a real TCP connection on loopback is accepted and the accepted socket
becomes the program's fds 0, 1 and 2.
"""
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Sanitizer settings travel into every session (the suite also runs under
# ASan/UBSan); nothing else of the test runner's environment does.
SANITIZER_ENV = {k: v for k, v in os.environ.items()
                 if k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")}


# Under make asan the sanitizers exit with this status (the Makefile's
# SAN_EXITCODE); undersmtpd itself never does.  A session or command that ends
# with it fails its test, even where the test looks at nothing else.
SAN_EXITCODE = int(os.environ.get("UNDERSMTPD_SAN_EXITCODE", "0")) or None
SANITIZER_EXITS = []      # (what, status) of every process that ended so


def note_exit(what, status):
    if SAN_EXITCODE is not None and status == SAN_EXITCODE:
        SANITIZER_EXITS.append((what, status))


def tool(name):
    """A program's path, also in the sbin directories an ordinary user's PATH
    lacks (haproxy, xinetd and postfix live there), or None."""
    return shutil.which(name, path=os.environ.get("PATH", "") +
                        ":/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin")


# Skips that are the point: a test of what only root can do, run as someone
# else; a test that cannot run under the sanitizers.  Any other skip means a
# tool is missing or the machine refused something; with UNDERSMTPD_NO_SKIP=1
# (.ci/run: root, every tool installed) it fails the run instead of hiding.
DELIBERATE_SKIPS = ("SKIP: needs root", "SKIP: sanitized")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.skipped or os.environ.get("UNDERSMTPD_NO_SKIP") != "1":
        return
    reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
    reason = reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason
    if not reason.startswith(DELIBERATE_SKIPS):
        rep.outcome = "failed"
        rep.longrepr = f"skipped where nothing may be (UNDERSMTPD_NO_SKIP=1): {reason}"


def base_env(extra=None):
    env = {"PATH": "/usr/bin:/bin", **SANITIZER_ENV}
    env.update(extra or {})
    return env
UNDERSMTPD = os.environ.get("UNDERSMTPD", str(ROOT / "build" / "undersmtpd"))
RECORDER = os.environ.get("RECORDER", str(ROOT / "build" / "recorder"))
# make valgrind runs sessions and commands under valgrind: a command to put in front.
WRAP = os.environ.get("UNDERSMTPD_WRAP", "").split()
# How long a client waits for a reply before calling it a hang: valgrind runs
# the session some 30 times slower, and 50 of them starting at once on two
# cores took more than 30 s to greet.
REPLY_TIMEOUT = 120 if WRAP else 30
NOBODY = pwd.getpwnam("nobody")
MAIL = pwd.getpwnam("mail")
# For tests of what only root can set up or do (switch users, chown, sendmail -C).
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="SKIP: needs root")


class Reply:
    def __init__(self, code, lines):
        self.code = code
        self.lines = lines

    @property
    def text(self):
        return "\n".join(self.lines)

    def __repr__(self):
        return f"Reply({self.code}, {self.lines!r})"


class Client:
    """One SMTP client connection to one undersmtpd inetd-style session."""

    def __init__(self, argv, env=None, source="127.0.0.1", family=socket.AF_INET,
                 stderr_to_socket=True, preexec=None):
        host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
        if source.startswith("::ffff:"):
            host = source      # an IPv4-mapped loopback peer on a dual-stack socket
        listener = socket.socket(family, socket.SOCK_STREAM)
        if family == socket.AF_INET6:
            listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        listener.bind((host, 0))
        listener.listen(1)
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((source, 0))
        self.sock.connect(listener.getsockname()[:2])
        server, _ = listener.accept()
        listener.close()
        self.proc = subprocess.Popen(
            argv, stdin=server, stdout=server,
            stderr=server if stderr_to_socket else subprocess.DEVNULL,
            env=env if env is not None else base_env(),
            preexec_fn=preexec, close_fds=True)
        server.close()
        self.sock.settimeout(REPLY_TIMEOUT)
        self.buf = b""
        self.raw = b""   # everything the server sent, for "nothing else" checks

    def _line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("connection closed; unread: %r" % self.buf)
            self.raw += data
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def reply(self):
        lines = []
        while True:
            line = self._line()
            assert len(line) >= 3 and line[:3].isdigit(), f"bad reply line {line!r}"
            lines.append(line[4:])
            if len(line) == 3 or line[3] == " ":
                return Reply(int(line[:3]), lines)
            assert line[3] == "-", f"bad reply line {line!r}"

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def greet(self, ehlo="client.test"):
        r = self.reply()
        assert r.code == 220, r
        r = self.cmd(f"EHLO {ehlo}")
        assert r.code == 250, r
        return r

    def mail(self, sender="sender@remote.test", rcpts=(), body=None):
        """A whole transaction; returns the reply to the final dot."""
        r = self.cmd(f"MAIL FROM:<{sender}>")
        assert r.code == 250, r
        for rcpt in rcpts:
            r = self.cmd(f"RCPT TO:<{rcpt}>")
            assert r.code == 250, (rcpt, r)
        r = self.cmd("DATA")
        assert r.code == 354, r
        if body is None:
            body = b"Subject: test\r\n\r\nhello\r\n"
        if isinstance(body, str):
            body = body.encode()
        self.send(body + b".\r\n")
        return self.reply()

    def read_eof(self, timeout=30):
        """Read until the server closes; returns what came."""
        self.sock.settimeout(timeout)
        data = self.buf
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return data
            self.raw += chunk
            data += chunk

    def close(self, timeout=30):
        try:
            self.sock.close()
        finally:
            try:
                status = self.proc.wait(timeout=timeout)
                note_exit(" ".join(self.proc.args), status)
                return status
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise


class Record:
    """What one run of the recorder program was given."""

    def __init__(self, path):
        self.path = Path(path)
        self.argv = [a.decode() for a in (self.path / "argv").read_bytes().split(b"\0")[:-1]]
        env = {}
        for item in (self.path / "env").read_bytes().split(b"\0")[:-1]:
            k, _, v = item.decode("utf-8", "replace").partition("=")
            env[k] = v
        self.env = env
        self.ids = (self.path / "ids").read_text().strip()
        self.fds = sorted(int(x) for x in (self.path / "fds").read_text().split())
        self.signals = (self.path / "signals").read_text().strip()
        self.cwd = (self.path / "cwd").read_text().strip()
        stdin = self.path / "stdin"
        self.stdin = stdin.read_bytes() if stdin.exists() else None

    def body(self):
        """The message after the headers we prepend (Return-Path etc.)."""
        return self.stdin.split(b"\n\n", 1)[1] if self.stdin else None


class Gateway:
    def __init__(self, base):
        self.base = Path(base)
        self.base.chmod(0o755)
        self.spool = self.base / "spool"
        self.aliases = self.base / "aliases"
        self.conf = self.base / "undersmtpd.conf"
        self.log = self.base / "undersmtpd.log"
        self.rec = self.base / "rec"
        self.rec.mkdir()
        self.rec.chmod(0o777)
        # Programs live in the test's own 0755 directory: a checkout under a
        # private home directory would not be reachable by the pipe user.
        self.recorder = str(self.base / "recorder")
        shutil.copy2(RECORDER, self.recorder)
        os.chmod(self.recorder, 0o755)
        self.write_aliases("")
        self.write_conf()

    def write_aliases(self, text, mode=0o644):
        tmp = self.aliases.with_suffix(".new")
        tmp.write_text(text.replace("@REC@", f"{self.recorder} --dir {self.rec}"))
        tmp.chmod(mode)
        os.replace(tmp, self.aliases)

    def write_conf(self, extra="", hostname="mx.example.com"):
        self.conf.write_text(
            f'hostname = "{hostname}"\n'
            f'local_domains = {{ "example.com", "mx.example.com" }}\n'
            f'aliases = "{self.aliases}"\n'
            f'spool_dir = "{self.spool}"\n'
            f'log_file = "{self.log}"\n'
            f'min_free_space = 1M\n' + extra)

    def argv(self, *extra):
        return [*WRAP, UNDERSMTPD, "-C", str(self.conf), *extra]

    def shared_binary(self):
        """The undersmtpd binary copied where other users may run it: a checkout
        under a private home (/root, 0700) is not reachable by nobody."""
        path = self.base / "undersmtpd-bin"
        if not path.exists():
            shutil.copy2(UNDERSMTPD, path)
            path.chmod(0o755)
        return str(path)

    def session(self, **kw):
        extra = kw.pop("args", ())
        return Client(self.argv(*extra), **kw)

    def run(self, *args, **kw):
        r = subprocess.run(self.argv(*args), capture_output=True, text=True,
                           timeout=kw.pop("timeout", 30), **kw)
        note_exit(" ".join(r.args), r.returncode)
        return r

    def records(self):
        return [Record(p) for p in sorted(self.rec.glob("rec-*"), key=os.path.getmtime)]

    def one_record(self):
        recs = self.records()
        assert len(recs) == 1, f"expected one program run, got {len(recs)}"
        return recs[0]

    def log_text(self):
        return self.log.read_text() if self.log.exists() else ""

    def log_count(self, needle):
        return self.log_text().count(needle)

    def wait_log_more(self, needle, before, timeout=10):
        """needle appears in the log more often than the before times it did."""
        end = time.time() + timeout
        while time.time() < end:
            if self.log_count(needle) > before:
                return True
            time.sleep(0.05)
        return False

    def wait_log(self, needle, timeout=10):
        end = time.time() + timeout
        while time.time() < end:
            if needle in self.log_text():
                return True
            time.sleep(0.05)
        return False


@pytest.fixture
def gw():
    base = tempfile.mkdtemp(prefix="undersmtpd-test-")
    del SANITIZER_EXITS[:]
    try:
        yield Gateway(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert SANITIZER_EXITS == [], f"ended with the sanitizers' exit status: {SANITIZER_EXITS}"
