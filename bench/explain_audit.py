"""Every number in every explanation and report is derivable from the stored run.

Runs train, compare, tune and inspect on karate, cora and mutag through a chat session (a
scripted planner, `FakeBackend`; the rules, tools, training, store and explanations are
real), then reads each run's explanation (English and Chinese) and its Markdown report and
checks every number printed in them:

- an explanation's numbers must come from the run's stored facts (`RunRecord.facts`, what
  `autoglm experiments show ID --json` prints under `facts`), at the precision printed
  (85.71 is 0.857142... as a percentage to 2 decimals, 6 is a count, 23-187 is a range);
- a report's numbers may also come from the stored run itself (config, result, versions,
  steps): the report shows those tables too.

A number typed into a template (advice such as "3 or more seeds") is allowed: it is read
from the template source, outside `{{ }}` and `{% %}`, so it is fixed text, not a claim about
the run.

    python bench/explain_audit.py            # all three datasets (about a minute, 1 core)
    python bench/explain_audit.py karate     # one

Exit status 1 when a number is not derivable; each is printed with its context.
"""

from __future__ import annotations

import json
import math
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# A number standing alone: not part of a word ("gatv2", "F1", "run5-karate"), a hex digest,
# or a file name.
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w])")
SCALES = (1.0, 100.0)  # as stored, or a [0, 1] metric as percent

# The scripted plans, per dataset: small enough to run in CI on one core.
PLANS: dict[str, list[dict[str, Any]]] = {
    "karate": [
        {"action": "train", "dataset": "karate", "model": "gcn", "epochs": 200, "seeds": 3},
        {"action": "compare", "dataset": "karate", "models": ["gcn", "gat"], "seeds": 2,
         "epochs": 20},
        {"action": "tune", "dataset": "karate", "models": ["gcn", "gat", "sage"], "n_trials": 4,
         "epochs": 10, "seeds": 2},
        {"action": "inspect", "dataset": "karate"},
    ],
    "cora": [
        {"action": "train", "dataset": "cora", "model": "gcn", "epochs": 30, "seeds": 2},
        {"action": "compare", "dataset": "cora", "models": ["gcn", "mlp"], "seeds": 2,
         "epochs": 10},
        {"action": "tune", "dataset": "cora", "model": "gcn", "n_trials": 3, "epochs": 5},
        {"action": "inspect", "dataset": "cora"},
    ],
    "mutag": [
        # MUTAG is split in 10 folds: one seed is 10 runs.
        {"action": "train", "dataset": "mutag", "model": "gin", "epochs": 5, "seeds": 1},
        {"action": "compare", "dataset": "mutag", "models": ["gin", "gcn"], "seeds": 1,
         "epochs": 3},
        {"action": "tune", "dataset": "mutag", "model": "gin", "n_trials": 2, "epochs": 3,
         "seeds": 1},
        {"action": "inspect", "dataset": "mutag"},
    ],
}  # fmt: skip


@dataclass
class Problem:
    run_id: int
    where: str  # explanation (en), explanation (zh), report
    token: str
    context: str

    def __str__(self) -> str:
        return f"run {self.run_id} {self.where}: {self.token!r} not derivable: ...{self.context}..."


