#!/usr/bin/python3
"""Read the valgrind logs of `make valgrind` (one per process: vg.PID) and
fail on anything a user would care about:

- any memcheck error (invalid read/write, uninitialised value, bad free...);
- memory definitely lost;
- a file descriptor left open at exit (--track-fds=yes) that the process
  did not inherit and that is not one it keeps for its whole life on purpose:
  the log file, the channel to the privileged launcher, a launcher worker's
  request, the exec-error pipe of a program that could not be started.  Any
  other one is a leak, found by where it was opened.
"""
import re
import sys
from pathlib import Path


# Where a process opens the descriptors it keeps until it exits (function names
# as valgrind prints them in the stack of the open).
LIFELONG = ("log_open (", "privsep_start (", "launcher_serve (", "child_exec (")


def check(path):
    text = path.read_text(errors="replace")
    problems = []
    m = re.search(r"ERROR SUMMARY: (\d+) errors", text)
    if m and int(m.group(1)) > 0:
        problems.append(f"{m.group(1)} memcheck errors")
    m = re.search(r"definitely lost: ([\d,]+) bytes", text)
    if m and int(m.group(1).replace(",", "")) > 0:
        problems.append(f"{m.group(1)} bytes definitely lost")
    # "Open file descriptor 5: /path" followed by where it was opened, or
    # "<inherited from parent>".
    for block in re.findall(r"Open (?:file descriptor|AF_\w+ socket) (\d+):([^\n]*)\n"
                            r"((?:==\d+==    [^\n]*\n)*)", text):
        fd, what, where = block
        if int(fd) <= 2 or "inherited from parent" in where:
            continue
        if any(site in where for site in LIFELONG):
            continue
        problems.append(f"fd {fd} ({what.strip()}) open at exit")
    return problems


def main():
    logs = sorted(Path(sys.argv[1]).glob("vg.*"))
    if not logs:
        sys.exit("valgrind: no logs: did the tests run under valgrind?")
    bad = 0
    for log in logs:
        problems = check(log)
        if problems:
            bad += 1
            print(f"== {log}: " + "; ".join(problems))
            print(log.read_text(errors="replace")[-6000:])
    print(f"valgrind: {len(logs)} processes checked, {bad} with problems")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
