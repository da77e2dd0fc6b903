"""The circuit breaker of a pipe alias (issue 20 part 1), with the real
rt-mailgate against an RT endpoint that is down, then up: after `breaker`
temporary failures in a row no program runs (counted) until `breaker_wait` has
passed; then one delivery is the probe; its success closes the breaker, its
failure opens it again for twice the wait.  No message is lost or delivered
twice; the state is shared by every session and shown by --status."""
import json
import os
import shutil
import time

from test_rt_mailgate import RT_MAILGATE, FakeRT
from test_spool import queue_ids


def session(gw, rcpt, subject):
    c = gw.session()
    c.greet()
    r = c.mail(rcpts=[rcpt], body=f"From: user@remote.test\r\nSubject: {subject}\r\n\r\n"
                                  f"Help!\r\n".encode())
    c.cmd("QUIT")
    c.close()
    return r


def rcpt_reply(gw, rcpt):
    """The reply to RCPT alone (the transaction then given up)."""
    c = gw.session()
    c.greet()
    c.cmd("MAIL FROM:<user@remote.test>")
    r = c.cmd(f"RCPT TO:<{rcpt}>")
    c.cmd("QUIT")
    c.close()
    return r


def status(gw):
    return json.loads(gw.run("--status", "--json").stdout)


def breaker_of(gw, alias):
    (b,) = [b for b in status(gw)["breakers"] if b["alias"] == alias]
    return b


def program_runs(gw, alias):
    pipes = {p["alias"]: p["runs"] for p in status(gw)["pipes"]}
    return sum(pipes.get(alias, {}).values())


def configure(gw, policy="sync"):
    assert RT_MAILGATE.exists(), "run tests/setup-rt-mailgate.sh"
    mailgate = gw.base / "rt-mailgate"
    shutil.copy2(RT_MAILGATE, mailgate)
    os.chmod(mailgate, 0o755)
    rt = FakeRT()
    url = rt.url
    rt.stop()                                   # RT is down
    gw.write_aliases(f'support: "|{mailgate} --queue support --action correspond '
                     f'--url {url}/ --timeout 5"\n')
    gw.write_conf(f'alias "support" {{\n  policy = {policy}\n  breaker = 3\n'
                  f'  breaker_wait = 2s\n  breaker_wait_max = 1m\n}}\n'
                  f'queue {{ retry_min = 1s run_after_accept = false }}\n')
    return url


def fake_rt_at(url):
    """RT back up, on the very port the aliases name."""
    return FakeRT(port=int(url.rsplit(":", 1)[1]))


def test_breaker_opens_probes_and_closes(gw):
    url = configure(gw)
    # RT down: three deliveries run rt-mailgate and get its 75 -> 451.
    for i in range(3):
        assert session(gw, "support@example.com", f"down {i}").code == 451
    assert program_runs(gw, "support") == 3
    b = breaker_of(gw, "support")
    assert b["state"] == "open" and b["failures"] == 3 and b["opens"] == 1
    assert "breaker: alias support open after 3 temporary failures" in gw.log_text()
    # Open: RCPT is refused at once, no program starts (counted as held only at DATA).
    r = rcpt_reply(gw, "support@example.com")
    assert r.code == 451 and "circuit breaker" in r.text
    assert program_runs(gw, "support") == 3
    text = gw.run("--status").stdout
    assert "breaker support: OPEN, no program until " in text
    # The wait is over but RT is still down: the probe fails, open again for 4 s.
    time.sleep(2.2)
    assert session(gw, "support@example.com", "probe 1").code == 451
    assert program_runs(gw, "support") == 4
    b = breaker_of(gw, "support")
    assert b["state"] == "open" and b["opens"] == 2
    assert b["wait"] == 4 and b["open_until"] > time.time()      # twice the wait
    assert "open again: the probe failed too" in gw.log_text()
    # RT comes back; after the doubled wait the probe delivers and closes it.
    rt = fake_rt_at(url)
    try:
        assert rcpt_reply(gw, "support@example.com").code == 451   # still open
        time.sleep(max(0, b["open_until"] - time.time()) + 0.2)
        assert session(gw, "support@example.com", "probe 2").code == 250
        assert breaker_of(gw, "support")["state"] == "closed"
        assert "breaker: alias support closed" in gw.log_text()
        assert session(gw, "support@example.com", "after").code == 250
        subjects = [f["message"].split(b"Subject: ")[1].split(b"\n")[0]
                    for _, f in rt.posts]
        assert subjects == [b"probe 2", b"after"]      # each once, none lost
    finally:
        rt.stop()
    assert program_runs(gw, "support") == 6


def test_queued_deliveries_wait_while_open(gw):
    """sync-then-queue: while the breaker is open the message is spooled (250)
    and the queue run does not start the program; after recovery each queued
    message reaches RT exactly once."""
    url = configure(gw, policy="sync-then-queue")
    for i in range(3):
        assert session(gw, "support@example.com", f"queued {i}").code == 250
    assert len(queue_ids(gw)) == 3
    assert breaker_of(gw, "support")["state"] == "open"
    runs = program_runs(gw, "support")
    assert session(gw, "support@example.com", "while open").code == 250   # spooled
    assert gw.run("-q").returncode == 75
    assert program_runs(gw, "support") == runs            # nothing ran: held
    assert breaker_of(gw, "support")["held"] >= 4
    rt = fake_rt_at(url)
    try:
        time.sleep(2.2)
        # The first queued message is the probe; once closed the others follow.
        for _ in range(3):
            gw.run("-q")
            if not queue_ids(gw):
                break
            time.sleep(1.1)
        assert queue_ids(gw) == []
        subjects = sorted(f["message"].split(b"Subject: ")[1].split(b"\n")[0]
                          for _, f in rt.posts)
        assert subjects == [b"queued 0", b"queued 1", b"queued 2", b"while open"]
    finally:
        rt.stop()
    assert breaker_of(gw, "support")["state"] == "closed"


def test_breaker_off_and_shared_with_other_aliases(gw):
    """breaker = 0: the program runs every time.  One alias's breaker does not
    stop another's program."""
    url = configure(gw)
    gw.write_aliases(gw.aliases.read_text() +
                     f'other: "|{gw.base}/rt-mailgate --queue other --url {url}/"\n')
    gw.write_conf('alias "support" {\n  breaker = 0\n}\n'
                  'alias "other" {\n  breaker = 2\n  breaker_wait = 1m\n}\n')
    for i in range(5):
        assert session(gw, "support@example.com", f"s{i}").code == 451
    assert program_runs(gw, "support") == 5
    for i in range(2):
        assert session(gw, "other@example.com", f"o{i}").code == 451
    assert rcpt_reply(gw, "other@example.com").code == 451
    assert session(gw, "support@example.com", "s5").code == 451
    assert program_runs(gw, "support") == 6 and program_runs(gw, "other") == 2
