"""The user docs (README.md and docs/*.md) are a report and a reference, not a work log: no scratch
paths or scratch scripts, no narration of who ran what when ("session", "was lost", "re-run from
scratch", "paused", ...), no plans. History a user needs goes to CHANGELOG.md, which is exempt."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (label, pattern), matched case-insensitively line by line. Each pattern is narrow enough that the
# legitimate text of the docs does not match it ("from scratch" = training anew, "the previous
# checkpoint", "lost node", "the trial's history" are fine).
FORBIDDEN = [
    ("scratch path", r"/tmp/"),
    ("scratch script", r"(?<!from )(?<!from-)\bscratch\b"),
    ("one-off script", r"\bone-off scripts?\b"),
    ("re-run from scratch", r"\bre-?run(?:s|ning)? from scratch\b"),
    ("re-run here", r"\bre-?run here\b"),
    ("session", r"\bsessions?\b"),
    ("sitting", r"\bsittings?\b"),
    ("lost files", r"\b(?:was|were|is|are|been) (?:never )?lost\b"),
    ("never committed", r"\b(?:never|not) committed\b"),
    ("paused", r"\bpaused\b"),
    ("work tree", r"\bwork(?:ing)? tree\b"),
    ("relative day", r"\b(?:today|yesterday|tomorrow)(?:'s)?\b"),
    ("at the time", r"\bat the time\b(?! limit)"),
    ("earlier runs", r"\bearlier runs?\b"),
    ("previous round", r"\bprevious (?:round|runs?|re-runs?|idle|session)\b"),
    ("round of work", r"\bround of work\b"),
    ("old / new default", r"\b(?:old|new) defaults?\b"),
    ("history label", r"\bhistory\s*[:(]|\bis history\b|\bhistory, not\b"),
    ("progress snapshot", r"\bstatus \(\d{4}-|\b(?:is|are) (?:now )?complete\b|\bcomplete too\b|\bfinished last\b"),
    ("plan", r"\bnext we will\b|\bwe(?: will|'ll)\b|\bnext steps\b|\bruns to come\b|\bnot (?:yet run|run yet)\b"),
    ("lack of time", r"\bfor lack of (?:machine )?time\b|\bstopped for time\b"),
    ("apology", r"\bsorry\b|\bapologi[sz]"),
]
_COMPILED = [(label, re.compile(pattern, re.IGNORECASE)) for label, pattern in FORBIDDEN]


def narration(text):
    """(line number, label, line) of every line of `text` that matches a forbidden pattern."""
    hits = []
    for number, line in enumerate(text.splitlines(), start=1):
        for label, pattern in _COMPILED:
            if pattern.search(line):
                hits.append((number, label, line.strip()))
    return hits


def user_docs():
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_user_docs_have_no_work_log_language():
    docs = user_docs()
    assert len(docs) > 5, docs
    found = [
        f"{doc.relative_to(ROOT)}:{number}: [{label}] {line}"
        for doc in docs
        for number, label, line in narration(doc.read_text())
    ]
    assert not found, "work-log language in the user docs (history goes to CHANGELOG.md):\n" + "\n".join(found)


def test_the_checker_flags_planted_narration():
    planted = (
        "Results are below.\n"
        "The checkpoint was lost in the previous session, so it was re-run from scratch here\n"
        "with a scratch script in /tmp/x; today's numbers follow. Next we will add seeds.\n"
    )
    hits = narration(planted)
    assert {number for number, _, _ in hits} == {2, 3}
    labels = {label for _, label, _ in hits}
    assert {"lost files", "session", "re-run from scratch", "scratch script", "scratch path",
            "relative day", "plan"} <= labels


def test_the_checker_passes_legitimate_text():
    legit = (
        "A run whose checkpoints are gone is refused instead of re-trained from scratch.\n"
        "A truncated checkpoint is skipped and the previous checkpoint is used.\n"
        "Ray replaces an actor on a lost node; the GRU reads the trial's history.\n"
        "A from-scratch run took 470 s; a truncation bootstraps at the time limit.\n"
        "Measured 2026-12-03, Intel Xeon, load 2.1; the policy is kept when it beats the best so far.\n"
    )
    assert narration(legit) == []
