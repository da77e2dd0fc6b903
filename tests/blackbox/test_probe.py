"""undersmtpd --probe-smarthost (issue 19 part 3): the smarthost tried as a
queue run would, each step told.  Against Debian's Postfix with STARTTLS and
Cyrus SASL (sasldb), against a certificate for another name and an expired
one, a port where nothing listens, a server that never greets, and a wrong
password; --send-test sends one message, without it nothing is sent."""
import datetime
import os
import pwd
import socket
import subprocess
import threading

import pytest

from conftest import needs_root, tool
from postfix_instance import Postfix, available
from smarthost import Sink, free_port

MAIL = pwd.getpwnam("mail")


def write_ca_and_cert(base, name, days_from=-1, days_to=365):
    """A test CA, and a certificate for name signed by it; (ca, crt, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "undersmtpd test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=30))
          .not_valid_after(now + datetime.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    crt = (x509.CertificateBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
           .issuer_name(ca_name).public_key(key.public_key())
           .serial_number(x509.random_serial_number())
           .not_valid_before(now + datetime.timedelta(days=days_from))
           .not_valid_after(now + datetime.timedelta(days=days_to))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
           .sign(ca_key, hashes.SHA256()))
    paths = (base / f"ca-{name}.pem", base / f"{name}.crt", base / f"{name}.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(crt.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    for p in paths:
        os.chmod(p, 0o644)
    os.chmod(paths[2], 0o640)
    return paths


def password_file(gw, secret):
    p = gw.base / "smarthost.pw"
    p.write_text(secret + "\n")
    os.chown(p, MAIL.pw_uid, MAIL.pw_gid)      # the spool user: queue runs read it
    os.chmod(p, 0o600)
    return p


def probe(gw, *args):
    r = subprocess.run(gw.argv("--probe-smarthost", *args), capture_output=True,
                       text=True, timeout=90)
    return r.returncode, r.stdout, r.stderr


def steps(out, label):
    return [line.split(None, 1)[1] if len(line.split(None, 1)) > 1 else ""
            for line in out.splitlines() if line.startswith(f"  {label} ")]


@pytest.fixture
def postfix_tls_sasl(gw, request):
    """Postfix on 127.0.0.1 with STARTTLS (a certificate for the name asked,
    signed by a test CA) and AUTH PLAIN/LOGIN for probe:s3cret (sasldb)."""
    if os.geteuid() != 0:
        pytest.skip("SKIP: needs root")
    if not available() or tool("saslpasswd2") is None:
        pytest.skip("postfix or sasl2-bin's saslpasswd2 is missing (tools/install-deps.sh)")
    name = getattr(request, "param", "localhost")
    base = gw.base / "postfix"
    base.mkdir(parents=True)
    ca, crt, key = write_ca_and_cert(gw.base, name)
    os.chown(key, 0, pwd.getpwnam("postfix").pw_gid)
    db = base / "sasldb2"
    subprocess.run([tool("saslpasswd2"), "-p", "-c", "-f", str(db), "-u",
                    "postfix-sink.test", "probe"], input=b"s3cret", check=True)
    os.chown(db, 0, pwd.getpwnam("postfix").pw_gid)
    os.chmod(db, 0o640)
    pf = Postfix(base, extra_main=f"""\
smtpd_tls_cert_file = {crt}
smtpd_tls_key_file = {key}
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
smtpd_sasl_local_domain = postfix-sink.test
cyrus_sasl_config_path = {base}/conf/sasl
""")
    # Debian's Postfix reads $config_directory/sasl/smtpd.conf.
    (base / "conf" / "sasl").mkdir()
    (base / "conf" / "sasl" / "smtpd.conf").write_text(
        f"pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN\n"
        f"sasldb_path: {db}\n")
    pf.start()
    yield pf, ca
    pf.stop()


def smarthost_conf(gw, port, ca, secret="s3cret", host="localhost", extra=""):
    gw.write_conf(f'smarthost "provider" {{\n  host = "{host}"\n  port = {port}\n'
                  f'  tls = starttls\n  ca_file = "{ca}"\n  auth_user = "probe"\n'
                  f'  auth_password_file = "{password_file(gw, secret)}"\n'
                  f'  timeout = 5s\n{extra}}}\n')


@needs_root
def test_postfix_starttls_and_sasl(gw, postfix_tls_sasl):
    """Every step against the real Postfix: the connection, its banner and
    capabilities, STARTTLS, TLS 1.3 with the certificate verified for the name,
    AUTH PLAIN accepted (235), RSET, QUIT; exit 0, and nothing was sent."""
    pf, ca = postfix_tls_sasl
    smarthost_conf(gw, pf.port, ca)
    code, out, err = probe(gw)
    assert code == 0, out + err
    assert out.startswith(f'smarthost "provider": localhost port {pf.port}, tls starttls')
    assert any(s.endswith(f"port {pf.port}: connected") for s in steps(out, "connect"))
    assert steps(out, "banner")[0].startswith("220 postfix-sink.test ESMTP")
    assert "STARTTLS" in steps(out, "capability")
    assert steps(out, "starttls")[0].startswith("220 2.0.0")
    (tls,) = steps(out, "tls")
    assert tls.startswith("TLSv1.3, ") and "certificate /CN=localhost" in tls
    assert "issued by /CN=undersmtpd test CA" in tls and tls.endswith("verification: ok")
    assert "AUTH PLAIN LOGIN" in steps(out, "capability")      # after TLS only
    assert steps(out, "auth")[0].startswith("PLAIN as probe: 235 2.7.0")
    assert steps(out, "RSET")[0].startswith("250 2.0.0")
    assert steps(out, "result") == ["would accept mail (nothing was sent)"]
    assert pf.messages() == []


@needs_root
def test_postfix_wrong_password(gw, postfix_tls_sasl):
    """AUTH refused: the server's 535 is shown, the verdict is 75."""
    pf, ca = postfix_tls_sasl
    smarthost_conf(gw, pf.port, ca, secret="wrong")
    code, out, err = probe(gw)
    assert code == 75, out + err
    assert steps(out, "auth")[0].startswith("PLAIN as probe: 535 5.7.8")
    assert "authentication failed: 535 5.7.8" in steps(out, "FAILED")[0]


