"""Proxy mode (issue 20 part 4; E-MailRelay's --as-proxy): with the smarthost in
mode = proxy, a relayed recipient is given to it during the client's session
and its replies - to RCPT, then to the message - are the client's; nothing is
spooled.  Against Postfix's smtp-sink answering 250, 451 and 550; a transaction
never mixes the smarthost and a program (452 4.5.3)."""
import os
import subprocess
import time

import pytest

from conftest import tool
from smarthost import free_port
from test_spool import queue_ids


class SmtpSink:
    """Postfix's smtp-sink on a loopback port; reject: smtp-sink's -f (5xx) or
    -r (4xx) list of commands; each message dumped into a file of dump/."""

    def __init__(self, base, hard=None, soft=None):
        if tool("smtp-sink") is None:
            pytest.skip("Postfix's smtp-sink is missing (tools/install-deps.sh)")
        self.port = free_port()
        self.dump = base / f"sink-{self.port}"
        self.dump.mkdir()
        os.chmod(self.dump, 0o777)
        argv = [tool("smtp-sink"), "-c", "-d", f"{self.dump}/%H%M%S."]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]
        if hard:
            argv += ["-f", hard]
        if soft:
            argv += ["-r", soft]
        self.proc = subprocess.Popen(argv + [f"127.0.0.1:{self.port}", "20"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        end = time.time() + 10
        import socket
        while time.time() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("smtp-sink did not listen")

    def messages(self):
        return sorted(p.read_bytes() for p in self.dump.rglob("*") if p.is_file())

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def proxy_conf(gw, sink):
    gw.write_aliases('support: "|@REC@"\n')
    gw.write_conf(f'smarthost "up" {{ host = "127.0.0.1" port = {sink.port} tls = none '
                  f'mode = proxy timeout = 10s }}\n')


def transaction(gw, rcpts, body=b"Subject: proxied\r\n\r\nhello\r\n"):
    c = gw.session()
    c.greet()
    assert c.cmd("MAIL FROM:<alice@remote.test>").code == 250
    codes = [c.cmd(f"RCPT TO:<{r}>") for r in rcpts]
    final = None
    if any(r.code == 250 for r in codes):
        assert c.cmd("DATA").code == 354
        c.send(body + b".\r\n")
        final = c.reply()
    c.cmd("QUIT")
    c.close()
    return codes, final


def test_accepted_in_the_session_nothing_spooled(gw):
    sink = SmtpSink(gw.base)
    try:
        proxy_conf(gw, sink)
        codes, final = transaction(gw, ["bob@remote.example", "carol@remote.example"])
        assert [r.code for r in codes] == [250, 250]
        assert final.code == 250 and "forwarded" in final.text
        assert queue_ids(gw) == []
        (msg,) = sink.messages()
        assert b"RCPT TO:<bob@remote.example>" in msg or b"bob@remote.example" in msg
        assert b"Subject: proxied" in msg and b"Received: from client.test" in msg
        assert gw.log_count("status=sent") == 2
    finally:
        sink.stop()


@pytest.mark.parametrize("hard,soft,stage,code", [
    ("RCPT", None, "rcpt", 500), (None, "RCPT", "rcpt", 450),
    (".", None, "data", 500), (None, ".", "data", 450)])
def test_smarthost_refusals_are_the_clients(gw, hard, soft, stage, code):
    """The smarthost's 5xx or 4xx, at RCPT or after the message, is what the
    client gets, and nothing is kept here."""
    sink = SmtpSink(gw.base, hard=hard, soft=soft)
    try:
        proxy_conf(gw, sink)
        codes, final = transaction(gw, ["bob@remote.example"])
        if stage == "rcpt":
            assert codes[0].code == code and final is None
        else:
            assert codes[0].code == 250 and final.code == code
            assert gw.log_count("status=" + ("bounced" if code >= 500 else "deferred")) == 1
        assert queue_ids(gw) == []
    finally:
        sink.stop()


def test_smarthost_down_is_451_at_rcpt(gw):
    gw.write_conf(f'smarthost "up" {{ host = "127.0.0.1" port = {free_port()} tls = none '
                  f'mode = proxy }}\n')
    codes, final = transaction(gw, ["bob@remote.example"])
    assert codes[0].code == 451 and "Connection refused" in codes[0].text
    assert final is None and queue_ids(gw) == []


def test_no_mixing_with_programs(gw):
    """SPEC 7: one reply per message.  A program's recipient after a proxied one,
    or a proxied one after a program's, is refused 452 4.5.3; alone, each goes."""
    sink = SmtpSink(gw.base)
    try:
        proxy_conf(gw, sink)
        codes, final = transaction(gw, ["bob@remote.example", "support@example.com"])
        assert [r.code for r in codes] == [250, 452] and final.code == 250
        codes, final = transaction(gw, ["support@example.com", "bob@remote.example"])
        assert [r.code for r in codes] == [250, 452] and final.code == 250
        assert len(gw.records()) == 1 and len(sink.messages()) == 1
        r = gw.run("--check-config")
        assert r.returncode == 0, r.stderr
        gw.write_conf(gw.conf.read_text() + 'smarthost "other" { host = "127.0.0.1" }\n')
        r = gw.run("--check-config")
        assert r.returncode == 1 and "mode differs" in r.stderr
    finally:
        sink.stop()
