"""Server-side STARTTLS and AUTH (SPEC 6, 11; TESTCATALOGUE T45): the
certificate and key from the configuration, AUTH PLAIN/LOGIN only after
STARTTLS against a crypt(3) users file, relay allowed only after AUTH."""
import base64
import os
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from conftest import MAIL
from test_tls_auth import make_cert

UNTRUSTED = "127.0.0.2"


@pytest.fixture
def tls_gw(gw):
    if os.geteuid() != 0:
        pytest.skip("SKIP: needs root (the key and users file are the spool user's)")
    crt, key = make_cert(gw.base, "mx.example.com")
    users = gw.base / "users"
    hashed = subprocess.run(["openssl", "passwd", "-6", "s3cret"], capture_output=True,
                            text=True, check=True).stdout.strip()
    users.write_text(f"# user:crypt(3) hash\nalice:{hashed}\n")
    users.chmod(0o600)
    os.chown(users, MAIL.pw_uid, MAIL.pw_gid)
    os.chown(key, MAIL.pw_uid, MAIL.pw_gid)
    gw.write_conf(f'relay_networks = {{ "127.0.0.1/32" }}\n'
                  f'smarthost "s" {{ host = "127.0.0.1" port = 9 tls = none }}\n'
                  f'queue {{ run_after_accept = false }}\n'
                  f'tls {{ cert_file = "{crt}" key_file = "{key}" '
                  f'auth_users_file = "{users}" }}\n')
    gw.crt = crt
    gw.users = users
    return gw


def tls_client(gw, source=UNTRUSTED):
    """A session over a real socket; returns (Client, ssl context)."""
    c = gw.session(source=source)
    ctx = ssl.create_default_context(cafile=str(gw.crt))
    return c, ctx


def upgrade(c, ctx):
    c.sock = ctx.wrap_socket(c.sock, server_hostname="mx.example.com")
    c.buf = b""


def tls_session(gw):
    """A session from an untrusted address, greeted, under TLS, after EHLO."""
    c, ctx = tls_client(gw)
    c.greet()
    assert c.cmd("STARTTLS").code == 220
    upgrade(c, ctx)
    assert c.cmd("EHLO client.test").code == 250
    return c


def test_starttls_then_auth_then_relay(tls_gw):
    gw = tls_gw
    c, ctx = tls_client(gw)
    r = c.greet()
    assert "STARTTLS" in r.lines and not any(l.startswith("AUTH") for l in r.lines)
    assert c.cmd("AUTH PLAIN AGFsaWNlAHMzY3JldA==").code == 530      # not before TLS
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    assert c.cmd("RCPT TO:<v@foreign.test>").code == 554             # no relay yet
    c.cmd("RSET")
    assert c.cmd("STARTTLS").code == 220
    upgrade(c, ctx)
    r = c.cmd("EHLO client.test")
    assert "AUTH PLAIN LOGIN" in r.lines and "STARTTLS" not in r.lines
    assert c.cmd("AUTH PLAIN AGFsaWNlAHMzY3JldA==").code == 235     # \0alice\0s3cret
    r = c.mail(rcpts=["v@foreign.test"])
    assert r.code == 250
    c.cmd("QUIT")
    c.close()
    env = next((gw.spool / "queue").glob("*.env")).read_text()
    assert "rcpt pending 0 v@foreign.test" in env
    msg = next((gw.spool / "queue").glob("*.msg")).read_bytes()
    assert b"with ESMTPSA id" in msg


def test_auth_login_with_smtplib(tls_gw):
    gw = tls_gw
    # smtplib over a real TCP connection, through an inetd-style session.
    c = gw.session(source=UNTRUSTED)
    s = smtplib.SMTP()
    s.sock = c.sock
    s.file = None
    code, _ = s.getreply()
    assert code == 220
    s.ehlo("client.test")
    s._host = "mx.example.com"      # the name the certificate is checked against
    s.starttls(context=ssl.create_default_context(cafile=str(gw.crt)))
    s.ehlo("client.test")
    s.user, s.password = "alice", "s3cret"
    code, _ = s.auth("LOGIN", s.auth_login)        # with an initial response
    assert code == 235
    s.sendmail("a@remote.test", ["v@foreign.test"], b"Subject: x\r\n\r\ny\r\n")
    s.quit()
    c.close()


