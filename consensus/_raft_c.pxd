# Augmenting declarations for the compiled copy of consensus/raft.py (see
# consensus/_build_core_c.py).  RaftNode's state becomes C slots; the per-
# message paths (step, the role handlers, append/heartbeat handling, Ready)
# become C-level calls, and the log, progress and message objects they touch
# are typed so their fields are read straight from the C structs.
cimport cython

from consensus._log_c cimport RaftLog
from consensus._progress_c cimport Progress, quorum_index, tally
from consensus._read_only_c cimport ReadOnly
from consensus._types_c cimport Entry, HardState, Message, Ready, SoftState, make_message, make_ready

@cython.final  # no subclasses: cpdef calls on self skip the Python-override lookup
cdef class RaftNode:
    cdef public object config
    cdef public object id
    cdef public object storage
    cdef public object rng
    cdef public RaftLog log
    cdef public object term
    cdef public object vote
    cdef public object lead
    cdef public object role
    cdef public object election_timeout
    cdef public object heartbeat_timeout
    cdef public object randomized_election_timeout
    cdef public object election_elapsed
    cdef public object heartbeat_elapsed
    cdef public object ticks
    cdef public object leader_since_tick
    cdef public object voters
    cdef public object learners
    cdef public dict progress
    cdef public dict votes
    cdef public list msgs
    cdef public list msgs_after_persist
    cdef public list read_states
    cdef public ReadOnly read_only
    cdef public list pending_read_index_messages
    cdef public object pending_conf_index
    cdef public object uncommitted_bytes
    cdef public object lead_transferee
    cdef public object incoming_snapshot
    cdef public object snapshot_timeout_ticks
    cdef public object _outstanding
    cdef public SoftState _prev_soft
    cdef public HardState _prev_hard
    # The twin has a __dict__ (drivers and tests may hang their own fields on
    # a node); slot attributes above are not affected by it.
    cdef dict __dict__

    cpdef hard_state(self)
    cpdef soft_state(self)
    cpdef conf_state(self)
    cpdef bint promotable(self)
    cpdef _bootstrap(self, voters, learners)
    cpdef _apply_conf_state(self, conf_state)
    @cython.locals(pr=Progress)
    cpdef _sync_progress(self)
    @cython.locals(pr=Progress, fresh=Progress)
    cpdef _reset(self, term)
    cpdef _become_follower(self, term, lead)
    cpdef _become_pre_candidate(self)
    cpdef _become_candidate(self)
    @cython.locals(own=Progress)
    cpdef _become_leader(self)
    cpdef _send(self, Message message)
    cpdef tick(self)
    cpdef _tick_election(self)
    @cython.locals(pr=Progress)
    cpdef _tick_heartbeat(self)
    @cython.locals(pr=Progress)
    cpdef bint _quorum_recently_active(self)
    @cython.locals(entry=Entry)
    cpdef bint _has_unapplied_conf_change(self)
    cpdef _hup(self, transfer)
    cpdef _campaign(self, pre_vote, transfer)
    cpdef _poll(self, node_id, granted)
    cpdef step(self, message)
    # ``entry`` stays untyped here: a malformed message may carry anything
    # in ``entries``, and the check must raise MalformedMessage, not TypeError.
    @cython.locals(m=Message)
    cpdef _validate(self, message)
    cpdef _step_any(self, Message m)
    cpdef _step_role(self, Message m)
    @cython.locals(pr=Progress)
    cpdef _step_leader(self, Message m)
    cpdef _mark_active(self, Progress pr)
    @cython.locals(pr=Progress)
    cpdef _leader_transfer(self, target)
    cpdef bint _committed_entry_in_current_term(self)
    cpdef _leader_read_index(self, Message m)
    cpdef _serve_read_index(self, Message m)
    cpdef _respond_read_index(self, Message request, index)
    cpdef _release_pending_read_index(self)
    @cython.locals(pr=Progress, matches=list, progress=dict)
    cpdef bint _maybe_commit(self)
    @cython.locals(entry=Entry)
    cpdef bint _send_append(self, to, Progress pr, bint send_if_empty=*)
    cpdef bint _send_snapshot(self, to, Progress pr)
    @cython.locals(pr=Progress)
    cpdef _bcast_append(self)
    @cython.locals(pr=Progress)
    cpdef _bcast_heartbeat(self, context)
    cpdef _append_entries(self, entries)
    cpdef _step_candidate(self, Message m)
    cpdef _step_follower(self, Message m)
    cpdef _handle_append(self, Message m)
    cpdef _handle_heartbeat(self, Message m)
    cpdef _handle_snapshot(self, Message m)
    cpdef bint _restore(self, snapshot)
    cpdef propose(self, data)
    cpdef _propose_entry(self, entry_type, data)
    @cython.locals(pr=Progress)
    cpdef propose_conf_change(self, change)
    @cython.locals(pr=Progress)
    cpdef apply_conf_change(self, change)
    cpdef read_index(self, context)
    cpdef transfer_leadership(self, target)
    cpdef campaign(self)
    @cython.locals(pr=Progress)
    cpdef report_snapshot(self, node_id, failed)
    @cython.locals(pr=Progress)
    cpdef report_unreachable(self, node_id)
    cpdef force_new_cluster(self)
    @cython.locals(log=RaftLog, prev_hard=HardState, prev_soft=SoftState)
    cpdef bint has_ready(self)
    @cython.locals(log=RaftLog, prev_soft=SoftState, previous=HardState)
    cpdef ready(self)
    @cython.locals(log=RaftLog, own=Progress, done=Ready, last=Entry, last_applied=Entry)
    cpdef advance(self, rd)
