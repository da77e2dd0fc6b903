"""The aliases file at work in sessions (SPEC 4): reload, :include:, -a, RT's
two-line form, address targets, and the built-in defaults."""
import os
import time


def test_rt_two_line_form_argv(gw):
    """SPEC 4: a quoted command continued on an indented line is one command."""
    gw.write_aliases('rt: "|@REC@ --queue General --action correspond\n'
                     '       --url http://rt.example.com/"\n')
    c = gw.session()
    c.greet()
    assert c.mail(rcpts=["rt@example.com"]).code == 250
    c.cmd("QUIT")
    c.close()
    assert gw.one_record().argv[3:] == ["--queue", "General", "--action", "correspond",
                                        "--url", "http://rt.example.com/"]


def test_reload_on_change_and_broken_file_kept_out(gw):
    """SPEC 4: a changed file is re-read without dropping the session; a broken
    new file keeps the old table and logs why."""
    gw.write_aliases('a: "|@REC@ --exit 0"\n')
    c = gw.session()
    c.greet()
    assert c.mail(rcpts=["a@example.com"]).code == 250
    time.sleep(0.01)
    gw.write_aliases('a: "|@REC@ --exit 75"\nb: "|@REC@ --exit 0"\n')
    assert c.mail(rcpts=["a@example.com"]).code == 451      # new table in force
    assert c.mail(rcpts=["b@example.com"]).code == 250
    gw.write_aliases('a: "|@REC@ --exit 0"\nbroken line without colon\n')
    assert c.mail(rcpts=["b@example.com"]).code == 250      # old table kept
    assert c.cmd("MAIL FROM:<x@remote.test>").code == 250
    assert c.cmd("RCPT TO:<a@example.com>").code == 250
    c.cmd("RSET")
    c.cmd("QUIT")
    c.close()
    log = gw.log_text()
    assert "aliases %s reloaded" % gw.aliases in log
    assert "keeping the previous table" in log and f"{gw.aliases}:2:" in log


def test_broken_aliases_at_start_is_temporary(gw):
    """STYLE habit 9: an unreadable table means 451 for local recipients, never 550."""
    gw.write_aliases("this is not an alias line\n")
    c = gw.session()
    c.greet()
    c.cmd("MAIL FROM:<x@remote.test>")
    r = c.cmd("RCPT TO:<anyone@example.com>")
    assert r.code == 451
    c.cmd("QUIT")
    c.close()


def test_include_file(gw):
    """SPEC 4: :include:/path adds the values of another file."""
    inc = gw.base / "team.list"
    inc.write_text(f'# the team\n"|{gw.recorder} --dir {gw.rec} --from-include"\n')
    inc.chmod(0o644)
    gw.write_aliases(f"team: :include:{inc}\n")
    c = gw.session()
    c.greet()
    assert c.mail(rcpts=["team@example.com"]).code == 250
    c.cmd("QUIT")
    c.close()
    assert gw.one_record().argv[-1] == "--from-include"


def test_include_file_writable_by_others_disables_its_pipes(gw):
    """SPEC 7: an included file that others may write cannot name programs."""
    inc = gw.base / "team.list"
    inc.write_text(f'"|{gw.recorder} --dir {gw.rec}"\n')
    inc.chmod(0o666)
    gw.write_aliases(f"team: :include:{inc}\n")
    c = gw.session()
    c.greet()
    c.cmd("MAIL FROM:<x@remote.test>")
    assert c.cmd("RCPT TO:<team@example.com>").code == 451
    c.cmd("QUIT")
    c.close()


def test_dash_a_overrides_configuration(gw):
    """SPEC 2: -a FILE replaces the `aliases` of the configuration."""
    other = gw.base / "other-aliases"
    other.write_text(f'only: "|{gw.recorder} --dir {gw.rec}"\n')
    other.chmod(0o644)
    gw.write_aliases("")
    c = gw.session(args=("-a", str(other)))
    c.greet()
    assert c.mail(rcpts=["only@example.com"]).code == 250
    c.cmd("QUIT")
    c.close()
    assert len(gw.records()) == 1


