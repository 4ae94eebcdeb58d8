"""Compares the cubins of two kiln caches specialization by specialization (compare-kernels.sh).

A specialization is its cache key text without the lines that name the build (the schema,
kiln's version and the template files' hashes): template, parameters, NVRTC version, arch and
options. Exit status 0 when both caches hold the same specializations with byte-identical
cubins (equal xxh3 digests of equal lengths)."""
import sqlite3
import sys

BUILD_LINES = ("schema=", "kiln=", "file:")


def specialization(key_text):
    kept = []
    for line in key_text.splitlines():
        name_value = line.split(":", 1)[1] if ":" in line else line  # "<len>:name=value"
        if not name_value.startswith(BUILD_LINES):
            kept.append(name_value)
    return "\n".join(kept)


def load(path):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    rows = db.execute(
        "SELECT key_text, cubin_xxh3, cubin_bytes, registers, spills FROM kernels").fetchall()
    db.close()
    return {specialization(r[0]): r[1:] for r in rows}


def label(spec):
    lines = dict(l.split("=", 1) for l in spec.splitlines() if "=" in l)
    params = " ".join(f"{k[6:]}={v}" for k, v in lines.items() if k.startswith("param:"))
    return f"{lines.get('template', '?')} {params}"


def show(row):
    return "missing" if row is None else f"{row[2]} registers, {row[3]} spill bytes"


def main():
    a_path, b_path, a_name, b_name = sys.argv[1:5]
    a, b = load(a_path), load(b_path)
    same = differ = 0
    for spec in sorted(set(a) | set(b), key=label):
        x, y = a.get(spec), b.get(spec)
        if x is not None and y is not None and x[:2] == y[:2]:
            same += 1
            continue
        differ += 1
        print(f"differs: {label(spec)}\n  {a_name}: {show(x)}\n  {b_name}: {show(y)}")
    print(f"{same} identical, {differ} different or missing "
          f"({len(a)} specializations in {a_name}, {len(b)} in {b_name})")
    return 0 if differ == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
