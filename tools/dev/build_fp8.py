#!/usr/bin/env python3
# Builds tools/dev/gemm_fp8_harness (driver + one kernel TU per config) into .carry/.
# Usage: python3 tools/dev/build_fp8.py [/work/main]   (JOBS=n for parallel nvcc)
import math, os, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
ROOT = os.path.abspath(os.path.dirname(__file__) + "/../..") if len(sys.argv) < 2 else sys.argv[1]
OUT = os.path.join(ROOT, ".carry/fp8"); os.makedirs(OUT, exist_ok=True)
SMS, SMEM_MAX = 132, 232448
NVCC = ["nvcc", "-gencode=arch=compute_90a,code=sm_90a", "-O3", "-std=c++17",
        "-I" + os.path.join(ROOT, "src/templates")]
HARNESS = os.path.join(ROOT, "tools/dev/gemm_fp8_harness.cu")

def nsb(bn):
    return max(1, bn // 128) if (bn % 128 == 0 or 128 % bn == 0) else bn // 128 + 2

def a1k(x):
    return (x + 1023) // 1024 * 1024

def smem(bm, bn, st, ks=1, ck=1):
    rg = bm // 64
    d = a1k(rg * 64 * bn * 2) + a1k((ks - 1) * rg * 64 * bn * 4)
    d += a1k(rg * 64 * bn * 4 if ck > 1 else 0)
    d += st * (bm * 128 + bn * 128 + bm * 4) + (st * nsb(bn) * 4 + 15) // 16 * 16 + st * 16
    d += (rg * 16 if ck > 1 else 0)
    return d + 1024

def max_stages(bm, bn, ks=1, ck=1, cap=32):
    st = 2
    while st + 1 <= cap and smem(bm, bn, st + 1, ks, ck) <= SMEM_MAX:
        st += 1
    return st // ks * ks

def k_split(bm, bn, k):
    kb = k // 128
    rg = bm // 64
    for ks in (4, 2):
        wgs = rg * ks
        thr = (wgs + 1) * 128
        entry = min(248, (65536 // thr) // 8 * 8)
        regs = min(240, ((entry * thr - 128 * 40) // (128 * wgs)) // 8 * 8)
        if wgs <= 4 and kb % ks == 0 and bn + 48 <= regs:
            return ks
    return 1

def decode_bn(n):
    best = None
    for bn in range(16, 193, 8):
        nb = math.ceil(n / bn); waves = math.ceil(nb / SMS)
        score = (waves * bn, -bn)
        if best is None or score < best[0]:
            best = (score, bn)
    return best[1]

NK = [(2112, 7168), (576, 7168), (24576, 1536), (32768, 512), (7168, 16384), (4096, 7168), (7168, 2048)]
# decode candidates per (N, K): (block_n, cluster_k, k_split); (0, 1, 0) = the v2 pick
DECODE = {(2112, 7168): [(32, 2, 1), (32, 2, 2), (48, 3, 1), (72, 4, 1)],
          (576, 7168): [(32, 4, 1), (48, 8, 1)],
          (24576, 1536): [(0, 1, 0)],
          (32768, 512): [(0, 1, 0)],
          (7168, 16384): [(112, 2, 1), (112, 2, 2)],
          (4096, 7168): [(64, 2, 1), (64, 2, 2), (96, 3, 1)],
          (7168, 2048): [(0, 1, 0), (112, 2, 1)]}
cfgs = []
def D(**kw):
    kw.setdefault("sw", 1)
    cfgs.append(kw)
for (n, k) in NK:
    for bucket, bm in ((0, 64), (1, 128)):
        for (bn, ck, ks) in DECODE[(n, k)]:
            if bn == 0:
                bn = decode_bn(n); ks = k_split(bm, bn, k)
            if ks > 1 and (bm // 64) * ks > 2 and bn + 48 > 112:
                continue
            D(bucket=bucket, n=n, k=k, bm=bm, bn=bn, ks=ks, st=max_stages(bm, bn, ks, ck), g=1000, mc=1, ck=ck)
    pbn = 144 if n == 576 else 128
    for mc in (1, 2):
        for sw in (1, 0):
            D(bucket=2, n=n, k=k, bm=128, bn=pbn, ks=1, st=max_stages(128, pbn), g=8, mc=mc, ck=1, sw=sw)
only = os.environ.get("ONLY")
for i, c in enumerate(cfgs):
    c["id"] = i
if only:
    cfgs = [cfgs[int(x)] for x in only.split(",")]

def build(c):
    obj = os.path.join(OUT, "k%d.o" % c["id"])
    cmd = NVCC + ["-DKH_KERNEL_TU", "-DKH_ID=%d" % c["id"], "-DKH_BUCKET=%d" % c["bucket"],
                  "-DKH_N=%d" % c["n"], "-DKH_K=%d" % c["k"], "-DKH_BM=%d" % c["bm"],
                  "-DKH_BN=%d" % c["bn"], "-DKH_ST=%d" % c["st"], "-DKH_G=%d" % c["g"],
                  "-DKH_KS=%d" % c["ks"], "-DKH_MC=%d" % c["mc"], "-DKH_CK=%d" % c["ck"],
                  "-DKH_SW=%d" % c["sw"],
                  "-Xptxas", "-v", "-c", HARNESS, "-o", obj]
    r = subprocess.run(cmd, capture_output=True, text=True)
    info = [l for l in r.stderr.splitlines() if "registers" in l or "spill" in l or "warning" in l.lower() or "error" in l]
    return c, obj, r.returncode, info, r.stderr

jobs = int(os.environ.get("JOBS", "2"))
objs = []
with ThreadPoolExecutor(jobs) as ex:
    for c, obj, rc, info, err in ex.map(build, cfgs):
        print("cfg %(id)d bucket %(bucket)d N=%(n)d K=%(k)d %(bm)dx%(bn)d st=%(st)d ks=%(ks)d mc=%(mc)d ck=%(ck)d sw=%(sw)d" % c)
        for l in info:
            print("   ", l.strip())
        if rc:
            print(err); sys.exit(1)
        objs.append(obj)
if only:
    sys.exit(0)
drv = os.path.join(OUT, "driver.o")
subprocess.check_call(NVCC + ["-c", HARNESS, "-o", drv])
subprocess.check_call(NVCC + [drv] + objs + ["-o", os.path.join(ROOT, ".carry/gemm_fp8_harness"),
                      "-L/usr/local/cuda/lib64/stubs", "-lcublasLt", "-lcuda"])
print("built", os.path.join(ROOT, ".carry/gemm_fp8_harness"))
