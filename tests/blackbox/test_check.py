"""Guard rails at start and --check-config's look at the machine (issue 19 part 4):
a spool on tmpfs or split across filesystems, accounts, pipe programs, smarthost
names, certificates and password files, each reported as file:line."""
import datetime
import os
import subprocess

import pytest

from smarthost import free_port

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="SKIP: needs root")


def conf_line(gw, needle):
    """The line of the configuration file that holds needle (1-based)."""
    for n, line in enumerate(gw.conf.read_text().splitlines(), 1):
        if needle in line:
            return n
    raise AssertionError(f"{needle} not in the configuration")


def mount_tmpfs(path):
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(path)],
                   check=True)


def umount(path):
    subprocess.run(["umount", "-l", str(path)], check=False)


@needs_root
def test_spool_on_tmpfs(gw):
    """A spool on tmpfs loses every acknowledged message at the next reboot:
    --check-config warns (exit 0), durable_spool = required makes it an error;
    the daemon warns and starts, or refuses to start (78) with the reason in the
    log; an inetd session under `required` answers 421 and spools nothing."""
    mount_tmpfs(gw.spool)
    try:
        r = gw.run("--check-config")
        assert r.returncode == 0, r.stderr
        assert "warning: spool " in r.stderr and "is on tmpfs" in r.stderr

        gw.write_conf(f'listen = {{ "127.0.0.1:{free_port()}" }}\n'
                      'durable_spool = required\n')
        line = conf_line(gw, "spool_dir")
        r = gw.run("--check-config")
        assert r.returncode == 1
        assert f"{gw.conf}:{line}: spool {gw.spool} is on tmpfs" in r.stderr
        assert "(durable_spool = required)" in r.stderr

        d = gw.run("-d", timeout=20)
        assert d.returncode == 78, d.stderr
        assert "refusing to start: spool" in gw.log_text()

        c = gw.session()
        assert c.reply().code == 421
        c.close()
        assert not (gw.spool / "queue").exists() or not list((gw.spool / "queue").iterdir())

        gw.write_conf(f'listen = {{ "127.0.0.1:{free_port()}" }}\n')   # warn
        p = subprocess.Popen(gw.argv("-d"), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        try:
            assert gw.wait_log("would refuse to start"), gw.log_text()
            assert gw.wait_log("daemon started"), gw.log_text()   # all the same
            assert p.poll() is None
        finally:
            p.terminate()
            p.wait(timeout=20)
    finally:
        umount(gw.spool)


@needs_root
def test_spool_tmp_on_another_filesystem(gw):
    """SPEC 8's commit links tmp/ files into queue/: with tmp/ on a filesystem of
    its own nothing could ever be committed, so this is an error whatever
    durable_spool says, and the daemon does not start."""
    r = gw.run("--check-config")                # makes nothing; the spool is made
    assert r.returncode == 0, r.stderr
    (gw.spool / "queue").mkdir(parents=True)
    mount_tmpfs(gw.spool / "tmp")
    try:
        r = gw.run("--check-config")
        assert r.returncode == 1
        assert "are on different filesystems: no message can be committed" in r.stderr
        gw.write_conf(f'listen = {{ "127.0.0.1:{free_port()}" }}\n')
        assert gw.run("-d", timeout=20).returncode == 78
    finally:
        umount(gw.spool / "tmp")


def test_missing_program_and_user(gw):
    """A pipe alias whose program does not exist, and accounts that do not exist,
    are errors at the aliases' and the configuration's file:line."""
    gw.write_aliases("ok: \"|@REC@\"\n"
                     "gone: \"|/nonexistent/rt-mailgate --queue x\"\n"
                     "bare: \"|no-such-program-here\"\n")
    gw.write_conf('pipe {\n  user = "no-such-user-x"\n}\n'
                  'alias "ok" {\n  user = "no-such-user-y"\n}\n')
    r = gw.run("--check-config")
    assert r.returncode == 1
    a = gw.aliases
    assert f"{a}:2: gone: program /nonexistent/rt-mailgate not found\n" in r.stderr
    assert f"{a}:3: bare: program no-such-program-here not found in " \
           "/usr/local/bin:/usr/bin:/bin" in r.stderr
    assert (f'{gw.conf}:{conf_line(gw, "no-such-user-x")}: pipe.user "no-such-user-x" '
            "does not exist") in r.stderr
    assert (f'{gw.conf}:{conf_line(gw, "no-such-user-y")}: alias user "no-such-user-y" '
            "does not exist") in r.stderr
    assert f"{a}:1:" not in r.stderr            # the recorder is there and runs


@needs_root
def test_program_not_executable_by_its_user(gw):
    """As root, whether the pipe user (nobody) may run the program is asked of the
    kernel as nobody: a root-only program is an error, found before mail is."""
    prog = gw.base / "private-gate"
    prog.write_text("#!/bin/sh\nexit 0\n")
    prog.chmod(0o700)
    gw.write_aliases(f'support: "|{prog} --queue support"\n')
    r = gw.run("--check-config")
    assert r.returncode == 1
    assert (f"{gw.aliases}:1: support: {prog} is not executable by nobody: "
            "Permission denied") in r.stderr
    prog.chmod(0o755)
    r = gw.run("--check-config")
    assert r.returncode == 0, r.stderr


def test_smarthost_name_that_does_not_resolve(gw):
    """A warning, not an error (the resolver may be down for a moment), at the
    smarthost's host line."""
    gw.write_conf('smarthost "isp" {\n  host = "smtp.no-such-name.invalid"\n'
                  '  port = 587\n}\n')
    r = gw.run("--check-config")
    assert r.returncode == 0, r.stderr
    assert (f'{gw.conf}:{conf_line(gw, "no-such-name")}: warning: smarthost "isp": host '
            "smtp.no-such-name.invalid does not resolve") in r.stderr


def write_cert(path, key_path, days_from, days_to):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mx.example.com")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now + datetime.timedelta(days=days_from))
            .not_valid_after(now + datetime.timedelta(days=days_to))
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))


