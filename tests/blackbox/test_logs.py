"""Issue 18 part 2: the log read by the tools mail administrators already run
on Postfix's.  A real log of sessions, program runs, a queue run and a DSN
goes through Debian's pflogsumm and fail2ban-regex (with Debian's own postfix
filter, through the filter undersmtpd ships in contrib/fail2ban), and the
numbers they report must be what happened."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from test_server_tls import tls_client, tls_gw, upgrade   # noqa: F401 (fixture)
from test_spool import flush, relay_conf, send, sink   # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parents[2]
FILTER = ROOT / "contrib" / "fail2ban" / "undersmtpd.conf"
F2B_FILTERS = Path("/etc/fail2ban/filter.d")


def need(tool):
    path = shutil.which(tool) or (f"/usr/sbin/{tool}" if os.path.exists(f"/usr/sbin/{tool}")
                                  else None)
    if path is None:
        if os.environ.get("UNDERSMTPD_NO_SKIP"):
            raise AssertionError(f"{tool} is not installed (.ci/run installs it)")
        pytest.skip(f"{tool} not installed")
    return path


def pflogsumm(log):
    """pflogsumm's grand totals and its per-domain delivery lines."""
    out = subprocess.run([need("pflogsumm"), "--syslog-name=undersmtpd", "--problems-first",
                          str(log)], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    totals = {}
    for word in ("received", "delivered", "deferred", "bounced", "rejected"):
        m = re.search(rf"^\s*(\d+)\s+{word}\b", out, re.M)
        totals[word] = int(m.group(1)) if m else None
    assert "Host/Domain Summary: Message Delivery" in out, out
    section = out.split("Host/Domain Summary: Message Delivery", 1)[1].split("\n\n", 1)[0]
    domains = {}
    for line in section.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0].isdigit():
            domains[fields[-1]] = int(fields[0])      # sent count first, domain last
    return totals, domains, out


def fail2ban(log, base, mode):
    """(matched lines, the whole report) for the shipped filter in a mode."""
    tool = need("fail2ban-regex")
    if not (F2B_FILTERS / "postfix.conf").exists():
        pytest.skip("fail2ban's filters are not installed")
    conf = base / "f2b"
    (conf / "filter.d").mkdir(parents=True, exist_ok=True)
    for name in ("common.conf", "postfix.conf"):
        shutil.copy(F2B_FILTERS / name, conf / "filter.d" / name)
    shutil.copy(FILTER, conf / "filter.d" / "undersmtpd.conf")
    r = subprocess.run([tool, "--print-all-matched", "-c", str(conf), str(log),
                        f"undersmtpd[mode={mode}]"], capture_output=True, text=True,
                       timeout=120, check=True)
    m = re.search(r"^Lines: (\d+) lines, \d+ ignored, (\d+) matched", r.stdout, re.M)
    assert m, r.stdout
    matched = []
    if "|- Matched line(s):" in r.stdout:
        block = r.stdout.split("|- Matched line(s):", 1)[1].split("`-", 1)[0]
        matched = [line[3:] for line in block.splitlines() if line.startswith("|  ")]
    assert len(matched) == int(m.group(2)), r.stdout
    return matched, r.stdout


