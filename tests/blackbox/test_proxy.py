"""PROXY protocol v1 and v2 behind a real HAProxy (Debian's haproxy): the client
address HAProxy saw drives relay control and the log; a listener not marked
for it never trusts a header."""
import shutil
import socket
import subprocess
import time

import pytest

from smarthost import free_port
from test_daemon import Daemon, connect
from test_superservers import Connected


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
    p = subprocess.Popen(["haproxy", "-f", str(cfg), "-db"], stdout=subprocess.DEVNULL,
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


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")
@pytest.mark.parametrize("version", [1, 2])
def test_behind_haproxy(gw, version):
    back, front = free_port(), free_port()
    gw.write_conf(f'listen = {{ "127.0.0.1:{back} proxy" }}\n'
                  'relay_networks = { "127.0.0.1/32" }\n'
                  'smarthost "s" { host = "127.0.0.1" port = 9 tls = none }\n'
                  'queue { run_after_accept = false }\n')
    d = Daemon.__new__(Daemon)
    d.gw, d.port = gw, back
    d.proc = subprocess.Popen(gw.argv("-d"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert gw.wait_log("listening on")
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
        assert "connect from [127.0.0.2]" in gw.log_text()
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
