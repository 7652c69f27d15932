"""Dataset creation (beam_jobs.creation): nomination, vote aggregation, vocabulary, splits, the written
layouts, checked against hand-computed values and against the known truth of synthetic raw material."""
import csv
import json
import os
from collections import Counter

import numpy as np
import pytest
import soundfile

from beam_jobs.contracts.manifest import DatasetError, ManifestRow
from beam_jobs.creation import assemble, nominate, synthetic_raw, validate
from beam_jobs.creation.raw import ClipRecord, read_keywords, read_records, read_votes
from beam_jobs.ingest import ingest
from beam_jobs.ontology import Ontology


def entry(node, children=(), restrictions=()):
    return {"id": node, "name": node.strip("/").replace("_", " "), "child_ids": list(children),
            "restrictions": list(restrictions)}


def record(clip, tags=(), title="", description="", uploader="someone"):
    return ClipRecord(clip_id=clip, uploader=uploader, title=title, tags=tuple(tags), description=description,
                      license="", audio_path="")


def test_word_forms_of_a_keyword_nominate_its_class():
    index = nominate.KeywordIndex({"/chime": ("wind chime",), "/bell": ("chime",), "/whistle": ("whistle",),
                                   "/knock": ("door knock",)})
    assert nominate.words("Wind-Chimes") == nominate.words("wind chime") == nominate.words("wind_chime")
    assert nominate.stem("whistling") == nominate.stem("whistles") == nominate.stem("whistle")

    def classes(**fields):
        return [candidate["class"] for candidate in nominate.nominate_clip(record("1", **fields), index)]

    assert classes(tags=["windchime"]) == ["/chime"]  # a multi-word keyword written as one tag
    assert classes(tags=["Wind-Chimes"]) == ["/bell", "/chime"]
    assert classes(tags=["whistling", "field-recording"]) == ["/whistle"]
    assert classes(tags=["door"], title="knock") == []  # words of a phrase must be in one field, in order
    assert classes(title="Knocking on a door") == []
    assert classes(title="a door knock at night") == ["/knock"]
    assert classes(description="whistle") == []  # descriptions are not read unless asked for
    found = nominate.nominate_clip(record("1", tags=["whistles"], title="Whistle"), index)
    assert found == [{"class": "/whistle", "keywords": ["whistle"], "fields": ["tags", "title"]}]
    with pytest.raises(ValueError, match="subset"):
        nominate.check_fields(["tags", "comments"])


def test_abstract_and_blacklisted_classes_nominate_nothing(tmp_path):
    ontology = Ontology([entry("/animal", ["/dog"], ["abstract"]), entry("/dog"), entry("/noise", [], ["blacklist"])])
    path = tmp_path / "keywords.json"
    path.write_text(json.dumps({"/animal": ["animal"], "dog": ["dog", "bark"], "/noise": ["noise"]}))
    keywords, ignored = read_keywords(str(path), ontology)
    assert keywords == {"/dog": ("dog", "bark")}  # "dog" named the class by its ontology name
    assert [item["class"] for item in ignored] == ["animal", "noise"]
    path.write_text(json.dumps({"cat": ["cat"]}))
    with pytest.raises(DatasetError, match="'cat' is no class id or name"):
        read_keywords(str(path), ontology)


def test_vote_rule():
    assert validate.decide(["PP", "PP"]) == ("accepted", "PP")
    assert validate.decide(["PP", "PNP"]) == ("accepted", "PP")  # a tie in predominance counts as PP
    assert validate.decide(["PNP", "PNP", "PP"]) == ("accepted", "PNP")
    assert validate.decide(["PP", "NP"]) == ("unresolved", None)
    assert validate.decide(["NP", "NP", "PP"]) == ("rejected", None)
    assert validate.decide(["U", "U", "PP"]) == ("unresolved", None)
    assert validate.decide(["PP"]) == ("unresolved", None)
    assert validate.decide(["PP"], min_agreement=1) == ("accepted", "PP")


