"""The smarthost client's TLS and AUTH (SPEC 9; TESTCATALOGUE T45, T97): against
an aiosmtpd smarthost with STARTTLS and AUTH, certificates made by openssl."""
import os
import subprocess
import time

import pytest

from conftest import needs_root
from smarthost import Sink, free_port
from test_spool import queue_ids, send

# Run as root: password files owned by the spool user.
pytestmark = needs_root


def make_cert(dirpath, name):
    key, crt = dirpath / f"{name}.key", dirpath / f"{name}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", str(key), "-out", str(crt), "-days", "2",
                    "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"],
                   check=True, capture_output=True)
    return crt, key


class ScriptedSmarthost:
    """A smarthost on 127.0.0.1:port that serves one connection by script: the
    EHLO answer given, AUTH (if offered) by auth(f, line, say), everything else
    250; wrap turns the accepted socket into a TLS one.  seen: the lines it got."""

    def __init__(self, port, ehlo, auth=None, wrap=None, starttls=None):
        import socket
        import threading
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", port))
        self.srv.listen(1)
        self.srv.settimeout(20)
        self.ehlo, self.auth, self.wrap = ehlo, auth, wrap
        self.starttls = starttls       # (ssl context, bytes sent after the 220)
        self.seen = []
        self.thread = threading.Thread(target=self.serve)
        self.thread.start()

    def serve(self):
        raw, _ = self.srv.accept()
        raw.settimeout(20)
        conn = self.wrap(raw) if self.wrap else raw
        f = conn.makefile("rwb")

        def say(line):
            f.write(line + b"\r\n")
            f.flush()
        say(b"220 scripted.test ESMTP")
        while True:
            line = f.readline()
            if not line:
                break
            self.seen.append(line)
            verb = line[:4].upper()
            if verb == b"EHLO":
                say(self.ehlo)
            elif line.upper() == b"STARTTLS\r\n" and self.starttls:
                ctx, after = self.starttls
                conn.sendall(b"220 2.0.0 go ahead\r\n" + after)   # one segment
                if ctx is None:          # no TLS at all: the handshake fails
                    time.sleep(0.5)
                    break
                conn = ctx.wrap_socket(conn, server_side=True)
                f = conn.makefile("rwb")
                self.seen.append(b"-- TLS --\r\n")
            elif verb == b"AUTH" and self.auth:
                self.auth(f, line, say)
            elif verb == b"DATA":
                say(b"354 go")
                while f.readline() != b".\r\n":
                    pass
                say(b"250 2.0.0 stored")
            elif verb == b"QUIT":
                say(b"221 bye")
                break
            else:
                say(b"250 ok")
        conn.close()

    def stop(self):
        self.thread.join(timeout=30)
        self.srv.close()


@pytest.fixture
def certs(gw):
    return make_cert(gw.base, "localhost")


