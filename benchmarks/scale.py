"""Scale: synthetic FSD50K-format datasets of 10,000 and 50,000 clips through ingest and feature extraction.

    python benchmarks/scale.py [--sizes 10000 50000] [--workdir DIR] [--keep]

Each step runs in its own process, extraction with one local worker (the per-core figure); per size it
prints clips, hours of audio, and each step's wall and CPU seconds per clip and its peak memory. Then the
same extraction again with the job's default worker count (the cores this process may use, one worker per
beam_jobs.runner.ITEMS_PER_LOCAL_WORKER clips) and its wall-clock speed-up over one worker (target on 2 cores:
>= 1.7x at the largest size, FSD50K's). Right before
and after each extraction the feature functions (benchmarks/feature_extraction.py) time a fixed reference
set of 300 clips, in a fresh process: this machine's speed drifts by 30% within minutes, so extraction's
growth is judged on its CPU time per audio second divided by the reference's at the same moment. Then: the
time per clip at the largest size against the smallest (target: within 15%, i.e. linear), the peak-memory
ratio (target: flat, within 15%), and the extrapolation to the real FSD50K (51,197 clips, 108.3 h of audio)
in CPU-hours per step, and in hours on one node and on Dataflow workers of 4 vCPUs at the rate measured here.
The datasets are deleted after each size unless --keep (50,000 clips take ~13 GB of audio and ~12 GB of
features).

The other Beam jobs run on a `--steps-clips` set (default 1,000 clips), one local worker each, in its own
process: a view (a uploader re-split of the train clips), scoring the train split with an untrained VGG-like
classifier of width 1 (inference costs the same whatever the weights), relabelling (tc 10%) and pruning
(Lq, 97th percentile) from those scores. Their CPU per audio hour gives each job's cost on FSD50K (it
includes each run's fixed cost, not the one-off imports).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FSD50K_CLIPS, FSD50K_AUDIO_HOURS = 51197, 108.3
GENERATION_WORKERS = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]  # not measured
REFERENCE_CLIPS = 300
ONE_WORKER = ["--direct_num_workers=1"]
TC_PERCENT = 10.0
DOWNSTREAM_STEPS = ("view", "score", "relabel", "prune")


def run_step(step: str, *args: str) -> dict:
    """One step in a fresh process: its wall and CPU seconds (all threads) and peak resident memory."""
    result = subprocess.run([sys.executable, __file__, "--step", step, *args], capture_output=True, text=True,
                            cwd=REPOSITORY, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if result.returncode != 0:
        raise RuntimeError(f"{step} failed: {result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


STEP_MODULES = {"generate": "beam_jobs.synthetic", "ingest": "beam_jobs.ingest", "extract": "beam_jobs.extract",
                "extract_all_cores": "beam_jobs.extract", "view": "beam_jobs.resplit", "score": "beam_jobs.scoring",
                "relabel": "beam_jobs.relabel", "prune": "beam_jobs.prune"}


def step_main(step: str, args: list[str]) -> dict:
    """Times the step alone: its job's module (Beam; TensorFlow and Keras for the jobs that need them) is
    imported first, and nothing else, so the peak memory is the job's."""
    sys.path[:0] = [REPOSITORY, os.path.join(REPOSITORY, "benchmarks")]
    if step == "functions":  # the reference
        from feature_extraction import audio_seconds, functions_worker

        return {"seconds_per_audio_second": functions_worker(args[0])["cpu_seconds"] / audio_seconds(args[0])}
    if step == "prepare_downstream":
        prepare_downstream(*args)
        return {}
    job = importlib.import_module(STEP_MODULES[step])
    if step in DOWNSTREAM_STEPS:  # they decode records with TensorFlow's protobuf classes: its import (~4 CPU s,
        importlib.import_module("tensorflow")  # once per worker process) is start-up, not work per clip
    if step == "prune":
        from keras_models.losses import LossParams

        loss = LossParams("lq")
    cpu, wall = time.process_time(), time.perf_counter()
    result = {}
    if step == "generate":
        job.generate(args[0], int(args[1]), seed=7, beam_args=GENERATION_WORKERS)
    elif step == "ingest":
        result["clips"] = len(job.ingest(args[0], args[1]).rows)
    elif step in ("extract", "extract_all_cores"):
        counts = job.extract(args[0], args[1], beam_args=ONE_WORKER if step == "extract" else [])
        result["patches"] = sum(split["patches"] for split in counts.values())
        result["rejected"] = sum(split["rejected"] for split in counts.values())
    elif step == "view":
        job.view(*args, beam_args=ONE_WORKER)
    elif step == "score":
        job.score_clips(*args, beam_args=ONE_WORKER)
    elif step == "relabel":
        job.relabel(args[0], args[1], args[2], TC_PERCENT, args[3], beam_args=ONE_WORKER)
    elif step == "prune":
        job.prune(*args, loss=loss, beam_args=ONE_WORKER)
    result.update(cpu_seconds=time.process_time() - cpu, wall_seconds=time.perf_counter() - wall,
                  peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if step == "extract":
        import soundfile

        from beam_jobs.contracts.manifest import read_manifest

        result["audio_seconds"] = sum(soundfile.info(row.audio_path).duration for row in read_manifest(args[0]).rows)
    return result


def measure(workdir: str, clips: int, keep: bool, reference_manifest: str) -> dict:
    root, manifest, features = (os.path.join(workdir, f"{name}{clips}") for name in ("data", "manifest", "features"))
    generated = run_step("generate", root, str(clips))
    ingested = run_step("ingest", root, manifest)
    before = run_step("functions", reference_manifest)
    extracted = run_step("extract", manifest, features)
    after = run_step("functions", reference_manifest)
    shutil.rmtree(features)
    all_cores = run_step("extract_all_cores", manifest, features)
    if not keep:
        for folder in (root, manifest, features):
            shutil.rmtree(folder, ignore_errors=True)
    reference = (before["seconds_per_audio_second"] + after["seconds_per_audio_second"]) / 2
    return {"clips": ingested["clips"], "generate": generated, "ingest": ingested, "extract": extracted,
            "reference": reference, "all_cores": all_cores}


def prepare_downstream(features: str, manifest: str, split_manifest: str, model: str) -> None:
    """An uploader re-split of the train clips, and an untrained VGG-like classifier (width 1) of the
    feature set's shape and vocabulary."""
    from beam_jobs.contracts.feature_set import load_feature_set
    from feature_extraction import write_train_resplit
    from beam_jobs.contracts import model_folder
    from keras_models.architectures import build_model

    write_train_resplit(manifest, split_manifest)
    feature_set = load_feature_set(features)
    model_folder.copy_feature_set_files(features, model)
    build_model("vgg_like", feature_set.input_shape, feature_set.n_classes, 1.0).save(
        model_folder.path(model, model_folder.MODEL_FILE))


def measure_downstream(workdir: str, clips: int, keep: bool) -> dict:
    """The Beam jobs after extraction, each in its own process, on one `clips` set."""
    paths = {name: os.path.join(workdir, f"{name}{clips}") for name in
             ("data", "manifest", "features", "split", "model", "view", "scores", "relabelled", "pruned")}
    run_step("generate", paths["data"], str(clips))
    run_step("ingest", paths["data"], paths["manifest"])
    extracted = run_step("extract", paths["manifest"], paths["features"])
    run_step("prepare_downstream", paths["features"], paths["manifest"], paths["split"], paths["model"])
    steps = {"view": run_step("view", paths["features"], paths["split"], paths["view"]),
             "score": run_step("score", paths["model"], paths["features"], paths["scores"]),
             "relabel": run_step("relabel", paths["features"], paths["manifest"], paths["scores"], paths["relabelled"]),
             "prune": run_step("prune", paths["features"], paths["scores"], paths["pruned"])}
    if not keep:
        for folder in paths.values():
            shutil.rmtree(folder, ignore_errors=True)
    return {"clips": clips, "audio_seconds": extracted["audio_seconds"], "steps": steps}


def reference_set(workdir: str) -> str:
    root, manifest = os.path.join(workdir, "reference_data"), os.path.join(workdir, "reference_manifest")
    if not os.path.exists(os.path.join(manifest, "manifest.jsonl")):
        run_step("generate", root, str(REFERENCE_CLIPS))
        run_step("ingest", root, manifest)
    return manifest


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 50000])
    parser.add_argument("--workdir", default="")
    parser.add_argument("--steps-clips", type=int, default=1000,
                        help="clips of the set that the other Beam jobs run on (0: skip them)")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, REPOSITORY)
    from beam_jobs.runner import available_cpus, local_workers  # here: the steps' processes import only their job

    workdir = args.workdir or tempfile.mkdtemp(prefix="scale_benchmark_")
    print(f"workdir {workdir}")
    runs, reference_manifest = [], reference_set(workdir)
    for clips in sorted(args.sizes):
        run = measure(workdir, clips, args.keep, reference_manifest)
        runs.append(run)
        hours = run["extract"]["audio_seconds"] / 3600
        print(f"\n{run['clips']} clips, {hours:.1f} h of audio, {run['extract']['patches']} patches, "
              f"{run['extract']['rejected']} rejected")
        for step in ("ingest", "extract"):
            figures = run[step]
            print(f"  {step:8} wall {figures['wall_seconds']:8.1f} s  CPU {figures['cpu_seconds']:8.1f} s  "
                  f"{1000 * figures['cpu_seconds'] / run['clips']:6.2f} CPU ms/clip  "
                  f"peak {figures['peak_rss_mib']:5.0f} MiB")
        workers = local_workers(run["clips"])
        print(f"  extract with the default {workers} local worker(s): wall {run['all_cores']['wall_seconds']:.1f} s, "
              f"{run['extract']['wall_seconds'] / run['all_cores']['wall_seconds']:.2f}x one worker's")
        print(f"  reference: the feature functions at {1 / run['reference']:.0f}x real time per core around the "
              f"extraction (extraction: {run['extract']['audio_seconds'] / run['extract']['cpu_seconds']:.0f}x)")
        print(f"  (generating the clips took {run['generate']['wall_seconds']:.0f} s with 2 worker processes)")
    small, large = runs[0], runs[-1]
    print()
    per_clip = [run["ingest"]["cpu_seconds"] / run["clips"] for run in (small, large)]
    growth = per_clip[1] / per_clip[0] - 1
    print(f"target: ingest CPU time per clip at {large['clips']} within 15% of {small['clips']}: "
          f"{growth:+.1%}, {'met' if abs(growth) <= 0.15 else 'NOT met'}")
    per_second = [run["extract"]["cpu_seconds"] / run["extract"]["audio_seconds"] for run in (small, large)]
    raw_growth = per_second[1] / per_second[0] - 1
    growth = (per_second[1] / large["reference"]) / (per_second[0] / small["reference"]) - 1
    print(f"target: extract CPU time per audio second at {large['clips']} within 15% of {small['clips']}, "
          f"relative to the reference: {growth:+.1%}, {'met' if abs(growth) <= 0.15 else 'NOT met'} "
          f"(raw {raw_growth:+.1%}; the reference itself {large['reference'] / small['reference'] - 1:+.1%})")
    speedup = large["extract"]["wall_seconds"] / large["all_cores"]["wall_seconds"]
    cores = available_cpus()
    print(f"target on 2 cores: the default workers ({local_workers(large['clips'])} on {cores} cores) >= 1.7x one "
          f"worker at {large['clips']} clips (wall): {speedup:.2f}x, "
          f"{('met' if speedup >= 1.7 else 'NOT met') if cores == 2 else 'not judged on ' + str(cores) + ' cores'}")
    memory = [run["extract"]["peak_rss_mib"] for run in (small, large)]
    memory_growth = memory[1] / memory[0] - 1
    print(f"target: extraction's peak memory flat (within 15%): {memory[0]:.0f} -> {memory[1]:.0f} MiB, "
          f"{memory_growth:+.1%}, {'met' if abs(memory_growth) <= 0.15 else 'NOT met'}")
    extract_hours = large["extract"]["cpu_seconds"] / large["extract"]["audio_seconds"] * FSD50K_AUDIO_HOURS
    ingest_hours = large["ingest"]["cpu_seconds"] / large["clips"] * FSD50K_CLIPS / 3600
    speed = large["extract"]["audio_seconds"] / large["extract"]["cpu_seconds"]
    print(f"\nFSD50K ({FSD50K_CLIPS} clips, {FSD50K_AUDIO_HOURS} h of audio) at the rates of the "
          f"{large['clips']}-clip run:")
    print(f"  ingest   {ingest_hours:6.3f} CPU-hours, in the KFP task (one process): {60 * ingest_hours:.1f} min")
    print_cost("extract", extract_hours, f"{speed:.0f}x real time per core")
    if args.steps_clips:
        downstream = measure_downstream(workdir, args.steps_clips, args.keep)
        hours = downstream["audio_seconds"] / 3600
        print(f"\nthe other Beam jobs on {downstream['clips']} clips ({hours:.2f} h of audio), one worker each, and "
              f"FSD50K at their rates:")
        for step in DOWNSTREAM_STEPS:
            figures = downstream["steps"][step]
            step_hours = figures["cpu_seconds"] / downstream["audio_seconds"] * FSD50K_AUDIO_HOURS
            print(f"  {step:8} CPU {figures['cpu_seconds']:7.1f} s, wall {figures['wall_seconds']:7.1f} s, "
                  f"peak {figures['peak_rss_mib']:5.0f} MiB")
            print_cost(step, step_hours, f"{downstream['audio_seconds'] / figures['cpu_seconds']:.0f}x real time "
                       "per core")


def print_cost(step: str, cpu_hours: float, rate: str) -> None:
    """A step's FSD50K cost: CPU-hours, and hours on one 16-core node and on Dataflow's 4-vCPU workers."""
    dataflow = ", ".join(f"{workers} workers {60 * cpu_hours / (4 * workers):.1f} min" for workers in (4, 16, 64))
    print(f"  {step:8} {cpu_hours:6.2f} CPU-hours ({rate}): one 16-core node {60 * cpu_hours / 16:.1f} min; "
          f"Dataflow, 4 vCPUs per worker: {dataflow} (plus start-up)")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--step":
        print(json.dumps(step_main(sys.argv[2], sys.argv[3:])))
    else:
        main()
