"""Mutation testing of the auth core with cosmic-ray (issue 15): score and surviving mutants.

Run from the repository root (cosmic-ray is pinned in requirements-bench.txt)::

    python bench/mutation.py                      # every module, one after the other
    python bench/mutation.py login throttle       # only these modules
    python bench/mutation.py --retest-survivors   # keep the verdicts, re-run the survivors
    python bench/mutation.py --report             # print the last results, run nothing

Not a test: ``make test`` does not run it. It copies the working tree (tracked and untracked
files that git does not ignore) into ``--workdir`` (default ``var/mutation/``) and mutates
the copy, so the worktree itself is never touched and tests can run meanwhile. For each
module it makes a cosmic-ray session there (``<module>.sqlite``), marks as skipped the
mutants that sit inside type annotations (every module has ``from __future__ import
annotations``: an annotation is a string that nothing evaluates at run time, so such a
mutant is equivalent by construction), then runs each remaining mutant against the tests
that exercise that module (``SELECTIONS``), with ``-x`` so a killed mutant stops at its
first failing test: by default in a child forked from one warm process (see "the fork
executor" below), with ``--executor cosmic-ray`` by cosmic-ray's ``exec`` (a pytest each).
``--rev COMMIT`` mutates that commit's tree instead of the working tree.

``--retest-survivors`` forgets only the "survived" verdicts and runs those mutants again:
what the earlier tests killed stays killed (a new test only adds to the selection), so after
adding tests this gives the new score in minutes instead of a full run.

The report: per module, mutants killed / survived / that do not run (not valid Python, or
raising at import: left out of the score) / skipped as annotations, the score
``killed / (killed + survived)``, and every survivor with its line, operator and diff. It
is written to ``<workdir>/report.md`` and ``<workdir>/report.json`` as well.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent

MODULES = {
    "tokens": "accounts/tokens.py",
    "refresh": "accounts/services/refresh.py",
    "login": "accounts/services/login.py",
    "principal": "accounts/services/principal.py",
    "registration": "accounts/services/registration.py",
    "throttle": "accounts/throttle.py",
}

# The tests that exercise each module, quickest killers first (-x stops at the first
# failure). The regression and mutation-killing tests of issue 15 come with every module.
_ALWAYS = ["tests/accounts/test_auth_regressions.py", "tests/accounts/test_auth_mutants.py"]
SELECTIONS = {
    "tokens": ["tests/accounts/test_me_jwks.py", "tests/accounts/test_tokens.py"],
    "refresh": [
        "tests/accounts/test_me_jwks.py",
        "tests/accounts/test_tokens.py",
        "tests/accounts/test_sessions.py",
    ],
    "login": [
        "tests/accounts/test_login.py",
        "tests/accounts/test_throttle.py",
        "tests/accounts/test_mfa.py",
        "tests/accounts/test_password_change_throttle.py",
        "tests/accounts/test_verification.py",
    ],
    "principal": [
        "tests/accounts/test_me_jwks.py",
        "tests/accounts/test_login.py",
        "tests/accounts/test_sessions.py",
        "tests/accounts/test_api_tokens.py",
        "tests/accounts/test_isolation.py",
    ],
    "registration": [
        "tests/accounts/test_register.py",
        "tests/accounts/test_email_claims.py",
        "tests/accounts/test_verification.py",
        "tests/accounts/test_throttle.py",
    ],
    "throttle": [
        "tests/accounts/test_throttle.py",
        "tests/accounts/test_password_change_throttle.py",
    ],
}

# Only the plugins these tests use: skipping the autoloaded rest (hypothesis, schemathesis,
# anyio...) saves more than a second of start-up per mutant.
PYTEST = (
    "{python} -m pytest -x -q -p no:cacheprovider -p pytest_django.plugin -p time_machine "
    "-p pytest_timeout -p pytest_asyncio.plugin --timeout 60 {tests}"
)
ENV = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


def _copy_tree(workdir: Path, rev: str | None) -> Path:
    """The working tree as it is now (uncommitted test files included), or the tree of the
    commit ``rev``, in workdir/tree."""
    tree = workdir / "tree"
    if tree.exists():
        shutil.rmtree(tree)
    if rev is not None:
        tree.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "archive", rev], cwd=ROOT, check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        return tree
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for raw in listed:
        if not raw:
            continue
        relative = Path(raw.decode())
        source = ROOT / relative
        if not source.is_file():
            continue  # deleted in the worktree, still in the index
        target = tree / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return tree


def _annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) positions (line, column) of every annotation in ``source``."""
    spans = []
    for node in ast.walk(ast.parse(source)):
        annotations: list[ast.expr | None] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = node.args
            every = [
                *arguments.posonlyargs,
                *arguments.args,
                *arguments.kwonlyargs,
                *(a for a in (arguments.vararg, arguments.kwarg) if a is not None),
            ]
            annotations = [a.annotation for a in every] + [node.returns]
        elif isinstance(node, ast.AnnAssign):
            annotations = [node.annotation]
        for annotation in annotations:
            if annotation is not None and annotation.end_lineno is not None:
                spans.append(
                    (
                        (annotation.lineno, annotation.col_offset),
                        (annotation.end_lineno, annotation.end_col_offset or 0),
                    )
                )
    return spans


