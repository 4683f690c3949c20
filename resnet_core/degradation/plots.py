"""The lab's figures: training curves and gradient flow at initialisation, plus the summary table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure

from .training import LabRun, _depth, _plain, model_name

__all__ = ["plot_curves", "plot_gradient_flow", "summary_table"]


def summary_table(runs: Sequence[LabRun]) -> str:
    """A Markdown table: final training loss, error and wall time per model and seed."""
    lines = ["| seed | model | final training loss | training error | wall time (s) |", "|---|---|---|---|---|"]
    for run in runs:
        for model in run.models.values():
            lines.append(
                f"| {run.config.seed} | {model.name} | {model.final_loss:.4f} | {model.final_error:.2%} "
                f"| {model.seconds:.1f} |"
            )
    return "\n".join(lines)


def plot_curves(runs: Sequence[LabRun]) -> Figure:
    """Training loss per step on a log scale, plain nets left and residual nets right, one line per seed.

    Both panels share the y axis so that "deeper plain is worse, deeper residual is better" reads at a glance.
    """
    figure = Figure(figsize=(10, 4), layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    depths = sorted({_depth(name) for run in runs for name in run.models})
    for ax, plain, title in zip(axes, (True, False), ("plain nets", "residual nets"), strict=True):
        for color, depth in enumerate(depths):
            name = model_name(depth, plain)
            finished = [run.models[name] for run in runs if name in run.models]
            for index, model in enumerate(finished):
                label = None
                if index == 0:
                    mean_loss = sum(m.final_loss for m in finished) / len(finished)
                    label = f"{name} ({'mean ' if len(finished) > 1 else ''}final loss {mean_loss:.3g})"
                ax.plot(model.losses, color=f"C{color}", linewidth=0.8, alpha=0.8, label=label)
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("SGD step")
        ax.grid(True, which="both", alpha=0.3)
        if ax.has_data():
            ax.legend()
    axes[0].set_ylabel("training loss (minibatch)")
    return figure


def plot_gradient_flow(flows: Mapping[str, Mapping[str, float]]) -> Figure:
    """Gradient norm per stage boundary, input side left, one line per model (log scale)."""
    figure = Figure(figsize=(6, 4), layout="constrained")
    ax = figure.subplots()
    for name, flow in flows.items():
        ax.plot(list(flow), list(flow.values()), marker="o", linestyle="--" if _plain(name) else "-", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("activation (input side left)")
    ax.set_ylabel("‖∂loss/∂activation‖ at initialisation")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return figure
