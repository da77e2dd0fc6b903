"""Issue 18 part 3: the real Request Tracker behind undersmtpd -d.

Debian's RT 5 (request-tracker5, rt5-db-sqlite, rt5-standalone, rt5-clients)
runs from a temporary directory: its own RT_SiteConfig.pm, an SQLite database
made by rt-setup-database-5 with two queues and the rights RT's mail gateway
needs for unknown senders, and rt-server on a loopback port.  RT's own mail
goes through undersmtpd's sendmail to a sink smarthost, never to the system's
MTA.  Mail goes in through the daemon and the real rt-mailgate-5; tickets are
read back through RT's REST 1.0 API."""
import os
import re
import signal
import shutil
import smtplib
import subprocess
import tempfile
import time
from pathlib import Path
import urllib.parse
import urllib.request

import pytest

from conftest import needs_root
from smarthost import free_port
from test_daemon import Daemon
from test_spool import sink   # noqa: F401 (fixture)

RT_SERVER = "/usr/share/request-tracker5/libexec/rt-server"
RT_SETUP = "/usr/sbin/rt-setup-database-5"
RT_MAILGATE = "/usr/bin/rt-mailgate-5"

INITIALDATA = """
@Queues = (
    { Name => 'support', CorrespondAddress => 'support@rt.test',
      CommentAddress => 'support-comment@rt.test' },
    { Name => 'sales', CorrespondAddress => 'rt-sales@rt.test' },
);
# RT grants unknown senders nothing: the gateway's mail needs these.
@ACL = map { { GroupDomain => 'SystemInternal', GroupType => 'Everyone', Right => $_ } }
    qw(CreateTicket ReplyToTicket CommentOnTicket SeeQueue);
1;
"""


