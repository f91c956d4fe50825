"""Figures: every plot the notebooks show, each optionally saved under the run folder.

Each function returns the matplotlib ``Figure`` and, when ``save_to`` is given, writes
it as PNG there (the run folder keeps figures next to ``metrics.json``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def _plt():
    # Imported lazily: notebooks use the inline backend, scripts and tests whatever is set (Agg headless).
    import matplotlib.pyplot as plt

    return plt


def _save(fig, save_to):
    if save_to:
        path = Path(save_to)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig


def class_count_bars(counts: pd.DataFrame, title: str = "Images per class and split", save_to=None):
    """Grouped bar chart of a :meth:`FERDataset.class_counts` table (totals dropped)."""
    import seaborn as sns

    plt = _plt()
    table = counts.drop(index="total", errors="ignore").drop(columns="total", errors="ignore")
    long = table.reset_index().melt(id_vars=table.index.name or "index", var_name="split", value_name="images")
    fig, ax = plt.subplots(figsize=(10, 4))
    sns.barplot(data=long, x=table.index.name or "index", y="images", hue="split", ax=ax)
    ax.set_title(title)
    ax.set_xlabel("")
    for container in ax.containers:
        ax.bar_label(container, fontsize=7)
    fig.tight_layout()
    return _save(fig, save_to)


def sample_grid(samples, title: str = "Samples per class", save_to=None):
    """Grid of images: one row per class from ``[(class_name, images), ...]``."""
    plt = _plt()
    samples = list(samples)
    cols = max((len(imgs) for _, imgs in samples), default=1)
    fig, axes = plt.subplots(len(samples), cols, figsize=(cols * 1.1, len(samples) * 1.2), squeeze=False)
    for r, (name, imgs) in enumerate(samples):
        for c in range(cols):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(imgs):
                ax.imshow(imgs[c], cmap="gray", vmin=0, vmax=255)
        axes[r][0].set_title(name, fontsize=9, loc="left")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, save_to)


def intensity_histograms(ds, bins: int = 32, save_to=None):
    """Pixel-intensity distribution per class (density), plus each class's mean face."""
    plt = _plt()
    k = ds.num_classes
    fig, axes = plt.subplots(2, k, figsize=(k * 1.8, 3.8), squeeze=False)
    for c, name in enumerate(ds.class_names):
        x = ds.images[ds.labels == c]
        ax = axes[0][c]
        if len(x):
            ax.hist(x.ravel(), bins=bins, range=(0, 255), density=True, color="steelblue")
            axes[1][c].imshow(x.mean(axis=0), cmap="gray", vmin=0, vmax=255)
        ax.set_title(name, fontsize=9)
        ax.set_yticks([])
        axes[1][c].axis("off")
    axes[1][0].set_title("mean face", fontsize=8, loc="left")
    fig.tight_layout()
    return _save(fig, save_to)


def heatmap(table: pd.DataFrame, title: str, fmt: str = "d", normalize_rows: bool = False, save_to=None,
            cmap: str = "Blues"):
    """Annotated heatmap of a table (confusion matrix, label agreement...)."""
    import seaborn as sns

    plt = _plt()
    data = table.astype(float)
    if normalize_rows:
        data = data.div(data.sum(axis=1).replace(0, np.nan), axis=0).fillna(0.0)
        fmt = ".2f"
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * data.shape[1], 0.8 + 0.6 * data.shape[0]))
    sns.heatmap(data, annot=True, fmt=fmt if normalize_rows or fmt != "d" else ".0f", cmap=cmap, cbar=False, ax=ax)
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, save_to)


def duplicate_examples(ds, dups: pd.DataFrame, n: int = 8, save_to=None):
    """Show up to ``n`` duplicate groups with conflicting labels or crossing splits (first two members each)."""
    plt = _plt()
    if dups.empty:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, "no duplicate images", ha="center")
        return _save(fig, save_to)
    pick = dups.sort_values(["conflicting", "cross_split", "n"], ascending=False).head(n)
    index = {s: i for i, s in enumerate(ds.source_ids)}
    fig, axes = plt.subplots(2, len(pick), figsize=(len(pick) * 1.5, 3.6), squeeze=False)
    for c, (_, g) in enumerate(pick.iterrows()):
        for r in range(2):
            ax = axes[r][c]
            ax.axis("off")
            if r < len(g.source_ids):
                i = index[g.source_ids[r]]
                ax.imshow(ds.images[i], cmap="gray", vmin=0, vmax=255)
                ax.set_title(f"{ds.class_names[ds.labels[i]]}\n{ds.splits[i]}", fontsize=7)
    fig.suptitle("Identical images: conflicting labels / crossing splits first")
    fig.tight_layout()
    return _save(fig, save_to)


