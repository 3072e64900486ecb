"""Sample a Hookline process with py-spy while a benchmark runs, and summarise where its CPU went."""

from __future__ import annotations

import collections
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import procs

SAMPLES_PER_SECOND = 200
STOP_TIMEOUT_SECONDS = 20.0
TOP_ENTRIES = 15


def py_spy_executable() -> str | None:
    """py-spy beside the running interpreter, else on PATH, else None."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


@dataclass(frozen=True)
class ProfileSummary:
    """The top functions of a py-spy recording: by own samples and by samples with them on the stack."""

    samples: int
    top_self: list[tuple[str, float]]
    top_inclusive: list[tuple[str, float]]
    raw_path: str

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: shares of samples in percent."""
        return {
            "samples": self.samples,
            "top_self_percent": [[frame, round(share, 1)] for frame, share in self.top_self],
            "top_inclusive_percent": [[frame, round(share, 1)] for frame, share in self.top_inclusive],
            "raw_collapsed_stacks": self.raw_path,
        }


def summarise_collapsed(path: Path, top: int = TOP_ENTRIES) -> ProfileSummary:
    """Read py-spy's raw (collapsed stacks) output: `frame;frame;... count` per line."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if total == 0:
        return ProfileSummary(0, [], [], str(path))
    return ProfileSummary(
        total,
        [(frame, 100.0 * count / total) for frame, count in own.most_common(top)],
        [(frame, 100.0 * count / total) for frame, count in inclusive.most_common(top)],
        str(path),
    )


class Profiler:
    """py-spy recording one process from start() until stop()."""

    def __init__(self, pid: int, output_path: Path, mode: str = "threads") -> None:
        self._pid = pid
        self._output_path = output_path
        self._mode = mode  # "threads": active threads; "gil": the GIL holder only; "idle": idle threads too
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> bool:
        """Begin sampling (non-blocking, 200 Hz, threads as the mode says); False without py-spy."""
        executable = py_spy_executable()
        if executable is None:
            return False
        log_path = self._output_path.with_suffix(".py-spy.log")
        with log_path.open("wb") as log_file:
            self._process = subprocess.Popen(
                [
                    executable,
                    "record",
                    "--pid",
                    str(self._pid),
                    "--rate",
                    str(SAMPLES_PER_SECOND),
                    "--format",
                    "raw",
                    "--output",
                    str(self._output_path),
                    "--nonblocking",
                    *({"gil": ["--gil"], "idle": ["--idle"]}.get(self._mode, [])),
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=procs.REPO_DIR,
            )
        return True

    def stop(self) -> ProfileSummary | None:
        """Stop sampling (SIGINT makes py-spy write its file) and summarise; None when nothing was recorded."""
        if self._process is None:
            return None
        child = procs.ChildProcess("py-spy", self._process)
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                child.stop()
        if not self._output_path.exists():
            return None
        return summarise_collapsed(self._output_path)
