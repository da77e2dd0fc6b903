"""RT's queues known at RCPT time (issue 20 part 6): with an rt_queues section
and verify = rt_queue("${queue}") on the regex alias that serves every queue,
RCPT for a queue RT lacks gets 550 5.1.1 at once instead of rt-mailgate's 75
and days of retries.  Against a small stand-in for RT's REST 2 API (paging,
chunked bodies, token auth, HTTPS, an RT that goes down); the real RT 5 is in
test_real_rt.py."""
import json
import os
import socket
import ssl
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import needs_root
from smarthost import free_port
from test_daemon import Daemon
from test_probe import write_ca_and_cert

TOKEN = "1-23-0123456789abcdef0123456789abcdef"


class FakeRT:
    """GET /REST/2.0/queues/all as RT 5 answers it: {count, page, per_page,
    total, pages, items: [{type, id, _url, Name}]}, token auth, 100 a page."""

    def __init__(self, queues, tls=None, chunked=False):
        self.queues = list(queues)
        self.requests = []
        self.down = False
        self.chunked = chunked
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                fake.requests.append((self.path, self.headers.get("Authorization")))
                url = urllib.parse.urlsplit(self.path)
                q = urllib.parse.parse_qs(url.query)
                if fake.down:
                    return self.send(500, b"Internal Server Error", "text/plain")
                if self.headers.get("Authorization") != f"token {TOKEN}":
                    return self.send(401, b'{"message":"Unauthorized"}')
                if url.path != "/rt/REST/2.0/queues/all" or q.get("fields") != ["Name"]:
                    return self.send(404, b'{"message":"Not Found"}')
                per = min(int(q.get("per_page", ["20"])[0]), 100)
                page = int(q.get("page", ["1"])[0])
                chunk = fake.queues[(page - 1) * per:page * per]
                items = [{"type": "queue", "id": str(i + 1), "_url": f"x/queue/{i + 1}",
                          "Name": n} for i, n in enumerate(chunk)]
                body = json.dumps({"count": len(items), "page": page, "per_page": per,
                                   "total": len(fake.queues), "items": items,
                                   "pages": -(-len(fake.queues) // per)}, indent=1)
                self.send(200, body.encode())

            def send(self, code, body, ctype="application/json; charset=utf-8"):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                if fake.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for i in range(0, len(body), 700):
                        part = body[i:i + 700]
                        self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(part), part))
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls[0], tls[1])
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://localhost:{self.port}/rt/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def rt():
    s = FakeRT(["General", "support", "Sales"])
    yield s
    s.stop()


def token_file(gw, text=TOKEN):
    p = gw.base / "rt.token"
    p.write_text(text + "\n")
    p.chmod(0o644)
    return p


def configure(gw, url, refresh="5m", extra="", rt_extra=""):
    gw.write_aliases('/^rt-(?<queue>[a-z0-9]+)$/: "|@REC@ --queue ${queue}"\n'
                     'plain: "|@REC@ --plain"\n')
    gw.write_conf(f'rt_queues {{\n  url = "{url}"\n  token_file = "{token_file(gw)}"\n'
                  f'  refresh = {refresh}\n  timeout = 5s\n{rt_extra}}}\n'
                  'alias "/^rt-(?<queue>[a-z0-9]+)$/" {\n'
                  '  verify = \'rt_queue("${queue}")\'\n}\n' + extra)


def rcpt(gw, *rcpts):
    """The reply to RCPT for each recipient, each in a transaction of its own."""
    c = gw.session()
    c.greet()
    replies = []
    for r in rcpts:
        c.cmd("MAIL FROM:<a@remote.test>")
        replies.append(c.cmd(f"RCPT TO:<{r}>"))
        c.cmd("RSET")
    c.cmd("QUIT")
    c.close()
    return replies


