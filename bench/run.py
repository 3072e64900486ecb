"""Run every Hookline benchmark with its baseline, print the table and write bench/results/latest.json.

    .venv/bin/python -m bench.run            # the full run (< 10 minutes on 2 cores)
    .venv/bin/python -m bench.run --quick    # tiny sizes, proves the harness works (< 30 s)
    .venv/bin/python -m bench.run --only floor,throughput-sqlite

`python bench/run.py` works too. Only 127.0.0.1 is used; every child process is stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/run.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import api, backlog, baselines, deliveries, procs, service
from bench.context import RunContext, Sizes
from bench.results import Figure, RunReport, render_markdown, render_table

DEFAULT_OUTPUT = procs.BENCH_DIR / "results" / "latest.json"
DEFAULT_POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
POSTGRES_URL_ENV = "HOOKLINE_BENCH_POSTGRES_URL"

STORE_MARKERS: dict[str, Callable[[str], bool]] = {
    "sqlite": lambda name: name not in ("floor", "sink") and "-postgres" not in name,
    "postgresql": lambda name: "-postgres" in name,
}
LATENCY_BATCH_SIZE = 5  # the batched latency rows: 5 events a request, 100 requests/s
RUN_BUDGET_SECONDS = {"full": 560.0, "quick": 25.0}
QUICK_SKIPS = {
    "latency-postgres": "--quick runs PostgreSQL in the throughput row only",
    "latency-postgres-batched": "--quick runs PostgreSQL in the throughput row only",
    "latency-sqlite-batched": "--quick runs the single-event latency row only",
}

Benchmark = Callable[[RunContext], Awaitable[list[Figure]]]


def benchmarks() -> dict[str, Benchmark]:
    """Every benchmark by name, in the order a full run executes them (the floor first: others divide by it)."""
    registry: dict[str, Benchmark] = {
        "floor": baselines.measure_floor,
        "sink": baselines.check_sink_capacity,
        "throughput-sqlite": deliveries.throughput("sqlite"),
        "throughput-postgres": deliveries.throughput("postgresql"),
        "latency-sqlite": deliveries.latency("sqlite", 1),
        "latency-postgres": deliveries.latency("postgresql", 1),
        "latency-sqlite-batched": deliveries.latency("sqlite", LATENCY_BATCH_SIZE),
        "latency-postgres-batched": deliveries.latency("postgresql", LATENCY_BATCH_SIZE),
        "isolation": deliveries.isolation,
        "api": api.api,
        "backlog": backlog.backlog,  # last: its drain takes whatever is left of the run's time budget
    }
    return registry


async def run_benchmarks(
    names: list[str], sizes: Sizes, quick: bool, postgres_admin_url: str, profile: str = ""
) -> RunReport:
    """Run the named benchmarks in order with one shared sink; a failing benchmark is reported, not fatal."""
    command = " ".join(shlex.quote(part) for part in [Path(sys.executable).name, "-m", "bench.run", *sys.argv[1:]])
    report = RunReport(command=command, quick=quick)
    started = time.monotonic()
    work_dir = Path(tempfile.mkdtemp(prefix="hookline-bench-"))
    registry = benchmarks()
    sink = procs.start_sink(work_dir)
    stores = service.StoreFactory(work_dir, postgres_admin_url)
    context = RunContext(sizes=sizes, quick=quick, work_dir=work_dir, sink=sink, stores=stores, profile=profile)
    context.deadline = started + RUN_BUDGET_SECONDS["quick" if quick else "full"]
    stores.prepare_in_background({kind for name in names for kind, is_used in STORE_MARKERS.items() if is_used(name)})
    if not quick:
        # Preparing runs the CLI (seconds of CPU): never alongside a measurement that is quoted.
        await asyncio.to_thread(stores.wait_prepared)
    keep_work_dir = False
    whole_run_load = procs.ForeignLoad([sink.child.pid])
    whole_run_load.start()
    try:
        for name in names:
            benchmark = registry[name]
            benchmark_started = time.monotonic()
            foreign_load = procs.ForeignLoad([sink.child.pid])
            foreign_load.start()
            try:
                if quick and name in QUICK_SKIPS:
                    figures = [Figure.skipped(name, "all", "", "", QUICK_SKIPS[name])]
                else:
                    figures = await benchmark(context)
            except Exception as exc:  # one broken benchmark must not hide the others' figures
                keep_work_dir = True
                detail = "".join(traceback.format_exception_only(exc)).strip()
                figures = [Figure(name, "error", None, "", note=f"failed: {detail[:300]} (logs in {work_dir})")]
                context.details[f"{name}_traceback"] = traceback.format_exc()
            finally:
                context.stop_children()
            context.details[f"{name}_seconds"] = round(time.monotonic() - benchmark_started, 1)
            context.details[f"{name}_other_load_cores"] = round(foreign_load.cores(), 2)
            report.figures.extend(figures)
    finally:
        context.stop_children()
        sink.child.stop()
        stores.close()
        if profile:
            keep_work_dir = True  # the raw py-spy stacks are there
        if not keep_work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
    context.details["other_load_cores"] = round(whole_run_load.cores(), 2)
    report.details = context.details
    report.finish(time.monotonic() - started)
    return report


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; exit 0 when every benchmark ran (targets missed are reported, not failures)."""
    all_names = list(benchmarks())
    parser = argparse.ArgumentParser(
        description="Hookline benchmarks, each with its baseline measured in the same run."
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the harness, quotes nothing")
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {','.join(all_names)}")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON report")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_ADMIN_URL),
        help=f"a PostgreSQL server to create (and drop) a scratch database on (env {POSTGRES_URL_ENV})",
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        const="threads",
        default="",
        choices=("threads", "gil", "idle"),
        help="sample the Hookline process with py-spy: active threads, the GIL holder only, or idle threads too",
    )
    parser.add_argument(
        "--latency-rate", type=float, default=None, help="offered events/s for the latency rows (default: 500)"
    )
    parser.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="HOOKLINE_NAME=VALUE",
        help="a setting for every Hookline process of the run (repeatable), e.g. HOOKLINE_CLAIM_BATCH_SIZE=500",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        default=None,
        metavar="REPORT_JSON",
        help="print a written report (e.g. bench/results/latest.json) as a Markdown table, and run nothing",
    )
    args = parser.parse_args(argv)
    if args.markdown is not None:
        print(render_markdown(json.loads(args.markdown.read_text(encoding="utf-8"))), end="")
        return 0
    for assignment in args.service_env:
        key, separator, value = assignment.partition("=")
        if not separator or not key.startswith("HOOKLINE_"):
            parser.error(f"--service-env wants HOOKLINE_NAME=VALUE, got {assignment!r}")
        service.SERVICE_ENV[key] = value
    names = [name.strip() for name in args.only.split(",") if name.strip()] or all_names
    unknown = [name for name in names if name not in all_names]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(all_names)}")
    if "floor" not in names and any(name != "sink" for name in names):
        names.insert(0, "floor")  # every delivery figure is a ratio to the floor measured in the same run
    sizes = Sizes.quick() if args.quick else Sizes.full()
    if args.latency_rate is not None:
        sizes = dataclasses.replace(sizes, latency_events_per_second=args.latency_rate)
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    report = asyncio.run(run_benchmarks(names, sizes, args.quick, args.postgres_url, args.profile))
    render_table(report)
    report.write_json(args.output)
    print(f"wrote {args.output}")
    return 1 if any(figure.metric == "error" for figure in report.figures) else 0


if __name__ == "__main__":
    sys.exit(main())
