"""Running a network from Python: load a config, lay it out over a communicator, step it, read it.

The command line, the dry run, the bench and the tests all run networks
through this module. Every call is collective: each rank of the
communicator makes the same calls in the same order (as under ``mpiexec``).

>>> import pvmpi
>>> model = pvmpi.load("configs/demo.yaml", overrides=["column.stopTime=20"])  # doctest: +SKIP
>>> with pvmpi.Simulation(model, output_path="out") as sim:                    # doctest: +SKIP
...     sim.run(until=10)
...     a = sim.activity("V1")          # [nbatch, ny, nx, nf] on every rank
...     sim.run()                       # on to stopTime; closing writes the last checkpoint

A mistake (a bad config, an impossible layout, an output folder that holds
another run's files) raises :class:`~pvmpi.errors.PvmpiError` on every rank
alike, so a script under ``mpiexec`` fails once and never hangs.
"""
import json
import os
import sys
import time

from .errors import PvmpiError

BACKENDS = ("numpy", "numba", "cuda")


def load(path, overrides=()):
    """The network model of a YAML config or an OpenPV ``.params`` file, with ``overrides``
    (``"GROUP.PARAM=VALUE"`` strings) applied. A ParameterSweep needs :func:`load_sweep`."""
    models = load_sweep(path, overrides)
    if len(models) > 1:
        raise PvmpiError(f"the params file defines a ParameterSweep of {len(models)} runs", file=path,
                         hint="pvmpi.load_sweep gives one model per run")
    return models[0]


def load_sweep(path, overrides=(), output_path=None):
    """The models of every run a config defines, in order: one, or one per index of a params
    file's ParameterSweep (``output_path`` is then the base of its ``paramsweep_<i>/`` folders)."""
    from .model.config import apply_overrides, load_yaml
    from .model.network_model import build_model

    if str(path).endswith((".params", ".lua")):
        from .model.params import load_params

        pf = load_params(path)
        if pf.sweeps and output_path is not None:
            pf.groups[0].values["outputPath"] = str(output_path)
        raws = pf.sweep_configs() if pf.sweeps else [pf.to_raw_config()]
    else:
        raws = [load_yaml(path)]
    models = []
    for raw in raws:
        apply_overrides(raw, overrides)
        models.append(build_model(raw))
    return models


def holds_files(path):
    """Whether folder ``path`` holds any file, at any depth (empty folders, such as a checkpoint
    folder a job script made ahead, hold no outputs)."""
    return os.path.isdir(path) and any(files for _, _, files in os.walk(path))


def continues_folder(model, path):
    """Whether the run starts from a checkpoint inside its own output folder: a chain of runs
    in one folder, as OpenPV's restart tests make (each run's files replace the earlier's)."""
    init = model.column["initializeFromCheckpointDir"]
    if not init:
        return False
    here, inside = os.path.realpath(path), os.path.realpath(init)
    return os.path.commonpath([here, inside]) == here


def prepare_output(model, path, *, overwrite=False, continuing=False):
    """Create the output folder and write the params echo into it; refuse to mix a new run's files
    into another run's unless ``overwrite`` or ``continuing`` (-r/-c). One process calls it."""
    if holds_files(path) and not (overwrite or continuing):
        if not continues_folder(model, path):
            raise PvmpiError("the output directory already holds files of another run", file=path,
                             hint="--overwrite replaces them, -r continues that run, -o names another "
                                  "directory")
        print(f"pvmpi: {path}: continuing the run whose checkpoint initializeFromCheckpointDir names; "
              f"files this run writes replace that run's", file=sys.stderr, flush=True)
    try:
        if overwrite and not continuing:
            remove_old_checkpoints(model)
        os.makedirs(path, exist_ok=True)
        write_cleaned_params(model, path)
    except OSError as e:
        raise PvmpiError(f"cannot write the output directory: {e.strerror}", file=path) from None


