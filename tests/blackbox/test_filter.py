"""Content filters (issue 20 part 5; E-MailRelay's --filter, a small Postfix
content_filter): a program run after DATA with the message on its standard
input and the envelope in its environment, before anything is delivered or
spooled.  Exit 0 lets the message go on, rewritten when the filter is declared
rewrite = yes; 75 is a 451; 65-78 a 5xx with the filter's first line; anything
else, a timeout included, a 451 and a log line.  A signing filter, a rejecting
filter, a hanging filter, output that is no message, one filter per
transaction, and sendmail.  Run as root the launcher starts the filter as the
pipe user; as anyone else the session does."""
import os
import subprocess
import time

import pytest

from conftest import needs_root
from smarthost import Sink
from test_spool import queue_ids, send as spool_send

BODY = b"From: <a@remote.test>\r\nSubject: filter me\r\n\r\nline one\r\nline two\r\n"


@pytest.fixture
def sink():
    s = Sink().start()
    yield s
    s.stop()


def program(gw, name, text):
    p = gw.base / name
    p.write_text("#!/bin/sh\n" + text)
    p.chmod(0o755)
    return p


def signer(gw):
    """Adds a header with the body's digest and what its environment said, and
    writes the environment where the test can read it."""
    out = gw.base / "filter-env"
    out.touch()
    out.chmod(0o666)
    return program(gw, "sign", f"""umask 022
env | sort > {out}
msg=$(mktemp) || exit 75
cat > "$msg"
sum=$(sed '1,/^$/d' "$msg" | sha256sum | cut -c1-16)
printf 'X-Signed: sha256=%s by %s\\r\\n' "$sum" "$(id -un)"
cat "$msg"
rm -f "$msg"
""")


def conf(gw, sink=None, top="", extra=""):
    sh = (f'smarthost "sink" {{ host = "127.0.0.1" port = {sink.port} tls = none '
          f'timeout = 10s }}\n' if sink else "")
    gw.write_conf(top + sh + 'queue { run_after_accept = false }\n' + extra)


def send(gw, rcpts, body=BODY):
    return spool_send(gw, rcpts, sender="a@remote.test", body=body)


def filter_env(gw):
    return dict(line.split("=", 1) for line in
                (gw.base / "filter-env").read_text().splitlines() if "=" in line)


def test_signing_filter_rewrites_for_pipe_and_smarthost(gw, sink):
    """rewrite = yes: the program and the smarthost get the filter's message
    (the added header, the body unchanged); the filter saw the envelope in its
    environment and ran as the pipe user, never root."""
    conf(gw, sink, top=f'filter = "{signer(gw)} --key test"\nrewrite = yes\n')
    gw.write_aliases('support: "|@REC@"\n')
    r = send(gw, ["support@example.com"])
    assert r.code == 250, r
    stdin = gw.one_record().stdin
    assert b"\nX-Signed: sha256=" in stdin and stdin.endswith(b"\n\nline one\nline two\n")
    assert b"\r" not in stdin                      # CRLF from the filter stored as LF
    env = filter_env(gw)
    assert env["SENDER"] == "a@remote.test" and env["RECIPIENT"] == "support@example.com"
    assert env["RECIPIENTS"] == "support@example.com" and env["FILTER_REWRITE"] == "yes"
    assert env["QUEUE_ID"] and env["CLIENT_ADDRESS"] == "127.0.0.1"
    signed_by = stdin.split(b" by ", 1)[1].split(b"\n", 1)[0].decode()
    assert signed_by != "root"
    if os.geteuid() == 0:
        assert signed_by == "nobody"

    r = send(gw, ["x@remote.example", "y@remote.example"])
    assert r.code == 250, r
    assert filter_env(gw)["RECIPIENTS"] == "x@remote.example y@remote.example"
    assert gw.run("-q").returncode == 0
    (m,) = sink.wait_messages(1)
    assert m.rcpts == ["x@remote.example", "y@remote.example"]
    assert m.data.startswith(b"X-Signed: sha256=") and m.data.endswith(b"\r\n\r\nline one\r\n"
                                                                  b"line two\r\n")
    assert gw.log_count("filter=") == 2 and "exit 0" in gw.log_text()


