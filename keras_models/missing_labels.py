"""The missing-labels study (teacher -> relabel at tc % -> student): one result row per tc, and the
summary that plots eval mAP and d' against tc (slide 128 of the thesis defence)."""
from __future__ import annotations

from keras_models.evaluate import evaluate_classifier
from keras_models.reports import figure_png, html_page, subplots


def evaluate_student(model_dir: str, features_dir: str, relabel_report: dict, train_clips: int) -> dict:
    """One row: tc, what the relabel job flagged (and how much of it was truly missing, on synthetic
    data), and the student's eval metrics."""
    scalars = evaluate_classifier(model_dir, features_dir, "eval").scalars
    row = {"tc_percent": relabel_report["tc_percent"], "train_clips": train_clips,
           "flagged": relabel_report["flagged"], "implicit_negatives": relabel_report["implicit_negatives"],
           "flag_precision": relabel_report.get("flag_precision"),
           **{key: scalars[key] for key in ("mAP", "d_prime", "lwlrap", "AUC")}}
    return row


def summary_table(rows: list[dict]) -> str:
    baseline = next((row for row in rows if row["tc_percent"] == 0), None)
    lines = ["| tc (%) | flagged | flag precision | eval mAP | vs tc = 0 | d' | lwlrap |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        precision = "-" if row["flag_precision"] is None else f"{row['flag_precision']:.3f}"
        delta = f"{row['mAP'] - baseline['mAP']:+.4f}" if baseline else "-"
        lines.append(f"| {row['tc_percent']:g} | {row['flagged']} | {precision} | {row['mAP']:.4f} | {delta} | "
                     f"{row['d_prime']:.3f} | {row['lwlrap']:.4f} |")
    return "\n".join(lines)


def curve_png(rows: list[dict]) -> bytes:
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


def summary_reports(rows: list[dict]) -> tuple[str, str, bytes]:
    """(Markdown, HTML with the plot embedded, PNG) of the tc sweep."""
    rows = sorted(rows, key=lambda row: row["tc_percent"])
    intro = (f"Students trained on {rows[0]['train_clips']} train clips whose top-scored tc % implicit negatives "
             "per class (by the teacher) are masked out of the loss; evaluated on the eval set. Flag precision "
             "is the share of flagged entries that are true positives the labels missed (synthetic data only).")
    table = summary_table(rows)
    png = curve_png(rows)
    markdown = f"# Missing labels: student mAP against tc\n\n{intro}\n\n{table}\n"
    return markdown, html_page("Missing labels: student mAP against tc", intro, table, png), png
