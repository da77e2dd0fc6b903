"""Delivery policies per alias (SPEC 7.1): queue and sync-then-queue run the
program from the queue with retries, backoff, lifetime and bounces."""
import time

from conftest import NOBODY, needs_root
from smarthost import Sink
from test_spool import queue_ids, relay_conf


def flaky(gw, name="flaky"):
    """A program that fails with 75 on its first run and accepts afterwards."""
    marker = gw.rec / f"{name}.seen"
    return (f'"|/bin/sh -c \'cat > /dev/null; if [ -e {marker} ]; then exit 0; fi; '
            f'touch {marker}; exit 75\'"')


def session_send(gw, rcpt, body=b"Subject: p\r\n\r\nbody\r\n"):
    c = gw.session()
    c.greet()
    r = c.mail(rcpts=[rcpt], body=body)
    c.cmd("QUIT")
    c.close()
    return r


def wait_empty(gw, timeout=15):
    end = time.time() + timeout
    while queue_ids(gw) and time.time() < end:
        time.sleep(0.05)
    return queue_ids(gw)


def test_policy_queue_runs_from_the_queue(gw):
    """queue: 250 once spooled; the program runs from the queue (as pipe.user,
    through the launcher), with the same environment and input as in a session."""
    gw.write_conf('alias "rt" { policy = queue }\n')
    gw.write_aliases('rt: "|@REC@ --exit 0"\n')
    r = session_send(gw, "rt+7@example.com")
    assert r.code == 250 and "queued" in r.text
    assert wait_empty(gw) == []
    rec = gw.one_record()
    assert rec.ids.startswith(f"uid={NOBODY.pw_uid} ")
    assert rec.env["RECIPIENT"] == "rt+7@example.com" and rec.env["EXTENSION"] == "7"
    assert rec.env["CLIENT_HELO"] == "client.test"
    assert rec.stdin.startswith(b"Return-Path: <sender@remote.test>\n"
                                b"Delivered-To: rt+7@example.com\nReceived: ")
    assert rec.body() == b"body\n"


def test_policy_queue_retries_with_backoff(gw):
    """queue: a temporary failure is retried (same DELIVERY_ID), then delivered."""
    gw.write_conf('alias "flaky" { policy = queue }\n'
                  'queue { retry_min = 1h run_after_accept = false }\n')
    gw.write_aliases(f"flaky: {flaky(gw)}\nrec: \"|@REC@\"\n")
    assert session_send(gw, "flaky@example.com").code == 250
    f = gw.run("-q")
    assert f.returncode == 75
    (qid,) = queue_ids(gw)
    env = (gw.spool / "queue" / f"{qid}.env").read_text()
    assert "rcpt deferred 1 flaky@example.com" in env and "451+204.3.0" in env
    # Not due yet without -q's force: the background-style run leaves it.
    assert gw.run("-q").returncode == 0          # -q ignores backoff: delivered now
    assert queue_ids(gw) == []
    assert "status=sent" in gw.log_text()


def test_policy_queue_permanent_failure_bounces(gw):
    """queue: a permanent failure -> one DSN to the sender through the smarthost."""
    sink = Sink().start()
    try:
        relay_conf(gw, sink.port, extra='alias "x" { policy = queue }\n',
                   run_after_accept=False)
        gw.write_aliases('x: "|@REC@ --print 5.1.1\\x20no\\x20such\\x20ticket --exit 67"\n'
                         .replace("\\x20", " "))
        assert session_send(gw, "x@example.com").code == 250
        assert gw.run("-q").returncode == 0
        (dsn,) = sink.wait_messages(1)
        assert dsn.sender == "" and dsn.rcpts == ["sender@remote.test"]
        assert b"Final-Recipient: rfc822; x@example.com" in dsn.data
        assert b"Status: 5.1.1" in dsn.data
        assert queue_ids(gw) == []
    finally:
        sink.stop()


def test_sync_then_queue(gw):
    """sync-then-queue: success -> 250 at once; temporary failure -> 250 (spooled) and
    retried from the queue; permanent failure -> the 5xx at once, nothing spooled."""
    gw.write_conf('pipe { policy = sync-then-queue }\n'
                  'queue { run_after_accept = false }\n')
    gw.write_aliases(f'ok: "|@REC@ --exit 0"\nflaky: {flaky(gw)}\n'
                     'bad: "|@REC@ --exit 67"\n')
    r = session_send(gw, "ok@example.com")
    assert r.code == 250 and "delivered to command" in r.text
    assert queue_ids(gw) == []
    r = session_send(gw, "flaky@example.com")
    assert r.code == 250 and "queued" in r.text
    assert len(queue_ids(gw)) == 1
    r = session_send(gw, "bad@example.com")
    assert r.code == 550
    assert len(queue_ids(gw)) == 1
    assert gw.run("-q").returncode == 0
    assert queue_ids(gw) == []


def test_queue_policy_allows_two_programs_in_one_transaction(gw):
    """SPEC 7: the 452 for a second program does not apply to queued aliases."""
    gw.write_conf('alias "a" { policy = queue }\nalias "b" { policy = queue }\n'
                  'queue { run_after_accept = false }\n')
    gw.write_aliases('a: "|@REC@ --exit 0"\nb: "|@REC@ --exit 0"\n')
    c = gw.session()
    c.greet()
    assert c.mail(rcpts=["a@example.com", "b@example.com"]).code == 250
    c.cmd("QUIT")
    c.close()
    assert gw.run("-q").returncode == 0
    assert sorted(r.env["RECIPIENT"] for r in gw.records()) == ["a@example.com",
                                                                "b@example.com"]


LOOP = b"Delivered-To: rt@example.com\r\nSubject: auto-reply\r\n\r\nagain\r\n"


@needs_root
def test_delivered_to_loop_refused_for_queued_programs(gw):
    """T111: Issue 15 (SPEC 7): the Delivered-To loop check holds for policy queue too:
    at acceptance (554 5.4.6, nothing spooled) and in the queue runner for mail
    that reached the queue another way (sendmail by root, as RT's own does),
    where the program never runs and the sender gets a bounce."""
    sink = Sink().start()
    try:
        relay_conf(gw, sink.port, extra='alias "rt" { policy = queue }\n',
                   run_after_accept=False)
        gw.write_aliases('rt: "|@REC@"\n')
        r = session_send(gw, "rt@example.com", body=LOOP)
        assert r.code == 554 and r.lines[0].startswith("5.4.6"), r
        assert queue_ids(gw) == []
        link = gw.base / "sendmail"
        link.symlink_to(gw.argv()[0])
        import subprocess
        sm = subprocess.run([str(link), "-C", str(gw.conf), "-f", "alice@remote.example",
                             "rt@example.com"], input=LOOP.replace(b"\r\n", b"\n"),
                            capture_output=True, timeout=60)
        assert sm.returncode == 0, sm.stderr
        assert len(queue_ids(gw)) == 1
        gw.run("-q")
        assert gw.records() == []
        assert "mail loop: already delivered to <rt@example.com>" in gw.log_text()
        (dsn,) = sink.wait_messages(1)
        assert dsn.rcpts == ["alice@remote.example"] and b"5.4.6" in dsn.data
    finally:
        sink.stop()