def test_wrong_password_is_slow_and_535(tls_gw):
    gw = tls_gw
    c = tls_session(gw)
    start = time.time()
    r = c.cmd("AUTH PLAIN AGFsaWNlAHdyb25n")                          # \0alice\0wrong
    assert r.code == 535 and time.time() - start >= 1.5
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    assert c.cmd("RCPT TO:<v@foreign.test>").code == 554
    c.cmd("QUIT")
    c.close()


def test_failed_auth_takes_as_long_for_unknown_user(tls_gw):
    """A 535 comes as late for a user the file does not list as for a listed user
    whose expensive hash (sha512crypt, 3,000,000 rounds, most of a second) was
    computed: the reply's timing does not tell which users exist."""
    gw = tls_gw
    with open(gw.users, "a") as f:
        f.write("slow:$6$rounds=3000000$saltsalt$" + "x" * 86 + "\n")

    def failed_auth(user):
        c = tls_session(gw)
        start = time.time()
        r = c.cmd("AUTH PLAIN " + base64.b64encode(b"\0" + user + b"\0wrong").decode())
        took = time.time() - start
        c.cmd("QUIT")
        c.close()
        assert r.code == 535, r
        return took
    unknown, listed = failed_auth(b"nosuchuser"), failed_auth(b"slow")
    assert unknown >= 1.5 and listed >= 1.5
    assert abs(listed - unknown) < 0.4, (listed, unknown)


def test_users_file_readable_by_others(tls_gw):
    """Issue 15: password hashes readable by group or others: AUTH refused (454)."""
    gw = tls_gw
    for mode in (0o644, 0o640):
        gw.users.chmod(mode)
        c = tls_session(gw)
        assert c.cmd("AUTH PLAIN AGFsaWNlAHMzY3JldA==").code == 454
        c.cmd("QUIT")
        c.close()
    assert gw.log_text().count("is readable by group or others") == 2
    gw.users.chmod(0o600)
    c = tls_session(gw)
    assert c.cmd("AUTH PLAIN AGFsaWNlAHMzY3JldA==").code == 235
    c.cmd("QUIT")
    c.close()


def test_failed_auth_limit_across_connections(tls_gw):
    """Issue 15 (Postfix's anvil): max_auth_failures failures from one client,
    over several connections, and its next AUTH is refused with 421 for the
    window, even with the right password; another client is not affected."""
    gw = tls_gw
    gw.conf.write_text(gw.conf.read_text() + "max_auth_failures = 3\n")
    for _ in range(3):
        c = tls_session(gw)
        assert c.cmd("AUTH PLAIN AGFsaWNlAHdyb25n").code == 535      # \0alice\0wrong
        c.cmd("QUIT")
        c.close()
    c = tls_session(gw)
    r = c.cmd("AUTH PLAIN AGFsaWNlAHMzY3JldA==")
    assert r.code == 421 and "Too many failed authentications" in r.text, r
    assert c.read_eof() == b""
    c.close()
    assert "AUTH: 3 failures from this client within 3600s" in gw.log_text()
    assert "refused: too many failures from this client" in gw.log_text()
    # The loopback address next door has its own count.
    c, ctx = tls_client(gw, source="127.0.0.3")
    c.greet()
    assert c.cmd("STARTTLS").code == 220
    upgrade(c, ctx)
    c.cmd("EHLO client.test")
    assert c.cmd("AUTH PLAIN AGFsaWNlAHMzY3JldA==").code == 235
    c.cmd("QUIT")
    c.close()


def test_plaintext_after_starttls_discarded(tls_gw):
    """T45: STARTTLS\\r\\nRSET\\r\\n in one segment: the RSET never gets a reply."""
    gw = tls_gw
    c, ctx = tls_client(gw)
    c.greet()
    c.send(b"STARTTLS\r\nRSET\r\n")
    assert c.reply().code == 220
    upgrade(c, ctx)
    r = c.cmd("EHLO client.test")          # the first reply under TLS is EHLO's
    assert r.code == 250 and r.lines[0].startswith("mx.example.com Hello")
    assert c.cmd("NOOP").code == 250
    c.cmd("QUIT")
    c.close()


def test_no_starttls_without_certificate(gw):
    c = gw.session()
    r = c.greet()
    assert "STARTTLS" not in r.lines
    assert c.cmd("STARTTLS").code == 502
    assert c.cmd("AUTH PLAIN x").code == 502
    c.cmd("QUIT")
    c.close()


