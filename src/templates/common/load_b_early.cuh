/* B early, shared by the dense FP8 and BF16 GEMMs (b_ready: B is weights, complete before
 * the launch and written by no kernel before it on the stream). The B tiles of the first
 * tile's first K blocks, up to one per slot and at most max_slots (the launch's b_ready, the
 * host's KILN__GEMM_B_EARLY_SLOTS), are loaded before the grid dependency wait, so under PDL
 * they stream in while the kernel before this one finishes. Their slots' full barriers get
 * the stage's bytes now and the arrive later, with A's loads. load_b(tl, slot, full, kb)
 * issues one slot's B tile. Returns how many slots were so loaded.
 *
 * Included INSIDE a kernel's namespace after gemm_sched.cuh and the kernel's shared-memory
 * layout (STAGES, OFF_BAR, stage_tx). */
template <typename LoadB>
__device__ __forceinline__ int load_b_early(const sched &sc, u32 base, u32 lane, int max_slots,
                                            LoadB &&load_b)
{
    if (sc.first >= sc.num_units)
        return 0;
    cursor cur;
    cursor_init(sc, cur);
    tile tl;
    tile_coords(sc, cur, sc.first, tl);
    int early = sc.kb_count < STAGES ? sc.kb_count : STAGES;
    early = early < max_slots ? early : max_slots;
    if (lane == 0)
        for (int i = 0; i < early; ++i) {
            const u32 full = base + OFF_BAR + i * 8;
            mbar_expect_tx(full, stage_tx(sc, tl));
            load_b(tl, i, full, sc.kb_begin + i);
        }
    return early;
}
