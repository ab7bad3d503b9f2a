"""The VIP balancer's per-packet path in C: parse, hash, track, pick, NAT.

One ``Kernel`` holds typed views of the balancer's arrays (built by
``dataplane.balancer.Balancer``); ``process`` runs a whole batch without the
GIL, in chunks of 16 packets pipelined in two stages (``process_batch``):
parse, classify and hash a chunk (SIMD lanes) and prefetch its tracking
entries, then track and rewrite the previous chunk.  The twin with the same
API, and the readable specification of every step, is
``dataplane/balancer_py.py``; the results are the same packet by packet.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t, uintptr_t
from libc.string cimport memset

from dataplane.conntrack_c cimport (CT_EXPIRED, CT_HITS, CT_INSERTED, CT_MISSES, CT_REMOVED, CT_REOPENED,
                                    ct_claim, ct_clear, ct_entry, ct_find, ct_initial_state,
                                    ct_next_state, ct_ports_of_flow_words, ct_reopens, ct_write)
from dataplane.flowhash_c cimport (fastrange32, flow_words0, flow_words1, shoal_flow_hash13_many,
                                   shoal_flowhash_simd_level)
from dataplane.nat_c cimport PARSE_OK, nat_parse, nat_rewrite, parsed_frame

cnp.import_array()

# SIMD lanes for the flow hash on this CPU (0 scalar, 1 AVX2, 2 AVX-512F); the
# hashes are the same at every level.
cdef int SIMD_LEVEL = shoal_flowhash_simd_level()

# Verdicts and counters: the order of balancer_py's constants.
cdef enum:
    VERDICT_PASS = 0
    VERDICT_FORWARD = 1
    VERDICT_REPLY = 2
    VERDICT_DROP = 3
    VERDICT_RESET = 4

cdef enum:
    C_PACKETS = 0
    C_FORWARD_NEW = 1
    C_FORWARD_TRACKED = 2
    C_REPLY_TRACKED = 3
    C_REPLY_UNTRACKED = 4
    C_PASS_NON_IPV4 = 5
    C_PASS_NOT_TCP_UDP = 6
    C_PASS_NO_SERVICE = 7
    C_DROP_TRUNCATED = 8
    C_DROP_BAD_IP_HEADER = 9
    C_DROP_FRAGMENT = 10
    C_DROP_NO_BACKEND = 11
    C_DROP_BAD_SLOT = 12
    C_RESET_BACKEND_GONE = 13
    C_REPICK_BACKEND_GONE = 14

cdef enum:
    S_VIP = 0
    S_PORT = 1
    S_PROTOCOL = 2
    S_TABLE_OFFSET = 3
    S_TABLE_SIZE = 4
    S_ON_REMOVED = 5
    S_VIP_MAC = 6

cdef enum:
    B_IP = 0
    B_PORT = 1
    B_MAC = 2
    B_GENERATION = 3
    B_ALIVE = 4
    B_SERVICE = 5

cdef enum:
    ON_REMOVED_RESET = 0
    ON_REMOVED_REPICK = 1

cdef enum:
    CHUNK_PACKETS = 16  # packets parsed and prefetched ahead of tracking
    HIT_PREFETCH_ENTRIES = 4  # entries prefetched for a likely hit: the first two lines of its window
    KIND_DONE = 0
    KIND_REQUEST = 1
    KIND_REPLY = 2

cdef extern from *:
    void __builtin_prefetch(const void* address) noexcept nogil

# verdict of each parse outcome other than OK, and its counter
cdef uint8_t PARSE_VERDICT[6]
cdef int PARSE_COUNTER[6]
PARSE_VERDICT[:] = [VERDICT_FORWARD, VERDICT_PASS, VERDICT_PASS, VERDICT_DROP, VERDICT_DROP, VERDICT_DROP]
PARSE_COUNTER[:] = [C_PACKETS, C_PASS_NON_IPV4, C_PASS_NOT_TCP_UDP, C_DROP_TRUNCATED, C_DROP_BAD_IP_HEADER,
                    C_DROP_FRAGMENT]


cdef inline uint64_t endpoint_key(uint32_t ip, uint32_t port, uint32_t protocol) noexcept nogil:
    return ((<uint64_t>ip) << 32) | ((<uint64_t>(port & 0xFFFF)) << 16) | ((protocol & 0xFF) << 8) | 1


cdef inline int32_t index_find(const uint64_t* keys, const int32_t* values, uint32_t bits,
                               uint64_t key) noexcept nogil:
    """Linear probing in a power-of-two table at most half full (a free slot ends every probe)."""
    cdef uint64_t mask = ((<uint64_t>1) << bits) - 1
    cdef uint64_t slot = (key * 0x9E3779B97F4A7C15ULL) >> (64 - bits)
    while keys[slot] != 0:
        if keys[slot] == key:
            return values[slot]
        slot = (slot + 1) & mask
    return -1


cdef enum:
    C_COUNT = 15
    CT_COUNT = 8
    SERVICE_COLUMNS = 7  # balancer_py.SERVICE_COLUMNS: a constant row stride
    BACKEND_COLUMNS = 6  # balancer_py.BACKEND_COLUMNS


ctypedef struct kernel_context:
    # Local copies of the Kernel's arrays for one batch (see Kernel._process).
    const int64_t* services
    const int64_t* backends
    Py_ssize_t backend_rows
    const int32_t* lookup
    const uint64_t* service_keys
    const int32_t* service_values
    uint32_t service_bits
    const uint64_t* endpoint_keys
    const int32_t* endpoint_values
    uint32_t endpoint_bits
    ct_entry* entries
    uint32_t capacity
    uint32_t window
    const uint64_t* timeouts_ns
    uint64_t* counters
    uint64_t* ct_counters
    uint64_t k0, k1
    int simd_level
    bint* misses_likely  # the Kernel's: whether the last chunk processed mostly missed


cdef inline bint plain_array(object candidate, int type_number, bint writable):
    """A 1-D, C-contiguous, aligned, native-order numpy array of this item type (and writable if asked)."""
    cdef cnp.ndarray array
    if not isinstance(candidate, cnp.ndarray):
        return False
    array = <cnp.ndarray>candidate
    return (cnp.PyArray_TYPE(array) == type_number and cnp.PyArray_NDIM(array) == 1
            and cnp.PyArray_ISNOTSWAPPED(array)
            and (cnp.PyArray_ISCARRAY(array) if writable else cnp.PyArray_ISCARRAY_RO(array)))


cdef class Kernel:
    """Typed views of the balancer's arrays; ``process`` runs batches over them."""

    cdef const int64_t[:, ::1] services
    cdef const int64_t[:, ::1] backends
    cdef const int32_t[::1] lookup
    cdef const uint64_t[::1] service_keys
    cdef const int32_t[::1] service_values
    cdef uint32_t service_bits
    cdef const uint64_t[::1] endpoint_keys
    cdef const int32_t[::1] endpoint_values
    cdef uint32_t endpoint_bits
    cdef uint64_t[::1] table
    cdef uint32_t capacity
    cdef uint32_t window
    cdef const uint64_t[::1] timeouts_ns
    cdef uint64_t[::1] ct_counters
    cdef uint64_t[::1] counters
    cdef uint64_t k0, k1
    cdef bint misses_likely  # a prefetch hint carried between batches (see classify_chunk)
    cdef readonly object arrays  # keeps every array alive as long as the views
    cdef object cached_buffer, cached_offsets, cached_lengths, cached_verdicts
    cdef uint8_t[::1] buffer_view
    cdef const uint32_t[::1] offsets_view
    cdef const uint32_t[::1] lengths_view
    cdef uint8_t[::1] verdicts_view

    def __init__(self, services, backends, lookup, service_keys, service_values, int service_bits,
                 endpoint_keys, endpoint_values, int endpoint_bits, table, int capacity, int window,
                 timeouts_ns, ct_counters, counters, uint64_t k0, uint64_t k1):
        if table.shape[0] < 4 * capacity or not 1 <= window <= capacity:
            raise ValueError("Kernel: conntrack table smaller than its capacity, or bad window")
        if service_keys.shape[0] != (1 << service_bits) or endpoint_keys.shape[0] != (1 << endpoint_bits):
            raise ValueError("Kernel: index tables must have 2**bits slots")
        if counters.shape[0] != C_COUNT or ct_counters.shape[0] != CT_COUNT:
            raise ValueError("Kernel: counter arrays of the wrong length")
        if (services.shape[1] != SERVICE_COLUMNS or backends.shape[1] != BACKEND_COLUMNS
                or services.shape[0] < 1 or backends.shape[0] < 1):
            raise ValueError("Kernel: services/backends tables of the wrong shape")
        self.services = services
        self.backends = backends
        self.lookup = lookup
        self.service_keys = service_keys
        self.service_values = service_values
        self.service_bits = service_bits
        self.endpoint_keys = endpoint_keys
        self.endpoint_values = endpoint_values
        self.endpoint_bits = endpoint_bits
        self.table = table
        self.capacity = capacity
        self.window = window
        self.timeouts_ns = timeouts_ns
        self.ct_counters = ct_counters
        self.counters = counters
        self.k0 = k0
        self.k1 = k1
        self.arrays = (services, backends, lookup, service_keys, service_values, endpoint_keys,
                       endpoint_values, table, timeouts_ns, ct_counters, counters)

    def process(self, buffer, offsets, lengths, Py_ssize_t count, verdicts, uint64_t now_ns) -> None:
        """Balance the first ``count`` frames in place; one verdict per frame."""
        cdef uint8_t* buffer_data
        cdef const uint32_t* offsets_data
        cdef const uint32_t* lengths_data
        cdef uint8_t* verdicts_data
        cdef Py_ssize_t buffer_bytes, slots
        if (plain_array(buffer, cnp.NPY_UINT8, True) and plain_array(offsets, cnp.NPY_UINT32, False)
                and plain_array(lengths, cnp.NPY_UINT32, False) and plain_array(verdicts, cnp.NPY_UINT8, True)):
            # The arrays of a PacketBatch: pointers and lengths straight from
            # the array headers.  A typed memoryview costs about 150 ns to
            # acquire, and a driver rotating through a ring of batches
            # acquired three per call (about 1.7 ns per packet of 256).
            buffer_data = <uint8_t*>cnp.PyArray_DATA(<cnp.ndarray>buffer)
            buffer_bytes = cnp.PyArray_DIMS(<cnp.ndarray>buffer)[0]
            offsets_data = <const uint32_t*>cnp.PyArray_DATA(<cnp.ndarray>offsets)
            lengths_data = <const uint32_t*>cnp.PyArray_DATA(<cnp.ndarray>lengths)
            verdicts_data = <uint8_t*>cnp.PyArray_DATA(<cnp.ndarray>verdicts)
            slots = min(cnp.PyArray_DIMS(<cnp.ndarray>offsets)[0], cnp.PyArray_DIMS(<cnp.ndarray>lengths)[0],
                        cnp.PyArray_DIMS(<cnp.ndarray>verdicts)[0])
        else:
            # Any other buffer: typed views (which check the item types), kept
            # while the driver passes the same objects again.
            if buffer is not self.cached_buffer:
                self.buffer_view = buffer
                self.cached_buffer = buffer
            if offsets is not self.cached_offsets:
                self.offsets_view = offsets
                self.cached_offsets = offsets
            if lengths is not self.cached_lengths:
                self.lengths_view = lengths
                self.cached_lengths = lengths
            if verdicts is not self.cached_verdicts:
                self.verdicts_view = verdicts
                self.cached_verdicts = verdicts
            slots = min(self.offsets_view.shape[0], self.lengths_view.shape[0], self.verdicts_view.shape[0])
            if count < 0 or count > slots:
                raise ValueError(f"process: count {count} outside the batch arrays")
            if count == 0:
                return
            # count >= 1, so the three per-packet views are not empty; an empty
            # buffer is never read (a frame is outside it, a bad slot, or empty).
            buffer_bytes = self.buffer_view.shape[0]
            buffer_data = &self.buffer_view[0] if buffer_bytes else NULL
            offsets_data = &self.offsets_view[0]
            lengths_data = &self.lengths_view[0]
            verdicts_data = &self.verdicts_view[0]
        if count < 0 or count > slots:
            raise ValueError(f"process: count {count} outside the batch arrays")
        if count == 0:
            return
        with nogil:
            self._process(buffer_data, buffer_bytes, offsets_data, lengths_data, count, verdicts_data, now_ns)

    cdef void _process(self, uint8_t* buffer, Py_ssize_t buffer_bytes, const uint32_t* offsets,
                       const uint32_t* lengths, Py_ssize_t count, uint8_t* verdicts,
                       uint64_t now_ns) noexcept nogil:
        # Every array the path reads is copied into a local context first, and
        # the counters are summed in locals and added once per batch: stores
        # through uint64_t pointers (counters, table entries) may alias the
        # int64 tables and the memoryview fields, so reading those through
        # ``self`` made the compiler reload them after every store.
        cdef kernel_context context
        cdef uint64_t batch_counters[C_COUNT]
        cdef uint64_t batch_ct_counters[CT_COUNT]
        cdef Py_ssize_t index
        memset(batch_counters, 0, sizeof(batch_counters))
        memset(batch_ct_counters, 0, sizeof(batch_ct_counters))
        context.services = &self.services[0, 0]
        context.backends = &self.backends[0, 0]
        context.backend_rows = self.backends.shape[0]
        context.lookup = &self.lookup[0]
        context.service_keys = &self.service_keys[0]
        context.service_values = &self.service_values[0]
        context.service_bits = self.service_bits
        context.endpoint_keys = &self.endpoint_keys[0]
        context.endpoint_values = &self.endpoint_values[0]
        context.endpoint_bits = self.endpoint_bits
        context.entries = <ct_entry*>&self.table[0]
        context.capacity = self.capacity
        context.window = self.window
        context.timeouts_ns = &self.timeouts_ns[0]
        context.counters = batch_counters
        context.ct_counters = batch_ct_counters
        context.k0 = self.k0
        context.k1 = self.k1
        context.simd_level = SIMD_LEVEL
        context.misses_likely = &self.misses_likely
        process_batch(context, buffer, buffer_bytes, offsets, lengths, count, verdicts, now_ns)
        for index in range(C_COUNT):
            self.counters[index] += batch_counters[index]
        for index in range(CT_COUNT):
            # CT_OCCUPIED goes down as well as up: unsigned wraparound adds right.
            self.ct_counters[index] += batch_ct_counters[index]