def _skip_annotations(session: Path, module: Path) -> int:
    """Mark the mutants inside annotations as skipped; returns how many."""

    text = module.read_text()
    assert "from __future__ import annotations" in text, module
    spans = _annotation_spans(text)
    skipped = 0
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item in list(db.pending_work_items):
            (mutation,) = item.mutations
            start = tuple(mutation.start_pos)
            if any(begin <= start < end for begin, end in spans):
                db.set_result(
                    item.job_id,
                    WorkResult(
                        output="annotation: not evaluated (from __future__ import annotations)",
                        worker_outcome=WorkerOutcome.SKIPPED,
                    ),
                )
                skipped += 1
    return skipped


def _command(tree: Path, name: str) -> str:
    # A test file not written yet would fail every run, and so "kill" every mutant.
    tests = [path for path in SELECTIONS[name] + _ALWAYS if (tree / path).is_file()]
    return PYTEST.format(python=PYTHON, tests=" ".join(tests))


def _baseline(tree: Path, name: str) -> None:
    """The selection must pass unmutated, or every mutant would count as killed."""
    started = time.monotonic()
    done = subprocess.run(
        _command(tree, name), shell=True, cwd=tree, env={**os.environ, **ENV}, check=False
    )
    if done.returncode != 0:
        sys.exit(f"{name}: the tests fail without any mutant; fix them first")
    print(f"{name}: baseline passes in {time.monotonic() - started:.1f} s", flush=True)


def _config(tree: Path, name: str) -> Path:
    command = _command(tree, name)
    config = tree.parent / f"{name}.toml"
    config.write_text(
        "[cosmic-ray]\n"
        f'module-path = "{MODULES[name]}"\n'
        "timeout = 120.0\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(command)}\n"
        "[cosmic-ray.distributor]\n"
        'name = "local"\n'
    )
    return config


def _cosmic_ray(*args: str, tree: Path) -> None:
    subprocess.run(
        [str(BIN / "cosmic-ray"), *args], cwd=tree, check=True, env={**os.environ, **ENV}
    )


# --- the fork executor -----------------------------------------------------------------------
# cosmic-ray's own executor starts a new pytest for every mutant: on a loaded 2-core machine
# that start (interpreter, Django, the project, the test modules) costs more than most
# tests. This one imports all of it once, then forks a child per mutant that swaps the
# mutated functions' code into the already imported module (function objects are shared by
# every module that imported them, so the swap reaches them all) and runs pytest in
# process. A mutant it cannot express that way (a removed decorator, a changed constant
# that another module imported, a changed closure) is run the slow way: the mutated file on
# disk and a fresh pytest. The mutants come from cosmic-ray and the verdicts go to its
# session, so ``cr-report`` and this report read them alike.

