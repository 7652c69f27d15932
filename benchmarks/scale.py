"""Scale: synthetic FSD50K-format datasets of 10,000 and 50,000 clips through ingest and feature extraction.

    python benchmarks/scale.py [--sizes 10000 50000] [--workdir DIR] [--keep]

Each step runs in its own process, extraction with one local worker (the per-core figure); per size it
prints clips, hours of audio, and each step's wall and CPU seconds per clip and its peak memory. Then: the
time per clip at the largest size against the smallest (target: within 15%, i.e. linear), the peak-memory
ratio (target: flat, within 15%), and the extrapolation to the real FSD50K (51,197 clips, 108.3 h of audio)
in CPU-hours per step, and in hours on one node and on Dataflow workers of 4 vCPUs at the rate measured here.
The datasets are deleted after each size unless --keep (50,000 clips take ~13 GB of audio and ~12 GB of
features).
"""
from __future__ import annotations

import argparse
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


def run_step(step: str, *args: str) -> dict:
    """One step in a fresh process: its wall and CPU seconds (all threads) and peak resident memory."""
    result = subprocess.run([sys.executable, __file__, "--step", step, *args], capture_output=True, text=True,
                            cwd=REPOSITORY, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if result.returncode != 0:
        raise RuntimeError(f"{step} failed: {result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def step_main(step: str, args: list[str]) -> dict:
    """Times the step alone: its modules are imported first."""
    sys.path.insert(0, REPOSITORY)
    import soundfile

    from beam_jobs import ingest, synthetic
    from beam_jobs.contracts.manifest import read_manifest
    from beam_jobs.extract import extract

    cpu, wall = time.process_time(), time.perf_counter()
    result = {}
    if step == "generate":
        synthetic.generate(args[0], int(args[1]), seed=7, beam_args=GENERATION_WORKERS)
    elif step == "ingest":
        result["clips"] = len(ingest.ingest(args[0], args[1]).rows)
    elif step == "extract":
        counts = extract(args[0], args[1], beam_args=["--direct_num_workers=1"])
        result["patches"] = sum(split["patches"] for split in counts.values())
        result["rejected"] = sum(split["rejected"] for split in counts.values())
    result.update(cpu_seconds=time.process_time() - cpu, wall_seconds=time.perf_counter() - wall,
                  peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if step == "extract":
        result["audio_seconds"] = sum(soundfile.info(row.audio_path).duration for row in read_manifest(args[0]).rows)
    return result


def measure(workdir: str, clips: int, keep: bool) -> dict:
    root, manifest, features = (os.path.join(workdir, f"{name}{clips}") for name in ("data", "manifest", "features"))
    generated = run_step("generate", root, str(clips))
    ingested = run_step("ingest", root, manifest)
    extracted = run_step("extract", manifest, features)
    if not keep:
        for folder in (root, manifest, features):
            shutil.rmtree(folder, ignore_errors=True)
    return {"clips": ingested["clips"], "generate": generated, "ingest": ingested, "extract": extracted}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 50000])
    parser.add_argument("--workdir", default="")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    workdir = args.workdir or tempfile.mkdtemp(prefix="scale_benchmark_")
    print(f"workdir {workdir}")
    runs = []
    for clips in sorted(args.sizes):
        run = measure(workdir, clips, args.keep)
        runs.append(run)
        hours = run["extract"]["audio_seconds"] / 3600
        print(f"\n{run['clips']} clips, {hours:.1f} h of audio, {run['extract']['patches']} patches, "
              f"{run['extract']['rejected']} rejected")
        for step in ("ingest", "extract"):
            figures = run[step]
            print(f"  {step:8} wall {figures['wall_seconds']:8.1f} s  CPU {figures['cpu_seconds']:8.1f} s  "
                  f"{1000 * figures['cpu_seconds'] / run['clips']:6.2f} CPU ms/clip  "
                  f"peak {figures['peak_rss_mib']:5.0f} MiB")
        print(f"  (generating the clips took {run['generate']['wall_seconds']:.0f} s with 2 worker processes)")
    small, large = runs[0], runs[-1]
    print()
    for step in ("ingest", "extract"):
        per_clip = [run[step]["cpu_seconds"] / run["clips"] for run in (small, large)]
        growth = per_clip[1] / per_clip[0] - 1
        print(f"target: {step} CPU time per clip at {large['clips']} within 15% of {small['clips']}: "
              f"{growth:+.1%}, {'met' if abs(growth) <= 0.15 else 'NOT met'}")
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
    dataflow = ", ".join(f"{workers} workers {60 * extract_hours / (4 * workers):.1f} min" for workers in (4, 16, 64))
    print(f"  extract  {extract_hours:6.2f} CPU-hours ({speed:.0f}x real time per core): one 16-core node "
          f"{60 * extract_hours / 16:.0f} min; Dataflow, 4 vCPUs per worker: {dataflow} (plus start-up)")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--step":
        print(json.dumps(step_main(sys.argv[2], sys.argv[3:])))
    else:
        main()