cdef inline int64_t service_cell(const kernel_context* c, int64_t service, int column) noexcept nogil:
    return c.services[service * SERVICE_COLUMNS + column]


cdef inline int64_t backend_cell(const kernel_context* c, int64_t backend, int column) noexcept nogil:
    return c.backends[backend * BACKEND_COLUMNS + column]


ctypedef struct chunk_state:
    # Stage 1's results for one chunk of packets (see process_batch).
    parsed_frame parsed[CHUNK_PACKETS]
    uint64_t words0[CHUNK_PACKETS]  # flow hash message words (flowhash_c.pxd)
    uint64_t words1[CHUNK_PACKETS]
    uint64_t flows[CHUNK_PACKETS]
    int32_t targets[CHUNK_PACKETS]  # service of a request, backend of a reply
    uint8_t kinds[CHUNK_PACKETS]
    uintptr_t prefetch_first[CHUNK_PACKETS]  # the lines of the packet's window to prefetch: [first, end)
    uintptr_t prefetch_end[CHUNK_PACKETS]
    uint64_t last_key  # the service lookup carried over from the previous chunk
    int32_t last_target


cdef void process_batch(kernel_context c, uint8_t* buffer, Py_ssize_t buffer_bytes, const uint32_t* offsets,
                        const uint32_t* lengths, Py_ssize_t count, uint8_t* verdicts,
                        uint64_t now_ns) noexcept nogil:
    # Two stages per chunk of packets, software-pipelined as DPDK applications
    # do: stage 1 parses and classifies every packet of chunk k + 1, hashes all
    # their 5-tuples at once (SIMD lanes, see flowhash_c.pxd) and finds the
    # lines of each one's tracking entry; then stage 2 tracks and rewrites the
    # packets of chunk k, prefetching chunk k + 1's lines one packet at a time
    # as it goes (a burst of prefetches overflowed the core's outstanding-miss
    # slots).  So each entry is prefetched a chunk's work before it is used:
    # the table is far larger than the caches.  Stage 1 has no effect on the
    # table, so the result is the same as processing the packets one by one
    # (as the twin does).
    cdef chunk_state chunks[2]
    cdef Py_ssize_t base = 0, chunk, next_chunk
    cdef int current = 0
    c.counters[C_PACKETS] += <uint64_t>count
    chunks[0].last_key = 0
    chunks[0].last_target = -1
    cdef Py_ssize_t position
    # Whether the last chunk mostly missed; carried over from the last batch.
    cdef bint misses_likely = c.misses_likely[0]
    chunk = min(<Py_ssize_t>CHUNK_PACKETS, count)
    classify_chunk(&c, &chunks[0], buffer, buffer_bytes, offsets, lengths, 0, chunk, verdicts, misses_likely)
    for position in range(chunk):
        prefetch_lines(chunks[0].prefetch_first[position], chunks[0].prefetch_end[position])
    while base < count:
        next_chunk = min(<Py_ssize_t>CHUNK_PACKETS, count - base - chunk)
        if next_chunk > 0:
            chunks[1 - current].last_key = chunks[current].last_key
            chunks[1 - current].last_target = chunks[current].last_target
            classify_chunk(&c, &chunks[1 - current], buffer, buffer_bytes, offsets, lengths, base + chunk,
                           next_chunk, verdicts, misses_likely)
        misses_likely = track_chunk(&c, &chunks[current], &chunks[1 - current], next_chunk, buffer, offsets,
                                    base, chunk, verdicts, now_ns)
        base += chunk
        chunk = next_chunk
        current = 1 - current
    c.misses_likely[0] = misses_likely


