"""Failure notices (issue 20 part 2): a program that refuses every message
(exit 67); its failures reach the alias's notify address as one notice per
notify_interval, not a storm; the senders get their DSNs or not, per
notify_sender; a notice is never sent about a notice."""
import time

import pytest

from smarthost import Sink
from test_spool import queue_ids


@pytest.fixture
def sink():
    s = Sink().start()
    yield s
    s.stop()


def refusing_program(gw):
    p = gw.base / "refuse"
    p.write_text("#!/bin/sh\ncat >/dev/null\necho 'no such queue: Billing'\nexit 67\n")
    p.chmod(0o755)
    return p


def configure(gw, sink, alias_extra, policy="queue"):
    gw.write_aliases(f'broken: "|{refusing_program(gw)} --queue Billing"\n'
                     f'other: "|{refusing_program(gw)} --queue Other"\n')
    gw.write_conf(f'smarthost "sink" {{ host = "127.0.0.1" port = {sink.port} tls = none '
                  f'timeout = 10s }}\n'
                  f'queue {{ run_after_accept = false }}\n'
                  f'alias "broken" {{\n  policy = {policy}\n{alias_extra}}}\n'
                  f'alias "other" {{\n  policy = {policy}\n{alias_extra}}}\n')


def send(gw, rcpt, sender, subject):
    c = gw.session()
    c.greet()
    r = c.mail(sender=sender, rcpts=[rcpt],
               body=f"From: <{sender}>\r\nSubject: {subject}\r\n\r\nhello\r\n".encode())
    c.cmd("QUIT")
    c.close()
    return r


def notices(sink):
    return [m for m in sink.messages if m.rcpts == ["rt-admin@remote.example"]]


def dsns(sink):
    return [m for m in sink.messages if m.sender == "" and
            m.rcpts != ["rt-admin@remote.example"]]


def test_one_notice_for_twenty_failures(gw, sink):
    """20 queued messages, each refused for good: one notice at the notify
    address, with the reason, the aliases line, the command and the header; the
    20 senders get their DSNs (notify_sender = yes); the log says why the other
    19 notices were not sent."""
    configure(gw, sink, '  notify = "rt-admin@remote.example"\n  notify_interval = 1h\n')
    for i in range(20):
        assert send(gw, "broken@example.com", f"c{i}@remote.test", f"msg {i}").code == 250
    assert gw.run("-q").returncode == 0       # the DSNs and the notice go out too
    msgs = sink.wait_messages(21)
    (notice,) = notices(sink)
    assert len(dsns(sink)) == 20 and len(msgs) == 21
    text = notice.data.decode()
    assert notice.sender == ""
    assert "Subject: undersmtpd: alias broken failed: 550 5.1.1" in text
    assert "Reason:     550 5.1.1 user unknown: exit 67 (EX_NOUSER): no such queue: " \
           "Billing" in text
    assert f"Alias:      broken, {gw.aliases}:1" in text
    assert f"Command:    |{gw.base}/refuse --queue Billing" in text
    assert "gets a non-delivery notification as well (notify_sender = yes)" in text
    assert "\nSubject: msg " in text and "Auto-Submitted: auto-generated" in text
    assert gw.log_count("no failure notice for alias broken (5.1.1): one went within "
                        "notify_interval") == 19
    assert queue_ids(gw) == []


def test_notify_sender_no_and_the_next_interval(gw, sink):
    """notify_sender = no: the notice is all, no DSN.  Once notify_interval has
    passed, the next failure is told again, with how many were held back."""
    configure(gw, sink, '  notify = "rt-admin@remote.example"\n  notify_sender = no\n'
                        '  notify_interval = 4s\n')
    for i in range(5):
        assert send(gw, "broken@example.com", f"c{i}@remote.test", f"first {i}").code == 250
    assert gw.run("-q").returncode == 0
    assert len(sink.wait_messages(1)) == 1 and len(notices(sink)) == 1
    assert dsns(sink) == []
    assert gw.log_count("no non-delivery notification: notify_sender = no") == 5
    time.sleep(4.2)
    assert send(gw, "broken@example.com", "late@remote.test", "late").code == 250
    assert gw.run("-q").returncode == 0
    sink.wait_messages(2)
    second = notices(sink)[1].data.decode()
    assert "Before it:  4 notices like this one were not sent" in second
    assert "is not told (notify_sender = no)" in second
    assert dsns(sink) == []


def test_reasons_and_aliases_counted_apart(gw, sink):
    """The interval is per alias and per reason: another alias's failure is told
    at once."""
    configure(gw, sink, '  notify = "rt-admin@remote.example"\n  notify_interval = 1h\n')
    assert send(gw, "broken@example.com", "a@remote.test", "one").code == 250
    assert send(gw, "other@example.com", "b@remote.test", "two").code == 250
    assert gw.run("-q").returncode == 0
    sink.wait_messages(4)
    subjects = sorted(m.data.decode().split("Subject: ")[1].split("\n")[0]
                      for m in notices(sink))
    assert len(subjects) == 2 and "alias broken failed" in subjects[0] and \
        "alias other failed" in subjects[1]


def test_sync_refusal_is_noticed(gw, sink):
    """policy sync: the client gets the program's 550 (its MTA tells the sender),
    and the notify address gets the notice, sent by the queue run the session
    starts."""
    configure(gw, sink, '  notify = "rt-admin@remote.example"\n', policy="sync")
    gw.write_conf(gw.conf.read_text().replace("run_after_accept = false",
                                              "run_after_accept = true"))
    r = send(gw, "broken@example.com", "a@remote.test", "sync one")
    assert r.code == 550 and "no such queue" in r.text
    sink.wait_messages(1)
    (notice,) = notices(sink)
    assert "Subject: sync one" in notice.data.decode()


def test_no_notice_about_a_notice(gw, sink):
    """notify names a local alias whose program refuses too: the notice to it
    fails, and that failure (a message from <>) makes no notice and no DSN."""
    configure(gw, sink, '  notify = "other"\n  notify_interval = 1s\n')
    assert send(gw, "broken@example.com", "a@remote.test", "first").code == 250
    assert gw.run("-q").returncode == 0       # broken fails: a notice to other@
    time.sleep(1.1)
    assert gw.run("-q").returncode == 0       # other refuses the notice: nothing more
    assert gw.log_count("failure notice to <other@mx.example.com>") == 1
    assert gw.log_count(": failure notice to <") == 1
    assert queue_ids(gw) == []
    sink.wait_messages(1)
    assert len(dsns(sink)) == 1 and dsns(sink)[0].rcpts == ["a@remote.test"]
