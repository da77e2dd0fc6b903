"""TESTCATALOGUE A: protocol conformance (RFC 5321), against the real binary."""
import os
import signal
import time


def pipe_alias(gw, extra=""):
    gw.write_aliases('support: "|@REC@"\n' + extra)


def test_greeting_and_ehlo_keywords(gw):
    """T2: EHLO is multi-line; each advertised keyword works; SIZE is the real limit."""
    gw.write_conf("max_message_size = 1k\n")
    pipe_alias(gw)
    c = gw.session()
    r = c.reply()
    assert r.code == 220 and "mx.example.com" in r.lines[0]
    r = c.cmd("EHLO client.test")
    assert r.code == 250
    keywords = [line.split()[0] for line in r.lines[1:]]
    assert set(keywords) == {"PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8"}
    assert "SIZE 1024" in r.lines
    assert "CHUNKING" not in keywords and "STARTTLS" not in keywords
    # SIZE and BODY=8BITMIME and SMTPUTF8 are accepted as advertised.
    assert c.cmd("MAIL FROM:<a@remote.test> SIZE=100 BODY=8BITMIME SMTPUTF8").code == 250
    assert c.cmd("RSET").code == 250
    # SIZE above the limit: 552 5.3.4 (T15).
    r = c.cmd("MAIL FROM:<a@remote.test> SIZE=2000")
    assert r.code == 552 and r.lines[0].startswith("5.3.4")
    c.cmd("QUIT")
    c.close()


def test_helo_without_argument(gw):
    """T3: HELO/EHLO without argument -> 501; the session goes on."""
    c = gw.session()
    c.reply()
    assert c.cmd("HELO").code == 501
    assert c.cmd("EHLO").code == 501
    assert c.cmd("HELO client.test").code == 250
    assert c.cmd("QUIT").code == 221
    c.close()


def test_sequence_errors(gw):
    """T4: MAIL before HELO, RCPT before MAIL, DATA without RCPT, nested MAIL -> 503."""
    pipe_alias(gw)
    c = gw.session()
    c.reply()
    r = c.cmd("MAIL FROM:<a@remote.test>")
    assert r.code == 503 and r.lines[0].startswith("5.5.1")
    c.cmd("EHLO client.test")
    assert c.cmd("RCPT TO:<support@example.com>").code == 503
    assert c.cmd("DATA").code == 503
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 503
    assert c.cmd("DATA").code == 503
    assert c.cmd("QUIT").code == 221
    c.close()
    assert gw.records() == []


def test_unknown_verbs_lowercase_trailing_spaces(gw):
    """T5: unknown verb 500 and the session stays; lower case and trailing spaces ok."""
    c = gw.session()
    c.reply()
    r = c.cmd("FROB x")
    assert r.code == 500 and r.lines[0].startswith("5.5.2")
    assert c.cmd("ehlo client.test   ").code == 250
    assert c.cmd("noop").code == 250
    assert c.cmd("quit").code == 221
    c.close()


def test_arguments_where_none_allowed(gw):
    """T6: RSET x, DATA x, QUIT x -> 501; NOOP -> 250; RSET clears the envelope."""
    pipe_alias(gw)
    c = gw.session()
    c.greet()
    assert c.cmd("RSET x").code == 501
    assert c.cmd("QUIT x").code == 501
    assert c.cmd("NOOP").code == 250
    assert c.cmd("NOOP anything").code == 250
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    assert c.cmd("RCPT TO:<support@example.com>").code == 250
    assert c.cmd("DATA x").code == 501
    assert c.cmd("RSET").code == 250
    assert c.cmd("DATA").code == 503
    assert c.cmd("QUIT").code == 221
    c.close()


def test_vrfy_and_expn_reveal_nothing(gw):
    """T7: VRFY -> 252, EXPN on a pipe alias -> 502 without the command text."""
    gw.write_aliases('secret: "|/usr/bin/secret-program --token abc"\n')
    c = gw.session()
    c.greet()
    r = c.cmd("VRFY secret")
    assert r.code == 252
    r = c.cmd("EXPN secret")
    assert r.code == 502
    c.cmd("QUIT")
    c.close()
    assert b"secret-program" not in c.raw


