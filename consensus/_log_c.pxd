# Augmenting declarations for the compiled copy of consensus/log.py (see
# consensus/_build_core_c.py).  ``storage`` stays an untyped object: any
# Storage implementation may be plugged in (MemoryStorage, DurableStorage,
# a test's own); ``memory_storage`` is the typed fast path for MemoryStorage.

cimport cython

from consensus._storage_c cimport MemoryStorage, limit_size, trim_to_size
from consensus._types_c cimport Entry

@cython.final
cdef class RaftLog:
    cdef public object storage
    cdef public MemoryStorage memory_storage  # storage itself when it is one, else None
    cdef public list unstable_entries
    cdef public object unstable_offset
    cdef public object unstable_snapshot
    cdef public object committed
    cdef public object applied

    cpdef describe(self)
    @cython.locals(memory=MemoryStorage)
    cpdef first_index(self)
    @cython.locals(memory=MemoryStorage)
    cpdef last_index(self)
    @cython.locals(memory=MemoryStorage)
    cpdef persisted_last_index(self)
    @cython.locals(memory=MemoryStorage, entry=Entry)
    cpdef term(self, index)
    cpdef term_or_zero(self, index)
    cpdef last_term(self)
    cpdef bint match_term(self, index, term)
    cpdef bint is_up_to_date(self, last_index, last_term)
    cpdef find_conflict(self, entries)
    cpdef find_conflict_by_term(self, index, term)
    cpdef maybe_append(self, index, log_term, committed, entries)
    cpdef append(self, entries)
    @cython.locals(memory=MemoryStorage)
    cpdef slice(self, lo, hi, max_size_bytes=*)
    cpdef entries_from(self, index, max_size_bytes=*)
    cpdef snapshot(self)
    cpdef bint has_pending_snapshot(self)
    cpdef bint has_next_committed_entries(self)
    cpdef next_committed_entries(self, max_size_bytes=*)
    cpdef commit_to(self, index)
    cpdef bint maybe_commit(self, index, term)
    cpdef applied_to(self, index)
    @cython.locals(entries=list, entry=Entry)
    cpdef stable_to(self, index, term)
    cpdef stable_snapshot_to(self, index)
    cpdef restore(self, snapshot)