def test_unknown_queue_refused_at_rcpt(gw, rt):
    """inetd: the first session fetches the list; a queue RT lacks is 550 5.1.1
    at RCPT, a known one (RT's case or not) is accepted and delivered; the list
    is kept in the spool; aliases without verify are not checked."""
    configure(gw, rt.url)
    good, upper, bad, plain = rcpt(gw, "rt-support@example.com", "rt-SALES@example.com",
                                   "rt-nosuch@example.com", "plain@example.com")
    assert good.code == 250 and upper.code == 250 and plain.code == 250
    assert bad.code == 550 and bad.text == ("5.1.1 <rt-nosuch@example.com>: Recipient "
                                            "address rejected: no such queue in Request "
                                            "Tracker")
    assert rt.requests == [("/rt/REST/2.0/queues/all?per_page=100&page=1&fields=Name",
                            f"token {TOKEN}")]
    lines = (gw.spool / "rt-queues").read_text().splitlines()
    assert lines[0] == "undersmtpd-rt-queues 1" and lines[1] == f"url {rt.url}"
    assert lines[3:] == ["General", "support", "Sales"]
    assert 'Request Tracker has no queue "nosuch" (rt_queues)' in gw.log_text()
    # Fresh for refresh (5m): the next sessions do not ask RT again.
    c = gw.session()
    c.greet()
    assert c.mail(rcpts=["rt-general@example.com"]).code == 250
    c.cmd("QUIT")
    c.close()
    assert len(rt.requests) == 1
    assert gw.one_record().argv[-2:] == ["--queue", "general"]


@pytest.mark.parametrize("chunked", [False, True])
def test_pages(gw, chunked):
    """250 queues come in three pages of 100 (chunked bodies or not); a name
    on the last page is known, one past it is not."""
    rt = FakeRT([f"q{i}" for i in range(250)], chunked=chunked)
    try:
        configure(gw, rt.url)
        first, last, past = rcpt(gw, "rt-q0@example.com", "rt-q249@example.com",
                                 "rt-q250@example.com")
        assert (first.code, last.code, past.code) == (250, 250, 550)
        assert [p for p, _ in rt.requests] == [
            f"/rt/REST/2.0/queues/all?per_page=100&page={n}&fields=Name" for n in (1, 2, 3)]
    finally:
        rt.stop()


def make_stale(gw):
    """The cached list as if fetched long ago (no waiting for refresh)."""
    cache = gw.spool / "rt-queues"
    lines = cache.read_text().splitlines()
    lines[2] = "fetched 1"
    cache.write_text("\n".join(lines) + "\n")


def test_rt_down_keeps_the_last_list(gw, rt):
    """RT answers 500 when the list is due: the last good list stands (an
    unknown queue is still refused, a known one accepted), the log says so,
    and a failing RT is asked at most once a minute, not by every RCPT."""
    configure(gw, rt.url)
    assert [r.code for r in rcpt(gw, "rt-support@example.com")] == [250]
    rt.down = True
    make_stale(gw)
    assert [r.code for r in rcpt(gw, "rt-nosuch@example.com", "rt-support@example.com")] \
        == [550, 250]
    assert "answered 500; the last list stands" in gw.log_text()
    assert len(rt.requests) == 2
    rcpt(gw, "rt-nosuch@example.com")
    assert len(rt.requests) == 2              # within the minute after the failure
    rt.down = False
    make_stale(gw)
    rcpt(gw, "rt-nosuch@example.com")
    assert len(rt.requests) == 2              # still within it, RT up or not


def test_queue_created_while_running(gw, rt):
    """A queue RT gets later is accepted once the list is refreshed."""
    configure(gw, rt.url, refresh="1s")
    assert rcpt(gw, "rt-billing@example.com")[0].code == 550
    rt.queues.append("Billing")
    time.sleep(1.5)
    assert rcpt(gw, "rt-billing@example.com")[0].code == 250


@pytest.mark.parametrize("why,logged", [
    ("closed", "connect to localhost port"),
    ("token", "answered 401 (the token is refused)"),
])
def test_no_list_accepts_as_before(gw, rt, why, logged):
    """With no list at all (RT unreachable, the token refused), mail is
    accepted as without the check, and the log says why."""
    url = f"http://localhost:{free_port()}/rt/" if why == "closed" else rt.url
    configure(gw, url)
    if why == "token":
        token_file(gw, "1-2-wrong")
    r = rcpt(gw, "rt-nosuch@example.com")[0]
    assert r.code == 250, r
    assert logged in gw.log_text() and "no list yet: recipients are not checked" in \
        gw.log_text()
    assert not (gw.spool / "rt-queues").exists()