def test_without_rewrite_the_output_is_only_words(gw):
    """A filter not declared rewrite = yes may print what it likes: the message
    goes on as it came."""
    f = program(gw, "chatty", "cat; echo 'looked at it'\n")
    conf(gw, top=f'filter = "{f}"\n')
    gw.write_aliases('support: "|@REC@"\n')
    assert send(gw, ["support@example.com"]).code == 250
    assert gw.one_record().body() == b"line one\nline two\n"


@pytest.mark.parametrize("status,reply", [
    (65, "550 5.6.0 Spam score 12.5 is over 5"),
    (77, "550 5.7.0 Spam score 12.5 is over 5"),
    (69, "554 5.3.0 Spam score 12.5 is over 5"),
    (75, "451 4.7.1 Message deferred by the content filter: Spam score 12.5 is over 5"),
    (3, "451 4.3.0 Local error in the content filter; try again later"),
])
def test_rejecting_filter(gw, sink, status, reply):
    """The filter's verdict is the reply (sysexits table, its first line as the
    text); nothing is delivered, nothing spooled."""
    f = program(gw, "reject", f"cat >/dev/null\necho 'Spam score 12.5 is over 5'\n"
                              f"echo 'second line'\nexit {status}\n")
    conf(gw, sink, top=f'filter = "{f}"\n')
    gw.write_aliases('support: "|@REC@"\n')
    for rcpt in ["support@example.com", "x@remote.example"]:
        r = send(gw, [rcpt])
        assert f"{r.code} {r.text}" == reply
    assert gw.records() == [] and queue_ids(gw) == []
    assert gw.log_count(f"exit {status}") == 2


def test_hanging_filter_is_killed(gw):
    """A filter that never ends is killed at the pipe timeout, with what it
    started: 451, logged as timed out, nothing delivered."""
    marker = f"hang-{os.getpid()}-{time.time_ns()}"
    f = program(gw, "hang", f"cat >/dev/null\nsleep 300 {marker} &\nsleep 300\n")
    (gw.base / "sleep").symlink_to("/bin/sleep")
    conf(gw, top=f'filter = "{f}"\npipe {{ timeout = 2s }}\n')
    gw.write_aliases('support: "|@REC@"\n')
    start = time.time()
    r = send(gw, ["support@example.com"])
    assert r.code == 451 and r.text == "4.3.0 Local error in the content filter; try " \
                                       "again later"
    assert time.time() - start < 60
    assert "timed out" in gw.log_text() and gw.records() == []
    end = time.time() + 10
    while time.time() < end and subprocess.run(["pgrep", "-f", marker],
                                               capture_output=True).returncode == 0:
        time.sleep(0.1)
    assert subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 1


@pytest.mark.parametrize("output,reply,logged", [
    ("printf 'Subject: x\\r\\n\\r\\nbare\\rCR\\r\\n'", "451 4.3.0", "a bare CR"),
    ("printf 'Subject: x\\n\\n\\000\\n'", "451 4.3.0", "a NUL character"),
    ("head -c 2000 /dev/zero | tr '\\0' x", "451 4.3.0", "longer than 998"),
    (":", "451 4.3.0", "its output is no message: nothing"),
    ("head -c 200000 /dev/zero | tr '\\0' '\\n'", "552 5.3.4",
     "the rewritten message is over 167936 bytes"),
])
def test_rewritten_output_is_checked(gw, output, reply, logged):
    """What a rewriting filter prints must be a message the SMTP session would
    take: else 451 (the filter's fault, a retry may find it fixed), or 552 when
    it grew past max_message_size plus room for added headers."""
    f = program(gw, "rewrite", f"cat >/dev/null\n{output}\n")
    conf(gw, top=f'filter = "{f}"\nrewrite = yes\nmax_message_size = 100K\n')
    gw.write_aliases('support: "|@REC@"\n')
    r = send(gw, ["support@example.com"])
    assert f"{r.code} {r.text}".startswith(reply), r
    assert logged in gw.log_text() and gw.records() == []


