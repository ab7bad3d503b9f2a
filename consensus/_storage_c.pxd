# Augmenting declarations for the compiled copy of consensus/storage.py (see
# consensus/_build_core_c.py).  The fields stay public: DurableStorage (a
# Python subclass) reads and writes them.

cimport cython

from consensus._types_c cimport Entry

# ``entry``: a log's entries are Entry instances (the core checks peers'
# entries in RaftNode._validate); sizes are C integers (bytes in memory).
@cython.locals(count=cython.Py_ssize_t)
cpdef list limit_size(entries, max_size_bytes)
@cython.locals(count=cython.Py_ssize_t)
cpdef list trim_to_size(list entries, max_size_bytes)
@cython.locals(entry=Entry, total=cython.Py_ssize_t, count=cython.Py_ssize_t)
cpdef Py_ssize_t _count_within(entries, max_size_bytes) except -1

cdef class MemoryStorage:
    cdef public object _hard_state
    cdef public object _snapshot
    cdef public list _entries

    cpdef initial_state(self)
    cpdef _offset(self)
    @cython.locals(dummy=Entry)
    cpdef first_index(self)
    @cython.locals(dummy=Entry)
    cpdef last_index(self)
    @cython.locals(entries=list, dummy=Entry, found=Entry)
    cpdef term(self, index)
    @cython.locals(dummy=Entry)
    cpdef entries(self, lo, hi, max_size_bytes=*)
    cpdef snapshot(self)
    cpdef set_hard_state(self, hard_state)
    cpdef hard_state(self)
    cpdef apply_snapshot(self, snapshot)
    cpdef create_snapshot(self, index, conf_state, data)
    cpdef compact(self, compact_index)
    cpdef append(self, entries)
    cpdef clone(self)
