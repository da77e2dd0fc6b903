"""TESTCATALOGUE E: relay control.  Trust comes only from getpeername()."""
import socket

import pytest

UNTRUSTED = "127.0.0.2"     # a loopback source outside relay_networks below


def untrusted_gw(gw):
    gw.write_conf('relay_networks = { "127.0.0.1/32" }\n'
                  'smarthost "isp" { host = "127.0.0.1" port = 2 }\n')
    gw.write_aliases('support: "|@REC@"\n')


def rcpt_codes(gw, source, rcpts, sender="a@remote.test", helo="client.test"):
    c = gw.session(source=source)
    c.greet(helo)
    assert c.cmd(f"MAIL FROM:<{sender}>").code == 250
    out = [c.cmd(f"RCPT TO:<{r}>") for r in rcpts]
    c.cmd("QUIT")
    c.close()
    return out


def test_foreign_recipient_denied(gw):
    """T48: RCPT <v@foreign> from an untrusted client -> 554 5.7.1."""
    untrusted_gw(gw)
    (r,) = rcpt_codes(gw, UNTRUSTED, ["v@foreign.test"])
    assert r.code == 554 and r.lines[0].startswith("5.7.1"), r


@pytest.mark.parametrize("sender,helo", [
    ("boss@example.com", "client.test"), ("", "client.test"), ("x@localhost", "client.test"),
    ("x", "client.test"), ("a@remote.test", "mx.example.com"), ("a@remote.test", "[127.0.0.1]")])
def test_trust_never_from_envelope_or_helo(gw, sender, helo):
    """T49: sender in our domain, <>, localhost, unqualified, HELO as us -> still denied."""
    untrusted_gw(gw)
    (r,) = rcpt_codes(gw, UNTRUSTED, ["v@foreign.test"], sender=sender, helo=helo)
    assert r.code == 554, r


@pytest.mark.parametrize("rcpt", [
    "v%foreign.test@example.com", "v%foreign.test@[127.0.0.1]",          # T50
    "v@foreign.test@example.com", '"v@foreign.test"@example.com',        # T51
    '"v%foreign.test"@example.com', '"v@foreign.test"',
    "foreign.test!v", "foreign.test!v@example.com", "foreign.test!v@[127.0.0.1]",  # T52
    "@example.com:v@foreign.test",                                       # T53
    "v@foreign.test.", "v@FOREIGN.TEST", "v@[192.0.2.1]",                # T54
])
def test_routing_tricks_never_relay(gw, rcpt):
    """T50-T54: percent hack, quoted @, bang paths, source routes, literals -> 5xx."""
    untrusted_gw(gw)
    (r,) = rcpt_codes(gw, UNTRUSTED, [rcpt])
    assert 500 <= r.code < 600, (rcpt, r)
    if rcpt == "v%foreign.test@example.com":
        # T50: the percent hack is not done: an unknown local user, by its name.
        assert r.code == 550 and r.text.startswith("5.1.1 <v%foreign.test@example.com>"), r
    if rcpt == "v%foreign.test@[127.0.0.1]":
        # An address literal is never one of our domains (SPEC 5): no relay.
        assert r.code == 554 and r.text.startswith("5.7.1"), r
    assert gw.records() == []


def test_source_route_to_us_is_stripped(gw):
    """T53: <@foreign:u@ours> and <@a,@b:u@ours> -> accepted as u@ours."""
    untrusted_gw(gw)
    r1, r2 = rcpt_codes(gw, UNTRUSTED, ["@foreign.test:support@example.com",
                                        "@a.test,@b.test:support@example.com"])
    assert r1.code == 250 and r2.code == 250


def test_trailing_dot_and_case_on_our_domain(gw):
    """T54: <u@OURS.> -> the local user."""
    untrusted_gw(gw)
    (r,) = rcpt_codes(gw, UNTRUSTED, ["support@EXAMPLE.COM."])
    assert r.code == 250


def test_trusted_network_may_relay(gw):
    """T55: inside the trusted CIDR the foreign recipient is accepted (to be spooled);
    just outside it: 554."""
    untrusted_gw(gw)
    (inside,) = rcpt_codes(gw, "127.0.0.1", ["v@foreign.test"])
    (outside,) = rcpt_codes(gw, UNTRUSTED, ["v@foreign.test"])
    assert inside.code == 250
    assert outside.code == 554


def test_no_smarthost_configured(gw):
    """SPEC 5.3: a trusted client, a foreign recipient, no smarthost -> 550 5.3.5."""
    gw.write_aliases("")
    (r,) = rcpt_codes(gw, "127.0.0.1", ["v@foreign.test"])
    assert r.code == 550 and r.lines[0].startswith("5.3.5")


def test_ipv6_client_and_mapped_addresses(gw):
    """T55: ::1 matches ::1/128; the IPv4-mapped form of a client is matched as IPv4."""
    gw.write_conf('relay_networks = { "::1/128" }\nsmarthost "isp" { host = "127.0.0.1" }\n')
    c = gw.session(source="::1", family=socket.AF_INET6)
    c.greet()
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    assert c.cmd("RCPT TO:<v@foreign.test>").code == 250   # passed relay control
    c.cmd("QUIT")
    c.close()
    gw.write_conf('relay_networks = { "127.0.0.1/32" }\nsmarthost "isp" { host = "127.0.0.1" }\n')
    c = gw.session(source="::ffff:127.0.0.1", family=socket.AF_INET6)
    r = c.greet()
    assert "[127.0.0.1]" in r.lines[0]
    assert c.cmd("MAIL FROM:<a@remote.test>").code == 250
    assert c.cmd("RCPT TO:<v@foreign.test>").code == 250
    c.cmd("QUIT")
    c.close()


def test_forged_ucspi_environment_ignored_on_sockets(gw):
    """T56: with a socket on stdin, TCPREMOTEIP in the environment is ignored."""
    untrusted_gw(gw)
    env = {"PATH": "/usr/bin:/bin", "PROTO": "TCP", "TCPREMOTEIP": "127.0.0.1"}
    c = gw.session(source=UNTRUSTED, env=env)
    r = c.greet()
    assert f"[{UNTRUSTED}]" in r.lines[0]
    c.cmd("MAIL FROM:<a@remote.test>")
    assert c.cmd("RCPT TO:<v@foreign.test>").code == 554
    c.cmd("QUIT")
    c.close()


def test_ucspi_environment_used_only_without_socket(gw):
    """T56 (SPEC 2): stdin a pipe -> ucspi TCPREMOTEIP decides; none -> local client."""
    import subprocess
    untrusted_gw(gw)
    dialogue = b"EHLO x\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<v@foreign.test>\r\nQUIT\r\n"
    for env, expect in [({"PROTO": "TCP", "TCPREMOTEIP": "192.0.2.7"}, b"554 5.7.1"),
                        ({}, b"250 2.1.5")]:
        p = subprocess.run(gw.argv(), input=dialogue, capture_output=True, timeout=30,
                           env={"PATH": "/usr/bin:/bin", **env})
        assert expect in p.stdout, p.stdout
