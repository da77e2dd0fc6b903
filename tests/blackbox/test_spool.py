"""Store-and-forward (SPEC 5, 8, 9; TESTCATALOGUE F, G, I): the durable spool,
the queue runner, the smarthost client and bounces, against a programmable
fake smarthost (aiosmtpd) on loopback."""
import fcntl
import json
import os
import subprocess
import threading
import time

import pytest

from smarthost import Sink, free_port
from conftest import note_exit, tool


@pytest.fixture
def sink():
    s = Sink().start()
    yield s
    s.stop()


def relay_conf(gw, port, extra="", run_after_accept=True):
    gw.write_conf(f'smarthost "sink" {{ host = "127.0.0.1" port = {port} tls = none '
                  f'timeout = 10s }}\n'
                  f'queue {{ retry_min = 1m retry_max = 1h lifetime = 5d '
                  f'run_after_accept = {"true" if run_after_accept else "false"} }}\n' + extra)


def send(gw, rcpts, sender="alice@remote.test", body=b"Subject: hi\r\n\r\nhello\r\n"):
    c = gw.session()
    c.greet()
    r = c.mail(sender=sender, rcpts=rcpts, body=body)
    c.cmd("QUIT")
    c.close()
    return r


def queue_ids(gw):
    return sorted(p.stem for p in (gw.spool / "queue").glob("*.env"))


def flush(gw):
    return gw.run("-q")


def test_spooled_before_250_and_forwarded(gw, sink):
    """SPEC 8: 250 only once envelope and message are in queue/; the background run
    (queue.run_after_accept) forwards it; the sink sees it once, intact."""
    relay_conf(gw, sink.port, run_after_accept=False)
    r = send(gw, ["bob@remote.example"], body=b"Subject: hi\r\n\r\n..dot\r\nline\r\n")
    assert r.code == 250 and "queued" in r.text
    (qid,) = queue_ids(gw)
    env = (gw.spool / "queue" / f"{qid}.env").read_text()
    assert env.startswith("undersmtpd-envelope 1\n") and env.endswith("end\n")
    assert "sender alice@remote.test\n" in env
    assert "rcpt pending 0 bob@remote.example bob@remote.example +\n" in env
    msg = (gw.spool / "queue" / f"{qid}.msg").read_bytes()
    assert msg.startswith(b"Received: from client.test ([127.0.0.1])")
    assert msg.endswith(b"Subject: hi\n\n.dot\nline\n")
    assert oct((gw.spool / "queue" / f"{qid}.msg").stat().st_mode & 0o777) == "0o600"
    f = flush(gw)
    assert f.returncode == 0, f.stdout + f.stderr
    (m,) = sink.wait_messages(1)
    assert m.sender == "alice@remote.test" and m.rcpts == ["bob@remote.example"]
    assert m.data.endswith(b"Subject: hi\r\n\r\n.dot\r\nline\r\n")
    assert b"\r\n" in m.data and b"\n" not in m.data.replace(b"\r\n", b"")
    assert queue_ids(gw) == []
    assert "status=sent" in gw.log_text()


def test_run_after_accept(gw, sink):
    """SPEC 2: outside the daemon a session that spooled starts a background run."""
    relay_conf(gw, sink.port)
    assert send(gw, ["bob@remote.example"]).code == 250
    assert len(sink.wait_messages(1)) == 1
    end = time.time() + 10
    while queue_ids(gw) and time.time() < end:
        time.sleep(0.05)
    assert queue_ids(gw) == []


def test_smarthost_down_then_up(gw):
    """T87: connection refused -> stays queued; -q exits 75; --queue shows the reason;
    once the smarthost is up, -q delivers and exits 0."""
    port = free_port()
    relay_conf(gw, port, run_after_accept=False)
    assert send(gw, ["bob@remote.example"]).code == 250
    f = flush(gw)
    assert f.returncode == 75
    (qid,) = queue_ids(gw)
    listing = gw.run("--queue").stdout
    assert qid in listing and "deferred" in listing and "Connection refused" in listing
    js = [json.loads(l) for l in gw.run("--queue", "--json").stdout.splitlines()]
    assert js[0]["id"] == qid and js[0]["recipients"][0]["state"] == "deferred"
    assert js[0]["recipients"][0]["attempts"] == 1
    s = Sink(port=port).start()
    try:
        f = flush(gw)
        assert f.returncode == 0, f.stdout
        assert len(s.wait_messages(1)) == 1
    finally:
        s.stop()
    assert queue_ids(gw) == []


