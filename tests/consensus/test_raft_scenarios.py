"""Transcript tests (etcd-io/raft testdata style): each file in scenarios/
is a script of commands, each followed by ``----`` and the output it must
produce.  Run with SHOAL_REWRITE=1 to regenerate the expected output (then
READ the diff: the transcript is the specification).

Commands:
  cluster voters=1,2,3 [learners=4] [prevote=true] [checkquorum=true]
          [unsafe_figure8=false] [max_msg_bytes=N]
  log NODE terms=1,1,4 [term=T]      give NODE this log (entries 1..n)
  campaign NODE | tick NODE [COUNT] | tick-all COUNT (quiet, stabilizes)
  propose NODE DATA | transfer NODE TARGET | read NODE CTX
  stabilize [only=TYPE,TYPE]        deliver until quiet (others dropped)
  deliver COUNT                     handle readies, deliver COUNT messages
  isolate NODE | partition 1,2 3,4,5 | cut SRC DST | heal
  crash NODE | restart NODE | status | logs | applied
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from consensus.errors import RaftError
from consensus.types import EntryType, MessageType
from raft_network import Net, describe_message

SCENARIOS = Path(__file__).parent / "scenarios"


def parse_options(words: list[str]) -> dict[str, str]:
    options = {}
    for word in words:
        key, _, value = word.partition("=")
        options[key] = value
    return options


def ids(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


class Interpreter:
    def __init__(self) -> None:
        self.net: Net | None = None

    def run(self, line: str) -> list[str]:
        words = line.split()
        command, args = words[0], words[1:]
        handler = getattr(self, "cmd_" + command.replace("-", "_"), None)
        if handler is None:
            raise ValueError(f"unknown command {command!r}")
        out: list[str] = []
        handler(args, out)
        return out

    # -- commands ----------------------------------------------------------------
    def cmd_cluster(self, args: list[str], out: list[str]) -> None:
        options = parse_options(args)
        config: dict[str, object] = {
            "pre_vote": options.get("prevote", "true") == "true",
            "check_quorum": options.get("checkquorum", "true") == "true",
            "unsafe_skip_figure8_commit_rule": options.get("unsafe_figure8", "false") == "true",
        }
        if "max_msg_bytes" in options:
            config["max_size_per_msg_bytes"] = int(options["max_msg_bytes"])
        self.net = Net(ids(options["voters"]), ids(options.get("learners", "")), **config)
        out.append(f"{len(self.net.nodes)} nodes, bootstrap entries 1..{len(self.net.nodes)} committed at term 1")

    def cmd_log(self, args: list[str], out: list[str]) -> None:
        options = parse_options(args[1:])
        term = int(options["term"]) if "term" in options else None
        self.net.set_log(int(args[0]), ids(options["terms"]), term)
        self._logs([int(args[0])], out)

    def cmd_campaign(self, args: list[str], out: list[str]) -> None:
        self.net.nodes[int(args[0])].campaign()

    def cmd_tick(self, args: list[str], out: list[str]) -> None:
        self.net.tick(int(args[0]), int(args[1]) if len(args) > 1 else 1)

    def cmd_tick_all(self, args: list[str], out: list[str]) -> None:
        self.net.tick_all(int(args[0]))
        self.cmd_status([], out)

    def cmd_propose(self, args: list[str], out: list[str]) -> None:
        try:
            index = self.net.nodes[int(args[0])].propose(args[1].encode())
            out.append(f"index {index}")
        except RaftError as error:
            out.append(f"{type(error).__name__}: {error}")

    def cmd_transfer(self, args: list[str], out: list[str]) -> None:
        try:
            self.net.nodes[int(args[0])].transfer_leadership(int(args[1]))
        except RaftError as error:
            out.append(f"{type(error).__name__}: {error}")

    def cmd_read(self, args: list[str], out: list[str]) -> None:
        try:
            self.net.nodes[int(args[0])].read_index(args[1].encode())
        except RaftError as error:
            out.append(f"{type(error).__name__}: {error}")

    def cmd_stabilize(self, args: list[str], out: list[str]) -> None:
        options = parse_options(args)
        net = self.net
        net.log_lines = out
        only = {MessageType[name] for name in options["only"].split(",")} if "only" in options else None
        net.drop_filter = (lambda m: m.type not in only) if only else None
        try:
            net.stabilize()
        finally:
            net.log_lines = None
            net.drop_filter = None
        for node_id in sorted(net.read_states):
            for rs in net.read_states[node_id]:
                out.append(f"  read state at {node_id}: index={rs.index} ctx={rs.context.decode()}")
            net.read_states[node_id].clear()

    def cmd_deliver(self, args: list[str], out: list[str]) -> None:
        net = self.net
        net.log_lines = out
        try:
            for _ in range(int(args[0])):
                for node_id in sorted(net.nodes):
                    while net.handle_ready(node_id):
                        pass
                if not net.deliver_one():
                    break
            for node_id in sorted(net.nodes):
                while net.handle_ready(node_id):
                    pass
        finally:
            net.log_lines = None
        out.append(f"  ({len(net.queue)} messages still queued)")

    def cmd_isolate(self, args: list[str], out: list[str]) -> None:
        self.net.isolate(int(args[0]))

    def cmd_partition(self, args: list[str], out: list[str]) -> None:
        groups = [ids(arg) for arg in args]
        group_of = {n: position for position, group in enumerate(groups) for n in group}
        for a in self.net.nodes:
            for b in self.net.nodes:
                if a != b and group_of.get(a, -1) != group_of.get(b, -1):
                    self.net.cut.add((a, b))

    def cmd_cut(self, args: list[str], out: list[str]) -> None:
        self.net.cut.add((int(args[0]), int(args[1])))

    def cmd_heal(self, args: list[str], out: list[str]) -> None:
        self.net.heal()

    def cmd_crash(self, args: list[str], out: list[str]) -> None:
        self.net.crash(int(args[0]))
        self.net.queue = [m for m in self.net.queue if m.to != int(args[0]) and m.frm != int(args[0])]

    def cmd_restart(self, args: list[str], out: list[str]) -> None:
        # Restart and let it persist/apply its committed log (no messages yet).
        node_id = int(args[0])
        self.net.start(node_id)
        while self.net.handle_ready(node_id):
            pass

    def cmd_status(self, args: list[str], out: list[str]) -> None:
        for node_id, node in sorted(self.net.nodes.items()):
            down = " (down)" if node_id in self.net.down else ""
            out.append(
                f"  {node_id}: {node.role.name} term={node.term} vote={node.vote} lead={node.lead} "
                f"commit={node.log.committed} last={node.log.last_index()}{down}"
            )

    def cmd_logs(self, args: list[str], out: list[str]) -> None:
        self._logs(sorted(self.net.nodes), out)

    def _logs(self, nodes: list[int], out: list[str]) -> None:
        for node_id in nodes:
            terms = self.net.log_terms(node_id)
            out.append(f"  {node_id}: {' '.join(str(t) for t in terms)}")

    def cmd_applied(self, args: list[str], out: list[str]) -> None:
        for node_id in sorted(self.net.nodes):
            shown = [
                f"{e.index}/t{e.term}:{e.data.decode() if e.data else '-'}"
                for e in self.net.applied[node_id]
                if e.type == EntryType.NORMAL
            ]
            out.append(f"  {node_id}: {' '.join(shown)}")


def run_script(text: str) -> str:
    """Execute a transcript, returning it with the actual outputs filled in."""
    interpreter = Interpreter()
    result: list[str] = []
    blocks = text.split("\n\n")
    for block in blocks:
        lines = block.strip("\n").split("\n")
        if not lines or not lines[0].strip():
            continue
        commands = []
        for line in lines:
            if line == "----":
                break
            commands.append(line)
        for line in commands:
            result.append(line)
        output: list[str] = []
        for line in commands:
            if line.startswith("#"):
                continue
            output.extend(interpreter.run(line))
        if any(not line.startswith("#") for line in commands):
            result.append("----")
            result.extend(output if output else ["ok"])
        result.append("")
    return "\n".join(result)


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.txt")), ids=lambda p: p.stem)
def test_scenario_transcript(path: Path) -> None:
    expected = path.read_text()
    actual = run_script(expected)
    if os.environ.get("SHOAL_REWRITE"):
        path.write_text(actual)
        return
    assert actual.strip() == expected.strip(), f"{path.name} differs; rerun with SHOAL_REWRITE=1 and review the diff"


def test_there_are_scenarios() -> None:
    names = {path.stem for path in SCENARIOS.glob("*.txt")}
    assert {"figure7_logs", "figure8_commit_rule", "figure8_unsafe_switch", "stale_leader_isolated_then_healed",
            "disruptive_rejoin_prevote_on", "disruptive_rejoin_prevote_off"} <= names
