#!/usr/bin/env python3
"""Damage a kernel cache file at random and check that kiln survives it (no GPU).

Usage: scripts/cache-damage.py BUILD [TRIALS] [SEED]   (default 120 trials, seed 1)

Prewarms three small kernels into a fresh cache with BUILD/tools/kiln, keeps that
kernels.db, then per trial writes a damaged copy (random bytes changed, the file cut short,
a page zeroed or filled with noise) and runs: prewarm, cache verify, cache ls,
cache prune --max-mb 0, prewarm, cache verify. Every command must finish within 60 s with
exit status 0 or 1 and no sanitizer report, and the last verify must find the cache clean
(recovered). Stop 57 found a 60-s-per-kernel stall and an index fault verify could not mend
this way (docs/robustness.md). Exit status 1 when any trial failed."""
import os
import random
import shutil
import subprocess
import sys
import tempfile

SPEC = "sf_transpose\nquant_fp8_per_token k=512\nquant_fp8_per_block k=512\n"
PREWARM = ["prewarm", "--spec", None, "--arch", "sm_90a", "--quiet"]
COMMANDS = [PREWARM, ["cache", "verify"], ["cache", "ls"], ["cache", "prune", "--max-mb", "0"],
            PREWARM, ["cache", "verify"]]


def damage(good, trial, rng):
    data = bytearray(good)
    kind = trial % 4
    if kind == 0:
        for _ in range(rng.randint(1, 50)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 1:
        data = data[:rng.randrange(len(data))]
    else:
        page = rng.randrange(len(data) // 4096)
        fill = bytes(4096) if kind == 2 else bytes(rng.randrange(256) for _ in range(4096))
        data[page * 4096:(page + 1) * 4096] = fill
    return bytes(data), ["bytes changed", "cut short", "page zeroed", "page of noise"][kind]


def run(kiln, args, env):
    """(exit status or 'hang', stdout + stderr as text)."""
    try:
        r = subprocess.run([kiln] + args, env=env, capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "hang", ""
    return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    kiln = os.path.join(sys.argv[1], "tools", "kiln")
    trials = int(sys.argv[2]) if len(sys.argv) > 2 else 120
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    work = tempfile.mkdtemp(prefix="kiln-cache-damage-")
    try:
        spec = os.path.join(work, "kernels.spec")
        with open(spec, "w") as f:
            f.write(SPEC)
        PREWARM[2] = spec
        cache = os.path.join(work, "cache")
        env = dict(os.environ, KILN_CACHE_PATH=cache, KILN_LOG="warn")
        status, out = run(kiln, PREWARM, env)
        if status != 0:
            sys.exit("prewarm of the good cache failed:\n" + out)
        with open(os.path.join(cache, "kernels.db"), "rb") as f:
            good = f.read()
        failed = 0
        for trial in range(trials):
            data, how = damage(good, trial, rng)
            shutil.rmtree(cache)
            os.makedirs(cache)
            with open(os.path.join(cache, "kernels.db"), "wb") as f:
                f.write(data)
            for i, args in enumerate(COMMANDS):
                status, out = run(kiln, args, env)
                last = i == len(COMMANDS) - 1
                bad = (status not in (0, 1) or "Sanitizer" in out or "runtime error" in out
                       or (last and status != 0))
                if bad:
                    failed += 1
                    print(f"trial {trial} ({how}): kiln {' '.join(args)}: exit {status}"
                          f"{' (the cache did not recover)' if last else ''}\n{out[-1500:]}")
                    break
        print(f"{trials} trials, {failed} failed")
        sys.exit(1 if failed else 0)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
