"""TESTCATALOGUE C: bad input and limits."""
import os
import resource
import subprocess

import pytest


def use_pipe(gw, extra=""):
    gw.write_aliases('support: "|@REC@"\n' + extra)


def test_command_line_limit(gw):
    """T28: 513-byte command -> 500 5.5.2; 1 MB with no CRLF then NOOP -> 500 then 250."""
    c = gw.session()
    c.greet()
    line = "NOOP " + "x" * (512 - 5 - 2)      # exactly 512 with CRLF
    assert c.cmd(line).code == 250
    r = c.cmd(line + "y")                     # 513
    assert r.code == 500 and r.lines[0].startswith("5.5.2")
    c.send(b"A" * (1024 * 1024) + b"\r\nNOOP\r\n")
    assert c.reply().code == 500
    assert c.reply().code == 250
    c.cmd("QUIT")
    c.close()


def test_address_length_limits(gw):
    """T29: local part of 65, path of 257, domain of 256 -> 501."""
    use_pipe(gw)
    c = gw.session()
    c.greet()
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    for addr in ["x" * 65 + "@example.com",
                 "a@" + ".".join(["d" * 60] * 4) + ".example.com",
                 "a@" + "d" * 63 + "." + "e" * 63 + "." + "f" * 63 + "." + "g" * 63 + ".com"]:
        r = c.cmd(f"RCPT TO:<{addr}>")
        assert r.code in (501, 553), (addr, r)
    assert c.cmd("RCPT TO:<" + "x" * 64 + "@example.com>").code == 550  # valid, unknown
    c.cmd("QUIT")
    c.close()


def test_long_data_line(gw):
    """T30: a 5,000-byte DATA line -> answered with 500 only after the end of data."""
    use_pipe(gw)
    c = gw.session()
    c.greet()
    r = c.mail(rcpts=["support@example.com"],
               body=b"Subject: long\r\n\r\n" + b"y" * 5000 + b"\r\nmore\r\n")
    assert r.code == 500 and r.lines[0].startswith("5.5.2")
    assert c.cmd("NOOP").code == 250
    c.cmd("QUIT")
    c.close()
    assert gw.records() == []


def test_line_of_exactly_1000_octets_is_fine(gw):
    """T30 boundary: 998 octets + CRLF = 1000 is allowed (RFC 5321 4.5.3.1.6)."""
    use_pipe(gw)
    c = gw.session()
    c.greet()
    assert c.mail(rcpts=["support@example.com"],
                  body=b"Subject: edge\r\n\r\n" + b"z" * 998 + b"\r\n").code == 250
    c.cmd("QUIT")
    c.close()
    assert gw.one_record().body() == b"z" * 998 + b"\n"


def test_body_over_size_limit_without_size(gw):
    """T31: a body over the limit without SIZE -> read to the end, 552; nothing delivered."""
    gw.write_conf("max_message_size = 64k\n")
    use_pipe(gw)
    c = gw.session()
    c.greet()
    body = b"Subject: big\r\n\r\n" + (b"x" * 900 + b"\r\n") * 200
    r = c.mail(rcpts=["support@example.com"], body=body)
    assert r.code == 552 and r.lines[0].startswith("5.3.4")
    assert c.cmd("NOOP").code == 250
    c.cmd("QUIT")
    c.close()
    assert gw.records() == []


def test_nul_in_command(gw):
    """T32: NUL in a command -> 501."""
    c = gw.session()
    c.greet()
    c.send(b"NOOP a\x00b\r\n")
    assert c.reply().code == 501
    c.cmd("QUIT")
    c.close()


def test_nul_and_8bit_in_data_byte_for_byte(gw):
    """T33, T113: 8-bit bytes in DATA reach the program byte for byte; a NUL
    gets the whole message refused (never truncated at the NUL)."""
    use_pipe(gw)
    c = gw.session()
    c.greet()
    payload = b"caf\xc3\xa9 8-bit \xff\xfe end"
    r = c.mail(rcpts=["support@example.com"], body=b"Subject: bin\r\n\r\n" + payload + b"\r\n")
    assert r.code == 250
    r = c.mail(rcpts=["support@example.com"],
               body=b"Subject: bin\r\n\r\n" + payload.replace(b"8-bit", b"\x00") + b"\r\n")
    assert r.code == 550 and r.lines[0].startswith("5.6.0"), r
    c.cmd("QUIT")
    c.close()
    assert gw.one_record().body() == payload + b"\n"


def test_utf8_addresses(gw):
    """T34: non-ASCII without SMTPUTF8 -> 553 5.6.7; invalid UTF-8 -> 501; with SMTPUTF8 ok."""
    use_pipe(gw, 'j\u00f6rg: support\n')
    c = gw.session()
    c.greet()
    c.send("MAIL FROM:<j\u00f6rg@remote.test>\r\n".encode())
    r = c.reply()
    assert r.code == 553 and r.lines[0].startswith("5.6.7")
    c.send(b"MAIL FROM:<a\xff\xfe@remote.test> SMTPUTF8\r\n")
    assert c.reply().code == 501
    c.send("MAIL FROM:<j\u00f6rg@remote.test> SMTPUTF8\r\n".encode())
    assert c.reply().code == 250
    c.send("RCPT TO:<j\u00f6rg@example.com>\r\n".encode())
    assert c.reply().code == 250
    c.cmd("QUIT")
    c.close()


