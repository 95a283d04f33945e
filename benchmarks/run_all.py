"""Run every benchmark in this folder, one after another, and summarise their exit codes.

    .venv/bin/python benchmarks/run_all.py [NAME ...]     (or: make bench)

Runs each `benchmarks/*.py` except this file and files starting with `_`, in name order, as a
subprocess with the virtualenv's Python and no arguments (each script's defaults apply). Give
names (`pages`, `pages.py`) to run only those. Exit status: 0 when every script exited 0.
"""

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def python() -> str:
    """The virtualenv's interpreter: ours if we run in one, else the project's .venv."""
    if sys.prefix != sys.base_prefix:
        return sys.executable
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def scripts(selected: list[str]) -> list[Path]:
    found = [
        p
        for p in sorted(HERE.glob("*.py"))
        if p.resolve() != Path(__file__).resolve() and not p.name.startswith("_")
    ]
    if not selected:
        return found
    wanted = {name if name.endswith(".py") else f"{name}.py" for name in selected}
    unknown = wanted - {p.name for p in found}
    if unknown:
        raise SystemExit(f"No such benchmark: {', '.join(sorted(unknown))}")
    return [p for p in found if p.name in wanted]


def main() -> int:
    todo = scripts(sys.argv[1:])
    if not todo:
        print("No benchmarks found.")
        return 0
    interpreter = python()
    results: list[tuple[str, int | str, float]] = []
    for script in todo:
        header = f" {script.name} "
        print(f"\n{header:=^78}", flush=True)
        started = time.monotonic()
        try:
            code: int | str = subprocess.run([interpreter, str(script)], cwd=ROOT).returncode
        except KeyboardInterrupt:
            code = "interrupted"
        results.append((script.name, code, time.monotonic() - started))
        if code == "interrupted":
            break

    width = max(len(name) for name, _, _ in results)
    print(f"\n{' summary ':=^78}")
    for name, code, seconds in results:
        verdict = "ok" if code == 0 else "FAILED"
        print(f"{name:<{width}}  exit {code!s:>11}  {seconds:7.1f} s  {verdict}")
    skipped = len(todo) - len(results)
    if skipped:
        print(f"({skipped} not run after the interruption)")
    passed = sum(code == 0 for _, code, _ in results)
    print(f"{passed}/{len(todo)} passed")
    return 0 if passed == len(todo) else 1


if __name__ == "__main__":
    sys.exit(main())
