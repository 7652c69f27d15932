"""Candidate validation (Beam): rater votes on (clip, class) pairs aggregated into validated labels.

The rule (documented in the README; `min_agreement` defaults to 2): a pair's votes count as present
(PP or PNP), absent (NP) or unsure (U).
- accepted when at least `min_agreement` raters voted present and more voted present than absent; the label
  is predominant (PP) when at least as many present votes were PP as PNP, else PNP;
- rejected when at least `min_agreement` raters voted absent and more voted absent than present;
- unresolved otherwise (too few votes, or a tie): neither a label nor a known absence.
Agreement per class: Krippendorff's alpha (nominal, over PP/PNP/NP; U counts as no answer) and the share
of pairs with two or more votes that were unanimous.

    python -m beam_jobs.creation.validate --nomination_dir NOM --output_dir OUT [--min_agreement 2]
"""
from __future__ import annotations

import argparse
import itertools
import json
from collections import Counter, defaultdict

import apache_beam as beam
import numpy as np

from beam_jobs.contracts.publish import publishing
from apache_beam.io.filesystems import FileSystems

from beam_jobs.contracts.storage import join, read_json, read_json_lines, write_json
from beam_jobs.creation.nominate import RAW_COPY, REPORT_FILE as NOMINATION_REPORT, read_candidates, read_clips
from beam_jobs.creation.raw import ONTOLOGY_FILE, RATING_VALUES, VOTES_FILE, read_votes
from beam_jobs.ontology import load_ontology
from beam_jobs.runner import pipeline_options

RATINGS_PREFIX = "ratings"  # shards ratings-*.jsonl: {clip, class, votes, decision, predominance, nominated}
PP_PNP_FILE = "pp_pnp_ratings.json"  # FSD50K's file: {clip: {class id: [1.0, 0.5, 0, -1, ...]}}
REPORT_FILE = "validation.json"
ACCEPTED, REJECTED, UNRESOLVED = "accepted", "rejected", "unresolved"
CODED = ("PP", "PNP", "NP")  # the votes Krippendorff's alpha compares


def decide(votes: list[str], min_agreement: int = 2) -> tuple[str, str | None]:
    """(decision, predominance) of one pair's votes under the rule above."""
    counts = Counter(votes)
    present, absent = counts["PP"] + counts["PNP"], counts["NP"]
    if present >= min_agreement and present > absent:
        return ACCEPTED, "PP" if counts["PP"] >= counts["PNP"] else "PNP"
    if absent >= min_agreement and absent > present:
        return REJECTED, None
    return UNRESOLVED, None


def krippendorff_alpha(units: list[list[str]], categories=CODED) -> float | None:
    """Nominal Krippendorff's alpha of the coded values of each unit (other values are missing answers);
    None when fewer than two pairable values or no disagreement is possible."""
    index = {category: position for position, category in enumerate(categories)}
    coincidences = np.zeros((len(categories), len(categories)))
    for unit in units:
        values = [index[value] for value in unit if value in index]
        if len(values) < 2:
            continue
        for first, second in itertools.permutations(values, 2):
            coincidences[first, second] += 1 / (len(values) - 1)
    totals = coincidences.sum(axis=1)
    pairable = totals.sum()
    expected = pairable ** 2 - (totals ** 2).sum()  # sum over c != k of n_c n_k
    if pairable < 2 or expected == 0:
        return None
    observed = coincidences.sum() - np.trace(coincidences)
    return float(1 - (pairable - 1) * observed / expected)


class AggregateVotes(beam.PTransform):
    """(clip, class, rater, vote) tuples -> one ratings line per voted pair."""

    def __init__(self, min_agreement: int, candidates: set[tuple[str, str]]):
        super().__init__()
        self.min_agreement, self.candidates = min_agreement, candidates

    def expand(self, votes):
        def rating(pair_votes):
            (clip, node), voted = pair_votes
            voted = [vote for _, vote in sorted(voted)]  # in rater order: deterministic output
            decision, predominance = decide(voted, self.min_agreement)
            return {"clip": clip, "class": node, "votes": voted, "decision": decision, "predominance": predominance,
                    "nominated": (clip, node) in self.candidates}

        return (votes
                | "ByPair" >> beam.Map(lambda vote: ((vote[0], vote[1]), (vote[2], vote[3])))
                | "Group" >> beam.GroupByKey()
                | "Decide" >> beam.Map(rating))


def read_ratings(folder: str) -> list[dict]:
    return sorted(read_json_lines(join(folder, f"{RATINGS_PREFIX}-*.jsonl")),
                  key=lambda line: (line["clip"], line["class"]))