cdef inline void classify_chunk(kernel_context* c, chunk_state* state, uint8_t* buffer, Py_ssize_t buffer_bytes,
                                const uint32_t* offsets, const uint32_t* lengths, Py_ssize_t base,
                                Py_ssize_t chunk, uint8_t* verdicts, bint misses_likely) noexcept nogil:
    """Stage 1: parse, classify, hash, and find the lines to prefetch; verdicts of frames that stop here."""
    cdef Py_ssize_t packet, position
    cdef int status
    cdef uint8_t* frame
    cdef uint64_t* counters = c.counters
    cdef int32_t target
    cdef int64_t service
    cdef uint32_t vip, vip_port
    cdef parsed_frame* p
    cdef uint64_t key
    cdef uint32_t hit_entries = min(c.window, <uint32_t>HIT_PREFETCH_ENTRIES)
    cdef uintptr_t home
    for position in range(chunk):
        packet = base + position
        state.kinds[position] = KIND_DONE
        state.words0[position] = 0
        state.words1[position] = 0
        if <uint64_t>offsets[packet] + lengths[packet] > <uint64_t>buffer_bytes:
            verdicts[packet] = VERDICT_DROP
            counters[C_DROP_BAD_SLOT] += 1
            continue
        frame = buffer + offsets[packet]
        p = &state.parsed[position]
        status = nat_parse(frame, lengths[packet], p)
        if status != PARSE_OK:
            verdicts[packet] = PARSE_VERDICT[status]
            counters[PARSE_COUNTER[status]] += 1
            continue
        # Traffic to a VIP comes in runs: reuse the last service lookup (the
        # index does not change during a batch; keys are never 0).
        key = endpoint_key(p.destination_ip, p.destination_port, p.protocol)
        if key != state.last_key:
            state.last_key = key
            state.last_target = index_find(c.service_keys, c.service_values, c.service_bits, key)
        target = state.last_target
        if target >= 0:
            state.kinds[position] = KIND_REQUEST
            state.words0[position] = flow_words0(p.source_ip, p.destination_ip)
            state.words1[position] = flow_words1(p.protocol, p.source_port, p.destination_port)
        else:
            target = index_find(c.endpoint_keys, c.endpoint_values, c.endpoint_bits,
                                endpoint_key(p.source_ip, p.source_port, p.protocol))
            if target < 0:
                verdicts[packet] = VERDICT_PASS
                counters[C_PASS_NO_SERVICE] += 1
                continue
            state.kinds[position] = KIND_REPLY
            service = backend_cell(c, target, B_SERVICE)
            vip = <uint32_t>service_cell(c, service, S_VIP)
            vip_port = <uint32_t>service_cell(c, service, S_PORT)
            # The entry is keyed by the client-side tuple: client -> VIP.
            state.words0[position] = flow_words0(p.destination_ip, vip)
            state.words1[position] = flow_words1(p.protocol, p.destination_port, vip_port)
        state.targets[position] = target
    shoal_flow_hash13_many(c.k0, c.k1, state.words0, state.words1, state.flows, <size_t>chunk, c.simd_level)
    # The lines of each packet's probe window to prefetch (two entries per
    # line).  A hit usually stops in the first line of its window, but a miss
    # scans the whole window (no tombstones, see conntrack_c.pxd) before it
    # claims a slot: prefetching two lines left a miss waiting on memory for
    # the rest, and the whole window for every packet cost hits as much.  So
    # the whole window for a client SYN (a new connection) or while the last
    # chunk mostly missed (a burst of new flows), else two lines.  No
    # wraparound test: a prefetch never faults, so a window that wraps only
    # prefetches a line past the table's end (a wasted hint, rare).
    for position in range(chunk):
        home = <uintptr_t>c.entries + (<uintptr_t>fastrange32(<uint32_t>state.flows[position], c.capacity)
                                       * sizeof(ct_entry))
        state.prefetch_first[position] = home
        if state.kinds[position] == KIND_DONE:
            state.prefetch_end[position] = home
        elif misses_likely or (state.kinds[position] == KIND_REQUEST and state.parsed[position].protocol == 6
                               and (state.parsed[position].tcp_flags & 0x12) == 0x02):
            state.prefetch_end[position] = home + c.window * sizeof(ct_entry)
        else:
            state.prefetch_end[position] = home + hit_entries * sizeof(ct_entry)