def test_pflogsumm_counts_what_happened(gw, sink):
    """pflogsumm --syslog-name=undersmtpd on the log_file: received, delivered,
    deferred, bounced and rejected as they happened, and the deliveries by
    recipient domain.  Then fail2ban's postfix filter (mode more, the
    default) matches the two refused recipients and nothing else."""
    relay_conf(gw, sink.port, 'relay_networks = { "127.0.0.1/32" }\n', run_after_accept=False)
    gw.write_aliases('ok: "|@REC@ --exit 0"\ntmp: "|@REC@ --exit 75"\n'
                     'bad: "|@REC@ --exit 67"\n')
    sink.rcpt_replies["dead@remote.example"] = "550 5.1.1 <dead@remote.example>: no such user"
    sink.rcpt_replies["later@remote.example"] = "451 4.3.0 try again later"
    # Seven messages received (pflogsumm counts each client= line).
    assert send(gw, ["ok@example.com"], body=b"Message-ID: <m1@remote.test>\r\n"
                b"Subject: hi\r\n\r\nhello\r\n").code == 250     # program: sent
    assert send(gw, ["tmp@example.com"]).code == 451            # program 75: deferred
    assert send(gw, ["bad@example.com"]).code == 550            # program 67: bounced
    assert send(gw, ["bob@remote.example"]).code == 250         # smarthost: sent
    assert send(gw, ["carol@remote.example", "dan@other.example"]).code == 250   # 2 sent
    assert send(gw, ["later@remote.example"]).code == 250       # smarthost: deferred
    assert send(gw, ["dead@remote.example"]).code == 250        # smarthost: bounced
    # Two recipients refused, in a transaction that never gets one.
    c = gw.session(source="127.0.0.2")
    c.greet()
    assert c.cmd("MAIL FROM:<eve@remote.test>").code == 250
    assert c.cmd("RCPT TO:<nobody@example.com>").code == 550
    assert c.cmd("RCPT TO:<x@elsewhere.example>").code == 554
    assert c.cmd("QUIT").code == 221
    c.close()
    assert flush(gw).returncode == 75                           # later@ stays
    # Five deliveries: ok@ by its program, and three messages at the
    # smarthost: bob@, carol@ with dan@, and the DSN for dead@ to alice@.
    assert sorted(r for m in sink.wait_messages(3) for r in m.rcpts) == [
        "alice@remote.test", "bob@remote.example", "carol@remote.example",
        "dan@other.example"]
    log = gw.log_text()
    for line in log.splitlines():
        # Every line as syslog writes it: time, host, undersmtpd/ROLE[PID].
        assert re.match(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ undersmtpd(/\w+)?\[\d+\]: ", line), line
        # relay= is a single token (pflogsumm reads relay=([^,]+)).
        m = re.search(r"relay=([^,]*),", line)
        assert m is None or " " not in m.group(1), line
    # cleanup's line, as Postfix's: the message's own Message-ID, or <>.
    assert re.search(r" undersmtpd/cleanup\[\d+\]: \w+: message-id=<m1@remote\.test>\n", log)
    assert len(re.findall(r" undersmtpd/cleanup\[\d+\]: \w+: message-id=", log)) == 7, log
    totals, domains, out = pflogsumm(gw.log)
    assert totals == {"received": 7, "delivered": 5, "deferred": 2, "bounced": 2,
                      "rejected": 2}, out
    assert domains == {"example.com": 1, "remote.example": 2, "other.example": 1,
                       "remote.test": 1}, out
    matched, report = fail2ban(gw.log, gw.base, "more")
    assert len(matched) == 2, report
    assert all("reject: RCPT from unknown[127.0.0.2]" in m for m in matched), report


def test_fail2ban_reads_failed_auth(tls_gw):
    """fail2ban's postfix filter in mode extra (the postfix-sasl jail's lines
    and the rejections): every failed AUTH and every refused recipient in the
    log, and not the successful AUTH, the connections or the deliveries."""
    gw = tls_gw
    for source in ("127.0.0.2", "127.0.0.3"):
        c, ctx = tls_client(gw, source=source)
        c.greet()
        assert c.cmd("STARTTLS").code == 220
        upgrade(c, ctx)
        assert c.cmd("EHLO client.test").code == 250
        assert c.cmd("AUTH PLAIN AGFsaWNlAHdyb25n").code == 535      # \0alice\0wrong
        assert c.cmd("AUTH PLAIN AGFsaWNlAHMzY3JldA==").code == 235  # \0alice\0s3cret
        assert c.cmd("QUIT").code == 221
        c.close()
    c = gw.session(source="127.0.0.2")
    c.greet()
    assert c.cmd("MAIL FROM:<eve@remote.test>").code == 250
    assert c.cmd("RCPT TO:<x@elsewhere.example>").code == 554
    assert c.cmd("QUIT").code == 221
    c.close()
    matched, report = fail2ban(gw.log, gw.base, "extra")
    auth = [m for m in matched if "SASL PLAIN authentication failed" in m]
    assert len(auth) == 2 and len(matched) == 3, report
    assert {re.search(r"unknown\[([\d.]+)\]", m).group(1) for m in auth} == \
        {"127.0.0.2", "127.0.0.3"}, report
