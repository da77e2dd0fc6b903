"""Who may connect, and for how long (issue 15 item 4; CATALOGUE T115, T117 and
the session limits): client_networks, proxy_networks and PROXY headers that
name no client, IPv6 clients counted by prefix, a session's total time, and
the error sleep after soft_error_limit."""
import struct
import time

from smarthost import free_port
from test_daemon import Daemon
from test_proxy import via

RELAY_CONF = ('smarthost "s" { host = "127.0.0.1" port = 9 tls = none }\n'
              'queue { run_after_accept = false }\n')


def from_source(port, source):
    """A client connection to 127.0.0.1:port from the loopback address source."""
    return via(port, source)


def test_client_outside_client_networks_inetd(gw):
    """T117: 554 5.7.1 at the greeting, logged; every command but QUIT gets 503
    (RFC 5321 3.1); QUIT closes.  A client inside is served as usual."""
    gw.write_conf('client_networks = { "127.0.0.1/32", "::1/128" }\n')
    c = gw.session(source="127.0.0.2")
    r = c.reply()
    assert r.code == 554 and r.lines[0].startswith("5.7.1"), r
    assert c.cmd("EHLO x").code == 503
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 503
    assert c.cmd("QUIT").code == 221
    c.close()
    assert "connect from unknown[127.0.0.2]: not in client_networks: refused" in gw.log_text()
    c = gw.session(source="127.0.0.1")
    c.greet()
    c.cmd("QUIT")
    c.close()


def test_client_outside_client_networks_daemon(gw):
    """T117 in daemon mode."""
    port = free_port()
    gw.write_conf(f'listen = {{ "127.0.0.1:{port}" }}\nclient_networks = {{ "127.0.0.1/32" }}\n')
    d = Daemon(gw, port)
    try:
        c = from_source(port, "127.0.0.2")
        r = c.reply()
        assert r.code == 554 and r.lines[0].startswith("5.7.1"), r
        assert c.cmd("QUIT").code == 221
        c.sock.close()
        c = from_source(port, "127.0.0.1")
        assert c.reply().code == 220
        c.cmd("QUIT")
        c.sock.close()
    finally:
        d.stop()


def proxy_listener(gw, extra):
    port = free_port()
    gw.write_conf(f'listen = {{ "127.0.0.1:{port} proxy" }}\n' + RELAY_CONF + extra)
    d = Daemon.__new__(Daemon)
    d.gw, d.port = gw, port
    import subprocess
    d.proc = subprocess.Popen(gw.argv("-d"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert gw.wait_log("listening on")
    return d, port


V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def test_proxy_header_only_from_proxy_networks(gw):
    """T115: a PROXY header from an address outside proxy_networks is never
    believed: the connection is closed, logged; from inside it names the client."""
    d, port = proxy_listener(gw, 'proxy_networks = { "127.0.0.1/32" }\n'
                                 'relay_networks = { "10.0.0.0/8" }\n')
    try:
        c = from_source(port, "127.0.0.2")
        c.send(b"PROXY TCP4 10.1.2.3 127.0.0.1 1234 25\r\n")
        try:
            assert c.read_eof() == b""            # closed without a word
        except ConnectionResetError:
            pass                                  # (or reset: the header was unread)
        c.sock.close()
        assert gw.wait_log("connection on a PROXY listener from unknown[127.0.0.2], which is "
                           "not in proxy_networks: closed")
        c = from_source(port, "127.0.0.1")
        c.send(b"PROXY TCP4 10.1.2.3 127.0.0.1 1234 25\r\n")
        assert "[10.1.2.3]" in c.greet().lines[0]
        c.cmd("MAIL FROM:<a@remote.test>")
        assert c.cmd("RCPT TO:<v@foreign.test>").code == 250       # 10/8 may relay
        c.cmd("QUIT")
        c.sock.close()
    finally:
        d.stop()


def test_proxy_unknown_and_local_are_unknown_clients(gw):
    """T115: v1 UNKNOWN and v2 LOCAL name no client; the session's client is
    then unknown, never the proxy's own (loopback, relay-allowed) address."""
    d, port = proxy_listener(gw, 'relay_networks = { "127.0.0.0/8" }\n')
    try:
        for header in (b"PROXY UNKNOWN\r\n",
                       b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
                       V2_SIG + bytes([0x20, 0x00]) + struct.pack("!H", 0)):
            c = from_source(port, "127.0.0.1")
            c.send(header)
            r = c.greet()
            assert "[unknown]" in r.lines[0], (header, r)
            c.cmd("MAIL FROM:<a@remote.test>")
            r = c.cmd("RCPT TO:<v@foreign.test>")
            assert r.code == 554 and r.lines[0].startswith("5.7.1"), (header, r)
            c.cmd("QUIT")
            c.sock.close()
    finally:
        d.stop()


def test_ipv6_clients_counted_by_prefix(gw):
    """T115: max_connections_per_ip counts IPv6 clients by client_ipv6_prefix_length
    (64 by default): one host has a whole /64 to pick addresses from."""
    d, port = proxy_listener(gw, 'max_connections_per_ip = 2\n'
                                 'relay_networks = { "10.0.0.0/8" }\n')
    held = []
    try:
        for n in (1, 2):
            c = from_source(port, "127.0.0.1")
            c.send(f"PROXY TCP6 2001:db8:0:1::{n} ::1 1234 25\r\n".encode())
            assert c.reply().code == 220
            held.append(c)
        c = from_source(port, "127.0.0.1")
        c.send(b"PROXY TCP6 2001:db8:0:1::3 ::1 1234 25\r\n")
        r = c.reply()
        assert r.code == 421 and r.lines[0].startswith("4.7.0"), r
        c.sock.close()
        c = from_source(port, "127.0.0.1")                  # another /64: its own count
        c.send(b"PROXY TCP6 2001:db8:0:2::3 ::1 1234 25\r\n")
        assert c.reply().code == 220
        held.append(c)
    finally:
        for c in held:
            c.sock.close()
        d.stop()


def test_session_time_limit(gw):
    """max_session_time: a session that keeps itself busy within the idle
    timeout still ends, with 421 4.4.2, when its time is up."""
    gw.write_conf('max_session_time = 2s\ntimeout = 5m\n')
    c = gw.session()
    c.greet()
    start = time.time()
    while True:
        r = c.cmd("NOOP")
        if r.code != 250:
            break
        assert time.time() - start < 30, "the session did not end"
        time.sleep(0.3)
    assert r.code == 421 and r.lines[0].startswith("4.4.2") and "time limit" in r.text, r
    assert time.time() - start >= 1.5
    assert c.read_eof() == b""
    c.close()


def test_error_sleep_after_soft_error_limit(gw):
    """Postfix's smtpd_error_sleep_time: past soft_error_limit, each error reply
    waits error_sleep; below it, none does."""
    gw.write_conf('soft_error_limit = 2\nerror_sleep = 1s\n')
    c = gw.session()
    c.greet()
    took = []
    for _ in range(4):
        start = time.time()
        assert c.cmd("BOGUS").code == 500
        took.append(time.time() - start)
    c.cmd("QUIT")
    c.close()
    assert took[2] >= 0.9 and took[3] >= 0.9, took
    assert took[0] < 0.9 and took[1] < 0.9, took       # (a lower bound, not speed)
