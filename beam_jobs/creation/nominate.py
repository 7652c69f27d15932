"""Candidate-label nomination (Beam): each clip's tags and text, normalised, matched against per-class
keyword lists; a clip gets every class one of whose keywords it carries, with the keywords and fields
that nominated it.

Normalisation: lower case; words split at anything but letters and digits (so `dog-bark`, `dog_bark` and
`Dog Bark` agree); each word stemmed by a light suffix stemmer (`stem`: plurals, -ing, -ed, a final e, a
doubled final consonant, so `whistles`, `whistling` and `whistle` agree). A keyword of several words matches
those stems in that order inside one tag or one text field, or a tag written as one word (`windchime` for
`wind chime`).

    python -m beam_jobs.creation.nominate --raw_dir RAW --output_dir OUT [--fields tags,title] [beam options]
"""
from __future__ import annotations

import argparse
import json
import re
from collections import Counter

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from beam_jobs.contracts.publish import publishing
from beam_jobs.contracts.storage import join, read_json_lines, read_text, write_json, write_text
from beam_jobs.creation.raw import KEYWORDS_FILE, METADATA_FILE, ONTOLOGY_FILE, VOTES_FILE, ClipRecord, gather
from beam_jobs.runner import pipeline_options

FIELDS = ("tags", "title", "description")
DEFAULT_FIELDS = ("tags", "title")
CANDIDATES_PREFIX = "candidates"  # shards candidates-*.jsonl, one line per clip: {clip, candidates: [...]}
CLIPS_FILE = "clips.jsonl"  # the gathered records (ClipRecord), for the later steps
RAW_COPY = "raw"  # the raw material's small files (ontology, keywords, votes, metadata) as this step read them
REPORT_FILE = "nomination.json"
VOWELS = set("aeiou")


def stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    for suffix, shortest in (("ing", 6), ("ed", 5)):
        if len(word) >= shortest and word.endswith(suffix) and VOWELS & set(word[:-len(suffix)]):
            word = word[:-len(suffix)]
            break
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in VOWELS:
        word = word[:-1]
    return word


def words(text: str) -> tuple[str, ...]:
    return tuple(stem(word) for word in re.findall(r"[a-z0-9]+", text.lower()))


class KeywordIndex:
    """Keyword stems -> the classes they nominate."""

    def __init__(self, keywords: dict[str, tuple[str, ...]]):
        self.phrases = {}  # stem tuple -> [(class id, keyword)]
        for node, keyword_list in keywords.items():
            for keyword in keyword_list:
                phrase = words(keyword)
                if not phrase:
                    raise ValueError(f"keyword {keyword!r} of {node} has no letters or digits")
                self.phrases.setdefault(phrase, []).append((node, keyword))
        self.joined = {}  # a phrase written as one word
        for phrase, owners in self.phrases.items():
            if len(phrase) > 1:
                self.joined.setdefault(stem("".join(phrase)), []).extend(owners)
        self.longest = max((len(phrase) for phrase in self.phrases), default=0)

    def matches(self, text_words: tuple[str, ...]):
        for start in range(len(text_words)):
            for length in range(1, min(self.longest, len(text_words) - start) + 1):
                yield from self.phrases.get(text_words[start:start + length], ())
        if len(text_words) == 1:
            yield from self.joined.get(text_words[0], ())


def nominate_clip(record: ClipRecord, index: KeywordIndex, fields=DEFAULT_FIELDS) -> list[dict]:
    """[{class, keywords, fields}] of one clip, classes sorted."""
    found = {}
    texts = {"tags": list(record.tags), "title": [record.title], "description": [record.description]}
    for field in fields:
        for text in texts[field]:
            for node, keyword in index.matches(words(text)):
                entry = found.setdefault(node, {"class": node, "keywords": set(), "fields": set()})
                entry["keywords"].add(keyword)
                entry["fields"].add(field)
    return [{"class": node, "keywords": sorted(entry["keywords"]), "fields": sorted(entry["fields"])}
            for node, entry in sorted(found.items())]


def check_fields(fields) -> tuple[str, ...]:
    fields = tuple(fields)
    unknown = set(fields) - set(FIELDS)
    if unknown or not fields:
        raise ValueError(f"nomination fields {sorted(unknown) or 'none'}: expected a non-empty subset of {FIELDS}")
    return fields


class NominateCandidates(beam.PTransform):
    """Clip records -> {clip, candidates} per clip."""

    def __init__(self, keywords: dict[str, tuple[str, ...]], fields):
        super().__init__()
        self.keywords, self.fields = keywords, check_fields(fields)

    def expand(self, records):
        index = KeywordIndex(self.keywords)
        return records | "Nominate" >> beam.Map(
            lambda record: {"clip": record.clip_id, "candidates": nominate_clip(record, index, self.fields)})


