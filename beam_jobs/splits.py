"""Train/validation split strategies for a development set, and their uploader-contamination report.

- random: clips drawn at random.
- iterative stratification (Sechidis et al., 2011): multi-label stratification, the rarest label first.
- uploader: clips of one uploader that share a class are kept together (no within-class, WC,
  contamination), then those groups are stratified; one uploader may still have clips of different
  classes on both sides (between-class, BC, sharing), as in FSD50K.

WC contamination: (uploader, class) pairs with clips of that class in both train and val.
BC contamination: (uploader, class) pairs in val whose uploader has train clips, none of that class.
Every strategy is deterministic from its seed.
"""
from __future__ import annotations

import dataclasses
import json
from collections import defaultdict

import numpy as np

from beam_jobs.contracts.manifest import DatasetError, Manifest, ManifestRow
from beam_jobs.contracts.storage import join, read_json

TRAIN, VAL = "train", "val"
STRATEGIES = ("random", "iterative_stratification", "uploader")
SPLIT_REPORT_FILE = "split_report.json"  # beside the manifest it describes


@dataclasses.dataclass
class SplitReport:
    strategy: str
    train_clips: int
    val_clips: int
    wc_contamination: int
    bc_contamination: int
    val_share: dict[str, float]  # per class: share of its clips in val
    applied: str = ""  # the strategy actually applied (differs from `strategy` only with a note)
    note: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def split_report_file(report: SplitReport) -> dict[str, str]:
    """{name: text} of the report, to publish beside the manifest it describes."""
    return {SPLIT_REPORT_FILE: json.dumps(report.to_dict(), indent=1)}


def read_split_report(manifest_dir: str) -> dict:
    return read_json(join(manifest_dir, SPLIT_REPORT_FILE), "a manifest written by a split step")


def _desired(total: float, val_fraction: float) -> np.ndarray:
    return np.array([total * (1 - val_fraction), total * val_fraction])


def stratify(label_counts: list[np.ndarray], sizes: list[int], val_fraction: float, seed: int) -> list[int]:
    """Iterative stratification of weighted items (a clip, or a group of clips) into [train, val].

    `label_counts[i]` is item i's number of clips per class, `sizes[i]` its number of clips. Returns the
    fold (0 train, 1 val) of each item.
    """
    rng = np.random.default_rng(seed)
    counts = np.asarray(label_counts, dtype=float)
    desired_total = _desired(float(sum(sizes)), val_fraction)
    desired_label = np.stack(_desired(counts.sum(axis=0), val_fraction))  # (2, classes)
    fold = np.full(len(sizes), -1)
    remaining_per_label = counts.sum(axis=0)
    holders = [np.flatnonzero(counts[:, label] > 0) for label in range(counts.shape[1])]

    def assign(item, fold_index):
        fold[item] = fold_index
        desired_total[fold_index] -= sizes[item]
        desired_label[fold_index] -= counts[item]
        remaining_per_label[:] -= counts[item]

    while (remaining_per_label > 0).any():
        label = int(np.argmin(np.where(remaining_per_label > 0, remaining_per_label, np.inf)))
        for item in rng.permutation(holders[label][fold[holders[label]] < 0]):
            wants = desired_label[:, label]
            best = np.flatnonzero(wants == wants.max())
            if len(best) > 1:
                best = best[desired_total[best] == desired_total[best].max()]
            assign(item, int(rng.choice(best)))
    for item in rng.permutation(np.flatnonzero(fold < 0)):  # items without labels
        assign(item, int(np.argmax(desired_total)))
    return fold.tolist()


def _label_vector(row: ManifestRow, index: dict[str, int]) -> np.ndarray:
    vector = np.zeros(len(index))
    vector[[index[label] for label in row.labels]] = 1
    return vector


def random_split(rows: list[ManifestRow], vocabulary, val_fraction: float, seed: int) -> dict[str, str]:
    order = np.random.default_rng(seed).permutation(len(rows))
    n_val = round(val_fraction * len(rows))
    val = {rows[i].clip_id for i in order[:n_val]}
    return {row.clip_id: VAL if row.clip_id in val else TRAIN for row in rows}


