"""The super-servers undersmtpd is meant to run under, for real: xinetd
(foreground, its own configuration) and systemd's socket activation with
Accept=yes (systemd-socket-activate --inetd), each on a free loopback port."""
import socket
import subprocess
import time

import pytest

from conftest import Client, UNDERSMTPD, needs_root, tool


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Connected(Client):
    """A Client on an already connected socket (the super-server accepted it)."""

    def __init__(self, sock):
        self.sock = sock
        self.sock.settimeout(30)
        self.buf = b""
        self.raw = b""
        self.proc = None


def connect(port, timeout=10):
    end = time.time() + timeout
    while True:
        try:
            return Connected(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            if time.time() > end:
                raise
            time.sleep(0.1)


def converse(gw, port):
    c = connect(port)
    c.greet()
    r = c.mail(rcpts=["rt@example.com"])
    assert c.cmd("QUIT").code == 221
    c.sock.close()
    return r


@needs_root     # xinetd starts the service as user root
@pytest.mark.skipif(tool("xinetd") is None, reason="xinetd not installed")
def test_real_xinetd(gw):
    """xinetd runs one undersmtpd per connection, as root (the launcher then runs
    the program as nobody); the client address reaches relay control."""
    gw.write_aliases('rt: "|@REC@ --exit 0"\n')
    port = free_port()
    conf = gw.base / "xinetd.conf"
    conf.write_text(f"""
defaults
{{
    instances = 20
}}
service undersmtpd-test
{{
    type        = UNLISTED
    port        = {port}
    bind        = 127.0.0.1
    socket_type = stream
    protocol    = tcp
    wait        = no
    user        = root
    server      = {UNDERSMTPD}
    server_args = -C {gw.conf}
}}
""")
    pidfile = gw.base / "xinetd.pid"
    xinetd = subprocess.Popen([tool("xinetd"), "-dontfork", "-f", str(conf), "-pidfile",
                               str(pidfile)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        r = converse(gw, port)
        assert r.code == 250, r
        rec = gw.one_record()
        assert rec.env["CLIENT_ADDRESS"] == "127.0.0.1"
        assert rec.ids.startswith("uid=65534 ")
    finally:
        xinetd.terminate()
        xinetd.wait(timeout=10)


@pytest.mark.skipif(tool("systemd-socket-activate") is None,
                    reason="systemd-socket-activate not installed")
def test_systemd_socket_activation_accept_yes(gw):
    """systemd with Accept=yes hands each connection over as fds 0 and 1."""
    gw.write_aliases('rt: "|@REC@ --exit 75"\n')
    port = free_port()
    act = subprocess.Popen(["systemd-socket-activate", "--inetd", "--accept",
                            f"--listen=127.0.0.1:{port}", UNDERSMTPD, "-C", str(gw.conf)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        r = converse(gw, port)
        assert r.code == 451, r      # the program's EX_TEMPFAIL reaches the client
        assert len(gw.records()) == 1
    finally:
        act.terminate()
        act.wait(timeout=10)
