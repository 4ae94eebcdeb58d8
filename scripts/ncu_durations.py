#!/usr/bin/env python3
"""Kernel times from `ncu --csv --metrics gpu__time_duration.sum` output of a benchmark run
with --single (scripts/profile-single.sh). Usage: ncu_durations.py LABEL FILE.csv

A call is one GEMM kernel plus any reduction kernel launched right after it (cuBLASLt's
split-K), their times summed. Calls are cut into runs: consecutive calls of one kernel
name, and kiln's runs further into measurements of BATCHES + 2 = 17 launches (the two
layouts of the contiguous benchmark share one kernel name). One line per run, in launch
order: the label, call count, median microseconds per call and their range ([min-max]), for
kiln's GEMM kernel when LABEL is MxNxK TFLOP/s, and the median SM clock where ncu measured
it. With --sweep, kiln's runs after the first carry the configuration the benchmark printed
for them. With --contig (LABEL "contig"), each run is labelled with its grouping,
"cGxROWS:NxK" from the benchmark's own "contig G x ROWS rows, N n K k" lines ("cGKIND:NxK",
e.g. c32rand, for uneven groupings), kiln's two runs per grouping (prefix sums, then row
ids) get their TFLOP/s and the layout, and cuBLASLt's loop over the groups shows G calls per
measurement: multiply the median by G (scripts/vs_reference.py does, for equal groups; an
uneven loop's GEMMs differ in size, and may run as several kernels). Where the CSV has
dram__bytes_read.sum too (profile-single.sh with KILN_PROFILE_DRAM=1), each line also gives
the median MB read from DRAM per call."""
import csv
import os
import re
import statistics
import sys

# BATCHES + 2 in tools/bench_common.h (--single); with KILN_BENCH_SETS=S > 2 forced, the
# bench warms up S launches: KILN_NCU_WARM_UP=S here drops them from each measurement
WARM_UP = int(os.environ.get("KILN_NCU_WARM_UP", "2"))
LAUNCHES = 15 + WARM_UP
UNITS = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3}
CLOCK_UNITS = {"hz": 1e-6, "khz": 1e-3, "mhz": 1.0, "ghz": 1e3, "cycle/second": 1e-6,
               "cycle/s": 1e-6, "cycle/usecond": 1.0, "cycle/us": 1.0, "cycle/nsecond": 1e3,
               "cycle/ns": 1e3}  # to MHz
BYTE_UNITS = {"byte": 1e-6, "kbyte": 1e-3, "mbyte": 1.0, "gbyte": 1e3}  # to MB


def launches(path):
    """[(kernel name, microseconds, SM MHz or None, DRAM MB read or None)] in launch order."""
    with open(path, newline="") as f:
        rows = [line for line in f if line.startswith('"')]  # drop ncu's ==PROF== lines
    by_id = {}  # launch ID -> [name, us, MHz, MB]
    for row in csv.DictReader(rows):
        entry = by_id.setdefault(row["ID"], [row["Kernel Name"], None, None, None])
        value = float(row["Metric Value"].replace(",", "") or "nan")
        unit = row["Metric Unit"]
        if row["Metric Name"] == "gpu__time_duration.sum" and unit in UNITS:
            entry[1] = value * UNITS[unit]
        elif row["Metric Name"] == "sm__cycles_elapsed.avg.per_second":
            scale = CLOCK_UNITS.get(unit.lower())
            entry[2] = value * scale if scale else None
        elif row["Metric Name"] == "dram__bytes_read.sum":
            scale = BYTE_UNITS.get(unit.lower())
            entry[3] = value * scale if scale else None
    return [tuple(e) for _, e in sorted(by_id.items(), key=lambda kv: int(kv[0])) if e[1]]


def runs(path):
    """[(name, [per-call microseconds], helper kernel count, [MHz], [DRAM MB])]: a call is one
    GEMM kernel plus the reduction kernels launched right after it (cuBLASLt's split-K),
    summed (the clock is the GEMM kernel's)."""
    calls = []
    for name, us, mhz, mb in launches(path):
        if "reduce" in name.lower() and calls:
            calls[-1][1] += us
            calls[-1][2] += 1
            both = calls[-1][4] is not None and mb is not None
            calls[-1][4] = calls[-1][4] + mb if both else None
        else:
            calls.append([name, us, 0, mhz, mb])
    out = []
    for name, us, helpers, mhz, mb in calls:
        kiln_full = out and name.startswith("kiln_gemm") and len(out[-1][1]) == LAUNCHES
        if out and out[-1][0] == name and not kiln_full:
            out[-1][1].append(us)
            out[-1][2] += helpers
            out[-1][3].append(mhz)
            out[-1][4].append(mb)
        else:
            out.append([name, [us], helpers, [mhz], [mb]])
    if WARM_UP > 2:  # the first reads of each operand set: not part of the measurement
        for run in out:
            if run[0].startswith("kiln_gemm") and len(run[1]) == LAUNCHES:
                for i in (1, 3, 4):
                    run[i] = run[i][WARM_UP:]
    return out