def test_per_recipient_outcomes_and_dsn(gw, sink):
    """T90/T91: 250 for one, 450 for another (retried alone), 550 for a third ->
    one DSN with the null sender, naming only the failed one."""
    relay_conf(gw, sink.port, run_after_accept=False)
    sink.rcpt_replies = {"later@remote.example": "450 4.2.0 try later",
                         "nobody@remote.example": "550 5.1.1 no such user"}
    r = send(gw, ["ok@remote.example", "later@remote.example", "nobody@remote.example"])
    assert r.code == 250
    assert flush(gw).returncode == 75
    msgs = sink.wait_messages(2)
    delivered = [m for m in msgs if m.sender == "alice@remote.test"]
    dsns = [m for m in msgs if m.sender == ""]
    assert delivered[0].rcpts == ["ok@remote.example"]
    assert len(dsns) == 1 and dsns[0].rcpts == ["alice@remote.test"]
    dsn = dsns[0].data.decode()
    assert "multipart/report; report-type=delivery-status" in dsn
    assert "Final-Recipient: rfc822; nobody@remote.example" in dsn
    assert "Status: 5.1.1" in dsn and "later@remote.example" not in dsn.split("Delivery report")[1]
    assert "Subject: hi" in dsn and "hello" not in dsn      # headers only
    (qid,) = queue_ids(gw)
    env = (gw.spool / "queue" / f"{qid}.env").read_text()
    assert "rcpt deferred 1 later@remote.example" in env
    assert "rcpt delivered 1 ok@remote.example" in env
    sink.rcpt_replies = {}
    assert flush(gw).returncode == 0
    msgs = sink.wait_messages(3)
    assert msgs[2].rcpts == ["later@remote.example"]        # only the deferred one
    assert queue_ids(gw) == []


def test_5xx_after_dot_bounces_once(gw, sink):
    """T92: 5xx after the final dot -> one bounce, no retry."""
    relay_conf(gw, sink.port, run_after_accept=False)
    sink.data_reply = "554 5.6.0 content rejected"
    sink.data_reply_sender = "alice@remote.test"     # the DSN itself goes through
    assert send(gw, ["bob@remote.example"]).code == 250
    assert flush(gw).returncode == 0
    sink.data_reply = None
    msgs = sink.wait_messages(1)
    assert len(msgs) == 1 and msgs[0].sender == "" and b"Status: 5.6.0" in msgs[0].data
    assert flush(gw).returncode == 0
    assert len(sink.messages) == 1 and queue_ids(gw) == []


def test_null_sender_never_bounced(gw, sink):
    """T91/T99: a failure for a message from <> is logged, no DSN."""
    relay_conf(gw, sink.port, run_after_accept=False)
    sink.rcpt_replies = {"bob@remote.example": "550 5.1.1 gone"}
    assert send(gw, ["bob@remote.example"], sender="").code == 250
    assert flush(gw).returncode == 0
    time.sleep(0.3)
    assert sink.messages == [] and queue_ids(gw) == []
    assert "never a bounce of a bounce" in gw.log_text()