def test_postmaster_and_null_sender(gw):
    """T8: RCPT <Postmaster> and postmaster@ours are accepted; MAIL FROM:<> -> 250."""
    gw.write_aliases('postmaster: "|@REC@"\n')
    c = gw.session()
    c.greet()
    assert c.cmd("MAIL FROM:<>").code == 250
    assert c.cmd("RCPT TO:<Postmaster>").code == 250
    assert c.cmd("RCPT TO:<postmaster@example.com>").code == 250
    r = c.cmd("DATA")
    assert r.code == 354
    c.send("Subject: x\r\n\r\nbody\r\n.\r\n")
    assert c.reply().code == 250
    c.cmd("QUIT")
    c.close()
    rec = gw.one_record()
    assert rec.env["SENDER"] == ""
    assert rec.stdin.startswith(b"Return-Path: <>\n")


def test_recipient_limit(gw):
    """T9: 100 RCPTs -> 250; the 101st -> 452 4.5.3; the first 100 are delivered."""
    aliases = "".join(f"u{i}: team\n" for i in range(101))
    gw.write_aliases('team: "|@REC@"\n' + aliases)
    c = gw.session()
    c.greet()
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    for i in range(100):
        r = c.cmd(f"RCPT TO:<u{i}@example.com>")
        assert r.code == 250, (i, r)
    r = c.cmd("RCPT TO:<u100@example.com>")
    assert r.code == 452 and r.lines[0].startswith("4.5.3")
    assert c.cmd("DATA").code == 354
    c.send("Subject: many\r\n\r\nx\r\n.\r\n")
    assert c.reply().code == 250
    c.cmd("QUIT")
    c.close()
    rec = gw.one_record()
    assert rec.stdin.count(b"Delivered-To: ") == 100


def test_dot_transparency(gw):
    """T10: '..', '..x' and '.x' as sent arrive as '.', '.x' and 'x'."""
    pipe_alias(gw)
    c = gw.session()
    c.greet()
    r = c.mail(rcpts=["support@example.com"],
               body=b"Subject: dots\r\n\r\n..\r\n..x\r\n.x\r\nend\r\n")
    assert r.code == 250
    c.cmd("QUIT")
    c.close()
    assert gw.one_record().body() == b".\n.x\nx\nend\n"


