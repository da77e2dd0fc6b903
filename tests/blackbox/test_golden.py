"""Golden-file tests (STYLE habit 22): --route and --check-config output is
compared byte for byte with tests/golden/*.expected.  To change one on
purpose, rerun the command shown in the failure and review the diff."""
import subprocess
from pathlib import Path

from conftest import UNDERSMTPD

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def run(*args):
    return subprocess.run([UNDERSMTPD, *args], cwd=GOLDEN, capture_output=True,
                          text=True, timeout=30)


def test_routing_golden():
    """SPEC 4 and 5: every aliases form, lookup order, extensions, regex captures."""
    addresses = (GOLDEN / "routing.addresses").read_text().split()
    r = run("-C", "routing.conf", "-a", "routing.aliases", "--route", *addresses)
    assert r.stdout == (GOLDEN / "routing.expected").read_text()
    assert r.returncode == 1        # some addresses are rejected


def test_config_value_errors_golden():
    """Every bad value is reported with file:line, all of them in one run."""
    r = run("-C", "bad-values.conf", "--check-config")
    assert r.returncode == 1
    assert r.stderr == (GOLDEN / "bad-values.expected").read_text()


def test_config_syntax_error_golden():
    """An unknown key stops libconfuse: reported with file:line."""
    r = run("-C", "bad-syntax.conf", "--check-config")
    assert r.returncode == 1
    assert r.stderr == (GOLDEN / "bad-syntax.expected").read_text()


def test_aliases_errors_golden():
    """File delivery, bad syntax, captures in shell commands, empty values,
    duplicates and loops: each reported with file:line."""
    r = run("-C", "routing.conf", "-a", "bad-aliases", "--check-config")
    assert r.returncode == 1
    assert r.stderr == (GOLDEN / "bad-aliases.expected").read_text()


def test_good_configuration_checks_clean():
    """The golden file's syntax is clean; of its programs only handle-bounce is
    not on this machine, and --check-config says so at its line (issue 19)."""
    r = run("-C", "routing.conf", "-a", "routing.aliases", "--check-config")
    assert r.returncode == 1
    assert r.stderr == ("routing.aliases:19: ^bounce-(\\d+)$: program "
                        "/usr/bin/handle-bounce not found\n")


def has_user(name):
    import pwd
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def test_shipped_examples_check_clean():
    """The example configuration and aliases files that ship are valid."""
    top = GOLDEN.parents[1]
    for conf, aliases in [("undersmtpd.conf", "aliases.example"),
                          ("rt-examples/undersmtpd.conf", "rt-examples/aliases")]:
        r = subprocess.run([UNDERSMTPD, "-C", str(top / conf), "-a", str(top / aliases),
                            "--check-config"], capture_output=True, text=True, timeout=30)
        if conf.startswith("rt-examples") and not has_user("rt-mailgate"):
            # The example runs programs as an account the administrator makes.
            assert r.returncode == 1
            assert r.stderr == (f'{top / conf}:6: pipe.user "rt-mailgate" does not '
                                "exist\n"), r.stderr
            continue
        assert r.returncode == 0, (conf, r.stderr)
