"""End to end against a real Postfix as the smarthost (Debian's postfix, a
private instance on a loopback port): what undersmtpd accepts arrives in
Postfix's mailbox exactly once, envelope and bytes intact."""
import pytest

from conftest import needs_root
from postfix_instance import Postfix, available
from test_spool import queue_ids, relay_conf


@needs_root     # a private Postfix instance: its files owned by postfix, its own postdrop
@pytest.mark.skipif(not available(), reason="postfix is not installed")
def test_relay_through_real_postfix(gw):
    pf = Postfix(gw.base / "postfix").start()
    try:
        relay_conf(gw, pf.port, run_after_accept=True)
        body = b"Subject: through postfix\r\nX-Check: 1\r\n\r\n..leading dot\r\nend\r\n"
        for i in range(5):
            c = gw.session()
            c.greet()
            r = c.mail(sender=f"s{i}@sender.test", rcpts=[f"bob{i}@remote.example"], body=body)
            assert r.code == 250
            c.cmd("QUIT")
            c.close()
        msgs = pf.wait_messages(5)
        assert len(msgs) == 5, pf.log.read_text()
        for i in range(5):
            (m,) = [m for m in msgs if f"Delivered-To: bob{i}@remote.example".encode() in m]
            assert f"Return-Path: <s{i}@sender.test>".encode() in m
            # Postfix may add Message-ID:/Date:/From:; the rest is ours, intact.
            assert b"Subject: through postfix\nX-Check: 1\n" in m
            assert m.rstrip(b"\n").endswith(b"\n\n.leading dot\nend")
            assert b"Received: from client.test ([127.0.0.1])" in m
        assert gw.run("-q").returncode == 0
        assert queue_ids(gw) == []
        assert "status=sent" in pf.log.read_text()
    finally:
        pf.stop()