def sweep_configs(path):
    """The configurations of the benchmark's --sweep lines (its own output, ahead of ncu's
    CSV in FILE), in order: "BMxBN sS ksK ckC mcM maA ovO uU tT"."""
    configs = []
    with open(path) as f:
        for line in f:
            words = line.split()
            if words[:1] == ["sweep"] and len(words) >= 15:
                configs.append(" ".join(words[6:15]))
    return configs


def contig_groupings(path):
    """The --contig benchmark's groupings, in order: [(label, rows in all, N, K)], the label
    "cGxROWS" for equal groups ("contig G x ROWS rows, N n K k" lines) and "cGKIND" (e.g.
    c32rand) for uneven ones ("contig G groups (KIND: R rows, ..."), whose padding rows are
    no work."""
    equal = r"contig\s+(\d+) x\s+(\d+) rows, N\s+(\d+) K\s+(\d+):"
    uneven = r"contig (\d+) groups \((\w+): (\d+) rows, .*\), N\s+(\d+) K\s+(\d+):"
    found = []
    with open(path) as f:
        for line in f:
            m = re.match(equal, line)
            if m:
                g, rows, n, k = map(int, m.groups())
                found.append((f"c{g}x{rows}", g * rows, n, k))
            m = re.match(uneven, line)
            if m:
                g, kind, rows, n, k = m.groups()
                found.append((f"c{g}{kind}", int(rows), int(n), int(k)))
    return found


def print_run(label, name, us, helpers, mhz, mb, flops=None, tag=""):
    """One run's line: label, call count, median us and the calls' range (lone launches of one
    kernel spread 2-10%, decode ones in two clusters: read an A/B's difference against it),
    TFLOP/s (kiln, when flops is known), the median SM clock and DRAM MB read (where
    measured), the kernel's name and what else is known of the run."""
    med = statistics.median(us)
    spread = f" [{min(us):.2f}-{max(us):.2f}]"
    clocks = [c for c in mhz if c]
    clock = f" {statistics.median(clocks):5.0f} MHz" if clocks else ""
    reads = [r for r in mb if r is not None]
    clock += f" {statistics.median(reads):7.1f} MB" if reads else ""
    rate = f"  {flops / med / 1e6:7.1f} TFLOP/s" if flops and name.startswith("kiln_gemm") else ""
    extra = f" (+{helpers // len(us)} reduce)" if helpers else ""
    print(f"{label:>20}  {len(us):3d} x {med:9.2f} us{spread}{rate}{clock}  "
          f"{name[:64]}{extra}{tag}")


def main():
    label, path = sys.argv[1], sys.argv[2]
    found = runs(path)
    if not found:
        print(f"{label:>20}  no kernel profiled (see the .err log)")
    if label == "contig":
        contig_main(path, found)
        return
    configs = sweep_configs(path)
    kiln_runs = 0
    flops = None
    dims = label.split("x")
    if len(dims) == 3 and all(d.isdigit() for d in dims):
        m, n, k = map(int, dims)
        flops = 2.0 * m * n * k
    for name, us, helpers, mhz, mb in found:
        tag = ""
        if name.startswith("kiln_gemm"):
            # With --sweep: the default run, then one run per configuration swept.
            if 0 < kiln_runs <= len(configs):
                tag = f"  [{configs[kiln_runs - 1]}]"
            kiln_runs += 1
        print_run(label, name, us, helpers, mhz, mb, flops, tag)


def contig_main(path, found):
    """--contig: per grouping, kiln's prefix sums, then its row ids, then cuBLASLt's loop."""
    groupings = contig_groupings(path)
    kiln_runs = 0
    shape = 0  # the grouping of the runs being printed
    for name, us, helpers, mhz, mb in found:
        tag = ""
        if name.startswith("kiln_gemm"):
            shape = kiln_runs // 2
            tag = " [row ids]" if kiln_runs % 2 else " [prefix sums]"
            kiln_runs += 1
        label, flops = "contig", None
        if shape < len(groupings):
            name_of, rows, n, k = groupings[shape]
            label, flops = f"{name_of}:{n}x{k}", 2.0 * rows * n * k
        print_run(label, name, us, helpers, mhz, mb, flops, tag)


if __name__ == "__main__":
    main()
