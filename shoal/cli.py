"""The `shoal` command: docker-like subcommands plus `chaos` and `bench`.

Argument parsing and dispatch only; each package exposes the function called here.
Exit codes follow the chaos harness' convention: 0 success, 1 a check failed,
2 bad input (argparse's own convention for usage errors).
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

# Subcommand name -> (module, function, one-line help).  Each target takes the
# remaining argv and returns an exit code; it owns its own argument parsing so
# that `shoal chaos --help` shows the chaos package's full help.
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "chaos": ("chaos.cli", "main", "run, sweep and replay chaos experiments"),
    "bench": ("benchmarks.__main__", "main", "run benchmarks side by side with their peers"),
}


def _usage() -> str:
    lines = ["usage: shoal COMMAND [ARGS...]", "", "Commands:"]
    for name, (_module, _function, help_text) in SUBCOMMANDS.items():
        lines.append(f"  {name:<10} {help_text}")
    lines.append("")
    lines.append("Run 'shoal COMMAND --help' for more information on a command.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command not in SUBCOMMANDS:
        print(f"shoal: '{command}' is not a shoal command.\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, function_name, _help = SUBCOMMANDS[command]
    entry: Callable[[list[str]], int] = getattr(importlib.import_module(module_name), function_name)
    return int(entry(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