def make_expired_cert(dirpath, name):
    """A self-signed certificate for name that expired yesterday (openssl 3.0's
    command line cannot date one in the past; python3-cryptography can)."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=10))
            .not_valid_after(now - datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    crt, keyfile = dirpath / f"{name}-expired.crt", dirpath / f"{name}-expired.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return crt, keyfile


def conf(gw, port, tls="starttls", extra="", host="localhost"):
    gw.write_conf(f'smarthost "isp" {{ host = "{host}" port = {port} tls = {tls} '
                  f'timeout = 10s {extra} }}\n'
                  'queue { run_after_accept = false }\n')


def secret(gw, text="s3cret", mode=0o600):
    """The password file, owned by the spool user that forwards the mail."""
    from conftest import MAIL
    path = gw.base / "smarthost.secret"
    path.write_text(text + "\n")
    path.chmod(mode)
    os.chown(path, MAIL.pw_uid, MAIL.pw_gid)
    return path


def test_starttls_verified_and_auth_plain(gw, certs):
    crt, key = certs
    sink = Sink(tls_cert=crt, tls_key=key, require_starttls=True,
                users={"me": "s3cret"}).start()
    try:
        conf(gw, sink.port, extra=f'ca_file = "{crt}" auth_user = "me" '
                                  f'auth_password_file = "{secret(gw)}" '
                                  f'rewrite_sender = "me@isp.example"')
        assert send(gw, ["bob@remote.example"]).code == 250
        f = gw.run("-q")
        assert f.returncode == 0, gw.log_text()
        (m,) = sink.wait_messages(1)
        assert m.sender == "me@isp.example"     # rewrite_sender for the provider
        assert queue_ids(gw) == []
    finally:
        sink.stop()


def test_wrong_password_defers_never_bounces(gw, certs):
    crt, key = certs
    sink = Sink(tls_cert=crt, tls_key=key, require_starttls=True,
                users={"me": "right"}).start()
    try:
        conf(gw, sink.port, extra=f'ca_file = "{crt}" auth_user = "me" '
                                  f'auth_password_file = "{secret(gw, "wrong")}"')
        assert send(gw, ["bob@remote.example"]).code == 250
        assert gw.run("-q").returncode == 75
        assert "authentication failed" in gw.run("--queue").stdout
        assert sink.messages == [] and len(queue_ids(gw)) == 1
    finally:
        sink.stop()


def test_password_file_readable_by_others_refused(gw, certs):
    crt, key = certs
    sink = Sink(tls_cert=crt, tls_key=key, users={"me": "s3cret"}).start()
    try:
        conf(gw, sink.port, extra=f'ca_file = "{crt}" auth_user = "me" '
                                  f'auth_password_file = "{secret(gw, mode=0o644)}"')
        assert send(gw, ["bob@remote.example"]).code == 250
        assert gw.run("-q").returncode == 75
        assert "readable by others" in gw.log_text()
        assert sink.messages == []
    finally:
        sink.stop()


def test_no_auth_without_tls(gw):
    sink = Sink(users={"me": "s3cret"}).start()
    try:
        conf(gw, sink.port, tls="none", extra=f'auth_user = "me" '
                                              f'auth_password_file = "{secret(gw)}"')
        assert send(gw, ["bob@remote.example"]).code == 250
        assert gw.run("-q").returncode == 75
        assert "refusing AUTH without TLS" in gw.run("--queue").stdout
        conf(gw, sink.port, tls="none", extra=f'auth_user = "me" auth_plaintext = true '
                                              f'auth_password_file = "{secret(gw)}"')
        assert gw.run("-q").returncode == 0
        assert len(sink.wait_messages(1)) == 1
    finally:
        sink.stop()


def test_tls_required_but_not_offered(gw):
    """T97: STARTTLS required, the server does not offer it -> deferred, never plaintext."""
    sink = Sink().start()
    try:
        conf(gw, sink.port, tls="starttls")
        assert send(gw, ["bob@remote.example"]).code == 250
        assert gw.run("-q").returncode == 75
        assert "STARTTLS is not offered" in gw.run("--queue").stdout
        assert sink.messages == []
    finally:
        sink.stop()


@pytest.mark.parametrize("case", ["untrusted", "wrong-name", "expired"])
def test_certificate_failures_defer(gw, certs, case):
    """T97: self-signed without its CA, a certificate for another name, or one
    that has expired (its own CA given) -> deferred, nothing sent."""
    crt, key = {"untrusted": lambda: certs,
                "wrong-name": lambda: make_cert(gw.base, "other.example"),
                "expired": lambda: make_expired_cert(gw.base, "localhost")}[case]()
    sink = Sink(tls_cert=crt, tls_key=key, require_starttls=True).start()
    try:
        ca = "/etc/ssl/certs/ca-certificates.crt" if case == "untrusted" else crt
        conf(gw, sink.port, extra=f'ca_file = "{ca}"')
        assert send(gw, ["bob@remote.example"]).code == 250
        assert gw.run("-q").returncode == 75
        listing = gw.run("--queue").stdout
        assert "verif" in listing
        if case == "expired":
            assert "expired" in listing, listing
        assert sink.messages == []
        # tls = may (opportunistic) does not verify: it goes through encrypted.
        conf(gw, sink.port, tls="may", extra=f'ca_file = "{ca}"')
        assert gw.run("-q").returncode == 0
        assert len(sink.wait_messages(1)) == 1
    finally:
        sink.stop()


def test_implicit_tls(gw, certs):
    """tls = tls: TLS from the first byte (port 465 style)."""
    import ssl
    crt, key = certs
    port = free_port()
    conf(gw, port, tls="tls", extra=f'ca_file = "{crt}"')
    assert send(gw, ["bob@remote.example"]).code == 250
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(crt, key)
    sh = ScriptedSmarthost(port, b"250-tls.test\r\n250 PIPELINING",
                           wrap=lambda raw: ctx.wrap_socket(raw, server_side=True))
    try:
        assert gw.run("-q").returncode == 0, gw.log_text()
    finally:
        sh.stop()
    seen = sh.seen
    assert any(l.startswith(b"RCPT TO:<bob@remote.example>") for l in seen)


def test_auth_mechanisms_are_whole_words(gw):
    """EHLO's AUTH list is read word by word, in any case: "XPLAIN" is not PLAIN,
    and a lower-case "login" is LOGIN; the client uses AUTH LOGIN and the mail goes."""
    port = free_port()
    conf(gw, port, tls="none", extra=f'auth_user = "me" auth_plaintext = true '
                                     f'auth_password_file = "{secret(gw)}"')
    assert send(gw, ["bob@remote.example"]).code == 250

    def auth(f, line, say):
        if line.strip() != b"AUTH LOGIN":
            say(b"504 5.5.4 not that one")
            return
        say(b"334 VXNlcm5hbWU6")
        sh.seen.append(f.readline())
        say(b"334 UGFzc3dvcmQ6")
        sh.seen.append(f.readline())
        say(b"235 2.7.0 ok")
    sh = ScriptedSmarthost(port, b"250-auth.test\r\n250-AUTH XPLAIN login CRAM-MD5\r\n"
                                 b"250 PIPELINING", auth=auth)
    try:
        assert gw.run("-q").returncode == 0, gw.log_text()
    finally:
        sh.stop()
    seen = sh.seen
    assert b"AUTH LOGIN\r\n" in seen and not any(l.startswith(b"AUTH PLAIN") for l in seen)
    assert b"bWU=\r\n" in seen and b"czNjcmV0\r\n" in seen           # "me", "s3cret"
    assert any(l.startswith(b"RCPT TO:<bob@remote.example>") for l in seen)
    assert queue_ids(gw) == []


def test_smarthost_plaintext_after_starttls_220_discarded(gw, certs):
    """T45, the client side (CVE-2011-0411, CVE-2021-38371): a smarthost (or
    a man in the middle) sends replies in clear text behind its 220 to
    STARTTLS, in the same segment.  They are dropped with the clear-text
    buffer: after the handshake each command gets its own reply, made inside
    TLS, and the mail is delivered once, in step."""
    import ssl
    crt, key = certs
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(crt, key)
    port = free_port()
    conf(gw, port, extra=f'ca_file = "{crt}"')
    assert send(gw, ["bob@remote.example"]).code == 250
    injected = (b"250-injected.test\r\n250 PIPELINING\r\n"      # for the EHLO
                b"250 2.1.0 injected\r\n"                       # for MAIL
                b"550 5.1.1 injected: no such user\r\n")        # for RCPT
    sh = ScriptedSmarthost(port, b"250-scripted.test\r\n250-STARTTLS\r\n250 PIPELINING",
                           starttls=(ctx, injected))
    try:
        r = gw.run("-q")
    finally:
        sh.stop()
    assert r.returncode == 0, gw.log_text()
    after = [l.split(b" ")[0].split(b":")[0].strip() for l in
             sh.seen[sh.seen.index(b"-- TLS --\r\n") + 1:]]
    assert after == [b"EHLO", b"MAIL", b"RCPT", b"DATA", b"QUIT"], sh.seen
    assert queue_ids(gw) == []
    assert "injected" not in gw.log_text()


def test_failed_handshake_defers_never_plaintext(gw):
    """T97: the smarthost answers 220 to STARTTLS, then no TLS (clear text, then
    it closes): deferred with the handshake's failure; nothing of the mail was
    sent, in clear or otherwise."""
    port = free_port()
    conf(gw, port)
    assert send(gw, ["bob@remote.example"]).code == 250
    sh = ScriptedSmarthost(port, b"250-scripted.test\r\n250-STARTTLS\r\n250 PIPELINING",
                           starttls=(None, b"this is not TLS\r\n" * 50))
    try:
        assert gw.run("-q").returncode == 75
    finally:
        sh.stop()
    assert [l for l in sh.seen if not l.startswith((b"EHLO", b"STARTTLS"))] == [], sh.seen
    assert "4.7.5" in gw.run("--queue").stdout
    assert len(queue_ids(gw)) == 1
