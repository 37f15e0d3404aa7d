#!/usr/bin/env python3
"""Verify a troupe ETL output file against hashlib.

Usage: python3 check_etl_output.py FILE COUNT

FILE holds one JSON object per line with "seq", "key", "body", "attrs".
Checks: exactly COUNT lines, seq values are exactly 0..COUNT-1 with no
duplicates, and body == sha256(f"raw_{seq}").hexdigest() for every line.
Exits 0 on success, 1 (with details on stderr) on failure.
"""
import hashlib
import json
import sys

SHOW = 5  # how many problems of each kind to print
FIELDS = {"seq", "key", "body", "attrs"}


def main(path, count):
    errors, seen, dups, bad = [], set(), [], []
    with open(path) as f:
        lines = [line for line in f if line.strip()]
    if len(lines) != count:
        errors.append(f"expected {count} lines, got {len(lines)}")
    for n, line in enumerate(lines, 1):
        try:
            rec = json.loads(line)
            if absent := FIELDS - rec.keys():
                raise KeyError(f"missing {sorted(absent)}")
            seq, body = rec["seq"], rec["body"]
            if not isinstance(seq, int):
                raise TypeError(f"seq is not an int: {seq!r}")
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            errors.append(f"line {n}: malformed record ({e}): {line.strip()[:120]}")
            continue
        if seq in seen:
            dups.append(seq)
        seen.add(seq)
        expected = hashlib.sha256(f"raw_{seq}".encode()).hexdigest()
        if body != expected:
            bad.append((seq, expected, body))
    missing = sorted(set(range(count)) - seen)
    extra = sorted(seen - set(range(count)))
    if missing:
        errors.append(f"{len(missing)} missing seq values, e.g. {missing[:SHOW]}")
    if extra:
        errors.append(f"{len(extra)} unexpected seq values, e.g. {extra[:SHOW]}")
    if dups:
        errors.append(f"{len(dups)} duplicate seq values, e.g. {dups[:SHOW]}")
    if bad:
        errors.append(f"{len(bad)} body mismatches:")
        errors += [f"  seq={s} expected={e} got={g}" for s, e, g in bad[:SHOW]]
    if errors:
        print(f"etl output FAILED ({path}):", *errors, sep="\n", file=sys.stderr)
        return 1
    print(f"etl output ok: {count} records match hashlib")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("\n\n")[1])
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
