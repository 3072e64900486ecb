"""What every benchmark of one run shares: sizes, the sink, the floor measured in this run, a work folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench import procs, service
from bench.profile import Profiler, ProfileSummary


@dataclass(frozen=True)
class Sizes:
    """How big each benchmark is; `full()` keeps a whole run under 10 minutes on 2 cores, `quick()` under 30 s."""

    floor_requests: int
    floor_repeats: int
    sink_check_seconds: float
    throughput_events: int
    throughput_subscriptions: int
    throughput_repeats: int
    report_batch_size: int
    latency_events_per_second: float
    latency_seconds: float
    latency_warmup_seconds: float
    latency_subscriptions: int
    isolation_events: int
    isolation_subscriptions: int
    isolation_timeout_seconds: float
    backlog_rows: int
    backlog_subscriptions: int
    backlog_drain_seconds: float
    backlog_small_comparison: bool
    api_seconds: float
    api_connections: int

    @classmethod
    def full(cls) -> Sizes:
        """The sizes of the documented run."""
        return cls(
            floor_requests=20_000,
            floor_repeats=3,
            sink_check_seconds=3.0,
            throughput_events=2_000,
            throughput_subscriptions=10,
            throughput_repeats=3,
            report_batch_size=100,
            latency_events_per_second=500.0,
            latency_seconds=10.0,
            latency_warmup_seconds=1.0,
            latency_subscriptions=10,
            isolation_events=2_000,
            isolation_subscriptions=10,
            isolation_timeout_seconds=10.0,
            backlog_rows=1_000_000,
            backlog_subscriptions=1_000,
            backlog_drain_seconds=240.0,
            backlog_small_comparison=True,
            api_seconds=5.0,
            api_connections=32,
        )

    @classmethod
    def quick(cls) -> Sizes:
        """Tiny sizes: proves the harness runs end to end, measures nothing worth quoting."""
        return cls(
            floor_requests=500,
            floor_repeats=1,
            sink_check_seconds=0.5,
            throughput_events=40,
            throughput_subscriptions=5,
            throughput_repeats=1,
            report_batch_size=20,
            latency_events_per_second=50.0,
            latency_seconds=0.5,
            latency_warmup_seconds=0.2,
            latency_subscriptions=2,
            isolation_events=40,
            isolation_subscriptions=10,
            isolation_timeout_seconds=1.0,
            backlog_rows=2_000,
            backlog_subscriptions=20,
            backlog_drain_seconds=20.0,
            backlog_small_comparison=False,
            api_seconds=0.5,
            api_connections=8,
        )


@dataclass
class RunContext:
    """Shared state of one run; benchmarks read sizes and the floor, and add their own processes to stop."""

    sizes: Sizes
    quick: bool
    work_dir: Path
    sink: procs.Sink
    stores: service.StoreFactory
    profile: str = ""  # "" (off), "threads" (active threads), "gil" (the GIL holder) or "idle" (idle ones too)
    floor_deliveries_per_second: float | None = None
    deadline: float = float("inf")  # time.monotonic() by which the whole run should be done
    children: list[procs.ChildProcess] = field(default_factory=list)
    details: dict[str, object] = field(default_factory=dict)

    def adopt(self, child: procs.ChildProcess) -> procs.ChildProcess:
        """Remember a child so that the run stops it even if its benchmark fails."""
        self.children.append(child)
        return child

    def start_profiler(self, pid: int, label: str) -> Profiler | None:
        """A py-spy recording of `pid` when the run profiles (--profile), else None."""
        if not self.profile:
            return None
        profiler = Profiler(pid, self.work_dir / f"profile-{label}.txt", mode=self.profile)
        return profiler if profiler.start() else None

    def keep_profile(self, label: str, summary: ProfileSummary | None) -> None:
        """Store a profile's top entries in the report's details."""
        if summary is not None:
            profiles = self.details.setdefault("profiles", {})
            assert isinstance(profiles, dict)
            profiles[label] = summary.as_dict()

    def stop_children(self) -> None:
        """Stop every adopted child (by PID), newest first."""
        while self.children:
            self.children.pop().stop()
