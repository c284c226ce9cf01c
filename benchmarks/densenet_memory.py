"""Training memory of DenseNet-BC against depth, naive and memory-efficient.

For each depth L (DenseNet-BC, growth rate k, batch B at 32x32 on this
machine's device), ``keras_ultradeep.bench`` trains the naive model and the
``memory_efficient=True`` one in alternating worker processes (one per
configuration, so each peak is its own) and records peak memory and
throughput. The results go to a JSON file and a plot of peak memory against
depth (naive: quadratic in L; memory-efficient: linear).

    python benchmarks/densenet_memory.py --depths 40 100 190 250 --steps 2 \\
        --json docs/densenet_memory.json --plot docs/densenet_memory.png
    python benchmarks/densenet_memory.py --from-json docs/densenet_memory.json \\
        --plot docs/densenet_memory.png      # re-plot only
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def measure(depths, *, growth_rate, batch_size, steps, warmup, rounds, log=print):
    from keras_ultradeep import bench

    rows = []
    for depth in depths:
        runs = {False: [], True: []}
        for _ in range(rounds):
            for memory_efficient in (False, True):
                result = bench.benchmark(
                    "densenet_bc250_k24", mode="train", batch_size=batch_size, steps=steps,
                    warmup=warmup, input_size=32, memory_efficient=memory_efficient,
                    model_kwargs={"depth": depth, "growth_rate": growth_rate},
                )
                runs[memory_efficient].append(result)
                log(f"L={depth} memory_efficient={memory_efficient}: "
                    f"{result['peak_memory_mb']:.0f} MB, {result['images_per_sec']:.2f} images/s")
        row = {"depth": depth}
        for memory_efficient, key in ((False, "naive"), (True, "efficient")):
            peaks = sorted(r["peak_memory_mb"] for r in runs[memory_efficient])
            speeds = sorted(r["images_per_sec"] for r in runs[memory_efficient])
            row[key] = {
                "peak_memory_mb": peaks[len(peaks) // 2],
                "images_per_sec": speeds[len(speeds) // 2],
                "runs": [{k: r[k] for k in ("peak_memory_mb", "images_per_sec", "build_seconds")}
                         for r in runs[memory_efficient]],
            }
        row["memory_ratio"] = row["naive"]["peak_memory_mb"] / row["efficient"]["peak_memory_mb"]
        row["throughput_ratio"] = row["efficient"]["images_per_sec"] / row["naive"]["images_per_sec"]
        rows.append(row)
    return rows


def _atomic_write(path, write):
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, suffix=os.path.splitext(path)[1])
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    depths = [row["depth"] for row in rows]
    figure, axis = plt.subplots(figsize=(6, 4), dpi=120)
    for key, label, marker in (("naive", "naive", "o"), ("efficient", "memory_efficient=True", "s")):
        axis.plot(depths, [row[key]["peak_memory_mb"] / 1024 for row in rows], marker=marker, label=label)
    axis.set_xlabel("depth L (DenseNet-BC)")
    axis.set_ylabel("peak resident memory (GiB)")
    axis.set_title(
        f"DenseNet-BC (k={result['growth_rate']}) training, batch {result['batch_size']} "
        f"at 32x32, {result['device']}", fontsize=9,
    )
    axis.set_xticks(depths)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    _atomic_write(path, lambda p: figure.savefig(p, format="png"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[40, 100, 190, 250])
    parser.add_argument("--growth-rate", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per worker (median)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds per depth")
    parser.add_argument("--device", default="CPU", help="the machine, for the plot's title")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--from-json", help="plot these results instead of measuring")
    parser.add_argument("--plot", help="write the plot (PNG) here")
    args = parser.parse_args(argv)
    if args.from_json:
        with open(args.from_json) as handle:
            result = json.load(handle)
    else:
        result = {
            "growth_rate": args.growth_rate, "batch_size": args.batch_size, "steps": args.steps,
            "warmup": args.warmup, "rounds": args.rounds, "device": args.device,
            "rows": measure(args.depths, growth_rate=args.growth_rate, batch_size=args.batch_size,
                            steps=args.steps, warmup=args.warmup, rounds=args.rounds),
        }
        if args.json:
            text = json.dumps(result, indent=1)
            _atomic_write(args.json, lambda p: Path(p).write_text(text))
    for row in result["rows"]:
        print(f"L={row['depth']:4d}  naive {row['naive']['peak_memory_mb']:9.0f} MB "
              f"{row['naive']['images_per_sec']:7.2f} img/s   efficient "
              f"{row['efficient']['peak_memory_mb']:9.0f} MB {row['efficient']['images_per_sec']:7.2f} img/s"
              f"   memory /{row['memory_ratio']:.2f}, throughput x{row['throughput_ratio']:.2f}")
    if args.plot:
        plot(result, args.plot)


if __name__ == "__main__":
    main()
