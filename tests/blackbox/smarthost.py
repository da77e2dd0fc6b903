"""A programmable fake smarthost on Debian's python3-aiosmtpd.

It records every message it accepts (envelope and bytes, exactly as they came
over the wire) and can be told, per stage and per recipient, to answer 4xx or
5xx, to close the connection after the final dot, or to require STARTTLS and
AUTH.  It listens on 127.0.0.1 on a free port and is stopped by the test."""
import asyncio
import socket
import ssl
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Message:
    def __init__(self, envelope):
        self.sender = "" if envelope.mail_from == "<>" else envelope.mail_from
        self.rcpts = list(envelope.rcpt_tos)
        self.data = envelope.original_content or envelope.content
        self.mail_options = list(envelope.mail_options)

    def __repr__(self):
        return f"Message({self.sender!r} -> {self.rcpts!r}, {len(self.data)} bytes)"


class Handler:
    def __init__(self, sink):
        self.sink = sink

    async def handle_MAIL(self, server, session, envelope, address, options):
        self.sink.connections_seen.add(id(session))
        if self.sink.mail_reply:
            return self.sink.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        reply = self.sink.rcpt_replies.get(address.lower())
        if reply:
            return reply
        with self.sink.lock:
            if (address.lower() in self.sink.defer_first and
                    address.lower() not in self.sink.deferred_once):
                self.sink.deferred_once.add(address.lower())
                return "451 4.3.0 first attempt deferred"
            self.sink.rcpts_accepted += 1
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.sink.hold_data is not None:
            with self.sink.lock:
                self.sink.held_now += 1
                self.sink.held_most = max(self.sink.held_most, self.sink.held_now)
            self.sink.data_held.set()
            while not self.sink.hold_data.is_set():
                await asyncio.sleep(0.01)
            with self.sink.lock:
                self.sink.held_now -= 1
        if self.sink.drop_after_dot:
            server.transport.close()
            return "250 never seen"
        sender = "" if envelope.mail_from == "<>" else envelope.mail_from
        if self.sink.data_reply and (self.sink.data_reply_sender is None or
                                     self.sink.data_reply_sender == sender):
            return self.sink.data_reply
        with self.sink.lock:
            self.sink.messages.append(Message(envelope))
        return "250 2.0.0 Ok: stored"


class Sink:
    def __init__(self, tls_cert=None, tls_key=None, require_starttls=False,
                 users=None, port=None, smtputf8=False):
        self.messages = []
        self.lock = threading.Lock()
        self.rcpt_replies = {}
        self.mail_reply = None
        self.data_reply = None
        self.data_reply_sender = None      # None: data_reply is for every sender
        self.drop_after_dot = False
        self.connections_seen = set()
        self.defer_first = set()           # answered 451 the first time each is seen
        self.deferred_once = set()
        self.rcpts_accepted = 0            # RCPTs answered 250, delivered or not
        self.hold_data = None              # a threading.Event: hold each final dot's
        self.data_held = threading.Event() # reply until it is set; data_held says one waits
        self.held_now = 0                  # transactions waiting for their reply now
        self.held_most = 0                 # and the most that ever waited at once
        self.port = port or free_port()
        kwargs = {"enable_SMTPUTF8": smtputf8}
        if tls_cert:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(tls_cert, tls_key)
            kwargs.update(tls_context=ctx, require_starttls=require_starttls)
        if users is not None:
            def authenticator(server, session, envelope, mechanism, auth_data):
                ok = (isinstance(auth_data, LoginPassword) and
                      users.get(auth_data.login.decode()) == auth_data.password.decode())
                return AuthResult(success=ok, handled=False)
            kwargs.update(authenticator=authenticator, auth_required=True,
                          auth_require_tls=bool(tls_cert))
        self.controller = Controller(Handler(self), hostname="127.0.0.1", port=self.port,
                                     ready_timeout=10, **kwargs)

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()

    def wait_messages(self, n, timeout=20):
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                if len(self.messages) >= n:
                    return list(self.messages)
            time.sleep(0.05)
        with self.lock:
            return list(self.messages)
