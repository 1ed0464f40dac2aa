"""The SLURM profile (workflow/profiles/slurm) on a real single-node SLURM cluster (tests/slurm/up.sh).

Part of ``make test`` wherever it can run: root on Linux, with the Debian packages munge, slurmctld, slurmd,
slurm-client installed or installable with apt (up.sh installs the missing ones). Skipped with the reason
otherwise, or with S2CAC_SKIP_SLURM=1.

Default (a few minutes on 2 loaded cores): the demo workflow's stages on a tiny synthetic cohort (synthetic
cohort -> nnU-Net raw -> preprocessing -> splits -> 2 x 3 training iterations -> predict and Agatston scores) go
through sbatch with the profile as shipped, except for what a site edits and what this one small node cannot give
(see ``_test_profile``): the partition (the test cluster has no default partition), memory (1 GB per job: the
profile asks up to 32 GB), threads (1 per job: the node has 2 CPUs, and each nnU-Net worker process costs seconds
of imports), the status command (no accounting database, so squeue) and a shorter first status check. GPU
requests are NOT overridden: the node declares one fake GPU (a GRES with no device behind it), so train and
predict really are submitted with ``--gpus=1``; torch sees no CUDA device in them and runs on the CPU. A local
run of the same target (``--cores 1``) runs meanwhile; every output is compared with it. Also by default: a
profile without a partition is refused at sbatch with SLURM's message.

Opt-in with S2CAC_SLURM_FULL=1 (a few minutes more; they wait for SLURM's time-limit enforcement and for
failing jobs): a training job killed by its time limit resumes from its last epoch in the resubmitted job, and a
failing job is reported with its SLURM job id and logs and finished by a rerun.

Every snakemake call is bounded by S2CAC_SLURM_TEST_TIMEOUT seconds (default 600) and killed with its whole
process group after that, so a hang fails instead of stalling CI. The cluster is torn down by PID
(tests/slurm/down.sh) after the tests, and by a watchdog process if pytest itself is killed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent))
PROFILE = ROOT / "workflow" / "profiles" / "slurm" / "config.yaml"
UP, DOWN = ROOT / "tests" / "slurm" / "up.sh", ROOT / "tests" / "slurm" / "down.sh"
# s for one snakemake invocation: a hang fails the test instead of stalling CI (raise it on a loaded machine)
RUN_TIMEOUT = float(os.environ.get("S2CAC_SLURM_TEST_TIMEOUT", 600))
FULL = os.environ.get("S2CAC_SLURM_FULL") == "1"

pytestmark = [pytest.mark.slow, pytest.mark.slurm]
full_only = pytest.mark.skipif(not FULL, reason="opt-in: S2CAC_SLURM_FULL=1 (waits for SLURM's time limit; minutes)")


def _why_not() -> str | None:
    if os.environ.get("S2CAC_SKIP_SLURM") == "1":
        return "S2CAC_SKIP_SLURM=1"
    if sys.platform != "linux" or os.geteuid() != 0:
        return "needs root on Linux to start munged, slurmctld and slurmd"
    have = all(shutil.which(b) for b in ("slurmctld", "slurmd", "sbatch", "munged"))
    if not have and not (shutil.which("apt-get") and shutil.which("dpkg-query")):
        return "SLURM (munge slurmctld slurmd slurm-client) is not installed and there is no apt-get to install it"
    return None


if _why_not():
    pytest.skip(f"SLURM test skipped: {_why_not()}", allow_module_level=True)


def _run(cmd: list[str], env: dict, timeout: float, **kw) -> subprocess.CompletedProcess:
    """subprocess.run in its own process group; past ``timeout`` the whole group gets SIGINT (snakemake cancels
    its SLURM jobs), then SIGKILL, and the test fails with the output so far."""
    with subprocess.Popen(cmd, env=env, text=True, start_new_session=True, **kw) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop_group(proc)
            out, err = proc.communicate()
            tail = ((out or "") + (err or ""))[-3000:]
            raise AssertionError(f"timed out after {timeout:.0f} s: {' '.join(cmd)}\n{tail}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _stop_group(proc: subprocess.Popen, grace: float = 30) -> None:
    """SIGINT to the process group of ``proc`` (like Ctrl-C), SIGKILL to it after ``grace`` seconds."""
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            pass


@pytest.fixture(scope="module")
def slurm_env():
    """A running single-node cluster; yields the environment for snakemake/squeue; torn down by PID afterwards."""
    # not under pytest's tmp_path: that is mode 700 and munged (user munge) must reach its socket folder
    run = Path(tempfile.mkdtemp(prefix="s2cac-slurm-", dir="/tmp"))
    run.chmod(0o755)
    env = dict(os.environ, SLURM_CONF=str(run / "slurm.conf"), PYTHONPATH=_pythonpath())
    # teardown even if pytest is killed (CI timeout, SIGKILL): a watchdog waits for this process to end, then runs
    # down.sh; the normal teardown below stops the watchdog first (by its PID) and runs down.sh itself
    watchdog = subprocess.Popen(
        ["sh", "-c", 'while kill -0 "$2" 2>/dev/null; do sleep 2; done; "$0" "$1"; rm -rf "$1"',
         str(DOWN), str(run), str(os.getpid())],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        t0 = time.monotonic()
        up = _run([str(UP), str(run)], env, timeout=900, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        print(up.stdout, up.stderr)
        if up.returncode == 2:  # no root, or the packages are missing and apt could not install them
            why = [line for line in up.stderr.splitlines() if line.startswith("slurm up:")] or ["up.sh exit 2"]
            pytest.skip(f"SLURM test skipped: {why[0]}")
        assert up.returncode == 0, f"tests/slurm/up.sh failed:\n{up.stdout}\n{up.stderr}"
        print(f"[slurm] cluster up in {time.monotonic() - t0:.0f} s")
        yield env
    finally:
        watchdog.kill()
        watchdog.wait()
        down = subprocess.run([str(DOWN), str(run)], capture_output=True, text=True, timeout=180, check=False)
        print(down.stdout, down.stderr)
        shutil.rmtree(run, ignore_errors=True)


def _pythonpath() -> str:
    """The checkout first, so that jobs import this tree's s2cac (SLURM jobs inherit the environment)."""
    return os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)