cdef inline void prefetch_lines(uintptr_t address, uintptr_t end) noexcept nogil:
    """Prefetch every other entry (one per cache line) from ``address`` up to ``end``."""
    while address < end:
        __builtin_prefetch(<const void*>address)
        address += 2 * sizeof(ct_entry)


cdef inline bint track_chunk(const kernel_context* c, chunk_state* state, const chunk_state* upcoming,
                             Py_ssize_t upcoming_chunk, uint8_t* buffer,
                             const uint32_t* offsets, Py_ssize_t base, Py_ssize_t chunk, uint8_t* verdicts,
                             uint64_t now_ns) noexcept nogil:
    """Stage 2: track and rewrite, in packet order, the frames stage 1 classified.

    Before each packet, prefetch the entry of the packet one chunk ahead (in
    ``upcoming``): the prefetches are spread over the chunk's work instead of
    issued in one burst, which overflowed the core's outstanding-miss slots.
    Returns whether at least a quarter of this chunk missed the table.
    """
    cdef Py_ssize_t packet, position
    cdef uint8_t* frame
    cdef uint64_t misses_before = c.ct_counters[CT_MISSES]
    for position in range(chunk):
        if position < upcoming_chunk:
            prefetch_lines(upcoming.prefetch_first[position], upcoming.prefetch_end[position])
        packet = base + position
        frame = buffer + offsets[packet]
        if state.kinds[position] == KIND_REQUEST:
            verdicts[packet] = track_request(c, frame, &state.parsed[position], state.targets[position],
                                             state.flows[position], state.words0[position],
                                             ct_ports_of_flow_words(state.words1[position]), now_ns)
        elif state.kinds[position] == KIND_REPLY:
            verdicts[packet] = track_reply(c, frame, &state.parsed[position], state.targets[position],
                                           state.flows[position], state.words0[position],
                                           ct_ports_of_flow_words(state.words1[position]), now_ns)
    return 4 * (c.ct_counters[CT_MISSES] - misses_before) >= <uint64_t>chunk


