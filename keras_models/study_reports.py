"""Each study's result rows and summary: Markdown tables, and HTML pages with matplotlib plots for the KFP UI.

The per-variant tasks of a study write one JSON row each (`read_result_rows` gathers them); the summaries
here turn the rows into the tables the README quotes.
"""
from __future__ import annotations

import base64
import html
import io
import json

from keras_models.evaluate import evaluate_classifier
from keras_models.separation import checkpoint_label
from keras_models.shift import AXES, SHIFTS


def read_result_rows(paths: list[str]) -> list[dict]:
    """The JSON rows that a study's per-variant evaluation tasks wrote, for its summary."""
    rows = []
    for path in paths:
        with open(path) as handle:
            rows.append(json.load(handle))
    return rows


def figure_png(figure) -> bytes:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def subplots(*args, **kwargs):
    """matplotlib's subplots on the file-only Agg backend (tasks have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def html_page(title: str, intro: str, markdown_table: str, *pngs: bytes) -> str:
    """A self-contained page (the images inline): what the KFP UI shows for an HTML artifact."""
    title, intro = html.escape(title), html.escape(intro)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(cell.strip())}</td>" for cell in line.strip("|").split("|"))
                   + "</tr>" for line in markdown_table.splitlines() if not line.startswith("|---"))
    images = "".join(f"<img src='data:image/png;base64,{base64.b64encode(png).decode()}'/>" for png in pngs)
    return f"<html><body><h1>{title}</h1><p>{intro}</p><table border='1'>{rows}</table>{images}</body></html>"


# ---------------------------------------------------------------- split study ----

def split_strategy_row(model_dir: str, features_dir: str, split_report: dict) -> dict:
    """One row of the study: the strategy's contamination, val and eval mAP, and their gap."""
    val = evaluate_classifier(model_dir, features_dir, "val").scalars
    evaluation = evaluate_classifier(model_dir, features_dir, "eval").scalars
    return {"strategy": split_report["strategy"], "wc_contamination": split_report["wc_contamination"],
            "bc_contamination": split_report["bc_contamination"], "train_clips": split_report["train_clips"],
            "val_clips": split_report["val_clips"], "val_mAP": val["mAP"], "eval_mAP": evaluation["mAP"],
            "gap": val["mAP"] - evaluation["mAP"], "val_d_prime": val["d_prime"], "eval_d_prime": evaluation["d_prime"]}