def test_one_filter_per_transaction(gw):
    """An alias block's filter is for that alias; a recipient with another
    filter (here: none) gets 452 4.5.3 and comes in a transaction of its own,
    which the filter does not see."""
    f = signer(gw)
    conf(gw, extra=f'alias "support" {{\n  filter = "{f}"\n  rewrite = yes\n}}\n')
    gw.write_aliases('support: "|@REC@"\nsales: "|@REC@ --sales"\n')
    c = gw.session()
    c.greet()
    c.cmd("MAIL FROM:<a@remote.test>")
    assert c.cmd("RCPT TO:<support@example.com>").code == 250
    r = c.cmd("RCPT TO:<sales@example.com>")
    assert r.code == 452 and "another content filter" in r.text
    c.cmd("QUIT")
    c.close()
    # The other way round: the unfiltered one first.
    c = gw.session()
    c.greet()
    c.cmd("MAIL FROM:<a@remote.test>")
    assert c.cmd("RCPT TO:<sales@example.com>").code == 250
    assert c.cmd("RCPT TO:<support@example.com>").code == 452
    assert c.cmd("DATA").code == 354
    c.send(BODY + b".\r\n")
    assert c.reply().code == 250
    c.cmd("QUIT")
    c.close()
    rec = gw.one_record()
    assert rec.argv[-1] == "--sales" and b"X-Signed" not in rec.stdin
    assert send(gw, ["support@example.com"]).code == 250
    assert b"X-Signed" in gw.records()[-1].stdin
    out = gw.run("--route", "support@example.com", "sales@example.com").stdout
    assert f"support@example.com: content filter: {f} (rewrites the message)" in out
    assert "sales@example.com: content filter" not in out


def test_check_config_names_filter_lines(gw):
    """--check-config: a filter that is no absolute program, one for the shell,
    rewrite without a filter, and smarthosts that disagree, each with file:line."""
    gw.write_conf('filter = "spamc -c"\n'
                  'smarthost "one" { host = "127.0.0.1" filter = "/bin/cat | tee" }\n')
    r = gw.run("--check-config")
    assert r.returncode != 0
    assert f"{gw.conf}:7:" in r.stderr and "expected an absolute program path" in r.stderr
    assert f"{gw.conf}:8:" in r.stderr and "no shell runs the filter" in r.stderr
    gw.write_conf('alias "a" {\n  rewrite = yes\n}\n'
                  'smarthost "one" { host = "127.0.0.1" filter = "/bin/cat" }\n'
                  'smarthost "two" {\n  host = "127.0.0.2"\n  filter = "/bin/cat -u"\n}\n')
    r = gw.run("--check-config")
    assert r.returncode != 0
    assert f"{gw.conf}:8:" in r.stderr and "rewrite = yes without a filter" in r.stderr
    assert f"{gw.conf}:13:" in r.stderr and "filter or rewrite differs" in r.stderr


def test_filter_program_checked_by_check_config(gw):
    """--check-config also looks for the filter program, as for pipe programs."""
    conf(gw, top='filter = "/nonexistent/dkim-sign --selector s1"\n')
    r = gw.run("--check-config")
    assert r.returncode != 0
    assert f"{gw.conf}:7:" in r.stderr and "/nonexistent/dkim-sign" in r.stderr


@needs_root
def test_sendmail_runs_the_filter(gw, sink):
    """sendmail: the filter runs once before any recipient is served; its 5xx is
    sendmail's exit status, with nothing spooled."""
    from test_sendmail import sendmail
    conf(gw, sink, top=f'filter = "{signer(gw)}"\nrewrite = yes\n')
    gw.write_aliases('support: "|@REC@"\n')
    r = sendmail(gw, ["-oi", "support@example.com", "x@remote.example"],
                 b"Subject: cron\n\nhello\n")
    assert r.returncode == 0, r.stderr
    assert b"X-Signed: sha256=" in gw.one_record().stdin
    assert gw.run("-q").returncode == 0
    (m,) = sink.wait_messages(1)
    assert b"X-Signed: sha256=" in m.data
    assert filter_env(gw)["RECIPIENTS"] == "support@example.com x@remote.example"

    f = program(gw, "reject", "cat >/dev/null\necho 'not from cron'\nexit 77\n")
    conf(gw, sink, top=f'filter = "{f}"\n')
    r = sendmail(gw, ["-oi", "x@remote.example"], b"Subject: cron\n\nhello\n")
    assert r.returncode == 77 and b"550 5.7.0 not from cron" in r.stderr
    assert queue_ids(gw) == []