def test_hop_limit(gw):
    """T36: 101 Received headers -> 554 5.4.6, nothing delivered; 100 -> accepted."""
    use_pipe(gw)
    c = gw.session()
    c.greet()
    hops = b"".join(b"Received: from h%d by h%d; date\r\n" % (i, i) for i in range(101))
    r = c.mail(rcpts=["support@example.com"], body=hops + b"Subject: loop\r\n\r\nx\r\n")
    assert r.code == 554 and r.lines[0].startswith("5.4.6")
    hops = b"".join(b"Received: from h%d by h%d; date\r\n" % (i, i) for i in range(100))
    r = c.mail(rcpts=["support@example.com"], body=hops + b"Subject: ok\r\n\r\nx\r\n")
    assert r.code == 250, r
    c.cmd("QUIT")
    c.close()
    assert len(gw.records()) == 1


def test_huge_header_and_many_fields_bounded(gw):
    """T37: a 1 MB header line, 10,000 header fields -> bounded, a clear 5xx, no crash."""
    use_pipe(gw)
    c = gw.session()
    c.greet()
    r = c.mail(rcpts=["support@example.com"],
               body=b"X-Big: " + b"h" * (1024 * 1024) + b"\r\n\r\nx\r\n")
    assert r.code == 500
    many = b"".join(b"X-F%d: v\r\n" % i for i in range(10000))
    r = c.mail(rcpts=["support@example.com"], body=many + b"\r\nx\r\n")
    assert r.code == 250
    c.cmd("QUIT")
    assert c.close() == 0


def test_bad_esmtp_parameters(gw):
    """T38: SIZE=99999999999999999999, duplicates, unknown params, BODY=FOO -> 501/555."""
    c = gw.session()
    c.greet()
    for line, codes in [
        ("MAIL FROM:<a@b.test> SIZE=99999999999999999999", (501, 552)),
        ("MAIL FROM:<a@b.test> SIZE=10 SIZE=10", (501,)),
        ("MAIL FROM:<a@b.test> FROB=1", (555,)),
        ("MAIL FROM:<a@b.test> BODY=FOO", (501,)),
        ("MAIL FROM:<a@b.test> SIZE=", (501,)),
        ("MAIL FROM:a@b.test", (501,)),
        ("MAIL FROM:<a@b.test", (501,)),
    ]:
        r = c.cmd(line)
        assert r.code in codes, (line, r)
    c.cmd("QUIT")
    assert c.close() == 0


NO_RLIMIT_AS = pytest.mark.skipif(
    os.environ.get("UNDERSMTPD_SANITIZED") == "1",
    reason="SKIP: sanitized: ASan reserves terabytes of shadow memory, no RLIMIT_AS with it")


def session_pid(c):
    """The process that speaks SMTP: as root the one started is the launcher,
    and the session is its child."""
    pid = c.proc.pid
    if os.geteuid() != 0:
        return pid
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        kids = [int(x) for x in f.read().split()]
    assert len(kids) == 1, kids
    return kids[0]


def squeeze_address_space(pid):
    """Lower the running session's RLIMIT_AS to what it maps now: its next
    allocation that needs more memory from the kernel fails.  As root that
    takes the session's own uid (CAP_SYS_RESOURCE is not ours here)."""
    with open(f"/proc/{pid}/status") as f:
        size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    if os.geteuid() != 0:
        resource.prlimit(pid, resource.RLIMIT_AS, (size, size))
        return
    st = os.stat(f"/proc/{pid}")
    r = subprocess.run(["setpriv", f"--reuid={st.st_uid}", f"--regid={st.st_gid}",
                        "--clear-groups", "prlimit", f"--pid={pid}", f"--as={size}:{size}"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@NO_RLIMIT_AS
def test_allocation_failure_at_data_is_451(gw):
    """T106: the address space of a running session is cut to what it maps;
    the memory DATA needs is refused -> 451 4.3.0, the program never runs, the
    session goes on to QUIT and exits 0 (no death by a signal: as root the
    launcher would say 70)."""
    use_pipe(gw)
    c = gw.session()
    c.greet()
    squeeze_address_space(session_pid(c))
    assert c.cmd("MAIL FROM:<a@b.test>").code == 250
    assert c.cmd("RCPT TO:<support@example.com>").code == 250
    r = c.cmd("DATA")
    assert (r.code, r.text[:5]) == (451, "4.3.0"), r
    assert c.cmd("QUIT").code == 221
    assert c.close() == 0
    assert gw.records() == []


@NO_RLIMIT_AS
def test_out_of_memory_ends_with_421(gw):
    """T106: when an allocation the session cannot do without fails, the
    client is told 421 4.3.0 before the process ends (exit 75, not a signal),
    and nothing was accepted: no program ran, nothing is in the spool."""
    # 5,000 recipients a transaction: the recipients' table no longer fits.
    use_pipe(gw)
    gw.write_conf('max_recipients = 5000\n'
                  'smarthost "s" { host = "127.0.0.1" port = 9 }\n'
                  'queue { run_after_accept = false }\n')
    c = gw.session()
    c.greet()
    # The aliases are read at the first RCPT: before the squeeze (a failure to
    # read them is a 451 4.3.0 of its own).  Loopback may relay.
    assert c.cmd("MAIL FROM:<a@b.test>").code == 250
    assert c.cmd("RCPT TO:<support@example.com>").code == 250
    assert c.cmd("RSET").code == 250
    squeeze_address_space(session_pid(c))
    r = c.cmd("MAIL FROM:<a@b.test>")
    for i in range(5000):
        if r.code != 250:
            break
        r = c.cmd(f"RCPT TO:<r{i}@remote.test>")
    assert r.code == 421, r
    assert r.text.startswith("4.3.0 mx.example.com Local error: out of resources"), r
    with pytest.raises((EOFError, ConnectionResetError)):
        c.reply()
    assert c.close() == 75
    assert gw.records() == []
    assert list((gw.spool / "queue").glob("*")) == []