class RT:
    """Debian's RT 5 on 127.0.0.1:port, its database and logs in directory."""

    def __init__(self, directory):
        self.dir = directory
        for sub in ("RT_SiteConfig.d", "mason_data", "session_data"):
            (self.dir / sub).mkdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        (self.dir / "RT_SiteConfig.pm").write_text(f"""
Set($rtname, 'rt.test');
Set($Organization, 'rt.test');
Set($WebDomain, '127.0.0.1');
Set($WebPort, {self.port});
Set($WebBaseURL, 'http://127.0.0.1:{self.port}');
Set($WebPath, '');
Set($DatabaseType, 'SQLite');
Set($DatabaseName, '{self.dir}/rt.db');
Set($MasonDataDir, '{self.dir}/mason_data');
Set($MasonSessionDir, '{self.dir}/session_data');
Set($LogToSTDERR, 'warning');
Set($LogToSyslog, undef);
Set($LogToFile, undef);
Set($CorrespondAddress, 'support\\@rt.test');
Set($CommentAddress, 'support-comment\\@rt.test');
# RT's own mail (autoreplies) through undersmtpd's sendmail, nowhere else:
# a script each test points at its own gateway (use_sendmail).
Set($MailCommand, 'sendmailpipe');
Set($SendmailPath, '{self.dir}/sendmail');
Set($SendmailArguments, '-oi -t');
1;
""")
        (self.dir / "initialdata").write_text(INITIALDATA)
        self.use_sendmail(None)
        self.env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(self.dir),
                    "RT_SITE_CONFIG": str(self.dir / "RT_SiteConfig.pm"),
                    "RT_SITE_CONFIG_DIR": str(self.dir / "RT_SiteConfig.d")}
        for args in (["--action", "init", "--skip-create"],
                     ["--action", "insert", "--datafile", str(self.dir / "initialdata")]):
            r = subprocess.run([RT_SETUP, *args], cwd=self.dir, env=self.env,
                               capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stdout + r.stderr
        self.proc = None
        self.start()

    def start(self):
        self.log = open(self.dir / "rt-server.log", "ab")
        self.proc = subprocess.Popen([RT_SERVER, "--port", str(self.port)], cwd=self.dir,
                                     env=self.env, stdout=self.log, stderr=self.log)
        end = time.time() + 60
        while time.time() < end:
            try:
                if self.rest("ticket/0/show").startswith("RT/"):
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("rt-server died: " +
                                   (self.dir / "rt-server.log").read_text()[-2000:])
            time.sleep(0.2)
        raise RuntimeError("rt-server did not answer")

    def use_sendmail(self, gw):
        """RT's sendmail: gw's undersmtpd as sendmail, or a refusal."""
        script = self.dir / "sendmail"
        script.write_text("#!/bin/sh\n" + (f'exec {gw.shared_binary()} --sendmail -C {gw.conf} "$@"\n'
                                          if gw else "exit 75\n"))
        script.chmod(0o755)

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self.log.close()

    def rest(self, path, **query):
        query.update(user="root", pass_="password")
        q = urllib.parse.urlencode({k.rstrip("_"): v for k, v in query.items()})
        with urllib.request.urlopen(f"{self.url}REST/1.0/{path}?{q}", timeout=30) as r:
            return r.read().decode("utf-8", "replace")

    def tickets(self, subject):
        """{id: queue} of the tickets whose subject is exactly subject."""
        text = self.rest("search/ticket", query=f"Subject = '{subject}'", format="l",
                         fields="Queue,Subject")
        found = {}
        for block in text.split("\n--\n"):
            m = re.search(r"^id: ticket/(\d+)$", block, re.M)
            q = re.search(r"^Queue: (\S+)$", block, re.M)
            if m and q:
                found[int(m.group(1))] = q.group(1)
        return found

    def transactions(self, ticket):
        """The types of a ticket's mail transactions, in order (Create, Correspond, Comment)."""
        text = self.rest(f"ticket/{ticket}/history", format="l")
        return [t for t in re.findall(r"^Type: (\w+)$", text, re.M)
                if t in ("Create", "Correspond", "Comment")]


@pytest.fixture(scope="module")
def rt():
    """One RT for the module (its database takes a few seconds to make)."""
    for path in (RT_SERVER, RT_SETUP, RT_MAILGATE):
        if not os.path.exists(path):
            pytest.skip(f"{path} not installed (request-tracker5, rt5-standalone, "
                        "rt5-db-sqlite, rt5-clients; tools/install-deps.sh)")
    directory = Path(tempfile.mkdtemp(prefix="undersmtpd-rt-"))
    os.chmod(directory, 0o755)
    server = RT(directory)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def rt_gw(gw, sink, rt):
    port = free_port()
    if rt.proc is None:
        rt.start()
    rt.use_sendmail(gw)
    gate = f"{RT_MAILGATE} --url {rt.url} --extension ticket"
    gw.write_aliases(
        f'support: "|{gate} --queue support --action correspond"\n'
        f'support-comment: "|{gate} --queue support --action comment"\n'
        f'queued: "|{gate} --queue support --action correspond"\n'
        f'/^rt-(?<queue>[a-z]+)$/: "|{gate} --queue ${{queue}} --action correspond"\n')
    gw.write_conf(f'listen = {{ "127.0.0.1:{port}" }}\n'
                  f'smarthost "sink" {{ host = "127.0.0.1" port = {sink.port} tls = none }}\n'
                  f'queue {{ run_after_accept = false }}\n'
                  f'alias "queued" {{ policy = sync-then-queue }}\n',
                  hostname="rt.test")
    gw.conf.write_text(re.sub(r"local_domains = \{[^}]*\}", 'local_domains = { "rt.test" }',
                              gw.conf.read_text()))
    d = Daemon(gw, port)
    gw.rt, gw.port, gw.sink, gw.daemon = rt, port, sink, d
    try:
        yield gw
    finally:
        d.stop()
        rt.use_sendmail(None)


def send(gw, rcpt, subject, body="Please help.\n"):
    """One message through the daemon; the reply to its data (code, text)."""
    msg = (f"From: Alice <alice@remote.test>\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
           f"Message-ID: <{time.time_ns()}@remote.test>\r\n\r\n{body}")
    msg = msg.replace("\r\n", "\n").replace("\n", "\r\n").replace("\r\n.", "\r\n..").encode()
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=120) as s:
        s.ehlo("client.remote.test")
        s.mail("alice@remote.test")
        code, text = s.rcpt(rcpt)
        assert code == 250, (code, text)
        s.putcmd("data")
        code, text = s.getreply()
        assert code == 354, (code, text)
        s.send(msg + b".\r\n")
        return s.getreply()