def _test_profile(dest: Path) -> Path:
    """workflow/profiles/slurm with the few settings this test cluster needs (everything else as shipped)."""
    cfg = yaml.safe_load(PROFILE.read_text(encoding="utf-8"))
    cfg["default-resources"]["slurm_partition"] = "debug"  # SITE setting: the cluster has no default partition
    for res in cfg["set-resources"].values():
        if "slurm_partition" in res:
            res["slurm_partition"] = "debug"
        res["mem_mb"] = "1000 * attempt"  # the node has ~20 GB, the profile asks for up to 32 GB per job
        if "cpus_per_gpu" in res:
            res["cpus_per_gpu"] = 1  # the node has 2 CPUs
    cfg["default-resources"]["mem_mb"] = "1000 * attempt"
    # 1 thread per job (the rules ask 2 = the whole node): on 2 shared cores, nnU-Net's 2 worker processes cost
    # more in imports than they save; results do not depend on threads (execution settings)
    cfg["set-threads"] = {
        rule: 1 for rule in ("synthesize_cohort", "nnunet_raw", "nnunet_preprocess", "train", "predict")
    }
    cfg["slurm-status-command"] = "squeue"  # no slurmdbd: sacct cannot answer (MinJobAge=3600 s)
    cfg["slurm-init-seconds-before-status-checks"] = 2  # default 40 s: small jobs finish in seconds
    cfg["latency-wait"] = 5
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return dest


# the smallest cohort whose fold-0 split still has labeled, unlabeled and negative training cases and 2 test cases
SYNTH = {"n_cases": 8, "negative_fraction": 0.25, "seed": 3, "shape_zyx": [8, 64, 64], "overview_cases": 1}
CONFIG = {
    "dataset": {"name": "synthetic", "source": "synthetic", "nnunet_id": 501, "synthetic": SYNTH},
    "preprocess": {"target_spacing": [3.0, 1.4, 1.4], "patch_size": [8, 16, 16]},
    "splits": {"test_fraction": 0.25, "n_folds": 2, "folds": [0], "labeled_ratios": [0.5], "seeds": [0]},
    "training": {
        "run": ["s2cac"],
        "device": "auto",  # CUDA when present: none in the jobs here, so CPU
        "defaults": {
            "network": "tiny",
            "optimizer": "adam",
            "learning_rate": 0.003,
            "epochs": 2,
            "iterations_per_epoch": 3,
            "val_iterations": 1,
            "consistency_ramp_step": 1,
            "consistency_ramp_length": 4,
            "data_workers": 0,
        },
    },
    "experiments": {"s2cac": {}, "long": {"epochs": 1000}},  # long: only in the time-limit test
    "predict": {"device": "auto"},
    "evaluate": {"bootstrap": 200},
}
RUN = "synthetic/s2cac/labeled50/fold0/seed0"
TARGET = f"results/predict/{RUN}"  # test masks and their Agatston scores (scores.csv); evaluation is not needed


