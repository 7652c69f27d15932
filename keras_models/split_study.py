"""The split study: how well validation mAP predicts evaluation mAP under each split strategy."""
from __future__ import annotations

from keras_models.evaluate import evaluate_classifier


def evaluate_strategy(model_dir: str, features_dir: str, split_report: dict) -> dict:
    """One row of the study: the strategy's contamination, val and eval mAP, and their gap."""
    val = evaluate_classifier(model_dir, features_dir, "val").scalars
    evaluation = evaluate_classifier(model_dir, features_dir, "eval").scalars
    return {"strategy": split_report["strategy"], "wc_contamination": split_report["wc_contamination"],
            "bc_contamination": split_report["bc_contamination"], "train_clips": split_report["train_clips"],
            "val_clips": split_report["val_clips"], "val_mAP": val["mAP"], "eval_mAP": evaluation["mAP"],
            "gap": val["mAP"] - evaluation["mAP"], "val_d_prime": val["d_prime"], "eval_d_prime": evaluation["d_prime"]}


def summary_markdown(rows: list[dict]) -> str:
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