def test_krippendorff_alpha_hand_computed():
    # coincidences: PP-PP 2, NP-NP 2, PP-NP 1 + NP-PP 1; n_PP = n_NP = 3, n = 6:
    # alpha = 1 - (n - 1) * 2 / (2 * 3 * 3) = 1 - 10 / 18
    assert validate.krippendorff_alpha([["PP", "PP"], ["PP", "NP"], ["NP", "NP"]]) == pytest.approx(1 - 10 / 18)
    # a unit of three: each ordered pair weighs 1/2; U is no answer: PP-PP 3, NP-NP 2, PP-NP 1, NP-PP 1;
    # n_PP = 4, n_NP = 3, n = 7: alpha = 1 - 6 * 2 / (2 * 4 * 3) = 0.5
    assert validate.krippendorff_alpha([["PP", "PP", "PP"], ["NP", "NP"], ["PP", "NP", "U"]]) == pytest.approx(0.5)
    assert validate.krippendorff_alpha([["PP", "PP"], ["NP", "NP"]]) == pytest.approx(1.0)
    assert validate.krippendorff_alpha([["PP", "PP"], ["PP"]]) is None  # no disagreement possible


def test_small_classes_merge_into_their_nearest_kept_ancestor():
    # /root (abstract) -> /b -> /c, /d and /b -> /e (blacklisted) -> /f; /g stands alone
    ontology = Ontology([entry("/root", ["/b"], ["abstract"]), entry("/b", ["/c", "/d", "/e"]), entry("/c"),
                         entry("/d"), entry("/e", ["/f"], ["blacklist"]), entry("/f"), entry("/g")])
    labels_of = {f"c{i}": {"/c"} for i in range(10)}
    labels_of.update({f"d{i}": {"/d"} for i in range(2)})
    labels_of.update({f"f{i}": {"/f"} for i in range(3)})
    labels_of["g0"] = {"/g"}
    vocabulary = assemble.Vocabulary(labels_of, ontology, min_clips=5)
    assert vocabulary.kept == {"/b", "/c"}  # /root has 15 clips but is abstract
    assert vocabulary.labels({"/d"}) == ("/b",)
    assert vocabulary.labels({"/f"}) == ("/b",)  # past the blacklisted /e
    assert vocabulary.labels({"/c"}) == ("/b", "/c")  # propagated to the kept parent
    assert vocabulary.labels({"/g"}) == ()
    merges = {row["class"]: row["into"] for row in vocabulary.merges()}
    assert merges == {"d": "b", "f": "b", "g": None}


def test_dev_eval_split_keeps_uploaders_whole_and_gives_evaluation_to_small_uploaders():
    rng = np.random.default_rng(0)
    rows = []
    for number in range(60):
        size = int(rng.zipf(1.8)) if number else 80  # heavy-tailed, as on Freesound
        for clip in range(min(size, 80)):
            rows.append(ManifestRow(f"{number}-{clip}", "", "", (f"class{(number + clip) % 4}",), f"user{number}"))
    in_eval, report = assemble.split_dev_eval(rows, eval_share=0.2, seed=0)
    eval_rows = [row for row in rows if row.uploader in in_eval]
    assert 0.1 < len(eval_rows) / len(rows) <= 0.2
    assert "user0" not in in_eval  # the largest uploader stays in development
    assert report["median_uploader_clips"]["eval"] <= report["median_uploader_clips"]["dev"]
    shares = Counter(row.labels[0] for row in eval_rows)
    totals = Counter(row.labels[0] for row in rows)
    assert all(shares[label] / totals[label] > 0.05 for label in totals)


