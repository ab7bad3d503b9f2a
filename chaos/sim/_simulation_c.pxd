# Augmenting declarations for the compiled copy of chaos/sim/simulation.py
# (see consensus/_build_core_c.py).  The build compiles class Simulation as the
# extension type _SimulationCore and defines Simulation as a plain Python
# subclass of it (OPEN_CLASSES: tests patch Simulation.__init__), so the event
# loop, packet sends, tick grid and timeout sweeps read the simulation's state
# from C slots.  The methods stay def methods (no C-level override checks on
# a patchable class); they are called through the event heap and from the
# hosts, which cannot cimport this module (it imports theirs).
from chaos.sim._network_c cimport Network

cdef class _SimulationCore:
    cdef public object config
    cdef public object seed
    cdef public object app_factory
    cdef public object now_us
    cdef public list _heap
    cdef public object _sequence
    cdef public object events_run
    cdef public Network network
    cdef public dict hosts
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