def test_pipelining_one_rcpt_failing(gw):
    """T11: MAIL/RCPT x3/DATA in one write, one RCPT failing -> replies in order."""
    pipe_alias(gw)
    c = gw.session()
    c.greet()
    c.send("MAIL FROM:<a@remote.test>\r\nRCPT TO:<support@example.com>\r\n"
           "RCPT TO:<nosuchuser@example.com>\r\nRCPT TO:<Support@Example.COM>\r\nDATA\r\n")
    codes = [c.reply().code for _ in range(5)]
    assert codes == [250, 250, 550, 250, 354]
    c.send("Subject: p\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    assert c.reply().code == 250
    assert c.reply().code == 221
    c.close()
    assert gw.one_record().body() == b"body\n"


def test_eof_mid_data_delivers_nothing(gw):
    """T12: connection closed mid-DATA -> nothing delivered, temp file removed."""
    pipe_alias(gw)
    c = gw.session()
    c.greet()
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    assert c.cmd("RCPT TO:<support@example.com>").code == 250
    assert c.cmd("DATA").code == 354
    c.send("Subject: cut\r\n\r\nhalf a mess")
    c.sock.shutdown(1)
    c.read_eof()
    assert c.close() == 0
    assert gw.records() == []
    assert list((gw.spool / "tmp").glob("*.msg")) == []
    assert "lost connection after DATA" in gw.log_text()


def test_idle_timeout(gw):
    """T13: idle longer than `timeout` -> 421 4.7.0, then close."""
    gw.write_conf("timeout = 1s\n")
    c = gw.session()
    c.greet()
    start = time.time()
    r = c.reply()
    assert r.code == 421 and r.lines[0].startswith("4.7.0")
    assert time.time() - start < 10
    assert c.read_eof() == b""
    c.close()


def test_sigterm_idle_session(gw):
    """T14: SIGTERM to an idle session -> 421 4.3.2 before exit."""
    c = gw.session()
    c.greet()
    time.sleep(0.2)
    # The session is the launcher's child when started as root: signal both.
    os.kill(c.proc.pid, signal.SIGTERM)
    for pid in child_pids(c.proc.pid):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass                    # the launcher's SIGTERM, passed on, was first
    r = c.reply()
    assert r.code == 421 and r.lines[0].startswith("4.3.2")
    c.close()


def test_sigterm_during_data_gets_true_reply(gw):
    """T14 (SPEC 6): a message being received when SIGTERM comes finishes with its true reply."""
    pipe_alias(gw)
    c = gw.session()
    c.greet()
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    assert c.cmd("RCPT TO:<support@example.com>").code == 250
    assert c.cmd("DATA").code == 354
    c.send("Subject: t\r\n\r\nfirst half\r\n")
    time.sleep(0.2)
    # As root the session is the launcher's child; as anyone else, the process itself.
    for pid in child_pids(c.proc.pid) or [c.proc.pid]:
        os.kill(pid, signal.SIGTERM)
    c.send("second half\r\n.\r\n")
    r = c.reply()
    assert r.code == 250
    assert c.reply().code == 421
    c.close()
    assert gw.one_record().body() == b"first half\nsecond half\n"


def child_pids(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def test_size_above_free_space(gw):
    """T15: SIZE= larger than free space -> 452 4.3.1; T65: below min_free_space -> 452 4.3.1."""
    gw.write_conf("min_free_space = 1G\nmax_message_size = 100000G\n")
    st = os.statvfs(gw.base)
    free = st.f_bavail * st.f_frsize
    c = gw.session()
    c.greet()
    r = c.cmd(f"MAIL FROM:<a@remote.test> SIZE={max(free - 2**29, 1)}")
    assert r.code == 452 and r.lines[0].startswith("4.3.1")
    c.cmd("QUIT")
    c.close()
    gw.write_conf(f"min_free_space = {free // 1024 + 1024 * 1024}k\n")
    c = gw.session()
    c.greet()
    r = c.cmd("MAIL FROM:<a@remote.test>")
    assert r.code == 452 and r.lines[0].startswith("4.3.1")
    c.cmd("QUIT")
    c.close()


def test_received_header(gw):
    """T16: Received: has the EHLO name and [IP], FOR only with one recipient; Return-Path added."""
    gw.write_aliases('support: "|@REC@"\nalso: support\n')
    c = gw.session()
    c.greet("my.client.name")
    assert c.mail(rcpts=["support@example.com"]).code == 250
    assert c.mail(rcpts=["support@example.com", "also@example.com"]).code == 250
    c.cmd("QUIT")
    c.close()
    one, two = gw.records()
    head1 = one.stdin.split(b"\n\n")[0].decode()
    assert head1.startswith("Return-Path: <sender@remote.test>\nDelivered-To: support@example.com\n"
                            "Received: from my.client.name ([127.0.0.1])\n\tby mx.example.com")
    assert "for <support@example.com>;" in head1
    head2 = two.stdin.split(b"\n\n")[0].decode()
    assert "Received: from my.client.name" in head2 and " for <" not in head2 and "\tfor" not in head2


def test_error_limit_closes(gw):
    """T35: binary garbage lines -> 500 each; after 20 errors -> 421 4.7.0 and close."""
    c = gw.session()
    c.greet()
    codes = []
    for i in range(19):
        codes.append(c.cmd("\x01\x02garbage\xff").code)
    assert set(codes) == {500}
    c.send("\x01junk\r\n")
    assert c.reply().code == 500
    r = c.reply()
    assert r.code == 421 and r.lines[0].startswith("4.7.0")
    assert c.read_eof() == b""
    c.close()


def test_junk_command_limit(gw):
    """T105: 10,000 NOOPs -> after the limit, 421."""
    c = gw.session()
    c.greet()
    c.send("NOOP\r\n" * 10000)
    codes = []
    while True:
        try:
            r = c.reply()
        except EOFError:
            break
        codes.append(r.code)
        if r.code == 421:
            break
    assert codes[-1] == 421
    # 100 free (the EHLO of greet() among them), then each counts as an error.
    assert codes.count(250) == 99 + 20
    c.close()


def test_command_before_greeting_processed_in_order(gw):
    """T1: EHLO sent before the 220 greeting: nothing is answered before 220,
    and the EHLO is then processed in order."""
    c = gw.session()
    c.send("EHLO early.client\r\n")
    r = c.reply()
    assert r.code == 220
    r = c.reply()
    assert r.code == 250 and "early.client" in r.lines[0]
    c.cmd("QUIT")
    c.close()


def test_parameters_after_an_escaped_quote_are_read(gw):
    """Issue 15: MAIL FROM:<"a\\"b"@x> SIZE=99999999999 junk got 250 (the
    parameters were taken for part of the quoted path); they are read: 555 for
    the unknown one, 552 for a size over the limit."""
    c = gw.session()
    c.greet()
    r = c.cmd('MAIL FROM:<"a\\"b"@remote.test> SIZE=99999999999 junk')
    assert r.code == 555, r
    r = c.cmd('MAIL FROM:<"a\\"b"@remote.test> SIZE=99999999999')
    assert r.code == 552, r
    r = c.cmd('MAIL FROM:<"a\\"b"@remote.test> SIZE=100')
    assert r.code == 250, r
    c.cmd("QUIT")
    c.close()
