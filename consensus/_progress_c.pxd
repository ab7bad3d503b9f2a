# Augmenting declarations for the compiled copy of consensus/progress.py
# (see consensus/_build_core_c.py): attributes become C slots, the methods the
# leader calls per message become C-level (vtable) calls from _raft_c.

cimport cython

@cython.final
cdef class Inflights:
    cdef public object max_messages
    cdef public object max_bytes
    cdef public list _queue
    cdef public object bytes_in_flight

    cpdef add(self, last_index, size_bytes)
    @cython.locals(queue=list, count=cython.Py_ssize_t)
    cpdef free_le(self, index)
    cpdef bint full(self)
    cpdef count(self)
    cpdef reset(self)

@cython.final
cdef class Progress:
    cdef public object match
    cdef public object next
    cdef public object state
    cdef public object pending_snapshot
    cdef public object recent_active
    cdef public object last_active_tick
    cdef public object msg_app_flow_paused
    cdef public Inflights inflights
    cdef public object is_learner
    cdef public object snapshot_elapsed_ticks

    cpdef _reset_state(self, state)
    cpdef become_probe(self)
    cpdef become_replicate(self)
    cpdef become_snapshot(self, snapshot_index)
    cpdef sent_entries(self, entry_count, size_bytes)
    cpdef bint maybe_update(self, index)
    cpdef bint maybe_decr_to(self, rejected, match_hint)
    cpdef bint is_paused(self)

cpdef quorum_index(matches)
cpdef majority(count)
cpdef tally(voters, dict votes)
