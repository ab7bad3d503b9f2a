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
    # Counted on every send: C integers (Python reads get ints).
    cdef public long long packets_sent
    cdef public long long packets_dropped
    cdef public long long packets_duplicated
    cdef public long long packets_coalesced

    cpdef list delays_us(self, src, dst)
