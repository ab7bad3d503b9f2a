# Augmenting declarations for the compiled copy of chaos/sim/host.py (see
# consensus/_build_core_c.py): the hosts' state becomes C slots, the per-event
# paths (receive, the Ready loop, fsync completion, ticks) C-level calls, and
# the RaftNode, Ready, disk and client operations they touch are typed so the
# compiled core's methods and fields are reached without Python lookups.
cimport cython

from consensus._raft_c cimport RaftNode
from consensus._types_c cimport Entry, Message, Ready, SoftState
from chaos.sim._client_c cimport ClientOp
from chaos.sim._disk_c cimport SimDisk
# The simulation's C slots (now_us, network, observers) are read and its
# _send_packet/_schedule called at C level on every packet, Ready and fsync.
# Import order: chaos.sim._select_c imports _host_c first; its type import
# loads _simulation_c, whose module body imports only the host CLASSES from
# the half-initialised _host_c (extension types exist before a module's body
# runs; simulation.py imports SimProcess only for type checking).
from chaos.sim._simulation_c cimport _SimulationCore

cdef class _PausableHost:
    cdef public _SimulationCore sim
    cdef public object node_id
    cdef public object alive
    cdef public object paused
    cdef public object inbox
    cdef public object dropped_messages
    cdef public object incarnation
    cdef public object tick_interval_us
    cdef public object rng
    # No __dict__ (nothing hangs its own fields on a host): without one, and
    # with no Python subclass, the hosts' cpdef calls on self skip the check
    # for a Python-level override.

    cpdef _handle_packet(self, src, items)
    cpdef receive(self, src, items)
    cdef bint _admits(self, src, items)
    cpdef _hold(self, src, items)
    cpdef pause(self)
    cpdef resume(self)

cdef class ManagerHost(_PausableHost):
    cdef public object founding
    cdef public SimDisk disk
    cdef public RaftNode raft
    cdef public object app
    cdef public Ready syncing
    cdef public dict pending_proposals
    cdef public dict pending_reads
    cdef public list waiting_reads
    cdef public object leader_id
    cdef public object snapshot_index
    cdef public object dropped_proposals
    cdef public object applied_entries
    cdef public object fsync_latency_us
    cdef public object snapshot_every_entries

    cpdef tick_now(self)
    cpdef receive(self, src, items)
    cpdef _handle_packet(self, src, items)
    @cython.locals(raft=RaftNode)
    cpdef client_propose(self, ClientOp op, data, conf_change=*)
    @cython.locals(raft=RaftNode)
    cpdef client_read(self, ClientOp op, query)
    @cython.locals(raft=RaftNode, rd=Ready, soft_state=SoftState, latency=object)
    cpdef drain(self)
    cpdef _on_fsync(self, incarnation, Ready rd)
    @cython.locals(message=Message, first=Message, second=Message, count=Py_ssize_t, items=list, by_destination=dict)
    cpdef _send_messages(self, messages)
    @cython.locals(raft=RaftNode, entry=Entry, pending=dict, op=ClientOp)
    cpdef _finish(self, Ready rd)
    @cython.locals(op=ClientOp)
    cpdef _serve_reads(self)
    cpdef _maybe_snapshot(self)

cdef class ProcessHost(_PausableHost):
    cdef public object address
    cdef public object factory
    cdef public object process

    cpdef tick_now(self)
    cpdef _handle_packet(self, src, items)