@needs_root
def test_postfix_send_test(gw, postfix_tls_sasl):
    """--send-test: one short message, sent as a queue run sends, arrives."""
    pf, ca = postfix_tls_sasl
    smarthost_conf(gw, pf.port, ca)
    code, out, err = probe(gw, "provider", "--send-test", "someone@remote.example")
    assert code == 0, out + err
    assert steps(out, "send-test")[0].startswith(
        "from <postmaster@mx.example.com> to <someone@remote.example>: 250 2.0.0")
    (msg,) = pf.wait_messages(1)
    assert b"Subject: undersmtpd test message from mx.example.com through smarthost " \
           b"provider" in msg


@needs_root
@pytest.mark.parametrize("postfix_tls_sasl", ["wrong.example"], indirect=True)
def test_certificate_for_another_name(gw, postfix_tls_sasl):
    """A certificate for wrong.example where localhost was asked for: the
    handshake fails on the name, the certificate is shown, nothing is sent."""
    pf, ca = postfix_tls_sasl
    smarthost_conf(gw, pf.port, ca)
    code, out, err = probe(gw)
    assert code == 75, out + err
    (tls,) = steps(out, "tls")
    assert tls.startswith("handshake failed: TLS certificate verification failed: "
                          "hostname mismatch")
    assert "certificate /CN=wrong.example" in tls
    assert "4.7.5" in steps(out, "FAILED")[0]
    assert steps(out, "auth") == []


def test_expired_certificate(gw):
    """A smarthost whose certificate has expired (an aiosmtpd server)."""
    ca, crt, key = write_ca_and_cert(gw.base, "localhost", days_from=-30, days_to=-1)
    os.chmod(key, 0o644)
    sink = Sink(tls_cert=str(crt), tls_key=str(key)).start()
    try:
        gw.write_conf(f'smarthost "expired" {{\n  host = "localhost"\n  port = {sink.port}\n'
                      f'  tls = starttls\n  ca_file = "{ca}"\n  timeout = 5s\n}}\n')
        code, out, err = probe(gw)
    finally:
        sink.stop()
    assert code == 75, out + err
    (tls,) = steps(out, "tls")
    assert "verification failed: certificate has expired" in tls
    assert steps(out, "FAILED")


def test_refused_and_silent(gw):
    """Nothing listening: each address is told with its error.  A server that
    accepts and never greets: the stage's timeout, said so.  Both 75; a queue
    run would try the next smarthost, and the probe says so too."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    closed = free_port()
    gw.write_conf(f'smarthost "down" {{ host = "127.0.0.1" port = {closed} tls = none }}\n'
                  f'smarthost "mute" {{ host = "127.0.0.1" port = {silent.getsockname()[1]} '
                  f'tls = none timeout = 2s }}\n')
    try:
        code, out, err = probe(gw)
    finally:
        silent.close()
    assert code == 75, out + err
    assert f"127.0.0.1 port {closed}: Connection refused" in steps(out, "connect")
    assert "(a queue run would try the next smarthost)" in out
    fails = steps(out, "FAILED")
    assert len(fails) == 2 and "connect: Connection refused" in fails[0]
    assert "timed out waiting for a reply" in fails[1]
    code, out, err = probe(gw, "nosuch")
    assert code == 64 and 'no smarthost "nosuch"' in err