def remove_old_checkpoints(model):
    """--overwrite: the replaced run's checkpoints go too, so a later -r cannot continue it over the
    new run's outputs (the checkpoint initializeFromCheckpointDir reads is kept)."""
    import shutil

    from .io.checkpoint import state_file

    col = model.column
    keep = os.path.realpath(col["initializeFromCheckpointDir"]) if col["initializeFromCheckpointDir"] else None
    old = []
    write_dir = col["checkpointWriteDir"] if col["checkpointWrite"] else None
    if write_dir and os.path.isdir(write_dir):
        old += [os.path.join(write_dir, n) for n in sorted(os.listdir(write_dir))
                if n.startswith("Checkpoint") and (n[10:].isdigit() or n.endswith(".incomplete"))]
    last = col["lastCheckpointDir"]
    if last and os.path.isdir(last) and state_file(last):
        old.append(last)
    old = [d for d in old if keep is None or os.path.commonpath([os.path.realpath(d), keep]) != os.path.realpath(d)]
    for d in old:
        shutil.rmtree(d)
    if old:
        print(f"pvmpi: --overwrite: removed {len(old)} checkpoint(s) of the replaced run "
              f"({', '.join(old[:3])}{', ...' if len(old) > 3 else ''})", file=sys.stderr, flush=True)


def write_cleaned_params(model, output_path):
    """<outputPath>/<printParamsFilename>: every parameter with its value, as OpenPV writes it."""
    from .io.outputs import write_atomic
    from .model.convert import model_to_params

    name = model.column["printParamsFilename"]
    if name:
        write_atomic(os.path.join(output_path, name), model_to_params(model))


def resume_path(model, checkpoint=None, restart=False, announce=True, output_path=None):
    """The checkpoint to continue from: ``checkpoint`` (-c DIR), or with ``restart`` (-r) the
    newest complete one. Without one, -r starts at t = 0 only where there are no outputs to lose
    (the first piece of a requeued job, announced when ``announce``); over a run's outputs it is
    an error naming what it found."""
    from .io.checkpoint import is_complete, newest_usable_checkpoint, why_unusable

    col = model.column
    if checkpoint:
        if not os.path.isdir(checkpoint):
            raise PvmpiError("no such checkpoint directory", file=checkpoint, param="-c")
        why = why_unusable(checkpoint)
        if why:
            raise PvmpiError(f"cannot continue from this checkpoint: {why}", file=checkpoint, param="-c")
        found = checkpoint
    elif not restart:
        return None
    elif col["checkpointWrite"]:
        directory = col["checkpointWriteDir"]
        found, bad = newest_usable_checkpoint(directory)
        if found is not None and bad and announce:
            print(f"pvmpi: -r: passed over {'; '.join(f'{n}: {why}' for n, why in bad)}", file=sys.stderr,
                  flush=True)
    else:  # the final state of a run without checkpoints goes to lastCheckpointDir itself
        directory = col["lastCheckpointDir"]
        found = directory if directory and is_complete(directory) else None
        bad = [(directory, why_unusable(directory))] if directory and os.path.isdir(directory) and not found \
            else []
    if found is None:
        out = output_path or col["outputPath"]
        if holds_files(out):
            seen = "; ".join(f"{name}: {why}" for name, why in bad) or "none"
            raise PvmpiError(f"no checkpoint to continue from in {directory} (found: {seen}); starting "
                             f"at t = 0 would replace the outputs in {out}", param="-r",
                             hint="-c DIR names a checkpoint; --overwrite starts the run again")
        if announce:
            print(f"pvmpi: -r: no complete checkpoint in {directory}; starting at t = 0 (no outputs yet)",
                  file=sys.stderr, flush=True)
        return None
    return found


def check_memory(model, layout, processes_here=None):
    """Refuse, before anything is allocated, a network whose layers alone need more memory than
    this node has for the processes of the job on it (:func:`~pvmpi.model.shape.bytes_floor`);
    returns the floor per process in bytes."""
    from .model.shape import bytes_floor, network_shape
    from .parallel.job import available_memory, ranks_on_this_node

    floor = bytes_floor(network_shape(model), layout)
    here = processes_here or ranks_on_this_node()
    free = available_memory()
    if free is not None and floor * here > free:
        raise PvmpiError(f"nbatch {model.column['nbatch']} of this network: its layers alone need at least {floor / 2 ** 30:.1f} GiB per process "
                         f"({here} process{'es' if here > 1 else ''} on this node), and this node has "
                         f"{free / 2 ** 30:.1f} GiB available", file=model.path,
                         hint="fewer batch elements or a smaller network per process: more processes on "
                              "more nodes (BatchWidth, NumRows, NumColumns)")
    return floor


