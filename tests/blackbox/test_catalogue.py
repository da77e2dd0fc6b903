"""tests/CATALOGUE.md stays true: every case T1-T118 has a row, and every test
a row names exists (a file in tests/blackbox, tests/unit or tests/crash, and
for file::name a test of that name in it).  A renamed or deleted test would
otherwise leave the catalogue claiming coverage that is gone."""
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
    assert missing == []


def test_every_row_is_covered_or_explained():
    """A row names at least one test, or says why the case does not apply."""
    bare = [t for t, covered in rows()
            if not REF.search(covered) and "not apply" not in covered
            and "n/a" not in covered.lower()]
    assert bare == []
