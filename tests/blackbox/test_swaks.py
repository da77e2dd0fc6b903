"""swaks (Debian package swaks) as a real SMTP client: --pipe runs an
inetd-style session with no network at all."""
import subprocess

import pytest
from conftest import tool


@pytest.mark.skipif(tool("swaks") is None, reason="swaks not installed")
def test_swaks_pipe_end_to_end(gw):
    gw.write_aliases('support: "|@REC@"\n')
    cmd = " ".join(gw.argv())
    r = subprocess.run(["swaks", "--pipe", cmd, "--from", "alice@remote.test",
                        "--to", "support@example.com", "--helo", "swaks.test",
                        "--header", "Subject: via swaks", "--body", "hello from swaks"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "<-  250 2.0.0 Ok: delivered to command" in r.stdout
    rec = gw.one_record()
    assert rec.env["SENDER"] == "alice@remote.test"
    assert rec.env["CLIENT_HELO"] == "swaks.test"
    assert b"Subject: via swaks\n" in rec.stdin and b"hello from swaks" in rec.stdin
    assert b"\r" not in rec.stdin


@pytest.mark.skipif(tool("swaks") is None, reason="swaks not installed")
def test_swaks_sees_tempfail(gw):
    gw.write_aliases('support: "|@REC@ --exit 75"\n')
    r = subprocess.run(["swaks", "--pipe", " ".join(gw.argv()), "--from", "a@remote.test",
                        "--to", "support@example.com"], capture_output=True, text=True,
                       timeout=60)
    assert "<** 451 4.3.0" in r.stdout
