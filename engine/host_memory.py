"""glibc's malloc told to keep a decode step's large buffers mapped between steps."""
from __future__ import annotations

import ctypes

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# the largest threshold glibc takes on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX); a buffer below it comes from the heap
HEAP_BUFFERS_BELOW = 32 << 20
# free memory at the heap's top that stays mapped
KEEP_FREED = 1 << 30


def keep_step_buffers() -> None:
    """A step's buffers of megabytes (64 rows of logits over a 49152-token vocabulary: 12.6 MB) come from the heap,
    and stay mapped once freed, for the next step to reuse. Left to glibc's dynamic thresholds, a process now and
    then returned them to the kernel at every free and faulted them back in at the next step: ~10,000 page faults
    and 8 ms more per 64-row step of SmolLM2-135M, in about half of the processes. Off glibc nothing changes."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        # both: once either is set, glibc stops adjusting the other
        mallopt(M_MMAP_THRESHOLD, HEAP_BUFFERS_BELOW)
        mallopt(M_TRIM_THRESHOLD, KEEP_FREED)