def test_no_configuration_file_at_all(gw):
    """SPEC 3: with no configuration file, `undersmtpd -a aliases` serves a session
    (the default file is missing: built-in defaults)."""
    import subprocess
    from conftest import UNDERSMTPD
    gw.write_aliases('demo: "|@REC@"\n')
    r = subprocess.run([UNDERSMTPD, "-a", str(gw.aliases), "--route", "demo@localhost"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "pipe" in r.stdout, r


def test_missing_explicit_configuration_is_an_error(gw):
    r = gw.run("--check-config")
    assert r.returncode == 0
    r2 = __import__("subprocess").run(
        [gw.argv()[0], "-C", str(gw.base / "nope.conf"), "--check-config"],
        capture_output=True, text=True)
    assert r2.returncode == 1 and "nope.conf" in r2.stderr and "No such file" in r2.stderr


def test_broken_configuration_refuses_session_with_421(gw):
    gw.conf.write_text("timeout = never\n")
    c = gw.session()
    r = c.reply()
    assert r.code == 421
    c.close()


def test_cli_usage_errors(gw):
    import subprocess
    from conftest import UNDERSMTPD
    for args in (["--bogus"], ["--route"], ["extra-argument"]):
        r = subprocess.run([UNDERSMTPD, *args], capture_output=True, text=True)
        assert r.returncode == 64, (args, r)
    r = subprocess.run([UNDERSMTPD, "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("undersmtpd ")
    r = subprocess.run([UNDERSMTPD, "--sendmail", "-X", "/tmp/x"], capture_output=True,
                       text=True, stdin=subprocess.DEVNULL)
    assert r.returncode == 64 and "-X: option not supported" in r.stderr
    r = subprocess.run([UNDERSMTPD, "-q", "--sendmail"], capture_output=True, text=True)
    assert r.returncode == 64 and "--sendmail must come first" in r.stderr


def test_capture_never_becomes_an_option(gw):
    """T116: a regex capture that would be a whole argument starting with '-'
    (rt---help@ for "|prog $1") -> 550 5.1.3 at RCPT, logged, the program never
    runs; inside an argument the administrator started ("--queue=$1") it is data."""
    gw.write_aliases('/^rt-(.*)$/: "|@REC@ $1"\n/^q-(.*)$/: "|@REC@ --queue=$1"\n')
    c = gw.session()
    c.greet()
    c.cmd("MAIL FROM:<a@remote.test>")
    for rcpt in ("rt---help@example.com", "rt--x@example.com"):
        r = c.cmd(f"RCPT TO:<{rcpt}>")
        assert r.code == 550 and r.lines[0].startswith("5.1.3"), (rcpt, r)
    c.cmd("RSET")
    assert c.mail(rcpts=["q--x@example.com"]).code == 250
    c.cmd("QUIT")
    c.close()
    assert "a regex capture would start an argument of the program with '-'" in \
        gw.log_text()
    rec = gw.one_record()
    assert rec.argv[-1] == "--queue=-x"
    r = gw.run("--route", "rt---help@example.com")
    assert r.returncode == 1 and "rejected 550 5.1.3" in r.stdout


def test_captures_and_extension_keep_the_senders_case(gw):
    """Issue 15 (SPEC 4): matching is case-insensitive, but a capture, its
    MATCH_ variable and EXTENSION reach the program as the sender wrote them
    (rt-Foo was rt-foo)."""
    gw.write_aliases('/^rt-(?<queue>.*)$/: "|@REC@ --queue=$1"\nsupport: "|@REC@"\n')
    c = gw.session()
    c.greet()
    assert c.mail(rcpts=["RT-Billing@example.com"]).code == 250
    assert c.mail(rcpts=["Support+Ticket42@Example.COM"]).code == 250
    c.cmd("QUIT")
    c.close()
    first, second = gw.records()
    assert first.argv[-1] == "--queue=Billing"
    assert first.env["MATCH_1"] == "Billing" and first.env["MATCH_queue"] == "Billing"
    assert second.env["EXTENSION"] == "Ticket42"
    assert second.env["LOCAL"] == "Support+Ticket42"


def test_bv_and_bp_outside_sendmail_mode(gw):
    """SPEC 2 (issue 15): undersmtpd -bv ADDRESS is --route, -bp is --queue, as
    the table says; other -b modes are a usage error (64)."""
    gw.write_aliases('support: "|@REC@"\n')
    r = gw.run("-bv", "support@example.com", "nosuch@example.com")
    assert r.returncode == 1
    assert "support@example.com: pipe" in r.stdout and "rejected 550 5.1.1" in r.stdout
    assert gw.run("-bp").returncode == 0
    r = gw.run("-bx")
    assert r.returncode == 64 and "only -bv and -bp" in r.stderr