def iterative_stratification_split(rows: list[ManifestRow], vocabulary, val_fraction: float,
                                   seed: int) -> dict[str, str]:
    index = {label: i for i, label in enumerate(vocabulary)}
    folds = stratify([_label_vector(row, index) for row in rows], [1] * len(rows), val_fraction, seed)
    return {row.clip_id: (TRAIN, VAL)[f] for row, f in zip(rows, folds)}


def uploader_groups(rows: list[ManifestRow]) -> list[list[int]]:
    """Connected groups of clips: two clips of one uploader that share any class belong together.

    Clips without an uploader are groups of their own.
    """
    parent = list(range(len(rows)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_of = {}
    for i, row in enumerate(rows):
        if not row.uploader:
            continue
        for label in row.labels:
            key = (row.uploader, label)
            if key in first_of:
                parent[find(i)] = find(first_of[key])
            else:
                first_of[key] = i
    groups = defaultdict(list)
    for i in range(len(rows)):
        groups[find(i)].append(i)
    return list(groups.values())


def stratify_groups(rows: list[ManifestRow], groups: list[list[int]], vocabulary, fraction: float,
                    seed: int) -> list[int]:
    """`stratify` over groups of clips (indices into `rows`): the fold of each group."""
    index = {label: i for i, label in enumerate(vocabulary)}
    return stratify([sum(_label_vector(rows[i], index) for i in group) for group in groups],
                    [len(group) for group in groups], fraction, seed)


def uploader_split(rows: list[ManifestRow], vocabulary, val_fraction: float, seed: int) -> dict[str, str]:
    groups = uploader_groups(rows)
    folds = stratify_groups(rows, groups, vocabulary, val_fraction, seed)
    return {rows[i].clip_id: (TRAIN, VAL)[f] for group, f in zip(groups, folds) for i in group}


SPLITTERS = {"random": random_split, "iterative_stratification": iterative_stratification_split,
             "uploader": uploader_split}
UPLOADER_FALLBACK = "iterative_stratification"  # for datasets without uploaders (FSDnoisy18k, FSDKaggle2019)


def contamination_report(rows: list[ManifestRow], assignment: dict[str, str], vocabulary,
                         strategy: str) -> SplitReport:
    classes_of = {TRAIN: defaultdict(set), VAL: defaultdict(set)}  # split -> uploader -> classes
    per_class = defaultdict(lambda: [0, 0])
    for row in rows:
        split = assignment[row.clip_id]
        for label in row.labels:
            per_class[label][split == VAL] += 1
            if row.uploader:
                classes_of[split][row.uploader].add(label)
    wc = sum(len(classes & classes_of[TRAIN].get(uploader, set())) for uploader, classes in classes_of[VAL].items())
    bc = sum(len(classes - classes_of[TRAIN][uploader]) for uploader, classes in classes_of[VAL].items()
             if uploader in classes_of[TRAIN])
    n_val = sum(split == VAL for split in assignment.values())
    return SplitReport(strategy=strategy, train_clips=len(assignment) - n_val, val_clips=n_val,
                       wc_contamination=wc, bc_contamination=bc,
                       val_share={label: per_class[label][1] / max(1, sum(per_class[label])) for label in vocabulary})


def resplit(manifest: Manifest, strategy: str, val_fraction: float = 0.15, seed: int = 0,
            dev_splits: tuple[str, ...] = (TRAIN, VAL)) -> tuple[Manifest, SplitReport]:
    """Reassigns the clips of the development splits to train/val with a strategy; other splits stay."""
    if strategy not in SPLITTERS:
        raise ValueError(f"Unknown split strategy {strategy!r}; expected one of {STRATEGIES}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    dev = [row for row in manifest.rows if row.split in dev_splits]
    if len(dev) < 2:
        raise ValueError(f"need at least 2 clips in splits {dev_splits} to split, found {len(dev)}")
    applied, note = strategy, ""
    if strategy == "uploader" and not any(row.uploader for row in dev):
        applied = UPLOADER_FALLBACK
        note = (f"the dataset records no uploader ({manifest.source.get('format', 'this format')} ships none), so the "
                f"uploader split cannot keep an uploader's clips together: split with {applied} instead; "
                "within-class uploader contamination is unknown")
        print(f"split: {note}", flush=True)
    assignment = SPLITTERS[applied](dev, manifest.vocabulary, val_fraction, seed)
    n_val = sum(split == VAL for split in assignment.values())
    if not 0 < n_val < len(dev):
        raise ValueError(f"the {strategy} split of {len(dev)} clips at val_fraction {val_fraction} leaves "
                         f"{n_val} val and {len(dev) - n_val} train clips; both must be non-empty (use more "
                         f"clips or another val_fraction)")
    rows = tuple(dataclasses.replace(row, split=assignment[row.clip_id]) if row.clip_id in assignment else row
                 for row in manifest.rows)
    report = dataclasses.replace(contamination_report(dev, assignment, manifest.vocabulary, strategy),
                                 applied=applied, note=note)
    return dataclasses.replace(manifest, rows=rows, source={**manifest.source, "split_strategy": strategy}), report


def subsample_split(manifest: Manifest, fraction: float, seed: int = 0, split: str = TRAIN) -> Manifest:
    """Keeps a random `fraction` of one split's clips (the others are dropped), to study train-set size."""
    if not 0 < fraction <= 1:
        raise ValueError(f"train fraction must be in (0, 1], got {fraction}")
    members = sorted(row.clip_id for row in manifest.rows if row.split == split)
    keep = max(1, round(fraction * len(members)))
    kept = set(np.random.default_rng(seed).permutation(members)[:keep].tolist())
    rows = tuple(row for row in manifest.rows if row.split != split or row.clip_id in kept)
    return dataclasses.replace(manifest, rows=rows, source={**manifest.source, f"{split}_fraction": fraction})


def select_train_pool(manifest: Manifest, source_splits: tuple[str, ...], flag: str = "",
                      held_out_splits: tuple[str, ...] = ("test", "eval")) -> Manifest:
    """The clips to train (and validate) on, as one `train` split, next to the held-out splits.

    `source_splits`: the splits the pool is drawn from (FSDKaggle2019: train_curated or train_noisy);
    `flag`: keep only clips whose dataset flag is set ("manually_verified": FSDnoisy18k's clean subset),
    or unset ("!manually_verified": its noisy subset); "" keeps every clip. Other clips are dropped.
    """
    wanted = flag.lstrip("!")
    missing = [split for split in source_splits if split not in manifest.splits]
    if missing:
        raise ValueError(f"splits {missing} not in the dataset (it has {list(manifest.splits)})")

    def in_pool(row: ManifestRow) -> bool:
        if row.split not in source_splits:
            return False
        if not wanted:
            return True
        if wanted not in row.flags:
            raise ValueError(f"clip {row.clip_id} has no flag {wanted!r} (flags: {sorted(row.flags)})")
        return bool(row.flags[wanted]) != flag.startswith("!")

    rows = tuple(dataclasses.replace(row, split=TRAIN) if in_pool(row) else row
                 for row in manifest.rows if in_pool(row) or row.split in held_out_splits)
    if not any(row.split == TRAIN for row in rows):
        raise ValueError(f"no clips in splits {list(source_splits)} with flag {flag!r}")
    return dataclasses.replace(manifest, rows=rows, source={**manifest.source, "train_pool": list(source_splits),
                                                            "train_flag": flag})


# A dataset without held-out splits (a folder of class folders): ingest makes the ones an experiment needs.
HELD_OUT_SPLITS = ("eval", "test")
HELD_OUT_FRACTION = 0.2  # of all clips, as FSD50K's eval set is about a fifth of the clips
MADE_VAL_FRACTION = 0.15  # of the development clips
MADE_SPLITS_FILE = "made_splits.json"  # beside the manifest, when ingest made its splits


def source_of(row: ManifestRow) -> str:
    """A clip's source: its non-empty `uploader` field (a reader's grouping key), or the clip itself."""
    return row.uploader or f"clip:{row.clip_id}"


def source_groups(rows: list[ManifestRow]) -> list[list[int]]:
    """Clips of one source together."""
    groups = defaultdict(list)
    for i, row in enumerate(rows):
        groups[source_of(row)].append(i)
    return list(groups.values())


def _split_groups(rows: list[ManifestRow], vocabulary, fraction: float, seed: int) -> list[bool]:
    """Per clip: whether it goes to the `fraction` side, whole groups stratified by class. A side that
    stratification leaves empty (groups large against the share wanted of a class) gets one of the smallest
    groups, so that the split exists."""
    groups = source_groups(rows)
    folds = stratify_groups(rows, groups, vocabulary, fraction, seed)
    if len(groups) > 1 and not any(folds):
        smallest = [g for g, group in enumerate(groups) if len(group) == min(map(len, groups))]
        folds[int(np.random.default_rng(seed).choice(smallest))] = 1
    chosen = [False] * len(rows)
    for group, fold in zip(groups, folds):
        for i in group:
            chosen[i] = bool(fold)
    return chosen


def make_splits(manifest: Manifest, needed: list[str], seed: int) -> tuple[Manifest, dict]:
    """The held-out split (eval or test: the one `needed` names) and, if needed, val, carved out of a dataset
    whose clips are all `train`: whole groups of one source on one side (`source_groups`), stratified by class,
    deterministic from `seed`. Returns the new manifest and the report of what was made."""
    held_out = [split for split in needed if split in HELD_OUT_SPLITS]
    rows = list(manifest.rows)
    if {row.split for row in rows} != {TRAIN} or len(held_out) > 1:
        raise ValueError(f"make_splits takes a dataset whose clips are all train and needs at most one of "
                         f"{HELD_OUT_SPLITS}; got splits {manifest.splits}, needed {needed}")
    made_splits = [TRAIN, *held_out, *([VAL] if VAL in needed else [])]
    sources = len(source_groups(rows))
    if sources < len(made_splits):
        raise DatasetError(f"{manifest.source.get('root', '')}: {sources} sources (grouped by "
                           f"{manifest.source.get('grouped_by') or 'clip'}) cannot make the splits {made_splits}, "
                           "which need one source each at least")
    assignment = [TRAIN] * len(rows)
    if held_out:
        chosen = _split_groups(rows, manifest.vocabulary, HELD_OUT_FRACTION, seed)
        assignment = [held_out[0] if out else TRAIN for out in chosen]
    if VAL in needed:
        dev = [i for i, split in enumerate(assignment) if split == TRAIN]
        chosen = _split_groups([rows[i] for i in dev], manifest.vocabulary, MADE_VAL_FRACTION, seed + 1)
        for i, out in zip(dev, chosen):
            assignment[i] = VAL if out else TRAIN
    made = tuple(dataclasses.replace(row, split=split) for row, split in zip(rows, assignment))
    groups = {split: len({source_of(row) for row in made if row.split == split})
              for split in sorted(set(assignment))}
    per_class = {label: {split: sum(row.split == split and label in row.labels for row in made)
                         for split in sorted(set(assignment))} for label in manifest.vocabulary}
    report = {"made_by": "ingest", "seed": seed, "held_out": held_out[0] if held_out else "",
              "held_out_fraction": HELD_OUT_FRACTION, "val_fraction": MADE_VAL_FRACTION if VAL in needed else 0,
              "grouped_by": manifest.source.get("grouped_by", ""),
              "clips": {split: assignment.count(split) for split in sorted(set(assignment))}, "groups": groups,
              "per_class": per_class}
    source = {**manifest.source, "made_splits": {key: report[key] for key in ("held_out", "seed", "clips")}}
    return dataclasses.replace(manifest, rows=made, source=source), report