_INCOMPETENT = 100  # the mutated module does not even execute
_FALLBACK = 101


def _unwrapped(value: Any) -> Any:
    while hasattr(value, "__wrapped__"):
        value = value.__wrapped__
    return value


def _swap_function(old: Any, new: Any) -> bool:
    old_depth = new_depth = 0
    o, n = old, new
    while hasattr(o, "__wrapped__"):
        o, old_depth = o.__wrapped__, old_depth + 1
    while hasattr(n, "__wrapped__"):
        n, new_depth = n.__wrapped__, new_depth + 1
    if old_depth != new_depth or not isinstance(o, types.FunctionType):
        return False
    if not isinstance(n, types.FunctionType) or o.__code__.co_freevars != n.__code__.co_freevars:
        return False
    o.__code__, o.__defaults__, o.__kwdefaults__ = n.__code__, n.__defaults__, n.__kwdefaults__
    return True


_CLASS_METADATA = {"__dict__", "__weakref__", "__doc__", "__module__", "__qualname__"}


def _install(module: types.ModuleType, mutated: str) -> bool:
    """Make ``mutated`` (the module's source with one mutation) the running code of
    ``module``; False when that cannot be done in place."""
    namespace: dict[str, Any] = {
        "__name__": module.__name__,
        "__file__": module.__file__,
        "__package__": module.__package__,
    }
    try:
        exec(compile(mutated, str(module.__file__), "exec"), namespace)
    except Exception:
        os._exit(_INCOMPETENT)
    others = [m for m in list(sys.modules.values()) if m is not None and m is not module]
    for name, new in namespace.items():
        old = module.__dict__.get(name, _FALLBACK)
        if new is old or name.startswith("__"):
            continue
        if isinstance(new, types.FunctionType) or isinstance(_unwrapped(new), types.FunctionType):
            if not _swap_function(old, new):
                return False
        elif isinstance(new, type) and isinstance(old, type):
            if set(vars(new)) != set(vars(old)):
                return False  # a class decorator (dataclass, frozen) removed or changed
            for attr, value in vars(new).items():
                before = old.__dict__.get(attr)
                if attr in _CLASS_METADATA:
                    continue
                if isinstance(value, types.FunctionType):
                    if not _swap_function(before, value):
                        return False
                elif isinstance(value, property) and isinstance(before, property):
                    if not _swap_function(before.fget, value.fget):
                        return False
                elif isinstance(value, (staticmethod, classmethod)):
                    if not _swap_function(getattr(before, "__func__", None), value.__func__):
                        return False
                else:
                    setattr(old, attr, value)
        else:
            try:
                same = type(new) is type(old) and bool(new == old)
            except Exception:
                same = False
            if same:
                continue
            if any(old is value for m in others for value in vars(m).values()):
                return False  # imported elsewhere under its own binding
            module.__dict__[name] = new
    return True


