"""``shoal chaos``: run, replay and sweep chaos experiments.

    shoal chaos run [EXPERIMENT.yaml] [--seed N] [--managers N] [--workers N]
                    [--duration S] [--faults AT:FAULT[:TARGET][:k=v,...] ...] [--out DIR]
    shoal chaos replay FAILURE.json [--out DIR]
    shoal chaos sweep [EXPERIMENT.yaml] --seeds N [--jobs K] [--first-seed S] [--out DIR]
    shoal chaos faults        (list the fault names and what they do)

Exit codes: 0 every checker passed; 1 a checker failed (the replay command is
printed); 2 bad input (unreadable or invalid experiment, unknown fault, bad
numbers) with a message naming the problem.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from chaos.experiment import ExperimentError, apply_flags, default_experiment, load_experiment
from chaos.schedule import FAULTS, ScheduleError

EXIT_PASS, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so main() returns 2 itself."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ExperimentError(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="shoal chaos", description="Chaos experiments on a simulated Shoal swarm.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = commands.add_parser("run", help="run one experiment (default: the seed's story)")
    run.add_argument("experiment", nargs="?", help="experiment YAML file (default: built-in default.yaml)")
    _shape_flags(run)
    run.add_argument("--seed", type=int, help="seed of every random choice (default: the file's)")
    run.add_argument("--duration", type=float, metavar="S", help="fault phase length in simulated seconds")
    run.add_argument("--faults", nargs="+", metavar="EVENT",
                     help="replace the schedule: AT:FAULT[:TARGET][:k=v,...], e.g. 5s:kill-leader 9s:restart:killed")
    run.add_argument("--out", metavar="DIR", help="output directory (default: ./chaos-out/<seed>/)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--no-png", action="store_true", help="skip the timeline plot")

    replay = commands.add_parser("replay", help="re-run a saved failure exactly")
    replay.add_argument("failure", help="failure.json written by a failing run")
    replay.add_argument("--out", metavar="DIR", help="output directory (default: next to the file, replay/)")

    sweep = commands.add_parser("sweep", help="run many seeds in parallel processes and summarise")
    sweep.add_argument("experiment", nargs="?", help="experiment YAML file (default: built-in)")
    sweep.add_argument("--seeds", type=int, required=True, help="how many seeds")
    sweep.add_argument("--first-seed", type=int, default=0)
    sweep.add_argument("--jobs", type=int, default=0, help="worker processes (default: CPU count)")
    sweep.add_argument("--random-faults", nargs="?", const="mixed", default=None, choices=["mixed", "churn"],
                       help="draw a random fault schedule per seed instead of the file's: 'mixed' (the default) "
                            "draws every fault kind, 'churn' cycles leader traps and leader partitions")
    _shape_flags(sweep)
    sweep.add_argument("--duration", type=float, metavar="S")
    sweep.add_argument("--out", metavar="DIR", default="chaos-out/sweep")

    commands.add_parser("faults", help="list the fault names")
    return parser


def _shape_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--managers", type=int, help="number of managers (replaces the file's nodes)")
    parser.add_argument("--workers", type=int, help="number of workers (replaces the file's nodes)")


def main(argv: Sequence[str] | None = None) -> int:
    console = Console()
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list:
        args_list = ["run"]
    try:
        if args_list[0] in ("-h", "--help"):
            _parser().print_help()
            return EXIT_PASS
        args = _parser().parse_args(args_list)
        if args.command == "run":
            return _run(args, console)
        if args.command == "replay":
            return _replay(args, console)
        if args.command == "sweep":
            return _sweep(args, console)
        if args.command == "faults":
            for name, spec in sorted(FAULTS.items()):
                console.print(f"[bold]{name:<15}[/] {spec.help}")
            return EXIT_PASS
        _parser().print_help()
        return EXIT_BAD_INPUT
    except (ExperimentError, ScheduleError) as error:
        # Plain stderr, unwrapped: scripts grep these messages.
        print(f"shoal chaos: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _experiment_from(args: argparse.Namespace):
    experiment = load_experiment(args.experiment) if args.experiment else default_experiment()
    return apply_flags(experiment, seed=getattr(args, "seed", None), managers=args.managers, workers=args.workers,
                       duration_s=args.duration, faults=getattr(args, "faults", None))


def _run(args: argparse.Namespace, console: Console) -> int:
    from chaos.report import print_summary
    from chaos.runner import run_experiment

    experiment = _experiment_from(args)
    out_dir = Path(args.out) if args.out else Path("chaos-out") / str(experiment.seed)
    result = run_experiment(experiment, out_dir=out_dir, progress=not args.no_progress, write_png=not args.no_png)
    print_summary(result, console)
    console.print(f"wrote {out_dir}/history.jsonl, results.json" + ("" if args.no_png else ", timeline.png"))
    if result.passed:
        console.print("[bold green]all checkers passed[/]")
        return EXIT_PASS
    console.print(f"[bold red]FAILED:[/] {', '.join(result.failed_checkers)}")
    console.print(f"replay with: shoal chaos replay {result.failure_file}", highlight=False)
    return EXIT_FAIL


def _replay(args: argparse.Namespace, console: Console) -> int:
    from chaos.replay import replay
    from chaos.report import print_summary

    path = Path(args.failure)
    out_dir = Path(args.out) if args.out else path.parent / "replay"
    outcome = replay(path, out_dir=out_dir, progress=False)
    print_summary(outcome.result, console)
    console.print(outcome.describe())
    return EXIT_PASS if outcome.result.passed else EXIT_FAIL


def _sweep(args: argparse.Namespace, console: Console) -> int:
    from chaos.sweep import run_sweep

    if args.seeds <= 0 or args.seeds > 100_000:
        raise ExperimentError(f"--seeds must be between 1 and 100000, got {args.seeds}")
    if args.jobs < 0:
        raise ExperimentError(f"--jobs must be positive, got {args.jobs}")
    if args.first_seed < 0:
        raise ExperimentError(f"--first-seed must be non-negative, got {args.first_seed}")
    experiment = _experiment_from(args)
    return run_sweep(experiment, seeds=args.seeds, first_seed=args.first_seed, jobs=args.jobs,
                     random_faults=args.random_faults, out_dir=Path(args.out), console=console)


if __name__ == "__main__":
    sys.exit(main())