def _nothing(plt, title: str, save_to):
    fig, ax = plt.subplots(figsize=(4, 1))
    ax.axis("off")
    ax.text(0.5, 0.5, f"{title}: nothing to show", ha="center", fontsize=8)
    return _save(fig, save_to)


def bar(series: pd.Series, title: str, ylabel: str = "", save_to=None):
    """Simple bar chart of a Series (an empty one: a figure that says so)."""
    plt = _plt()
    if len(series) == 0:
        return _nothing(plt, title, save_to)
    fig, ax = plt.subplots(figsize=(max(4, 0.7 * len(series)), 3))
    series.plot.bar(ax=ax, color="steelblue")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.bar_label(ax.containers[0], fontsize=8)
    fig.tight_layout()
    return _save(fig, save_to)


def learning_curves(histories: dict, save_to=None):
    """Loss and accuracy per epoch (train dashed, validation solid) for each model's history."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    for i, (name, h) in enumerate(histories.items()):
        color = f"C{i % 10}"
        for ax, metric in zip(axes, ("loss", "accuracy")):
            if metric in h:
                ax.plot(h["epoch"] + 1 if "epoch" in h else range(1, len(h) + 1), h[metric], "--", color=color,
                        alpha=0.7)
            if f"val_{metric}" in h:
                ax.plot(h["epoch"] + 1 if "epoch" in h else range(1, len(h) + 1), h[f"val_{metric}"], "-",
                        color=color, label=name, marker="o", ms=3)
    for ax, metric in zip(axes, ("loss", "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_title(f"{metric} (dashed: train, solid: validation)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, save_to)


def confusion_matrices(matrices: dict, class_names, normalized: bool = True, save_to=None):
    """Row-normalised (or count) confusion matrices side by side, one per model."""
    import seaborn as sns

    plt = _plt()
    n = len(matrices)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols)) if n else 1
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.4 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (name, cm) in zip(axes.ravel(), matrices.items()):
        ax.axis("on")
        cm = np.asarray(cm, dtype=float)
        sns.heatmap(cm, annot=True, fmt=".2f" if normalized else ".0f", cmap="Blues", cbar=False, ax=ax,
                    xticklabels=class_names, yticklabels=class_names, vmin=0, vmax=1 if normalized else None)
        ax.set_title(name)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
    fig.tight_layout()
    return _save(fig, save_to)


def explanation_grid(images, rows: dict, titles, save_to=None, title: str = ""):
    """Faces (top row) and, below, one row of heat-map overlays per explanation (Grad-CAM, CBAM maps...).

    Args:
        images: uint8 ``[N, H, W]`` faces.
        rows: ``{row label: [N, H, W] maps in [0, 1]}``.
        titles: per-column titles (e.g. class names, true/predicted).
    """
    from fer_utils.evaluate import overlay

    plt = _plt()
    n = len(images)
    fig, axes = plt.subplots(1 + len(rows), n, figsize=(1.5 * n, 1.6 * (1 + len(rows))), squeeze=False)
    for c in range(n):
        axes[0][c].imshow(images[c], cmap="gray", vmin=0, vmax=255)
        axes[0][c].set_title(titles[c], fontsize=7)
        for r, (label, maps) in enumerate(rows.items(), start=1):
            axes[r][c].imshow(overlay(images[c], maps[c]))
            if c == 0:
                axes[r][c].set_ylabel(label, fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, save_to)


def results_bars(table: pd.DataFrame, column: str, reference: dict | None = None, title: str = "", save_to=None):
    """Bar chart of one results column per model, with published reference values as markers."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(table)), 3.6))
    ax.bar(table.index, table[column], color="steelblue", label="ours")
    ax.bar_label(ax.containers[0], fmt="%.3f", fontsize=8)
    if reference:
        xs = [i for i, m in enumerate(table.index) if m in reference]
        ax.scatter(xs, [reference[table.index[i]] for i in xs], color="crimson", marker="D", zorder=3,
                   label="published")
        ax.legend(fontsize=8)
    ax.set_title(title or column)
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return _save(fig, save_to)


