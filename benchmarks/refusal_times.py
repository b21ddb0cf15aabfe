"""How long each refusal of bad input takes in a fresh process, and whether it imported TensorFlow.

Every case of the bad-input tables (``tests/test_bad_input.py``'s ``CASES`` and
``tests/test_analysis_bad_input.py``'s ``BAD_OPTIONS``) runs as the command a
user types (``python -m harness``, ``python -m harness.localize``, ``python
analysis.py``, ``python -m reports.claims``; a study is ``python -m harness``
with a study option), in its own folder prepared as the test prepares it. Per
case: the wall time of the process, whether it imported TensorFlow or Ray, and
whether it was clean: the expected exit status, no traceback, the expected
message on the last line of stderr and one error line, and every file of the
folder unchanged (none created, no lock left). Cases the tests skip (a
read-only folder, as root) are skipped too.

Usage: ``python benchmarks/refusal_times.py [--match TEXT] [--csv PATH]``; prints the count, how many imported
TensorFlow, the median and the maximum time, and every case that was not clean.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import test_analysis_bad_input as analysis_table  # noqa: E402
from tests import test_bad_input as table  # noqa: E402

PROBE = ("import atexit, os, runpy, sys\n"
         "atexit.register(lambda: open(os.environ['REFUSAL_MARK'], 'w').write("
         "','.join(sorted({'tensorflow', 'ray'} & set(sys.modules))) or 'none'))\n"
         "target = sys.argv[1]; sys.argv = sys.argv[1:]\n"
         "runpy.run_path(target, run_name='__main__') if target.endswith('.py') else "
         "runpy.run_module(target, run_name='__main__', alter_sys=True)\n")  # fmt: skip
COMMANDS = {"harness": ["harness"], "study": ["harness"], "localize": ["harness.localize"],
            "analysis": [str(ROOT / "analysis.py")], "claims": ["reports.claims"]}  # fmt: skip


def command(entry: str, argv: list[str], tmp: Path) -> list[str]:
    """The command line of a case, with the options its test's entry point adds (outputs into the case's folder)."""
    extra = {"harness": ["--output", f"{tmp}/results.csv", "--no-progress"],
             "study": ["--storage", str(tmp), "--no-progress"],
             "localize": ["--output", f"{tmp}/localize", "--no-progress"],
             "analysis": [] if "--out" in argv else ["--out", f"{tmp}/figures"], "claims": []}[entry]  # fmt: skip
    front = extra if entry == "harness" else []
    return [*COMMANDS[entry], *front, *argv, *([] if entry == "harness" else extra)]


def cases() -> list[tuple[str, str, list | str | bytes, str, int, dict]]:
    """(label, entry point, arguments, message, status, files) of every case of both tables."""
    found = []
    for case in table.CASES:
        entry, args, message, status, *files = case
        found.append((table.case_id(case), entry, args, message, status, files[0] if files else {}))
    for argv, message, status in analysis_table.BAD_OPTIONS:
        found.append((f"analysis {' '.join(argv[1:])}", "options", argv, message, status, {}))
    return found


def prepare(tmp: Path, entry: str, args, files: dict) -> list[str]:
    """The case's folder, as its test prepares it; returns the argument list (a TOML case becomes --config)."""
    table.prepare(tmp, files)
    if entry in ("analysis", "options"):
        table.analysis_inputs(tmp)
    if entry == "options":
        frame = analysis_table._frame()
        frame.query("sparsity <= 0.5").to_csv(tmp / "short.csv", index=False)
        frame.assign(sparsity=[-5.0 if i == 1 else s for i, s in enumerate(frame.sparsity)]).to_csv(
            tmp / "negative.csv", index=False)
        frame.assign(threshold=[float("nan") if i == 0 else t for i, t in enumerate(frame.threshold)]).to_csv(
            tmp / "nan.csv", index=False)
    if not isinstance(args, list):
        (tmp / "exp.toml").write_bytes(args.encode() if isinstance(args, str) else args)
        args = ["--config", "{tmp}/exp.toml"]
    return [a.replace("{tmp}", str(tmp)) for a in args]