def _workdir(path: Path) -> Path:
    (path / "config").mkdir(parents=True)
    (path / "config" / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    return path


def _snakemake(work: Path, env: dict, *args: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    cmd = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(work), *args]
    return _run(cmd, env, timeout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.")


def _submissions(text: str) -> list[tuple[str, str]]:
    """(SLURM job id, SLURM log path) of every sbatch the plugin made, in order."""
    return [(m.group(2), m.group(3)) for m in SUBMITTED.finditer(text)]


def _jobs(env: dict) -> dict[str, dict[str, str]]:
    """SLURM job id -> fields of `scontrol show job` (JobState, Comment, RunTime, TRES, ...) of every job slurmctld
    still knows (MinJobAge=3600 s: all of ours)."""
    out = _run(["scontrol", "-o", "show", "job"], env, 60, stdout=subprocess.PIPE).stdout
    jobs = {}
    for line in out.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if "JobId" in fields:
            jobs[fields["JobId"]] = fields
    return jobs


def _rule(job: dict[str, str]) -> str:
    """The rule of a job submitted by the plugin (its comment: rule_<rule>_wildcards_<...>)."""
    m = re.match(r"rule_(\w+?)_wildcards", job.get("Comment", ""))
    return m.group(1) if m else ""


def _seconds(runtime: str) -> int:
    """SLURM's [D-]HH:MM:SS in seconds."""
    days, _, hms = runtime.rpartition("-")
    h, m, sec = (int(x) for x in hms.split(":"))
    return int(days or 0) * 86400 + h * 3600 + m * 60 + sec


@pytest.fixture(scope="module")
def slurm_demo(slurm_env, tmp_path_factory):
    """The demo workflow run through the SLURM profile, and locally (the reference) at the same time."""
    tmp = tmp_path_factory.mktemp("demo")
    profile = _test_profile(tmp / "profile")
    local, work = _workdir(tmp / "local"), _workdir(tmp / "slurm")
    t0 = time.monotonic()
    # the local reference runs meanwhile (the SLURM run mostly waits for job starts and status checks)
    ref: dict = {}

    def reference():
        try:
            ref["proc"] = _snakemake(local, slurm_env, "--cores", "1", TARGET)
        except AssertionError as e:  # timed out
            ref["error"] = str(e)
        ref["wall"] = time.monotonic() - t0

    ref_thread = threading.Thread(target=reference, daemon=True)
    ref_thread.start()
    try:
        proc = _snakemake(work, slurm_env, "--profile", str(profile), TARGET)
    finally:
        ref_thread.join(RUN_TIMEOUT + 60)  # _run bounds it; this only guards against a stuck thread
    wall = time.monotonic() - t0
    return {"work": work, "local": local, "profile": profile, "proc": proc, "ref": ref, "wall": wall}


def test_demo_workflow_through_slurm_equals_local_run(slurm_env, slurm_demo, capsys):
    """Every stage is a SLURM job (sbatch), train and predict got the (fake) GPU, the outputs equal a local run's,
    and a rerun has nothing to do."""
    work, local, profile, proc, wall = (slurm_demo[k] for k in ("work", "local", "profile", "proc", "wall"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    ref = slurm_demo["ref"]
    assert "proc" in ref, f"local reference run hung: {ref.get('error', 'thread still running')}"
    assert ref["proc"].returncode == 0, (ref["proc"].stdout + ref["proc"].stderr)[-5000:]
    # status by squeue, as the profile override says (the plugin falls back to sacct when it thinks MinJobAge
    # is too short, and sacct has nothing to answer with here: no accounting storage)
    assert "Falling back to 'sacct'" not in out, out[-3000:]

    # every job went through sbatch, and SLURM saw each of them complete
    subs = _submissions(out)
    jobs = _jobs(slurm_env)
    rules = sorted(_rule(jobs[j]) for j, _ in subs)
    stages = ["synthesize_cohort", "nnunet_raw", "nnunet_preprocess", "splits", "train", "predict"]
    assert rules == sorted(stages), rules
    assert {jobs[j]["JobState"] for j, _ in subs} == {"COMPLETED"}, {j: jobs[j]["JobState"] for j, _ in subs}
    for j, _ in subs:  # the gpu resource became --gpus=1 for train and predict only (the node's fake GRES)
        gpu = jobs[j].get("TresPerJob") == "gres:gpu:1"
        assert gpu == (_rule(jobs[j]) in ("train", "predict")), (j, jobs[j].get("TresPerJob"))
    for _, log in subs:  # SLURM's own log of each job, kept by the profile (slurm-keep-successful-logs)
        assert Path(log).is_file() and str(work / "logs" / "slurm") in log, log
    with capsys.disabled():  # in the CI log even under pytest -q
        print(f"\n[slurm] {len(subs)} jobs submitted with sbatch, all COMPLETED; wall time {wall:.0f} s "
              f"(local reference run meanwhile: {ref['wall']:.0f} s)")  # fmt: skip
        for j, _ in subs:
            print(f"[slurm]   job {j:>3} {_rule(jobs[j]):<18} {jobs[j]['JobState']:<9} ran "
                  f"{_seconds(jobs[j]['RunTime']):>3} s  {jobs[j].get('TresPerJob', '')}")  # fmt: skip

    # the same results as the local run
    for rel in (
        "results/data/synthetic/cases.tsv",
        "results/data/synthetic/threshold_baseline.tsv",
        "results/splits/synthetic/seed0/fold0/labeled50.json",
        "results/nnunet/preprocessed/Dataset501_synthetic/nnUNetPlans.json",
    ):
        assert (work / rel).read_bytes() == (local / rel).read_bytes(), rel
    scores = [pd.read_csv(d / TARGET / "scores.csv").drop(columns=["runtime_s", "input"]) for d in (work, local)]
    pd.testing.assert_frame_equal(*scores)  # Agatston, volume, lesions, risk category per test case
    masks = sorted(p.name for p in (local / TARGET).glob("*_cac.nii.gz"))
    assert masks and masks == sorted(p.name for p in (work / TARGET).glob("*_cac.nii.gz"))
    for name in masks:
        a, b = (sitk.GetArrayFromImage(sitk.ReadImage(str(d / TARGET / name))) for d in (work, local))
        assert np.array_equal(a, b), name
    assert "epoch 2/2" in (work / "results" / "models" / RUN / "training_log.txt").read_text(encoding="utf-8")

    again = _snakemake(work, slurm_env, "--profile", str(profile), "-n", TARGET, timeout=120)
    assert "Nothing to be done" in again.stdout + again.stderr


def _running_job(env: dict, rule: str, timeout: float = RUN_TIMEOUT) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for jobid, job in _jobs(env).items():
            if job["JobState"] == "RUNNING" and _rule(job) == rule:
                return jobid
        time.sleep(1)
    raise AssertionError(f"no running {rule} job within {timeout} s")


@full_only
def test_training_killed_by_time_limit_resumes_from_its_checkpoint(slurm_env, slurm_demo, capsys):
    """A training job that hits its time limit (state TIMEOUT) is reported with its SLURM job id and log, then
    resubmitted by the profile's `retries` with more time; the new job continues from the last epoch."""
    work, profile = slurm_demo["work"], slurm_demo["profile"]
    t0 = time.monotonic()
    # the experiment `long` (1000 epochs, to outlive slurmctld's time-limit check every 30 s) reuses the demo's
    # data, preprocessing and splits: only its training job runs; it is stopped once it has resumed
    model = work / "results" / "models" / RUN.replace("s2cac", "long", 1)
    log = work / "snakemake-long.out"
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(work), "--profile", str(profile),
             str((model / "checkpoint_final.pth").relative_to(work))],  # relative: snakemake matches it to a rule
            env=slurm_env, stdout=fh, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while not (model / "checkpoint_latest.pth").is_file():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text(encoding="utf-8")[-5000:]
            time.sleep(1)
        first = _running_job(slurm_env, "train", timeout=60)
        # a 1-minute limit (SLURM counts whole minutes): slurmctld kills the job at its first check (every 30 s)
        # after that (SIGTERM, SIGKILL 5 s later); the 1000 epochs keep it running until then
        assert _run(["scontrol", "update", f"JobId={first}", "TimeLimit=1"], slurm_env, 60).returncode == 0
        resumed = re.compile(r"resuming from .*checkpoint_latest\.pth at epoch (\d+)")
        while not resumed.search(_read(model / "training_log.txt")):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text(encoding="utf-8")[-5000:]
            time.sleep(1)
    finally:
        _stop_group(proc, grace=120)  # like Ctrl-C: snakemake cancels its SLURM jobs (scancel) and exits
    out = log.read_text(encoding="utf-8")
    subs = dict(_submissions(out))
    assert first in subs, out[-5000:]
    assert _jobs(slurm_env)[first]["JobState"] == "TIMEOUT"
    assert f"SLURM-job '{first}' failed, SLURM status is: 'TIMEOUT'" in out, out[-5000:]
    assert subs[first] in out.split(f"SLURM-job '{first}' failed", 1)[1], "the log path follows the failure"
    assert Path(subs[first]).is_file()
    second = [j for j in subs if int(j) > int(first)]
    assert second, "the killed training job was resubmitted"
    epoch = int(resumed.search(_read(model / "training_log.txt")).group(1))
    assert epoch >= 1  # continued after the epochs done before the kill, not from scratch
    with capsys.disabled():
        print(f"\n[slurm] train job {first} TIMEOUT; job {second[0]} resumed it at epoch {epoch} "
              f"({time.monotonic() - t0:.0f} s)")  # fmt: skip


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def test_profile_without_a_partition_is_refused_with_the_sbatch_error(slurm_env, tmp_path):
    """The shipped profile leaves the partition to the site; a cluster without a default partition refuses the
    job at submission and Snakemake says why (no job runs, nothing hangs)."""
    profile = _test_profile(tmp_path / "profile")
    cfg = yaml.safe_load((profile / "config.yaml").read_text(encoding="utf-8"))
    cfg["default-resources"]["slurm_partition"] = ""  # as shipped: SITE setting not made
    (profile / "config.yaml").write_text(yaml.safe_dump(cfg))
    work = _workdir(tmp_path / "slurm")
    proc = _snakemake(work, slurm_env, "--profile", str(profile), "--retries", "0", "results/data/synthetic/cases.tsv",
                      timeout=300)  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "sbatch" in out and "partition" in out.lower(), out[-3000:]


@full_only
def test_failing_job_names_its_slurm_job_and_logs_then_a_rerun_finishes(slurm_env, tmp_path, cohort):
    """A job that fails inside SLURM (state FAILED) is reported with its SLURM job id, SLURM's log and the rule's
    log; after the cause is fixed the same command finishes the work."""
    profile = _test_profile(tmp_path / "profile")
    sheet = cohort.parent / "mine.tsv"  # beside the cohort's images: relative paths resolve there
    # an image that exists (the Snakefile checks that when it is parsed) but is no NIfTI: the import job fails
    (cohort.parent / "images" / "case99.nii.gz").write_bytes(b"not an image")
    sheet.write_text(cohort.read_text(encoding="utf-8").replace("images/case00.", "images/case99.", 1))
    work = tmp_path / "work"
    (work / "config").mkdir(parents=True)
    dataset = {"name": "mine", "source": "case_sheet", "nnunet_id": 77, "case_sheet": str(sheet)}
    (work / "config" / "config.yaml").write_text(yaml.safe_dump({**CONFIG, "dataset": dataset}))
    args = ("--profile", str(profile), "--retries", "0", "results/data/mine/cases.tsv")
    failed = _snakemake(work, slurm_env, *args, timeout=600)
    out = failed.stdout + failed.stderr
    assert failed.returncode != 0, out[-3000:]
    [(jobid, slurm_log)] = _submissions(out)
    assert f"SLURM-job '{jobid}' failed, SLURM status is: 'FAILED'" in out, out[-3000:]
    after = out.split(f"SLURM-job '{jobid}' failed", 1)[1]
    assert slurm_log in after and "logs/import_case_sheet/mine.log" in after, after[:3000]
    assert Path(slurm_log).is_file()
    assert "case99" in (work / "logs" / "import_case_sheet" / "mine.log").read_text(encoding="utf-8")

    sheet.write_text(cohort.read_text(encoding="utf-8"))  # fixed
    rerun = _snakemake(work, slurm_env, *args, timeout=600)
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-3000:]
    assert (work / "results" / "data" / "mine" / "cases.tsv").is_file()
