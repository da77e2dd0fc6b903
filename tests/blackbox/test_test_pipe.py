"""undersmtpd --test-pipe (issue 19 part 2): one delivery to a pipe alias, shown
step by step, with the real rt-mailgate against a stopped and a running RT
endpoint; --dry-run shows the same without starting the program."""
import os
import subprocess

import pytest

from conftest import NOBODY, Record
from smarthost import free_port
from test_rt_mailgate import FakeRT, rt  # noqa: F401 (fixture)

MSG = b"From: customer@remote.test\nSubject: Printer on fire\n\nHelp!\n"


def run_test_pipe(gw, *args, data=MSG):
    r = subprocess.run(gw.argv("--test-pipe", *args), input=data, capture_output=True,
                       timeout=60)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def field(out, label):
    """The lines of one field of the report (the label's and its continuations)."""
    lines, inside = [], False
    for line in out.splitlines():
        if line.startswith(label):
            inside = True
            lines.append(line[14:])
        elif inside and line.startswith(" " * 14):
            lines.append(line[14:])
        else:
            inside = False if lines else inside
    return lines


def test_real_rt_mailgate_running_endpoint(gw, rt):
    """RT up: the program runs as the pipe user, gets the message and its
    envelope, exits 0; the report shows argv with the capture substituted, the
    environment, the output, and 250 as the reply; RT has the message."""
    code, out, err = run_test_pipe(gw, "rt-billing@example.com", "--from", "cust@remote.test")
    assert code == 0, out + err
    assert field(out, "alias:") == [f"^rt-(?<queue>[a-z]+)$, {gw.aliases}:5"]
    argv = field(out, "argv:")
    assert argv[0] == f"[0] {gw.base}/rt-mailgate" and "[2] billing" in argv
    env = field(out, "environment:")
    assert "SENDER=cust@remote.test" in env and "RECIPIENT=rt-billing@example.com" in env
    if os.geteuid() == 0:
        assert field(out, "user:")[0].startswith(f"nobody (uid {NOBODY.pw_uid},")
        assert "started by the root launcher" in field(out, "user:")[0]
    assert field(out, "loop check:") == ["no Delivered-To: <rt-billing@example.com> in "
                                         "the message"]
    assert field(out, "program:")[0].startswith("exit 0 after ")
    assert field(out, "output:")[0] == "| (none)" or field(out, "output:")
    assert field(out, "reply:")[0].startswith("250 2.0.0")
    (path, fields), = rt.posts
    assert fields["queue"] == b"billing" and fields["action"] == b"correspond"
    msg = fields["message"]
    assert msg.startswith(b"Return-Path: <cust@remote.test>\nDelivered-To: "
                          b"rt-billing@example.com\nReceived: by mx.example.com "
                          b"(undersmtpd, from userid %d)" % os.getuid())
    assert msg.endswith(MSG)                     # nothing added or changed
    assert "test delivery (--test-pipe" in gw.log_text()
    assert list((gw.spool / "tmp").glob("*.msg")) == []   # the stored copy is gone


def test_real_rt_mailgate_stopped_endpoint(gw, rt):
    """RT down: rt-mailgate exits 75 after its HTTP error, which it prints; the
    report shows both, the reply is 451 and the command exits 75."""
    rt.stop()
    code, out, err = run_test_pipe(gw, "support@example.com")
    assert code == 75, out + err
    assert field(out, "program:")[0].startswith("exit 75 (EX_TEMPFAIL)")
    output = "\n".join(field(out, "output:"))
    assert "An Error Occurred" in output or "Connection refused" in output, out
    assert field(out, "reply:")[0].startswith("451 4.")
    assert rt.posts == []


def test_dry_run_starts_nothing(gw):
    """--dry-run: the whole report up to the program, which is not started."""
    gw.write_aliases('support: "|@REC@ --queue support"\n')
    code, out, err = run_test_pipe(gw, "support@example.com", "--dry-run")
    assert code == 0, out + err
    assert field(out, "program:") == ["dry run: not started"]
    assert field(out, "aliases line:") == [f'"|{gw.recorder} --dir {gw.rec} --queue support"']
    assert "reply:" not in out
    assert gw.records() == []


def test_loop_and_not_a_pipe(gw):
    """A message that already went to the address is the loop a delivery refuses
    (554, exit 69, nothing run); an address that is no pipe alias is a usage
    error that says where it goes; a refused one shows the reply."""
    gw.write_aliases('support: "|@REC@"\nboss: boss@elsewhere.test\n')
    gw.write_conf('smarthost "isp" { host = "127.0.0.1" port = 2525 tls = none }\n')
    code, out, _ = run_test_pipe(gw, "support@example.com",
                             data=b"Delivered-To: support@example.com\n" + MSG)
    assert code == 69
    assert "a mail loop, refused with 554 5.4.6" in out
    assert gw.records() == []
    code, out, err = run_test_pipe(gw, "boss@example.com")
    assert code == 64 and "boss@example.com is not a pipe alias" in err
    code, out, err = run_test_pipe(gw, "nobody-here@example.com")
    assert code == 69 and field(out, "reply:")[0].startswith("550 5.1.1")


def test_program_output_and_failure(gw):
    """A program that prints several lines and exits 67: the first lines are
    shown, the reply is the 5xx the client would get (with its first line)."""
    prog = gw.base / "noisy"
    prog.write_text("#!/bin/sh\ncat >/dev/null\necho 'no such user here'\n"
                    "echo second line\nexit 67\n")
    prog.chmod(0o755)
    gw.write_aliases(f'noisy: "|{prog}"\n')
    code, out, _ = run_test_pipe(gw, "noisy@example.com")
    assert code == 69
    assert field(out, "program:")[0].startswith("exit 67 (EX_NOUSER)")
    assert field(out, "output:") == ["| no such user here", "| second line"]
    assert field(out, "reply:")[0].startswith("550 5.1.1") and \
        "no such user here" in field(out, "reply:")[0]