class StageServer:
    """A raw smarthost on 127.0.0.1 that answers well at every stage but one:
    at `stage` (greeting, EHLO, MAIL, RCPT, DATA, dot) it sends `reply` (raw
    bytes) and closes.  Serves connections until stopped; `stages` lists the
    stages each connection reached."""

    STAGES = ("greeting", "EHLO", "MAIL", "RCPT", "DATA", "dot")

    def __init__(self, port, stage, reply):
        import socket
        self.stage, self.reply, self.reached = stage, reply, []
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", port))
        self.srv.listen(4)
        self.srv.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while self.running:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                continue
            try:
                conn.settimeout(10)
                self.serve(conn)
            except OSError:
                pass
            finally:
                conn.close()

    def answer(self, conn, stage, good):
        self.reached.append(stage)
        if stage != self.stage:
            conn.sendall(good)
            return True
        conn.sendall(self.reply)
        time.sleep(0.2)
        return False

    def serve(self, conn):
        f = conn.makefile("rb")
        if not self.answer(conn, "greeting", b"220 stage.test ESMTP\r\n"):
            return
        for line in f:
            verb = line[:4].upper()
            if verb == b"EHLO":
                ok = self.answer(conn, "EHLO", b"250-stage.test\r\n250 PIPELINING\r\n")
            elif verb == b"MAIL":
                ok = self.answer(conn, "MAIL", b"250 2.1.0 ok\r\n")
            elif verb == b"RCPT":
                ok = self.answer(conn, "RCPT", b"250 2.1.5 ok\r\n")
            elif verb == b"DATA":
                ok = self.answer(conn, "DATA", b"354 go ahead\r\n")
                while ok:
                    line = f.readline()
                    if line in (b".\r\n", b""):
                        break
                ok = ok and self.answer(conn, "dot", b"250 2.0.0 stored\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                ok = self.answer(conn, verb.decode(errors="replace"), b"250 ok\r\n")
            if not ok:
                return

    def stop(self):
        self.running = False
        self.thread.join(timeout=10)
        self.srv.close()


@pytest.mark.parametrize("stage", StageServer.STAGES)
def test_421_at_any_stage_is_retried_without_bounce(gw, sink, stage):
    """T89: 421 at the greeting, EHLO, MAIL, RCPT, DATA or after the dot ->
    the message stays queued with that reply, no DSN; the next run, with a
    smarthost that works, delivers it once."""
    port = free_port()
    relay_conf(gw, port, run_after_accept=False)
    assert send(gw, ["bob@remote.example"]).code == 250
    (id_,) = queue_ids(gw)
    srv = StageServer(port, stage, b"421 4.3.2 stage.test closing at " +
                      stage.encode() + b"\r\n")
    try:
        f = flush(gw)
    finally:
        srv.stop()
    assert f.returncode == 75, (f.stdout, f.stderr)
    assert stage in srv.reached
    assert queue_ids(gw) == [id_]                         # and no DSN beside it
    assert f"421 4.3.2 stage.test closing at {stage}" in gw.run("--queue").stdout
    relay_conf(gw, sink.port, run_after_accept=False)
    assert flush(gw).returncode == 0
    (m,) = sink.wait_messages(1)
    assert (m.sender, m.rcpts) == ("alice@remote.test", ["bob@remote.example"])
    assert queue_ids(gw) == []


def test_4xx_at_mail_and_dot_retry_without_bounce(gw, sink):
    """T90: 4xx at MAIL or after the dot -> retry, no bounce."""
    relay_conf(gw, sink.port, run_after_accept=False)
    for attr, reply in [("mail_reply", "452 4.3.1 full for now"),
                        ("data_reply", "451 4.3.0 try again")]:
        setattr(sink, attr, reply)
        assert send(gw, ["bob@remote.example"]).code == 250
        assert flush(gw).returncode == 75
        setattr(sink, attr, None)
    assert sink.messages == []
    assert flush(gw).returncode == 0
    assert len(sink.wait_messages(2)) == 2


def test_connection_dropped_after_dot_is_retried(gw, sink):
    """T93: the connection drops after the final dot -> 451, retried; never delivered
    twice by us without a reason, never marked delivered."""
    relay_conf(gw, sink.port, run_after_accept=False)
    sink.drop_after_dot = True
    assert send(gw, ["bob@remote.example"]).code == 250
    assert flush(gw).returncode == 75
    (qid,) = queue_ids(gw)
    assert "lost connection" in gw.run("--queue").stdout
    sink.drop_after_dot = False
    assert flush(gw).returncode == 0
    assert len(sink.wait_messages(1)) == 1


def test_lifetime_expiry_bounces(gw, sink):
    """T99: past queue.lifetime -> one DSN (4.4.7) with the null sender."""
    port = free_port()
    gw.write_conf(f'smarthost "down" {{ host = "127.0.0.1" port = {port} tls = none }}\n'
                  f'smarthost "sink" {{ host = "127.0.0.1" port = {sink.port} tls = none }}\n'
                  'queue { retry_min = 1s retry_max = 1s lifetime = 1s run_after_accept = false }\n')
    # The first smarthost refuses; the second refuses this recipient for now.
    sink.rcpt_replies = {"bob@remote.example": "451 4.4.1 later"}
    assert send(gw, ["bob@remote.example"]).code == 250
    time.sleep(1.2)
    assert flush(gw).returncode == 0
    (dsn,) = sink.wait_messages(1)
    assert dsn.sender == "" and dsn.rcpts == ["alice@remote.test"]
    assert b"Status: 4.4.7" in dsn.data and b"expired" in dsn.data
    assert queue_ids(gw) == []


@pytest.mark.parametrize("stage", StageServer.STAGES)
def test_broken_replies_are_temporary(gw, stage):
    """T96: at every stage, a multi-line reply without its last line (then
    EOF), 10,000 continuation lines, a 100 KB line, mixed codes, a
    non-numeric code, EOF without CRLF -> a temporary failure each: the
    message stays queued, nothing is bounced."""
    port = free_port()
    relay_conf(gw, port, run_after_accept=False)
    assert send(gw, ["bob@remote.example"]).code == 250
    (id_,) = queue_ids(gw)
    code = {"greeting": b"220", "DATA": b"354"}.get(stage, b"250")
    broken = [code + b"-x\r\n",
              (code + b"-x\r\n") * 10000,
              code + b" " + b"x" * 100000 + b"\r\n",
              code + b"-x\r\n" + (b"550" if code != b"550" else b"250") + b" y\r\n",
              b"abc hello\r\n",
              code + b" no crlf"]
    for reply in broken:
        srv = StageServer(port, stage, reply)
        try:
            f = flush(gw)
        finally:
            srv.stop()
        assert stage in srv.reached, (stage, srv.reached)
        assert f.returncode == 75, (stage, reply[:20], f.stdout, f.stderr)
        assert queue_ids(gw) == [id_], (stage, reply[:20])


def test_mixed_pipe_and_smarthost_transaction(gw, sink):
    """T64: SPEC 7: a pipe recipient and a smarthost recipient: the spooled copy is
    committed only if the program accepted."""
    relay_conf(gw, sink.port, run_after_accept=False)
    gw.write_aliases('rt: "|@REC@ --exit 75"\nok: "|@REC@ --exit 0"\n')
    c = gw.session()
    c.greet()
    assert c.mail(rcpts=["rt@example.com", "bob@remote.example"]).code == 451
    assert queue_ids(gw) == []
    r = c.mail(rcpts=["ok@example.com", "bob@remote.example"])
    assert r.code == 250 and "rest queued" in r.text
    c.cmd("QUIT")
    c.close()
    assert len(queue_ids(gw)) == 1
    assert flush(gw).returncode == 0
    (m,) = sink.wait_messages(1)
    assert m.rcpts == ["bob@remote.example"]
    # Forwarded mail carries no Return-Path/Delivered-To of our pipe delivery.
    assert b"Delivered-To" not in m.data and b"Return-Path" not in m.data


def test_address_alias_and_unknown_local_relay(gw, sink):
    """SPEC 5: an alias to an address, and unknown_local = relay, go to the smarthost."""
    relay_conf(gw, sink.port, extra="unknown_local = relay\n", run_after_accept=False)
    gw.write_aliases("boss: boss@elsewhere.test\n")
    assert send(gw, ["boss@example.com", "someone@example.com"]).code == 250
    assert flush(gw).returncode == 0
    (m,) = sink.wait_messages(1)
    assert sorted(m.rcpts) == ["boss@elsewhere.test", "someone@example.com"]


def test_unknown_local_relay_keeps_the_quoting(gw, sink):
    """Issue 15: unknown_local = relay forwards "john smith"@ours as received,
    quotes and all, instead of john smith@ours (which bounced later)."""
    relay_conf(gw, sink.port, extra="unknown_local = relay\n", run_after_accept=False)
    assert send(gw, ['"john smith"@example.com']).code == 250
    assert flush(gw).returncode == 0
    (m,) = sink.wait_messages(1)
    assert m.rcpts == ['"john smith"@example.com']


def test_postmaster_default_is_postmaster_at_hostname(gw, sink):
    """SPEC 3 (issue 15): without a postmaster key or alias, postmaster@ any local
    domain goes to postmaster@hostname via the smarthost, never back to the
    recipient's own (local) domain."""
    relay_conf(gw, sink.port, run_after_accept=False)
    assert send(gw, ["postmaster@example.com"]).code == 250
    assert flush(gw).returncode == 0
    (m,) = sink.wait_messages(1)
    assert m.rcpts == ["postmaster@mx.example.com"]
    r = gw.run("--route", "Postmaster@example.com")
    assert "smarthost <postmaster@mx.example.com>" in r.stdout, r.stdout


def test_operator_commands(gw):
    """SPEC 8: hold, release, requeue, bounce and delete by id (as postsuper)."""
    relay_conf(gw, free_port(), run_after_accept=False)
    for _ in range(2):
        assert send(gw, ["bob@remote.example"]).code == 250
    a, b = queue_ids(gw)
    assert gw.run("--hold", a).returncode == 0
    assert "held" in gw.run("--queue").stdout
    f = flush(gw)
    assert "delivered 0" in f.stdout
    assert gw.run("--release", a).returncode == 0
    assert gw.run("--requeue", b).returncode == 0
    assert gw.run("--delete", b).returncode == 0
    assert queue_ids(gw) == [a]
    r = gw.run("--delete", "NOSUCHID")
    assert r.returncode == 1 and "no such message" in r.stderr
    s = Sink().start()
    try:
        relay_conf(gw, s.port, run_after_accept=False)
        assert gw.run("--bounce", a).returncode == 0
        assert flush(gw).returncode == 0
        (dsn,) = s.wait_messages(1)
        assert dsn.sender == "" and b"by the administrator" in dsn.data
    finally:
        s.stop()
    assert queue_ids(gw) == []


def test_flush_named_messages(gw):
    """Issue 19 part 5: `-q ID...` forwards only the named messages, now (backoff
    ignored), as leafmail delivers the files it is given; `sendmail -qIsubstr` the
    ids holding substr (sendmail(8)).  Exit as -q: 0 when none of them is left,
    75 when one is deferred; 1 for a name that is no message."""
    port = free_port()
    relay_conf(gw, port, run_after_accept=False)
    for _ in range(3):
        assert send(gw, ["bob@remote.example"]).code == 250
    a, b, c = queue_ids(gw)
    assert gw.run("-q", a).returncode == 75                  # smarthost down
    s = Sink(port=port).start()
    try:
        r = gw.run("-q", a)                                  # backoff ignored
        assert r.returncode == 0, r.stdout + r.stderr
        assert "delivered 1" in r.stdout
        assert len(s.wait_messages(1)) == 1
        assert queue_ids(gw) == [b, c]                       # the others wait
        from conftest import WRAP, UNDERSMTPD
        if os.geteuid() == 0:     # sendmail -C: root and the default conf's user
            sm = subprocess.run([*WRAP, UNDERSMTPD, "--sendmail", "-C", str(gw.conf),
                                 "-qI", c[-6:]], capture_output=True, text=True,
                                timeout=60)
        else:
            sm = gw.run("-q", c)
        assert sm.returncode == 0, sm.stdout + sm.stderr
        assert queue_ids(gw) == [b]
        bad = gw.run("-q", b, "NOSUCHID")
        assert bad.returncode == 1 and "NOSUCHID: no such message" in bad.stderr
        assert queue_ids(gw) == []                           # b went all the same
        assert gw.run("-q", "../queue/" + b).returncode == 1
        assert len(s.wait_messages(3)) == 3
    finally:
        s.stop()


def test_damaged_envelope_quarantined(gw, sink):
    """T61: a truncated or garbage envelope is moved to bad/ with its reason; the
    other messages still go out."""
    relay_conf(gw, sink.port, run_after_accept=False)
    for _ in range(3):
        assert send(gw, ["bob@remote.example"]).code == 250
    a, b, c = queue_ids(gw)
    env_a = gw.spool / "queue" / f"{a}.env"
    env_a.write_text(env_a.read_text()[:-4])          # no end record
    (gw.spool / "queue" / f"{b}.env").write_bytes(b"\x00garbage\n")
    f = flush(gw)
    assert f.returncode == 0 and "damaged 2" in f.stdout
    assert len(sink.wait_messages(1)) == 1
    bad = gw.spool / "bad"
    assert (bad / f"{a}.why").read_text().startswith("no end record")
    assert (bad / f"{a}.msg").exists() and (bad / f"{b}.env").exists()
    assert queue_ids(gw) == []


def test_one_queue_run_at_a_time(gw, sink):
    """T62, the run lock: while a run is forwarding (the smarthost holds its
    reply to the first message's data), a second -q exits 75 at once saying
    so and forwards nothing; the first run then delivers each message once."""
    relay_conf(gw, sink.port, run_after_accept=False)
    for i in range(10):
        assert send(gw, [f"u{i}@remote.example"]).code == 250
    sink.hold_data = threading.Event()
    first = subprocess.Popen(gw.argv("-q"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert sink.data_held.wait(30), "the first run never reached the smarthost"
        second = subprocess.Popen(gw.argv("-q"), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        try:
            out, err = second.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            second.kill()
            raise AssertionError("the second run did not stop: it is running beside the first")
        note_exit("second -q", second.returncode)
        assert second.returncode == 75, (second.returncode, err)
        assert "another queue run is in progress" in err
        assert sink.messages == []
    finally:
        sink.hold_data.set()
    first.communicate(timeout=60)
    note_exit("first -q", first.returncode)
    assert first.returncode == 0
    rcpts = sorted(r for m in sink.wait_messages(10) for r in m.rcpts)
    assert rcpts == sorted(f"u{i}@remote.example" for i in range(10))
    assert queue_ids(gw) == []


def test_message_lock_keeps_runners_off(gw, sink):
    """T62, the per-message lock: a message whose lock another process holds
    (as a second runner or an operator command would) is left alone by a run,
    which forwards the others and exits 75; once the lock is free the next run
    delivers it, once."""
    relay_conf(gw, sink.port, run_after_accept=False)
    assert send(gw, ["locked@remote.example"]).code == 250
    (locked,) = queue_ids(gw)
    for i in range(4):
        assert send(gw, [f"u{i}@remote.example"]).code == 250
    with open(gw.spool / "queue" / f"{locked}.msg", "rb") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        r = flush(gw)
        assert r.returncode == 75, (r.returncode, r.stderr)
        rcpts = sorted(x for m in sink.wait_messages(4) for x in m.rcpts)
        assert rcpts == [f"u{i}@remote.example" for i in range(4)]
        assert queue_ids(gw) == [locked]
    assert flush(gw).returncode == 0
    rcpts = sorted(x for m in sink.wait_messages(5) for x in m.rcpts)
    assert rcpts == ["locked@remote.example"] + [f"u{i}@remote.example" for i in range(4)]
    assert queue_ids(gw) == []


def test_operator_waits_for_the_delivery(gw, sink):
    """T62, the per-message lock against the operator: --delete of a message a
    run is forwarding right now is refused with a reason; the message is
    delivered once and leaves the queue."""
    relay_conf(gw, sink.port, run_after_accept=False)
    assert send(gw, ["busy@remote.example"]).code == 250
    (busy,) = queue_ids(gw)
    sink.hold_data = threading.Event()
    run = subprocess.Popen(gw.argv("-q"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert sink.data_held.wait(30), "the run never reached the smarthost"
        r = gw.run("--delete", busy)
        assert r.returncode != 0
        assert f"{busy} is being delivered right now" in r.stderr
        assert queue_ids(gw) == [busy]
    finally:
        sink.hold_data.set()
    run.communicate(timeout=60)
    note_exit("-q", run.returncode)
    assert run.returncode == 0
    assert [m.rcpts for m in sink.wait_messages(1)] == [["busy@remote.example"]]
    assert queue_ids(gw) == []


def test_fsync_rename_order_before_250(gw, sink):
    """T57: traced acceptance: fsync(message) and fsync(envelope), both still in
    tmp/ -> link the message into queue/ -> link the envelope -> fsync(queue dir)
    -> only then the 250 is written.  No name in queue/ before its data is durable."""
    if tool("strace") is None:
        pytest.skip("strace not installed")
    relay_conf(gw, sink.port, run_after_accept=False)
    from conftest import Client, base_env
    # LeakSanitizer cannot run under ptrace; the rest of ASan/UBSan still does.
    env = base_env()
    if "ASAN_OPTIONS" in env:
        env["ASAN_OPTIONS"] += ":detect_leaks=0"
    events = []
    for i in range(5):
        trace = gw.base / f"trace{i}"
        argv = ["strace", "-f", "-qq", "-e", "trace=fsync,link,rename,write,openat",
                "-e", "signal=none", "-o", str(trace)] + gw.argv()
        c = Client(argv, env=env)
        c.greet()
        assert c.mail(rcpts=[f"b{i}@remote.example"]).code == 250
        c.cmd("QUIT")
        c.close()
        fds = {}
        for line in trace.read_text().splitlines():
            parts = line.split(None, 1)
            if len(parts) < 2:
                continue
            call = parts[1]
            if call.startswith("openat(") and "= " in call:
                fd = call.rsplit("= ", 1)[1].split()[0]
                fds[fd] = call.split('"')[1]
            elif call.startswith("fsync("):
                fd = call[6:].split(")")[0]
                events.append(("fsync", fds.get(fd, "?")))
            elif call.startswith(("link(", "rename(")):
                events.append((call.split("(")[0], call.split('"')[3]))
            elif call.startswith("write(") and '"250 2.0.0 Ok: queued' in call:
                events.append(("reply250", ""))
    replies = [i for i, e in enumerate(events) if e[0] == "reply250"]
    assert len(replies) == 5
    start = 0
    for r in replies:
        seq = events[start:r]
        kinds = [k for k, _ in seq]
        msg_sync = max(i for i, (k, p) in enumerate(seq) if k == "fsync" and p.endswith(".msg"))
        msg_link = max(i for i, (k, p) in enumerate(seq) if k == "link" and p.endswith(".msg"))
        env_sync = max(i for i, (k, p) in enumerate(seq) if k == "fsync" and ".env" in p)
        env_link = max(i for i, (k, p) in enumerate(seq) if k == "link" and p.endswith(".env"))
        dir_sync = max(i for i, (k, p) in enumerate(seq) if k == "fsync" and p.endswith("/queue"))
        assert "/tmp/" in seq[msg_sync][1] and "/tmp/" in seq[env_sync][1], seq
        assert max(msg_sync, env_sync) < msg_link < env_link < dir_sync, seq
        start = r + 1


def raw_server(port, script, connections=1):
    """An SMTP server on loopback for a few connections, each following script(conn)."""
    import socket
    import threading
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    srv.settimeout(15)

    def serve():
        for _ in range(connections):
            try:
                conn, _ = srv.accept()
            except OSError:
                break
            try:
                script(conn)
            except OSError:
                pass
            conn.close()
        srv.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


def test_slow_greeting_times_out(gw):
    """T88: a late greeting -> the stage timeout fires, the message is requeued."""
    port = free_port()
    gw.write_conf(f'smarthost "slow" {{ host = "127.0.0.1" port = {port} tls = none '
                  f'timeout = 1s }}\nqueue {{ run_after_accept = false }}\n')
    assert send(gw, ["bob@remote.example"]).code == 250
    t = raw_server(port, lambda conn: time.sleep(4))
    start = time.time()
    f = flush(gw)
    assert f.returncode == 75 and time.time() - start < 4
    assert "timed out" in gw.run("--queue").stdout
    t.join(timeout=10)


def test_dropped_mid_data_retried_from_start(gw, sink):
    """T94: the connection drops in the middle of the message -> retried from the
    start later; the spool copy is intact and arrives whole."""
    port = free_port()
    gw.write_conf(f'smarthost "s" {{ host = "127.0.0.1" port = {port} tls = none '
                  f'timeout = 5s }}\nqueue {{ run_after_accept = false }}\n')
    body = b"Subject: big\r\n\r\n" + b"".join(b"line %d\r\n" % i for i in range(20000))
    assert send(gw, ["bob@remote.example"], body=body).code == 250

    def script(conn):
        f = conn.makefile("rwb")
        for reply in [b"220 hi", b"250 ok", b"250 ok", b"250 ok", b"354 go"]:
            f.write(reply + b"\r\n")
            f.flush()
            if reply != b"354 go":
                f.readline()
        f.read(5000)                       # part of the message, then hang up
    t = raw_server(port, script)
    assert flush(gw).returncode == 75
    t.join(timeout=10)
    relay_conf(gw, sink.port, run_after_accept=False)
    assert flush(gw).returncode == 0
    (m,) = sink.wait_messages(1)
    assert m.data.endswith(b"line 19999\r\n")


def test_size_limit_of_the_smarthost_bounces(gw):
    """T98: the smarthost's SIZE is below the message size -> not sent; 5.3.4 DSN."""
    port = free_port()
    gw.write_conf(f'smarthost "s" {{ host = "127.0.0.1" port = {port} tls = none '
                  f'timeout = 5s }}\nqueue {{ run_after_accept = false }}\n')
    big = b"Subject: x\r\n\r\n" + (b"y" * 500 + b"\r\n") * 6
    assert send(gw, ["bob@remote.example"], body=big).code == 250
    lines = []

    def script(conn):
        f = conn.makefile("rwb")
        f.write(b"220 hi\r\n")
        f.flush()
        while True:
            line = f.readline()
            if not line:
                return
            lines.append(line)
            if line.startswith(b"EHLO"):
                f.write(b"250-small\r\n250 SIZE 2500\r\n")
            elif line.startswith(b"MAIL FROM:<>"):
                f.write(b"250 ok\r\n")       # the DSN is small enough
            elif line.startswith(b"DATA"):
                f.write(b"354 go\r\n")
                f.flush()
                while f.readline() != b".\r\n":
                    pass
                f.write(b"250 stored\r\n")
            elif line.startswith(b"QUIT"):
                f.write(b"221 bye\r\n")
                f.flush()
                return
            else:
                f.write(b"250 ok\r\n")
            f.flush()
    t = raw_server(port, script, connections=2)
    assert flush(gw).returncode == 0
    t.join(timeout=20)
    assert not any(l.startswith(b"MAIL FROM:<alice") for l in lines)
    assert any(l.startswith(b"MAIL FROM:<> SIZE=") for l in lines)
    assert "5.3.4" in gw.log_text()


def test_one_connection_for_many_messages(gw, sink):
    """SPEC 9: one connection is reused for many messages (queue.concurrency 1:
    one message at a time)."""
    relay_conf(gw, sink.port, run_after_accept=False)
    gw.conf.write_text(gw.conf.read_text().replace(
        "run_after_accept = false", "run_after_accept = false concurrency = 1"))
    for i in range(5):
        assert send(gw, [f"u{i}@remote.example"]).code == 250
    sink.connections_seen.clear()
    assert flush(gw).returncode == 0
    assert len(sink.wait_messages(5)) == 5
    assert len(sink.connections_seen) == 1


@pytest.mark.parametrize("concurrency", [1, 3])
def test_queue_concurrency(gw, sink, concurrency):
    """queue.concurrency: a run forwards that many messages at a time, each
    worker on its own connection, kept from one message to the next; every
    message arrives once.  The smarthost holds each reply to the data until
    as many transactions as allowed wait at once (and a moment more, in which
    no further one may start)."""
    relay_conf(gw, sink.port, run_after_accept=False)
    gw.conf.write_text(gw.conf.read_text().replace(
        "run_after_accept = false", f"run_after_accept = false concurrency = {concurrency}"))
    for i in range(9):
        assert send(gw, [f"u{i}@remote.example"]).code == 250
    sink.connections_seen.clear()
    sink.hold_data = threading.Event()
    run = subprocess.Popen(gw.argv("-q"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        end = time.time() + 30
        while sink.held_now < concurrency and time.time() < end:
            time.sleep(0.02)
        time.sleep(0.5)
        assert sink.held_most == concurrency, (sink.held_most, concurrency)
    finally:
        sink.hold_data.set()
    run.communicate(timeout=60)
    note_exit("-q", run.returncode)
    assert run.returncode == 0
    rcpts = sorted(r for m in sink.wait_messages(9) for r in m.rcpts)
    assert rcpts == sorted(f"u{i}@remote.example" for i in range(9))
    assert len(sink.connections_seen) == concurrency
    assert queue_ids(gw) == []


def test_smtputf8_to_smarthost_without_it_bounces(gw, sink):
    """SPEC 9: a message needing SMTPUTF8 for a smarthost without it bounces 5.6.7."""
    relay_conf(gw, sink.port, run_after_accept=False)
    c = gw.session()
    c.greet()
    assert c.cmd("MAIL FROM:<alice@remote.test> SMTPUTF8").code == 250
    c.send("RCPT TO:<j\u00f6rg@remote.example>\r\n".encode())
    assert c.reply().code == 250
    assert c.cmd("DATA").code == 354
    c.send(b"Subject: x\r\n\r\ny\r\n.\r\n")
    assert c.reply().code == 250
    c.cmd("QUIT")
    c.close()
    assert flush(gw).returncode == 0
    (dsn,) = sink.wait_messages(1)
    assert dsn.sender == "" and b"Status: 5.6.7" in dsn.data


def strace_session(gw, inject, trace):
    """A session under strace, the calls of `inject` failing as it says;
    every process's calls of `trace` go to gw.base/trace.PID."""
    from conftest import Client, base_env
    env = base_env()
    if "ASAN_OPTIONS" in env:
        env["ASAN_OPTIONS"] += ":detect_leaks=0"   # LeakSanitizer cannot run under ptrace
    argv = ["strace", "-f", "-ff", "-qq", "-y", "-o", str(gw.base / "trace"),
            "-e", f"trace={trace}", "-e", "signal=none"]
    if inject:
        argv += ["-e", f"inject={inject}"]
    return Client(argv + gw.argv(), env=env)


def traced_calls(gw, call):
    """(pid, lines) for each traced process that made `call`."""
    out = []
    for path in sorted(gw.base.glob("trace.*")):
        lines = [line for line in path.read_text().splitlines()
                 if line.startswith(call + "(")]
        if lines:
            out.append((int(path.suffix[1:]), lines))
        path.unlink()
    return out


def attached_session(gw, inject):
    """A greeted session with strace attached to the session process alone
    (not the root launcher beside it, whose calls would count too), tracing
    close, failing them as inject says; the trace goes to gw.base/trace."""
    from conftest import Client, base_env
    from test_limits import session_pid
    env = base_env()
    if "ASAN_OPTIONS" in env:
        env["ASAN_OPTIONS"] += ":detect_leaks=0"   # LeakSanitizer cannot run under ptrace
    c = Client(gw.argv(), env=env)
    c.greet()
    pid = session_pid(c)
    argv = ["strace", "-qq", "-y", "-o", str(gw.base / "trace"), "-e", "trace=close",
            "-e", "signal=none", "-p", str(pid)]
    if inject:
        argv += ["-e", f"inject={inject}"]
    tracer = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    end = time.time() + 10
    while time.time() < end:
        with open(f"/proc/{pid}/status") as f:
            if any(line.startswith("TracerPid:") and line.split()[1] != "0" for line in f):
                break
        time.sleep(0.01)
    else:
        tracer.kill()
        raise AssertionError("strace did not attach: " + tracer.stderr.read())
    return c, tracer


def nth_close_of_envelope(gw):
    """Which of the session's closes (1-based, from the EHLO on) is that of the
    envelope's file (tmp/ID.env), in an undisturbed transaction: strace's when=
    for it (the same every time)."""
    c, tracer = attached_session(gw, None)
    assert c.mail(rcpts=["bob@remote.example"]).code == 250
    c.cmd("QUIT")
    c.close()
    tracer.wait(timeout=30)
    lines = [line for line in (gw.base / "trace").read_text().splitlines()
             if line.startswith("close(")]
    for i, line in enumerate(lines, 1):
        fd = line.split(")")[0]
        if "/tmp/" in fd and fd.endswith(".env>"):
            return i
    raise AssertionError(f"no close of tmp/*.env traced: {lines}")


@pytest.mark.parametrize("case,code", [
    ("fsync:error=EIO", 451),               # T60: the message's fsync
    ("fsync:error=ENOSPC", 452),            # T67
    ("link:error=EIO", 451),                # the message into queue/
    ("link:error=EDQUOT:when=2", 452),      # T67: the envelope into queue/
    ("close-env:error=ENOSPC", 452),        # T67: close of the envelope's file
])
def test_injected_commit_failures(gw, sink, case, code):
    """T60/T67: fsync returning EIO or ENOSPC, link failing for the message or
    its envelope, close of the envelope failing (strace fault injection)
    -> 451/452, nothing in the queue, nothing left in tmp/, never a 250; and
    a failed fsync is never retried (the data it did not write may be gone
    from the page cache: retrying would 'succeed' on nothing)."""
    if tool("strace") is None:
        pytest.skip("strace not installed")
    relay_conf(gw, sink.port, run_after_accept=False)
    call = case.split(":")[0]
    tracer = None
    if call == "close-env" and "valgrind" in os.environ.get("UNDERSMTPD_WRAP", ""):
        # strace fakes the failure without closing: --track-fds would see the
        # descriptor open at exit, which a real failing close never leaves.
        pytest.skip("SKIP: sanitized: an injected close leaves its fd open under valgrind")
    if call == "close-env":
        # Only that close fails: its place among the session's closes, found
        # in an undisturbed session first; strace attached to the session
        # alone, as a root launcher beside it makes closes of its own.
        n = nth_close_of_envelope(gw)
        for id_ in queue_ids(gw):
            assert gw.run("--delete", id_).returncode == 0
        sink.messages.clear()
        c, tracer = attached_session(gw, case.replace("close-env", "close") + f":when={n}")
    else:
        c = strace_session(gw, case, "fsync,link,close")
        c.greet()
    r = c.mail(rcpts=["bob@remote.example"])
    assert r.code == code, r
    assert c.cmd("NOOP").code == 250          # the session goes on
    c.cmd("QUIT")
    c.close()
    if tracer is not None:
        tracer.wait(timeout=30)
        assert "ENOSPC (No space left on device) (INJECTED)" in (gw.base / "trace").read_text()
    assert queue_ids(gw) == []
    assert list((gw.spool / "tmp").glob("*.msg")) == []
    assert list((gw.spool / "queue").iterdir()) == []
    if call == "fsync":
        (calls,) = [lines for _pid, lines in traced_calls(gw, "fsync")]
        assert len(calls) == 1, calls          # failed once, never tried again


def test_runner_envelope_rewrite_fails(gw, sink):
    """T67, the queue runner: the rename that replaces an envelope with its
    new per-recipient states fails (EDQUOT): the old envelope stays whole,
    nothing half-written is left in queue/, and the next run delivers what
    is still due; nothing is lost."""
    if tool("strace") is None:
        pytest.skip("strace not installed")
    relay_conf(gw, sink.port, run_after_accept=False)
    assert send(gw, ["ok@remote.example", "later@remote.example"]).code == 250
    (id_,) = queue_ids(gw)
    sink.rcpt_replies["later@remote.example"] = "451 4.3.0 not now"
    from conftest import base_env
    env = base_env()
    if "ASAN_OPTIONS" in env:
        env["ASAN_OPTIONS"] += ":detect_leaks=0"
    r = subprocess.run(["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=rename",
                        "-e", "inject=rename:error=EDQUOT"] + gw.argv("-q"),
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 75, (r.returncode, r.stderr)
    assert f"{id_}: update envelope: Disk quota exceeded" in gw.log_text()
    assert sorted(p.name for p in (gw.spool / "queue").iterdir()) == [f"{id_}.env", f"{id_}.msg"]
    del sink.rcpt_replies["later@remote.example"]
    assert flush(gw).returncode == 0
    got = [r for m in sink.wait_messages(2) for r in m.rcpts]
    assert sorted(set(got)) == ["later@remote.example", "ok@remote.example"], got
    assert queue_ids(gw) == []


def test_parallel_receivers_unique_ids(gw, sink):
    """T63: many receivers at once -> unique spool names, nothing overwritten."""
    import threading
    relay_conf(gw, sink.port, run_after_accept=False)
    codes = []

    def one(i):
        c = gw.session()
        c.greet()
        codes.append(c.mail(rcpts=[f"p{i}@remote.example"],
                            body=b"Subject: %d\r\n\r\nbody %d\r\n" % (i, i)).code)
        c.cmd("QUIT")
        c.close()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [250] * 50
    assert len(queue_ids(gw)) == 50
    assert flush(gw).returncode == 0
    msgs = sink.wait_messages(50)
    for m in msgs:
        i = int(m.rcpts[0][1:].split("@")[0])
        assert m.data.endswith(b"body %d\r\n" % i)



def test_spooled_address_that_now_expands(gw, sink):
    """A spooled local address that an alias now expands (added after the message
    was accepted) goes to the alias's addresses, not to the old one."""
    relay_conf(gw, sink.port, extra="unknown_local = relay\n", run_after_accept=False)
    assert send(gw, ["newalias@example.com"]).code == 250
    gw.write_aliases("newalias: one@remote.example, two@remote.example\n")
    assert flush(gw).returncode == 0
    (m,) = sink.wait_messages(1)
    assert sorted(m.rcpts) == ["one@remote.example", "two@remote.example"]
    assert queue_ids(gw) == []