def test_https_with_ca_file(gw):
    """https: the certificate is checked against ca_file and the URL's host;
    with the system's CAs the test CA is unknown: no list, mail accepted."""
    ca, crt, key = write_ca_and_cert(gw.base, "localhost")
    rt = FakeRT(["support"], tls=(str(crt), str(key)))
    try:
        configure(gw, rt.url, rt_extra=f'  ca_file = "{ca}"\n')
        assert [r.code for r in rcpt(gw, "rt-support@example.com", "rt-x@example.com")] \
            == [250, 550]
        (gw.spool / "rt-queues").unlink()
        configure(gw, rt.url)
        assert rcpt(gw, "rt-x@example.com")[0].code == 250
        assert "TLS certificate verification failed: unable to get local issuer" \
            in gw.log_text()
    finally:
        rt.stop()


def test_daemon_fetches_without_a_client_waiting(gw, rt):
    """undersmtpd -d: a process of the daemon's fetches the list at start and
    every refresh; sessions only read it."""
    port = free_port()
    configure(gw, rt.url, refresh="1s", extra=f'listen = {{ "127.0.0.1:{port}" }}\n')
    d = Daemon(gw, port)
    try:
        end = time.time() + 20
        while time.time() < end and not (gw.spool / "rt-queues").exists():
            time.sleep(0.1)
        assert (gw.spool / "rt-queues").exists()
        rt.queues.append("Billing")
        end = time.time() + 20
        while time.time() < end and "Billing" not in (gw.spool / "rt-queues").read_text():
            time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            f = s.makefile("rwb")
            f.readline()
            for line in (b"EHLO client.test", b"MAIL FROM:<a@remote.test>",
                         b"RCPT TO:<rt-billing@example.com>", b"RCPT TO:<rt-no@example.com>"):
                f.write(line + b"\r\n")
                f.flush()
                reply = f.readline()
                while reply[3:4] == b"-":
                    reply = f.readline()
            assert reply.startswith(b"550 5.1.1")
        assert "Billing" in (gw.spool / "rt-queues").read_text()
    finally:
        d.stop()


def test_route_and_check_config(gw, rt):
    """--route says what RCPT would get; --check-config names the lines of a
    verify without rt_queues and of a bad url."""
    configure(gw, rt.url)
    r = gw.run("--route", "rt-nosuch@example.com")
    assert r.returncode == 0 and "no list of RT's queues yet" in r.stdout
    assert rt.requests == []                     # --route only reads the list
    rcpt(gw, "rt-support@example.com")           # a session fetches it
    r = gw.run("--route", "rt-support@example.com", "rt-nosuch@example.com")
    assert r.returncode == 1
    assert 'rt-support@example.com: Request Tracker queue "support": known' in r.stdout
    assert ('rt-nosuch@example.com: Request Tracker queue "nosuch": unknown: RCPT gets '
            '550 5.1.1') in r.stdout
    gw.write_conf('alias "x" {\n  verify = \'rt_queue("${queue}")\'\n}\n')
    r = gw.run("--check-config")
    assert r.returncode != 0 and f"{gw.conf}:8:" in r.stderr and "needs the rt_queues" \
        in r.stderr
    gw.write_conf('rt_queues {\n  url = "ftp://rt.example/"\n}\n'
                  'alias "x" {\n  verify = "queue(x)"\n}\n')
    r = gw.run("--check-config")
    assert f"{gw.conf}:8:" in r.stderr and "expected http://host" in r.stderr
    assert f"{gw.conf}:11:" in r.stderr and "expected rt_queue(" in r.stderr


def test_unquoted_verify_form(gw, rt):
    """The issue's own spelling, verify = rt_queue("${queue}") unquoted, is not
    a value libconfuse can read: refused with its line and the quoted form."""
    configure(gw, rt.url)
    text = gw.conf.read_text().replace('\'rt_queue("${queue}")\'', 'rt_queue("${queue}")')
    gw.conf.write_text(text)
    r = gw.run("--check-config")
    assert r.returncode != 0
    assert f"{gw.conf}:14: verify: bad value 'rt_queue': quote the whole value: " \
           f"verify = 'rt_queue(\"${{queue}}\")'" in r.stderr, r.stderr


@needs_root
def test_check_config_token_the_spool_user_cannot_read(gw, rt):
    """The token is read by sessions and the daemon's fetch, as the spool user:
    --check-config says when that user cannot read it, with its line."""
    configure(gw, rt.url)
    (gw.base / "rt.token").chmod(0o600)           # root's alone
    r = gw.run("--check-config")
    assert r.returncode != 0
    assert f"{gw.conf}:9: rt_queues token_file {gw.base}/rt.token is not readable by " \
           f"mail: Permission denied" in r.stderr