def test_auth_login_prompts_and_cancel(tls_gw):
    import base64
    gw = tls_gw
    c = tls_session(gw)
    r = c.cmd("AUTH LOGIN")
    assert r.code == 334 and base64.b64decode(r.lines[0]) == b"Username:"
    assert c.cmd("*").code == 501                                     # cancelled
    r = c.cmd("AUTH LOGIN")
    assert c.cmd(base64.b64encode(b"alice").decode()).code == 334
    assert c.cmd(base64.b64encode(b"s3cret").decode()).code == 235
    assert c.cmd("AUTH LOGIN").code == 503                            # only once
    c.cmd("QUIT")
    c.close()


def test_malformed_auth_responses_never_authenticate(tls_gw):
    """Responses that carry the right password in a wrong form are refused
    with 501 (or 535 for another identity) and never authenticate: white space
    around the base64, a NUL that would cut the password or user name short,
    an authorization identity other than the user's."""
    import base64
    gw = tls_gw
    b64 = lambda b: base64.b64encode(b).decode()      # noqa: E731
    c = tls_session(gw)
    # (a command line's trailing white space is trimmed; the leading is not)
    assert c.cmd("AUTH PLAIN     " + b64(b"\0alice\0s3cret")).code == 501
    assert c.cmd("AUTH PLAIN " + b64(b"\0alice\0s3cret\0more")).code == 501
    assert c.cmd("AUTH PLAIN " + b64(b"\0alice")).code == 501
    r = c.cmd("AUTH PLAIN " + b64(b"bob\0alice\0s3cret"))
    assert (r.code, r.lines[0][:5]) == (535, "5.7.8")
    assert c.cmd("AUTH LOGIN " + b64(b"alice\0x")).code == 501       # NUL in the name
    assert c.cmd("AUTH LOGIN " + b64(b"alice")).code == 334
    assert c.cmd(b64(b"s3cret\0x")).code == 501                       # and the password
    # Still not authenticated: no relay.  Then the well-formed answer works,
    # with alice as her own authorization identity.
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    assert c.cmd("RCPT TO:<v@foreign.test>").code == 554
    c.cmd("RSET")
    assert c.cmd("AUTH PLAIN " + b64(b"alice\0alice\0s3cret")).code == 235
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    assert c.cmd("RCPT TO:<v@foreign.test>").code == 250
    c.cmd("QUIT")
    c.close()


@pytest.mark.skipif(subprocess.run(["perl", "-MIO::Socket::SSL", "-MAuthen::SASL", "-e1"],
                                   capture_output=True).returncode != 0,
                    reason="swaks needs IO::Socket::SSL and Authen::SASL")
def test_swaks_starttls_and_auth_against_the_daemon(tls_gw):
    """swaks --tls --auth against the daemon: relaying only after AUTH."""
    from smarthost import free_port
    from test_daemon import Daemon
    gw = tls_gw
    port = free_port()
    gw.conf.write_text(gw.conf.read_text() + f'listen = {{ "127.0.0.1:{port}" }}\n')
    d = Daemon(gw, port)
    try:
        base = ["swaks", "--server", f"127.0.0.1:{port}", "--tls", "--tls-verify",
                "--tls-ca-path", str(gw.crt), "--tls-sni", "mx.example.com",
                "--from", "a@remote.test", "--to", "v@foreign.test"]
        r = subprocess.run(base + ["--local-interface", "127.0.0.2"], capture_output=True,
                           text=True, timeout=60)
        assert "<~* 554 5.7.1" in r.stdout, r.stdout     # under TLS, no AUTH: no relay
        r = subprocess.run(base + ["--local-interface", "127.0.0.2", "--auth", "PLAIN",
                                   "--auth-user", "alice", "--auth-password", "s3cret"],
                           capture_output=True, text=True, timeout=60)
        assert "<~  235 2.7.0" in r.stdout and "<~  250 2.0.0 Ok: queued" in r.stdout, \
            r.stdout + r.stderr
    finally:
        d.stop()


def handshake(gw, ctx, source=UNTRUSTED, session=None):
    """STARTTLS with ctx; the TLS socket (or the ssl.SSLError raised)."""
    c = gw.session(source=source)
    c.greet()
    assert c.cmd("STARTTLS").code == 220
    try:
        c.sock = ctx.wrap_socket(c.sock, server_hostname="mx.example.com", session=session)
    except (ssl.SSLError, ConnectionResetError) as e:
        c.close()
        return c, e
    c.buf = b""
    return c, None


