#!/usr/bin/env python3
"""Share of a training step's CPU time by category, Tessera (perf) beside PyTorch
(torch.profiler), as one Markdown table.

    profile_step.py PERF_REPORT.txt TORCH_PROFILE.json

PERF_REPORT.txt: `perf report --no-children --sort sym` of `tessera-<domain> bench-step`;
TORCH_PROFILE.json: written by `mae_step_torch.py --profile`. benchmarks/profile_step.sh
makes both. Categories are matched on symbol and operator names; what matches none is
"other". PyTorch's self times cover only its operators (not the Python around them), so
both columns are shares of what each profiler attributed.
"""

import json
import re
import sys

CATEGORIES = [
    ("GEMM (linear layers and attention products)", [r"gemm", r"aten::(mm|addmm|bmm)$", r"mkl", r"sgemm"]),
    ("softmax, layer norm, GELU, bias (fused kernels / aten)", [
        r"tessera_core::(ops|attention)", r"softmax", r"layer_norm", r"gelu", r"aten::_softmax"]),
    ("optimiser", [r"tessera_train::optim", r"aten::(lerp_|addcmul_|addcdiv_|_foreach)", r"Optimizer"]),
    ("element-wise (candle binary/unary maps, aten add/mul/...)", [
        r"binary_map", r"unary_map", r"Map1", r"Map2", r"aten::(add|mul|div|sub|sqrt|sum|add_|mul_|neg|pow|exp|sin|cos|var|mean|linalg_vector_norm|clamp)"]),
    ("copies, fills, gathers (memset/memmove, aten copy_/fill_/cat/index)", [
        r"memset", r"memmove", r"memcpy", r"copy_strided", r"aten::(copy_|fill_|zero_|cat|index|clone|contiguous|empty|gather|scatter|_to_copy)"]),
    ("allocation and page faults", [r"malloc", r"free", r"page_fault", r"clear_page", r"memcg", r"mmap", r"\[k\] .*(alloc|mm_)"]),
    ("threads: waiting, spinning, scheduling", [
        r"rayon", r"__rust_begin_short_backtrace", r"Barrier", r"futex", r"sched", r"finish_task_switch", r"spin", r"try_to_wake_up", r"sched_yield"]),
]


def category(name):
    for label, pats in CATEGORIES:
        if any(re.search(p, name) for p in pats):
            return label
    return "other"


def perf_shares(path):
    shares = {}
    for line in open(path, encoding="utf-8", errors="replace"):
        m = re.match(r"\s*([0-9.]+)%\s+(\[[.k]\]\s+.*)$", line)
        if m:
            c = category(m.group(2))
            shares[c] = shares.get(c, 0.0) + float(m.group(1))
    return shares


def torch_shares(path):
    d = json.load(open(path))
    ops = {k: v for k, v in d["self_ms_per_step"].items() if not k.startswith("ProfilerStep")}
    total = sum(ops.values()) or 1.0
    shares = {}
    for k, v in ops.items():
        c = category(k)
        shares[c] = shares.get(c, 0.0) + 100.0 * v / total
    return shares


def main():
    t, p = perf_shares(sys.argv[1]), torch_shares(sys.argv[2])
    print("| category | Tessera (perf, % of samples) | PyTorch (profiler, % of operator self time) |")
    print("|---|---:|---:|")
    for label in [c[0] for c in CATEGORIES] + ["other"]:
        print(f"| {label} | {t.get(label, 0.0):.1f} | {p.get(label, 0.0):.1f} |")


if __name__ == "__main__":
    main()
