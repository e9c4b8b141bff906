"""The learning curves of a run as one PNG: loss, accuracies, and the measured Lipschitz bound."""

from __future__ import annotations

from pathlib import Path

from ..io.figures import finish_figure, pyplot


def plot_history(history: list[dict], path, title: str = "") -> Path | None:
    """Draw ``history`` (one dict per epoch, as the trainer records it) into ``path``; ``None`` when
    matplotlib is missing or there is nothing to draw."""
    if not history:
        return None
    plt = pyplot()
    if plt is None:
        return None
    epochs = [h["epoch"] for h in history]
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(13, 3.8))
    left.plot(epochs, [h["train_loss"] for h in history])
    left.set_title("training loss")
    middle.plot(epochs, [h["train_acc"] for h in history], label="train (clean)")
    middle.plot(epochs, [h["val_clean"] for h in history], label="validation clean")
    label = f"validation certified at {history[0]['select_eps']:.3g}"
    middle.plot(epochs, [h["val_certified"] for h in history], label=label)
    middle.set_ylim(0, 1)
    middle.legend(fontsize=8)
    middle.set_title("accuracy")
    right.plot(epochs, [h["lipschitz"] for h in history])
    right.set_title("certified Lipschitz bound L")
    for axis in (left, middle, right):
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
    return finish_figure(figure, path, title)
