# Augmenting declarations for the compiled copy of consensus/storage.py (see
# consensus/_build_core_c.py).  The fields stay public: DurableStorage (a
# Python subclass) reads and writes them.

cpdef list limit_size(entries, max_size_bytes)

cdef class MemoryStorage:
    cdef public object _hard_state
    cdef public object _snapshot
    cdef public list _entries

    cpdef initial_state(self)
    cpdef _offset(self)
    cpdef first_index(self)
    cpdef last_index(self)
    cpdef term(self, index)
    cpdef entries(self, lo, hi, max_size_bytes=*)
    cpdef snapshot(self)
    cpdef set_hard_state(self, hard_state)
    cpdef hard_state(self)
    cpdef apply_snapshot(self, snapshot)
    cpdef create_snapshot(self, index, conf_state, data)
    cpdef compact(self, compact_index)
    cpdef append(self, entries)
    cpdef clone(self)