def client_ctx(gw, tls_max=None, tls_min=None, ciphers=None):
    ctx = ssl.create_default_context(cafile=str(gw.crt))
    if tls_min is not None:
        ctx.minimum_version = tls_min
    if tls_max is not None:
        ctx.maximum_version = tls_max
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    return ctx


def test_tls_offers_only_strong_suites_in_server_order(tls_gw):
    """T118 (what testssl.sh checks): TLS 1.2 and 1.3 only; no static-RSA key
    exchange, no CBC; the server's order decides the suite."""
    gw = tls_gw
    v = ssl.TLSVersion
    # TLS 1.1, even from a client willing to speak it: refused.
    ctx = client_ctx(gw, tls_max=v.TLSv1_1, tls_min=v.TLSv1, ciphers="DEFAULT:@SECLEVEL=0")
    c, err = handshake(gw, ctx)
    assert err is not None
    # Static RSA and CBC suites (TLS 1.2): refused.
    for weak in ("AES128-GCM-SHA256", "AES256-SHA", "ECDHE-RSA-AES128-SHA",
                 "ECDHE-RSA-AES256-SHA384"):
        c, err = handshake(gw, client_ctx(gw, tls_max=v.TLSv1_2, ciphers=weak))
        assert err is not None, weak
    # The client prefers ChaCha20; the server's first choice wins.
    c, err = handshake(gw, client_ctx(
        gw, tls_max=v.TLSv1_2,
        ciphers="ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384:"
                "ECDHE-RSA-AES128-GCM-SHA256"))
    assert err is None
    assert c.sock.cipher()[0] == "ECDHE-RSA-AES128-GCM-SHA256", c.sock.cipher()
    c.close()
    c, err = handshake(gw, client_ctx(gw))
    assert err is None and c.sock.version() == "TLSv1.3"
    c.close()


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_tls_resumption_across_sessions(tls_gw, version):
    """T118: a session ticket from one session resumes the next, though each
    is its own process (the ticket keys are the spool user's file)."""
    gw = tls_gw
    v = getattr(ssl.TLSVersion, version)
    ctx = client_ctx(gw, tls_max=v, tls_min=v)
    c, err = handshake(gw, ctx)
    assert err is None
    assert c.cmd("EHLO client.test").code == 250   # TLS 1.3 tickets come after the handshake
    session = c.sock.session
    c.cmd("QUIT")
    c.close()
    assert session is not None and session.has_ticket
    c, err = handshake(gw, ctx, session=session)
    assert err is None
    assert c.sock.session_reused, "a new full handshake: the ticket was not taken"
    c.cmd("QUIT")
    c.close()
    key = gw.spool / "tmp" / "tls-ticket.key"
    assert key.stat().st_uid == MAIL.pw_uid and oct(key.stat().st_mode & 0o777) == "0o600"


def test_tls_ciphers_and_protocols_keys(tls_gw):
    """tls.protocols and tls.ciphers, for admins who need other settings; a
    cipher list that matches nothing is a --check-config error."""
    gw = tls_gw
    base = gw.conf.read_text()
    gw.conf.write_text(base.replace('auth_users_file', 'protocols = "TLSv1.3" '
                                                       'auth_users_file'))
    c, err = handshake(gw, client_ctx(gw, tls_max=ssl.TLSVersion.TLSv1_2))
    assert err is not None
    c, err = handshake(gw, client_ctx(gw))
    assert err is None and c.sock.version() == "TLSv1.3"
    c.close()
    gw.conf.write_text(base.replace('auth_users_file', 'ciphers = '
                                    '"ECDHE-RSA-AES256-GCM-SHA384" auth_users_file'))
    c, err = handshake(gw, client_ctx(gw, tls_max=ssl.TLSVersion.TLSv1_2))
    assert err is None and c.sock.cipher()[0] == "ECDHE-RSA-AES256-GCM-SHA384"
    c.close()
    gw.conf.write_text(base.replace('auth_users_file', 'ciphers = "NOSUCHCIPHER" '
                                    'auth_users_file'))
    r = gw.run("--check-config")
    assert r.returncode != 0 and "tls: tls.ciphers: no usable cipher suite" in r.stderr
    gw.conf.write_text(base.replace('auth_users_file', 'protocols = "SSLv3" '
                                    'auth_users_file'))
    r = gw.run("--check-config")
    assert r.returncode != 0 and "protocols: bad value 'SSLv3'" in r.stderr
