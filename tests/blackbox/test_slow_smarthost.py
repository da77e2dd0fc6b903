"""T95: a smarthost that reads slowly.  The timeout is per block, so a large
message that keeps making progress is delivered even when the whole transfer
takes far longer than the timeout; a smarthost that stops reading is given up
after the timeout and the message is deferred, never lost."""
import socket
import threading
import time

from test_spool import queue_ids, send

TIMEOUT = 3          # smarthost.timeout in these tests, seconds
MESSAGE = 12 << 20   # larger than every socket buffer on the way (about 4 MB each)


class SlowSmarthost:
    """An SMTP server that takes the DATA in small bites: `slow_seconds` at
    about 1.5 MB/s (a bite every 40 ms), then all at once; or never."""

    def __init__(self, slow_seconds, stall=False):
        self.slow_seconds = slow_seconds
        self.stall = stall
        self.received = None
        self.data_seconds = None
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        conn, _ = self.listener.accept()
        conn.settimeout(120)
        f = conn.makefile("rb")
        conn.sendall(b"220 slow.test ESMTP\r\n")
        while True:
            line = f.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                conn.sendall(b"250 slow.test\r\n")
            elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                conn.sendall(b"250 ok\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            elif verb == b"DATA":
                conn.sendall(b"354 go\r\n")
                if self.stall:
                    time.sleep(120)
                    return
                self.take_data(f, conn)

    def take_data(self, f, conn):
        start = time.monotonic()
        data = bytearray()
        while not data.endswith(b"\r\n.\r\n"):
            slow = time.monotonic() - start < self.slow_seconds
            # f.read1 is one recv: a bite of at most 64 KB while slow.
            chunk = f.read1(65536 if slow else 1 << 20)
            if not chunk:
                return
            data += chunk
            if slow:
                time.sleep(0.04)
        self.data_seconds = time.monotonic() - start
        self.received = bytes(data)
        conn.sendall(b"250 2.0.0 taken\r\n")

    def close(self):
        self.listener.close()


def slow_conf(gw, port):
    gw.write_conf(f'smarthost "slow" {{ host = "127.0.0.1" port = {port} tls = none '
                  f'timeout = {TIMEOUT}s }}\n'
                  'queue { run_after_accept = false }\nmax_message_size = 30M\n')


def big_body():
    line = b"x" * 98 + b"\r\n"
    return b"Subject: big\r\n\r\n" + line * (MESSAGE // len(line))


def spool_and_run(gw, host):
    """A big message spooled for the slow smarthost, then one queue run: its
    result and how long it took."""
    slow_conf(gw, host.port)
    assert send(gw, ["bob@remote.example"], body=big_body()).code == 250
    t0 = time.monotonic()
    r = gw.run("-q", timeout=120)
    return r, time.monotonic() - t0


def test_slow_reader_making_progress_is_not_cut_off(gw):
    """T95: 8 s of slow reading against a 3 s timeout -> delivered, whole."""
    host = SlowSmarthost(slow_seconds=8)
    try:
        r, took = spool_and_run(gw, host)
        assert r.returncode == 0, r.stderr + gw.log_text()[-2000:]
        assert host.received is not None and len(host.received) > MESSAGE
        assert host.data_seconds > TIMEOUT * 2      # far longer than one timeout
        assert took > TIMEOUT * 2
        assert queue_ids(gw) == []
        assert "status=sent" in gw.log_text()
    finally:
        host.close()


def test_stalled_reader_times_out_and_defers(gw):
    """T95's other half: a smarthost that stops reading is given up after the
    timeout (not the RFC's 10 minutes), and the message stays queued."""
    host = SlowSmarthost(slow_seconds=0, stall=True)
    try:
        r, took = spool_and_run(gw, host)
        assert r.returncode == 75                       # something left to retry
        assert took < 60                                # the timeout fired
        assert len(queue_ids(gw)) == 1
        assert "status=deferred" in gw.log_text()
    finally:
        host.close()
