"""OAuth2 to the smarthost (issue 20 part 3): AUTH XOAUTH2 and OAUTHBEARER
with tokens from the administrator's helper, against a local SMTP server
(aiosmtpd) that checks each exchange byte for byte, answers a refused token
with the mechanism's error challenge, and expires tokens.  The token is kept
until the helper's stated expiry; a refused one is fetched again, once; none
is ever sent without TLS."""
import base64
import os
import pwd
import ssl
import threading

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from smarthost import free_port
from test_spool import queue_ids, send
from test_tls_auth import make_cert


class OAuthServer:
    """STARTTLS required; AUTH XOAUTH2 and OAUTHBEARER; tokens in self.valid."""

    def __init__(self, base, user="gw@example.net"):
        self.user, self.valid, self.seen, self.messages = user, set(), [], []
        self.port = free_port()
        crt, key = make_cert(base, "localhost")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(crt), str(key))
        outer = self

        class Handler:
            async def auth_XOAUTH2(self, server, args):
                raw = base64.b64decode(args[1]).decode()
                outer.seen.append(("XOAUTH2", raw))
                want = f"user={outer.user}\x01auth=Bearer "
                token = raw[len(want):-2] if raw.startswith(want) and \
                    raw.endswith("\x01\x01") else None
                if token in outer.valid:
                    return AuthResult(success=True)
                answer = await server.challenge_auth(
                    b'{"status":"401","schemes":"bearer","scope":"https://mail/"}')
                outer.seen.append(("XOAUTH2-error-answer", answer))
                return AuthResult(success=False, handled=False)

            async def auth_OAUTHBEARER(self, server, args):
                raw = base64.b64decode(args[1]).decode()
                outer.seen.append(("OAUTHBEARER", raw))
                want = (f"n,a={outer.user},\x01host=localhost\x01port={outer.port}"
                        f"\x01auth=Bearer ")
                token = raw[len(want):-2] if raw.startswith(want) and \
                    raw.endswith("\x01\x01") else None
                if token in outer.valid:
                    return AuthResult(success=True)
                answer = await server.challenge_auth(
                    b'{"status":"invalid_token","scope":"https://mail/"}')
                outer.seen.append(("OAUTHBEARER-error-answer", answer))
                return AuthResult(success=False, handled=False)

            async def handle_DATA(self, server, session, envelope):
                outer.messages.append(envelope)
                return "250 2.0.0 Ok: stored"

        self.ca = crt
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port,
                                     tls_context=ctx, require_starttls=True,
                                     auth_require_tls=True, auth_required=True,
                                     ready_timeout=10)

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()


def helper(gw, tokens, lifetime=None):
    """A token helper: each run prints the next token of the list (and the
    lifetime, if given); it counts its runs in a file."""
    state = gw.base / "helper-state"
    state.write_text("0\n")
    listing = gw.base / "tokens"
    listing.write_text("".join(t + "\n" for t in tokens))
    prog = gw.base / "token-helper"
    prog.write_text("#!/bin/sh\n"
                    f'n=$(cat {state}); n=$((n + 1)); echo $n > {state}\n'
                    f'sed -n "${{n}}p" {listing}\n' +
                    (f"echo {lifetime}\n" if lifetime is not None else ""))
    prog.chmod(0o755)
    for p in (state, listing):
        p.chmod(0o666)
    return prog, state


def runs(state):
    return int(state.read_text())


def oauth_conf(gw, server, mech, prog, tls="starttls", extra=""):
    gw.write_conf(f'smarthost "cloud" {{\n  host = "localhost"\n  port = {server.port}\n'
                  f'  tls = {tls}\n  ca_file = "{server.ca}"\n  auth_user = "{server.user}"\n'
                  f'  auth_mechanism = {mech}\n  auth_token_command = "{prog} --scope mail"\n'
                  f'  timeout = 10s\n{extra}}}\n'
                  f'queue {{ run_after_accept = false }}\n')