cdef inline int32_t pick_backend(const kernel_context* c, int64_t service, uint64_t flow) noexcept nogil:
    cdef uint32_t size = <uint32_t>service_cell(c, service, S_TABLE_SIZE)
    cdef int64_t offset = service_cell(c, service, S_TABLE_OFFSET)
    return c.lookup[offset + fastrange32(<uint32_t>(flow >> 32), size)]


cdef inline uint64_t backend_value(const kernel_context* c, int32_t backend) noexcept nogil:
    return ((<uint64_t>backend_cell(c, backend, B_GENERATION)) << 24) | <uint64_t>backend


cdef inline uint8_t track_request(const kernel_context* c, uint8_t* frame, parsed_frame* parsed,
                                  int32_t service, uint64_t flow, uint64_t addresses, uint64_t ports,
                                  uint64_t now_ns) noexcept nogil:
    # ``addresses`` and ``ports`` are the entry's key (conntrack_c.pxd): the
    # flow hash's message words, already built by stage 1.
    cdef uint64_t* counters = c.counters
    cdef uint64_t* ct_counters = c.ct_counters
    cdef ct_entry* entries = c.entries
    cdef int64_t index = ct_find(entries, c.capacity, c.window, flow, addresses, ports)
    cdef int32_t backend = -1
    cdef uint64_t value
    cdef uint32_t state
    cdef ct_entry* entry
    if index >= 0:
        entry = &entries[index]
        if entry.expires_ns <= now_ns:
            ct_counters[CT_EXPIRED] += 1
        elif ct_reopens(entry.value & 0xFF, parsed.protocol, parsed.tcp_flags, False):
            ct_counters[CT_REOPENED] += 1
        else:
            ct_counters[CT_HITS] += 1
            value = entry.value >> 8
            backend = <int32_t>(value & 0xFFFFFF)
            state = ct_next_state(entry.value & 0xFF, parsed.protocol, parsed.tcp_flags)
            if (backend < c.backend_rows and backend_cell(c, backend, B_ALIVE)
                    and <uint64_t>backend_cell(c, backend, B_GENERATION) == (value >> 24)):
                counters[C_FORWARD_TRACKED] += 1
                # Same backend and generation: only the state byte can change.
                entry.value = (entry.value & ~(<uint64_t>0xFF)) | state
                entry.expires_ns = now_ns + c.timeouts_ns[state]
                return forward(c, frame, parsed, backend)
            elif service_cell(c, service, S_ON_REMOVED) == ON_REMOVED_REPICK:
                backend = pick_backend(c, service, flow)
                if backend < 0:
                    ct_clear(entry, ct_counters)
                    ct_counters[CT_REMOVED] += 1
                    counters[C_DROP_NO_BACKEND] += 1
                    return VERDICT_DROP
                counters[C_REPICK_BACKEND_GONE] += 1
            else:
                ct_clear(entry, ct_counters)
                ct_counters[CT_REMOVED] += 1
                counters[C_RESET_BACKEND_GONE] += 1
                return VERDICT_RESET
            entry.value = (backend_value(c, backend) << 8) | state
            entry.expires_ns = now_ns + c.timeouts_ns[state]
    if backend < 0:
        ct_counters[CT_MISSES] += 1
        backend = pick_backend(c, service, flow)
        if backend < 0:
            if index >= 0:
                ct_clear(&entries[index], ct_counters)
                ct_counters[CT_REMOVED] += 1
            counters[C_DROP_NO_BACKEND] += 1
            return VERDICT_DROP
        if index < 0:
            index = ct_claim(entries, c.capacity, c.window, flow, now_ns, ct_counters)
        state = ct_initial_state(parsed.protocol, parsed.tcp_flags)
        ct_write(&entries[index], addresses, ports, backend_value(c, backend), state,
                 now_ns + c.timeouts_ns[state])
        ct_counters[CT_INSERTED] += 1
        counters[C_FORWARD_NEW] += 1
    return forward(c, frame, parsed, backend)


