"""TESTCATALOGUE F: kill -9 at random moments loses nothing.

T58: the receiver is killed at a random moment around the end of DATA, over
CRASH_TRIALS trials (default 100): every message that was answered 250 is
delivered afterwards, complete; nothing half-written is ever delivered.
T59: the queue runner is killed at random moments while it forwards: every
message arrives at least once, intact, and the spool empties."""
import os
import random
import signal
import subprocess
import time

from smarthost import Sink
from test_spool import queue_ids, relay_conf

TRIALS = int(os.environ.get("CRASH_TRIALS", "100"))


def kill_tree(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(x) for x in f.read().split()]
    except OSError:
        kids = []
    for p in [pid] + kids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def body_for(i):
    lines = b"".join(b"line %d of message %d\r\n" % (k, i) for k in range(200))
    return b"Subject: crash %d\r\nX-Trial: %d\r\n\r\n" % (i, i) + lines


def time_to_commit(gw, trials, acked, sent):
    """How long this machine (and build: ASan is slower) takes from the end of
    DATA to the 250, the median of len(trials) undisturbed messages; the kills
    then land from 0 to twice that after the final dot, on both sides of the
    commit whatever the machine's speed."""
    took = []
    for i in trials:
        c = gw.session()
        c.greet()
        assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
        assert c.cmd(f"RCPT TO:<t{i}@remote.example>").code == 250
        assert c.cmd("DATA").code == 354
        start = time.monotonic()
        c.send(body_for(i) + b".\r\n")
        assert c.reply().code == 250
        took.append(time.monotonic() - start)
        sent.add(i)
        acked.add(i)
        c.cmd("QUIT")
        c.close()
    return sorted(took)[len(took) // 2]


def test_kill_receiver_at_random(gw):
    sink = Sink().start()
    try:
        relay_conf(gw, sink.port, run_after_accept=False)
        rng = random.Random(58)
        acked, sent = set(), set()
        commit = time_to_commit(gw, [TRIALS, TRIALS + 1, TRIALS + 2], acked, sent)
        for i in range(TRIALS):
            c = gw.session()
            try:
                c.greet()
                assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
                assert c.cmd(f"RCPT TO:<t{i}@remote.example>").code == 250
                assert c.cmd("DATA").code == 354
                body = body_for(i)
                cut = rng.randrange(len(body)) if rng.random() < 0.3 else len(body)
                if cut < len(body):
                    c.send(body[:cut])          # killed in the middle of DATA
                    time.sleep(rng.random() * 0.002)
                else:
                    c.send(body + b".\r\n")     # killed around commit and reply
                    sent.add(i)
                    time.sleep(rng.random() * 2 * commit)
                kill_tree(c.proc.pid)
                try:
                    r = c.reply()
                    if r.code == 250:
                        acked.add(i)
                except (EOFError, OSError):
                    pass
            finally:
                c.sock.close()
                c.proc.wait(timeout=30)
        assert gw.run("-q").returncode == 0
        got = {}
        for m in sink.wait_messages(len(acked)):
            trial = int(m.data.split(b"X-Trial: ")[1].split(b"\r\n")[0])
            got.setdefault(trial, []).append(m)
        # Every acknowledged message arrived; every arrival is whole.
        assert acked <= set(got), sorted(acked - set(got))
        for trial, msgs in got.items():
            assert trial in sent
            for m in msgs:
                assert m.data.endswith(body_for(trial)), trial
        assert queue_ids(gw) == []
        # The kills must have landed on both sides of the commit to show anything.
        killed_acked = len([i for i in acked if i < TRIALS])
        killed_sent = len([i for i in sent if i < TRIALS])
        assert 0 < killed_acked < killed_sent, (killed_acked, killed_sent)
        print(f"\n{TRIALS} kills: {killed_sent} whole messages sent, {killed_acked} "
              f"acknowledged (commit took {commit * 1000:.1f} ms); {len(got)} delivered "
              f"with the 3 undisturbed ones")
    finally:
        sink.stop()


def test_kill_runner_at_random(gw):
    """T59: TRIALS kills of the queue runner while it forwards; the queue is
    refilled whenever it empties, so every trial kills a runner at work."""
    sink = Sink().start()
    try:
        relay_conf(gw, sink.port, run_after_accept=False)
        n = 0
        rng = random.Random(59)
        for _ in range(TRIALS):
            if not queue_ids(gw):
                for i in range(n, n + 30):
                    c = gw.session()
                    c.greet()
                    assert c.mail(rcpts=[f"r{i}@remote.example"],
                                  body=body_for(i)).code == 250
                    c.cmd("QUIT")
                    c.close()
                n += 30
            p = subprocess.Popen(gw.argv("-q"), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            time.sleep(rng.random() * 0.012)
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=30)
        # Let a clean run finish what is left (the per-message locks died with it).
        for _ in range(3):
            if gw.run("-q").returncode == 0:
                break
        got = {}
        for m in sink.wait_messages(n, timeout=60):
            trial = int(m.data.split(b"X-Trial: ")[1].split(b"\r\n")[0])
            assert m.data.endswith(body_for(trial))
            got.setdefault(trial, 0)
            got[trial] += 1
        assert set(got) == set(range(n)), sorted(set(range(n)) - set(got))
        assert queue_ids(gw) == []
        print(f"\n{TRIALS} runner kills over {n} messages: every one delivered, "
              f"{sum(got.values()) - n} duplicate deliveries (allowed)")
    finally:
        sink.stop()