def gan_losses(losses: pd.DataFrame, smooth: int = 50, save_to=None):
    """D and G losses, the discriminator's accuracy on real and fake batches and (when logged) its auxiliary
    classifier's accuracy on real and generated faces, over steps (moving average)."""
    plt = _plt()
    window = max(1, min(smooth, len(losses) // 10 or 1))
    rolled = losses.set_index("step").rolling(window, min_periods=1).mean()
    classes = [c for c in ("class_acc_real", "class_acc_fake") if c in rolled]
    fig, axes = plt.subplots(1, 3 if classes else 2, figsize=(16 if classes else 11, 3.5))
    rolled[["d_loss", "g_loss"]].plot(ax=axes[0], title=f"losses (moving average of {window} steps)")
    rolled[["d_acc_real", "d_acc_fake"]].plot(ax=axes[1], title="discriminator accuracy", ylim=(0, 1))
    if classes:
        rolled[classes].plot(ax=axes[2], title="auxiliary classifier accuracy (in training, not a judge)",
                             ylim=(0, 1))
    for ax in axes:
        ax.set_xlabel("step")
    fig.tight_layout()
    return _save(fig, save_to)


def gan_progress(history: dict, class_names, per_class: int = 4, max_steps: int = 6, save_to=None):
    """Fixed-noise samples at several steps: one block of columns per step, one row per class."""
    plt = _plt()
    steps = sorted(history)
    if len(steps) > max_steps:
        steps = [steps[int(round(i))] for i in np.linspace(0, len(steps) - 1, max_steps)]
    fig, axes = plt.subplots(len(class_names), len(steps) * per_class, squeeze=False,
                             figsize=(len(steps) * per_class * 0.55, len(class_names) * 0.6))
    for j, step in enumerate(steps):
        images, labels = history[step]
        for c in range(len(class_names)):
            picks = images[labels == c][:per_class]
            for k in range(per_class):
                ax = axes[c][j * per_class + k]
                ax.axis("off")
                if k < len(picks):
                    ax.imshow(picks[k], cmap="gray", vmin=0, vmax=255)
            if j == 0:
                axes[c][0].set_title(class_names[c], fontsize=7, loc="left")
        axes[0][j * per_class].text(0, -14, f"step {step}", fontsize=8)
    fig.subplots_adjust(wspace=0.05, hspace=0.35)
    return _save(fig, save_to)


def image_pairs(top, bottom, titles, labels=("generated", "nearest training"), save_to=None):
    """Two rows of images compared column by column (e.g. generated faces and their nearest training face)."""
    plt = _plt()
    n = len(top)
    if n == 0:
        return _nothing(plt, f"no pairs to show ({labels[0]} / {labels[1]})", save_to)
    fig, axes = plt.subplots(2, max(n, 1), figsize=(max(n, 1) * 1.2, 2.8), squeeze=False)
    for i in range(n):
        for r, images in enumerate((top, bottom)):
            axes[r][i].imshow(images[i], cmap="gray", vmin=0, vmax=255)
            axes[r][i].axis("off")
        axes[0][i].set_title(titles[i], fontsize=7)
    axes[0][0].text(-4, 24, labels[0], rotation=90, fontsize=7, va="center", ha="right")
    axes[1][0].text(-4, 24, labels[1], rotation=90, fontsize=7, va="center", ha="right")
    fig.tight_layout()
    return _save(fig, save_to)


_SORT_JS = """<script>
(function () {
  var t = document.getElementById("%s");
  if (!t) return;
  t.querySelectorAll("thead th").forEach(function (th, col) {
    th.style.cursor = "pointer"; th.title = "click to sort";
    th.addEventListener("click", function () {
      var body = t.tBodies[0], rows = Array.from(body.rows), asc = th.dataset.asc !== "1";
      rows.sort(function (a, b) {
        var x = a.cells[col].innerText, y = b.cells[col].innerText, nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return asc ? c : -c;
      });
      th.dataset.asc = asc ? "1" : "0";
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
})();
</script>"""


def sortable_table(table: pd.DataFrame, float_format: str = "{:.4f}"):
    """The table as HTML whose columns sort on a click (in the rendered report; JupyterLab shows it plainly)."""
    import uuid

    from IPython.display import HTML

    tid = f"sortable-{uuid.uuid4().hex[:8]}"
    html = table.to_html(table_id=tid, index=False, float_format=float_format.format, na_rep="-")
    return HTML(html + _SORT_JS % tid)


def tuning_cost(cost: pd.DataFrame, save_to=None):
    """Each strategy's cost (epochs) against the best validation accuracy it found, one panel per model."""
    plt = _plt()
    models = list(dict.fromkeys(cost.model))
    fig, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models), 3.4), squeeze=False)
    for ax, model in zip(axes[0], models):
        sub = cost[cost.model == model]
        ax.scatter(sub.epochs, sub.best_val_accuracy, s=40, color="steelblue")
        for _, r in sub.iterrows():
            ax.annotate(f"{r.tuner}\n{r.trials} trials, {r.wall_seconds:.0f} s", (r.epochs, r.best_val_accuracy),
                        fontsize=7, xytext=(4, 4), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("epochs trained (log)")
        ax.set_ylabel("best validation accuracy")
        ax.set_title(model)
    fig.tight_layout()
    return _save(fig, save_to)


def tuning_marginals(trials: pd.DataFrame, space: dict, score: str = "val_accuracy", save_to=None):
    """Validation accuracy against each hyperparameter: one point per completed non-Hyperband trial."""
    plt = _plt()
    done = trials[(trials.status == "COMPLETED") & (trials.tuner != "hyperband")]
    names = list(space)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), squeeze=False, sharey=True)
    rng = np.random.default_rng(0)
    for ax, name in zip(axes[0], names):
        levels = [str(v) for v in space[name]]
        for model, sub in done.groupby("model") if "model" in done else [("", done)]:
            x = np.array([levels.index(str(v)) if str(v) in levels else np.nan for v in sub[name]], dtype=float)
            ax.scatter(x + rng.uniform(-0.12, 0.12, len(x)), sub[score], s=14, alpha=0.7, label=model or None)
        means = [done[done[name].astype(str) == lv][score].mean() for lv in levels]
        ax.plot(range(len(levels)), means, color="black", marker="_", markersize=18, lw=0, label="mean")
        ax.set_xticks(range(len(levels)), levels, rotation=30, fontsize=8)
        ax.set_title(name)
    axes[0][0].set_ylabel(score)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, save_to)


