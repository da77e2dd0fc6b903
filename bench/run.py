#!/usr/bin/python3
"""make bench: undersmtpd against a real Postfix, on this machine, in one run.

Both get the same two jobs, driven by Postfix's own load generator smtp-source
(4 KB messages, one message per connection as smtp-source sends them):

  pipe path   mail to an alias `bench: "|counter FILE"`; the program appends
              one line per message, so completed deliveries are counted, not 250s
  relay path  mail to a remote domain, spooled durably and forwarded to
              Postfix's smtp-sink as the smarthost; counted at the sink

at 1, 10 and 50 concurrent sessions, alternating undersmtpd and Postfix, with
BENCH_REPS repetitions (medians reported).  Then memory: PSS per idle session
with 50 sessions open, and 1,000 idle sessions while one more client is
served.  And the machine's own limits for the same work (bench/limits.c).

A run fails (exit 1) when any count differs from the number of messages sent:
nothing lost, nothing duplicated.  Results: bench/results/DATE.md, .json, and
latest.md.  Run as root (Postfix's master, smtp-sink -u, the pipe user).
"""
import argparse
import datetime
import json
import os
import platform
import pwd
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "blackbox"))
from postfix_instance import SERVICES, private_main_cf  # noqa: E402
from smarthost import free_port  # noqa: E402

BUILD = Path(os.environ.get("BUILD_DIR", ROOT / "build"))
UNDERSMTPD = BUILD / "undersmtpd"
COUNTER = BUILD / "bench-counter"
LIMITS = BUILD / "bench-limits"
MSG_SIZE = 4096


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def wait_port(port, proc=None, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"server on port {port} died")
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def tree_pids(top):
    """top and every descendant, from /proc."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [top]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def pss_kb(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


class Sink:
    """Postfix's smtp-sink as the smarthost; -c prints a running message count."""

    def __init__(self, base):
        self.port = free_port()
        self.out = open(base / f"sink-{self.port}.out", "w+")
        self.proc = subprocess.Popen(["smtp-sink", "-u", "nobody", "-c",
                                      f"127.0.0.1:{self.port}", "1000"],
                                     stdout=self.out, stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc)
        time.sleep(0.2)
        self.base_count = self.count()

    def count(self):
        self.out.flush()
        with open(self.out.name) as f:
            found = re.findall(r"mesg=(\d+)", f.read())
        return int(found[-1]) if found else 0

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.out.close()


