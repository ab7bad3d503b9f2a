# Augmenting declarations for the compiled copy of consensus/read_only.py (see
# consensus/_build_core_c.py): the leader calls ReadOnly on every ReadIndex
# request and heartbeat reply, so its methods become C-level (vtable) calls
# from _raft_c instead of Python method calls.

cimport cython

cdef class ReadIndexStatus:
    cdef public object request
    cdef public object index
    cdef public set acks

@cython.final
cdef class ReadOnly:
    cdef public dict pending
    cdef public list queue
    cdef public object max_pending

    cpdef bint add_request(self, index, request)
    @cython.locals(status=ReadIndexStatus)
    cpdef recv_ack(self, node_id, context)
    cpdef list advance(self, context)
    cpdef last_pending_context(self)
    cpdef reset(self)
