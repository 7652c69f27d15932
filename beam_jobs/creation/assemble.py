"""Dataset assembly: validated labels -> a vocabulary, uploader-disjoint splits, a released layout.

Rules (each one's outcome is in the report, `creation_report.md` / `.json` in the dataset's doc folder):
- Vocabulary: a class is kept when it is labelable (not `abstract`/`blacklist`) and at least `min_clips`
  clips carry it or one of its descendants. Every other class is merged into its nearest kept ancestor
  (the fewest steps up; among equals the one with more clips, then by name), or dropped when it has none.
  Labels are then propagated up to every kept ancestor, as in FSD50K. Names follow FSD50K's spelling
  (`, ` -> `_and_`, spaces -> `_`).
- Development/evaluation split by uploader: an uploader's clips all go to one side. Uploaders are taken
  from the smallest (fewest clips, then fewest classes) up; one goes to evaluation while that brings its
  classes closer to `eval_share` of their clips than it overshoots them, and the evaluation set holds less
  than `eval_share` of all clips. Small uploaders thus fill the evaluation set, as in FSD50K.
- Train/validation inside development: the `uploader` strategy of beam_jobs.splits (no within-class
  uploader contamination), `val_fraction` of the clips.
- FSDnoisy18k variant (single label): a clip validated with exactly one class is verified
  (`manually_verified=1`); a clip without an accepted label but with exactly one candidate class that the
  raters did not reject is noisy (its nominated label). Verified clips of evaluation uploaders form the
  test set; the other verified clips and the noisy clips of development uploaders form the train set;
  `noisy_small` marks as many noisy clips as there are verified train clips.
Every gathered clip is written or excluded with its reason (`clip_fates.csv`); audio is copied (WAV) or
converted to 16-bit WAV, or linked with `audio=link` on a local disk.

    python -m beam_jobs.creation.assemble --nomination_dir NOM --validation_dir VAL --output_dir OUT
        [--release_format fsd50k|fsdnoisy18k] [--min_clips 20] [--eval_share 0.2] [--val_fraction 0.15]
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import os
from collections import Counter, defaultdict

import apache_beam as beam
import soundfile
from apache_beam.io.filesystems import FileSystems

from beam_jobs import splits
from beam_jobs.contracts.manifest import ManifestRow
from beam_jobs.contracts.publish import publishing
from beam_jobs.contracts.storage import csv_line, join, read_json, write_bytes, write_text
from beam_jobs.creation.nominate import REPORT_FILE as NOMINATION_REPORT, RAW_COPY, read_candidates, read_clips
from beam_jobs.creation.raw import ONTOLOGY_FILE
from beam_jobs.creation.validate import (ACCEPTED, PP_PNP_FILE, REJECTED, REPORT_FILE as VALIDATION_REPORT,
                                         format_share, read_ratings)
from beam_jobs.datasets import fsd50k as fsd50k_layout
from beam_jobs.ontology import Ontology, load_ontology
from beam_jobs.runner import pipeline_options

RELEASE_FORMATS = ("fsd50k", "fsdnoisy18k")
AUDIO_MODES = ("copy", "link")
DOC_DIRS = {"fsd50k": "FSD50K.doc", "fsdnoisy18k": "FSDnoisy18k.doc"}
FATES_FILE = "clip_fates.csv"
REPORT_JSON, REPORT_MARKDOWN = "creation_report.json", "creation_report.md"


@dataclasses.dataclass(frozen=True)
class CreationParams:
    release_format: str = "fsd50k"
    min_clips: int = 20
    eval_share: float = 0.2
    val_fraction: float = 0.15
    seed: int = 0
    audio: str = "copy"

    def __post_init__(self):
        if self.release_format not in RELEASE_FORMATS:
            raise ValueError(f"release_format {self.release_format!r}: expected one of {RELEASE_FORMATS}")
        if self.audio not in AUDIO_MODES:
            raise ValueError(f"audio {self.audio!r}: expected one of {AUDIO_MODES}")
        if self.min_clips < 1:
            raise ValueError(f"min_clips must be at least 1, got {self.min_clips}")
        for name in ("eval_share", "val_fraction"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)}")


def release_name(name: str) -> str:
    """FSD50K's spelling of an AudioSet class name: `Accelerating, revving, vroom` ->
    `Accelerating_and_revving_and_vroom`."""
    return name.replace(", ", "_and_").replace(",", "_and_").replace(" ", "_")


# ---------------------------------------------------------------- vocabulary ----

class Vocabulary:
    """The kept classes and where every other class's labels go."""

    def __init__(self, labels_of: dict[str, set[str]], ontology: Ontology, min_clips: int):
        self.ontology, self.min_clips = ontology, min_clips
        self.clips = defaultdict(set)  # class -> clips carrying it or a descendant
        for clip, labels in labels_of.items():
            for label in labels:
                for node in {label} | ontology.ancestors(label):
                    self.clips[node].add(clip)
        self.kept = {node for node, clips in self.clips.items()
                     if ontology.labelable(node) and len(clips) >= min_clips}
        self.annotated = {label for labels in labels_of.values() for label in labels}

    def resolve(self, node: str) -> str | None:
        """The kept class that a label of `node` becomes: itself or its nearest kept ancestor."""
        level = {node}
        while level:
            kept = [candidate for candidate in level if candidate in self.kept]
            if kept:
                return min(kept, key=lambda candidate: (-len(self.clips[candidate]), self.ontology.names[candidate]))
            level = {parent for member in level for parent in self.ontology.parents[member]}
        return None

    def labels(self, nodes) -> tuple[str, ...]:
        """Resolved labels propagated to every kept ancestor (sorted ids); () when all were dropped."""
        resolved = {self.resolve(node) for node in nodes} - {None}
        propagated = set(resolved)
        for node in resolved:
            propagated |= self.ontology.ancestors(node) & self.kept
        return tuple(sorted(propagated))

    def merges(self) -> list[dict]:
        rows = []
        for node in sorted(self.annotated - self.kept, key=lambda node: self.ontology.names[node]):
            target = self.resolve(node)
            reason = ("restricted " + "/".join(sorted(self.ontology.restrictions[node]))
                      if not self.ontology.labelable(node) else f"{len(self.clips[node])} clips < {self.min_clips}")
            rows.append({"class": self.ontology.names[node], "clips": len(self.clips[node]), "reason": reason,
                         "into": self.ontology.names[target] if target else None})
        return rows


