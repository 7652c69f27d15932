"""Synthetic raw material for dataset creation, with its truth known (a Beam job, deterministic from --seed).

The clips are the synthetic generator's (beam_jobs.synthetic: twelve leaf classes under four parents,
uploaders with specialties). Around them, what Freesound and its raters would give:
- metadata records in the shape of Freesound's API (`id`, `username`, `name`, `tags`, `description`,
  `license`). Each sound in a clip is tagged with one of its class's word forms (`whistling`, `Wind-Chimes`,
  `windchime`) with probability `tag_recall`; otherwise with a typo or not at all. Parents are tagged now
  and then; a tag of a class that is not in the clip is added with probability `false_tag`; generic tags
  (`field-recording`, ...) and titles complete the records. `Trill` is poorly tagged (`rare_tag_recall`),
  so that it ends with too few clips and is merged into its parent.
- an ontology in AudioSet's schema where `Pulse` is restricted `abstract`, and keyword lists per class
  (`Pulse` has one too, which must nominate nothing);
- `votes.csv`: the candidates the project's own nomination finds, each voted by two raters of known
  accuracy (a third when they disagree on presence); `vote_coverage` of the candidates get votes.
`raw_truth.jsonl` holds each clip's true classes and predominant classes (ontology ids), `raters.json`
each rater's accuracy.

    python -m beam_jobs.creation.synthetic_raw --output_dir DIR --clips 600 --seed 0 [beam options]
"""
from __future__ import annotations

import argparse
import dataclasses
import json

import apache_beam as beam
import numpy as np

from beam_jobs import synthetic
from beam_jobs.contracts.storage import csv_line, join, write_text
from beam_jobs.creation.nominate import KeywordIndex, nominate_clip
from beam_jobs.creation.raw import AUDIO_DIR, KEYWORDS_FILE, METADATA_FILE, ONTOLOGY_FILE, VOTES_FILE, VOTES_HEADER, \
    ClipRecord
from beam_jobs.runner import pipeline_options

KEYWORDS = {  # class -> keywords, as a curator would list them
    "Hum": ["hum", "electrical hum", "drone"], "Whistle": ["whistle"], "Chime": ["chime", "wind chime"],
    "Hiss": ["hiss", "steam"], "Rumble": ["rumble", "thunder"], "Swoosh": ["swoosh", "whoosh"],
    "Click_train": ["click train", "ticking"], "Knock": ["knock", "door knock"], "Crackle": ["crackle", "fire crackle"],
    "Siren": ["siren"], "Chirp": ["chirp", "bird chirp"], "Trill": ["trill"],
    "Tonal": ["tonal"], "Noise": ["noise"], "Sweep": ["sweep"], "Pulse": ["pulse"],
}
TAG_FORMS = {  # class -> how uploaders actually tag it
    "Hum": ["hum", "humming", "Electrical-Hum", "drone"], "Whistle": ["whistle", "whistling", "Whistles"],
    "Chime": ["chimes", "Wind-Chimes", "windchime", "chime"], "Hiss": ["hiss", "hissing", "steam"],
    "Rumble": ["rumble", "rumbling", "thunder"], "Swoosh": ["swoosh", "whooshes", "whoosh"],
    "Click_train": ["click_train", "ticking", "Click Train"], "Knock": ["knock", "knocking", "door-knock"],
    "Crackle": ["crackle", "crackling", "fire-crackle"], "Siren": ["siren", "sirens"],
    "Chirp": ["chirp", "chirping", "bird-chirps"], "Trill": ["trill", "trills"],
    "Tonal": ["tonal"], "Noise": ["noise"], "Sweep": ["sweep"], "Pulse": ["pulse", "pulses"],
}
GENERIC_TAGS = ("field-recording", "sound-effect", "recording", "stereo", "zoom-h4n", "sfx", "ambience")
RESTRICTED = {"Pulse": ["abstract"]}
RARE_CLASS = "Trill"
PREDOMINANCE_DB = 6.0  # an event within this many dB of the clip's loudest is predominant
RATERS = {f"rater{number:02d}": accuracy for number, accuracy in
          enumerate((0.98, 0.96, 0.95, 0.93, 0.92, 0.9, 0.88, 0.85, 0.8, 0.75))}
TRUTH_FILE = "raw_truth.jsonl"
RATERS_FILE = "raters.json"


@dataclasses.dataclass(frozen=True)
class RawConfig:
    clips: int = 600
    seed: int = 0
    tag_recall: float = 0.75
    rare_tag_recall: float = 0.12
    typo: float = 0.1
    parent_tag: float = 0.2
    false_tag: float = 0.15
    vote_coverage: float = 0.95

    def __post_init__(self):
        for field in dataclasses.fields(self):
            if field.name not in ("clips", "seed") and not 0 <= getattr(self, field.name) <= 1:
                raise ValueError(f"{field.name} must be in [0, 1], got {getattr(self, field.name)}")

    @property
    def clip_config(self) -> synthetic.SyntheticConfig:
        return synthetic.SyntheticConfig(format="fsd50k", clips=self.clips, seed=self.seed)


def raw_audio_path(output_dir: str, plan, config) -> str:
    return join(output_dir, AUDIO_DIR, plan.fname + ".wav")


def _typo(word: str, rng) -> str:
    position = int(rng.integers(0, len(word) - 1))
    return word[:position] + word[position + 1] + word[position] + word[position + 2:] + "x"


def _truth(plan) -> tuple[list[str], list[str]]:
    """(true classes, predominant classes) of a planned clip, as ontology ids with parents."""
    loudest = max(event.gain_db for event in plan.events if event.label in synthetic.LEAVES)
    present, predominant = set(), set()
    for event in plan.events:
        for label in (event.label, synthetic.PARENT_OF[event.label]):
            present.add(label)
            if event.gain_db >= loudest - PREDOMINANCE_DB:
                predominant.add(label)
    return sorted(map(synthetic.mid, present)), sorted(map(synthetic.mid, predominant))


