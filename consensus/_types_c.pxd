# Augmenting declarations for the compiled copy of consensus/types.py
# (Cython pure-Python mode; see consensus/_build_core_c.py).  The hot value
# types become extension types: fields are C slots (no __dict__), read-only
# from Python, so the instances stay immutable.  Fields are untyped objects on
# purpose: the core validates peer messages itself (MalformedMessage), so a
# Message must be constructible from any values, exactly as the twin.

cimport cython

cdef class Entry:
    cdef readonly object term
    cdef readonly object index
    cdef readonly object type
    cdef readonly object data

cdef class HardState:
    cdef readonly object term
    cdef readonly object vote
    cdef readonly object commit

cdef class SoftState:
    cdef readonly object leader_id
    cdef readonly object role

cdef class ReadState:
    cdef readonly object index
    cdef readonly object context

cdef class Message:
    cdef readonly object type
    cdef readonly object to
    cdef readonly object frm
    cdef readonly object term
    cdef readonly object log_term
    cdef readonly object index
    cdef readonly object entries
    cdef readonly object commit
    cdef readonly object reject
    cdef readonly object reject_hint
    cdef readonly object snapshot
    cdef readonly object context
    cdef readonly object snap_offset
    cdef readonly object snap_done

cdef class Ready:
    cdef readonly object soft_state
    cdef readonly object hard_state
    cdef readonly object entries
    cdef readonly object snapshot
    cdef readonly object committed_entries
    cdef readonly object messages
    cdef readonly object messages_after_persist
    cdef readonly object read_states
    cdef readonly object must_sync

# The core's constructors (see make_message): C calls that fill a bare
# instance's slots.  Declared after the classes they return.
@cython.locals(m=Message)
cpdef Message make_message(object type, object to, object frm, object term=*, object log_term=*, object index=*,
                           object entries=*, object commit=*, object reject=*, object reject_hint=*,
                           object snapshot=*, object context=*, object snap_offset=*, object snap_done=*)
cdef inline void _fill_message(Message m, object type, object to, object frm, object term, object log_term,
                               object index, object entries, object commit, object reject, object reject_hint,
                               object snapshot, object context, object snap_offset, object snap_done)
@cython.locals(rd=Ready)
cpdef Ready make_ready(object soft_state, object hard_state, object entries, object snapshot,
                       object committed_entries, object messages, object messages_after_persist,
                       object read_states, object must_sync)
