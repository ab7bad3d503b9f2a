# Augmenting declarations for the compiled copy of chaos/sim/simulation.py
# (see consensus/_build_core_c.py).  The build compiles class Simulation as the
# extension type _SimulationCore and defines Simulation as a plain Python
# subclass of it (OPEN_CLASSES: tests patch Simulation.__init__), so the event
# loop, packet sends, tick grid and timeout sweeps read the simulation's state
# from C slots.  Most methods stay def methods (called through the event heap
# or from Python); _schedule and _send_packet are cpdef, called by the hosts.
cimport cython

from chaos.sim._network_c cimport Network

cdef class _SimulationCore:
    cdef public object config
    cdef public object seed
    cdef public object app_factory
    cdef public object now_us
    cdef public list _heap
    cdef public long long _sequence
    cdef public object events_run
    cdef public Network network
    cdef public dict hosts
    cdef public dict _receivers
    cdef public dict managers
    cdef public dict processes
    cdef public list trace
    cdef public object _trace_on
    cdef public object _op_counter
    cdef public object client_rng
    cdef public object fault_rng
    cdef public list _observers
    cdef public list _step_observers
    cdef public list _ready_observers
    cdef public list _apply_observers
    cdef public object undeliverable_packets
    cdef public list _timeouts
    cdef public dict _tick_groups
    cdef public dict _tick_orders
    cdef public set _sweeps_scheduled
    cdef public object _sweep_first_us
    cdef public dict _open_packets
    cdef public object _open_packets_us

    # C-level calls from the hosts (chaos/sim/_host_c.pxd types their sim);
    # Simulation, the Python subclass, overrides neither (a cpdef call on it
    # checks that through the type's cached dict version).
    cpdef _schedule(self, delay_us, fn, a, b)
    # cpdef only for its typed locals (the event count is a C integer in the loop).
    @cython.locals(events_run=cython.longlong, limit=cython.longlong, heap=list, step_observers=list)
    cpdef run_until_time(self, end_us)
    @cython.locals(network=Network, plain=bint, delay_us_min=cython.longlong, delay_span_us=cython.longlong,
                   draw=cython.double, delay=cython.longlong, sequence=cython.longlong, open_packets=dict,
                   packet=list)
    cpdef _send_packet(self, src, dst, items)


cdef bint _COMPILED

cpdef _push_event(list heap, tuple entry)
cpdef tuple _pop_event(list heap)
@cython.locals(time_us=cython.longlong, sequence=cython.longlong, position=Py_ssize_t,
               parent_position=Py_ssize_t, parent=tuple, parent_time_us=cython.longlong)
cpdef _sift_push(list heap, tuple entry)
@cython.locals(last=tuple, size=Py_ssize_t, top=tuple, time_us=cython.longlong, sequence=cython.longlong,
               position=Py_ssize_t, child_position=Py_ssize_t, right_position=Py_ssize_t, child=tuple,
               right=tuple, child_time_us=cython.longlong, right_time_us=cython.longlong)
cpdef tuple _sift_pop(list heap)
