"""Re-running a saved failure exactly.

A failure file (``failure.json``, written by every failing run, by the sweep
and by the pytest plugin) holds the whole experiment - seed, cluster, workload,
schedule, test-only Raft switches - plus what failed and the sha256 of the
history.  The simulation is deterministic, so re-running the experiment gives
the same history byte for byte and the same verdicts; ``replay`` says whether
it did (a different digest means the code changed since the file was saved).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.experiment import Experiment, ExperimentError
from chaos.report import FAILURE_FORMAT


class FailureFileError(ExperimentError):
    """A failure file that cannot be read or is not one."""


@dataclass(frozen=True)
class SavedFailure:
    experiment: Experiment
    failed: tuple[str, ...]
    history_sha256: str
    path: Path


def load_failure(path: str | Path) -> SavedFailure:
    path = Path(path)
    try:
        document: Any = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise FailureFileError(f"cannot read failure file {path}: {error.strerror or error}") from error
    except json.JSONDecodeError as error:
        raise FailureFileError(f"{path} is not JSON: {error}") from error
    if not isinstance(document, dict) or document.get("format") != FAILURE_FORMAT:
        raise FailureFileError(f"{path} is not a shoal chaos failure file (format {FAILURE_FORMAT!r} expected)")
    experiment = Experiment.from_dict(document.get("experiment"), source=str(path))
    failed = document.get("failed", [])
    if not isinstance(failed, list):
        raise FailureFileError(f"{path}: 'failed' must be a list of checker names")
    return SavedFailure(experiment, tuple(sorted(failed)), str(document.get("history_sha256", "")), path)


@dataclass(frozen=True)
class ReplayOutcome:
    saved: SavedFailure
    result: Any  # chaos.runner.RunResult

    @property
    def same_history(self) -> bool:
        return self.result.history_sha256 == self.saved.history_sha256

    @property
    def reproduced(self) -> bool:
        return tuple(self.result.failed_checkers) == self.saved.failed

    def describe(self) -> str:
        if self.reproduced and self.same_history:
            return (f"reproduced exactly: same history (sha256 {self.saved.history_sha256[:12]}), "
                    f"same failing checkers {', '.join(self.saved.failed)}")
        if self.reproduced:
            return (f"reproduced the failing checkers {', '.join(self.saved.failed)}, but the history differs "
                    f"(the code changed since the failure was saved)")
        now = ", ".join(self.result.failed_checkers) or "none"
        return f"NOT reproduced: saved failing checkers {', '.join(self.saved.failed)}, now failing: {now}"


def replay(path: str | Path, out_dir: str | Path | None = None, progress: bool = False) -> ReplayOutcome:
    from chaos.runner import run_experiment

    saved = load_failure(path)
    result = run_experiment(saved.experiment, out_dir=out_dir, progress=progress)
    return ReplayOutcome(saved, result)