# ---------------------------------------------------------------- development / evaluation ----

def split_dev_eval(rows: list[ManifestRow], eval_share: float, seed: int) -> tuple[set[str], dict]:
    """(evaluation uploaders, report) under the rule in the module docstring."""
    clips_of, classes_of = Counter(), defaultdict(Counter)
    for row in rows:
        clips_of[row.uploader] += 1
        classes_of[row.uploader].update(row.labels)
    totals = Counter(label for row in rows for label in row.labels)
    target = {label: eval_share * count for label, count in totals.items()}

    def order(uploader):
        tiebreak = hashlib.sha256(f"{seed}:{uploader}".encode()).hexdigest()
        return clips_of[uploader], len(classes_of[uploader]), tiebreak

    in_eval, eval_counts, eval_clips = set(), Counter(), 0
    for uploader in sorted(clips_of, key=order):
        if eval_clips + clips_of[uploader] > eval_share * len(rows):
            continue
        counts = classes_of[uploader]
        gain = sum(min(count, max(0.0, target[label] - eval_counts[label])) for label, count in counts.items())
        overshoot = sum(max(0.0, eval_counts[label] + count - target[label]) - max(0.0, eval_counts[label] -
                        target[label]) for label, count in counts.items())
        if gain > overshoot:
            in_eval.add(uploader)
            eval_counts.update(counts)
            eval_clips += clips_of[uploader]
    sizes = {side: sorted(clips_of[u] for u in clips_of if (u in in_eval) == (side == "eval"))
             for side in ("dev", "eval")}
    report = {"eval_share": eval_share, "uploaders": {side: len(sizes[side]) for side in sizes},
              "median_uploader_clips": {side: sizes[side][len(sizes[side]) // 2] if sizes[side] else 0
                                        for side in sizes},
              "eval_clips": eval_clips, "dev_clips": len(rows) - eval_clips}
    return in_eval, report


# ---------------------------------------------------------------- clip decisions ----

@dataclasses.dataclass
class Decisions:
    """What each gathered clip becomes: {clip: (split, labels, flags)} and {clip: reason} for the rest."""
    written: dict[str, tuple[str, tuple[str, ...], dict]]
    excluded: dict[str, str]
    vocabulary: Vocabulary
    report: dict


def _no_label_reason(clip: str, candidates: dict, ratings: dict) -> str:
    if not candidates.get(clip):
        return "no candidate label (no keyword in its tags or text)"
    decisions = {ratings.get((clip, node), {}).get("decision") for node in candidates[clip]}
    if decisions == {REJECTED}:
        return "every candidate rejected by the raters"
    return "no candidate accepted by the raters (unresolved or not voted)"


def decide_clips(records, candidates: dict[str, set[str]], ratings: dict, ontology: Ontology,
                 params: CreationParams) -> Decisions:
    labelled = defaultdict(set)  # clip -> accepted classes (voted pairs, nominated or not)
    for (clip, node), rating in ratings.items():
        if rating["decision"] == ACCEPTED:
            labelled[clip].add(node)
    gathered = {record.clip_id for record in records}
    labelled = {clip: nodes for clip, nodes in labelled.items() if clip in gathered}
    vocabulary = Vocabulary(labelled, ontology, params.min_clips)
    uploader = {record.clip_id: record.uploader for record in records}
    excluded, labels = {}, {}  # labels: clip -> its classes in the dataset
    if params.release_format == "fsd50k":
        for record in records:
            clip = record.clip_id
            if clip not in labelled:
                excluded[clip] = _no_label_reason(clip, candidates, ratings)
            elif not (found := vocabulary.labels(labelled[clip])):
                excluded[clip] = f"its classes were dropped (no kept class above them, min_clips {params.min_clips})"
            else:
                labels[clip] = found
        rows = [ManifestRow(clip, "", "", found, uploader[clip]) for clip, found in labels.items()]
        eval_uploaders, split_report = split_dev_eval(rows, params.eval_share, params.seed)
        dev = [row for row in rows if row.uploader not in eval_uploaders]
        assignment = splits.uploader_split(dev, sorted(vocabulary.kept), params.val_fraction, params.seed)
        split_report["train_val"] = splits.contamination_report(dev, assignment, sorted(vocabulary.kept),
                                                                "uploader").to_dict()
        written = {row.clip_id: ("eval" if row.uploader in eval_uploaders else assignment[row.clip_id],
                                 row.labels, {}) for row in rows}
    else:
        kinds = {}
        for record in records:
            clip = record.clip_id
            resolved = {vocabulary.resolve(node) for node in labelled.get(clip, ())}
            open_candidates = {vocabulary.resolve(node) for node in candidates.get(clip, ())
                               if ratings.get((clip, node), {}).get("decision") != REJECTED}
            if clip in labelled:
                if None in resolved and len(resolved) == 1:
                    excluded[clip] = f"its class was dropped (no kept class above it, min_clips {params.min_clips})"
                elif len(resolved - {None}) > 1:
                    excluded[clip] = "validated with several classes (the format is single-label)"
                else:
                    labels[clip], kinds[clip] = tuple(resolved - {None}), "verified"
            elif len(open_candidates - {None}) == 1:
                labels[clip], kinds[clip] = tuple(open_candidates - {None}), "noisy"
            elif len(open_candidates - {None}) > 1:
                excluded[clip] = "several candidate classes and none validated (the format is single-label)"
            else:
                excluded[clip] = _no_label_reason(clip, candidates, ratings)
        verified = [ManifestRow(clip, "", "", labels[clip], uploader[clip]) for clip in labels
                    if kinds[clip] == "verified"]
        eval_uploaders, split_report = split_dev_eval(verified, params.eval_share, params.seed)
        written = {}
        for clip, found in labels.items():
            if uploader[clip] not in eval_uploaders:
                written[clip] = ("train", found, {"manually_verified": kinds[clip] == "verified"})
            elif kinds[clip] == "verified":
                written[clip] = ("test", found, {})
            else:
                excluded[clip] = "noisy clip of an uploader whose clips are in the test set"
        noisy = sorted((clip for clip, (split, _, flags) in written.items() if split == "train"
                        and not flags["manually_verified"]),
                       key=lambda clip: hashlib.sha256(f"{params.seed}:{clip}".encode()).hexdigest())
        verified_train = sum(split == "train" and flags["manually_verified"] for split, _, flags in written.values())
        small = set(noisy[:verified_train])
        for clip, (split, found, flags) in written.items():
            if split == "train":
                flags["noisy_small"] = clip in small
    report = {"split": split_report, "merges": vocabulary.merges()}
    return Decisions(written=written, excluded=excluded, vocabulary=vocabulary, report=report)


# ---------------------------------------------------------------- writing ----

def place_audio(source: str, destination: str, mode: str = "copy") -> str:
    """Copies a WAV clip (or links it, `mode` link, local disks only); converts other formats to 16-bit WAV."""
    is_wav = source.lower().endswith(".wav")
    if mode == "link" and is_wav:
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        os.symlink(os.path.abspath(source), destination)
        return destination
    with FileSystems.open(source) as handle:
        data = handle.read()
    if not is_wav:
        try:
            waveform, rate = soundfile.read(io.BytesIO(data), always_2d=True)
        except (RuntimeError, soundfile.LibsndfileError) as error:
            raise ValueError(f"{source}: cannot be decoded to convert it to WAV: {error}") from error
        buffer = io.BytesIO()
        soundfile.write(buffer, waveform, rate, subtype="PCM_16", format="WAV")
        data = buffer.getvalue()
    write_bytes(destination, data)
    return destination


def _csv(header, rows) -> str:
    return "".join(csv_line(row) + "\n" for row in ([header] if header else []) + list(rows))


def _fsd50k_files(decisions, records, names, pp_pnp) -> tuple[dict[str, str], dict[str, str]]:
    """({relative path: text}, {clip: relative audio path}) of the FSD50K layout."""
    vocabulary = sorted({node for _, labels, _ in decisions.written.values() for node in labels}, key=names.get)
    order = {node: index for index, node in enumerate(vocabulary)}
    truth, meta = fsd50k_layout.GROUND_TRUTH, fsd50k_layout.METADATA
    files = {f"{truth}/vocabulary.csv": _csv(None, [(i, names[node], node) for i, node in enumerate(vocabulary)])}

    def row(clip):
        labels = sorted(decisions.written[clip][1], key=order.get)
        return [clip, ",".join(names[node] for node in labels), ",".join(labels)]

    by_split = defaultdict(list)
    for clip in sorted(decisions.written, key=lambda clip: (len(clip), clip)):
        by_split["eval" if decisions.written[clip][0] == "eval" else "dev"].append(clip)
    files[f"{truth}/dev.csv"] = _csv(fsd50k_layout.DEV_HEADER,
                                     [row(clip) + [decisions.written[clip][0]] for clip in by_split["dev"]])
    files[f"{truth}/eval.csv"] = _csv(fsd50k_layout.EVAL_HEADER, [row(c) for c in by_split["eval"]])
    for side in ("dev", "eval"):
        info = {clip: {"title": records[clip].title, "description": records[clip].description,
                       "tags": list(records[clip].tags), "license": records[clip].license,
                       "uploader": records[clip].uploader} for clip in by_split[side]}
        files[f"{meta}/{side}_clips_info_FSD50K.json"] = json_text(info)
    files[f"{meta}/pp_pnp_ratings_FSD50K.json"] = json_text({clip: pp_pnp[clip] for clip in decisions.written
                                                              if clip in pp_pnp})
    audio = {clip: f"{fsd50k_layout.EVAL_AUDIO if side == 'eval' else fsd50k_layout.DEV_AUDIO}/{clip}.wav"
             for side, clips in by_split.items() for clip in clips}
    return files, audio


def _fsdnoisy18k_files(decisions, names) -> tuple[dict[str, str], dict[str, str]]:
    train, test, audio = [], [], {}
    for clip in sorted(decisions.written, key=lambda clip: (len(clip), clip)):
        split, (node,), flags = decisions.written[clip]
        if split == "train":
            train.append([f"{clip}.wav", names[node], node, int(flags["manually_verified"]), int(flags["noisy_small"])])
        else:
            test.append([f"{clip}.wav", names[node], node])
        audio[clip] = f"FSDnoisy18k.audio_{split}/{clip}.wav"
    files = {"FSDnoisy18k.meta/train.csv": _csv(["fname", "label", "aso_id", "manually_verified", "noisy_small"],
                                                train),
             "FSDnoisy18k.meta/test.csv": _csv(["fname", "label", "aso_id"], test)}
    return files, audio


def json_text(value) -> str:
    return json.dumps(value, indent=1, sort_keys=True)


def _class_table(decisions, names, release_format) -> list[dict]:
    counts = defaultdict(Counter)
    for split, labels, flags in decisions.written.values():
        side = split if release_format == "fsd50k" else (
            "test" if split == "test" else "verified" if flags["manually_verified"] else "noisy")
        for node in labels:
            counts[names[node]][side] += 1
    return [{"class": name, **dict(counts[name])} for name in sorted(counts)]


def creation_markdown(report: dict) -> str:
    lines = [f"# Dataset creation ({report['params']['release_format']} layout)", "",
             f"Written to `{report['output_dir']}`.", "",
             f"{report['clips_gathered']} clips gathered ({report['raw_rejected']} metadata records rejected before); "
             f"{report['clips_written']} written, {report['clips_excluded']} excluded.", "",
             "## Nomination", "", f"{report['nomination']['candidates']} candidate labels; "
             f"{report['nomination']['clips_without_candidates']} clips without any.", "",
             "## Validation", "", f"Rule: accepted with >= {report['validation']['min_agreement']} present votes "
             "outnumbering absent ones; rejected likewise for absent votes; otherwise unresolved.",
             f"Decisions: {report['validation']['decisions']}; Krippendorff's alpha (all classes): "
             f"{format_share(report['validation']['alpha'])}", "", "## Vocabulary", "",
             f"{len(report['vocabulary'])} classes kept (min_clips {report['params']['min_clips']}).", ""]
    if report["merges"]:
        lines += ["| class | clips | why | merged into |", "|---|---:|---|---|"]
        lines += [f"| {m['class']} | {m['clips']} | {m['reason']} | {m['into'] or '(dropped)'} |"
                  for m in report["merges"]]
    else:
        lines.append("No class merged or dropped.")
    split = report["split"]
    lines += ["", "## Splits", "", f"Uploaders: {split['uploaders']['dev']} development, {split['uploaders']['eval']} "
              f"evaluation (median clips per uploader: {split['median_uploader_clips']}); uploaders on both sides: "
              f"{report['uploaders_on_both_sides']}.", ""]
    if "train_val" in split:
        lines += [f"Train/validation: {split['train_val']['train_clips']} / {split['train_val']['val_clips']} clips, "
                  f"within-class uploader contamination {split['train_val']['wc_contamination']}.", ""]
    sides = sorted({key for row in report["classes"] for key in row if key != "class"})
    lines += ["| class | " + " | ".join(sides) + " |", "|---|" + "---:|" * len(sides)]
    lines += [f"| {row['class']} | " + " | ".join(str(row.get(side, 0)) for side in sides) + " |"
              for row in report["classes"]]
    lines += ["", "## Excluded clips", "", "| reason | clips |", "|---|---:|"]
    lines += [f"| {reason} | {count} |" for reason, count in report["excluded_reasons"].items()]
    return "\n".join(lines) + "\n"


def assemble(nomination_dir: str, validation_dir: str, output_dir: str, params: CreationParams = CreationParams(),
             beam_args: list[str] | None = None) -> dict:
    """Writes the dataset in `params.release_format`'s layout under `output_dir`; returns the report."""
    records = {record.clip_id: record for record in read_clips(nomination_dir)}
    if params.audio == "link" and (FileSystems.get_scheme(output_dir) or any(
            FileSystems.get_scheme(record.audio_path) for record in records.values())):
        raise ValueError("audio=link makes symbolic links: the clips and the output must be on a local disk")
    ontology = load_ontology(join(nomination_dir, RAW_COPY, ONTOLOGY_FILE))
    candidates = {line["clip"]: {candidate["class"] for candidate in line["candidates"]}
                  for line in read_candidates(nomination_dir)}
    ratings = {(rating["clip"], rating["class"]): rating for rating in read_ratings(validation_dir)}
    decisions = decide_clips(list(records.values()), candidates, ratings, ontology, params)
    names = {node: release_name(name) for node, name in ontology.names.items()}
    used = {node for _, labels, _ in decisions.written.values() for node in labels}
    clashes = Counter(names[node] for node in used)
    if any(count > 1 for count in clashes.values()):
        raise ValueError(f"classes whose names coincide in the release spelling: "
                         f"{[name for name, count in clashes.items() if count > 1]}")
    expected = ("train", "val", "eval") if params.release_format == "fsd50k" else ("train", "test")
    present = Counter(split for split, _, _ in decisions.written.values())
    if any(not present[split] for split in expected):
        raise ValueError(f"the {params.release_format} layout needs the splits {expected}; these clips fill "
                         f"{dict(present)} (more clips, a lower min_clips or another eval_share may help)")
    if params.release_format == "fsd50k":
        files, audio = _fsd50k_files(decisions, records, names, read_json(join(validation_dir, PP_PNP_FILE)))
    else:
        files, audio = _fsdnoisy18k_files(decisions, names)
    eval_side = {"eval", "test"}
    uploaders = defaultdict(set)
    for clip, (split, _, _) in decisions.written.items():
        uploaders[records[clip].uploader].add(split in eval_side)
    nomination = read_json(join(nomination_dir, NOMINATION_REPORT))
    report = {
        "params": dataclasses.asdict(params), "output_dir": output_dir, "nomination_dir": nomination_dir,
        "validation_dir": validation_dir, "clips_gathered": len(records), "raw_rejected": len(nomination["rejected"]),
        "clips_written": len(decisions.written), "clips_excluded": len(decisions.excluded),
        "nomination": {key: nomination[key] for key in ("candidates", "clips_without_candidates")},
        "validation": {key: read_json(join(validation_dir, VALIDATION_REPORT))[key]
                       for key in ("min_agreement", "decisions", "alpha")},
        "vocabulary": sorted(names[node] for node in used), "merges": decisions.report["merges"],
        "split": decisions.report["split"], "classes": _class_table(decisions, names, params.release_format),
        "splits": dict(present), "uploaders_on_both_sides": sum(len(sides) > 1 for sides in uploaders.values()),
        "excluded_reasons": dict(Counter(decisions.excluded.values()).most_common())}
    doc = DOC_DIRS[params.release_format]
    fates = [(clip, decisions.written[clip][0] if clip in decisions.written else "excluded",
              decisions.excluded.get(clip, "")) for clip in sorted(records, key=lambda clip: (len(clip), clip))]
    files.update({f"{doc}/{REPORT_JSON}": json_text(report), f"{doc}/{REPORT_MARKDOWN}": creation_markdown(report),
                  f"{doc}/{FATES_FILE}": _csv(["clip", "fate", "reason"], fates)})
    with publishing(output_dir, "assemble") as publication:
        for relative, text in files.items():
            write_text(join(publication.staging, relative), text)
        with beam.Pipeline(options=pipeline_options(beam_args or [])) as pipeline:
            _ = (pipeline | "Clips" >> beam.Create(sorted((records[clip].audio_path, join(publication.staging, path))
                                                          for clip, path in audio.items()))
                 | "PlaceAudio" >> beam.MapTuple(place_audio, mode=params.audio))
        publication.summary.update(clips=len(decisions.written), excluded=len(decisions.excluded),
                                   release_format=params.release_format)
    return report


def run(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nomination_dir", required=True)
    parser.add_argument("--validation_dir", required=True)
    parser.add_argument("--output_dir", required=True)
    defaults = CreationParams()
    for field in dataclasses.fields(CreationParams):
        parser.add_argument(f"--{field.name}", type=type(getattr(defaults, field.name)),
                            default=getattr(defaults, field.name))
    args, beam_args = parser.parse_known_args(argv)
    params = CreationParams(**{field.name: getattr(args, field.name) for field in dataclasses.fields(CreationParams)})
    return assemble(args.nomination_dir, args.validation_dir, args.output_dir, params, beam_args)


if __name__ == "__main__":
    result = run()
    print(f"{result['clips_written']} clips written, {result['clips_excluded']} excluded; splits {result['splits']}")
