"""``python -m pvmpi conformance DIR``: every OpenPV params file under DIR through OpenPV and pvmpi.

Each params file in an ``input/`` folder (OpenPV's tests and tutorials are
laid out so) is run as OpenPV's own test runs it, once through OpenPV and
once through pvmpi, and classified:

* ``agrees``: every output OpenPV writes (layer and weight ``.pvp`` files,
  probe files, timestamps and its checkpoints, less the params echo) matches pvmpi's within
  ORACLE_RTOL of the largest magnitude in its file (in probe text, in its column), all else identical;
* ``differs``: which file, by how much;
* ``refused``: pvmpi stops with a clear error (an unsupported class or
  parameter, named); ``test-only class``: the file needs a C++ class that
  the test defines in its own ``src/``; ``OpenPV fails``: OpenPV itself
  does not run it; ``pvmpi fails``: anything else.
"""
import argparse
import csv
import re
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .compare import IGNORED, compare_runs
from .oracle import Case, Step, openpv_binary, run_openpv, run_pvmpi, scratch

ORACLE_RTOL = 2e-4  # iterated dynamics and learning in float32 against OpenPV's order of sums
STATUSES = ("agrees", "differs", "refused", "test-only class", "OpenPV fails", "pvmpi fails",
            "not run by its test")
_REFUSAL = re.compile(r"unknown class|not implemented|not supported|unsupported|cannot hold|"
                      r"is not one of|Lua params", re.I)


@dataclass
class Verdict:
    """The outcome of one case: a status of STATUSES, a one-line detail, the worst difference."""

    case: Case
    status: str
    detail: str = ""
    worst: float = None


def find_cases(root):
    """The runs of every ``*.params`` in an ``input/`` folder under root: as OpenPV's test runs it
    (:data:`~.plans.PLANS`: a chain of runs in its folder; :data:`~.plans.NOT_RUN`: never), else
    one run of each file, as :class:`Case` of the folder."""
    from .plans import NOT_RUN, PLANS

    cases, chained = [], set()
    for p in sorted(Path(root).rglob("input/*.params")):
        folder = p.parent.parent
        plan = PLANS.get(folder.name)
        if plan:
            if folder not in chained:
                chained.add(folder)
                cases.append(Case(folder, plan))
            if any(s.params == f"input/{p.name}" for s in plan):
                continue
        key = f"{folder.name}/input/{p.name}"
        cases.append(Case(folder, (Step(f"input/{p.name}"),), not_run=NOT_RUN.get(key, "")))
    return cases


def _test_only_classes(case, classes):
    """Classes of the file that pvmpi does not know and the test's C++ sources define (its own
    ``src/``, or the ``Shared/`` folder beside it that OpenPV's tests share)."""
    from ..model.schema import CLASSES

    unknown = [c for c in classes if c not in CLASSES]
    headers = [*case.folder.glob("src/*.hpp"), *case.folder.parent.glob("Shared/*.hpp")]
    sources = " ".join(p.read_text(errors="replace") for p in headers)
    return [c for c in unknown if re.search(rf"\bclass\s+{re.escape(c)}\b", sources)]


def _refusal(case, step):
    """pvmpi's message when it refuses a step's file (an unsupported class, parameter or feature), else None."""
    import warnings

    from ..errors import PvmpiError
    from ..simulation import load_sweep as load_models

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unused parameters of the test files
            load_models(case.folder / step.params)
    except PvmpiError as e:
        return str(e) if _REFUSAL.search(str(e)) else None
    return None


def _outputs(params, folder):
    """The outputs the run of a ``params`` file (one, or one per ParameterSweep index) wrote under
    ``folder``: ``{relative path: path under folder}`` of the files in its outputPath and its
    checkpoints, less the params echo (and its Lua form) and timers."""
    from ..model.params import load_params

    found = {}
    for raw in load_params(params).sweep_configs():
        column = raw.groups[0].values
        echo = str(column.get("printParamsFilename", "pv.params"))
        roots = [folder / str(column.get("outputPath", "output"))] + \
            [folder / str(column[k]) for k in ("checkpointWriteDir", "lastCheckpointDir") if column.get(k)]
        for out in roots:
            for p in sorted(out.rglob("*")) if out.is_dir() else []:
                rel = p.relative_to(out)
                if p.is_file() and not any(part.startswith("paramsweep_") for part in rel.parts[:-1]) \
                        and not p.name.startswith((echo, "pv.params", "timers")) and p.name not in IGNORED \
                        and p.suffix not in (".lua", ".log"):
                    found[str(p.relative_to(folder))] = p
    return found