def forest(table: pd.DataFrame, split: str = "", save_to=None):
    """Accuracy and macro-F1 per model with their bootstrap intervals (one row per model; none: a figure that says
    so)."""
    plt = _plt()
    if not len(table) or "accuracy" not in table:
        return _nothing(plt, "no model runs to compare", save_to)
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(table) + 1.6), sharey=True, squeeze=False)
    y = np.arange(len(table))
    for ax, metric in zip(axes[0], ("accuracy", "macro_f1")):
        v, lo, hi = table[metric], table[f"{metric} low"], table[f"{metric} high"]
        ax.errorbar(v, y, xerr=[v - lo, hi - v], fmt="o", color="steelblue", capsize=3)
        ax.set_xlabel(f"{metric} ({split})" if split else metric)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(y, table.index)
    axes[0][0].invert_yaxis()
    fig.suptitle("95% percentile bootstrap intervals" if len(table) else "no model runs found")
    fig.tight_layout()
    return _save(fig, save_to)


def time_to_accuracy(curves: pd.DataFrame, reference: dict | None = None, save_to=None):
    """Validation accuracy against cumulative training minutes, one line per run (``recipe.time_to_accuracy``).

    ``reference``: horizontal lines ``{label: accuracy}`` (e.g. the peer's test accuracy), drawn dotted.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for i, (run, g) in enumerate(curves.groupby("run", sort=False)):
        ax.plot(g["minutes"], g["val_accuracy"], "-o", ms=3, color=f"C{i % 10}", label=run)
    for j, (label, acc) in enumerate((reference or {}).items()):
        ax.axhline(acc, ls=":", color="0.4")
        ax.annotate(label, (0, acc), xytext=(2, 2 + 10 * j), textcoords="offset points", fontsize=8, color="0.3")
    ax.set_xlabel("training wall time (minutes)")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Time to accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _save(fig, save_to)
