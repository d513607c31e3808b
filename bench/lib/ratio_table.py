"""Markdown rows comparing berth with etcd from two result files of store_bench lines.

Each line is `scenario ops/s p50_ms p99_ms [server_cpu_us_per_op [generator_cpu_us_per_op]]`,
one per round; `rss_kib KiB` once. Every figure is the median over the rounds; ratio =
berth / etcd, with each round's ratio too.
Usage: ratio_table.py ETCD_FILE BERTH_FILE [--cpu]   (--cpu adds the CPU columns: the server's
and the generator's own, per operation)
"""

import statistics
import sys


def load(path):
    runs = {}
    with open(path) as f:
        for line in f:
            name, *vals = line.split()
            runs.setdefault(name, []).append([float(v) for v in vals])
    return runs


def main():
    etcd, berth = load(sys.argv[1]), load(sys.argv[2])
    with_cpu = "--cpu" in sys.argv[3:]

    def med(rows, i):
        return statistics.median(r[i] for r in rows)

    def cpu(rows, i=3):
        # CPU time per operation (user + system): the server's (3), the generator's own (4),
        # where the generator measured it.
        return f"{med(rows, i):.1f}" if all(len(r) > i for r in rows) else ""

    for name, e in etcd.items():
        b = berth[name]
        if name == "rss_kib":
            blanks = "| " * (9 if with_cpu else 5)
            print(f"| RSS after 100k keys (KiB) | {e[0][0]:.0f} | {b[0][0]:.0f} "
                  f"| {b[0][0] / e[0][0]:.2f} {blanks}|")
            continue
        per_round = " ".join(f"{y[0] / x[0]:.2f}" for x, y in zip(e, b))
        row = (f"| {name} | {med(e, 0):.0f} | {med(b, 0):.0f} | {med(b, 0) / med(e, 0):.2f} "
               f"| {per_round} | {med(e, 1):.3f} | {med(b, 1):.3f} | {med(e, 2):.3f} "
               f"| {med(b, 2):.3f} |")
        if with_cpu:
            row += f" {cpu(e)} | {cpu(b)} | {cpu(e, 4)} | {cpu(b, 4)} |"
        print(row)


main()