def test_ticket_reply_comment_and_regex_queue(rt_gw):
    """A new ticket from support@, a reply to it by sub-address (support+ID@,
    rt-mailgate's --extension ticket), a comment by support-comment+ID@, and a
    regex alias that serves every queue (rt-sales@ -> queue sales); each one
    program run, each reply 250 only once RT has the mail."""
    gw, rt = rt_gw, rt_gw.rt
    code, text = send(gw, "support@rt.test", "Printer on fire")
    assert code == 250, text
    (ticket, queue), = rt.tickets("Printer on fire").items()
    assert queue == "support"
    code, text = send(gw, f"support+{ticket}@rt.test", "Re: Printer on fire", "Still burning.\n")
    assert code == 250, text
    code, text = send(gw, f"support-comment+{ticket}@rt.test", "internal note", "Call 911.\n")
    assert code == 250, text
    assert rt.transactions(ticket) == ["Create", "Correspond", "Comment"]
    assert list(rt.tickets("Printer on fire")) == [ticket]        # the reply made none
    code, text = send(gw, "rt-sales@rt.test", "Quote for 50 printers")
    assert code == 250, text
    assert list(rt.tickets("Quote for 50 printers").values()) == ["sales"]
    log = gw.log_text()
    # relay= names the regex alias that served it, as one token.
    assert re.search(r"undersmtpd/pipe\[\d+\]: \w+: to=<rt-sales@rt\.test>, " +
                     re.escape("relay=^rt-(?<queue>[a-z]+)$,") + ".*status=sent", log), log


def sent_while_rt_down(gw, rcpt, subject, reply):
    """A message sent while RT is stopped gets reply; RT, started again, has
    no ticket for it yet."""
    gw.rt.stop()
    code, text = send(gw, rcpt, subject)
    assert code == reply, (code, text)
    gw.rt.start()
    assert gw.rt.tickets(subject) == {}


def test_rt_down_then_up(rt_gw):
    """RT stopped: rt-mailgate exits 75, the client gets 451 and RT has no
    ticket; RT started again, the client's retry makes exactly one."""
    gw, rt = rt_gw, rt_gw.rt
    sent_while_rt_down(gw, "support@rt.test", "Sent while RT was down", 451)
    code, text = send(gw, "support@rt.test", "Sent while RT was down")     # the retry
    assert code == 250, text
    assert len(rt.tickets("Sent while RT was down")) == 1


def test_sync_then_queue_with_rt_down(rt_gw):
    """policy sync-then-queue with RT stopped: 250 and the message spooled;
    RT started, undersmtpd -q delivers it: exactly one ticket, and a second
    run makes no other."""
    gw, rt = rt_gw, rt_gw.rt
    sent_while_rt_down(gw, "queued@rt.test", "Queued while RT was down", 250)
    assert gw.run("-q", timeout=180).returncode == 0
    assert len(rt.tickets("Queued while RT was down")) == 1
    gw.run("-q", timeout=180)
    assert len(rt.tickets("Queued while RT was down")) == 1