def nomination_report(lines: list[dict], names: dict[str, str], ignored: list[dict]) -> dict:
    per_class = Counter(candidate["class"] for line in lines for candidate in line["candidates"])
    keywords = {}
    for line in lines:
        for candidate in line["candidates"]:
            keywords.setdefault(candidate["class"], Counter()).update(candidate["keywords"])
    return {"clips": len(lines), "clips_without_candidates": sum(not line["candidates"] for line in lines),
            "candidates": sum(per_class.values()),
            "per_class": {node: {"name": names[node], "candidates": count,
                                 "keywords": dict(keywords[node].most_common())}
                          for node, count in sorted(per_class.items(), key=lambda item: (-item[1], item[0]))},
            "ignored_keywords": ignored}


def nomination_markdown(report: dict) -> str:
    lines = ["# Candidate-label nomination", "",
             f"{report['clips']} clips gathered from `{report['raw_dir']}` (fields: {', '.join(report['fields'])}); "
             f"{report['candidates']} candidate labels; {report['clips_without_candidates']} clips without any; "
             f"{len(report['rejected'])} metadata records rejected; "
             f"{sum(entry['files'] for entry in report['ignored_files'])} audio files without a record.", "",
             "| class | candidates | nominated by (keyword: clips) |", "|---|---:|---|"]
    lines += [f"| {entry['name']} | {entry['candidates']} | "
              + ", ".join(f"{keyword}: {count}" for keyword, count in entry["keywords"].items()) + " |"
              for entry in report["per_class"].values()]
    if report["ignored_keywords"]:
        lines += ["", "Keyword entries that nominate nothing:", ""]
        lines += [f"- {entry['class']}: {entry['reason']}" for entry in report["ignored_keywords"]]
    if report["rejected"]:
        lines += ["", "| rejected record | reason |", "|---|---|"]
        lines += [f"| {entry['clip']} | {entry['reason']} |" for entry in report["rejected"]]
    return "\n".join(lines) + "\n"


def read_candidates(folder: str) -> list[dict]:
    """The candidates lines of a nomination folder, sorted by clip."""
    return sorted(read_json_lines(join(folder, f"{CANDIDATES_PREFIX}-*.jsonl")), key=lambda line: line["clip"])


def read_clips(folder: str) -> list[ClipRecord]:
    return [ClipRecord.from_json(line) for line in read_text(join(folder, CLIPS_FILE)).splitlines() if line]


def nominate(raw_dir: str, output_dir: str, fields=DEFAULT_FIELDS, beam_args: list[str] | None = None,
             keep: tuple[str, ...] = ()) -> dict:
    """Publishes the gathered clips, a copy of the raw material's small files, one candidates line per clip
    and the nomination report; returns the report. `keep`: folders of `output_dir` to keep (generated raw
    material)."""
    fields = check_fields(fields)
    raw = gather(raw_dir)
    with publishing(output_dir, "nominate", keep=keep) as publication:
        for name in (METADATA_FILE, ONTOLOGY_FILE, KEYWORDS_FILE, VOTES_FILE):
            if FileSystems.exists(join(raw_dir, name)):
                write_text(join(publication.staging, RAW_COPY, name), read_text(join(raw_dir, name)))
        with beam.Pipeline(options=pipeline_options(beam_args or [])) as pipeline:
            _ = (pipeline | "Records" >> beam.Create(raw.records)
                 | "NominateCandidates" >> NominateCandidates(raw.keywords, fields)
                 | "ToJson" >> beam.Map(json.dumps, sort_keys=True)
                 | "Write" >> beam.io.WriteToText(join(publication.staging, CANDIDATES_PREFIX),
                                                  file_name_suffix=".jsonl",
                                                  shard_name_template="-SSSSS-of-NNNNN"))
        lines = read_candidates(publication.staging)
        write_text(join(publication.staging, CLIPS_FILE), "".join(record.to_json() + "\n" for record in raw.records))
        report = nomination_report(lines, raw.ontology.names, [entry for entry in raw.ignored if "class" in entry])
        report.update(raw_dir=raw_dir, fields=list(fields), rejected=raw.rejected,
                      ignored_files=[entry for entry in raw.ignored if "path" in entry])
        write_json(join(publication.staging, REPORT_FILE), report)
        publication.summary.update(clips=report["clips"], candidates=report["candidates"])
    return report


def run(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw_dir", required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--fields", default=",".join(DEFAULT_FIELDS), help=f"a subset of {FIELDS}")
    args, beam_args = parser.parse_known_args(argv)
    return nominate(args.raw_dir, args.output_dir, args.fields.split(","), beam_args)


if __name__ == "__main__":
    report = run()
    print(f"{report['candidates']} candidates for {report['clips']} clips")
