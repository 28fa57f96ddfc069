"""Summary of one ncu launch: duration, stall reasons, and the SASS lines with the most stall samples.

    python bench/ncu_sass_summary.py DETAILS.csv SASS.csv   (from `ncu --import R --csv --page details`
                                                             and `--page source --print-source sass`)
"""
import csv
import sys


def rows(path):
    with open(path, newline="") as f:
        lines = [line for line in f if line.startswith('"')]  # ncu prints notes before the table
    return list(csv.DictReader(lines))


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
    key = next((k for k in lines[0] if k.startswith("Warp Stall Sampling (All")), None)
    if key is None:
        print("columns:", list(lines[0])[:20])
        return
    def samples(r):
        try:
            return float(r[key].replace(",", "") or 0)
        except ValueError:
            return 0.0
    total = sum(samples(r) for r in lines)
    by_op = {}  # samples by opcode (predicate and modifiers dropped): which kind of wait dominates
    for r in lines:
        words = [w for w in r.get("Source", "").split() if not w.startswith("@")]
        op = words[0].split(".")[0] if words else "?"
        by_op[op] = by_op.get(op, 0.0) + samples(r)
    print("by opcode: " + ", ".join(f"{op} {100 * v / max(total, 1):.1f}%" for op, v in
                                    sorted(by_op.items(), key=lambda kv: -kv[1])[:12]))
    print(f"{len(lines)} SASS lines, {total:.0f} stall samples; the top 20:")
    for i, r in sorted(enumerate(lines), key=lambda ir: -samples(ir[1]))[:20]:
        print(f"  {i:5d} {samples(r):8.0f} {100 * samples(r) / max(total, 1):5.1f}%  {r.get('Source', '')[:70]}")


if __name__ == "__main__":
    main()
