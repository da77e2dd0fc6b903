"""tests/CATALOGUE.md stays true: every case T1-T118 has a row, and every test
a row names exists (a file in tests/blackbox, tests/unit or tests/crash, and
for file::name a test of that name in it).  A renamed or deleted test would
otherwise leave the catalogue claiming coverage that is gone.  Beyond names:
each test a row names says it covers that case (its T-number in the test's
own text), "(parametrized sequences)" points at a parametrized test of that
case, and the counts a row claims (trials, messages, receivers) are the ones
the test runs."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "tests" / "CATALOGUE.md"
CASES = 118
REF = re.compile(r"`((?:tests/[a-z]+/)?[A-Za-z0-9_]+\.(?:py|c|sh))(?:::([A-Za-z0-9_]+))?")


def rows():
    for line in CATALOGUE.read_text().splitlines():
        m = re.match(r"\| (T\d+) \|", line)
        if m:
            yield m.group(1), line.rsplit("|", 2)[-2]


def find(name):
    if "/" in name:
        return [ROOT / name] if (ROOT / name).exists() else []
    return [p for d in ("blackbox", "unit", "crash")
            for p in [ROOT / "tests" / d / name] if p.exists()]


def test_every_case_has_a_row():
    numbers = [int(t[1:]) for t, _ in rows()]
    assert sorted(numbers) == list(range(1, CASES + 1))


def test_every_named_test_exists():
    missing = []
    for t, covered in rows():
        for name, func in REF.findall(covered):
            files = find(name)
            if not files:
                missing.append(f"{t}: no file {name}")
                continue
            if func:
                text = files[0].read_text()
                pattern = (rf"^def {func}\(" if name.endswith(".py")
                           else rf"^{func}\(")
                if not re.search(pattern, text, re.M):
                    missing.append(f"{t}: no test {func} in {name}")
    print("\n".join(missing))
    assert missing == []


def test_every_row_is_covered_or_explained():
    """A row names at least one test, or says why the case does not apply."""
    bare = [t for t, covered in rows()
            if not REF.search(covered) and "not apply" not in covered
            and "n/a" not in covered.lower()]
    assert bare == []


def t_numbers(text):
    """The T-numbers a text names: "T14", "T17-T23", "T50-54"."""
    out = set()
    for m in re.finditer(r"\bT(\d+)(?:\s*[-\u2013]\s*T?(\d+))?", text):
        first = int(m.group(1))
        out.update(range(first, int(m.group(2) or first) + 1))
    return out


def region_of(text, func, is_c):
    """A test's own text: for Python its decorators, def and body; for C the
    comment above the function and its body."""
    if is_c:
        m = re.search(rf"^{func}\(", text, re.M)
        start = text.rfind("\n}\n", 0, m.start())
        end = text.find("\n}\n", m.end())
        return text[max(start, 0):end]
    m = re.search(rf"^def {func}\(", text, re.M)
    start = max(text.rfind("\n\n\n", 0, m.start()), text.rfind("\n\n", 0, m.start()))
    nxt = re.search(r"^(?:def |@|class )", text[m.end():], re.M)
    return text[start:m.end() + (nxt.start() if nxt else len(text))]


def parametrized_regions(text):
    """The text of each parametrized pytest test in a file."""
    for m in re.finditer(r"^@pytest\.mark\.parametrize", text, re.M):
        d = re.search(r"^def (test_\w+)\(", text[m.start():], re.M)
        nxt = re.search(r"^(?:def |@|class )", text[m.start() + d.end():], re.M)
        yield text[m.start():m.start() + d.end() + (nxt.start() if nxt else len(text))]


def test_named_tests_claim_their_case():
    """A test a row names mentions the row's T-number in its own text (a
    file named alone: in the file); "(parametrized sequences)" after a file
    needs a parametrized test there that names the case."""
    wrong = []
    for t, covered in rows():
        n = int(t[1:])
        for name, func in REF.findall(covered):
            files = find(name)
            if not files:
                continue                       # test_every_named_test_exists says so
            text = files[0].read_text()
            if func and not re.search(rf"^(def )?{func}\(", text, re.M):
                continue
            region = region_of(text, func, name.endswith(".c")) if func else text
            if n not in t_numbers(region):
                wrong.append(f"{t}: {name}{'::' + func if func else ''} does not name {t}")
        for name in re.findall(r"`([a-z_]+\.py)` \(parametrized sequences\)", covered):
            text = find(name)[0].read_text()
            if not any(n in t_numbers(r) for r in parametrized_regions(text)):
                wrong.append(f"{t}: no parametrized test in {name} names {t}")
    print("\n".join(wrong))
    assert wrong == []


def test_counts_claimed_are_what_runs():
    """'(100 trials in make test; 1,000 with tests/crash/run.sh)' must be the
    defaults of test_crash.py and run.sh; '(N messages)' and the like after a
    test must be a number in that test."""
    crash = (ROOT / "tests" / "blackbox" / "test_crash.py").read_text()
    runsh = (ROOT / "tests" / "crash" / "run.sh").read_text()
    ci_trials = int(re.search(r'"CRASH_TRIALS", "(\d+)"', crash).group(1))
    long_trials = int(re.search(r"CRASH_TRIALS:=(\d+)", runsh).group(1))
    wrong, counted = [], 0
    for t, covered in rows():
        for m in re.finditer(r"([\d,]+) trials in make test", covered):
            counted += 1
            if int(m.group(1).replace(",", "")) != ci_trials:
                wrong.append(f"{t}: claims {m.group(1)} trials in make test, runs {ci_trials}")
        for m in re.finditer(r"([\d,]+) with `tests/crash/run.sh`", covered):
            counted += 1
            if int(m.group(1).replace(",", "")) != long_trials:
                wrong.append(f"{t}: claims {m.group(1)} with run.sh, runs {long_trials}")
        for m in re.finditer(r"`([A-Za-z0-9_]+\.(?:py|c))::([A-Za-z0-9_]+)` \(([\d,]+) "
                             r"(?:messages|receivers|sessions|clients|kills)\b", covered):
            counted += 1
            name, func, number = m.groups()
            files = find(name)
            region = region_of(files[0].read_text(), func, name.endswith(".c")) \
                if files else ""
            if not re.search(rf"\b{number.replace(',', '_?,?')}\b", region):
                wrong.append(f"{t}: {name}::{func} does not run {number}")
    print("\n".join(wrong))
    assert wrong == [] and counted >= 4, (wrong, counted)