def leaves(value: Any) -> list[float]:
    """Every number in a JSON-like value, including numbers inside its strings."""
    found: list[float] = []
    if isinstance(value, bool) or value is None:
        return found
    if isinstance(value, (int, float)):
        if math.isfinite(value):
            found.append(float(value))
    elif isinstance(value, str):
        found += [float(m) for m in NUMBER.findall(value)]
        found += [float(m) for m in re.findall(r"\d+(?:\.\d+)?", value)]
    elif isinstance(value, dict):
        for k, v in value.items():
            found += leaves(k) + leaves(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            found += leaves(v)
    return found


def template_literals(names: list[str]) -> set[float]:
    """Numbers typed into the templates' fixed text (outside `{{ }}` and `{% %}`)."""
    import prompts

    found: set[float] = set()
    for name in names:
        text = re.sub(r"{{.*?}}|{%.*?%}", " ", prompts.read(name), flags=re.S)
        found |= {float(m) for m in NUMBER.findall(text)}
    return found


def derivable(token: str, sources: list[float], literals: set[float]) -> bool:
    """Whether `token`, as printed, is some source value at that precision (as is, as a
    percentage, or its absolute value)."""
    value = float(token)
    if "e" in token.lower():
        return any(math.isclose(abs(value), abs(s), rel_tol=5e-3) for s in sources)
    decimals = len(token.split(".")[1]) if "." in token else 0
    if value in literals or abs(value) in literals:
        return True
    half = 0.5 * 10**-decimals + 1e-9
    for source in sources:
        for scale in SCALES:
            scaled = source * scale
            if abs(abs(scaled) - abs(value)) <= half:
                return True
            if decimals == 0 and abs(round(abs(scaled)) - abs(value)) < 1e-9:
                return True
    return False


def check_text(run_id: int, where: str, text: str, sources: list[float],
               literals: set[float]) -> list[Problem]:  # fmt: skip
    problems = []
    for match in NUMBER.finditer(text):
        token = match.group(0)
        if not derivable(token, sources, literals):
            start, end = max(0, match.start() - 50), match.end() + 30
            problems.append(Problem(run_id, where, token, text[start:end].replace("\n", " ")))
    return problems


def _record_sources(record: Any, store: Any) -> list[float]:
    """Everything stored about the run (for a report): record, steps, member runs."""
    data = record.model_dump(mode="json")
    data["seconds"] = record.seconds
    data["steps"] = [s.model_dump(mode="json") for s in store.steps(record.id)]
    data["children"] = [c.model_dump(mode="json") for c in store.children(record.id)]
    return leaves(data)


def audit(store: Any, run_ids: list[int], report_dir: Path | None = None) -> list[Problem]:
    """Check the explanations (en, zh) and the Markdown report of each run."""
    from agent.explain import explain_run
    from agent.report import run_data
    from tools.report import ReportArgs, write_report

    problems: list[Problem] = []
    for run_id in run_ids:
        record = store.get_run(run_id)
        if record.status != "succeeded" or record.kind not in ("train", "tune", "compare",
                                                                "inspect"):  # fmt: skip
            continue
        if not record.facts or "error" in record.facts:
            problems.append(Problem(run_id, "facts", "-", f"no stored facts: {record.facts}"))
            continue
        facts = leaves(record.facts)
        for lang in ("en", "zh"):
            literals = template_literals([f"explain_{record.kind}.{lang}.j2"])
            text = explain_run(record, lang, store)
            problems += check_text(run_id, f"explanation ({lang})", text, facts, literals)
        out = (report_dir or Path(tempfile.mkdtemp())) / str(run_id)
        data = run_data(store, record)
        written = write_report(ReportArgs(run=data, out_dir=out))
        sources = facts + leaves(data.facts) + _record_sources(record, store)
        literals = template_literals(["report.md.j2", f"explain_{record.kind}.en.j2"])
        literals |= REPORT_LITERALS
        markdown = written.markdown.read_text(encoding="utf-8")
        problems += check_text(run_id, "report", markdown, sources, literals)
    return problems


# Fixed text in tools/report.py's headings and notes (not claims about the run).
REPORT_LITERALS = {0.05, 1.0}


def request_text(plan: dict[str, Any]) -> str:
    """The user's words for a scripted plan: every value the plan sets appears in them, as
    the planner's grounding rules require."""
    models = plan.get("models") or [plan.get("model")] if plan.get("model") or plan.get(
        "models") else []  # fmt: skip
    words = [plan["action"], " and ".join(m for m in models if m), "on", plan["dataset"]]
    for key in ("epochs", "seeds", "n_trials"):
        if key in plan:
            words.append(f"with {plan[key]} {key.replace('n_', '')}")
    return " ".join(w for w in words if w)


def run_suite(workspace: Path, data_dir: Path | None, datasets: list[str]) -> dict[str, Any]:
    """Run the scripted plans; returns {dataset: [(action, run_ids, seconds)]} and the store."""
    from agent.llm.fake import FakeBackend
    from agent.session import Session, SessionOptions
    from agent.store import ExperimentStore

    store = ExperimentStore(workspace)
    done: dict[str, Any] = {}
    for dataset in datasets:
        plans = PLANS[dataset]
        backend = FakeBackend([json.dumps({"actions": [p]}) for p in plans])
        session = Session(backend, store, options=SessionOptions(data_dir=data_dir))
        rows = []
        for plan in plans:
            start = time.perf_counter()
            turn = session.handle(request_text(plan))
            outcome = turn.outcomes[0]
            rows.append((plan["action"], outcome, time.perf_counter() - start))
        done[dataset] = rows
    return {"store": store, "runs": done}


def main(argv: list[str]) -> int:
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    datasets = argv or list(PLANS)
    data_dir = os.environ.get("AUTOGLM_DATA_DIR")
    with tempfile.TemporaryDirectory() as tmp:
        suite = run_suite(Path(tmp) / "ws", Path(data_dir) if data_dir else None, datasets)
        store, problems, count = suite["store"], [], 0
        for dataset, rows in suite["runs"].items():
            for action, outcome, seconds in rows:
                ids = outcome.run_ids or ([outcome.run_id] if outcome.run_id else [])
                found = audit(store, ids, Path(tmp) / "reports")
                count += len(ids)
                problems += found
                print(f"{dataset:7} {action:8} {outcome.status:9} runs {ids} {seconds:6.1f} s  "
                      f"{'ok' if not found else f'{len(found)} problem(s)'}")  # fmt: skip
        store.close()
    for problem in problems:
        print(problem)
    print(f"{count} runs audited, {len(problems)} numbers not derivable")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