def run_case(label: str, entry: str, args, message: str, status: int, files: dict, base: Path) -> dict:
    """Runs one case in a fresh folder and process; returns its time, heavy imports and verdict."""
    tmp = Path(tempfile.mkdtemp(dir=base))
    argv = prepare(tmp, entry, args, files)
    before = table.snapshot(tmp)
    mark = base / f"{tmp.name}.mark"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REFUSAL_MARK": str(mark)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE, *command("analysis" if entry == "options" else entry, argv,
                                                                  tmp)], cwd=tmp, env=env, capture_output=True,
                          text=True)  # fmt: skip
    seconds = time.perf_counter() - start
    lines = done.stderr.strip().splitlines()
    errors = [line for line in lines if not line.startswith(("usage:", " "))]
    problems = [why for why, bad in [
        (f"exit {done.returncode}, expected {status}", done.returncode != status),
        ("traceback", "Traceback" in done.stderr),
        ("message not on the last line", not lines or message.replace("{tmp}", str(tmp)) not in lines[-1]),
        (f"{len(errors)} error lines", len(errors) != 1),
        ("files changed", table.snapshot(tmp) != before),
    ] if bad]  # fmt: skip
    heavy = mark.read_text() if mark.is_file() else "?"
    return {"case": label, "seconds": seconds, "heavy": heavy, "problems": "; ".join(problems),
            "last_line": lines[-1] if lines else ""}


def main() -> None:
    """Runs every case (or those matching ``--match``), prints the summary and the cases that were not clean."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--match", default="", help="only cases whose label contains this text")
    parser.add_argument("--csv", help="write every case's row to this CSV")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as base:
        for label, entry, argv, message, status, files in cases():
            if args.match not in label:
                continue
            if any(name.endswith("/") for name in files) and os.geteuid() == 0:
                print(f"skipped (root writes into read-only folders): {label}")
                continue
            rows.append(run_case(label, entry, argv, message, status, files, Path(base)))
    report(rows, args.csv)
    print(f"for scale, on this machine now: python -c pass {baseline(['-c', 'pass']):.2f} s, "
          f"python -c 'import tensorflow' {baseline(['-c', 'import tensorflow']):.2f} s (medians of 3)")


def baseline(argv: list[str]) -> float:
    """Median seconds of three runs of ``python argv``."""
    times = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, *argv], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def report(rows: list[dict], csv: str | None) -> None:
    """Prints the counts, the median and maximum time, and the cases with problems; optionally writes the CSV."""
    seconds = [r["seconds"] for r in rows]
    slowest = max(rows, key=lambda r: r["seconds"])
    print(f"refusals: {len(rows)}; clean: {sum(not r['problems'] for r in rows)}; importing TensorFlow: "
          f"{sum('tensorflow' in r['heavy'] for r in rows)}; importing Ray: {sum('ray' in r['heavy'] for r in rows)}")
    print(f"time per refusal: median {statistics.median(seconds):.2f} s, max {slowest['seconds']:.2f} s "
          f"({slowest['case']}); without TensorFlow: median "
          f"{statistics.median([r['seconds'] for r in rows if 'tensorflow' not in r['heavy']] or [0]):.2f} s")
    for r in rows:
        if r["problems"]:
            print(f"NOT CLEAN: {r['case']}: {r['problems']} (last line: {r['last_line'][:160]})")
    for r in rows:
        if "tensorflow" in r["heavy"]:
            print(f"imports TensorFlow ({r['seconds']:.1f} s): {r['case']}")
    if csv:
        import pandas as pd

        pd.DataFrame(rows).to_csv(csv, index=False)


if __name__ == "__main__":
    main()
