#!/usr/bin/env python3
"""The wgmma loops of kiln cubins, read from their SASS. Usage: sass_loops.py CUBIN...

Dump a build's cubins with KILN_DUMP_DIR (e.g. `KILN_DUMP_DIR=/tmp/d KILN_CACHE_PATH=/tmp/c
build/tools/kiln prewarm --model examples/deepseek-v3.model --arch sm_90a --quiet`; the files
are named by the specialization's hash, the same in every build), then compare two builds'
cubins of one specialization. cuobjdump comes from $KILN_CUOBJDUMP, else from PATH.

For each loop (a branch back to an earlier address) that issues wgmma (QGMMA for FP8, HGMMA
for BF16), one line: its first and last address, its length in instructions, its wgmma, the
instructions from each mbarrier wait (SYNCS.PHASECHK) to the next wgmma in the loop, and
counts of the integer and uniform-datapath instructions that build descriptors and offsets.
Stop 38 and 39 used these counts; they did not foretell which build ran faster (see
docs/gemm_fp8_notes.md, "Open work"), so read them as a description, not a prediction."""
import os
import re
import subprocess
import sys

INSTR = re.compile(r"\s+/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")
COUNTED = ("R2UR", "UIADD3", "ULOP3", "IMAD", "LOP3", "FFMA")


def sass(path):
    """(address, instruction text) of every instruction in the cubin."""
    tool = os.environ.get("KILN_CUOBJDUMP", "cuobjdump")
    out = subprocess.run([tool, "-sass", path], capture_output=True, text=True, check=True)
    return [(int(m[1], 16), m[2]) for m in map(INSTR.match, out.stdout.splitlines()) if m]


def opcode(text):
    """The opcode with its modifiers, without a predicate guard (@P0, @!UP1)."""
    text = re.sub(r"^@!?U?P\w+\s+", "", text)
    return text.split()[0] if text else ""


def wgmma_loops(instrs):
    """The loops that issue wgmma, as lists of opcodes, with their first and last address."""
    where = {addr: i for i, (addr, _) in enumerate(instrs)}
    for i, (addr, text) in enumerate(instrs):
        if not opcode(text).startswith("BRA"):
            continue
        target = re.search(r"0x[0-9a-f]+", text.split("BRA", 1)[1])
        if not target or int(target[0], 16) >= addr or int(target[0], 16) not in where:
            continue
        start = where[int(target[0], 16)]
        ops = [opcode(t) for _, t in instrs[start:i + 1]]
        if any(o.startswith(("QGMMA", "HGMMA")) for o in ops):
            yield instrs[start][0], addr, ops


def describe(path):
    instrs = sass(path)
    print(f"{os.path.basename(path)}: {len(instrs)} instructions")
    for first, last, ops in wgmma_loops(instrs):
        mma = [k for k, o in enumerate(ops) if o.startswith(("QGMMA", "HGMMA"))]
        waits = [k for k, o in enumerate(ops) if o.startswith("SYNCS.PHASECHK")]
        to_mma = [next(m for m in mma if m > w) - w for w in waits if w < mma[-1]]
        counts = " ".join(f"{c} {sum(o.startswith(c) for o in ops)}" for c in COUNTED)
        print(f"  loop {first:#x}-{last:#x}: {len(ops)} instrs, {len(mma)} wgmma "
              f"(first at {mma[0]}), wait->wgmma {to_mma or '-'}; {counts}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for cubin in sys.argv[1:]:
        describe(cubin)
