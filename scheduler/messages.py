"""Messages between agents (workers) and the leader's dispatcher
(swarmkit api/dispatcher.proto: Session, Heartbeat and its response,
UpdateTaskStatus, Assignments). Frozen dataclasses; the host carries them (simulated links in
chaos/sim, direct calls in the local harness, a socket in a daemon)."""
from __future__ import annotations

from dataclasses import dataclass

from scheduler.model import Config, Resources, Secret, Task, TaskStatus


@dataclass(frozen=True, slots=True)
class Register:
    node_id: str
    hostname: str
    role: int = 0
    resources: Resources = Resources()
    labels: tuple[tuple[str, str], ...] = ()
    address: str = ""


@dataclass(frozen=True, slots=True)
class RegisterAck:
    node_id: str
    session_id: int
    heartbeat_period_ticks: int


@dataclass(frozen=True, slots=True)
class Heartbeat:
    node_id: str
    session_id: int
    # ``results_in`` of the last Assignments the agent applied in this session
    # (0: none yet). The dispatcher re-sends the node's set when it differs
    # from the last one sent (our links lose messages and have no stream
    # underneath; swarmkit restarts its Assignments stream instead).
    assignments_applied: int = 0
    # Task states the agent reported without an acknowledgement yet (task id,
    # observed status), and this heartbeat's number: the HeartbeatAck naming
    # it acknowledges them (the pair plays swarmkit's UpdateTaskStatus RPC and
    # its response).
    updates: tuple[tuple[str, TaskStatus], ...] = ()
    beat: int = 0


@dataclass(frozen=True, slots=True)
class HeartbeatAck:
    """The dispatcher's answer to a heartbeat when the agent already holds its
    latest assignments (swarmkit's HeartbeatResponse): tells a worker's host
    that the leader it talks to is alive, and with ``beat`` (the heartbeat's
    number; 0: none) that the updates it carried were all taken."""
    node_id: str
    session_id: int
    beat: int = 0


@dataclass(frozen=True, slots=True)
class SessionInvalid:
    """The dispatcher does not know this session (new leader, or the node was
    declared down): the agent must register again."""
    node_id: str


@dataclass(frozen=True, slots=True)
class StatusReport:
    """Task states that changed since the agent's last message, sent at once
    (the next heartbeat carries them again until acknowledged)."""
    node_id: str
    session_id: int
    updates: tuple[tuple[str, TaskStatus], ...]   # (task id, observed status)


@dataclass(frozen=True, slots=True)
class Assignments:
    """The complete set of tasks the node must run or stop, and ONLY the
    secrets and configs those tasks reference. Sent when that set changed, on
    a new session, and when a heartbeat shows the agent does not hold the last
    one sent. ``results_in`` numbers the sets a dispatcher sends (swarmkit's
    AssignmentsMessage.ResultsIn): an agent applies only a set newer than the
    one it holds, so a set delayed behind a newer one is ignored."""
    node_id: str
    session_id: int
    tasks: tuple[Task, ...]
    secrets: tuple[Secret, ...] = ()
    configs: tuple[Config, ...] = ()
    results_in: int = 0
