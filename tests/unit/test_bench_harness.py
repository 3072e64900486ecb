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


def test_a_written_report_renders_as_a_markdown_table(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    report_path.write_text(
        json.dumps(
            {
                "command": "python -m bench.run",
                "started_at": "2026-12-03T17:00:00+0000",
                "duration_seconds": 12.0,
                "machine": {"cpu_model": "test CPU", "usable_cpus": 2, "memory_bytes": 4e9, "python": "3.11"},
                "details": {"other_load_cores": 0.1},
                "figures": [
                    {
                        "benchmark": "throughput (SQLite)",
                        "metric": "deliveries/s",
                        "value": 5000.0,
                        "unit": "1/s",
                        "baseline": 8000.0,
                        "baseline_name": "floor",
                        "ratio": 0.625,
                        "target": ">= 0.7 x floor",
                        "passed": False,
                        "note": "a | b",
                    }
                ],
            }
        )
    )
    completed = subprocess.run(
        [sys.executable, "bench/run.py", "--markdown", str(report_path)],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        timeout=QUICK_RUN_TIMEOUT_SECONDS,
        check=True,
    )
    rows = completed.stdout.splitlines()
    assert rows[0].startswith("| benchmark | metric | value |")
    assert (
        "| throughput (SQLite) | deliveries/s | 5,000 1/s | 8,000 (floor) | 0.62 | >= 0.7 x floor | **no** |" in rows[2]
    )
    assert "a / b" in rows[2]
    assert "test CPU" in completed.stdout
