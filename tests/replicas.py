"""Small replicas of the datasets as they are released, written from each format's published documentation
(methods.md section 1, the Zenodo/Kaggle/AudioSet file descriptions): the real file names, header lines,
comment lines, CSV quoting, audio naming and real class names (AudioSet's with commas). They do not use
the synthetic generator, so the readers' assumptions are checked against the formats, not against
themselves. The audio is generated: a class-specific harmonic tone in noise, at the rates, lengths and
encodings each release uses."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import soundfile


def _signal(labels: list[str], vocabulary: list[str], seconds: float, rate: int, rng) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mix = 0.02 * rng.standard_normal(len(t))
    for label in labels:
        base = 150.0 * 1.5 ** vocabulary.index(label)
        tone = sum(np.sin(2 * np.pi * base * k * t + rng.uniform(0, 2 * np.pi)) / k for k in (1, 2, 3))
        mix += 0.2 * tone * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(1, 4) * t))
    return mix / max(1.0, float(np.max(np.abs(mix))) / 0.9)


def _audio(path: Path, labels, vocabulary, rng, rate=44100, channels=1, subtype="PCM_16", seconds=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    seconds = seconds if seconds is not None else float(rng.uniform(0.4, 2.5))
    signal = _signal(list(labels), list(vocabulary), seconds, rate, rng)
    data = np.stack([signal] * channels, axis=1) if channels > 1 else signal
    soundfile.write(str(path), data, rate, subtype=subtype)


def _csv_text(rows, quote_all=False) -> str:
    """Python's csv module quotes exactly the fields with commas, as the releases do (QUOTE_MINIMAL)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
    writer.writerows(rows)
    return buffer.getvalue()


