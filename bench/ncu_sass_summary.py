"""Summary of one ncu launch: duration, stall reasons, and the SASS lines with the most stall samples.

    python bench/ncu_sass_summary.py DETAILS.csv SASS.csv   (from `ncu --import R --csv --page details`
                                                             and `--page source --print-source sass`)
"""
import csv
import sys


def num(text):
    """A CSV cell as a number: thousands separators dropped, empty or non-numeric ("-") as 0."""
    try:
        return float(text.replace(",", "") or 0)
    except ValueError:
        return 0.0


def rows(path):
    with open(path, newline="") as f:
        lines = [line for line in f if line.startswith('"')]  # ncu prints notes before the table
    # The source page starts with the kernel's name on a line of its own, then the header.
    head = next((i for i, line in enumerate(lines) if line.startswith('"Address"')), 0)
    return list(csv.DictReader(lines[head:]))


def main() -> None:
    details, sass = sys.argv[1], sys.argv[2]
    for r in rows(details):
        name = r.get("Metric Name", "")
        if name in ("Duration", "Compute (SM) Throughput", "Warp Cycles Per Issued Instruction", "DRAM Throughput",
                    "L2 Hit Rate", "Memory Throughput", "Max Bandwidth") or name.startswith("Stall"):
            print(f"{name}: {r.get('Metric Value')} {r.get('Metric Unit', '')}")
    lines = rows(sass)
    if not lines:
        print("no SASS rows")
        return
    key = next((k for k in lines[0] if k and k.startswith("Warp Stall Sampling (All")), None)
    if key is None:
        print("columns:", list(lines[0])[:20])
        return
    def samples(r):
        return num(r[key])
    total = sum(samples(r) for r in lines)
    by_op = {}  # samples by opcode (predicate and modifiers dropped): which kind of wait dominates
    for r in lines:
        words = [w for w in r.get("Source", "").split() if not w.startswith("@")]
        op = words[0].split(".")[0] if words else "?"
        by_op[op] = by_op.get(op, 0.0) + samples(r)
    print("by opcode: " + ", ".join(f"{op} {100 * v / max(total, 1):.1f}%" for op, v in
                                    sorted(by_op.items(), key=lambda kv: -kv[1])[:12]))
    print(f"{len(lines)} SASS lines, {total:.0f} stall samples; the top 20:")
    def reason(r):  # the stall reason with the most samples on this line
        best = max(((k, r[k]) for k in r if k and k.startswith("stall_") and "Not Issued" not in k),
                   key=lambda kv: num(kv[1]), default=("?", "0"))
        return best[0][len("stall_"):]
    by_reason = {}
    for r in lines:
        for k in r:
            if k and k.startswith("stall_") and "Not Issued" not in k:
                by_reason[k[6:]] = by_reason.get(k[6:], 0.0) + num(r[k])
    print("by reason: " + ", ".join(f"{k} {100 * v / max(total, 1):.1f}%" for k, v in
                                    sorted(by_reason.items(), key=lambda kv: -kv[1])[:10]))
    for i, r in sorted(enumerate(lines), key=lambda ir: -samples(ir[1]))[:20]:
        print(f"  {i:5d} {samples(r):8.0f} {100 * samples(r) / max(total, 1):5.1f}% {reason(r):>14}  {r.get('Source', '').strip()[:70]}")


if __name__ == "__main__":
    main()