def test_certificates_and_password_files(gw):
    """An expired server certificate is an error, one about to expire a warning;
    a smarthost's CA file or password file that cannot be read is an error."""
    crt, key = gw.base / "mx.crt", gw.base / "mx.key"
    write_cert(crt, key, -30, -2.5)
    gw.write_conf(f'tls {{\n  cert_file = "{crt}"\n  key_file = "{key}"\n}}\n'
                  f'smarthost "isp" {{\n  host = "127.0.0.1"\n'
                  f'  ca_file = "{gw.base}/no-ca.pem"\n'
                  f'  auth_user = "u"\n  auth_password_file = "{gw.base}/no-pw"\n}}\n')
    r = gw.run("--check-config")
    assert r.returncode == 1
    line = conf_line(gw, "cert_file")
    assert f"{gw.conf}:{line}: tls.cert_file {crt} (/CN=mx.example.com) expired 2 " \
           "days ago" in r.stderr
    assert (f'{gw.conf}:{conf_line(gw, "no-ca.pem")}: ca_file {gw.base}/no-ca.pem is '
            "not readable by") in r.stderr
    assert (f'{gw.conf}:{conf_line(gw, "no-pw")}: auth_password_file {gw.base}/no-pw '
            "is not readable by") in r.stderr

    write_cert(crt, key, -30, 5.5)
    (gw.base / "no-ca.pem").write_text("x")
    (gw.base / "no-pw").write_text("x")
    os.chmod(gw.base / "no-ca.pem", 0o644)
    os.chmod(gw.base / "no-pw", 0o644)
    r = gw.run("--check-config")
    assert r.returncode == 0, r.stderr
    assert f"{gw.conf}:{line}: warning: tls.cert_file {crt} (/CN=mx.example.com) " \
           "expires in 5 days" in r.stderr


@needs_root      # sendmail -C: root and the default configuration's user alone
def test_newaliases_checks_only_the_aliases(gw):
    """newaliases (sendmail -bi) is run by package scripts: it checks the aliases'
    syntax, and neither resolves names nor probes programs."""
    from conftest import WRAP, UNDERSMTPD
    gw.write_aliases('gone: "|/nonexistent/prog"\n')
    gw.write_conf('smarthost "isp" {\n  host = "smtp.no-such-name.invalid"\n}\n')
    r = subprocess.run([*WRAP, UNDERSMTPD, "--sendmail", "-C", str(gw.conf), "-bi"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