def classify(case, binary, where):
    """Run every step of ``case`` through OpenPV and pvmpi under ``where``, comparing the outputs
    after each; its :class:`Verdict`."""
    from ..errors import PvmpiError
    from ..model.params import load_params

    if case.not_run:
        return Verdict(case, "not run by its test", case.not_run)
    given = [s for s in case.steps if (case.folder / s.params).is_file()]  # not files a run writes
    try:
        classes = [g.cls for s in given for g in load_params(case.folder / s.params).groups]
    except PvmpiError as e:
        return Verdict(case, "refused", str(e))
    own = _test_only_classes(case, classes)
    if own:
        return Verdict(case, "test-only class", ", ".join(sorted(set(own))))
    for step in given:
        refusal = _refusal(case, step)
        if refusal:
            return _refused(case, binary, where, refusal)
    ref_folder, my_folder = scratch(case, where, "openpv"), scratch(case, where, "pvmpi")
    compared, worst = 0, 0.0
    for step in case.steps:
        at = f"{step.name}: " if len(case.steps) > 1 else ""
        ref = run_openpv(binary, ref_folder, step)
        if (ref.returncode != 0) != step.fails:
            why = ref.error[:200] if ref.returncode else "ran to the end; its test expects it to fail"
            return Verdict(case, "OpenPV fails", at + why)
        mine = run_pvmpi(my_folder, step)
        if (mine.returncode != 0) != step.fails:
            if mine.returncode == 0:
                return Verdict(case, "differs", at + "pvmpi ran to the end where OpenPV fails: "
                               + ref.error[:150])
            status = "refused" if _REFUSAL.search(mine.error) else "pvmpi fails"
            return Verdict(case, status, at + mine.error[:200])
        files = sorted(_outputs(ref_folder / step.params, ref_folder))
        diff = compare_runs(ref_folder, my_folder, rtol=ORACLE_RTOL, files=files)
        worst = max(worst, *diff.worst.values(), 0.0)
        if diff.problems:
            return Verdict(case, "differs", at + diff.problems[0][:300], worst)
        compared += len(files)
    if not compared:
        return Verdict(case, "agrees", "OpenPV wrote no output files to compare", 0.0)
    runs = f" over {len(case.steps)} runs" if len(case.steps) > 1 else ""
    return Verdict(case, "agrees", f"{compared} files{runs}", worst)


def _refused(case, binary, where, refusal):
    """pvmpi refuses the case: "refused", unless OpenPV itself fails it too (a class the suite still
    names but OpenPV no longer has), and then "OpenPV fails"."""
    folder = scratch(case, where, "openpv")
    for step in case.steps:
        ref = run_openpv(binary, folder, step)
        if (ref.returncode != 0) != step.fails:
            at = f"{step.name}: " if len(case.steps) > 1 else ""
            return Verdict(case, "OpenPV fails", at + (ref.error[:200] or "ran to the end; its test expects it "
                                                       "to fail") + f" (pvmpi refuses it too: {refusal[:100]})")
    return Verdict(case, "refused", refusal)


def run_suite(root, binary, jobs=2, progress=None):
    """Classify every case under ``root``; the verdicts in file order."""
    cases = find_cases(root)
    with tempfile.TemporaryDirectory(prefix="pvmpi-conformance-") as where:
        def one(item):
            k, case = item
            verdict = classify(case, binary, Path(where) / str(k))
            if progress:
                progress(verdict)
            return verdict

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            return list(pool.map(one, enumerate(cases)))


def write_csv(verdicts, path):
    """The table as CSV: case, status, worst relative difference, detail."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["case", "status", "worst", "detail"])
        for v in verdicts:
            w.writerow([v.case.name, v.status, "" if v.worst is None else f"{v.worst:.3g}", v.detail])


def write_markdown(verdicts, path, root):
    """The table as Markdown (docs/conformance.md): the counts, then one row per case."""
    counts = summary(verdicts)
    lines = ["# pvmpi against OpenPV, file by file\n",
             f"Generated by `python -m pvmpi conformance {root} --markdown {path}`: every params file "
             f"run through OpenPV and pvmpi, outputs compared within {ORACLE_RTOL:g} of the largest "
             f"magnitude in each file (in probe text, in each column), integers exactly.\n",
             "| " + " | ".join(counts) + " |", "|" + "---:|" * len(counts),
             "| " + " | ".join(str(n) for n in counts.values()) + " |\n",
             "| case | status | worst | detail |", "|---|---|---:|---|"]
    for v in verdicts:
        worst = "" if v.worst is None else f"{v.worst:.2g}"
        detail = v.detail.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {v.case.name} | {v.status} | {worst} | {detail} |")
    Path(path).write_text("\n".join(lines) + "\n")


def summary(verdicts):
    """``{status: count}`` in STATUSES order."""
    return {s: sum(v.status == s for v in verdicts) for s in STATUSES}


def main(argv):
    """``conformance DIR [--csv FILE] [-j N]``: print one line per case and the counts."""
    from ..errors import PvmpiError
    from ..failure import fail

    parser = argparse.ArgumentParser(prog="python -m pvmpi conformance",
                                     description="Run every OpenPV params file under DIR through "
                                                 "OpenPV (PVMPI_OPENPV) and pvmpi; compare.")
    parser.add_argument("dir", help="folder of OpenPV cases (params files in input/ folders)")
    parser.add_argument("--csv", help="write the table as CSV here")
    parser.add_argument("--markdown", help="write the table as Markdown here (docs/conformance.md)")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="cases run at once (default 2)")
    args = parser.parse_args(argv)
    try:
        binary = openpv_binary()
        if binary is None:
            raise PvmpiError("PVMPI_OPENPV is not set", hint="set it to the path of OpenPV's pvrun")
        if not Path(args.dir).is_dir():
            raise PvmpiError("not a folder", file=args.dir)
    except PvmpiError as e:
        return fail(e)

    def show(v):
        worst = "" if v.worst is None else f" (worst {v.worst:.2g})"
        print(f"{v.status:15s} {v.case.name}{worst}  {v.detail}", flush=True)

    verdicts = run_suite(args.dir, binary, args.jobs, show)
    if args.csv:
        write_csv(verdicts, args.csv)
    if args.markdown:
        write_markdown(verdicts, args.markdown, args.dir)
    print("  ".join(f"{s}: {n}" for s, n in summary(verdicts).items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