def _wait(pid: int, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return None


def fork_worker(name: str, session: Path, timeout: float) -> None:
    """Run the pending mutants of ``session`` (cwd: the tree copy)."""
    import importlib

    from cosmic_ray.mutating import mutate_code
    from cosmic_ray.plugins import get_operator

    tree = Path.cwd()
    sys.path.insert(0, str(tree))
    os.environ.update(ENV)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coditect.settings")
    import django
    import pytest

    django.setup()
    tests = [path for path in SELECTIONS[name] + _ALWAYS if (tree / path).is_file()]
    for warm in ["coditect.urls", *(t.removesuffix(".py").replace("/", ".") for t in tests)]:
        importlib.import_module(warm)
    for plugin in (
        "pytest_django.plugin",
        "time_machine",
        "pytest_timeout",
        "pytest_asyncio.plugin",
    ):
        importlib.import_module(plugin)
    module = importlib.import_module(MODULES[name].removesuffix(".py").replace("/", "."))
    path = tree / MODULES[name]
    original = path.read_text()
    arguments = PYTEST.format(python="", tests=" ".join(tests)).split()[2:]
    fallback = _command(tree, name)
    counts: dict[str, int] = {}
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item in list(db.pending_work_items):
            (mutation,) = item.mutations
            operator = get_operator(mutation.operator_name)(**(mutation.operator_args or {}))
            mutated = mutate_code(original, operator, mutation.occurrence)
            if mutated is None:
                db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.NO_TEST))
                continue
            diff = "\n".join(
                difflib.unified_diff(
                    original.splitlines(),
                    mutated.splitlines(),
                    "a/" + MODULES[name],
                    "b/" + MODULES[name],
                    lineterm="",
                )
            )
            pid = os.fork()
            if pid == 0:  # the child: never returns
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
                try:
                    if _install(module, mutated):
                        status = int(pytest.main(arguments))
                    else:
                        path.write_text(mutated)
                        status = _FALLBACK + bool(
                            subprocess.run(fallback, shell=True, check=False).returncode
                        )
                except BaseException:
                    status = 1
                os._exit(status)
            code = _wait(pid, timeout)
            path.write_text(original)  # after a fallback child
            if code == _INCOMPETENT:
                outcome, output = TestOutcome.INCOMPETENT, "the mutated module does not run"
            elif code is None:
                outcome, output = TestOutcome.KILLED, f"timeout after {timeout:.0f} s"
            elif code in (0, _FALLBACK):
                outcome, output = TestOutcome.SURVIVED, "fork" if code == 0 else "file"
            else:
                outcome, output = TestOutcome.KILLED, f"exit {code}"
            counts[outcome] = counts.get(outcome, 0) + 1
            db.set_result(
                item.job_id,
                WorkResult(
                    worker_outcome=WorkerOutcome.NORMAL,
                    test_outcome=outcome,
                    output=output,
                    diff=diff,
                ),
            )
    print(f"{name}: {counts}", flush=True)


def run_module(name: str, tree: Path, *, retest: bool, executor: str) -> None:
    session = tree.parent / f"{name}.sqlite"
    config = _config(tree, name)
    if retest and session.exists():
        with use_db(str(session), WorkDB.Mode.open) as db:
            survivors = [job for job, result in db.results if result.test_outcome == "survived"]
        # Forget those verdicts only: the other rows stay, exec runs the pending ones.
        import sqlite3

        with sqlite3.connect(session) as connection:
            connection.executemany(
                "DELETE FROM work_results WHERE job_id = ?", [(job,) for job in survivors]
            )
        print(f"{name}: re-running {len(survivors)} survivors", flush=True)
    else:
        if session.exists():
            session.unlink()
        _cosmic_ray("init", str(config), str(session), tree=tree)
        skipped = _skip_annotations(session, tree / MODULES[name])
        print(f"{name}: {skipped} mutants in annotations skipped", flush=True)
    _baseline(tree, name)
    started = time.monotonic()
    if executor == "cosmic-ray":
        _cosmic_ray("exec", str(config), str(session), tree=tree)
    else:
        subprocess.run(
            [PYTHON, str(ROOT / "bench" / "mutation.py"), "--fork-worker", name, str(session)],
            cwd=tree,
            check=True,
            env={**os.environ, **ENV},
        )
    print(f"{name}: {time.monotonic() - started:.0f} s", flush=True)


