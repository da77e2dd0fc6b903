"""A private, real Postfix (Debian's postfix package) for the tests: its own
configuration directory, queue and mailbox under a test directory, listening
on a free 127.0.0.1 port, delivering every message for its domain into one
mbox file with virtual(8).  Never touches the system instance."""
import os
import pwd
import subprocess
import time
from pathlib import Path

from smarthost import free_port
from conftest import tool

SERVICES = """\
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def private_main_cf(base, myhostname, mydestination=""):
    """What every private instance's main.cf says: its own queue, data and log
    under base, loopback only, relaying for loopback clients."""
    return f"""\
compatibility_level = 3.6
queue_directory = {base}/queue
data_directory = {base}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = {myhostname}
mydestination = {mydestination}
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
maillog_file = {base}/postfix.log
maillog_file_prefixes = {base}
smtputf8_enable = no
"""


def available():
    return tool("postfix") is not None and os.path.exists("/usr/lib/postfix/sbin/master")


class Postfix:
    def __init__(self, base, domain="remote.example", extra_master="", extra_main=""):
        self.base = Path(base)
        self.port = free_port()
        self.conf = self.base / "conf"
        self.mailbox = self.base / "mail" / "mailbox"
        self.log = self.base / "postfix.log"
        nobody = pwd.getpwnam("nobody")
        for d in ("conf", "queue", "data", "mail"):
            (self.base / d).mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o755)
        os.chown(self.base / "mail", nobody.pw_uid, nobody.pw_gid)
        os.chown(self.base / "data", pwd.getpwnam("postfix").pw_uid, -1)
        (self.conf / "main.cf").write_text(private_main_cf(self.base, "postfix-sink.test") + f"""\
virtual_mailbox_domains = {domain}
virtual_mailbox_base = {self.base}/mail
virtual_mailbox_maps = static:mailbox
virtual_uid_maps = static:{nobody.pw_uid}
virtual_gid_maps = static:{nobody.pw_gid}
{extra_main}""")
        (self.conf / "master.cf").write_text(
            f"127.0.0.1:{self.port} inet n - n - - smtpd\n" + SERVICES + extra_master)

    def postfix(self, *args):
        return subprocess.run([tool("postfix"), "-c", str(self.conf), *args],
                              capture_output=True, text=True, timeout=60)

    def start(self):
        r = self.postfix("start")
        if r.returncode != 0:
            raise RuntimeError("postfix start failed: " + r.stdout + r.stderr +
                               (self.log.read_text() if self.log.exists() else ""))
        return self

    def stop(self):
        self.postfix("stop")

    def messages(self):
        """The mbox split into messages (each starts with a 'From ' line)."""
        if not self.mailbox.exists():
            return []
        text = self.mailbox.read_bytes()
        parts = [p for p in text.split(b"\nFrom ") if p.strip()]
        return parts

    def wait_messages(self, n, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            msgs = self.messages()
            if len(msgs) >= n:
                return msgs
            time.sleep(0.1)
        return self.messages()
