"""``python -m fer_utils.experiments.tune_workers``: notebook 05's searches spread over worker processes
(KerasTuner's distributed mode).

One machine::

    python -m fer_utils.experiments.tune_workers --profile cpu --workers 2

runs notebook 05 through the suite's runner as the chief (it serves the oracle, then writes the report once
every trial is done) and two worker processes that train the trials. Several machines (shared reports folder)::

    chief$   python -m fer_utils.experiments.tune_workers --profile paper --role chief --oracle-ip 10.0.0.1 \
                 --port 8000 --session s1
    worker$  python -m fer_utils.experiments.tune_workers --profile paper --role worker --worker-id 0 \
                 --oracle-ip 10.0.0.1 --port 8000 --session s1

Every process takes the same ``--param`` overrides; exit code: the chief's (the runner's), or 1 if a worker failed.
A command module (the runner's layer, see docs/architecture.md): it starts the runner and uses its
:func:`fer_utils.notebook_exec.filtered_stderr`; the worker loop itself is :func:`fer_utils.experiments.tuning.work`.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from fer_utils import params as P
from fer_utils import progress
from fer_utils.tune import distributed as dist

ROOT = Path(__file__).resolve().parents[2]
STEM = "05_tuning"
#: This command's module (workers are started with ``python -m`` of it).
MODULE = "fer_utils.experiments.tune_workers"


def notebook_params(profile: str, overrides, reports_dir: str, notebooks_dir: str, params_dir: str) -> dict:
    """Notebook 05's effective parameters, exactly as the runner would pass them."""
    nb = P.list_notebooks(notebooks_dir, ["05"])[0]
    resolved = P.resolve(P.load_profile(profile, params_dir), [nb], overrides)[nb.stem]
    out_dir = Path(reports_dir).resolve() / profile
    return {**P.notebook_parameters(nb), **resolved, "profile": profile, "run_dir": str(out_dir / nb.stem),
            "reports_dir": str(out_dir)}


def _runner_command(args) -> list:
    cmd = [sys.executable, "-m", "fer_utils.run", "--profile", args.profile, "--only", "05",
           "--reports-dir", args.reports_dir, "--notebooks-dir", args.notebooks_dir, "--params-dir", args.params_dir]
    for p in args.param:
        cmd += ["--param", p]
    return cmd + (["--fresh"] if args.fresh else [])


def _worker_command(args, worker: int, port: int, session: str) -> list:
    cmd = [sys.executable, "-m", MODULE, "--profile", args.profile, "--role", "worker",
           "--worker-id", str(worker), "--oracle-ip", args.oracle_ip, "--port", str(port), "--session", session,
           "--reports-dir", args.reports_dir, "--notebooks-dir", args.notebooks_dir, "--params-dir", args.params_dir]
    for p in args.param:
        cmd += ["--param", p]
    return cmd


def _env(extra: dict) -> dict:
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.setdefault("KERAS_BACKEND", "tensorflow")
    return env


def launch(args) -> int:
    """Chief (the runner on notebook 05) and ``args.workers`` workers on this machine; waits for all."""
    from fer_utils.experiments.tuning import search_order

    p = notebook_params(args.profile, args.param, args.reports_dir, args.notebooks_dir, args.params_dir)
    count = len(search_order(p["models"], p["tuners"], p["study_c_datasets"]))
    base = dist.free_port_range(count, args.oracle_ip, args.port)
    session = args.session or uuid.uuid4().hex
    print(f"[tune] chief: notebook 05 (runner); {args.workers} worker(s); oracle {args.oracle_ip}:{base}"
          f"..{base + count - 1} ({count} searches); session {session}", flush=True)
    t0 = time.perf_counter()
    chief = subprocess.Popen(_runner_command(args), env=_env(dist.environment(
        "chief", ip=args.oracle_ip, port_base=base, session=session)), start_new_session=True)
    workers = [subprocess.Popen(_worker_command(args, i, base, session), start_new_session=True,
                                env=_env(dist.environment("worker", ip=args.oracle_ip, port_base=base,
                                                          session=session, worker=i)))
               for i in range(args.workers)]
    try:
        while chief.poll() is None:
            if any(w.poll() not in (None, 0) for w in workers):
                # The chief would wait for trials nobody trains: stop it rather than hang.
                print("[tune] a worker failed; stopping the chief", file=sys.stderr, flush=True)
                break
            time.sleep(1)
    finally:
        # Chief stopped early (a worker failed, or Ctrl-C): stop it. Chief failed: its workers would wait for it
        # for an hour, stop them too. Otherwise the workers finish their last search and exit by themselves.
        stop = [chief] if chief.poll() is None else ([] if chief.returncode == 0 else list(workers))
        if chief in stop:
            stop += list(workers)
        for p in stop:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
    code = chief.wait()
    failed = [i for i, w in enumerate(workers) if w.wait() != 0]
    print(f"[tune] done in {time.perf_counter() - t0:.1f} s: chief exit {code}"
          + (f", worker(s) {failed} failed" if failed else ", every worker finished"), flush=True)
    return code or (1 if failed else 0)


def main(argv=None) -> int:
    """Command-line entry point; returns the exit code."""
    ap = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--workers", type=int, default=2, help="worker processes on this machine (launcher mode)")
    ap.add_argument("--role", choices=("launch", "chief", "worker"), default="launch")
    ap.add_argument("--worker-id", type=int, default=0)
    ap.add_argument("--oracle-ip", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="first oracle port (default: a free one; fixed for --role)")
    ap.add_argument("--session", default="", help="an id shared by the chief and its workers (default: a new one)")
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--fresh", action="store_true", help="the chief moves earlier searches aside")
    ap.add_argument("--reports-dir", default=str(ROOT / "reports"))
    ap.add_argument("--notebooks-dir", default=str(ROOT / "notebooks"))
    ap.add_argument("--params-dir", default=str(ROOT / "params"))
    args = ap.parse_args(argv)
    try:
        if args.role == "launch":
            if args.workers < 1:
                raise P.ParamsError(f"--workers {args.workers}: expected at least 1")
            return launch(args)
        if not args.port:
            raise P.ParamsError(f"--role {args.role} needs --port (the first oracle port, the same on every machine)")
        env = dist.environment(args.role, ip=args.oracle_ip, port_base=args.port, session=args.session or "default",
                               worker=args.worker_id)
        if args.role == "chief":
            return subprocess.call(_runner_command(args), env=_env(env))
        os.environ.update(env)
        os.environ.setdefault(progress.ENV_VAR, "/dev/stdout")  # trial lines on this worker's console
        from fer_utils.experiments.tuning import work
        from fer_utils.notebook_exec import filtered_stderr

        with filtered_stderr():  # TensorFlow's start-up notices stay off the worker's console
            work(notebook_params(args.profile, args.param, args.reports_dir, args.notebooks_dir, args.params_dir))
        return 0
    except P.ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
