"""TESTCATALOGUE F: kill -9 at random moments loses nothing.

T58: the receiver is killed at a random moment around the end of DATA, over
CRASH_TRIALS trials (default 100): every message that was answered 250 is
delivered afterwards, complete; nothing half-written is ever delivered.
T59: the whole queue run (launcher and runner) is killed at random moments
while it forwards and rewrites envelopes: every recipient's copy arrives at
least once, intact, nothing is quarantined, and the spool empties."""
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
    """T58: TRIALS kills of the receiver around the end of DATA (a third in
    mid-data); every message answered 250 is delivered, whole, and the kills
    must have landed on both sides of the commit."""
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


def group_alive(pgid):
    """Processes still in process group pgid (zombies excluded)."""
    alive = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(d))
    return alive


def kill_run(p):
    """SIGKILL to the whole queue run at once: as root `-q` is a launcher whose
    child, the runner, does the forwarding; killing the first alone left the
    runner delivering.  The run is its own process group (start_new_session)."""
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    deadline = time.monotonic() + 10
    while group_alive(p.pid):
        assert time.monotonic() < deadline, f"run {p.pid}: {group_alive(p.pid)} survived"
        time.sleep(0.01)


def test_kill_runner_at_random(gw):
    """T59: TRIALS kills of the whole queue run (launcher and runner) while it
    forwards.  Each message has two recipients, the second deferred by the
    smarthost the first time it is seen, so a message takes two runs and each
    first run rewrites the envelope with its per-recipient states: kills land
    in transactions and in those rewrites.  The queue is refilled whenever it
    empties.  Afterwards every recipient of every message has arrived, whole,
    at least once; nothing was quarantined; the spool is empty."""
    sink = Sink().start()
    try:
        relay_conf(gw, sink.port, run_after_accept=False)
        n = 0
        rng = random.Random(59)
        working = 0                 # trials in which the run forwarded something
        for _ in range(TRIALS):
            if not queue_ids(gw):
                for i in range(n, n + 30):
                    sink.defer_first.add(f"later{i}@remote.example")
                    c = gw.session()
                    c.greet()
                    assert c.mail(rcpts=[f"r{i}@remote.example", f"later{i}@remote.example"],
                                  body=body_for(i)).code == 250
                    c.cmd("QUIT")
                    c.close()
                n += 30
            before = sink.rcpts_accepted
            p = subprocess.Popen(gw.argv("-q"), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
            time.sleep(rng.random() * 0.040)
            kill_run(p)
            working += sink.rcpts_accepted > before
        time.sleep(0.5)             # the sink finishes with the dead connections
        with sink.lock:
            delivered = sum(len(m.rcpts) for m in sink.messages)
            interrupted = sink.rcpts_accepted - delivered
        # Let clean runs finish what is left (the per-message locks died with it).
        for _ in range(3):
            if gw.run("-q").returncode == 0:
                break
        want = {f"r{i}@remote.example" for i in range(n)} | \
               {f"later{i}@remote.example" for i in range(n)}
        got = {}
        end = time.time() + 60
        while time.time() < end:
            with sink.lock:
                msgs = list(sink.messages)
            if want <= {r for m in msgs for r in m.rcpts}:
                break
            time.sleep(0.05)
        for m in msgs:
            trial = int(m.data.split(b"X-Trial: ")[1].split(b"\r\n")[0])
            assert m.data.endswith(body_for(trial))
            for r in m.rcpts:
                assert r in (f"r{trial}@remote.example", f"later{trial}@remote.example"), r
                got[r] = got.get(r, 0) + 1
        assert want <= set(got), sorted(want - set(got))[:10]
        assert queue_ids(gw) == []
        assert list((gw.spool / "bad").glob("*")) == []
        # The kills must have found the run at work, and some in mid-transaction.
        assert working > TRIALS // 4, (working, TRIALS)
        assert interrupted > 0, "no kill landed between a RCPT and the end of its data"
        print(f"\n{TRIALS} kills of the run, {working} while it forwarded, {interrupted} "
              f"in mid-transaction; {n} messages, every recipient delivered, "
              f"{sum(got.values()) - len(want)} duplicate deliveries (allowed)")
    finally:
        sink.stop()
