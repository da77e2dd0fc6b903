"""TESTCATALOGUE B: SMTP smuggling.  Only CRLF.CRLF ends a message.

Each sequence S is sent inside a body, followed by a smuggled transaction and
then a real CRLF.CRLF.  Pass: S is never taken as the end of data, zero
smuggled messages reach the program, and the result is one rejection.
"""
import pytest

SMUGGLED = (b"MAIL FROM:<admin@example.com>\r\nRCPT TO:<victim@example.com>\r\n"
            b"DATA\r\nSubject: smuggled\r\n\r\nspoofed\r\n")

SEQUENCES = {
    "T17 LF.LF": b"\n.\n",
    "T18 LF.CRLF": b"\n.\r\n",
    "T19 CRLF.LF": b"\r\n.\n",
    "T20 CR.CR": b"\r.\r",
    "T20 CR.CRLF": b"\r.\r\n",
    "T21 CR.LF": b"\r.\n",
    "T21 LF.CR": b"\n.\r",
    "T22 CRLF NUL.CRLF": b"\r\n\x00.\r\n",
    "T23 CRLF.CR CRLF": b"\r\n.\r\r\n",
    "T23 CR CRLF.CR CRLF": b"\r\r\n.\r\r\n",
}


def use_pipe(gw):
    gw.write_aliases('support: "|@REC@"\nvictim: "|@REC@ --print VICTIM"\n')


@pytest.mark.parametrize("name", list(SEQUENCES))
def test_smuggling_sequence_is_not_end_of_data(gw, name):
    """T17-T23 (one case per SEQUENCES entry), T113: the sequence never ends
    the data, nothing smuggled reaches a program, one refusal."""
    use_pipe(gw)
    c = gw.session()
    c.greet()
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    assert c.cmd("RCPT TO:<support@example.com>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(b"Subject: carrier\r\n\r\nbody" + SEQUENCES[name] + SMUGGLED + b"\r\n.\r\n")
    r = c.reply()
    # The session is in sync: the next command gets its own reply.
    assert c.cmd("NOOP").code == 250
    assert c.cmd("QUIT").code == 221
    c.close()
    if b"\r" in SEQUENCES[name].replace(b"\r\n", b"") or \
            b"\n" in SEQUENCES[name].replace(b"\r\n", b""):
        # A bare CR or LF: the whole thing is one message, refused.
        assert r.code == 550 and r.lines[0].startswith("5.5.2"), r
        assert gw.records() == [], "a smuggled or partial message reached a program"
    else:
        # Only proper CRLF lines (NUL before the dot): one message, read to its
        # end and refused for its NUL (issue 15: scanners flag a NUL passed on).
        assert r.code == 550 and r.lines[0].startswith("5.6.0"), r
        assert gw.records() == []


def test_nul_in_data_refused(gw):
    """T113: Issue 15: a NUL byte anywhere in DATA: read to the end, 550 5.6.0, and the
    session stays in sync; nothing reaches a program or the spool."""
    use_pipe(gw)
    c = gw.session()
    c.greet()
    r = c.mail(rcpts=["support@example.com"], body=b"Subject: x\r\n\r\nab\x00cd\r\n")
    assert r.code == 550 and r.lines[0].startswith("5.6.0") and "NUL" in r.text, r
    assert c.cmd("NOOP").code == 250
    assert c.mail(rcpts=["support@example.com"]).code == 250
    c.cmd("QUIT")
    c.close()
    assert len(gw.records()) == 1
    assert list((gw.spool / "queue").iterdir()) == []


def test_text_before_354_refused(gw):
    """T114: Issue 15 (RFC 2920 3.1, Postfix's smtpd_forbid_unauth_pipelining): an
    unauthenticated client that sends the message before the 354 gets 554 5.5.0
    and the connection closes; nothing is delivered."""
    use_pipe(gw)
    c = gw.session()
    c.greet()
    c.send(b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<support@example.com>\r\nDATA\r\n"
           b"Subject: hasty\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    assert c.reply().code == 250
    assert c.reply().code == 250
    r = c.reply()
    assert r.code == 554 and r.lines[0].startswith("5.5.0"), r
    assert c.read_eof() == b""
    c.close()
    assert gw.records() == []
    assert "improper command pipelining after DATA" in gw.log_text()
    # Pipelining up to DATA, and the text after the 354, is RFC 2920 and fine.
    c = gw.session()
    c.greet()
    c.send(b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<support@example.com>\r\nDATA\r\n")
    assert [c.reply().code for _ in range(3)] == [250, 250, 354]
    c.send(b"Subject: patient\r\n\r\nbody\r\n.\r\n")
    assert c.reply().code == 250
    c.cmd("QUIT")
    c.close()
    assert len(gw.records()) == 1


def test_bare_lf_in_header_rejected(gw):
    """T24: a bare LF in a header or body with no dot -> 550 5.5.2 (policy reject)."""
    use_pipe(gw)
    c = gw.session()
    c.greet()
    r = c.mail(rcpts=["support@example.com"], body=b"Subject: x\nFrom: y\r\n\r\nbody\r\n")
    assert r.code == 550 and r.lines[0].startswith("5.5.2")
    c.cmd("QUIT")
    c.close()
    assert gw.records() == []


def test_bare_cr_in_body_rejected(gw):
    """T25: a bare CR in the body is rejected, never forwarded bare."""
    use_pipe(gw)
    c = gw.session()
    c.greet()
    r = c.mail(rcpts=["support@example.com"], body=b"Subject: x\r\n\r\nab\rcd\r\n")
    assert r.code == 550
    c.cmd("QUIT")
    c.close()
    assert gw.records() == []


def test_two_transactions_in_one_segment(gw):
    """T27: CRLF.CRLF then a whole second transaction in the same write ->
    two messages, two 250s in order, envelopes not mixed."""
    use_pipe(gw)
    c = gw.session()
    c.greet()
    c.send(b"MAIL FROM:<one@remote.test>\r\nRCPT TO:<support@example.com>\r\nDATA\r\n")
    assert [c.reply().code for _ in range(3)] == [250, 250, 354]
    c.send(b"Subject: one\r\n\r\nfirst\r\n.\r\n"
           b"MAIL FROM:<two@remote.test>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n")
    assert [c.reply().code for _ in range(4)] == [250, 250, 250, 354]
    c.send(b"Subject: two\r\n\r\nsecond\r\n.\r\n")
    assert c.reply().code == 250
    c.cmd("QUIT")
    c.close()
    one, two = gw.records()
    assert one.env["SENDER"] == "one@remote.test" and one.body() == b"first\n"
    assert two.env["SENDER"] == "two@remote.test" and two.body() == b"second\n"
    assert two.env["RECIPIENT"] == "victim@example.com"