def test_proxy_mode_forwards_the_filtered_message(gw):
    """Proxy mode: the smarthost blocks' filter runs before the message goes on
    in the session; its refusal is the reply and nothing is forwarded."""
    from test_proxy_mode import SmtpSink, transaction
    sink = SmtpSink(gw.base)
    try:
        sign = signer(gw)
        gw.write_conf(f'smarthost "up" {{ host = "127.0.0.1" port = {sink.port} tls = none '
                      f'mode = proxy timeout = 10s filter = "{sign}" rewrite = yes }}\n')
        codes, final = transaction(gw, ["bob@remote.example"])
        assert final.code == 250 and "forwarded" in final.text
        (msg,) = sink.messages()
        assert b"X-Signed: sha256=" in msg and b"Subject: proxied" in msg
        reject = program(gw, "reject", "cat >/dev/null\necho 'no thanks'\nexit 77\n")
        gw.write_conf(f'smarthost "up" {{ host = "127.0.0.1" port = {sink.port} tls = none '
                      f'mode = proxy timeout = 10s filter = "{reject}" }}\n')
        codes, final = transaction(gw, ["bob@remote.example"])
        assert f"{final.code} {final.text}" == "550 5.7.0 no thanks"
        assert len(sink.messages()) == 1 and queue_ids(gw) == []
    finally:
        sink.stop()


@needs_root
def test_maildrop_mail_is_filtered_at_pickup(gw, sink):
    """Mail an ordinary user hands to sendmail (cron, a web application) waits
    in the maildrop; the queue run that picks it up runs the filter first: a
    signer's header reaches the smarthost; a temporary refusal leaves the file
    for the next run; a permanent one goes back to the sender as a DSN, and the
    maildrop copy is gone."""
    from test_maildrop import Maildrop, CRON_MAIL
    md = Maildrop(gw)
    try:
        conf(gw, sink, top=f'filter = "{signer(gw)}"\nrewrite = yes\n')
        assert md.send(["-i", "ops@remote.example"], CRON_MAIL).returncode == 0
        assert gw.run("-q").returncode == 0
        (m,) = sink.wait_messages(1)
        assert m.data.startswith(b"X-Signed: sha256=") and b"nightly backup" in m.data
        assert filter_env(gw)["SENDER"] == "nobody@mx.example.com"
        assert md.files() == []

        later = program(gw, "later", "cat >/dev/null\necho 'busy'\nexit 75\n")
        conf(gw, sink, top=f'filter = "{later}"\n')
        assert md.send(["-i", "ops@remote.example"], CRON_MAIL).returncode == 0
        assert gw.run("-q").returncode == 0
        assert len(md.files()) == 1 and queue_ids(gw) == []
        assert "the content filter deferred a maildrop message: 451 4.7.1" in \
            gw.log_text()

        no = program(gw, "no", "cat >/dev/null\necho 'no mail from cron'\nexit 77\n")
        conf(gw, sink, top=f'filter = "{no}"\n')
        assert gw.run("-q").returncode == 0         # the waiting one: its sender is local
        assert md.files() == []
        assert md.send(["-i", "-f", "webapp@remote.example", "ops@remote.example"],
                       CRON_MAIL).returncode == 0
        assert gw.run("-q").returncode == 0
        assert md.files() == []
        msgs = sink.wait_messages(2)
        dsn = msgs[1]
        assert dsn.sender == "" and dsn.rcpts == ["webapp@remote.example"]
        assert b"<ops@remote.example>: 550 5.7.0 no mail from cron" in dsn.data
        assert b"Status: 5.7.0" in dsn.data and b"nightly backup" not in dsn.data
        assert "refused by the content filter, sender notified" in gw.log_text()
    finally:
        md.close()
