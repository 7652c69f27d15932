"""Feature-extraction throughput and memory: the Beam job against a librosa reference, in one run.

    python benchmarks/feature_extraction.py [--clips 200] [--large-clips 2000] [--long-minutes 60]
        [--workers-clips 8000] [--repeats 3] [--workdir DIR]

Prints audio-seconds per CPU-second (x real time per core) for
  - the Beam job (DirectRunner, one worker), measured around the pipeline run inside its own process
    (the process's one-off imports of Beam and the audio libraries are reported separately),
  - the same work without Beam (the feature functions: decode to encoded examples), the job's target
    reference: on the `--large-clips` clips it runs `--repeats` times in turn with the job, each in a fresh
    process, and the share is the median of the paired ratios (this machine's speed drifts by 30% within
    minutes, so a reference timed apart from the job is no reference); beside it, the CPU the job itself
    spent inside those functions (wrapped with timers) as a share of the job's CPU, and
  - librosa: `librosa.load(sr=22050)` + `librosa.feature.melspectrogram` with the same parameters, warmed up
    (for context),
on the same clips (synthetic, mixed sample rates and channel counts), their ratio, and the job's peak
resident memory at two dataset sizes (it must not grow with the number of clips) and with one
`--long-minutes` clip added to the small set (it must stay bounded in clip length: target < 200 MiB more),
the memory a view of each feature set adds (beam_jobs.resplit on an uploader re-split of the train clips: flat),
and the wall-clock speed-up of 2 local worker processes over 1 on `--workers-clips` clips, `--repeats` runs
each in turn, median (target >= 1.7x; the job picks one worker per beam_jobs.runner.ITEMS_PER_LOCAL_WORKER
clips, up to the task's CPUs; benchmarks/scale.py measures the speed-up at 10,000 and 50,000 clips), and on
the clips beyond `--clips` alone (each run's wall time less that of the same worker count on the `--clips`
set: the speed-up without the worker processes' start-up).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def prepare(workdir: str, clips: int) -> str:
    """A synthetic FSD50K dataset and its manifest; returns the manifest folder."""
    from beam_jobs import ingest, synthetic

    root, manifest_dir = os.path.join(workdir, f"data{clips}"), os.path.join(workdir, f"manifest{clips}")
    if not os.path.exists(os.path.join(manifest_dir, "manifest.jsonl")):
        synthetic.generate(root, clips, seed=1)
        ingest.ingest(root, manifest_dir)
    return manifest_dir


def with_long_clip(workdir: str, manifest_dir: str, minutes: float) -> str:
    """The manifest plus one clip of `minutes` of noise (44.1 kHz mono 16-bit WAV, written in blocks)."""
    import dataclasses

    import numpy as np
    import soundfile

    from beam_jobs.contracts.manifest import read_manifest, write_manifest

    path, long_manifest = os.path.join(workdir, "long.wav"), os.path.join(workdir, f"manifest_long{minutes:g}")
    rng = np.random.default_rng(0)
    with soundfile.SoundFile(path, "w", samplerate=44100, channels=1, subtype="PCM_16") as sound:
        for _ in range(int(minutes)):
            sound.write((0.1 * rng.standard_normal(44100 * 60)).astype(np.float32))
    manifest = read_manifest(manifest_dir)
    row = dataclasses.replace(manifest.rows[0], clip_id="long", audio_path=path, split="train")
    write_manifest(long_manifest, dataclasses.replace(manifest, rows=manifest.rows + (row,)))
    return long_manifest


def audio_seconds(manifest_dir: str) -> float:
    import soundfile

    from beam_jobs.contracts.manifest import read_manifest

    return sum(soundfile.info(row.audio_path).duration for row in read_manifest(manifest_dir).rows)


ONE_WORKER = ["--direct_num_workers=1"]
TWO_WORKERS = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]


def beam_worker(manifest_dir: str, output_dir: str, beam_args: list[str]) -> dict:
    """Runs inside a fresh process: the extraction job alone, CPU time over all its threads (worker processes'
    CPU is not counted: compare several workers by wall time), and the CPU time that the job's in-process
    worker spent inside the feature functions (clip_log_mel and encode_patch, timed by wrapping them)."""
    started_cpu = time.process_time()
    from beam_jobs.contracts import features, schema
    from beam_jobs.extract import extract  # noqa: F401  (imports Beam, SciPy, soundfile)

    import_cpu = time.process_time() - started_cpu
    inside = {"cpu_seconds": 0.0}

    def timed(function):
        def call(*args, **kwargs):
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                inside["cpu_seconds"] += time.thread_time() - started
        return call

    features.clip_log_mel, schema.encode_patch = timed(features.clip_log_mel), timed(schema.encode_patch)
    cpu, wall = time.process_time(), time.perf_counter()
    counts = extract(manifest_dir, output_dir, beam_args=beam_args)
    return {"cpu_seconds": time.process_time() - cpu, "wall_seconds": time.perf_counter() - wall,
            "functions_cpu_seconds": inside["cpu_seconds"], "import_cpu_seconds": import_cpu,
            "patches": sum(split["patches"] for split in counts.values()),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def in_fresh_process(*arguments: str) -> dict:
    command = [sys.executable, __file__, *arguments]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPOSITORY,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_beam(manifest_dir: str, output_dir: str, beam_args: list[str] = ONE_WORKER) -> dict:
    shutil.rmtree(output_dir, ignore_errors=True)  # a repeat writes afresh
    return in_fresh_process("--worker", manifest_dir, output_dir, *beam_args)


def write_train_resplit(manifest_dir: str, split_manifest_dir: str) -> None:
    """The split manifest a view benchmarks: the train clips re-split by uploader (select_train_set's)."""
    from beam_jobs.contracts.manifest import read_manifest, write_manifest
    from beam_jobs.splits import resplit, select_train_pool, split_report_file

    split, report = resplit(select_train_pool(read_manifest(manifest_dir), ("train",), ""), "uploader", 0.15, 0)
    write_manifest(split_manifest_dir, split, split_report_file(report))


def view_worker(features_dir: str, manifest_dir: str, output_dir: str) -> dict:
    """Runs inside a fresh process: a view of the feature set (an uploader re-split of its train clips); its
    memory above the process's after the imports."""
    import importlib

    importlib.import_module("tensorflow")  # the view decodes records with its protobuf classes: a one-off import

    from beam_jobs.resplit import resplit_features as view

    for folder in (output_dir, output_dir + "_split"):  # a repeat writes afresh
        shutil.rmtree(folder, ignore_errors=True)
    write_train_resplit(manifest_dir, output_dir + "_split")
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    view(features_dir, output_dir + "_split", output_dir, beam_args=ONE_WORKER)
    return {"added_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - baseline}


def functions_worker(manifest_dir: str) -> dict:
    """Runs inside a fresh process, like the job: the feature functions' CPU seconds, after a warm-up."""
    run_feature_functions(manifest_dir, limit=20)
    return {"cpu_seconds": run_feature_functions(manifest_dir)}


def run_feature_functions(manifest_dir: str, limit: int | None = None) -> float:
    """CPU seconds of the job's work without Beam: decode, resample, log-mel, patches, encoded examples (one
    BLAS thread and the allocator settings, as the job's workers run), on the manifest's first `limit` clips
    (None: all)."""
    import numpy as np
    import threadpoolctl

    from beam_jobs.runner import keep_freed_memory

    from beam_jobs.contracts import features, schema
    from beam_jobs.contracts.manifest import read_manifest
    from beam_jobs.contracts.params import FeatureParams

    keep_freed_memory()
    params, manifest = FeatureParams(), read_manifest(manifest_dir)
    rows, labels = manifest.rows[:limit], np.zeros(len(manifest.vocabulary), dtype=np.float32)
    with threadpoolctl.threadpool_limits(1):
        started = time.process_time()
        for row in rows:
            log_mel, _ = features.clip_log_mel(row.audio_path, params)
            for index, patch in enumerate(features.examples_of(log_mel, params)):
                schema.encode_patch(row.clip_id, index, patch, labels, labels)
        return time.process_time() - started


def run_librosa(manifest_dir: str) -> float:
    import librosa
    import numpy as np

    from beam_jobs.contracts.manifest import read_manifest
    from beam_jobs.contracts.params import FeatureParams

    params = FeatureParams()
    rows = read_manifest(manifest_dir).rows
    started = time.process_time()
    for row in rows:
        waveform, _ = librosa.load(row.audio_path, sr=params.sample_rate, mono=True)
        mel = librosa.feature.melspectrogram(
            y=waveform, sr=params.sample_rate, n_fft=params.n_fft, hop_length=params.hop_length,
            win_length=params.win_length, window=params.window, n_mels=params.n_mels, fmin=params.fmin,
            fmax=params.fmax, pad_mode="constant")
        np.log(mel + params.log_offset)
    return time.process_time() - started


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--large-clips", type=int, default=2000)
    parser.add_argument("--long-minutes", type=float, default=60)
    parser.add_argument("--workers-clips", type=int, default=8000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default="")
    args = parser.parse_args(argv)
    workdir = args.workdir or tempfile.mkdtemp(prefix="feature_benchmark_")
    print(f"workdir {workdir}")

    small, large = prepare(workdir, args.clips), prepare(workdir, args.large_clips)
    small_audio, large_audio = audio_seconds(small), audio_seconds(large)
    run_librosa(small)  # warm-up: numba compiles librosa's kernels on first use
    librosa_speed = small_audio / run_librosa(small)
    beam_small = run_beam(small, os.path.join(workdir, "features_small"))
    pairs = []
    for _ in range(args.repeats):  # in turn, so that both see the same machine
        beam = run_beam(large, os.path.join(workdir, "features_large"))
        functions = in_fresh_process("--functions", large)
        pairs.append((large_audio / beam["cpu_seconds"], large_audio / functions["cpu_seconds"], beam))
    beam_speeds, function_speeds = [pair[0] for pair in pairs], [pair[1] for pair in pairs]
    beam_speed, functions_speed = statistics.median(beam_speeds), statistics.median(function_speeds)
    share = statistics.median(pair[0] / pair[1] for pair in pairs)
    beam_large = min((pair[2] for pair in pairs), key=lambda run: abs(large_audio / run["cpu_seconds"] - beam_speed))

    print(f"\n{args.large_clips} clips, {large_audio:.0f} s of audio (44.1/48/32/22.05 kHz, mono and stereo), "
          f"{args.repeats} runs in turn, x real time per core:")
    print(f"  Beam job (DirectRunner, one worker): {', '.join(f'{speed:.0f}' for speed in beam_speeds)}; "
          f"median {beam_speed:.0f}")
    print(f"  feature functions, no Beam:          {', '.join(f'{speed:.0f}' for speed in function_speeds)}; "
          f"median {functions_speed:.0f}")
    small_speed = small_audio / beam_small["cpu_seconds"]
    marginal_speed = (large_audio - small_audio) / (beam_large["cpu_seconds"] - beam_small["cpu_seconds"])
    print(f"  Beam job at {args.clips} clips: {small_speed:.0f}; steady state (the {args.large_clips - args.clips} "
          f"extra clips, without the job's fixed cost): {marginal_speed:.0f}")
    print(f"  librosa load + melspectrogram, {args.clips} clips, warmed up: {librosa_speed:.0f} (context only: "
          f"librosa is no target)")
    print(f"  Beam process start-up (imports Beam and the audio libraries), once per worker: "
          f"{beam_small['import_cpu_seconds']:.1f} CPU s")
    print(f"target: Beam job >= 1000x real time per core at {args.large_clips} clips: {beam_speed:.0f}x, "
          f"{verdict(beam_speed >= 1000)}")
    print(f"target: Beam job >= 70% of the feature functions' rate (median of the paired ratios): {share:.1%}, "
          f"{verdict(share >= 0.7)}")
    inside = [pair[2]["functions_cpu_seconds"] / pair[2]["cpu_seconds"] for pair in pairs]
    print(f"  the same functions timed inside each job run, share of its CPU: {', '.join(f'{x:.0%}' for x in inside)} "
          f"(median CPU in them: {statistics.median(pair[2]['functions_cpu_seconds'] for pair in pairs):.2f} s inside "
          f"the job, {statistics.median(large_audio / pair[1] for pair in pairs):.2f} s alone)")
    memory_ratio = beam_large["peak_rss_mib"] / beam_small["peak_rss_mib"]
    print(f"target: memory flat in the number of clips: peak {beam_small['peak_rss_mib']:.0f} MiB at {args.clips} "
          f"clips, {beam_large['peak_rss_mib']:.0f} MiB at {args.large_clips} (ratio {memory_ratio:.2f}), "
          f"{verdict(memory_ratio <= 1.15)}")
    views = [in_fresh_process("--view", os.path.join(workdir, name), manifest, os.path.join(workdir, f"view_{name}"))
             for name, manifest in (("features_small", small), ("features_large", large))]
    print(f"target: a view's memory flat in the number of clips: +{views[0]['added_mib']:.0f} MiB at {args.clips} "
          f"clips, +{views[1]['added_mib']:.0f} MiB at {args.large_clips} (beyond its imports), "
          f"{verdict(views[1]['added_mib'] <= max(1.15 * views[0]['added_mib'], views[0]['added_mib'] + 50))}")
    beam_long = run_beam(with_long_clip(workdir, small, args.long_minutes), os.path.join(workdir, "features_long"))
    added = beam_long["peak_rss_mib"] - beam_small["peak_rss_mib"]
    print(f"target: bounded in clip length: one {args.long_minutes:g}-minute clip added to the {args.clips} clips: "
          f"{beam_long['peak_rss_mib']:.0f} MiB, {added:+.0f} MiB (< 200 MiB), {verdict(added < 200)}")

    many = prepare(workdir, args.workers_clips)
    speedups, marginal_speedups = [], []
    for _ in range(args.repeats):
        walls = {(size, name): run_beam(manifest, os.path.join(workdir, f"features_{name}"), beam_args)["wall_seconds"]
                 for size, manifest in ((args.clips, small), (args.workers_clips, many))
                 for name, beam_args in (("one_worker", ONE_WORKER), ("two_workers", TWO_WORKERS))}
        one, two = walls[args.workers_clips, "one_worker"], walls[args.workers_clips, "two_workers"]
        one_small, two_small = walls[args.clips, "one_worker"], walls[args.clips, "two_workers"]
        speedups.append(one / two)
        # Without each run's fixed wall time (worker start-up, stages), measured on the small set:
        marginal_speedups.append((one - one_small) / (two - two_small))
        print(f"\n{args.workers_clips} clips on {len(os.sched_getaffinity(0))} cores: 1 worker {one:.1f} s, 2 worker "
              f"processes {two:.1f} s (wall): {speedups[-1]:.2f}x; at {args.clips} clips {one_small:.1f} / "
              f"{two_small:.1f} s; the extra clips alone: {marginal_speedups[-1]:.2f}x", end="")
    speedup = statistics.median(speedups)
    print(f"\n  2 workers on the clips beyond {args.clips} (without the fixed start-up), median: "
          f"{statistics.median(marginal_speedups):.2f}x")
    print(f"target: 2 workers >= 1.7x 1 worker at {args.workers_clips} clips (median): {speedup:.2f}x, "
          f"{verdict(speedup >= 1.7)} (benchmarks/scale.py measures it at FSD50K's size too)")


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--worker":
        sys.path.insert(0, REPOSITORY)
        print(json.dumps(beam_worker(sys.argv[2], sys.argv[3], sys.argv[4:])))
    elif len(sys.argv) == 3 and sys.argv[1] == "--functions":
        sys.path.insert(0, REPOSITORY)
        print(json.dumps(functions_worker(sys.argv[2])))
    elif len(sys.argv) == 5 and sys.argv[1] == "--view":
        sys.path.insert(0, REPOSITORY)
        print(json.dumps(view_worker(*sys.argv[2:])))
    else:
        main()
