"""The suite runner: execute the numbered notebooks with papermill and build the report index.

``python -m fer_utils.run --profile smoke|cpu|paper [--only 01,03] [--subset NAME] [--param key=value] [--fresh]
[--check] [--stop-after HOURS] [--resume-from DIR]``

This module owns the order of execution, what happens to earlier outputs, and the checks before
anything runs:

- every key of the profile and the command line is checked against the notebooks' ``parameters``
  cells, and every value the runner can check without data (model names, choices, training configs,
  split names against the data each notebook will find: :mod:`fer_utils.check`) before any notebook
  starts; ``--check`` also builds every model and trains one step, then stops;
- a notebook re-run with the same parameters continues its earlier run: unfinished models resume
  from their last completed epoch, finished ones are reused, models trained but not evaluated are
  evaluated (the index says so); with ``--reuse`` a run whose parameters changed is continued too (models whose
  recipe is unchanged reused, a changed one refused). ``--subset NAME`` runs a named, session-sized part of the
  profile (its ``subsets`` section: values that replace the profile's, e.g. only the CK+ folds of notebook 04); a
  subset, and any run after one, continues the notebook's run folder that way, so parts accumulate into one run.
  Different parameters, or ``--fresh``, move the earlier outputs to ``reports/<profile>/_previous/<timestamp>/``
  first; nothing is ever overwritten or deleted;
- the console shows each notebook, each code cell as it starts, and the progress lines notebooks
  report (model, epoch, metrics) (:mod:`fer_utils.notebook_exec`); a failing notebook stops the run
  with exit code 1 and its partial HTML still shows the failing cell;
- ``--stop-after HOURS`` (or a file ``reports/<profile>/STOP`` created during the run) ends a run cleanly at the
  first checkpoint after that time (exit code 3) and
  ``--resume-from DIR`` continues an earlier session's read-only copy in an empty reports folder (a Kaggle
  session's output mounted as the next session's input).
- one run at a time per reports folder (:func:`hold_lock`): a second is refused, naming the first.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shutil
import sys
import time
from pathlib import Path

from fer_utils import index, progress
from fer_utils.artifacts import cpu_kind, cpu_times
from fer_utils import params as P

ROOT = Path(__file__).resolve().parent.parent
# Cell timeouts per profile (seconds): papermill has none by default, and a hung cell in CI
# should fail rather than stall forever.
CELL_TIMEOUT = {"smoke": 900, "cpu": 6 * 3600, "paper": None}


def say(message: str = "") -> None:
    """One console line, flushed at once (the runner's only way of talking)."""
    print(message, flush=True)


def _previous_dir(out_dir: Path) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return out_dir / "_previous" / stamp


def archive_previous(out_dir: Path, stem: str, archive: Path | None, keep_run_folder: bool = False) -> Path | None:
    """Move a notebook's earlier outputs (run folder, .ipynb, .html) into ``archive``; forget its index entry.

    With ``keep_run_folder`` (a continued run) only the earlier executed notebook and its HTML move.
    """
    olds = ([] if keep_run_folder else [out_dir / stem]) + [out_dir / f"{stem}.ipynb", out_dir / f"{stem}.html"]
    empty = [p for p in olds if p.is_dir() and not any(p.iterdir())]
    for p in empty:
        p.rmdir()  # an empty folder from a notebook that failed before writing anything holds nothing
    olds = [p for p in olds if p.exists()]
    index.record(out_dir, stem, None)
    if not olds:
        return archive
    archive = archive or _previous_dir(out_dir)
    archive.mkdir(parents=True, exist_ok=True)
    for p in olds:
        shutil.move(str(p), str(archive / p.name))
    return archive


STOPPED_EXIT = 3  # --stop-after (or the STOP file) ended the run at a checkpoint
#: Creating ``reports/<profile>/STOP`` while a run is going ends it cleanly at its next checkpoint.
STOP_FILE = "STOP"
#: The lock one run holds on its reports folder (:func:`hold_lock`).
LOCK_FILE = ".run.lock"


def copy_earlier_session(source, out_dir: Path, profile: str) -> int:
    """``--resume-from``: copy an earlier session's ``reports/<profile>`` (read-only, e.g. a Kaggle input) into the
    empty ``out_dir`` and point its run record at the new place, so the runner continues it like its own.

    Only reads ``source``. Finished models are then reused only where their recipe and data checksum match (as in
    any continued run), interrupted ones resume from their backups. Returns the number of files copied.

    Raises:
        ParamsError: ``source`` is not an earlier run of ``profile`` (no ``run.json``, another profile), is the
            output folder itself or overlaps it, or ``out_dir`` already holds a run.
    """
    source, target = Path(source).resolve(), Path(out_dir).resolve()
    record = index.read_json(source / "run.json").get("notebooks")
    if not record:
        raise P.ParamsError(f"--resume-from {source}: no run.json with notebooks; expected an earlier session's "
                            "reports/<profile> folder (on Kaggle: /kaggle/input/<dataset>/reports/<profile>)")
    profiles = {e.get("params", {}).get("profile") for e in record.values()}
    if profiles != {profile}:
        raise P.ParamsError(f"--resume-from {source}: a run of profile(s) {sorted(map(str, profiles))}, "
                            f"not {profile!r}")
    if source == target or source in target.parents or target in source.parents:
        raise P.ParamsError(f"--resume-from {source}: must be another folder than the output {target}")
    if target.exists() and any(p.name != LOCK_FILE for p in target.iterdir()):
        raise P.ParamsError(f"--resume-from: {target} already holds a run; continue it without --resume-from, or "
                            "give an empty --reports-dir")
    shutil.copytree(source, target, copy_function=shutil.copyfile, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(LOCK_FILE))  # the earlier run's lock file is not this run's
    copied = 0
    for folder, dirs, files in os.walk(target):  # copytree keeps the source folders' read-only modes
        os.chmod(folder, 0o755)
        for f in files:
            os.chmod(os.path.join(folder, f), 0o644)
        copied += len(files)
    old = {str(e.get("params", {}).get("reports_dir")) for e in record.values()} - {"None"}
    data = index.read_json(target / "run.json")
    for entry in data.get("notebooks", {}).values():
        prm = entry.get("params", {})
        for key in ("run_dir", "reports_dir"):
            for prefix in old:
                if str(prm.get(key, "")).startswith(prefix):
                    prm[key] = str(target) + str(prm[key])[len(prefix):]
    tmp = target / "run.json.tmp"
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(target / "run.json")
    return copied


def _print_estimate(args, notebooks, resolved) -> None:
    """``--check``'s cost estimate (:mod:`fer_utils.cost`): timed here, and for GPU classes from FLOPs."""
    from fer_utils import cost

    t0 = time.perf_counter()
    busy = busy_warning()
    if busy:
        say(f"[cost] {busy}")
    effective = {nb.stem: {**P.notebook_parameters(nb), **resolved[nb.stem]} for nb in notebooks}
    before = cpu_times()
    try:
        table = cost.estimate(effective)
    except Exception as exc:  # an estimate that cannot be made must not fail a check that passed
        say(f"[cost] no estimate: {type(exc).__name__}: {exc}")
        return
    stolen = steal_warning(before, cpu_times())
    say(f"[cost] profile {args.profile} on this machine ({cpu_kind()}; speeds timed just now, "
        f"{time.perf_counter() - t0:.0f} s) and on GPU classes (sustained "
        + ", ".join(f"{g} {f / 1e12:.0f} TFLOP/s" for g, f in cost.GPU_CLASSES.items()) + "):")
    for line in cost.summary(table):
        say(f"[cost]   {line}")
    if stolen:
        say(f"[cost] {stolen}")
    out_dir = Path(args.reports_dir).resolve() / args.profile
    done = finished_run_folders(out_dir, [nb.stem for nb in notebooks])
    if done:
        say(f"[cost] {out_dir} already holds {len(done)} finished run folder(s) of these notebooks (e.g. "
            f"{done[0]}): a run continuing them reuses each whose recipe is unchanged, and the minutes above count "
            "every training, so they are an upper bound")


def finished_run_folders(out_dir: Path, stems) -> list:
    """The finished run folders of the notebooks ``stems`` (:func:`fer_utils.runs.finished_run_folders`), relative
    to ``out_dir``."""
    from fer_utils import runs

    return [run.relative_to(out_dir).as_posix() for stem in stems
            for run in runs.finished_run_folders(Path(out_dir) / stem)]


def busy_warning(load=None, cores=None) -> str:
    """A warning when other work shares the cores that time the estimate's steps ("" on an idle machine): measured
    here, a test suite sharing both cores made an estimate 1.6x too high (77 min for a 47 min run)."""
    load = os.getloadavg()[0] if load is None else load
    cores = (os.cpu_count() or 1) if cores is None else cores
    if load < 0.5 * cores:
        return ""
    return (f"warning: load average {load:.1f} on {cores} cores before timing: other work shares the cores, so the "
            "minutes below will be too high; the estimate assumes an idle machine")


def steal_warning(before: list, after: list) -> str:
    """A warning when the hypervisor took a share of the cores' time between two :func:`cpu_times` readings ("" when
    it took under 5% or nothing was read): a virtual machine sharing its host times slower steps than it may run
    later (an estimate taken ten minutes after this machine booted said 5.5 h for notebook 02, the same one idle hours
    later 2.2 h; steal was not recorded then)."""
    share = steal_share(before, after)
    if not share >= 0.05:  # NaN: nothing read
        return ""
    return (f"warning: the host took {100 * share:.0f}% of this machine's CPU time (steal) while the steps "
            "were timed: the minutes above may be too high; take the estimate again later")


def steal_share(before: list, after: list) -> float:
    """The share of CPU time the host took (steal) between two :func:`cpu_times` readings; NaN when not read."""
    if len(before) < 8 or len(after) < 8:
        return float("nan")
    delta = [b - a for a, b in zip(before, after)]
    return delta[7] / sum(delta) if sum(delta) > 0 else float("nan")


def hold_lock(out_dir: Path):
    """Hold ``out_dir/.run.lock`` (an exclusive ``flock``) for as long as the returned file stays open: one run at a
    time per reports folder, since two would train the same run folders and archive each other's outputs. The
    operating system releases it when the process ends, however it ends, so a killed run never leaves it held.
    Returns None where ``fcntl`` does not exist (Windows: no lock).

    Raises:
        RuntimeError: another process holds it (naming that process: pid, start, command, and the way out), or the
            lock file cannot be opened (naming it).
    """
    try:
        import fcntl
    except ImportError:
        return None
    path = Path(out_dir) / LOCK_FILE
    try:
        handle = open(path, "a+", encoding="utf-8")
    except OSError as exc:
        raise RuntimeError(f"{path}: cannot open the run's lock ({exc.strerror}); expected a reports folder this user "
                           "can write") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "a process that did not say which"
        handle.close()
        raise RuntimeError(f"{out_dir} is in use by another run ({holder}); two runs in one reports folder would "
                           f"train the same run folders and archive each other's outputs. Wait for it to end, stop "
                           f"it cleanly (create {Path(out_dir) / STOP_FILE}), or give this run another "
                           "--reports-dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} since {_dt.datetime.now().isoformat(timespec='seconds')}: "
                 f"python -m fer_utils.run {' '.join(sys.argv[1:])}\n")
    handle.flush()
    return handle


def _continue_advice() -> str:
    return ("run the same command again to continue here, or in another session copy this reports folder and "
            "pass it as --resume-from")


def continues_earlier_run(out_dir: Path, stem: str, parameters: dict) -> bool:
    """True when the notebook ran before (finished or not) with exactly these parameters."""
    earlier = index.runs_record(out_dir).get(stem)
    return bool(earlier) and earlier.get("params") == parameters and (out_dir / stem).is_dir()


def _checks(notebooks: list, resolved: dict, dry_run: bool) -> list:
    """Problems of every notebook's effective parameters (its defaults with the profile's and the command line's)."""
    from fer_utils import check

    effective = {nb.stem: {**P.notebook_parameters(nb), **resolved[nb.stem]} for nb in notebooks}
    problems = []
    for stem, values in effective.items():
        problems += check.check_parameters(stem, values)
    if dry_run and not problems:
        for stem, values in effective.items():
            say(f"[check] {stem}: data {check.dataset_summary(values)}")
            problems += check.dry_run(stem, values, report=say)
    return problems


def main(argv=None) -> int:
    """Command-line entry point; returns the process exit code."""
    ap = argparse.ArgumentParser(prog="python -m fer_utils.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="smoke", help="params/<profile>.yaml (smoke, cpu, paper)")
    ap.add_argument("--only", default="", help="comma-separated notebook numbers, e.g. 01,03")
    ap.add_argument("--subset", default="", metavar="NAME",
                    help="run the profile's named part NAME (its 'subsets' section; e.g. one session's share of a "
                         "long notebook): its values replace the profile's, only its notebooks run unless --only "
                         "says otherwise, and the run continues the notebooks' earlier run folders as --reuse does")
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="override a parameter (NN.key=value for one notebook); repeatable")
    ap.add_argument("--fresh", action="store_true",
                    help="start afresh: move earlier outputs to _previous/ even when the parameters are the same")
    ap.add_argument("--reuse", action="store_true",
                    help="continue an earlier run whose parameters changed instead of archiving it: models whose "
                         "recipe (data, model, training and evaluation settings) is unchanged are reused, new ones "
                         "trained; a model whose recipe changed is refused, naming what differs (then use --fresh)")
    ap.add_argument("--check", action="store_true",
                    help="validate the profile without training: parameters, data found, every model built at its "
                         "input size and trained one step on a tiny batch; then print what each notebook will cost "
                         "(images, minutes here from timed steps, and on GPU classes) and stop")
    ap.add_argument("--no-estimate", action="store_true",
                    help="with --check: skip the cost estimate (its speed timing takes a minute or more)")
    ap.add_argument("--reports-dir", default=str(ROOT / "reports"))
    ap.add_argument("--notebooks-dir", default=str(ROOT / "notebooks"))
    ap.add_argument("--params-dir", default=str(ROOT / "params"))
    ap.add_argument("--timeout", type=float, default=None, help="per-cell timeout in seconds")
    ap.add_argument("--log-output", action="store_true", help="stream notebook output to this terminal")
    ap.add_argument("--stop-after", type=float, default=None, metavar="HOURS",
                    help="end cleanly at the first checkpoint (an epoch's backup, a tuner trial, a GAN checkpoint) "
                         "after HOURS of wall time, so the next session continues from there (exit code 3)")
    ap.add_argument("--resume-from", default=None, metavar="DIR",
                    help="an earlier session's reports/<profile> folder, read-only (e.g. a Kaggle input): copied into "
                         "this run's empty reports folder, then continued; nothing is written into DIR")
    ap.add_argument("--keep-going", action="store_true",
                    help="after a failing notebook run the next ones anyway (a notebook that reads the failed "
                         "one's files may fail too); exit 1 at the end naming every failure")
    args = ap.parse_args(argv)
    if args.reuse and args.fresh:
        print("error: --reuse and --fresh contradict each other (continue vs start afresh); give one", file=sys.stderr)
        return 2
    if args.stop_after is not None:
        if not args.stop_after > 0:
            print(f"error: --stop-after {args.stop_after}: expected a number of hours > 0", file=sys.stderr)
            return 2
        # from the command's start; kernels inherit it (fer_utils.progress.check_stop)
        os.environ[progress.STOP_ENV] = str(time.time() + args.stop_after * 3600)

    try:
        profile = P.load_profile(args.profile, args.params_dir)
        only = [o for o in args.only.split(",") if o.strip()]
        if args.subset and not only:
            only = [stem[:2] for stem in P.subset_notebooks(profile, args.subset)]
        notebooks = P.list_notebooks(args.notebooks_dir, only)
        if not notebooks:
            raise P.ParamsError(f"{args.notebooks_dir}: no numbered notebooks (NN_name.ipynb) found")
        resolved = P.resolve(profile, notebooks, args.param, subset=args.subset)
    except P.ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from fer_utils.notebook_exec import QUIET_ENV, filtered_stderr

    for key, value in QUIET_ENV.items():  # before the checks import TensorFlow in this process
        os.environ.setdefault(key, value)
    with filtered_stderr():  # TensorFlow's start-up notices, here and in every kernel, never reach the console
        return _run(args, notebooks, resolved)


def _run(args, notebooks, resolved) -> int:
    """Checks, then every notebook in order (``main`` after parsing; stderr already filtered)."""
    t0 = time.perf_counter()
    problems = _checks(notebooks, resolved, args.check)
    if problems:
        print("error: the run would fail; nothing was started:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    if args.check:
        say(f"[check] profile {args.profile}: every notebook's parameters, data and models are fine "
            f"({time.perf_counter() - t0:.1f} s)")
        if not args.no_estimate:
            _print_estimate(args, notebooks, resolved)
        return 0

    from fer_utils import notebook_exec

    # The kernel must import this checkout's fer_utils whatever the notebook's cwd is.
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(
        os.pathsep) if p])
    out_dir = Path(args.reports_dir).resolve() / args.profile
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        lock = hold_lock(out_dir)  # noqa: F841 (held until this function returns and the process ends)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.resume_from:
        try:
            copied = copy_earlier_session(args.resume_from, out_dir, args.profile)
        except P.ParamsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        say(f"[{args.profile}] copied the earlier session {Path(args.resume_from).resolve()} ({copied} files) into "
            f"{out_dir}; continuing it there")
    stop_file = out_dir / STOP_FILE
    if stop_file.exists():  # the request it made was answered by the run it stopped
        stop_file.unlink()
        say(f"[{args.profile}] removed {stop_file} left by an earlier stop request")
    os.environ[progress.STOP_FILE_ENV] = str(stop_file)  # the kernels inherit it
    timeout = args.timeout if args.timeout is not None else CELL_TIMEOUT.get(args.profile)
    archive = None
    failed = []
    total = time.perf_counter()
    for position, nb in enumerate(notebooks, start=1):
        stem = nb.stem
        if progress.stop_due():
            say(f"[{args.profile}] stopped as asked (--stop-after or the STOP file) before {stem}; "
                f"{_continue_advice()}")
            return STOPPED_EXIT
        run_dir = out_dir / stem
        parameters = dict(resolved[stem], profile=args.profile, run_dir=str(run_dir), reports_dir=str(out_dir))
        same = continues_earlier_run(out_dir, stem, parameters)
        earlier = index.runs_record(out_dir).get(stem) or {}
        # A subset continues the run folder, and so does any run after a subset: parts accumulate into one run.
        changed = bool(args.reuse or args.subset or earlier.get("subset")) and not same and run_dir.is_dir() and bool(
            earlier)
        resume = not args.fresh and (same or changed)
        # A continued run keeps its run folder; the earlier executed notebook and HTML are kept in _previous/.
        archive = archive_previous(out_dir, stem, archive, keep_run_folder=resume)
        mode = ("continued the earlier run with the same parameters" if resume and same else
                "continued the earlier run with changed parameters (" + (
                    "--reuse" if args.reuse else f"subset {args.subset}" if args.subset else "after a subset") + ")"
                if resume else "")
        run_dir.mkdir(parents=True, exist_ok=True)
        output = out_dir / f"{stem}.ipynb"
        say(f"[{args.profile}] {position}/{len(notebooks)} {stem}" + (
            " (continuing the earlier run: unfinished models resume, finished ones are reused)" if resume and same
            else " (continuing the earlier run with changed parameters: models whose recipe is unchanged are reused, "
                 "new ones trained, a changed one refused)" if resume else " ..."))
        index.record(out_dir, stem, {"status": "running", "params": parameters, "mode": mode, "subset": args.subset,
                                     "started": _dt.datetime.now().isoformat(timespec="seconds")})
        started, cpu_before = time.perf_counter(), cpu_times()
        status, error = "ok", ""
        try:
            notebook_exec.execute(nb, output, parameters, timeout, args.log_output, say=say)
        except Exception as exc:  # papermill raises its own error types for failing cells and timeouts
            status, error = "failed", f"{type(exc).__name__}: {str(exc).strip()[-2000:]}"
            if progress.StopRequested.__name__ in error:
                status = "stopped"
        seconds, steal = time.perf_counter() - started, steal_share(cpu_before, cpu_times())
        if output.exists():
            try:
                notebook_exec.to_html(output)
            except Exception as exc:  # a rendering problem must not hide the notebook's own status
                print(f"  warning: HTML rendering of {output} failed: {exc}", file=sys.stderr)
        index.record(out_dir, stem, {"status": status, "seconds": round(seconds, 1), "params": parameters,
                                     "mode": mode, "subset": args.subset,
                                     "finished": _dt.datetime.now().isoformat(timespec="seconds"), "error": error,
                                     "host_steal_pct": round(100 * steal, 1) if steal == steal else None})
        index.write_index(out_dir, args.profile)
        shared = f" (the host took {100 * steal:.0f}% of the CPU time)" if steal >= 0.01 else ""  # a VM's neighbours
        say(f"  {status} in {seconds:.1f} s{shared} -> {output.with_suffix('.html')}")
        if status == "stopped":
            say(f"[{args.profile}] {error.split('StopRequested: ')[-1].splitlines()[0]} ({stem}); "
                f"{_continue_advice()}")
            return STOPPED_EXIT
        if status != "ok":
            advice = ("Fix the input the error names, then run the same command again." if "DataError" in error else
                      "Run the same command again to continue where it stopped (--fresh starts afresh).")
            print(f"error: notebook {stem} failed; see {output.with_suffix('.html')}\n{error}\n{advice}",
                  file=sys.stderr)
            if not args.keep_going:
                return 1
            failed.append(stem)
    if failed:
        print(f"error: {len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    say(f"done in {time.perf_counter() - total:.1f} s; index: {out_dir / 'index.html'}")
    if archive:
        say(f"previous outputs kept in {archive}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
