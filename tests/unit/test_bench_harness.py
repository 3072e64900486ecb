"""The benchmark harness runs end to end on tiny sizes and reports every figure; no timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[2]
QUICK_RUN_TIMEOUT_SECONDS = 90


def test_quick_run_prints_the_table_and_writes_every_figure_as_json(tmp_path: Path) -> None:
    output_path = tmp_path / "latest.json"
    completed = subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--output", str(output_path)],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        timeout=QUICK_RUN_TIMEOUT_SECONDS,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    assert "Hookline benchmarks" in completed.stdout
    assert "floor" in completed.stdout

    report = json.loads(output_path.read_text())
    assert report["quick"] is True
    assert report["machine"]["cpu_count"] >= 1
    figures = report["figures"]
    benchmarks_reported = {figure["benchmark"] for figure in figures}
    assert "floor" in benchmarks_reported
    floor = next(figure for figure in figures if figure["benchmark"] == "floor")
    assert floor["value"] > 0
    assert not [figure for figure in figures if figure["metric"] == "error"], report["details"]
    for figure in figures:
        if figure["value"] is None:
            assert figure["note"].startswith("not measured:"), figure
        if figure["baseline"] is not None and figure["value"] is not None and figure["baseline"] > 0:
            assert figure["ratio"] is not None, figure