def split_study_markdown(rows: list[dict]) -> str:
    rows = sorted(rows, key=lambda row: row["strategy"])
    lines = ["# Split study: validation as a proxy for evaluation", "",
             "One model per train/val split strategy of the same development set, evaluated on its own val "
             "split and on the eval set (uploaders not seen in development). gap = val mAP - eval mAP: a "
             "large positive gap means validation is overly optimistic.", "",
             "| strategy | WC contamination | BC contamination | train / val clips | val mAP | eval mAP | gap |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['strategy']} | {row['wc_contamination']} | {row['bc_contamination']} | "
                     f"{row['train_clips']} / {row['val_clips']} | {row['val_mAP']:.4f} | {row['eval_mAP']:.4f} | "
                     f"{row['gap']:+.4f} |")
    lines += ["", "WC contamination: (uploader, class) pairs with clips in both train and val. "
              "BC contamination: (uploader, class) pairs in val whose uploader has train clips of other classes only."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- shift invariance ----

def _shift_variant(row: dict) -> str:
    return f"{row['pooling']}" + (f" + mixup {row['mixup_alpha']:g}" if row["mixup_alpha"] else "")


def shift_table(rows: list[dict]) -> str:
    head = "| variant | mAP | d' | " + " | ".join(f"{axis[0]}{shift}" for axis in AXES for shift in SHIFTS) + " |"
    lines = [head, "|---" * (3 + len(AXES) * len(SHIFTS)) + "|"]
    for row in rows:
        cells = [f"{row['consistency'][axis][str(shift)]:.1f}" for axis in AXES for shift in SHIFTS]
        lines.append(f"| {_shift_variant(row)} | {row['mAP']:.4f} | {row['d_prime']:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def consistency_plot_png(rows: list[dict]) -> bytes:
    figure, axes = subplots(1, len(AXES), figsize=(10, 4), sharey=True)
    for axis_plot, axis in zip(axes, AXES):
        for row in rows:
            values = [row["consistency"][axis][str(shift)] for shift in SHIFTS]
            axis_plot.plot(SHIFTS, values, marker="o", label=_shift_variant(row))
        axis_plot.set_xlabel(f"{axis} shift ({'frames' if axis == 'time' else 'bands'})")
        axis_plot.set_xticks(SHIFTS)
        axis_plot.grid(alpha=0.3)
    axes[0].set_ylabel("classification consistency (%)")
    axes[-1].legend(fontsize=7)
    return figure_png(figure)


def shift_invariance_reports(rows: list[dict]) -> tuple[str, str, bytes]:
    """(Markdown, HTML with the plot embedded, PNG) of the shift-invariance study."""
    rows = sorted(rows, key=lambda row: (row["pooling"], row["mixup_alpha"]))
    intro = ("Classification consistency: % of eval clips whose top-1 class is unchanged when every patch "
             "is shifted by t1/t3/t5 frames in time or f1/f3/f5 bands in frequency.")
    table = shift_table(rows)
    png = consistency_plot_png(rows)
    markdown = f"# Shift invariance\n\n{intro}\n\n{table}\n"
    return markdown, html_page("Shift invariance", intro, table, png), png


# ---------------------------------------------------------------- noisy labels ----

SELECTION_ORDER = {"none": 0, "batch_discard": 1, "pruning": 2}


def variant_name(row: dict) -> str:
    name = f"{row['train_set']}_{row['loss']}"
    return name + (f"_{row['selection']}" if row.get("selection") else "")


def noisy_labels_markdown(rows: list[dict]) -> str:
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


# ---------------------------------------------------------------- missing labels ----

def student_row(model_dir: str, features_dir: str, relabel_report: dict, train_clips: int) -> dict:
    """One row: tc, what the relabel job flagged (and how much of it was truly missing, on synthetic
    data), and the student's eval metrics."""
    scalars = evaluate_classifier(model_dir, features_dir, "eval").scalars
    return {"tc_percent": relabel_report["tc_percent"], "train_clips": train_clips,
            "flagged": relabel_report["flagged"], "implicit_negatives": relabel_report["implicit_negatives"],
            "flag_precision": relabel_report.get("flag_precision"),
            **{key: scalars[key] for key in ("mAP", "d_prime", "lwlrap", "AUC")}}


def missing_labels_table(rows: list[dict]) -> str:
    baseline = next((row for row in rows if row["tc_percent"] == 0), None)
    lines = ["| tc (%) | flagged | flag precision | eval mAP | vs tc = 0 | d' | lwlrap |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        precision = "-" if row["flag_precision"] is None else f"{row['flag_precision']:.3f}"
        delta = f"{row['mAP'] - baseline['mAP']:+.4f}" if baseline else "-"
        lines.append(f"| {row['tc_percent']:g} | {row['flagged']} | {precision} | {row['mAP']:.4f} | {delta} | "
                     f"{row['d_prime']:.3f} | {row['lwlrap']:.4f} |")
    return "\n".join(lines)


def missing_labels_png(rows: list[dict]) -> bytes:
    figure, axes = subplots(1, 2, figsize=(10, 4))
    tcs = [row["tc_percent"] for row in rows]
    for axis, key, name in ((axes[0], "mAP", "eval mAP"), (axes[1], "d_prime", "eval d'")):
        axis.plot(tcs, [row[key] for row in rows], marker="o")
        axis.axhline(rows[0][key], color="grey", linestyle="--", linewidth=1, label="tc = 0 (no relabelling)")
        axis.set_xlabel("tc: % of implicit negatives flagged per class")
        axis.set_ylabel(name)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return figure_png(figure)


def missing_labels_reports(rows: list[dict]) -> tuple[str, str, bytes]:
    """(Markdown, HTML with the plot embedded, PNG) of the tc sweep."""
    rows = sorted(rows, key=lambda row: row["tc_percent"])
    intro = (f"Students trained on {rows[0]['train_clips']} train clips whose top-scored tc % implicit negatives "
             "per class (by the teacher) are masked out of the loss; evaluated on the eval set. Flag precision "
             "is the share of flagged entries that are true positives the labels missed (synthetic data only).")
    table = missing_labels_table(rows)
    png = missing_labels_png(rows)
    markdown = f"# Missing labels: student mAP against tc\n\n{intro}\n\n{table}\n"
    return markdown, html_page("Missing labels: student mAP against tc", intro, table, png), png


# ---------------------------------------------------------------- contrastive SSL ----

METHODS = ("knn", "linear", "fine_tuned", "scratch")


def contrastive_markdown(rows: list[dict]) -> str:
    """The downstream table: one row per train set, one column per way of using the labels."""
    by_set = {}
    for row in rows:
        by_set.setdefault(row["train_set"], {})[row["method"]] = row["balanced_accuracy"]
    lines = ["# Contrastive self-supervised pretraining: downstream evaluation", "",
             "Balanced (macro) top-1 accuracy on the test set. kNN and linear evaluation use the frozen "
             "pretrained embedding; fine-tuning trains the pretrained encoder end to end; scratch trains the "
             "same architecture from random weights.", "",
             "| train set | " + " | ".join(METHODS) + " |", "|---|" + "---:|" * len(METHODS)]
    for train_set, values in sorted(by_set.items()):
        cells = [f"{values[method]:.4f}" if method in values else "-" for method in METHODS]
        lines.append(f"| {train_set} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- separation-based SSL ----

def separation_ssl_markdown(rows: list[dict], separation_rows: list[dict]) -> str:
    """The downstream table (one row per setting) and the separator's SI-SNR improvement per checkpoint."""
    lines = ["# Self-supervised learning from separated sound scenes", "",
             "Shallow classifier on the frozen embedding of each pretrained encoder; clip-level mAP and d' on "
             "the evaluation split.", "",
             "| setting | proxy tasks | view b | separator checkpoints | mAP | d' |", "|---|---|---|---|---:|---:|"]
    for row in sorted(rows, key=lambda row: -row["mAP"]):
        checkpoints = ", ".join("last" if int(step) == -1 else str(int(step)) for step in row.get("checkpoints", []))
        checkpoints = checkpoints or "all"
        if row["view"] == "mixture":
            checkpoints = "-"
        lines.append(f"| {row['name']} | {row['proxy_tasks'].upper()} | {row['view']} | {checkpoints} | "
                     f"{row['mAP']:.4f} | {row['d_prime']:.3f} |")
    lines += ["", "## Separator", "", "| checkpoint step | mean SI-SNRi (dB) | median SI-SNRi (dB) |",
              "|---:|---:|---:|"]
    lines += [f"| {checkpoint_label(row['step'])} | {row['mean_si_snri']:.2f} | {row['median_si_snri']:.2f} |"
              for row in separation_rows]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- DCASE2019 Task 2 ----

def dcase2019_markdown(rows: dict[str, dict]) -> str:
    """{training scheme: its test metrics (lwlrap, mAP)} side by side."""
    lines = ["# DCASE2019 Task 2: test set", "", "| training | lwlrap | mAP |", "|---|---:|---:|"]
    lines += [f"| {name} | {metrics['lwlrap']:.4f} | {metrics['mAP']:.4f} |" for name, metrics in rows.items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- DCASE2018 Task 2 ----

def dcase2018_markdown(rows: list[dict]) -> str:
    """The test MAP@3 (the challenge's metric) and accuracies of each train set's model."""
    lines = ["# DCASE2018 Task 2: test set", "", "MAP@3 = mean over clips of 1/rank of the true class among the "
             "three top-scored (0 when absent).", "", "| train set | train clips | MAP@3 | accuracy | "
             "balanced accuracy | test clips |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {row['train_set']} | {row['train_clips']} | {row['map_at_3']:.4f} | {row['accuracy']:.4f} | "
              f"{row['balanced_accuracy']:.4f} | {row['clips']} |" for row in rows]
    return "\n".join(lines) + "\n"