def validation_report(ratings: list[dict], candidates: list[dict], names: dict[str, str], min_agreement: int) -> dict:
    nominated = Counter(candidate["class"] for line in candidates for candidate in line["candidates"])
    rated_of = defaultdict(list)
    for rating in ratings:
        rated_of[rating["class"]].append(rating)
    per_class = {}
    for node in sorted(set(nominated) | set(rated_of), key=lambda node: names[node]):
        rated = rated_of[node]
        decisions = Counter(rating["decision"] for rating in rated)
        multiple = [rating["votes"] for rating in rated if len(rating["votes"]) >= 2]
        per_class[node] = {
            "name": names[node], "candidates": nominated[node], "voted": len(rated),
            **{decision: decisions[decision] for decision in (ACCEPTED, REJECTED, UNRESOLVED)},
            "accepted_share": decisions[ACCEPTED] / len(rated) if rated else None,
            "unanimous_share": (sum(len(set(votes)) == 1 for votes in multiple) / len(multiple)) if multiple else None,
            "alpha": krippendorff_alpha([rating["votes"] for rating in rated]),
            "predominant": sum(rating["predominance"] == "PP" for rating in rated)}
    return {"min_agreement": min_agreement, "votes": sum(len(rating["votes"]) for rating in ratings),
            "pairs_voted": len(ratings), "alpha": krippendorff_alpha([rating["votes"] for rating in ratings]),
            "votes_on_pairs_not_nominated": sum(not rating["nominated"] for rating in ratings),
            "candidates_without_votes": sum(nominated.values()) - sum(rating["nominated"] for rating in ratings),
            "decisions": dict(Counter(rating["decision"] for rating in ratings)), "per_class": per_class}


def format_share(value) -> str:
    """A share or an agreement coefficient with three decimals; "-" where it is undefined."""
    return "-" if value is None else f"{value:.3f}"


def validation_markdown(report: dict) -> str:
    lines = ["# Candidate validation", "",
             f"{report['votes']} votes on {report['pairs_voted']} (clip, class) pairs; rule: accepted with >= "
             f"{report['min_agreement']} present votes (PP or PNP) outnumbering the NP votes, rejected likewise for "
             f"NP, otherwise unresolved. Decisions: {report['decisions']}. Krippendorff's alpha (nominal, "
             f"PP/PNP/NP): {format_share(report['alpha'])}. {report['candidates_without_votes']} candidates have no "
             f"vote; {report['votes_on_pairs_not_nominated']} voted pairs were not nominated.", "",
             "| class | candidates | voted | accepted | rejected | unresolved | accepted share | unanimous | alpha |"
             " predominant (PP) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {entry['name']} | {entry['candidates']} | {entry['voted']} | {entry[ACCEPTED]} | {entry[REJECTED]} | "
              f"{entry[UNRESOLVED]} | {format_share(entry['accepted_share'])} | "
              f"{format_share(entry['unanimous_share'])} | "
              f"{format_share(entry['alpha'])} | {entry['predominant']} |" for entry in report["per_class"].values()]
    return "\n".join(lines) + "\n"


def validate(nomination_dir: str, output_dir: str, min_agreement: int = 2, beam_args: list[str] | None = None) -> dict:
    """Aggregates the votes of the raw material that `nomination_dir` was nominated from; publishes one
    ratings line per voted pair, FSD50K's pp_pnp_ratings file and the validation report; returns it."""
    if min_agreement < 1:
        raise ValueError(f"min_agreement must be at least 1, got {min_agreement}")
    raw = join(nomination_dir, RAW_COPY)
    if not FileSystems.exists(join(raw, VOTES_FILE)):
        raise ValueError(f"the raw material of {nomination_dir} has no {VOTES_FILE}: nothing to validate")
    ontology = load_ontology(join(raw, ONTOLOGY_FILE))
    clips = {record.clip_id for record in read_clips(nomination_dir)}
    votes = [vote for vote in read_votes(join(raw, VOTES_FILE), ontology, clips | {
        entry["clip"] for entry in read_json(join(nomination_dir, NOMINATION_REPORT))["rejected"]}) if vote[0] in clips]
    if not votes:
        raise ValueError(f"{join(raw, VOTES_FILE)} lists no vote on a gathered clip: nothing to validate")
    candidates = read_candidates(nomination_dir)
    pairs = {(line["clip"], candidate["class"]) for line in candidates for candidate in line["candidates"]}
    with publishing(output_dir, "validate") as publication:
        with beam.Pipeline(options=pipeline_options(beam_args or [])) as pipeline:
            _ = (pipeline | "Votes" >> beam.Create(votes)
                 | "AggregateVotes" >> AggregateVotes(min_agreement, pairs)
                 | "ToJson" >> beam.Map(json.dumps, sort_keys=True)
                 | "Write" >> beam.io.WriteToText(join(publication.staging, RATINGS_PREFIX), file_name_suffix=".jsonl",
                                                  shard_name_template="-SSSSS-of-NNNNN"))
        ratings = read_ratings(publication.staging)
        pp_pnp = {}
        for rating in ratings:
            pp_pnp.setdefault(rating["clip"], {})[rating["class"]] = [RATING_VALUES[vote] for vote in rating["votes"]]
        write_json(join(publication.staging, PP_PNP_FILE), pp_pnp)
        report = validation_report(ratings, candidates, ontology.names, min_agreement)
        write_json(join(publication.staging, REPORT_FILE), report)
        publication.summary.update(pairs_voted=report["pairs_voted"], decisions=report["decisions"])
    return report


def run(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nomination_dir", required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--min_agreement", type=int, default=2)
    args, beam_args = parser.parse_known_args(argv)
    return validate(args.nomination_dir, args.output_dir, args.min_agreement, beam_args)


if __name__ == "__main__":
    report = run()
    print(f"{report['pairs_voted']} pairs voted: {report['decisions']}")