def metadata_record(plan, config: RawConfig) -> dict:
    rng = np.random.default_rng([config.seed, plan.index, 7])
    leaves = sorted({event.label for event in plan.events})
    tags = []
    for leaf in leaves:
        recall = config.rare_tag_recall if leaf == RARE_CLASS else config.tag_recall
        draw = rng.random()
        if draw < recall:
            tags.append(str(rng.choice(TAG_FORMS[leaf])))
        elif draw < recall + config.typo * (1 - recall):
            tags.append(_typo(str(rng.choice(TAG_FORMS[leaf])), rng))
        if rng.random() < config.parent_tag:
            tags.append(str(rng.choice(TAG_FORMS[synthetic.PARENT_OF[leaf]])))
    if rng.random() < config.false_tag:
        tags.append(str(rng.choice(TAG_FORMS[str(rng.choice([c for c in synthetic.LEAVES if c not in leaves]))])))
    tags += [str(tag) for tag in rng.choice(GENERIC_TAGS, size=int(rng.integers(1, 4)), replace=False)]
    return {"id": int(plan.fname), "username": plan.uploader, "name": f"{plan.uploader}_take_{plan.index % 97}.wav",
            "tags": tags, "description": "Recorded outdoors, processed in a DAW.",
            "license": "http://creativecommons.org/publicdomain/zero/1.0/"}


def _vote(truth: str, accuracy: float, rng) -> str:
    if rng.random() < accuracy:
        return truth
    return str(rng.choice([vote for vote in ("PP", "PNP", "U", "NP") if vote != truth]))


def simulated_votes(clip: str, candidates: list[str], true_classes: set[str], predominant: set[str],
                    config: RawConfig, index: int) -> list[tuple[str, str, str, str]]:
    rng = np.random.default_rng([config.seed, index, 11])
    votes = []
    for node in candidates:
        if rng.random() >= config.vote_coverage:
            continue
        truth = ("PP" if node in predominant else "PNP") if node in true_classes else "NP"
        raters = rng.choice(sorted(RATERS), size=3, replace=False)
        cast = [_vote(truth, RATERS[rater], rng) for rater in raters[:2]]
        if (cast[0] in ("PP", "PNP")) != (cast[1] in ("PP", "PNP")):
            cast.append(_vote(truth, RATERS[raters[2]], rng))
        votes += [(clip, node, str(rater), vote) for rater, vote in zip(raters, cast)]
    return votes


def write_raw_files(plans: list, output_dir: str, config: RawConfig) -> None:
    plans = sorted(plans, key=lambda plan: plan.index)
    ontology = json.loads(synthetic.ontology_json())
    for entry in ontology:
        entry["restrictions"] = RESTRICTED.get(entry["name"].replace(" ", "_"), [])
    keywords = {synthetic.mid(label): words for label, words in KEYWORDS.items()}
    # what the nomination will find: restricted classes nominate nothing
    index = KeywordIndex({synthetic.mid(label): tuple(words) for label, words in KEYWORDS.items()
                          if label not in RESTRICTED})
    records, votes, truths = [], [], []
    for plan in plans:
        record = metadata_record(plan, config)
        records.append(json.dumps(record))
        true_classes, predominant = _truth(plan)
        truths.append(json.dumps({"clip": plan.fname, "uploader": plan.uploader, "true_classes": true_classes,
                                  "predominant": predominant}))
        clip = ClipRecord(clip_id=plan.fname, uploader=plan.uploader, title=record["name"], tags=tuple(record["tags"]),
                          description=record["description"], license=record["license"], audio_path="")
        candidates = [candidate["class"] for candidate in nominate_clip(clip, index)]
        votes += simulated_votes(plan.fname, candidates, set(true_classes), set(predominant), config, plan.index)
    write_text(join(output_dir, METADATA_FILE), "".join(line + "\n" for line in records))
    write_text(join(output_dir, ONTOLOGY_FILE), json.dumps(ontology, indent=2))
    write_text(join(output_dir, KEYWORDS_FILE), json.dumps(keywords, indent=1))
    write_text(join(output_dir, VOTES_FILE), "".join(csv_line(row) + "\n" for row in [VOTES_HEADER] + votes))
    write_text(join(output_dir, TRUTH_FILE), "".join(line + "\n" for line in truths))
    write_text(join(output_dir, RATERS_FILE), json.dumps(RATERS, indent=1))


def generate(output_dir: str, clips: int = 600, seed: int = 0, beam_args: list[str] | None = None, **options) -> str:
    """Writes the raw material under `output_dir` and returns it; `options` are RawConfig fields."""
    config = RawConfig(clips=clips, seed=seed, **options)
    clip_config = config.clip_config
    with beam.Pipeline(options=pipeline_options(beam_args or [])) as pipeline:
        _ = (pipeline | "ClipIndices" >> beam.Create(range(clips)) | "Distribute" >> beam.Reshuffle()
             | "RenderAndWrite" >> beam.Map(synthetic.write_clip, config=clip_config, output_dir=output_dir,
                                            path_of=raw_audio_path)
             | "CollectPlans" >> beam.combiners.ToList()
             | "WriteMetadata" >> beam.Map(write_raw_files, output_dir=output_dir, config=config))
    return output_dir


def run(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--clips", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    args, beam_args = parser.parse_known_args(argv)
    return generate(args.output_dir, args.clips, args.seed, beam_args)


if __name__ == "__main__":
    print(run())