@needs_root   # an ordinary user's sendmail goes through the installed maildrop helper
def test_autoreply_through_undersmtpd_sendmail(rt_gw):
    """RT's own mail: the autoreply to a new ticket's requestor goes through
    undersmtpd's sendmail (RT's $SendmailPath) and reaches the smarthost."""
    gw, rt = rt_gw, rt_gw.rt
    code, text = send(gw, "support@rt.test", "Where is my order")
    assert code == 250, text
    (ticket,) = rt.tickets("Where is my order")
    assert gw.run("-q", timeout=180).returncode == 0
    replies = [m for m in gw.sink.wait_messages(1, timeout=60)
               if m.rcpts == ["alice@remote.test"]]
    assert replies, gw.sink.messages
    assert f"[rt.test #{ticket}]".encode() in replies[0].data
    assert b"AutoReply" in replies[0].data or b"Auto-Submitted: auto-replied" in replies[0].data


def rt_perl(rt, code):
    """code run with RT's own API against the test's RT (its database, its config)."""
    script = "use strict; use warnings; use RT; RT::LoadConfig(); RT::Init();\n" + code
    r = subprocess.run(["perl", "-I/usr/share/request-tracker5/lib", "-e", script],
                       cwd=rt.dir, env=rt.env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.strip()


def wait_for_queue(gw, name, timeout=30):
    """The daemon's copy of RT's queue list names name."""
    cache = gw.spool / "rt-queues"
    end = time.time() + timeout
    while time.time() < end:
        if cache.exists() and name in cache.read_text().splitlines()[3:]:
            return True
        time.sleep(0.2)
    return False


def test_queue_check_at_rcpt(rt_gw):
    """Issue 20 part 6 against the real RT 5: with rt_queues (an auth token made
    by RT's own API, REST 2) and verify = rt_queue("${queue}") on the regex alias
    that serves every queue, RCPT for a queue RT lacks is 550 5.1.1 at once; a
    queue created in RT while undersmtpd runs is accepted after the refresh, and
    its mail becomes a ticket in it."""
    gw, rt = rt_gw, rt_gw.rt
    token = rt_perl(rt, 'my $u = RT::User->new(RT->SystemUser); $u->Load("root");'
                        'my $t = RT::AuthToken->new(RT->SystemUser);'
                        'my ($id, $msg, $s) = $t->Create(Owner => $u->id, '
                        'Description => "undersmtpd");'
                        'die "$msg\\n" unless $id; print $s;')
    tok = gw.base / "rt.token"
    tok.write_text(token + "\n")
    tok.chmod(0o644)
    with open(gw.conf, "a") as f:
        f.write(f'rt_queues {{ url = "{rt.url}" token_file = "{tok}" refresh = 2s }}\n'
                'alias "/^rt-(?<queue>[a-z]+)$/" { verify = \'rt_queue("${queue}")\' }\n')
    os.kill(gw.daemon.master(), signal.SIGHUP)
    assert wait_for_queue(gw, "sales"), gw.log_text()
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=120) as s:
        s.ehlo("client.remote.test")
        s.mail("alice@remote.test")
        code, text = s.rcpt("rt-nosuch@rt.test")
        assert code == 550 and text.startswith(b"5.1.1 <rt-nosuch@rt.test>: Recipient "
                                               b"address rejected: no such queue"), text
        code, text = s.rcpt("rt-billing@rt.test")
        assert code == 550, (code, text)
    rt_perl(rt, 'my $q = RT::Queue->new(RT->SystemUser);'
                'my ($id, $msg) = $q->Create(Name => "billing", '
                'CorrespondAddress => q{rt-billing@rt.test});'
                'die "$msg\\n" unless $id;')
    assert wait_for_queue(gw, "billing"), gw.log_text()
    code, text = send(gw, "rt-billing@rt.test", "Invoice 42 is wrong")
    assert code == 250, text
    assert list(rt.tickets("Invoice 42 is wrong").values()) == ["billing"]
    code, text = send(gw, "rt-sales@rt.test", "Still sold")
    assert code == 250, text