def _summary(name: str, session: Path) -> dict[str, Any]:

    counts = {"killed": 0, "survived": 0, "incompetent": 0, "skipped": 0, "pending": 0}
    survivors = []
    with use_db(str(session), WorkDB.Mode.open) as db:
        results = dict(db.results)
        for item in db.work_items:
            result = results.get(item.job_id)
            if result is None:
                counts["pending"] += 1
            elif result.worker_outcome == "skipped":
                counts["skipped"] += 1
            elif result.test_outcome == "survived":
                counts["survived"] += 1
                (mutation,) = item.mutations
                survivors.append(
                    {
                        "job": item.job_id,
                        "line": mutation.start_pos[0],
                        "operator": mutation.operator_name.removeprefix("core/"),
                        "occurrence": mutation.occurrence,
                        "diff": "\n".join(
                            line
                            for line in (result.diff or "").splitlines()
                            if line[:1] in "+-" and line[:3] not in ("+++", "---")
                        ),
                    }
                )
            elif result.test_outcome == "incompetent":
                counts["incompetent"] += 1
            else:
                counts["killed"] += 1
    # An incompetent mutant is not Python (cosmic-ray turns the keyword-only ``*`` of a
    # signature into ``+``, ``//``...) or does not import: no test can tell anything about
    # it, so it counts on neither side of the score.
    tried = counts["killed"] + counts["survived"]
    score = counts["killed"] / tried if tried else 0.0
    survivors.sort(key=lambda s: (s["line"], s["operator"]))
    return {"module": MODULES[name], **counts, "score": score, "survivors": survivors}


_COLUMNS = ["killed", "survived", "incompetent", "skipped", "pending"]


def report(workdir: Path, names: list[str]) -> None:
    summaries = [
        _summary(name, workdir / f"{name}.sqlite")
        for name in names
        if (workdir / f"{name}.sqlite").exists()
    ]
    lines = [
        "| module | mutants | killed | survived | does not run | in annotations "
        "| pending | score |",
        "|---|---|---|---|---|---|---|---|",
    ]
    total = dict.fromkeys(_COLUMNS, 0)
    for s in summaries:
        counts = " | ".join(str(s[key]) for key in _COLUMNS)
        every = sum(s[key] for key in _COLUMNS)
        lines.append(f"| {s['module']} | {every} | {counts} | {s['score']:.1%} |")
        for key in _COLUMNS:
            total[key] += s[key]
    tried = total["killed"] + total["survived"]
    score = total["killed"] / tried if tried else 0.0
    counts = " | ".join(str(total[key]) for key in _COLUMNS)
    lines.append(f"| **all** | {sum(total.values())} | {counts} | **{score:.1%}** |")
    lines.append("")
    for s in summaries:
        for survivor in s["survivors"]:
            diff = survivor["diff"].replace("\n", " / ")
            lines.append(f"- {s['module']}:{survivor['line']} {survivor['operator']}: `{diff}`")
    text = "\n".join(lines)
    print(text)
    (workdir / "report.md").write_text(text + "\n")
    (workdir / "report.json").write_text(
        json.dumps({"score": score, "modules": summaries}, indent=2) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", help=f"any of {', '.join(MODULES)} (default: all)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "mutation")
    parser.add_argument("--retest-survivors", action="store_true")
    parser.add_argument("--rev", help="mutate the tree of this commit (e.g. the score before)")
    parser.add_argument("--report", action="store_true", help="print the results, run nothing")
    parser.add_argument(
        "--executor",
        choices=["fork", "cosmic-ray"],
        default="fork",
        help="fork: one warm process forked per mutant; cosmic-ray: its exec, a pytest each",
    )
    parser.add_argument(
        "--fork-worker", nargs=2, metavar=("MODULE", "SESSION"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.fork_worker:
        fork_worker(args.fork_worker[0], Path(args.fork_worker[1]), timeout=120.0)
        return
    names = args.modules or list(MODULES)
    unknown = set(names) - set(MODULES)
    if unknown:
        parser.error(f"unknown modules: {', '.join(sorted(unknown))}")
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if not args.report:
        tree = _copy_tree(workdir, args.rev)
        for name in names:
            run_module(name, tree, retest=args.retest_survivors, executor=args.executor)
            report(workdir, list(MODULES))
    report(workdir, list(MODULES))


if __name__ == "__main__":
    main()