def test_raw_material_accounts_for_every_record_and_file(tmp_path):
    (tmp_path / "audio").mkdir()
    for name in ("1.wav", "2.flac", "4.wav"):
        soundfile.write(str(tmp_path / "audio" / name), np.zeros(800), 8000)
    (tmp_path / "audio" / ".DS_Store").write_bytes(b"\0")
    records = [{"id": 1, "username": "ann", "name": "a", "tags": ["dog"]}, {"id": 2, "uploader": "bo", "tags": []},
               {"id": 3, "username": "cy", "tags": []}, {"id": 4, "tags": []}]
    (tmp_path / "metadata.jsonl").write_text("".join(json.dumps(item) + "\n" for item in records))
    found, rejected, ignored = read_records(str(tmp_path))
    assert [(item.clip_id, item.uploader, item.title) for item in found] == [("1", "ann", "a"), ("2", "bo", "")]
    assert [item["clip"] for item in rejected] == ["3", "4"]
    assert "no audio file" in rejected[0]["reason"] and "no uploader" in rejected[1]["reason"]
    assert ignored == []  # .DS_Store is not audio; every audio file has its record
    soundfile.write(str(tmp_path / "audio" / "9.wav"), np.zeros(800), 8000)
    assert read_records(str(tmp_path))[2][0]["files"] == 1
    (tmp_path / "metadata.jsonl").write_text(json.dumps(records[0]) + "\n" + json.dumps(records[0]) + "\n")
    with pytest.raises(DatasetError, match=r"metadata.jsonl:2: clip 1 is listed twice"):
        read_records(str(tmp_path))
    ontology = Ontology([entry("/dog")])
    votes = tmp_path / "votes.csv"
    votes.write_text("clip,class,rater,vote\n1,/dog,r1,PP\n1,dog,r2,maybe\n")
    with pytest.raises(DatasetError, match=r"votes.csv:3: vote 'maybe' is not one of"):
        read_votes(str(votes), ontology, {"1"})
    votes.write_text("clip,class,rater,vote\n1,/dog,r1,PP\n1,dog,r1,NP\n")
    with pytest.raises(DatasetError, match=r"votes.csv:3: rater r1 voted on clip 1, class /dog before \(line 2\)"):
        read_votes(str(votes), ontology, {"1"})


@pytest.fixture(scope="module")
def created(tmp_path_factory):
    """Synthetic raw material of 400 clips, nominated, validated, assembled in both layouts (min_clips 12)."""
    root = tmp_path_factory.mktemp("creation")
    raw = synthetic_raw.generate(str(root / "raw"), clips=400, seed=3)
    nomination = nominate.nominate(raw, str(root / "nomination"))
    validation = validate.validate(str(root / "nomination"), str(root / "validation"))
    reports = {release_format: assemble.assemble(str(root / "nomination"), str(root / "validation"),
                                                 str(root / release_format),
                                                 assemble.CreationParams(release_format=release_format, min_clips=12))
               for release_format in assemble.RELEASE_FORMATS}
    return root, nomination, validation, reports


def _truth(root):
    with open(root / "raw" / synthetic_raw.TRUTH_FILE) as handle:
        return {line["clip"]: line for line in map(json.loads, handle)}


def test_nomination_recovers_the_tagged_truth(created):
    root, report, _, _ = created
    truth = _truth(root)
    lines = nominate.read_candidates(str(root / "nomination"))
    pairs = {(line["clip"], candidate["class"]) for line in lines for candidate in line["candidates"]}
    true_pairs = {(clip, node) for clip, line in truth.items() for node in line["true_classes"]}
    precision = len(pairs & true_pairs) / len(pairs)
    leaf_pairs = {(clip, node) for clip, node in true_pairs if node in {
        f"/t/syn_{leaf.lower()}" for leaf in synthetic_raw.synthetic.LEAVES if leaf != synthetic_raw.RARE_CLASS}}
    recall = len(pairs & leaf_pairs) / len(leaf_pairs)
    assert precision > 0.85  # false tags (15% of clips) are the only false candidates
    assert 0.6 < recall < 0.8  # a sound is tagged with a matching word form 75% of the time
    assert report["clips"] == 400 and report["ignored_keywords"][0]["class"] == "Pulse"
    assert "/t/syn_pulse" not in report["per_class"]


def test_validation_recovers_the_true_labels(created):
    root, _, report, _ = created
    truth = _truth(root)
    ratings = validate.read_ratings(str(root / "validation"))
    accepted = [(r["clip"], r["class"]) for r in ratings if r["decision"] == "accepted"]
    rejected = [(r["clip"], r["class"]) for r in ratings if r["decision"] == "rejected"]
    assert np.mean([node in truth[clip]["true_classes"] for clip, node in accepted]) > 0.97
    assert np.mean([node not in truth[clip]["true_classes"] for clip, node in rejected]) > 0.9
    predominant = [r for r in ratings if r["decision"] == "accepted" and r["predominance"] == "PP"]
    assert np.mean([r["class"] in truth[r["clip"]]["predominant"] for r in predominant]) > 0.85
    assert 0.5 < report["alpha"] < 1
    markdown = validate.validation_markdown(report)
    assert f"Krippendorff's alpha (nominal, PP/PNP/NP): {report['alpha']:.3f}" in markdown and "| Chime |" in markdown
    pp_pnp = json.loads((root / "validation" / validate.PP_PNP_FILE).read_text())
    first = ratings[0]
    assert pp_pnp[first["clip"]][first["class"]] == [{"PP": 1.0, "PNP": 0.5, "U": 0.0, "NP": -1.0}[vote]
                                                      for vote in first["votes"]]


