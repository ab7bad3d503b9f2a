# Augmenting declarations for the compiled copy of chaos/sim/network.py (see
# consensus/_build_core_c.py): the link table, cut set and counters the
# simulator reads on every packet become C slots.  LinkConfig stays a frozen
# dataclass (a Python class, compiled).
cimport cython

@cython.final
cdef class Network:
    cdef object _default_link
    cdef public dict links
    cdef public set blocked
    cdef object _rng
    cdef public object random
    cdef public bint default_plain
    cdef public long long default_delay_us_min
    cdef public long long default_delay_span_us
    cdef public object packets_sent
    cdef public object packets_dropped
    cdef public object packets_duplicated
    cdef public object packets_coalesced

    cpdef list delays_us(self, src, dst)
