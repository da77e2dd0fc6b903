"""PROXY protocol v1 and v2 behind a real HAProxy (Debian's haproxy): the client
address HAProxy saw drives relay control and the log; a listener not marked
for it never trusts a header."""
import socket
import subprocess
import time

import pytest

from smarthost import free_port
from test_daemon import Daemon, connect
from test_superservers import Connected
from conftest import tool


def haproxy(gw, front, back, version):
    cfg = gw.base / f"haproxy-{version}.cfg"
    cfg.write_text(f"""
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend smtp
    bind 127.0.0.1:{front}
    default_backend undersmtpd
backend undersmtpd
    server s1 127.0.0.1:{back} {"send-proxy" if version == 1 else "send-proxy-v2"}
""")
    p = subprocess.Popen([tool("haproxy"), "-f", str(cfg), "-db"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    end = time.time() + 10
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", front), timeout=1).close()
            return p
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise RuntimeError("haproxy did not start")


def via(front, source):
    s = socket.socket()
    s.bind((source, 0))
    s.connect(("127.0.0.1", front))
    s.settimeout(10)
    return Connected(s)


def proxy_daemon(gw, back, conf, argv=None):
    """The daemon behind a PROXY listener, started without Daemon's probe
    (a bare connection is no session there)."""
    gw.write_conf(f'listen = {{ "127.0.0.1:{back} proxy" }}\n' + conf)
    d = Daemon.__new__(Daemon)
    d.gw, d.port = gw, back
    d.proc = subprocess.Popen(argv or gw.argv("-d"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    if argv is None:
        assert gw.wait_log("listening on")
    return d


@pytest.mark.skipif(tool("haproxy") is None, reason="haproxy not installed")
@pytest.mark.parametrize("version", [1, 2])
def test_behind_haproxy(gw, version):
    back, front = free_port(), free_port()
    d = proxy_daemon(gw, back, 'relay_networks = { "127.0.0.1/32" }\n'
                     'smarthost "s" { host = "127.0.0.1" port = 9 tls = none }\n'
                     'queue { run_after_accept = false }\n')
    hp = haproxy(gw, front, back, version)
    try:
        # HAProxy itself connects from 127.0.0.1 (trusted); the client does not.
        c = via(front, "127.0.0.2")
        r = c.greet()
        assert "[127.0.0.2]" in r.lines[0]
        c.cmd("MAIL FROM:<a@remote.test>")
        assert c.cmd("RCPT TO:<v@foreign.test>").code == 554
        c.cmd("QUIT")
        c.sock.close()
        c = via(front, "127.0.0.1")
        c.greet()
        c.cmd("MAIL FROM:<a@remote.test>")
        assert c.cmd("RCPT TO:<v@foreign.test>").code == 250
        c.cmd("QUIT")
        c.sock.close()
        assert "connect from unknown[127.0.0.2]" in gw.log_text()
        # Straight to the marked listener without a header: closed, no greeting.
        s = socket.create_connection(("127.0.0.1", back), timeout=10)
        s.sendall(b"EHLO x\r\n")
        try:
            assert s.recv(100) == b""          # closed without a greeting
        except ConnectionResetError:
            pass                               # (or reset: our EHLO was unread)
        s.close()
        assert "without a valid PROXY header" in gw.log_text()
    finally:
        hp.terminate()
        hp.wait(timeout=10)
        d.stop()


def test_unmarked_listener_never_trusts_a_header(gw):
    """A forged PROXY line on a plain listener is just an unknown command."""
    port = free_port()
    gw.write_conf(f'listen = {{ "127.0.0.1:{port}" }}\n'
                  'relay_networks = { "127.0.0.1/32" }\n'
                  'smarthost "s" { host = "127.0.0.1" port = 9 tls = none }\n')
    d = Daemon(gw, port)
    try:
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.connect(("127.0.0.1", port))
        s.settimeout(10)
        c = Connected(s)
        c.send(b"PROXY TCP4 127.0.0.1 127.0.0.1 1234 25\r\n")
        assert c.reply().code == 220
        assert c.reply().code == 500
        c.cmd("EHLO x")
        c.cmd("MAIL FROM:<a@remote.test>")
        assert c.cmd("RCPT TO:<v@foreign.test>").code == 554
        c.cmd("QUIT")
        s.close()
    finally:
        d.stop()


@pytest.mark.skipif(tool("haproxy") is None, reason="haproxy not installed")
def test_per_ip_limit_counts_the_client_behind_haproxy(gw):
    """max_connections_per_ip counts the address in the PROXY header, not
    HAProxy's: before, every client behind a remote HAProxy shared one count,
    so the whole site got 421 after max_connections_per_ip sessions (T102)."""
    back, front = free_port(), free_port()
    # HAProxy's own address (127.0.0.1) is not exempt, as a remote one would not be.
    d = proxy_daemon(gw, back, 'relay_networks = { "10.0.0.0/8" }\n'
                     'max_connections_per_ip = 2\nqueue { run_after_accept = false }\n')
    hp = haproxy(gw, front, back, 2)
    held = []
    try:
        # Five clients at once through one HAProxy: all served.
        for n in range(2, 7):
            c = via(front, f"127.0.0.{n}")
            r = c.greet()
            assert f"[127.0.0.{n}]" in r.lines[0]
            held.append(c)
        # 127.0.0.2 already has two sessions when it opens a third.
        held.append(via(front, "127.0.0.2"))
        held[-1].greet()
        extra = via(front, "127.0.0.2")
        r = extra.reply()
        assert r.code == 421 and r.lines[0].startswith("4.7.0")
        assert "connect from unknown[127.0.0.2]: too many connections from this address" \
            in gw.log_text()
        extra.sock.close()
        # The sessions held stay usable; a freed slot serves the address again.
        assert held[0].cmd("NOOP").code == 250
        held[0].cmd("QUIT")
        held[0].sock.close()
        held.pop(0)
        deadline = time.time() + 10
        while True:
            c = via(front, "127.0.0.2")
            r = c.reply()
            if r.code == 220 or time.time() > deadline:
                break
            c.sock.close()                # the master has not reaped it yet
            time.sleep(0.1)
        assert r.code == 220
        held.append(c)
    finally:
        for c in held:
            c.sock.close()
        hp.terminate()
        hp.wait(timeout=10)
        d.stop()


@pytest.mark.skipif(tool("haproxy") is None
                    or tool("systemd-socket-activate") is None,
                    reason="haproxy or systemd-socket-activate not installed")
def test_systemd_socket_named_proxy(gw):
    """A socket systemd passes with FileDescriptorName=proxy is a PROXY listener:
    the client behind HAProxy drives relay control; a peer without a header is closed."""
    back, front = free_port(), free_port()
    # The listen address in the file (on port 1) must not be used.
    d = proxy_daemon(gw, 1, 'relay_networks = { "127.0.0.2/32" }\n'
                     'smarthost "s" { host = "127.0.0.1" port = 9 tls = none }\n'
                     'queue { run_after_accept = false }\n',
                     argv=["systemd-socket-activate", f"--listen=127.0.0.1:{back}",
                           "--fdname=proxy"] + gw.argv("-d"))
    hp = haproxy(gw, front, back, 1)   # (its probe of the front starts nothing)
    try:
        # The first connection makes systemd-socket-activate start the daemon.
        for source, code in (("127.0.0.2", 250), ("127.0.0.3", 554)):
            c = via(front, source)
            assert f"[{source}]" in c.greet().lines[0]
            c.cmd("MAIL FROM:<a@remote.test>")
            assert c.cmd("RCPT TO:<v@foreign.test>").code == code
            c.cmd("QUIT")
            c.sock.close()
        assert "using 1 socket(s) passed by systemd" in gw.log_text()
        assert 'named "proxy"' in gw.log_text()
        s = socket.create_connection(("127.0.0.1", back), timeout=10)
        s.sendall(b"EHLO x\r\n")
        try:
            assert s.recv(100) == b""
        except ConnectionResetError:
            pass
        s.close()
    finally:
        hp.terminate()
        hp.wait(timeout=10)
        d.stop()
