"""Where the worker's training job runs: in the worker's process, or in N processes under torchrun.

The worker keeps the lease, the gate and the registry; only ``Learner.learn`` on the window moves.
With ``nproc > 1`` the candidate (champion state included) and the window are written to a
temporary job directory, and ``torchrun --standalone --nproc-per-node N -m lifelong.system.launch
JOB`` (``torch.distributed.run``, run in a child that dies with the worker) trains it data-parallel (gloo on CPU, NCCL on CUDA, one GPU per
process), and rank 0's checkpoint comes back as the trained candidate. The job keeps the global
batch size: each of the N processes trains on ``batch_size / N`` samples of its shard per step;
memories are global sizes too (each rank keeps its share, rank 0's checkpoint holds them all).
Rank 0 marks the job complete once every rank is past the checkpoint's final barrier; a rank that
dies after that (gloo can abort a process whose peer closed its sockets first) is logged, not a
failure: nothing of the job's work is lost.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lifelong.data.dataset import Dataset
from lifelong.data.scenarios import Experience
from lifelong.errors import ConfigError, TrainingError
from lifelong.learn.devices import resolve_device
from lifelong.learn.learner import Learner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Compute:
    """What a training job runs on: ``device``, ``nproc`` processes, ``threads`` torch threads each.

    ``plugins`` are the modules the job's processes import first (the worker's ``--plugin``s), so
    a plugin model or strategy is registered there too.
    """

    device: str = "cpu"
    nproc: int = 1
    threads: int = 1
    plugins: tuple[str, ...] = field(default=())
    timeout_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.nproc < 1 or self.threads < 1:
            raise ConfigError(f"--nproc and --threads must be >= 1, got {self.nproc} and {self.threads}")
        device = resolve_device(self.device)
        if device.type == "mps" and self.nproc > 1:
            raise ConfigError("--nproc > 1 needs cpu or cuda: torch.distributed has no MPS backend")
        if device.type == "cuda" and self.nproc > torch.cuda.device_count():
            raise ConfigError(
                f"--nproc {self.nproc} on CUDA runs one process per GPU; this machine has "
                f"{torch.cuda.device_count()}: lower --nproc or use --device cpu"
            )


#: a job directory is named for the worker process it belongs to: ``lifelong-job-<pid>-<random>``
JOB_PREFIX = "lifelong-job-"


def remove_orphaned_jobs(root: str | None = None) -> list[Path]:
    """Delete the job directories of workers that died (kill -9) before removing their own: each
    holds the window's raw inputs and labels, which must not outlive ``--delete-trained``."""
    removed = []
    for job in Path(root or tempfile.gettempdir()).glob(f"{JOB_PREFIX}*-*"):
        pid = job.name[len(JOB_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)) and job.is_dir():
            shutil.rmtree(job, ignore_errors=True)
            removed.append(job)
    if removed:
        log.info("removed %d training job director%s of workers that died: %s", len(removed),
                 "y" if len(removed) == 1 else "ies", ", ".join(map(str, removed)))  # fmt: skip
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def fit(candidate: Learner, experience: Experience, compute: Compute) -> Learner:
    """``candidate`` trained on ``experience`` (then consolidated), here or under torchrun."""
    if compute.nproc == 1:
        candidate.learn(experience)
        return candidate
    remove_orphaned_jobs()
    with tempfile.TemporaryDirectory(prefix=f"{JOB_PREFIX}{os.getpid()}-") as tmp:
        job = Path(tmp)
        candidate.save(job / "start")
        _write_window(job, experience, compute)
        # torchrun's agent runs in a process of ours that dies with the worker (see _torchrun)
        command = [sys.executable, "-m", "lifelong.system.launch", "--torchrun", str(compute.nproc), str(job)]
        env = dict(os.environ)
        if sys.platform.startswith("linux"):  # one machine: gloo talks over loopback
            env.setdefault("GLOO_SOCKET_IFNAME", "lo")
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True,
                                  timeout=compute.timeout_seconds, check=False)  # fmt: skip
        except subprocess.TimeoutExpired:
            raise TrainingError(
                f"the {compute.nproc}-process training job ran past {compute.timeout_seconds} s; "
                "nothing was published"
            ) from None
        if done.returncode != 0 and (job / "complete").is_file():
            # every rank passed the save's final barrier and rank 0's checkpoint is whole: a rank that
            # died after that (gloo's sockets closing under a peer still tearing down) lost nothing
            log.warning("training job: every rank finished and the checkpoint was saved, but torchrun "
                        "exited with code %s while the ranks shut down: %s", done.returncode,
                        " | ".join((done.stderr or "").strip().splitlines()[-3:]))  # fmt: skip
        elif done.returncode != 0 or not (job / "trained").is_dir():
            cause = _rank_error(job) or _root_cause(done.stderr or "")
            raise TrainingError(
                f"the {compute.nproc}-process training job (torchrun) exited with code {done.returncode}; "
                f"nothing was published. {cause}"
            )
        return Learner.load(job / "trained", device=compute.device)