@pytest.mark.parametrize("mech", ["xoauth2", "oauthbearer"])
def test_token_kept_then_refreshed_once(gw, mech):
    """The first run asks the helper; the token is kept (its stated lifetime)
    and used again by the next run without the helper; when the server has
    expired it, the refusal is answered as the mechanism says, a fresh token is
    fetched once, and the mail goes."""
    server = OAuthServer(gw.base).start()
    try:
        prog, state = helper(gw, ["tok1", "tok2", "tok3"], lifetime=3600)
        oauth_conf(gw, server, mech, prog)
        server.valid = {"tok1"}
        assert send(gw, ["a@remote.example"]).code == 250
        assert gw.run("-q").returncode == 0, gw.run("--queue").stdout + gw.log_text()
        assert runs(state) == 1 and len(server.messages) == 1
        assert send(gw, ["b@remote.example"]).code == 250
        assert gw.run("-q").returncode == 0
        assert runs(state) == 1 and len(server.messages) == 2     # kept, not re-asked
        server.valid = {"tok2"}                                    # tok1 expired
        assert send(gw, ["c@remote.example"]).code == 250
        assert gw.run("-q").returncode == 0
        assert runs(state) == 2 and len(server.messages) == 3
        name = "XOAUTH2" if mech == "xoauth2" else "OAUTHBEARER"
        answers = [a for m, a in server.seen if m == name + "-error-answer"]
        assert answers == [b""] if mech == "xoauth2" else answers == [b"\x01"]
        tokens = [raw.rsplit("Bearer ", 1)[1][:-2] for m, raw in server.seen if m == name]
        assert tokens == ["tok1", "tok1", "tok1", "tok2"]
        kept = gw.spool / "tmp" / "oauth-cloud.token"
        assert kept.read_text().split("\n")[1] == "tok2"
        assert (kept.stat().st_mode & 0o777) == 0o600
    finally:
        server.stop()


def test_refused_twice_is_deferred(gw):
    """Both the kept token and a fresh one refused: the message is deferred (the
    configuration's fault, never the mail's), and the helper ran once more only."""
    server = OAuthServer(gw.base).start()
    try:
        prog, state = helper(gw, ["old", "stale"])
        oauth_conf(gw, server, "xoauth2", prog)
        server.valid = set()
        assert send(gw, ["a@remote.example"]).code == 250
        assert gw.run("-q").returncode == 75
        assert runs(state) == 2 and server.messages == []
        assert "authentication failed: 535" in gw.run("--queue").stdout
        assert len(queue_ids(gw)) == 1
    finally:
        server.stop()


def test_never_without_tls_and_probe(gw):
    """tls = none with OAuth2 is a configuration error; tls = may against a
    server without STARTTLS sends no token; --probe-smarthost shows the
    exchange."""
    server = OAuthServer(gw.base).start()
    try:
        prog, state = helper(gw, ["tok1"])
        oauth_conf(gw, server, "oauthbearer", prog, tls="none")
        r = gw.run("--check-config")
        assert r.returncode == 1 and "never sent without TLS" in r.stderr
        oauth_conf(gw, server, "oauthbearer", prog)
        server.valid = {"tok1"}
        p = gw.run("--probe-smarthost")
        assert p.returncode == 0, p.stdout + p.stderr
        assert "auth         OAUTHBEARER as gw@example.net: 235" in p.stdout
        assert "tok1" not in p.stdout                    # the token is never shown
    finally:
        server.stop()
    # A plain server that offers no STARTTLS: tls = may goes on without TLS, and
    # then must not send the token.
    import socket
    plain = socket.socket()
    plain.bind(("127.0.0.1", 0))
    plain.listen(1)
    port = plain.getsockname()[1]
    seen = []

    def serve():
        c, _ = plain.accept()
        f = c.makefile("rwb")
        f.write(b"220 plain.test ESMTP\r\n")
        f.flush()
        while True:
            line = f.readline()
            if not line:
                break
            seen.append(line)
            if line.upper().startswith(b"EHLO"):
                f.write(b"250-plain.test\r\n250 AUTH XOAUTH2 OAUTHBEARER\r\n")
            elif line.upper().startswith(b"QUIT"):
                f.write(b"221 bye\r\n")
                f.flush()
                break
            else:
                f.write(b"250 ok\r\n")
            f.flush()
        c.close()

    t = threading.Thread(target=serve)
    t.start()
    try:
        gw.write_conf(f'smarthost "cloud" {{\n  host = "127.0.0.1"\n  port = {port}\n'
                      f'  tls = may\n  auth_user = "u@example.net"\n'
                      f'  auth_mechanism = xoauth2\n  auth_token_command = "{prog}"\n'
                      f'  timeout = 5s\n}}\n')
        p = gw.run("--probe-smarthost")
        assert p.returncode == 75
        assert "refusing to send an OAuth2 token without TLS" in p.stdout
        assert not any(l.upper().startswith(b"AUTH") for l in seen)
    finally:
        t.join(timeout=10)
        plain.close()
