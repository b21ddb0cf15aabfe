"""How long the harness and the study take to refuse bad input, and which refusals import TensorFlow first.

Every ``harness`` and ``study`` row of the bad-input table
(``tests/test_bad_input.py``) runs in a fresh interpreter, in its own
temporary folder prepared as the test prepares it (as root, the rows that
need a read-only folder are left out, as the test skips them). The report gives the
number of refusals, how many imported TensorFlow, the median and the
largest wall time (interpreter start included), and the rows that imported
TensorFlow or took over a second.

Usage: ``python benchmarks/refusals.py [--project PATH]`` (``--project``: another checkout, e.g. an older commit).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import json, sys
from harness.cli.main import main
code = main(json.loads(sys.argv[1]))
sys.__stdout__.write("RESULT=" + json.dumps({"code": code, "tensorflow": "tensorflow" in sys.modules}) + "\\n")
"""


def argv(entry: str, args, tmp: Path) -> list[str]:
    """The command line of one row, as ``tests/test_bad_input.py`` builds it."""
    if not isinstance(args, list):
        (tmp / "exp.toml").write_bytes(args.encode() if isinstance(args, str) else args)
        args = ["--config", "{tmp}/exp.toml"]
    args = [a.replace("{tmp}", str(tmp)) for a in args]
    if entry == "harness":
        return ["--output", str(tmp / "results.csv"), "--no-progress", *args]
    return [*args, "--storage", str(tmp), "--no-progress"]


def refuse(case, project: Path) -> dict:
    """Run one row in a fresh interpreter: its exit status, seconds and whether TensorFlow was imported."""
    from tests.test_bad_input import prepare

    entry, args, _, status, *files = case
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        prepare(tmp, files[0] if files else {})
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(argv(entry, args, tmp))], cwd=tmp,
                              env=dict(os.environ, PYTHONPATH=str(project)), capture_output=True, text=True)
        seconds = time.perf_counter() - start
        for path in tmp.iterdir():
            path.chmod(0o755) if path.is_dir() else None
    result = [json.loads(line[7:]) for line in done.stdout.splitlines() if line.startswith("RESULT=")]
    found = result[0] if result else {"code": done.returncode, "tensorflow": None}
    return dict(found, seconds=seconds, expected=status, label=f"{entry} {args!r}"[:90])


def main() -> None:
    """Time every row and print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=ROOT)
    options = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.test_bad_input import CASES

    root = os.geteuid() == 0  # root writes into read-only folders: those rows run instead of being refused
    rows = [refuse(case, options.project.resolve()) for case in CASES if case[0] in ("harness", "study")
            and not (root and any(name.endswith("/") for name in (case[4:] or [{}])[0]))]
    heavy = [r for r in rows if r["tensorflow"]]
    times = [r["seconds"] for r in rows]
    print(f"{len(rows)} refusals; {len(heavy)} imported TensorFlow; median {statistics.median(times):.2f} s, "
          f"max {max(times):.2f} s; {sum(t > 1 for t in times)} over 1 s")
    for row in rows:
        if row["tensorflow"] or row["seconds"] > 1 or row["code"] != row["expected"]:
            print(f"  {row['seconds']:6.2f} s  tf={row['tensorflow']}  exit {row['code']}  {row['label']}")


if __name__ == "__main__":
    main()
