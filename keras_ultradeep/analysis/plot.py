"""PNG figures of the analyses' results (matplotlib, Agg backend, no pyplot)."""

from __future__ import annotations

import math
from pathlib import Path

from keras_ultradeep import files

__all__ = ["plot"]


def _figure(size):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=100)


def _lesion(figure, results):
    single, random = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    for result in results:
        label = f"{result['model']} ({result['kind']})"
        line = single.plot(
            [entry["index"] + 1 for entry in result["single"]], [entry["accuracy"] for entry in result["single"]],
            marker="o", markersize=3, label=label,
        )[0]
        single.axhline(result["baseline"], color=line.get_color(), linestyle=":", linewidth=1)
        random.errorbar(
            [entry["removed"] for entry in result["random"]], [entry["mean"] for entry in result["random"]],
            yerr=[entry["std"] for entry in result["random"]], marker="o", markersize=3, capsize=2, label=label,
        )
    chance = 1 / results[0]["classes"]
    for axes, xlabel, title in (
        (single, "block (or layer) removed", "Deleting one block (dotted: nothing deleted)"),
        (random, "blocks removed at random", "Deleting k blocks"),
    ):
        axes.axhline(chance, color="grey", linestyle="--", linewidth=1, label="chance")
        axes.set_xlabel(xlabel)
        axes.set_ylabel("accuracy")
        axes.set_ylim(0, 1.02)
        axes.set_title(title)
        axes.grid(alpha=0.3)
    random.legend(fontsize=8)


def _paths(figure, results):
    result = results[0]
    axes = figure.add_subplot(1, 3, 1)
    axes.bar(result["lengths"], result["path_fractions"])
    axes.set_title(f"Paths of each length ({result['blocks']} blocks)")
    axes.set_ylabel("fraction of paths")
    magnitude = figure.add_subplot(1, 3, 2)
    magnitude.plot(result["lengths"], result["gradient_magnitude"], marker="o", markersize=3)
    magnitude.set_yscale("log")
    magnitude.set_title("Gradient norm at the input, one path")
    total = figure.add_subplot(1, 3, 3)
    total.bar(result["lengths"], result["gradient_fractions"])
    low, high = result["effective_range"]
    total.axvspan(low - 0.5, high + 0.5, alpha=0.15, color="green", label=f"central 90%: {low}-{high}")
    total.set_title(f"Total gradient by length (mean {result['effective_length']:.1f})")
    total.legend(fontsize=8)
    for a in (axes, magnitude, total):
        a.set_xlabel("path length (residual branches taken)")
        a.grid(alpha=0.3)


def _reuse(figure, results):
    blocks = results[0]["blocks"]
    for index, block in enumerate(blocks):
        axes = figure.add_subplot(1, len(blocks), index + 1)
        rows = [[math.nan if value is None else value for value in row] for row in block["weights"]]
        # Rows are targets; drawn as the paper does: source on the vertical axis, target across.
        grid = [[rows[t][s] for t in range(len(rows))] for s in range(len(block["sources"]))]
        image = axes.imshow(grid, cmap="viridis", origin="upper", aspect="auto")
        transition = len(block["targets"]) == len(block["sources"])
        ticks = [str(t + 1) for t in range(len(block["targets"]))]
        if transition:
            ticks[-1] = "T"
        axes.set_xticks(range(len(ticks)), ticks, fontsize=7)
        axes.set_yticks(range(len(block["sources"])), range(len(block["sources"])), fontsize=7)
        axes.set_xlabel("target layer (T: transition or classifier)")
        axes.set_ylabel("source layer (0: block input)")
        axes.set_title(f"Dense block {index + 1}")
        figure.colorbar(image, ax=axes, fraction=0.046)


def _columns(figure, results):
    axes = figure.add_subplot(1, 1, 1)
    for offset, result in enumerate(results):
        labels = [f"column {c['column']} ({c['convolutions']} conv)" for c in result["columns"]] + ["whole"]
        values = [c["accuracy"] for c in result["columns"]] + [result["whole"]]
        axes.bar([i + 0.8 * offset / len(results) for i in range(len(values))], values,
                 width=0.8 / len(results), label=result["model"])
        axes.set_xticks(range(len(values)), labels, fontsize=8)
    axes.set_ylabel("accuracy")
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3, axis="y")
    axes.legend(fontsize=8)


def _stochastic_depth(figure, results):
    result = results[0]
    axes = figure.add_subplot(1, 2, 1)
    axes.bar(["scaled (p_l)", "unscaled"], [result["scaled"], result["unscaled"]])
    axes.set_ylim(0, 1.02)
    axes.set_ylabel("accuracy")
    axes.set_title("Test-time rule")
    if result["lesion"]:
        lesion = result["lesion"]
        other = figure.add_subplot(1, 2, 2)
        other.plot([e["index"] + 1 for e in lesion["single"]], [e["accuracy"] for e in lesion["single"]],
                   marker="o", markersize=3)
        other.axhline(lesion["baseline"], linestyle=":", color="grey")
        other.set_ylim(0, 1.02)
        other.set_xlabel("block removed")
        other.set_title("Deleting one block")


_PLOTS = {
    "lesion": (_lesion, (12, 4.5)),
    "paths": (_paths, (15, 4.5)),
    "reuse": (None, None),
    "columns": (_columns, (8, 4.5)),
    "stochastic_depth": (_stochastic_depth, (10, 4.5)),
}


def plot(results, path, title=None):
    """Writes the figure of one analysis result (or of several lesion or column
    results, drawn together) to ``path`` (PNG), atomically; returns the path."""
    results = [results] if isinstance(results, dict) else list(results)
    kinds = {result.get("analysis") if isinstance(result, dict) else None for result in results}
    if not results or len(kinds) != 1 or next(iter(kinds)) not in _PLOTS:
        raise ValueError(
            f"results: expected the result(s) of one analysis ({', '.join(_PLOTS)}), got {sorted(map(str, kinds))}"
        )
    kind = kinds.pop()
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"path: expected a .png file, got {str(path)!r}")
    if kind == "reuse":
        draw, size = _reuse, (5 * len(results[0]["blocks"]), 4.5)
    else:
        draw, size = _PLOTS[kind]
    figure = _figure(size)
    draw(figure, results)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    with files.atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    return path
