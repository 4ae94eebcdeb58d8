"""Compares the cubins of two kiln caches specialization by specialization (compare-kernels.sh).

A specialization is its cache key text without the lines that name the build (the schema,
kiln's version and the template files' hashes): template, parameters, NVRTC version, arch and
options. A parameter at 0 is left out too: a template's new parameters mean "as before" at
0 (src/jit/templates.c), so a build that has one compares with a build that has not. Exit
status 0 when both caches hold the same specializations with byte-identical cubins (equal
xxh3 digests of equal lengths).

With KILN_CUOBJDUMP=/path/to/cuobjdump, cubins whose bytes differ are compared again by their
SASS (instructions in order, addresses left out) and counted as SASS-identical when it
matches: a new namespace-scope constant changes a cubin's bytes (.nv.global) but not its
code."""
import os
import re
import sqlite3
import subprocess
import sys
import tempfile

BUILD_LINES = ("schema=", "kiln=", "file:")
ZERO_PARAM = re.compile(r"param:[^=]+=0")


def specialization(key_text):
    kept = []
    for line in key_text.splitlines():
        name_value = line.split(":", 1)[1] if ":" in line else line  # "<len>:name=value"
        if not name_value.startswith(BUILD_LINES) and not ZERO_PARAM.fullmatch(name_value):
            kept.append(name_value)
    return "\n".join(kept)


def load(path):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    rows = db.execute(
        "SELECT key_text, cubin_xxh3, cubin_bytes, registers, spills, cubin FROM kernels"
    ).fetchall()
    db.close()
    return {specialization(r[0]): r[1:] for r in rows}


def sass(cuobjdump, cubin):
    """The cubin's instructions in order, without their addresses."""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run([cuobjdump, "-sass", f.name], capture_output=True, text=True,
                              check=True).stdout
    return [re.sub(r"/\*[0-9a-f]+\*/", "", line).strip() for line in text.splitlines()
            if re.match(r"\s+/\*[0-9a-f]{4,}\*/", line)]


def label(spec):
    lines = dict(l.split("=", 1) for l in spec.splitlines() if "=" in l)
    params = " ".join(f"{k[6:]}={v}" for k, v in lines.items() if k.startswith("param:"))
    return f"{lines.get('template', '?')} {params}"


def show(row):
    return "missing" if row is None else f"{row[2]} registers, {row[3]} spill bytes"


def main():
    a_path, b_path, a_name, b_name = sys.argv[1:5]
    a, b = load(a_path), load(b_path)
    cuobjdump = os.environ.get("KILN_CUOBJDUMP")
    same = same_sass = differ = 0
    for spec in sorted(set(a) | set(b), key=label):
        x, y = a.get(spec), b.get(spec)
        if x is not None and y is not None and x[:2] == y[:2]:
            same += 1
            continue
        both = x is not None and y is not None
        if both and cuobjdump and sass(cuobjdump, x[4]) == sass(cuobjdump, y[4]):
            same_sass += 1
            continue
        differ += 1
        print(f"differs: {label(spec)}\n  {a_name}: {show(x)}\n  {b_name}: {show(y)}")
    if cuobjdump:
        print(f"{same_sass} with other bytes but the same SASS")
    print(f"{same} identical, {differ} different or missing "
          f"({len(a)} specializations in {a_name}, {len(b)} in {b_name})")
    return 0 if differ == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
