"""TESTCATALOGUE G: a full disk while a message is being received.

The spool is a 1 MiB tmpfs (root only, as tests and CI run).  Messages being
received are streamed to spool_dir/tmp, so a message larger than the free
space hits ENOSPC mid-DATA."""
import os
import subprocess

import pytest


@pytest.fixture
def small_spool(gw):
    gw.spool.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs",
                        str(gw.spool)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: " + r.stderr.strip())
    try:
        yield gw.spool
    finally:
        subprocess.run(["umount", str(gw.spool)])


def test_enospc_during_data(gw, small_spool):
    """T66: ENOSPC on write during DATA -> read to the end of data, then 452 4.3.1;
    no partial file left; the session goes on and the next message is delivered."""
    gw.write_conf("min_free_space = 1k\nmax_message_size = 10M\n")
    gw.write_aliases('x: "|@REC@"\n')
    c = gw.session()
    c.greet()
    body = b"Subject: big\r\n\r\n" + (b"b" * 998 + b"\r\n") * 2048     # 2 MiB
    r = c.mail(rcpts=["x@example.com"], body=body)
    assert r.code == 452 and r.lines[0].startswith("4.3.1"), r
    assert gw.records() == []
    assert [p.name for p in (small_spool / "tmp").glob("*.msg")] == []
    r = c.mail(rcpts=["x@example.com"], body=b"Subject: small\r\n\r\nfits\r\n")
    assert r.code == 250
    c.cmd("QUIT")
    c.close()
    assert gw.one_record().body() == b"fits\n"
    assert "No space left on device" in gw.log_text()


def test_free_space_threshold_at_mail(gw, small_spool):
    """T65: free space below min_free_space at MAIL -> 452 4.3.1."""
    gw.write_conf("min_free_space = 2M\n")
    c = gw.session()
    c.greet()
    r = c.cmd("MAIL FROM:<a@remote.test>")
    assert r.code == 452 and r.lines[0].startswith("4.3.1")
    c.cmd("QUIT")
    c.close()


def test_disk_full_for_spooled_mail(gw, small_spool):
    """T66 for mail to the smarthost: 452 after DATA, nothing half-written in tmp/ or
    queue/, the session goes on and a small message is then spooled."""
    gw.write_conf('min_free_space = 1k\nmax_message_size = 10M\n'
                  'smarthost "s" { host = "127.0.0.1" port = 9 tls = none }\n'
                  'queue { run_after_accept = false }\n')
    c = gw.session()
    c.greet()
    body = b"Subject: big\r\n\r\n" + (b"b" * 998 + b"\r\n") * 2048
    r = c.mail(rcpts=["bob@remote.example"], body=body)
    assert r.code == 452 and r.lines[0].startswith("4.3.1"), r
    assert list((small_spool / "tmp").glob("*.msg")) == []
    assert list((small_spool / "queue").iterdir()) == []
    assert c.mail(rcpts=["bob@remote.example"]).code == 250
    c.cmd("QUIT")
    c.close()
    assert len(list((small_spool / "queue").glob("*.env"))) == 1


def test_disk_fills_while_writing_a_dsn(gw, small_spool):
    """T68: no room for the DSN -> the original message is kept and retried; once
    there is room, the DSN goes out.  No loop, nothing lost."""
    from smarthost import Sink
    sink = Sink().start()
    try:
        gw.write_conf(f'min_free_space = 1k\n'
                      f'smarthost "s" {{ host = "127.0.0.1" port = {sink.port} tls = none }}\n'
                      'queue { run_after_accept = false }\n')
        c = gw.session()
        c.greet()
        assert c.mail(rcpts=["gone@remote.example"]).code == 250
        c.cmd("QUIT")
        c.close()
        sink.rcpt_replies = {"gone@remote.example": "550 5.1.1 no such user"}
        filler = small_spool / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:                                   # fill the tmpfs to the last block
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        assert gw.run("-q").returncode == 75   # the DSN could not be spooled
        assert len(list((small_spool / "queue").glob("*.env"))) == 1
        assert sink.messages == []
        assert "cannot spool the non-delivery notification" in gw.log_text()
        filler.unlink()
        assert gw.run("-q").returncode == 0
        (dsn,) = sink.wait_messages(1)
        assert dsn.sender == "" and b"Status: 5.1.1" in dsn.data
        assert list((small_spool / "queue").glob("*.env")) == []
    finally:
        sink.stop()
