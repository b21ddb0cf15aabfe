"""How long each refusal of bad input takes in a fresh process, and whether it imported TensorFlow.

Every case of the bad-input tables (``tests/test_bad_input.py``'s ``CASES`` and
``tests/test_analysis_bad_input.py``'s ``BAD_OPTIONS``) runs as the command a
user types (``python -m harness``, ``python -m harness.experiments.localize``, ``python
analysis.py``, ``python -m reports.claims``; a study is ``python -m harness``
with a study option), in its own folder prepared as the test prepares it. Per
case: the wall time of the process, whether it imported TensorFlow or Ray, and
whether it was clean: the expected exit status, no traceback, the expected
message on the last line of stderr and one error line, and every file of the
folder unchanged (none created, no lock left). Cases the tests skip (a
read-only folder, as root) are skipped too.

Times are wall seconds and CPU seconds (user + system) of the process; on a busy machine the wall time grows
with the load while the CPU time stays near what an idle machine's wall time would be.

Usage: ``python benchmarks/refusal_times.py [--match TEXT] [--csv PATH] [--jobs N]``; prints the count, how many
imported TensorFlow, the median and the maximum time, and every case that was not clean.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
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
COMMANDS = {"harness": ["harness"], "study": ["harness"], "localize": ["harness.experiments.localize"],
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
    entry_argv = command("analysis" if entry == "options" else entry, argv, tmp)
    returncode, stderr, seconds, cpu = timed([sys.executable, "-c", PROBE, *entry_argv], tmp, env, base)
    lines = stderr.strip().splitlines()
    errors = [line for line in lines if not line.startswith(("usage:", " "))]
    problems = [why for why, bad in [
        (f"exit {returncode}, expected {status}", returncode != status),
        ("traceback", "Traceback" in stderr),
        ("message not on the last line", not lines or message.replace("{tmp}", str(tmp)) not in lines[-1]),
        (f"{len(errors)} error lines", len(errors) != 1),
        ("files changed", table.snapshot(tmp) != before),
    ] if bad]  # fmt: skip
    heavy = mark.read_text() if mark.is_file() else "?"
    return {"case": label, "seconds": seconds, "cpu_seconds": cpu, "heavy": heavy, "problems": "; ".join(problems),
            "last_line": lines[-1] if lines else ""}


def timed(argv: list[str], cwd: Path, env: dict, base: Path) -> tuple[int, str, float, float]:
    """Runs ``argv``; returns its exit status, its stderr, its wall seconds and its CPU seconds (user + system).

    CPU seconds depend little on how busy the machine is; on an idle machine the wall time is close to them.
    """
    with tempfile.TemporaryFile(dir=base) as err:
        start = time.perf_counter()
        child = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return child.returncode, err.read().decode(errors="replace"), seconds, usage.ru_utime + usage.ru_stime


def main() -> None:
    """Runs every case (or those matching ``--match``), prints the summary and the cases that were not clean."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--match", default="", help="only cases whose label contains this text")
    parser.add_argument("--csv", help="write every case's row to this CSV")
    parser.add_argument("--jobs", type=int, default=1, help="cases run at once (wall times grow with it)")
    args = parser.parse_args()
    chosen = [c for c in cases() if args.match in c[0]]
    skipped = [c for c in chosen if any(name.endswith("/") for name in c[5]) and os.geteuid() == 0]
    for case in skipped:
        print(f"skipped (root writes into read-only folders): {case[0]}")
    with tempfile.TemporaryDirectory() as base, ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda c: run_case(*c, Path(base)), [c for c in chosen if c not in skipped]))
    report(rows, args.csv)
    for argv in (["-c", "pass"], ["-c", "import tensorflow"]):
        wall, cpu = baseline(argv)
        print(f"for scale, on this machine now: python {' '.join(argv)}: wall {wall:.2f} s, CPU {cpu:.2f} s (median of 3)")


def baseline(argv: list[str]) -> tuple[float, float]:
    """Median wall and CPU seconds of three runs of ``python argv``."""
    with tempfile.TemporaryDirectory() as base:
        runs = [timed([sys.executable, *argv], Path(base), dict(os.environ), Path(base))[2:] for _ in range(3)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def report(rows: list[dict], csv: str | None) -> None:
    """Prints the counts, the median and maximum time, and the cases with problems; optionally writes the CSV."""
    slowest = max(rows, key=lambda r: r["seconds"])
    print(f"refusals: {len(rows)}; clean: {sum(not r['problems'] for r in rows)}; importing TensorFlow: "
          f"{sum('tensorflow' in r['heavy'] for r in rows)}; importing Ray: {sum('ray' in r['heavy'] for r in rows)}")
    light = [r for r in rows if "tensorflow" not in r["heavy"]]
    for kind in ("seconds", "cpu_seconds"):
        print(f"{'wall' if kind == 'seconds' else 'CPU'} time per refusal: median "
              f"{statistics.median(r[kind] for r in rows):.2f} s, max {max(r[kind] for r in rows):.2f} s; without "
              f"TensorFlow: median {statistics.median([r[kind] for r in light] or [0]):.2f} s, max "
              f"{max([r[kind] for r in light] or [0]):.2f} s")
    print(f"slowest: {slowest['case']} ({slowest['seconds']:.1f} s)")
    for r in rows:
        if r["problems"]:
            print(f"NOT CLEAN: {r['case']}: {r['problems']} (last line: {r['last_line'][:160]})")
    for r in rows:
        if "tensorflow" in r["heavy"]:
            print(f"imports TensorFlow ({r['seconds']:.1f} s, CPU {r['cpu_seconds']:.1f} s): {r['case']}")
    if csv:
        import pandas as pd

        pd.DataFrame(rows).to_csv(csv, index=False)


if __name__ == "__main__":
    main()