def config_changes(checkpoint, model):
    """``["GROUP.PARAM: OLD -> NEW", ...]`` where ``model`` was given other values than the run that
    wrote ``checkpoint`` (groups added or gone too); empty when the same or unknown."""
    from .io.checkpoint import saved_config

    old = saved_config(checkpoint)
    if old is None:
        return []
    new = {g.name: {"class": g.cls, **{k: v for k, v in g.params.items() if k in g.given}}
           for g in (model.column,) + model.groups}
    out = [f"{name}: added" for name in new if name not in old]
    out += [f"{name}: gone" for name in old if name not in new]
    for name in (n for n in new if n in old):
        a, b = old[name], json.loads(json.dumps(new[name], default=str))
        out += [f"{name}.{k}: {_shown(a.get(k, 'default'))} -> {_shown(b.get(k, 'default'))}"
                for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return out


def _shown(v):
    return f"{v:g}" if isinstance(v, float) else str(v)


def choose_run_layout(model, size, layout=None):
    """The layout of ``size`` processes: ``layout`` (a Layout, or a dict of BatchWidth, NumRows,
    NumColumns) over the config's ``parallel`` section; what neither gives follows OpenPV's rules,
    and with nothing given at all the batch is split first, as far as it divides, then the layers
    (:func:`~pvmpi.parallel.layout.plan_layout`: no halos where the batch suffices)."""
    from .model.shape import network_shape
    from .parallel.decomposition import Layout, choose_layout
    from .parallel.layout import plan_layout

    if isinstance(layout, Layout):
        return layout
    given = {**model.parallel, **{k: v for k, v in (layout or {}).items() if v is not None}}
    b, r, c = (given.get(k) for k in ("BatchWidth", "NumRows", "NumColumns"))
    if b is None and r is None and c is None and size > 1:
        try:
            return plan_layout(network_shape(model), size)[0]
        except PvmpiError as e:  # the launcher's -n is the number of processes here
            raise PvmpiError(e.what, hint=e.hint and e.hint.replace("rank counts", "process counts")) from None
    return choose_layout(size, batch_width=b, rows=r, columns=c)


class Simulation:
    """A network laid out over the ranks of a communicator, run or stepped from Python.

    Building it allocates this rank's tile of every layer and connection and
    writes nothing; the first :meth:`run` or :meth:`step` prepares the output
    folder and initialises the state (or continues ``checkpoint``, or with
    ``restart`` the newest checkpoint); :meth:`close` writes the final
    checkpoint and closes every file. ``comm``: an mpi4py communicator
    (default: the world); ``layout``: see :func:`choose_run_layout`.
    """

    def __init__(self, model, comm=None, *, backend="numba", layout=None, output_path=None, seed=None,
                 checkpoint=None, restart=False, overwrite=False, gpu_devices=None, progress=None):
        from .kernels import get_backend
        from .network.column import Column
        from .parallel.comm import Comms
        from .parallel.job import Job, world

        base = world() if comm is None else comm.comm if isinstance(comm, Job) else comm
        self.model, self.backend, self.overwrite = model, backend, overwrite
        self.comms = self.column = self.resume = None
        self.started = self.closed = False
        self.failures = []
        error = None
        try:
            if backend not in BACKENDS:
                raise PvmpiError(f"unknown backend '{backend}'", hint="one of " + ", ".join(BACKENDS))
            run_layout = choose_run_layout(model, base.Get_size(), layout)
            check_memory(model, run_layout)  # before a single array
            self.comms = Comms(run_layout, base)
            if backend == "cuda":  # bind the GPU before the backend opens a CUDA context
                from .parallel.devices import select_device

                select_device(self.comms, gpu_devices)
            self.column = Column(model, self.comms, get_backend(backend), output_path=output_path, seed=seed,
                                 progress=progress)
            self.restart = restart
        except PvmpiError as e:
            error = e
        self._agree(error, base)
        # which checkpoint to continue: rank 0 reads the candidates (their checksums) for every rank
        found = None
        if self.comms.is_root:
            try:
                found = resume_path(model, checkpoint, restart, output_path=self.column.output_path)
            except PvmpiError as e:
                found = e
        found = self.comms.bcast(found)
        self._agree(found if isinstance(found, PvmpiError) else None)
        self.resume = found
        self._outputs_beside_another_batch()

    def _outputs_beside_another_batch(self):
        """Continuing a checkpoint of another nbatch, the outputs (one frame per batch element)
        cannot continue the old files: they go beside them, to ``<outputPath>/nbatch<N>/``."""
        from .io.checkpoint import saved_nbatch

        nbatch = self.model.column["nbatch"]
        saved = saved_nbatch(self.resume) if self.resume is not None else None
        if saved is None or saved == nbatch:
            return
        self.column.output_path = os.path.join(self.column.output_path, f"nbatch{nbatch}")
        if self.comms.is_root:
            print(f"pvmpi: the checkpoint has nbatch {saved}, this run {nbatch}: its outputs go to "
                  f"{self.column.output_path}, beside the earlier ones", file=sys.stderr, flush=True)

    def _agree(self, error, comm=None):
        """Raise the first rank's error on every rank (freeing the communicators), or return."""
        from .parallel.comm import first_error

        first = self.comms.first_error(error) if comm is None else first_error(comm, error)
        if first is None:
            return
        if self.comms is not None:
            self.comms.free()
        self.closed = True
        agreed = error if error is not None and str(error) == first else PvmpiError(first)
        agreed.everywhere = True  # every rank raises it: the caller may end the job cleanly
        raise agreed

    # ------------------------------------------------------------ running
    def prepare(self):
        """Prepare the output folder (rank 0) and initialise the state or read the checkpoint."""
        if self.started:
            return self
        error = None
        if self.comms.is_root:
            try:
                prepare_output(self.model, self.column.output_path, overwrite=self.overwrite,
                               continuing=self.restart or self.resume is not None)
            except PvmpiError as e:
                error = e
        self._agree(error)
        self.started = True
        self.started_at = time.perf_counter()
        self.column.start(self.resume)
        if self.resume is not None and self.comms.is_root:
            print(f"pvmpi: continuing from {self.resume} (t = {self.column.t:g}, step {self.column.step})",
                  file=sys.stderr, flush=True)
            changed = config_changes(self.resume, self.model)
            if changed:
                print(f"pvmpi: the config differs from the checkpoint's: {'; '.join(changed)}",
                      file=sys.stderr, flush=True)
        return self

    def run(self, until=None):
        """Step until time ``until`` (default and at most: stopTime); returns self."""
        self.prepare()
        self.column.advance_to(self.column.stop_time if until is None else until)
        return self

    def step(self, n=1):
        """Advance ``n`` time steps (not past stopTime); returns self."""
        self.prepare()
        self.column.advance_to(self.column.t + (n + 0.5) * self.column.dt)
        return self

    def close(self):
        """Write the final checkpoint and close every file; the messages of failed test probes."""
        if self.closed:
            return self.failures
        self.closed = True
        try:
            if self.started:
                from .io.timers_report import write_timers

                self.failures = self.column.finish()
                self.elapsed = time.perf_counter() - self.started_at
                write_timers(os.path.join(self.column.output_path, "timers.txt"), self.column, self.elapsed)
                self.comms.barrier()
        finally:
            self.comms.free()
        return self.failures

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None:
            self.close()
        elif not self.closed:  # after an error: close the files, no final checkpoint
            self.closed = True
            try:
                if self.started:
                    self.column.abandon()
            finally:
                self.comms.free()

    # ------------------------------------------------------------ looking at the state
    @property
    def t(self):
        """The simulated time."""
        return self.column.t

    @property
    def rank(self):
        """This process's rank in the run's communicator (0 prints, as the command line does)."""
        return self.comms.rank

    @property
    def steps(self):
        """Time steps taken since t = 0."""
        return self.column.step

    @property
    def stopped_by_signal(self):
        """Whether SIGUSR2/SIGTERM ended the run early (after a checkpoint)."""
        return self.column.stopped_by_signal

    def _layer(self, name):
        layer = self.column.layers.get(name)
        if layer is None:
            raise PvmpiError(f"no layer '{name}'", hint="layers: " + ", ".join(self.column.layers))
        return layer

    def _whole(self, local, layer, local_only):
        if local_only:
            return local
        return self.comms.bcast(self.comms.gather_layer(local, layer.tile))

    def activity(self, name, local=False):
        """Layer ``name``'s activity A, restricted: global ``[nbatch, ny, nx, nf]`` on every rank,
        or this rank's tile ``[nb, ny_tile, nx_tile, nf]`` with ``local``."""
        layer = self._layer(name)
        return self._whole(layer.restricted(self.column.kernels.to_host(layer.A)).copy(), layer, local)

    def potential(self, name, local=False):
        """Layer ``name``'s membrane potential V, shaped as :meth:`activity`."""
        layer = self._layer(name)
        if not hasattr(layer, "V"):
            raise PvmpiError(f"layer '{name}' ({layer.group.cls}) has no membrane potential")
        return self._whole(self.column.kernels.to_host(layer.V).copy(), layer, local)

    def weights(self, name):
        """Connection ``name``'s weights: shared ``[arbor, kernel, nyp, nxp, nfp]`` (PVP type-5
        order), non-shared ``[arbor, pre y, pre x, pre f (global extended), nyp, nxp, nfp]``."""
        conn = self.column.connections.get(name)
        if conn is None or not getattr(conn, "has_weights", False):
            raise PvmpiError(f"no connection with weights named '{name}'")
        W = self.column.kernels.to_host(conn.weights).copy()
        return W if conn.shared else self.comms.spatial_sum(conn.global_nonshared(W))

    def write_checkpoint(self, path):
        """Write a checkpoint of the present state to directory ``path`` (collective)."""
        self.prepare()
        self.column.write_checkpoint(path)

    def summary(self):
        """The network as the dry run prints it: layers, connections, probes and the layout."""
        model, column = self.model, self.column
        col = model.column
        lay = column.comms.layout
        lines = [f"pvmpi network from {model.path}",
                 f"  column '{col.name}': {col['nx']}x{col['ny']}, nbatch {col['nbatch']}, dt {col['dt']:g}, "
                 f"stopTime {col['stopTime']:g} ({column.final_step} steps), seed {column.initial_seed}",
                 f"  layout: BatchWidth {lay.batch_width} x NumRows {lay.rows} x NumColumns {lay.columns}",
                 "  layers:"]
        for layer in column.layers.values():
            t = layer.tile
            lines.append(f"    {layer.name:<24} {layer.group.cls:<16} {t.nx_global}x{t.ny_global}x{layer.nf:<4} "
                         f"phase {layer.phase} margin {layer.margin_x},{layer.margin_y}"
                         + (" sparse" if layer.group["sparseLayer"] else ""))
        lines.append("  connections:")
        for conn in column.connections.values():
            extra = ""
            if conn.has_weights:
                g = conn.group
                nxp, nyp = (g["nxp"], g["nyp"]) if "nxp" in g.params else (conn.xmap.patch, conn.ymap.patch)
                extra = f" {nyp}x{nxp} patches, {conn.num_kernels} kernels"
                if conn.plastic:
                    extra += " (plastic)"
            lines.append(f"    {conn.name:<24} {conn.group.cls:<14} {conn.pre.name} -> {conn.post.name} "
                         f"ch {conn.channel}{extra}")
        lines.append("  probes:")
        for probe in column.probes.values():
            lines.append(f"    {probe.name:<24} {probe.group.cls}")
        return "\n".join(lines)
