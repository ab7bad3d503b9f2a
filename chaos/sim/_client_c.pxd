# Augmenting declarations for the compiled copy of chaos/sim/client.py (see
# consensus/_build_core_c.py): a client operation's fields become C slots and
# complete() a C-level call from the hosts and the timeout sweep.
cimport cython

@cython.final
cdef class ClientResult:
    cdef readonly object op_id
    cdef readonly object kind
    cdef readonly object status
    cdef readonly object value
    cdef readonly object error
    cdef readonly object node
    cdef readonly object index
    cdef readonly object invoke_us
    cdef readonly object complete_us

@cython.final
cdef class ClientOp:
    cdef public object op_id
    cdef public object kind
    cdef public object node
    cdef public object payload
    cdef public object callback
    cdef public object invoke_us
    cdef public object deadline_us
    cdef public object result

    cpdef complete(self, now_us, status, value=*, error=*, index=*)

@cython.final
cdef class DeferredCall:
    cdef public object call
