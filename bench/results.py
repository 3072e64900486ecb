"""Figures of a benchmark run: each with its baseline from the same run, its ratio and its target; table and JSON."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import procs


@dataclass
class Figure:
    """One measured figure: value, the baseline it is compared with, the ratio, and whether it meets its target."""

    benchmark: str
    metric: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    ratio: float | None = None
    target: str = ""
    passed: bool | None = None
    note: str = ""

    @classmethod
    def skipped(cls, benchmark: str, metric: str, unit: str, target: str, reason: str) -> Figure:
        """A figure that could not be measured in this run, with the reason."""
        return cls(benchmark, metric, None, unit, target=target, note=f"not measured: {reason}")


def at_least(value: float | None, bound: float) -> bool | None:
    """Whether value >= bound; None when there is no value."""
    return None if value is None else value >= bound


def at_most(value: float | None, bound: float) -> bool | None:
    """Whether value <= bound; None when there is no value."""
    return None if value is None else value <= bound


def ratio_of(value: float | None, baseline: float | None) -> float | None:
    """value / baseline, or None when either is missing or the baseline is zero."""
    if value is None or baseline is None or baseline == 0:
        return None
    return value / baseline


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of an ascending sequence (fraction in [0, 1])."""
    if not sorted_values:
        raise ValueError("percentile of nothing")
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


@dataclass
class RunReport:
    """Everything one run measured, with the machine and the command, as written to JSON."""

    command: str
    quick: bool
    started_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    machine: dict[str, object] = field(default_factory=lambda: describe_machine())
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, object] = field(default_factory=dict)
    duration_seconds: float = 0.0

    def finish(self, duration_seconds: float) -> None:
        """Note the run's duration and the machine's load at its end (other work on the machine skews figures)."""
        self.duration_seconds = duration_seconds
        self.machine["load_average_at_end"] = [round(value, 2) for value in os.getloadavg()]

    def write_json(self, path: Path) -> None:
        """Write the report as indented JSON (creating the folder)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2, default=str) + "\n", encoding="utf-8")


def describe_machine() -> dict[str, object]:
    """CPU model and count, memory, Python, kernel and the git commit: what a reader needs to compare runs."""
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_bytes = None
    with contextlib.suppress(ValueError, OSError):
        memory_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=procs.REPO_DIR, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = ""
    return {
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "memory_bytes": memory_bytes,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": commit,
    }


def _format_number(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit in ("ms",):
        return f"{value:,.2f}"
    if unit == "MB":
        return f"{value:,.1f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.3g}"


def render_table(report: RunReport, console: Console | None = None) -> None:
    """Print the figures as a table: benchmark, metric, value, baseline, ratio, target, verdict, note."""
    console = console or Console(width=200)
    table = Table(title=f"Hookline benchmarks ({'quick' if report.quick else 'full'} run, {report.started_at})")
    table.add_column("benchmark", style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("unit")
    table.add_column("baseline", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("target")
    table.add_column("ok", justify="center")
    table.add_column("note", overflow="fold", max_width=60)
    for figure in report.figures:
        verdict = {True: "[green]yes[/green]", False: "[red]NO[/red]", None: ""}[figure.passed]
        baseline = (
            f"{_format_number(figure.baseline, figure.unit)} ({figure.baseline_name})"
            if figure.baseline is not None
            else ""
        )
        table.add_row(
            figure.benchmark,
            figure.metric,
            _format_number(figure.value, figure.unit),
            figure.unit,
            baseline,
            "" if figure.ratio is None else f"{figure.ratio:.2f}",
            figure.target,
            verdict,
            figure.note,
        )
    console.print(table)
    machine = report.machine
    console.print(
        f"machine: {machine.get('cpu_model')} ({machine.get('usable_cpus')} usable CPUs), "
        f"Python {machine.get('python')}, commit {machine.get('git_commit')}; "
        f"run took {report.duration_seconds:.0f} s; "
        f"load average {machine.get('load_average_at_start')} at start, {machine.get('load_average_at_end')} at end"
    )
    loads = {
        key.removesuffix("_other_load_cores"): value
        for key, value in report.details.items()
        if key.endswith("_other_load_cores") and isinstance(value, float | int)
    }
    if "other_load_cores" in report.details:
        busiest = max(loads.items(), key=lambda item: item[1]) if loads else None
        console.print(
            f"other processes kept {report.details['other_load_cores']} cores busy on average during the run"
            + (f" (most during {busiest[0]}: {busiest[1]} cores)" if busiest else "")
            + "; figures are only comparable between runs on a quiet machine"
        )


def render_markdown(report: dict[str, object]) -> str:
    """A written report (the JSON's content) as a Markdown table plus the machine line, for the README."""
    lines = [
        "| benchmark | metric | value | baseline | ratio | target | ok | note |",
        "|---|---|---:|---:|---:|---|:-:|---|",
    ]
    figures = report.get("figures", [])
    assert isinstance(figures, list)
    for figure in figures:
        unit = figure["unit"]
        value = _format_number(figure["value"], unit)
        baseline = figure["baseline"]
        baseline_text = f"{_format_number(baseline, unit)} ({figure['baseline_name']})" if baseline is not None else ""
        ratio = "" if figure["ratio"] is None else f"{figure['ratio']:.2f}"
        verdict = {True: "yes", False: "**no**", None: ""}[figure["passed"]]
        note = str(figure["note"]).replace("|", "/")
        lines.append(
            f"| {figure['benchmark']} | {figure['metric']} | {value} {unit} | {baseline_text} | {ratio} | "
            f"{figure['target']} | {verdict} | {note} |"
        )
    machine = report.get("machine", {})
    details = report.get("details", {})
    assert isinstance(machine, dict)
    assert isinstance(details, dict)
    duration = report.get("duration_seconds", 0.0)
    assert isinstance(duration, float | int)
    lines.append("")
    lines.append(
        f"Machine: {machine.get('cpu_model')}, {machine.get('usable_cpus')} usable CPUs, "
        f"{int(machine.get('memory_bytes') or 0) / 1e9:.1f} GB, Python {machine.get('python')}, "
        f"commit {machine.get('git_commit')}, {report.get('started_at')}; the run took {duration:.0f} s; "
        f"other processes kept {details.get('other_load_cores')} cores busy on average. "
        f"Command: `{report.get('command')}`."
    )
    return "\n".join(lines) + "\n"
