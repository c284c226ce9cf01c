"""The PNG of a run's training curves (matplotlib, Agg backend)."""

from __future__ import annotations

__all__ = ["plot_history"]


def plot_history(history, path, title=None):
    """Writes loss and accuracy per epoch (train and validation) to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI

    epochs = [entry["epoch"] for entry in history]
    figure = Figure(figsize=(10, 4), dpi=100)
    for index, key in enumerate(("loss", "accuracy"), start=1):
        axes = figure.add_subplot(1, 2, index)
        for prefix, style in (("", "-"), ("val_", "--")):
            values = [entry.get(prefix + key) for entry in history]
            if any(v is not None for v in values):
                label = ("validation " if prefix else "train ") + key
                axes.plot(epochs, values, style, marker="o", markersize=3, label=label)
        if key == "accuracy" and any("top5_accuracy" in entry for entry in history):
            axes.plot(epochs, [e.get("val_top5_accuracy") for e in history], ":", label="validation top-5")
        axes.set_xlabel("epoch")
        axes.set_ylabel(key)
        axes.grid(alpha=0.3)
        axes.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, format="png")
