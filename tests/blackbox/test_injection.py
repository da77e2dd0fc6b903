"""TESTCATALOGUE D: injection.  Envelope data never reaches a shell or argv."""
import os


def test_shell_metacharacters_in_sender_reach_no_shell(gw):
    """T39: `touch${IFS}m`, a;id and $(id) senders to a pipe alias -> delivered, no marker."""
    marker = gw.rec / "m"
    gw.write_aliases('support: "|@REC@"\nshelly: "|cat > /dev/null; exit 0"\n')
    c = gw.session()
    c.greet()
    # ';', '(' and ' ' are not atext: those forms travel as quoted local parts.
    for sender in [f"`touch${{IFS}}{marker}`@x.test", '"a;id"@x.test',
                   f'"$(touch {marker})"@x.test']:
        for rcpt in ["support@example.com", "shelly@example.com"]:
            r = c.cmd(f"MAIL FROM:<{sender}>")
            assert r.code == 250, r
            assert c.cmd(f"RCPT TO:<{rcpt}>").code == 250
            assert c.cmd("DATA").code == 354
            c.send("Subject: x\r\n\r\nx\r\n.\r\n")
            assert c.reply().code == 250
    c.cmd("QUIT")
    c.close()
    assert not marker.exists()
    senders = sorted(r.env["SENDER"] for r in gw.records())
    assert len(senders) == 3 and any("touch${IFS}" in s for s in senders)


def test_regex_capture_is_one_argv_element(gw):
    """T40: a capture full of shell metacharacters arrives as one argv element."""
    gw.write_aliases('/^ticket-(.*)$/: "|@REC@ --queue=$1 --x ${1}"\n'.replace("${1}", "$1"))
    c = gw.session()
    c.greet()
    evil = "a'b\"c$d`e;f|g&h*i"
    quoted = evil.replace("\\", "\\\\").replace('"', '\\"')
    c.send(f'MAIL FROM:<s@remote.test>\r\nRCPT TO:<"ticket-{quoted} z"@example.com>\r\n')
    assert c.reply().code == 250
    r = c.reply()
    assert r.code == 250, r
    assert c.cmd("DATA").code == 354
    c.send("Subject: x\r\n\r\nx\r\n.\r\n")
    assert c.reply().code == 250
    c.cmd("QUIT")
    c.close()
    rec = gw.one_record()
    assert rec.argv[3:] == [f"--queue={evil} z", "--x", f"{evil} z"]
    assert rec.env["MATCH_1"] == f"{evil} z"


def test_capture_in_shell_command_is_a_config_error(gw):
    """T40: configuration refuses captures inside commands that need the shell."""
    gw.write_aliases('/^t-(.*)$/: "|echo $1 > /tmp/x"\n')
    r = gw.run("--check-config")
    assert r.returncode != 0
    assert f"{gw.aliases}:1:" in r.stderr and "capture" in r.stderr


def test_addresses_cannot_name_programs(gw):
    """T41: "|sh -c id"@ours, |cmd@ours, "/path"@ours, ":include:..."@ours -> 550 5.1.1."""
    gw.write_aliases('support: "|@REC@"\n')
    c = gw.session()
    c.greet()
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    for rcpt in ['"|sh -c id"@example.com', "|cmd@example.com", '"/etc/passwd"@example.com',
                 '":include:/etc/passwd"@example.com', '"|sh -c id"']:
        r = c.cmd(f"RCPT TO:<{rcpt}>")
        assert r.code == 550 and r.lines[0].startswith("5.1.1"), (rcpt, r)
    c.cmd("QUIT")
    c.close()
    assert gw.records() == []


def test_cr_or_nul_in_envelope_arguments(gw):
    """T42: a bare CR or NUL inside EHLO, MAIL or RCPT arguments -> 501."""
    gw.write_aliases('support: "|@REC@"\n')
    c = gw.session()
    c.reply()
    c.send(b"EHLO evil\rhost\r\n")
    assert c.reply().code == 501
    c.send(b"EHLO evil\x00host\r\n")
    assert c.reply().code == 501
    assert c.cmd("EHLO good").code == 250
    c.send(b"MAIL FROM:<a\rb@remote.test>\r\n")
    assert c.reply().code == 501
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    c.send(b"RCPT TO:<support\x00@example.com>\r\n")
    assert c.reply().code == 501
    c.cmd("QUIT")
    c.close()


def test_program_output_cannot_inject_replies(gw):
    """T44: the program prints CR LF "250-fake" CR LF "250 ok" and exits 75 ->
    exactly one 451 line reaches the client, the program's words in it without
    CR or LF, and the stream stays in sync.  The alias runs the recorder without
    a shell (its --print-hex needs no backslash), so the CR and LF really are in
    the program's output."""
    crlf_250 = b"\r\n250-fake\r\n250 ok\r\n".hex()
    gw.write_aliases(f'support: "|@REC@ --print-hex {crlf_250} --exit 75"\n')
    assert "execve" in gw.run("--route", "support@example.com").stdout
    c = gw.session()
    c.greet()
    r = c.mail(rcpts=["support@example.com"])
    assert r.code == 451 and len(r.lines) == 1, r
    assert "250-fake" in r.lines[0], r      # the injected text did arrive, made harmless
    assert "\r" not in r.lines[0] and "\n" not in r.lines[0]
    c.send("NOOP\r\n")
    assert c.reply().code == 250   # nothing extra was queued in the stream
    c.cmd("QUIT")
    c.close()


def test_program_environment_is_exactly_documented(gw):
    """T47: only the documented variables; nothing from the server's environment."""
    gw.write_aliases('support: "|@REC@"\n')
    env = {"PATH": "/usr/bin:/bin", "LD_LIBRARY_PATH": "/nonexistent", "IFS": "x",
           "SECRET": "s", "TCPREMOTEIP": "10.9.9.9"}
    c = gw.session(env=env)
    c.greet("helo.test")
    assert c.mail(rcpts=["support+ext@example.com"]).code == 250
    c.cmd("QUIT")
    c.close()
    rec = gw.one_record()
    assert set(rec.env) == {"PATH", "HOME", "SHELL", "USER", "LOGNAME", "SENDER", "RECIPIENT",
                            "ORIGINAL_RECIPIENT", "LOCAL", "DOMAIN", "EXTENSION",
                            "CLIENT_ADDRESS", "CLIENT_HELO", "QUEUE_ID", "DELIVERY_ID"}
    assert rec.env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    assert rec.env["LOCAL"] == "support+ext" and rec.env["EXTENSION"] == "ext"
    assert rec.env["DOMAIN"] == "example.com"
    assert rec.env["CLIENT_ADDRESS"] == "127.0.0.1" and rec.env["CLIENT_HELO"] == "helo.test"
    assert rec.env["USER"] == rec.env["LOGNAME"] == "nobody"
    assert len(rec.env["DELIVERY_ID"]) == 32 and len(rec.env["QUEUE_ID"]) == 12


def test_nothing_written_to_fd2_in_inetd_mode(gw):
    """SPEC 2/10: in inetd mode fd 2 is the socket; only SMTP replies reach the client."""
    gw.write_aliases('support: "|@REC@ --print oops --exit 64"\nbroken-line\n')
    c = gw.session(args=("-v",))
    c.greet()
    c.cmd("MAIL FROM:<a@remote.test>")
    c.cmd("RCPT TO:<support@example.com>")
    c.cmd("QUIT")
    c.close()
    for line in c.raw.split(b"\r\n")[:-1]:
        assert line[:3].isdigit() and line[3:4] in (b" ", b"-"), line
    assert c.raw.endswith(b"\r\n")