def _write(path: Path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _labelled(rng, vocabulary, per_split: dict[str, int], parents: dict[str, str]) -> list[tuple[str, list[str]]]:
    """(split, labels) for each clip: every leaf in every split (round robin), sometimes a second leaf,
    labels propagated to their parents."""
    leaves = [label for label in vocabulary if label not in parents.values()]
    clips = []
    for split, count in per_split.items():
        for index in range(count):
            chosen = [leaves[index % len(leaves)]]
            if rng.uniform() < 0.25:
                chosen.append(leaves[(index + 1) % len(leaves)])
            labels = []
            for leaf in chosen:
                for label in (leaf, parents.get(leaf)):
                    if label and label not in labels:
                        labels.append(label)
            clips.append((split, labels))
    return clips


FSD50K_CLASSES = [  # (label, mid) as in FSD50K's vocabulary.csv
    ("Bark", "/m/05tny_"), ("Dog", "/m/0bt9lr"), ("Male_speech_and_man_speaking", "/m/05zppz"),
    ("Speech", "/m/09x0r"), ("Electric_guitar", "/m/02sgy"), ("Guitar", "/m/0342h"), ("Raindrop", "/m/07r10fb"),
    ("Rain", "/m/06mb1")]
FSD50K_PARENTS = {"Bark": "Dog", "Male_speech_and_man_speaking": "Speech", "Electric_guitar": "Guitar",
                  "Raindrop": "Rain"}


def fsd50k(root: Path, clips_per_split=(24, 12, 16), seed=0) -> Path:
    """FSD50K (Zenodo 4060432): ground truth, vocabulary without a header, Freesound ids as clip names,
    the metadata JSON with uploaders, the documentation folder, 44.1 kHz 16-bit mono WAV."""
    rng = np.random.default_rng(seed)
    labels_only = [label for label, _ in FSD50K_CLASSES]
    mids = dict(FSD50K_CLASSES)
    _write(root / "FSD50K.ground_truth" / "vocabulary.csv",
           _csv_text([(index, label, mid) for index, (label, mid) in enumerate(FSD50K_CLASSES)]))
    clips = _labelled(rng, labels_only, dict(zip(("train", "val", "eval"), clips_per_split)), FSD50K_PARENTS)
    dev, evaluation, info = [("fname", "labels", "mids", "split")], [("fname", "labels", "mids")], {}
    for index, (split, labels) in enumerate(clips):
        fname = str(64760 + 37 * index)
        row = (fname, ",".join(labels), ",".join(mids[label] for label in labels))
        # FSD50K's val uploaders are kept out of train; a few uploaders, each on one side
        uploader = f"{split}_user{index % 3}"
        (evaluation.append(row) if split == "eval" else dev.append(row + (split,)))
        info.setdefault("eval" if split == "eval" else "dev", {})[fname] = {
            "title": f"clip {fname}.wav", "description": "recorded at home", "tags": labels,
            "license": "http://creativecommons.org/licenses/by/3.0/", "uploader": uploader}
        folder = "FSD50K.eval_audio" if split == "eval" else "FSD50K.dev_audio"
        _audio(root / folder / f"{fname}.wav", labels, labels_only, rng)
    _write(root / "FSD50K.ground_truth" / "dev.csv", _csv_text(dev))
    _write(root / "FSD50K.ground_truth" / "eval.csv", _csv_text(evaluation))
    for part, clips_info in info.items():
        _write(root / "FSD50K.metadata" / f"{part}_clips_info_FSD50K.json", json.dumps(clips_info))
    _write(root / "FSD50K.doc" / "README.md", "FSD50K: an open dataset of human-labeled sound events\n")
    return root


FSDNOISY18K_CLASSES = [("Acoustic_guitar", "/m/042v_gx"), ("Coin_(dropping)", "/m/0242l"), ("Fire", "/m/02_41"),
                       ("Rain", "/m/06mb1"), ("Walk_and_footsteps", "/m/07pbtc8")]


def fsdnoisy18k(root: Path, train_clips=45, test_clips=15, seed=1) -> Path:
    """FSDnoisy18k (Zenodo 2529934): single-label, `fname` with its extension, the manually_verified and
    noisy_small flags; a fifth of train verified; some noisy labels wrong (the audio is another class)."""
    rng = np.random.default_rng(seed)
    labels_only = [label for label, _ in FSDNOISY18K_CLASSES]
    mids = dict(FSDNOISY18K_CLASSES)
    train = [("fname", "label", "aso_id", "manually_verified", "noisy_small")]
    for index in range(train_clips):
        label = labels_only[index % len(labels_only)]
        verified = index % 5 == 0
        heard = label if verified or rng.uniform() < 0.7 else labels_only[(index + 2) % len(labels_only)]
        fname = f"{171479 + 13 * index}.wav"
        train.append((fname, label, mids[label], int(verified), int(not verified and index % 2 == 0)))
        _audio(root / "FSDnoisy18k.audio_train" / fname, [heard], labels_only, rng)
    test = [("fname", "label", "aso_id")]
    for index in range(test_clips):
        label = labels_only[index % len(labels_only)]
        fname = f"{20 + 7 * index}.wav"
        test.append((fname, label, mids[label]))
        _audio(root / "FSDnoisy18k.audio_test" / fname, [label], labels_only, rng)
    _write(root / "FSDnoisy18k.meta" / "train.csv", _csv_text(train))
    _write(root / "FSDnoisy18k.meta" / "test.csv", _csv_text(test))
    return root


FSDKAGGLE2019_CLASSES = ["Bark", "Bathtub_(filling_or_washing)", "Raindrop", "Trickle_and_dribble",
                         "Accelerating_and_revving_and_vroom"]


def fsdkaggle2019(root: Path, clips=(25, 25, 15), seed=2) -> Path:
    """FSDKaggle2019 (Zenodo 3612637): the post-competition metadata with their extra columns, hexadecimal
    clip names, the vocabulary without a header, 44.1 kHz WAV; multi-label with quoted label lists."""
    rng = np.random.default_rng(seed)
    meta = root / "FSDKaggle2019.meta"
    _write(meta / "vocabulary.csv", _csv_text(list(enumerate(FSDKAGGLE2019_CLASSES))))
    headers = {"train_curated": ("fname", "labels", "freesound_id", "license"),
               "train_noisy": ("fname", "labels", "yfcc_id", "license"),
               "test": ("fname", "labels", "usage", "freesound_id", "license")}
    for (split, header), count in zip(headers.items(), clips):
        rows = [header]
        for split_, labels in _labelled(rng, FSDKAGGLE2019_CLASSES, {split: count}, {}):
            fname = f"{int(rng.integers(16 ** 7, 16 ** 8)):08x}.wav"
            extra = ("Public",) if split == "test" else ()
            rows.append((fname, ",".join(labels)) + extra + (str(int(rng.integers(1000, 400000))), "CC-BY"))
            _audio(root / f"FSDKaggle2019.audio_{split}" / fname, labels, FSDKAGGLE2019_CLASSES, rng)
        _write(meta / f"{split}_post_competition.csv", _csv_text(rows))
    return root


FSDKAGGLE2018_CLASSES = ["Hi-hat", "Saxophone", "Burping_or_eructation", "Violin_or_fiddle", "Drawer_open_or_close"]


def fsdkaggle2018(root: Path, clips=(30, 12), seed=5) -> Path:
    """FSDKaggle2018 (Zenodo 2552860): `train_post_competition.csv` and
    `test_post_competition_scoring_clips.csv` with their Freesound id and license columns, hexadecimal names,
    about 40% of the train clips verified, and padding clips in `audio_test/` that no file lists."""
    rng = np.random.default_rng(seed)
    meta = root / "FSDKaggle2018.meta"
    train = [("fname", "label", "manually_verified", "freesound_id", "license")]
    test = [("fname", "label", "usage", "freesound_id", "license")]
    for split, count, rows in (("train", clips[0], train), ("test", clips[1], test)):
        for index in range(count):
            label = FSDKAGGLE2018_CLASSES[index % len(FSDKAGGLE2018_CLASSES)]
            fname = f"{int(rng.integers(16 ** 7, 16 ** 8)):08x}.wav"
            middle = (str(int(index % 5 < 2)),) if split == "train" else (("Public", "Private")[index % 2],)
            rows.append((fname, label) + middle + (str(int(rng.integers(1000, 400000))),
                                                   "Attribution" if index % 3 else "Creative Commons 0"))
            _audio(root / f"FSDKaggle2018.audio_{split}" / fname, [label], FSDKAGGLE2018_CLASSES, rng)
    for index in range(3):  # padding clips: in the audio folder, scored by nobody
        _audio(root / "FSDKaggle2018.audio_test" / f"{int(rng.integers(16 ** 7, 16 ** 8)):08x}.wav",
               [FSDKAGGLE2018_CLASSES[index]], FSDKAGGLE2018_CLASSES, rng)
    _write(meta / "train_post_competition.csv", _csv_text(train))
    _write(meta / "test_post_competition_scoring_clips.csv", _csv_text(test))
    return root


AUDIOSET_CLASSES = [  # (index, mid, display_name) from AudioSet's class_labels_indices.csv
    (0, "/m/09x0r", "Speech"), (1, "/m/05zppz", "Male speech, man speaking"),
    (2, "/m/02zsn", "Female speech, woman speaking"), (72, "/m/0bt9lr", "Dog"), (74, "/m/05tny_", "Bark"),
    (308, "/m/0912c9", "Vehicle horn, car horn, honking")]
AUDIOSET_PARENTS = {"Male speech, man speaking": "Speech", "Female speech, woman speaking": "Speech",
                    "Bark": "Dog"}


def audioset(root: Path, clips=(40, 16), seed=3) -> Path:
    """AudioSet as released (class_labels_indices.csv with every display name quoted, segment CSVs with
    their three comment lines and `, `-separated fields) and as downloaded: `Y<YTID>.wav` at 32 kHz
    (PANNs' scripts), some clips never downloaded (deleted videos), 10 s segments. A fifth of the train
    clips have lost their child label (the missing labels the experiment recovers)."""
    rng = np.random.default_rng(seed)
    names = [name for _, _, name in AUDIOSET_CLASSES]
    mids = {name: mid for _, mid, name in AUDIOSET_CLASSES}
    _write(root / "class_labels_indices.csv",
           "index,mid,display_name\n" + "".join(f'{index},{mid},"{name}"\n' for index, mid, name in AUDIOSET_CLASSES))
    for (subset, folder), count in zip((("balanced_train", "balanced_train"), ("eval", "eval")), clips):
        lines = [f"# Segments csv created Sun Mar  5 10:54:31 2017\n# num_ytids={count}, num_segs={count}, "
                 f"num_unique_labels={len(names)}, num_positive_labels={count}\n"
                 "# YTID, start_seconds, end_seconds, positive_labels\n"]
        for index, (_, labels) in enumerate(_labelled(rng, names, {subset: count}, AUDIOSET_PARENTS)):
            ytid = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"), 11))
            start = float(rng.integers(0, 60)) * 10
            listed = [label for label in labels if not (subset != "eval" and index % 5 == 1
                                                        and label not in AUDIOSET_PARENTS.values())] or labels
            lines.append(f'{ytid}, {start:.3f}, {start + 10:.3f}, "{",".join(mids[label] for label in listed)}"\n')
            if index % 10 != 9:  # every tenth video was deleted before the download
                _audio(root / "audio" / folder / f"Y{ytid}.wav", labels, names, rng, rate=32000, seconds=10.0)
        _write(root / f"{subset}_segments.csv", "".join(lines))
    return root


FOLDER_CLASSES = ["dog bark", "door knock", "water, running"]


def folder(root: Path, clips=(18, 9, 9), seed=4) -> Path:
    """A researcher's own folder, zipped on macOS and unzipped elsewhere: `Training/`, `validation/`,
    `evaluation/` split folders, class names with spaces and a comma, WAV at 48 kHz stereo, FLAC and
    OGG, the `__MACOSX/` and `._*` companions, a `.DS_Store` and a notes file."""
    rng = np.random.default_rng(seed)
    encodings = ((".wav", 48000, 2, "PCM_24"), (".flac", 44100, 1, "PCM_16"), (".ogg", 22050, 1, "VORBIS"))
    for split, count in zip(("Training", "validation", "evaluation"), clips):
        for index in range(count):
            label = FOLDER_CLASSES[index % len(FOLDER_CLASSES)]
            extension, rate, channels, subtype = encodings[index % len(encodings)]
            name = f"take {index:02d}{extension}"
            _audio(root / split / label / name, [label], FOLDER_CLASSES, rng, rate, channels, subtype)
            (root / "__MACOSX" / split / label).mkdir(parents=True, exist_ok=True)
            (root / "__MACOSX" / split / label / f"._{name}").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00")
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    _write(root / "notes.txt", "recorded with a handheld recorder\n")
    return root


def own_folder(root: Path, sources=12, takes=3, seed=6) -> Path:
    """The most common layout of one's own audio: a folder of class folders, no split folders; several takes
    of each recording session, named `<session>_take<n>` (sessions must stay on one side of a split)."""
    rng = np.random.default_rng(seed)
    for source in range(sources):
        label = FOLDER_CLASSES[source % len(FOLDER_CLASSES)]
        for take in range(takes):
            _audio(root / label / f"session{source:02d}_take{take}.wav", [label], FOLDER_CLASSES, rng, 44100, 1,
                   "PCM_16")
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    return root


REPLICAS = {"fsd50k": fsd50k, "fsdnoisy18k": fsdnoisy18k, "fsdkaggle2019": fsdkaggle2019,
            "fsdkaggle2018": fsdkaggle2018,
            "audioset": audioset, "folder": folder}