class Undersmtpd:
    name = "undersmtpd"

    def __init__(self, base, sink_port, max_connections=100):
        self.base = base / "undersmtpd"
        self.base.mkdir(mode=0o755)
        self.port = free_port()
        self.countfile = self.base / "count"
        self.countfile.touch(mode=0o666)
        self.countfile.chmod(0o666)
        (self.base / "aliases").write_text(f'bench: "|{COUNTER} {self.countfile}"\n')
        self.conf = self.base / "undersmtpd.conf"
        self.conf.write_text(f"""\
hostname = "undersmtpd-bench.test"
local_domains = {{ "bench.test" }}
aliases = "{self.base}/aliases"
spool_dir = "{self.base}/spool"
log_file = "{self.base}/undersmtpd.log"
listen = {{ "127.0.0.1:{self.port}" }}
max_connections = {max_connections}
smarthost "sink" {{ host = "127.0.0.1" port = {sink_port} tls = none }}
""")
        self.proc = subprocess.Popen([str(UNDERSMTPD), "-C", str(self.conf), "-d"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_port(self.port, self.proc)
        time.sleep(0.3)

    def pipe_count(self):
        return len(self.countfile.read_bytes().splitlines())

    def pids(self):
        return tree_pids(self.proc.pid)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Postfix:
    """A private Postfix (Debian's package): its own configuration, queue and
    port; the alias is a pipe run by local(8) as nobody, the relayhost is the
    sink.  Postfix's defaults otherwise, as an administrator would have them."""
    name = "Postfix"

    def __init__(self, base, sink_port, process_limit=100):
        self.base = base / "postfix"
        self.port = free_port()
        conf = self.base / "conf"
        for d in ("conf", "queue", "data"):
            (self.base / d).mkdir(parents=True)
        os.chmod(self.base, 0o755)
        os.chown(self.base / "data", pwd.getpwnam("postfix").pw_uid, -1)
        self.countfile = self.base / "count"
        self.countfile.touch()
        self.countfile.chmod(0o666)
        (conf / "aliases").write_text(f"bench: |\"{COUNTER} {self.countfile}\"\n")
        (conf / "main.cf").write_text(private_main_cf(self.base, "postfix-bench.test",
                                                      "bench.test") + f"""\
relayhost = [127.0.0.1]:{sink_port}
alias_maps = hash:{conf}/aliases
alias_database = hash:{conf}/aliases
local_recipient_maps = $alias_maps
biff = no
default_process_limit = {process_limit}
""")

        (conf / "master.cf").write_text(
            f"127.0.0.1:{self.port} inet n - n - - smtpd\n" + SERVICES)
        subprocess.run(["postalias", "-c", str(conf), f"{conf}/aliases"], check=True)
        r = subprocess.run(["postfix", "-c", str(conf), "start"], capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("postfix start: " + r.stdout + r.stderr)
        self.conf = conf
        wait_port(self.port)
        time.sleep(0.3)

    def pipe_count(self):
        return len(self.countfile.read_bytes().splitlines())

    def pids(self):
        pidfile = self.base / "queue" / "pid" / "master.pid"
        return tree_pids(int(pidfile.read_text().split()[0]))

    def stop(self):
        subprocess.run(["postfix", "-c", str(self.conf), "stop"], capture_output=True,
                       timeout=60)
        time.sleep(0.5)


def load(mta, rcpt, n, sessions):
    """smtp-source: n messages over `sessions` parallel sessions to port."""
    r = subprocess.run(["smtp-source", "-s", str(sessions), "-m", str(n), "-l",
                        str(MSG_SIZE), "-f", "bench@client.test", "-t", rcpt, "-M",
                        "client.test", f"127.0.0.1:{mta.port}"], timeout=900,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return r.stderr.strip()[-300:] if r.returncode != 0 else ""


def timed_run(mta, path, sink, n, sessions):
    """Messages per second until all n are delivered (program ran / arrived)."""
    if path == "pipe":
        count, rcpt = mta.pipe_count, "bench@bench.test"
    else:
        count, rcpt = sink.count, "someone@remote.example"
    before = count()
    t0 = time.monotonic()
    error = load(mta, rcpt, n, sessions)
    accepted = time.monotonic() - t0
    end = t0 + (60 if error else 600)
    while count() - before < n and time.monotonic() < end:
        time.sleep(0.005)
    done = time.monotonic() - t0
    time.sleep(1.0)                     # late duplicates would show now
    got = count() - before
    return {"rate": n / done, "accept_rate": n / accepted, "delivered": got,
            "expected": n, "error": error}


def idle_sessions(port, k):
    socks = []
    for _ in range(k):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        socks.append(s)
    for s in socks:
        f = s.makefile("rb")
        if not f.readline().startswith(b"220"):
            raise RuntimeError("no greeting")
        s.sendall(b"EHLO idle.test\r\n")
        while True:
            line = f.readline()
            if not line.startswith(b"250"):
                raise RuntimeError(f"EHLO: {line!r}")
            if line[3:4] == b" ":
                break
    return socks


def one_transaction(port):
    """A whole SMTP transaction to the pipe alias; seconds it took."""
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    f = s.makefile("rb")

    def expect(code, cmd=None):
        if cmd:
            s.sendall(cmd)
        while True:
            line = f.readline()
            if not line.startswith(code):
                raise RuntimeError(f"expected {code!r}, got {line!r}")
            if line[3:4] == b" ":
                return
    expect(b"220")
    expect(b"250", b"EHLO busy.test\r\n")
    expect(b"250", b"MAIL FROM:<a@client.test>\r\n")
    expect(b"250", b"RCPT TO:<bench@bench.test>\r\n")
    expect(b"354", b"DATA\r\n")
    expect(b"250", b"Subject: one more\r\n\r\n" + b"x" * 76 + b"\r\n.\r\n")
    expect(b"221", b"QUIT\r\n")
    s.close()
    return time.monotonic() - t0


def memory(make, base, sink, sessions):
    """PSS per idle session: (all processes with k sessions - without) / k."""
    mta = make(base, sink.port)
    try:
        time.sleep(1.0)
        before = pss_kb(mta.pids())
        socks = idle_sessions(mta.port, sessions)
        time.sleep(1.0)
        after = pss_kb(mta.pids())
        for s in socks:
            s.close()
        return (after - before) / sessions
    finally:
        mta.stop()


def thousand_idle(make, base, sink):
    """1,000 idle sessions open; can one more client get its mail delivered?"""
    mta = make(base, sink.port, 1100)
    try:
        socks = idle_sessions(mta.port, 1000)
        time.sleep(1.0)
        total = pss_kb(mta.pids())
        before = mta.pipe_count()
        latency = one_transaction(mta.port)
        end = time.time() + 60
        while mta.pipe_count() == before and time.time() < end:
            time.sleep(0.01)
        delivered = mta.pipe_count() - before
        for s in socks:
            s.close()
        return {"latency_ms": latency * 1000, "delivered": delivered, "pss_mb": total / 1024}
    finally:
        mta.stop()


def physical_limits(base, n):
    spool = base / "fsync"
    spool.mkdir()
    count = base / "limits-count"

    def run(*args):
        r = subprocess.run([str(LIMITS), *map(str, args)], capture_output=True, text=True,
                           check=True, timeout=600)
        return float(r.stdout.strip())
    return {"fork_exec": run("fork", n, COUNTER, count),
            "fork_exec_2": run("fork", n, COUNTER, count, 2),
            "fsync_1": run("fsync", n, spool, 1),
            "fsync_10": run("fsync", n, spool, 10),
            "commit_1": run("commit", n, spool, 1),
            "commit_10": run("commit", n, spool, 10)}


def fresh(base, name):
    d = base / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(mode=0o755)
    return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=int(os.environ.get("BENCH_MESSAGES", 2000)))
    ap.add_argument("--reps", type=int, default=int(os.environ.get("BENCH_REPS", 3)))
    ap.add_argument("--sessions", default=os.environ.get("BENCH_SESSIONS", "1,10,50"))
    ap.add_argument("--smoke", action="store_true",
                    help="counts only: few messages, one repetition, no 1,000-session row")
    args = ap.parse_args()
    if args.smoke:
        args.messages, args.reps, args.sessions = 200, 1, "10"
    sessions = [int(x) for x in args.sessions.split(",")]
    if os.geteuid() != 0:
        sys.exit("bench: run as root (Postfix, smtp-sink -u nobody, the pipe user)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))

    base = Path(tempfile.mkdtemp(prefix="undersmtpd-bench-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    # The pipe program runs as nobody: a checkout in /root (0700) is not
    # reachable by that user, so both MTAs run a copy that is.
    global COUNTER
    counter = base / "bench-counter"
    shutil.copy2(COUNTER, counter)
    counter.chmod(0o755)
    COUNTER = counter
    sink = Sink(base)
    results = {"rows": [], "failures": []}
    mtas = {}
    try:
        for cls in (Undersmtpd, Postfix):
            mtas[cls.name] = cls(fresh(base, "run-" + cls.name), sink.port)
        for path in ("pipe", "relay"):
            for s in sessions:
                row = {"path": path, "sessions": s, "undersmtpd": [], "Postfix": []}
                for rep in range(args.reps):
                    for name, mta in mtas.items():
                        r = timed_run(mta, path, sink, args.messages, s)
                        log(f"{path:5} s={s:2} rep={rep} {name:10} {r['rate']:8.1f} msg/s "
                            f"(accepted {r['accept_rate']:.1f}/s) delivered "
                            f"{r['delivered']}/{r['expected']}")
                        if r["delivered"] != r["expected"] or r["error"]:
                            results["failures"].append(f"{name} {path} s={s}: delivered "
                                                       f"{r['delivered']} of {r['expected']}"
                                                       f" {r['error']}")
                        row[name].append(r["rate"])
                results["rows"].append(row)
    finally:
        for mta in mtas.values():
            mta.stop()
    try:
        results["pss_kb"] = {cls.name: memory(lambda b, p, c=cls: c(fresh(b, "mem-" + c.name),
                                                                     p), base, sink, 50)
                             for cls in (Undersmtpd, Postfix)}
        log("PSS per idle session (KB):", results["pss_kb"])
        if not args.smoke:
            results["idle1000"] = {cls.name: thousand_idle(
                lambda b, p, lim, c=cls: c(fresh(b, "idle-" + c.name), p, lim), base, sink)
                for cls in (Undersmtpd, Postfix)}
            log("1,000 idle sessions:", results["idle1000"])
            for name, r in results["idle1000"].items():
                if r["delivered"] != 1:
                    results["failures"].append(f"{name}: the client beside 1,000 idle "
                                               f"sessions got {r['delivered']} deliveries")
        results["limits"] = physical_limits(base, min(args.messages, 2000))
        log("limits:", results["limits"])
    finally:
        sink.stop()
        shutil.rmtree(base, ignore_errors=True)
    report(results, args)
    if results["failures"]:
        log("bench: FAILED:", *results["failures"], sep="\n  ")
        sys.exit(1)


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    pf = subprocess.run(["postconf", "-d", "-h", "mail_version"], capture_output=True,
                        text=True).stdout.strip()
    return (f"{platform.node()}: {os.cpu_count()} x {cpu}, Linux {platform.release()}, "
            f"Postfix {pf}, spool on {subprocess.run(['findmnt', '-no', 'FSTYPE', '-T', '/var/tmp'], capture_output=True, text=True).stdout.strip()}")


def report(results, args):
    med = statistics.median
    lines = [f"# undersmtpd vs Postfix — {datetime.datetime.now():%Y-%m-%d %H:%M}", "",
             f"Machine: {machine()}.", "",
             f"{args.messages} messages of {MSG_SIZE} bytes per run, one per connection "
             f"(smtp-source), medians of {args.reps} alternating runs; a rate counts "
             f"messages delivered (program ran / arrived at smtp-sink), not 250s.", "",
             "| path | sessions | undersmtpd msg/s | Postfix msg/s | ratio |",
             "|---|---:|---:|---:|---:|"]
    for row in results["rows"]:
        u, p = med(row["undersmtpd"]), med(row["Postfix"])
        lines.append(f"| {row['path']} | {row['sessions']} | {u:.0f} | {p:.0f} | "
                     f"**{u / p:.2f}×** |")
    pss = results.get("pss_kb", {})
    if pss:
        u, p = pss["undersmtpd"], pss["Postfix"]
        lines += ["", "| memory | undersmtpd | Postfix | ratio |", "|---|---:|---:|---:|",
                  f"| PSS per idle session (50 open) | {u:.0f} KB | {p:.0f} KB | "
                  f"**{u / p:.2f}×** |"]
    idle = results.get("idle1000")
    if idle:
        u, p = idle["undersmtpd"], idle["Postfix"]
        lines.append(f"| 1,000 idle sessions: total PSS | {u['pss_mb']:.0f} MB | "
                     f"{p['pss_mb']:.0f} MB | {u['pss_mb'] / p['pss_mb']:.2f}× |")
        lines.append(f"| 1,000 idle sessions: one more client's transaction | "
                     f"{u['latency_ms']:.0f} ms | {p['latency_ms']:.0f} ms | |")
    lim = results.get("limits")
    if lim:
        lines += ["", "Limits of this machine, same run:", "",
                  f"- fork + exec + wait of the pipe program with 4 KB on stdin: "
                  f"{lim['fork_exec']:.0f}/s with one process, "
                  f"{lim['fork_exec_2']:.0f}/s with two",
                  f"- create + write 4 KB + fsync + rename + fsync dir: "
                  f"{lim['fsync_1']:.0f}/s with one writer, {lim['fsync_10']:.0f}/s with 10"]
        if "commit_1" in lim:
            lines.append(f"- the spool's commit alone (SPEC 8: message and envelope "
                         f"fsync'd, both linked, directory fsync'd): "
                         f"{lim['commit_1']:.0f}/s with one writer, "
                         f"{lim['commit_10']:.0f}/s with 10")
        for row in results["rows"]:
            if row["sessions"] != 10:
                continue
            u = med(row["undersmtpd"])
            if row["path"] == "pipe":
                lines.append(f"- pipe path at 10 sessions: {u:.0f}/s = "
                             f"{100 * u / lim['fork_exec_2']:.0f}% of the two-process "
                             f"fork+exec+wait rate")
            else:
                lines.append(f"- relay path at 10 sessions: {u:.0f}/s = "
                             f"{100 * u / lim['fsync_10']:.0f}% of the durable-write "
                             f"rate with 10 writers"
                             + (f", {100 * u / lim['commit_10']:.0f}% of the commit "
                                f"rate with 10" if "commit_10" in lim else ""))
    text = "\n".join(lines) + "\n"
    print(text)
    if args.smoke:
        return
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    stamp = f"{datetime.datetime.now():%Y-%m-%d-%H%M}"
    (out / f"{stamp}.md").write_text(text)
    (out / f"{stamp}.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "latest.md").write_text(text)
    log(f"bench: results in bench/results/{stamp}.md")


if __name__ == "__main__":
    main()
