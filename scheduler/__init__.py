"""Shoal's swarm control plane: store, orchestrators, allocator, scheduler,
updater, dispatcher and agents - every component sans-IO (ticks, no clocks,
randomness injected), following moby/swarmkit's manager/ shapes.

Public API (stable; chaos/ and the daemon build on it)
------------------------------------------------------
Model (scheduler.model): frozen, self-validating dataclasses
    ServiceSpec(name, mode=ServiceMode.REPLICATED|GLOBAL, replicas, task=TaskTemplate(command, env,
        reservations=Resources(nano_cpus, memory_bytes), limits, restart=RestartPolicy(condition, delay_ticks,
        max_attempts, window_ticks), placement=Placement(constraints=("node.labels.zone==a",),
        preferences=("spread=node.labels.zone",), max_replicas_per_node), networks, secrets, configs),
        update=UpdateConfig(parallelism, delay_ticks, order, monitor_ticks, failure_action, max_failure_ratio,
        canary, canary_health_ticks), rollback=UpdateConfig(...), ports=(PortConfig(target, published),), labels)
    Node, Service, Task, TaskStatus, TaskState (ordered IntEnum; only moves forward), Network, Secret, Config,
    INGRESS_NETWORK (10.0.0.0/24, gateway 10.0.0.1, VNI 4096). Errors: scheduler.errors (InvalidSpec,
    ConstraintSyntaxError, StateRegression, NotFound, AlreadyExists, VersionConflict, MalformedEntry,
    AllocationExhausted, NotLeader).

Store (scheduler.store): Store().apply(index, data: bytes) -> ApplyResult(index, ok, error, events, origin,
    proposer, sequence) - never raises on bad entries; snapshot() -> bytes; Store.restore(bytes) /
    restore_into(bytes). Transaction(ops, origin).encode() / Transaction.decode(bytes).

Manager (scheduler.manager.Manager(manager_id, config=ManagerConfig(), seed=0)) - one per manager node:
    apply(index, data) -> ApplyResult         every committed Raft entry, in order, on every manager
    become_leader(now_ticks, barrier_index, term)   Raft made us leader; components start once the store has
                                              applied barrier_index (the leader's last log index)
    become_follower()                         leadership lost: components stop
    note_applied(index)                       the host applied a Raft entry that is not ours (kv, no-op):
                                              lets the leader barrier pass (else it times out, counted)
    tick(now_ticks, applied_index=None) -> list[bytes]  proposals to submit to Raft (leader only)
    handle_agent_message(msg, now_ticks)      Register / Heartbeat / StatusReport from agents (leader only)
    take_agent_messages() -> [(node_id, msg)] for agents: RegisterAck / Assignments / HeartbeatAck /
                                              SessionInvalid
    snapshot() -> bytes, restore(bytes)       for Raft snapshots
    api: ClientAPI -> Proposal(data: bytes, sequence, object_id); submit data to Raft. Methods:
        create_service(spec), update_service(name, spec), scale(name, n), rollback(name),
        resume_update(name), remove_service(name), update_node(id, availability=, labels=, role=),
        promote(id), demote(id), remove_node(id, force=), create_network(name, subnet=None),
        create_secret(name, data), create_config(name, data)
    api_results[sequence] -> ApplyResult of our own API proposals once applied
    reads: Reads(store) on any manager: service_ls(), service_ps(name, now_ticks), service_inspect(name),
        node_ls(), convergence(name) -> Convergence(desired, running, converged, lines)
        ("overall progress: 3 out of 5 tasks", "verify: Service converged")

Workers (scheduler.agent.Agent(node_id, hostname, runtime, role, resources, labels)):
    tick(now_ticks) -> [messages to the leader]; receive(msg, now_ticks); crash()
    runtime: scheduler.runtime.SimulatedRuntime(random.Random(seed), start_latency_ticks=(lo, hi))
        with fail_task(task_id, exit_code), fail_next_starts(n); commands ("exit", code, after_ticks),
        ("fail-on-start",).

Checks (scheduler.checks): MonotonicWatch().observe(apply_result) (states never move backwards),
    placement_violations(store), constraint_violations_at_assignment(apply_result, store).
Optional: ManagerConfig(rebalance_on_node_join=True) evens out replicated services when a node joins or
    returns (start-first moves; off by default, as in Swarm).

Harness: scheduler.cluster.LocalCluster(managers, workers, seed, config) - immediate-commit log, step(),
    run(n), run_until(pred), propose(proposal), converged(name), kill_node(id), restart_node(id),
    change_leader(index).

Time: ticks; defaults assume 10 ticks per second (ManagerConfig: heartbeat 50 ticks x 3 grace).
"""
