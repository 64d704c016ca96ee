"""Every number a run reports equals an independent recomputation from its raw artifacts (tests/audit.py), and
the audit is able to fail: a number misreported by one digit is caught and named."""
import json
import shutil
import subprocess
import sys

import pytest

from tests.audit import Audit

pytestmark = pytest.mark.slow


def test_every_reported_number_of_a_smoke_run_recomputes(smoke_run):
    checks = Audit(smoke_run).run()
    wrong = [c for c in checks if not c[3]]
    assert not wrong, "\n".join(f"{what}: reported {a!r}, recomputed {b!r}" for what, a, b, _ in wrong[:20])
    audited = " ".join(c[0] for c in checks)
    for part in ("data card", "test.json", "metrics.json runs", "metrics.json ablation", "RESULTS.md reading",
                 *(f"metrics.json C{i}" for i in range(1, 6)), "sweep", "selected step", "tuning table",
                 "loss control", "weights", "captioner", "dose", "ceiling", "QA open acc", "QA MC acc"):
        assert part in audited, f"the audit never checked {part}"


def test_the_audit_command_as_the_docs_give_it(smoke_run):
    done = subprocess.run([sys.executable, "-m", "tests.audit", str(smoke_run)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    agree, total = done.stdout.split(" reported numbers")[0].split()[-3::2]
    assert agree == total and int(total) > 500


@pytest.fixture
def audited_copy(smoke_run, tmp_path):
    return shutil.copytree(smoke_run, tmp_path / "run", symlinks=True)


def test_a_misreported_claim_is_caught(audited_copy):
    metrics = json.loads((audited_copy / "metrics.json").read_text())
    c3 = next(c for c in metrics["claims"] if c["claim"].startswith("C3"))
    c3["effect"] += 0.01
    (audited_copy / "metrics.json").write_text(json.dumps(metrics))
    wrong = [c[0] for c in Audit(audited_copy).run() if not c[3]]
    assert wrong == ["metrics.json C3 effect"]


def test_a_reading_that_says_the_wrong_side_is_caught(audited_copy):
    results = (audited_copy / "RESULTS.md").read_text()
    lines = [line for line in results.splitlines() if line.startswith("- `margin`:")]
    changed = lines[0].replace("not distinguishable at this number of seeds from", "higher than") \
        if "not distinguishable" in lines[0] else lines[0].replace("]: ", "]: not distinguishable at this number of seeds from ")
    (audited_copy / "RESULTS.md").write_text(results.replace(lines[0], changed, 1))
    assert [c[0] for c in Audit(audited_copy).run() if not c[3]] == ["RESULTS.md reading t2v R@1 margin"]


def test_head_and_tail_from_other_topics_are_caught(audited_copy):
    """Head R@1 reported for the alphabetically first half of the topics (the old bug) does not pass."""
    test_files = sorted((audited_copy / "logs").glob("*/test.json"))
    corpus = json.loads((audited_copy / "data" / "corpus.json").read_text())
    alphabetical = sorted(corpus["splits"]["train"]["topics"])[: len(corpus["splits"]["train"]["topics"]) // 2]
    for path in test_files:
        test = json.loads(path.read_text())
        per_topic = test["per_topic_t2v_R@1"]
        test["head_t2v_R@1"] = sum(per_topic[t] for t in alphabetical) / len(alphabetical)
        path.write_text(json.dumps(test))
    audit = Audit(audited_copy)
    assert {t for t, g in audit.groups().items() if g == "head"} != set(alphabetical)
    assert any(c[0].endswith("head R@1") and not c[3] for c in audit.run())