cdef inline uint8_t forward(const kernel_context* c, uint8_t* frame, parsed_frame* parsed,
                            int32_t backend) noexcept nogil:
    nat_rewrite(frame, parsed, True, <uint32_t>backend_cell(c, backend, B_IP),
                <uint32_t>backend_cell(c, backend, B_PORT), backend_cell(c, backend, B_MAC))
    return VERDICT_FORWARD


cdef inline uint8_t track_reply(const kernel_context* c, uint8_t* frame, parsed_frame* parsed,
                                int32_t backend, uint64_t flow, uint64_t addresses, uint64_t ports,
                                uint64_t now_ns) noexcept nogil:
    # The key of the client-side entry (client -> VIP), built by stage 1.
    cdef uint64_t* counters = c.counters
    cdef uint64_t* ct_counters = c.ct_counters
    cdef ct_entry* entries = c.entries
    cdef int64_t service = backend_cell(c, backend, B_SERVICE)
    cdef uint32_t vip = <uint32_t>service_cell(c, service, S_VIP)
    cdef uint32_t vip_port = <uint32_t>service_cell(c, service, S_PORT)
    cdef int64_t index = ct_find(entries, c.capacity, c.window, flow, addresses, ports)
    cdef ct_entry* entry
    cdef uint32_t state
    if index >= 0 and entries[index].expires_ns > now_ns and (entries[index].value >> 8) == backend_value(c, backend):
        entry = &entries[index]
        ct_counters[CT_HITS] += 1
        state = ct_next_state(entry.value & 0xFF, parsed.protocol, parsed.tcp_flags)
        entry.value = (entry.value & ~(<uint64_t>0xFF)) | state
        entry.expires_ns = now_ns + c.timeouts_ns[state]
        counters[C_REPLY_TRACKED] += 1
    else:
        # Stateless SNAT is still right: this backend endpoint belongs to one
        # service only (the Balancer refuses sharing), so its VIP is known.
        counters[C_REPLY_UNTRACKED] += 1
    nat_rewrite(frame, parsed, False, vip, vip_port, service_cell(c, service, S_VIP_MAC))
    return VERDICT_REPLY