def _root_cause(stderr: str) -> str:
    """torchrun's "Root Cause" as one line (``rank 1 exited with code -9: Signal 9 (SIGKILL) received by
    PID 14838``), then its last lines: a rank killed outright writes no error file, and the worker's log
    line kept only the summary's first line, ``[0]:`` (a trial)."""
    fields = dict(re.findall(r"^\s*(rank|exitcode|traceback)\s*:\s*(.+?)\s*$", stderr, re.MULTILINE))
    tail = "\n".join(stderr.strip().splitlines()[-8:])
    if "rank" not in fields or "exitcode" not in fields:
        return tail
    rank = fields["rank"].split()[0]
    code = fields["exitcode"].split()[0]
    why = fields.get("traceback", "")
    head = f"rank {rank} exited with code {code}" + (
        f": {why}" if why and not why.startswith("To enable") else ""
    )
    return f"{head}\n{tail}"


def _rank_error(job: Path) -> str | None:
    """What a rank raised, the cause before its consequences: rank 0's "Connection closed by peer"
    hid rank 1's refusal to load the checkpoint, the error that ended the job (a trial)."""
    errors = [p.read_text() for p in sorted(job.glob("error-rank*.txt"))]
    follow_on = ("Connection closed by peer", "Connection reset by peer", "Broken pipe")
    errors.sort(key=lambda e: any(m in e for m in follow_on))  # stable: by rank within each group
    return errors[0] if errors else None


def _write_window(job: Path, experience: Experience, compute: Compute) -> None:
    from safetensors.torch import save_file

    data = experience.train
    tensors = {"x": data.x.contiguous(), "y": data.y.contiguous()}
    if data.t is not None:
        tensors["t"] = data.t.contiguous()
    save_file(tensors, str(job / "window.safetensors"))
    spec = {"index": experience.index, "classes": list(experience.classes), "task_id": experience.task_id,
            "scale": data.scale, "name": data.name, "device": compute.device, "threads": compute.threads,
            "plugins": list(compute.plugins)}  # fmt: skip
    (job / "job.json").write_text(json.dumps(spec))


def main(job: Path) -> None:
    """One rank of the job; what it raises is also written to ``JOB/error-rank<R>.txt`` for the worker."""
    try:
        _train(job)
    except BaseException as e:
        rank = os.environ.get("RANK", "0")
        (job / f"error-rank{rank}.txt").write_text(f"rank {rank}: {type(e).__name__}: {e}"[:2000])
        raise


def _train(job: Path) -> None:
    """Load the candidate in torchrun's group, learn the window, save (rank 0 writes)."""
    import torch.distributed as dist
    from safetensors.torch import load_file

    from lifelong.learn.plugins import load_plugins

    spec = json.loads((job / "job.json").read_text())
    load_plugins(spec["plugins"])
    torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    if device.type == "cuda":  # one GPU per process
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        tensors = load_file(str(job / "window.safetensors"))
        data = Dataset(tensors["x"], tensors["y"], tensors.get("t"), spec["scale"], spec["name"])
        empty = data.subset(torch.arange(0))
        learner = Learner.load(job / "start", device=device)  # in the group: DDP, a share of each memory
        global_batch = learner.batch_size
        learner.batch_size = max(1, global_batch // learner.world_size)
        learner.learn(Experience(spec["index"], tuple(spec["classes"]), spec["task_id"], data, empty))
        learner.batch_size = global_batch  # the checkpoint describes the job, not one rank
        learner.save(job / "trained")  # ends at a barrier: past it, every rank has done all its work
        if learner.rank == 0:
            (job / "complete").touch()
    finally:
        dist.destroy_process_group()


def _torchrun(nproc: int, job: Path) -> None:
    """``python -m torch.distributed.run --standalone --nproc-per-node N -m lifelong.system.launch JOB``,
    in this process, which the kernel terminates when the worker that started it dies (Linux): a
    worker killed mid-job leaves no training processes behind (torchrun's agent stops its ranks)."""
    from torch.distributed.run import main as torchrun

    from lifelong.system.cli import die_with_parent

    die_with_parent()
    torchrun(["--standalone", f"--nproc-per-node={nproc}", "-m", "lifelong.system.launch", str(job)])


if __name__ == "__main__":
    if sys.argv[1] == "--torchrun":  # the agent, started by fit()
        _torchrun(int(sys.argv[2]), Path(sys.argv[3]))
    else:  # one rank, started by torchrun
        main(Path(sys.argv[1]))
