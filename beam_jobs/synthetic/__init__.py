"""Synthetic sound-event dataset in the real FSD50K on-disk layout (a Beam job, deterministic from --seed).

Twelve procedural leaf classes under four parents form a small AudioSet-style ontology. Each class is a
family of sounds with random variation per instance (pitch, timbre, temporal pattern, band), so that a
small CNN can tell them apart, but not trivially: several classes share bands or pitch ranges and differ
only in temporal pattern. Clips last 0.3 to 10 s and hold 1 to 3 overlapping events at random onsets over
a noise floor; labels are propagated to the parents as in FSD50K. Uploaders specialise and colour their
recordings (see `Uploader`). Besides FSD50K, the job writes the FSDnoisy18k, FSDKaggle2019, AudioSet-style
and class-folder layouts (--format), with controllable label noise and missing positives. Most clips are 44.1 kHz mono 16-bit
WAV; some use other rates or two channels, to exercise the decoder.

    python -m beam_jobs.synthetic --output_dir DIR [--format fsd50k] --clips 500 --seed 0 [beam options]

sounds.py: the ontology, the renderers and the uploaders; clips.py: planning and rendering each clip; job.py:
the Beam job; each format's layout and metadata files: its record in beam_jobs.datasets.formats.
"""
from beam_jobs.datasets.formats import FORMATS
from beam_jobs.synthetic.clips import (MAX_CLIPS, MIN_CLIPS, ClipPlan, Event, SyntheticConfig, event_source,
                                       known_source_mixtures, plan_clip, render_clip, render_sources)
from beam_jobs.synthetic.job import TRUTH_FILE, WriteDataset, audio_path, generate, write_clip, write_metadata
from beam_jobs.synthetic.sounds import (LEAVES, ONTOLOGY, OUT_OF_VOCABULARY, PARENT_OF, RENDERERS, VOCABULARY, Uploader,
                                        colouration, mid, ontology_json, uploader_profile)

__all__ = ["FORMATS", "MAX_CLIPS", "MIN_CLIPS", "ClipPlan", "Event", "SyntheticConfig", "event_source",
           "known_source_mixtures", "plan_clip", "render_clip", "render_sources", "TRUTH_FILE", "WriteDataset",
           "audio_path", "generate", "write_clip", "write_metadata", "LEAVES", "ONTOLOGY", "OUT_OF_VOCABULARY",
           "PARENT_OF", "RENDERERS", "VOCABULARY", "Uploader", "colouration", "mid", "ontology_json",
           "uploader_profile"]
