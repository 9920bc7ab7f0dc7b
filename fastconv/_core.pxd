# The C-level functions fastconv._core shares with the other extension
# modules (they cimport them; Cython passes the pointers through
# _core.__pyx_capi__).

# fc_isa_variant (src/core/dispatch.c): the one ISA decision, for _pool.
cdef int isa_variant(int family) noexcept nogil
