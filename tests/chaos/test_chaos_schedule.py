"""Fault schedules and experiment files: round trips and typed errors for bad input."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given

from chaos.experiment import (ExperimentError, apply_flags, default_experiment, load_experiment,
                              Experiment)
from chaos.schedule import (FAULTS, Event, FaultParameterError, Schedule, ScheduleError,
                            UnknownFaultError, parse_duration_ms, parse_fault_flag)
from chaos.strategies import schedules


def test_yaml_and_json_round_trip() -> None:
    schedule = Schedule.from_yaml("""
- {at: 2, fault: kill-leader}
- {at: 1500ms, fault: partition, mode: explicit, groups: [[m1], [m2, m3]]}
- {at_ms: 9000, fault: heal}
""")
    assert [event.at_ms for event in schedule] == [1500, 2000, 9000]
    assert Schedule.from_json(schedule.to_json()) == schedule
    assert Schedule.from_yaml(schedule.to_yaml()) == schedule
    assert schedule.events[0].param("groups") == (("m1",), ("m2", "m3"))


@given(schedules(["m1", "m2", "m3"], ["w1"], duration_ms=30_000))
def test_generated_schedules_round_trip(schedule: Schedule) -> None:
    assert Schedule.from_json(schedule.to_json()) == schedule
    assert all(event.at_ms <= 30_000 for event in schedule)


@pytest.mark.parametrize("text, error, words", [
    ("[{at: 1, fault: nuke}]", UnknownFaultError, "unknown fault 'nuke'"),
    ("[{at: x, fault: heal}]", ScheduleError, "duration"),
    ("[{at: 1, fault: kill}]", FaultParameterError, "needs a target"),
    ("[{at: 1, fault: heal, target: m1}]", FaultParameterError, "takes no target"),
    ("[{at: 1, fault: link, loss_probability: 3}]", FaultParameterError, "within"),
    ("[{at: 1, fault: link, mode: laggy}]", FaultParameterError, "must be one of"),
    ("[{at: 1, fault: kill, target: m1, force: true}]", FaultParameterError, "unknown parameter"),
    ("[{at: 1, fault: partition, mode: explicit}]", FaultParameterError, "needs 'groups'"),
    ("[{fault: heal}]", ScheduleError, "no time"),
    ("[{at: 1}]", ScheduleError, "no 'fault'"),
    ("{at: 1}", ScheduleError, "list of events"),
    ("[3]", ScheduleError, "mapping"),
    ("[{at: 1, fault: heal", ScheduleError, "not valid YAML"),
])
def test_bad_schedules_are_typed_errors(text: str, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        Schedule.from_yaml(text)


def test_durations() -> None:
    assert parse_duration_ms("2s") == 2000 and parse_duration_ms("1m") == 60_000
    assert parse_duration_ms(250) == 250 and parse_duration_ms("250ms") == 250
    for bad in (-1, "soon", True, float("nan"), None):
        with pytest.raises(ScheduleError):
            parse_duration_ms(bad)


def test_fault_flags() -> None:
    assert parse_fault_flag("10s:kill:m2:lose_unpersisted=true") == Event(
        10_000, "kill", "m2", (("lose_unpersisted", True),))
    assert parse_fault_flag("5:kill-leader").at_ms == 5000
    with pytest.raises(ScheduleError):
        parse_fault_flag("kill")
    with pytest.raises(UnknownFaultError):
        parse_fault_flag("5s:explode")


def test_every_fault_has_help() -> None:
    assert all(spec.help for spec in FAULTS.values())


def test_default_experiment_loads_and_round_trips() -> None:
    experiment = default_experiment()
    assert len(experiment.managers) == 3 and len(experiment.nodes) == 4
    assert Experiment.from_dict(experiment.to_dict()) == experiment


def test_json_round_trip_keeps_the_workload() -> None:
    import json

    experiment = default_experiment()
    again = Experiment.from_dict(json.loads(json.dumps(experiment.to_dict(), sort_keys=True)))
    assert again == experiment


def test_shipped_experiments_load() -> None:
    files = sorted((Path(__file__).resolve().parents[2] / "chaos" / "experiments").glob("*.yaml"))
    assert len(files) >= 3
    for path in files:
        load_experiment(path)


@pytest.mark.parametrize("text, words", [
    ("seed: -1", "seed"),
    ("cluster: {managers: 0}", "managers"),
    ("cluster: {managers: 3, workers: 1000}", "workers"),
    ("cluster: {nodes: [{name: a, role: king}]}", "role"),
    ("cluster: {nodes: [{name: a}, {name: a}]}", "duplicate"),
    ("duration: forever", "duration"),
    ("colour: blue", "unknown field"),
    ("workload: {kv: {mix: {scan: 1}}}", "unknown operation"),
    ("workload: {services: [{at: 1, op: scale, name: web, replicas: 2}]}", "no earlier 'create'"),
    ("faults: [{at: 1, fault: kill, target: nobody}]", "unknown node"),
    ("duration: 10s\nfaults: [{at: 20s, fault: kill-leader}]", "after the end"),
    ("checkers: [vibes]", "checkers"),
    ("- just a list", "mapping"),
])
def test_bad_experiments_are_typed_errors(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises((ExperimentError, ScheduleError), match=words):
        load_experiment(path)


def test_missing_file_is_an_experiment_error(tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match="cannot read"):
        load_experiment(tmp_path / "nope.yaml")


def test_flags_override() -> None:
    experiment = apply_flags(default_experiment(), seed=9, managers=5, workers=2, duration_s=30,
                             faults=["5s:kill-leader", "10s:restart:killed"])
    assert experiment.seed == 9 and len(experiment.managers) == 5 and len(experiment.workers) == 2
    assert experiment.duration_ms == 30_000 and len(experiment.schedule) == 2
    with pytest.raises(ExperimentError):
        apply_flags(default_experiment(), managers=0)
    with pytest.raises(ExperimentError):
        apply_flags(default_experiment(), duration_s=-3)
