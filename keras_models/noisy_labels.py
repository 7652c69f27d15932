"""The noisy-labels study's summary: accuracy per train set and loss, and per instance-selection approach."""
from __future__ import annotations

SELECTION_ORDER = {"none": 0, "batch_discard": 1, "pruning": 2}


def variant_name(row: dict) -> str:
    name = f"{row['train_set']}_{row['loss']}"
    return name + (f"_{row['selection']}" if row.get("selection") else "")


def summary_markdown(rows: list[dict]) -> str:
    grid = sorted((row for row in rows if not row.get("selection")), key=lambda row: (row["train_set"], row["loss"]))
    selection = sorted((row for row in rows if row.get("selection")),
                       key=lambda row: SELECTION_ORDER.get(row["selection"], 99))
    lines = ["# Noisy labels", "", "Test-set accuracy of single-label models (top-1 of the clip score).", "",
             "## Train set x loss", "", "| train set | loss | accuracy | balanced accuracy |", "|---|---|---:|---:|"]
    lines += [f"| {row['train_set']} | {row['loss']} | {row['accuracy']:.4f} | {row['balanced_accuracy']:.4f} |"
              for row in grid]
    if selection:
        lines += ["", "## Loss-based instance selection", "",
                  "Stage 1 trains with the loss below; stage 2 continues from that checkpoint with no selection, "
                  "with in-batch discarding of the largest losses, or on the train set pruned of its "
                  "highest-loss clips.", "",
                  "| train set | loss | stage 2 | accuracy | balanced accuracy |", "|---|---|---|---:|---:|"]
        lines += [f"| {row['train_set']} | {row['loss']} | {row['selection']} | {row['accuracy']:.4f} | "
                  f"{row['balanced_accuracy']:.4f} |" for row in selection]
    return "\n".join(lines) + "\n"
