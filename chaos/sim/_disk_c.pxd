# Augmenting declarations for the compiled copy of chaos/sim/disk.py (see
# consensus/_build_core_c.py): the durable MemoryStorage is typed, so a sync
# appends to it through the compiled core's C-level methods.
cimport cython

from consensus._storage_c cimport MemoryStorage

@cython.final
cdef class SimDisk:
    cdef public MemoryStorage durable
    cdef public list pending
    cdef public object syncs
    cdef public object writes_lost

    cpdef write(self, snapshot, entries, hard_state)
    cpdef write_lazy(self, hard_state)
    cpdef sync(self)
    cpdef crash(self, lose_unsynced)
