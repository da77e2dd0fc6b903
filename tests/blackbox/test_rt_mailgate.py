"""The real rt-mailgate (Debian rt5-clients) behind a pipe alias, talking to a
fake Request Tracker that speaks RT's /REST/1.0/NoAuth/mail-gateway.

rt-mailgate exits 0 when RT answers "ok" (or "not ok"), 75 on any HTTP
failure; SPEC 7 turns that into 250 and 451."""
import email.parser
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

RT_MAILGATE = Path(__file__).resolve().parents[1] / ".rt" / "usr" / "bin" / "rt-mailgate-5"


class FakeRT:
    def __init__(self, port=0):
        self.posts = []
        self.status = 200
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers["Content-Length"])
                body = self.rfile.read(length)
                head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
                msg = email.parser.BytesParser().parsebytes(head + body)
                fields = {}
                for part in msg.get_payload():
                    name = part.get_param("name", header="content-disposition")
                    fields[name] = part.get_payload(decode=True)
                outer.posts.append((self.path, fields))
                reply = b"ok\nTicket: 1\n" if outer.status == 200 else b"Internal error"
                self.send_response(outer.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def rt(gw):
    assert RT_MAILGATE.exists(), "run tests/setup-rt-mailgate.sh (README's first command does)"
    mailgate = gw.base / "rt-mailgate"
    shutil.copy2(RT_MAILGATE, mailgate)
    os.chmod(mailgate, 0o755)
    server = FakeRT()
    gw.write_aliases(
        f'support: "|{mailgate} --queue support --action correspond --url {server.url}/"\n'
        f'support-comment: "|{mailgate} --queue support --action comment\n'
        f'       --url {server.url}/"\n'
        f'rt: "|{mailgate} --queue General --action correspond --extension ticket '
        f'--url {server.url}/"\n'
        f'/^rt-(?<queue>[a-z]+)$/: "|{mailgate} --queue ${{queue}} --action correspond '
        f'--url {server.url}/"\n')
    yield server
    server.stop()


def send(gw, rcpt, subject="Printer on fire"):
    c = gw.session()
    c.greet()
    r = c.mail(rcpts=[rcpt], body=f"From: user@remote.test\r\nSubject: {subject}\r\n\r\n"
                                   f"Help!\r\n".encode())
    c.cmd("QUIT")
    c.close()
    return r


def test_rt_ok_is_250_and_message_arrives(gw, rt):
    r = send(gw, "support@example.com")
    assert r.code == 250, r
    (path, fields), = rt.posts
    assert path == "/REST/1.0/NoAuth/mail-gateway"
    assert fields["queue"] == b"support" and fields["action"] == b"correspond"
    msg = fields["message"]
    assert b"Subject: Printer on fire\n" in msg and msg.endswith(b"\nHelp!\n")
    assert msg.startswith(b"Return-Path: <sender@remote.test>\nDelivered-To: support@example.com\n")


def test_rt_two_line_alias_comment(gw, rt):
    assert send(gw, "support-comment@example.com").code == 250
    (_, fields), = rt.posts
    assert fields["action"] == b"comment"


def test_rt_http_500_is_451(gw, rt):
    """rt-mailgate exits 75 on HTTP failure -> our 451, so the sender retries."""
    rt.status = 500
    r = send(gw, "support@example.com")
    assert r.code == 451 and r.lines[0].startswith("4.3.0"), r
    assert "EX_TEMPFAIL" in r.text and "HTTP request failed" in r.text
    assert len(rt.posts) == 1


def test_rt_unreachable_is_451(gw, rt):
    rt.stop()
    r = send(gw, "support@example.com")
    assert r.code == 451


def test_rt_extension_ticket(gw, rt):
    """`--extension ticket` with rt+123@: ticket 123 reaches RT."""
    assert send(gw, "rt+123@example.com", subject="Re: [rt #123]").code == 250
    (_, fields), = rt.posts
    assert fields["ticket"] == b"123"
    assert b"X-RT-Mail-Extension: 123\n" in fields["message"]


def test_rt_regex_alias_serves_every_queue(gw, rt):
    """One regex alias serves every RT queue: rt-<queue>@ -> --queue <queue>."""
    assert send(gw, "rt-billing@example.com").code == 250
    assert send(gw, "rt-sales@example.com").code == 250
    assert [f["queue"] for _, f in rt.posts] == [b"billing", b"sales"]
