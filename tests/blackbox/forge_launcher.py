"""What a session taken over could send its root launcher (issue 15 item 2).

Run as the session user with the launcher socket as fd argv[1] and a marker
path as argv[2]: sends forged requests, each with a message fd and an answer
socket, and prints one line per request: its name, the outcome number and
the launcher's words.  Used by test_privilege.py; not part of undersmtpd.
"""
import os
import fcntl
import socket
import struct
import sys

OLD_MAGIC = 0x55534D31     # the request form before issue 15: argv, env, uid, gid
NEW_MAGIC = 0x55534D33     # issue 20: 8 fields, the last two a kind and RECIPIENTS


def old_request(uid, gid, argv, env):
    head = struct.pack("=5Iiq", OLD_MAGIC, len(argv), len(env), uid, gid, 1, 10)
    strings = ["/usr/bin:/bin", "/", *argv, *env]
    return head + b"".join(s.encode() + b"\0" for s in strings)


def new_request(fields, nfields=None):
    head = struct.pack("=II", NEW_MAGIC, len(fields) if nfields is None else nfields)
    return head + b"".join(f.encode() + b"\0" for f in fields)


def ask(sock, data, output=False):
    """output: a third fd, a pipe for the program's standard output (a filter's)."""
    # Sealed, as a session's are: the launcher looks at nothing else.
    with open(os.memfd_create("forged", os.MFD_ALLOW_SEALING), "w+b") as msg:
        msg.write(b"Subject: forged\n\nforged\n")
        msg.flush()
        fcntl.fcntl(msg.fileno(), fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE |
                    fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK)
        msg.seek(0)
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fds = [msg.fileno(), theirs.fileno()]
        if output:
            r, w = os.pipe()
            fds.append(w)
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                               struct.pack("i" * len(fds), *fds))])
        theirs.close()
        if output:
            os.close(r)
            os.close(w)
        mine.settimeout(30)
        answer = mine.recv(4096)
        mine.close()
    if len(answer) < 24:
        return -1, "no answer"
    outcome = struct.unpack_from("i", answer, 0)[0]
    words = answer[24:24 + 201].split(b"\0", 1)[0].decode("utf-8", "replace")
    return outcome, words


def main():
    sock = socket.socket(fileno=int(sys.argv[1]))
    marker = sys.argv[2]
    nobody = 65534
    shell = ["/bin/sh", "-c", f"touch {marker}"]
    good = ["x@example.com", "a@remote.test", "192.0.2.1", "helo", "ABCDEF123456", "", "",
            ""]
    forged = {
        "shell as pipe.user": old_request(nobody, nobody, shell, ["PATH=/bin"]),
        "LD_PRELOAD": old_request(nobody, nobody, ["/bin/true"],
                                  [f"LD_PRELOAD={marker}.so", "PATH=/bin"]),
        "uid not in the configuration": old_request(5, 60, shell, []),
        "unknown alias": new_request(["nosuch@example.com", *good[1:]]),
        "address alias": new_request(["fwd@example.com", *good[1:]]),
        "program as recipient": new_request([f"|/bin/sh -c touch {marker}", *good[1:]]),
        "oversized count": new_request(good, nfields=0xFFFFFFFF),
        "oversized field": new_request([good[0], "s" * 5000, *good[2:]]),
        "oversized message": b"\0" * 100000,
        "control character": new_request([*good[:3], "helo\r\nX-Evil: 1", *good[4:]]),
        "capture as an option": new_request(["rt--help@example.com", *good[1:]]),
        "filter nobody configured": new_request(["fwd@example.com", *good[1:6], "filter",
                                                 ""]),
        "filter output of ours": new_request([*good[:6], "filter", ""]),
        "kind of its own": new_request([*good[:6], "shell", ""]),
        "program with an output of ours": new_request(good),
    }
    for name, data in forged.items():
        outcome, words = ask(sock, data, output=name.endswith("output of ours"))
        print(f"{name}\t{outcome}\t{words}", flush=True)


if __name__ == "__main__":
    main()
