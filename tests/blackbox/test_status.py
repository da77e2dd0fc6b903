"""--status and the Prometheus endpoint (issue 19 part 1): after mail that is
delivered, deferred and bounced, through programs and the smarthost, the
figures of --status, of --status --json and of the metrics endpoint agree with
the log line for line; promtool accepts the endpoint's output; the numbers move
while mail flows; the daemon's state is told."""
import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from smarthost import Sink, free_port
from test_daemon import Daemon
from test_spool import send

PROMTOOL = Path(__file__).resolve().parents[1] / ".prom" / "usr" / "bin" / "promtool"


def scrape(port, path="/metrics"):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), head.decode(), body.decode()


def metric(body, name, **labels):
    """The value of one sample; 0 when absent."""
    want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
                   if labels else "")
    for line in body.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return 0.0


def program(gw, name, status):
    p = gw.base / name
    p.write_text(f"#!/bin/sh\ncat >/dev/null\necho '{name} says {status}'\nexit {status}\n")
    p.chmod(0o755)
    return p


def wait_for(cond, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def setup(gw):
    sink = Sink().start()
    sink.rcpt_replies["gone@remote.example"] = "550 5.1.1 no such user here"
    sink.rcpt_replies["later@remote.example"] = "451 4.3.0 try later"
    port, mport = free_port(), free_port()
    gw.write_aliases(f'ok: "|@REC@"\n'
                     f'temp: "|{program(gw, "temp", 75)}"\n'
                     f'perm: "|{program(gw, "perm", 67)}"\n')
    gw.write_conf(f'listen = {{ "127.0.0.1:{port}" }}\n'
                  f'metrics_listen = "127.0.0.1:{mport}"\n'
                  f'smarthost "sink" {{ host = "127.0.0.1" port = {sink.port} tls = none '
                  f'timeout = 10s }}\n'
                  f'queue {{ retry_min = 10m retry_max = 1h lifetime = 5d }}\n')
    d = Daemon(gw, port)
    yield gw, sink, d, port, mport
    d.stop()
    sink.stop()


def session_send(port, rcpts, body=b"Subject: x\r\n\r\nhello\r\n"):
    from test_daemon import connect
    c = connect(port)
    c.reply()
    c.cmd("EHLO client.test")
    r = c.cmd("MAIL FROM:<alice@remote.test>")
    codes = [c.cmd(f"RCPT TO:<{r_}>").code for r_ in rcpts]
    if 250 in codes:
        c.cmd("DATA")
        c.send(body.replace(b"\n.", b"\n..") + b".\r\n")
        final = c.reply()
    else:
        c.cmd("RSET")
        final = None
    c.cmd("QUIT")
    return codes, final


def log_counts(gw):
    text = gw.log_text()
    return {
        "sent": len(re.findall(r" to=<[^>]*>, .*status=sent ", text)),
        "deferred": len(re.findall(r" to=<[^>]*>, .*status=deferred ", text)),
        "bounced": len(re.findall(r" to=<[^>]*>, .*status=bounced ", text)),
        "expired": len(re.findall(r" to=<[^>]*>, .*status=expired ", text)),
        "received": text.count(" (queue active)"),
        "rejected": text.count(": reject: "),
        "notices": text.count(": sender non-delivery notification: "),
    }


def test_status_and_metrics_agree_with_the_log(setup):
    gw, sink, d, port, mport = setup
    code, head, before = scrape(mport)
    assert code == 200 and "text/plain; version=0.0.4" in head
    assert metric(before, "undersmtpd_daemon_up") == 1
    assert metric(before, "undersmtpd_pipe_runs_total", alias="ok", result="ok") == 0

    # Mail flows: the numbers move between two scrapes.
    assert session_send(port, ["ok@example.com"])[1].code == 250
    _, _, after = scrape(mport)
    assert metric(after, "undersmtpd_pipe_runs_total", alias="ok", result="ok") == 1
    assert metric(after, "undersmtpd_deliveries_total", status="sent") == 1

    assert session_send(port, ["ok@example.com"])[1].code == 250
    assert session_send(port, ["temp@example.com"])[1].code == 451
    assert session_send(port, ["perm@example.com"])[1].code == 550
    assert session_send(port, ["nosuch@example.com"])[0] == [550]        # a reject
    assert session_send(port, ["bob@remote.example", "gone@remote.example",
                               "later@remote.example"])[1].code == 250
    # The queue run: bob sent, gone bounced (its DSN to alice sent), later deferred.
    assert wait_for(lambda: log_counts(gw)["notices"] == 1 and
                    "status=sent" in gw.log_text().split("non-delivery notification")[-1])
    assert wait_for(lambda: len(sink.messages) == 2)
    time.sleep(0.5)

    log = log_counts(gw)
    # sent: ok twice, bob, the DSN; deferred: temp, later; bounced: perm, gone.
    assert log == {"sent": 4, "deferred": 2, "bounced": 2, "expired": 0, "received": 5,
                   "rejected": 1, "notices": 1}, gw.log_text()

    js = json.loads(gw.run("--status", "--json").stdout)
    assert js["daemon"]["running"] is True and js["daemon"]["pid"] > 0
    assert js["deliveries"] == {k: log[k] for k in ("sent", "deferred", "bounced",
                                                     "expired")}
    assert (js["received"], js["rejected"], js["notices"]) == (5, 1, 1)
    assert js["queue"]["deferred"] == 1 and js["queue"]["active"] == 0  # later@
    pipes = {p["alias"]: p for p in js["pipes"]}
    assert pipes["ok"]["runs"] == {"ok": 2, "tempfail": 0, "permfail": 0}
    assert pipes["temp"]["runs"] == {"ok": 0, "tempfail": 1, "permfail": 0}
    assert pipes["perm"]["runs"] == {"ok": 0, "tempfail": 0, "permfail": 1}
    assert pipes["perm"]["last_fail_reply"].startswith("550 5.1.1") and \
        "perm says 67" in pipes["perm"]["last_fail_reply"]
    assert pipes["ok"]["last_ok"] > 0 and pipes["ok"]["last_fail"] == 0
    (host,) = js["smarthosts"]
    assert host["name"] == "sink"
    assert (host["sent"], host["deferred"], host["bounced"]) == (2, 1, 1)
    assert host["connections"] >= 1 and host["connect_failures"] == 0
    assert host["last_peer"].endswith(f":{sink.port}")

    code, _, body = scrape(mport)
    for status in ("sent", "deferred", "bounced", "expired"):
        assert metric(body, "undersmtpd_deliveries_total", status=status) == log[status]
    assert metric(body, "undersmtpd_messages_received_total") == 5
    assert metric(body, "undersmtpd_rejects_total") == 1
    assert metric(body, "undersmtpd_notices_total") == 1
    assert metric(body, "undersmtpd_pipe_runs_total", alias="temp", result="tempfail") == 1
    assert metric(body, "undersmtpd_pipe_run_seconds_count", alias="ok") == 2
    assert metric(body, "undersmtpd_smarthost_recipients_total", smarthost="sink",
                  status="bounced") == 1
    assert metric(body, "undersmtpd_queue_messages", state="deferred") == 1
    assert metric(body, "undersmtpd_queue_oldest_message_age_seconds") >= 0

    assert PROMTOOL.exists(), "run tests/setup-promtool.sh (tools/install-deps.sh does)"
    check = subprocess.run([str(PROMTOOL), "check", "metrics"], input=body,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr

    text = gw.run("--status").stdout
    assert re.search(r"^daemon: +running, pid \d+, since ", text, re.M), text
    assert "deliveries:   4 sent, 2 deferred, 2 bounced, 0 expired" in text
    assert "queue:        0 active, 1 deferred, 0 held, 0 in the maildrop" in text
    assert "pipe perm:\n  runs 1: 0 ok, 0 temporary failures, 1 permanent" in text
    assert "smarthost sink:\n  2 sent, 1 deferred, 1 bounced" in text

    assert d.stop() == 0
    text = gw.run("--status").stdout
    assert "daemon:       not running, stopped " in text
    assert gw.run("--status").returncode == 0


def test_metrics_endpoint_answers_only_metrics(setup):
    """404 elsewhere, 405 for another method; clients that send nothing hold up
    neither mail nor a scrape (each is answered in a child of its own)."""
    gw, sink, d, port, mport = setup
    assert scrape(mport, "/")[0] == 404
    with socket.create_connection(("127.0.0.1", mport), timeout=10) as s:
        s.sendall(b"POST /metrics HTTP/1.1\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 405 ")
    idle = [socket.create_connection(("127.0.0.1", mport), timeout=10) for _ in range(3)]
    assert session_send(port, ["ok@example.com"])[1].code == 250   # mail goes on
    started = time.time()
    assert scrape(mport)[0] == 200            # beside them, not after them
    assert time.time() - started < 3
    for s in idle:
        s.close()


@pytest.mark.skipif(os.environ.get("UNDERSMTPD_SANITIZED") == "1",
                    reason="SKIP: sanitized (a process killed with -9 leaves no report, "
                    "and its sessions end without closing what they hold)")
def test_metrics_restarted_and_status_after_kill(gw):
    """kill -9 of the metrics server: the master starts another.  kill -9 of the
    daemon: --status says it is gone without stopping, and exits 1."""
    port, mport = free_port(), free_port()
    gw.write_conf(f'listen = {{ "127.0.0.1:{port}" }}\n'
                  f'metrics_listen = "{mport}"\n')            # a port: loopback
    d = Daemon(gw, port)
    try:
        assert scrape(mport)[0] == 200
        # The server keeps its listening socket and nothing else of the master's
        # (the launcher's socket, the sessions' control sockets).
        pid = find_metrics_pid(d.master(), mport)
        socks = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        assert len([s for s in socks if s.startswith("socket:")]) == 1, socks
        os.kill(pid, 9)
        assert gw.wait_log("metrics server")
        assert wait_for(lambda: try_scrape(mport) == 200, timeout=20)
    finally:
        master = d.master()
        os.kill(master, 9)               # the process that said it runs
        if master != d.proc.pid:
            os.kill(d.proc.pid, 9)       # and the root launcher above it
        d.proc.wait(timeout=20)
    time.sleep(0.3)
    r = gw.run("--status")
    assert r.returncode == 1
    assert "NOT RUNNING" in r.stdout and "without stopping cleanly" in r.stdout


def try_scrape(port):
    try:
        return scrape(port)[0]
    except OSError:
        return 0


def find_metrics_pid(master, mport):
    """The master's child listening on the metrics port (from /proc/net/tcp)."""
    inodes = set()
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == mport and fields[3] == "0A":
                inodes.add(fields[9])
    with open(f"/proc/{master}/task/{master}/children") as f:
        kids = [int(x) for x in f.read().split()]
    for pid in kids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                return pid
    raise AssertionError("no metrics server among the master's children")