def test_the_created_fsd50k_dataset_is_read_by_its_adapter(created, tmp_path):
    root, _, _, reports = created
    report = reports["fsd50k"]
    manifest = ingest(str(root / "fsd50k"), str(tmp_path / "manifest"), "fsd50k")
    assert len(manifest.rows) == report["clips_written"] and manifest.source["ignored"] == []
    assert {row.split for row in manifest.rows} == {"train", "val", "eval"}
    sides = {}
    for row in manifest.rows:
        sides.setdefault(row.uploader, set()).add(row.split == "eval")
    assert all(len(value) == 1 for value in sides.values())  # no uploader on both sides
    assert "Trill" not in manifest.vocabulary and "Pulse" not in manifest.vocabulary
    assert [(merge["class"], merge["into"]) for merge in report["merges"]] == [("Trill", "Sweep")]
    markdown = (root / "fsd50k" / "FSD50K.doc" / assemble.REPORT_MARKDOWN).read_text()
    assert "| Trill |" in markdown and "uploaders on both sides: 0" in markdown and "Krippendorff's alpha" in markdown
    assert all(set(row.labels) >= {"Tonal"} for row in manifest.rows if {"Hum", "Whistle", "Chime"} & set(row.labels))
    with open(root / "fsd50k" / "FSD50K.doc" / assemble.FATES_FILE) as handle:
        fates = list(csv.DictReader(handle))
    assert len(fates) == 400  # every gathered clip: written or excluded with its reason
    assert all(fate["reason"] for fate in fates if fate["fate"] == "excluded")
    assert sum(fate["fate"] != "excluded" for fate in fates) == len(manifest.rows)
    info = json.loads((root / "fsd50k" / "FSD50K.metadata" / "dev_clips_info_FSD50K.json").read_text())
    assert set(next(iter(info.values()))) == {"title", "description", "tags", "license", "uploader"}


def test_the_created_fsdnoisy18k_dataset_is_read_by_its_adapter(tmp_path):
    """As for FSDnoisy18k, raters validate a part of the candidates; the rest keep their nominated label."""
    raw = synthetic_raw.generate(str(tmp_path / "raw"), clips=400, seed=4, vote_coverage=0.35, false_tag=0.4)
    nominate.nominate(raw, str(tmp_path / "nomination"))
    validate.validate(str(tmp_path / "nomination"), str(tmp_path / "validation"))
    report = assemble.assemble(str(tmp_path / "nomination"), str(tmp_path / "validation"), str(tmp_path / "dataset"),
                               assemble.CreationParams(release_format="fsdnoisy18k", min_clips=8))
    manifest = ingest(str(tmp_path / "dataset"), str(tmp_path / "manifest"), "fsdnoisy18k")
    train = [row for row in manifest.rows if row.split == "train"]
    verified = [row for row in train if row.flags["manually_verified"]]
    noisy = [row for row in train if not row.flags["manually_verified"]]
    assert verified and noisy and {row.split for row in manifest.rows} == {"train", "test"}
    assert sum(row.flags["noisy_small"] for row in train) == min(len(verified), len(noisy))
    truth = _truth(tmp_path)

    def right(rows):
        return np.mean([f"/t/syn_{row.labels[0].lower()}" in truth[row.clip_id]["true_classes"] for row in rows])

    assert right(verified) > 0.95 and right(noisy) < 0.92  # nominated-only labels carry the tagging errors
    assert report["uploaders_on_both_sides"] == 0


def test_invalid_creation_parameters_fail_before_any_work(tmp_path):
    for bad in ({"release_format": "audioset"}, {"min_clips": 0}, {"eval_share": 1.0}, {"audio": "move"}):
        with pytest.raises(ValueError):
            assemble.CreationParams(**bad)
    with pytest.raises(ValueError, match="min_agreement"):
        validate.validate(str(tmp_path), str(tmp_path / "out"), min_agreement=0)
    assert not os.path.exists(tmp_path / "out")
