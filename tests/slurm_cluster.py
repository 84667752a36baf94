"""A real single-node SLURM on this machine for the tests: Debian's `slurm-wlm` and `munge` (installed when missing, as root with apt),
munged with the packaged key, and slurmctld + slurmd on 127.0.0.1 from a generated `slurm.conf` in a temporary folder, on free ports.
`SlurmCluster.start()` returns None with the reason when this machine cannot have one (not root, no apt, the install failed)."""
import os, shutil, socket, subprocess, time
from pathlib import Path

def _free_port():
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

def _run(*cmd, timeout=300, **kw): return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, **kw)

def install() -> str | None:
    "Install slurm-wlm and munge when missing; returns why it cannot (None when they are there)."
    if shutil.which("slurmctld") and shutil.which("munged"): return None
    if os.geteuid() != 0 or not shutil.which("apt-get"): return "SLURM is not installed and this user cannot install it (needs root and apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    r = _run("apt-get", "install", "-y", "-q", "slurm-wlm", "munge", env=env, timeout=900)
    if r.returncode: _run("apt-get", "update", "-q", env=env, timeout=900); r = _run("apt-get", "install", "-y", "-q", "slurm-wlm", "munge", env=env, timeout=900)
    return None if r.returncode == 0 else f"apt-get install slurm-wlm munge failed: {r.stderr[-300:]}"

class SlurmCluster:
    def __init__(self, folder: Path):
        self.folder = Path(folder); self.conf = self.folder / "slurm.conf"; self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def write_conf(self):
        host = socket.gethostname()
        for d in ("state", "spool", "log"): (self.folder / d).mkdir(parents=True, exist_ok=True)
        self.conf.write_text("\n".join([
            "ClusterName=attnmedtest", f"SlurmctldHost={host}(127.0.0.1)", "AuthType=auth/munge", "CredType=cred/munge",
            "SlurmUser=root", "SlurmdUser=root", f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
            f"StateSaveLocation={self.folder / 'state'}", f"SlurmdSpoolDir={self.folder / 'spool'}",
            f"SlurmctldPidFile={self.folder / 'slurmctld.pid'}", f"SlurmdPidFile={self.folder / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.folder / 'log' / 'slurmctld.log'}", f"SlurmdLogFile={self.folder / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "MpiDefault=none", "SchedulerType=sched/backfill",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU", "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none", "JobRequeue=1", "ReturnToService=2", "KillWait=5",
            f"NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory=4000 State=UNKNOWN",
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP", ""]))

    def start(self) -> str | None:
        "Start munged (if not running), slurmctld and slurmd; returns why not (None when the node is up)."
        if (why := install()) is not None: return why
        if os.geteuid() != 0: return "a test SLURM needs root (slurmd runs jobs as their users)"
        if _run("pgrep", "-x", "munged").returncode:
            Path("/run/munge").mkdir(exist_ok=True); shutil.chown("/run/munge", "munge", "munge")
            r = _run("runuser", "-u", "munge", "--", "munged")
            if r.returncode: return f"munged did not start: {r.stderr[-300:]}"
        self.write_conf()
        for daemon in ("slurmctld", "slurmd"):
            r = _run(daemon, "-f", str(self.conf), env=self.env)
            if r.returncode: return f"{daemon} did not start: {r.stderr[-300:]}"
        deadline = time.time() + 60
        while time.time() < deadline:
            if _run("sinfo", "-h", "-o", "%t", env=self.env, timeout=30).stdout.strip() in ("idle", "mix", "alloc"): return None
            time.sleep(0.5)
        return "the SLURM node did not come up in 60 s: " + (self.folder / "log" / "slurmctld.log").read_text()[-300:]

    def requeue_now(self, job: str):
        "What a preemption does: SLURM stops the job and queues it again (started again at once, not after the usual delay)."
        _run("scontrol", "requeue", job, env=self.env)
        deadline = time.time() + 60
        while time.time() < deadline:   # once it is pending again (it first completes), its begin time is brought forward
            if _run("squeue", "-h", "-o", "%T", "-j", job, env=self.env).stdout.strip() == "PENDING":
                _run("scontrol", "update", f"JobId={job}", "StartTime=now", env=self.env); return
            time.sleep(0.2)

    def stop(self):
        _run("scancel", "--user=root", env=self.env)
        for pid in ("slurmd.pid", "slurmctld.pid"):
            try: os.kill(int((self.folder / pid).read_text()), 15)
            except (OSError, ValueError): pass
