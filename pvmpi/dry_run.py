"""``python -m pvmpi CONFIG -n``: check a run before spending an allocation on it.

A dry run parses and validates the config, checks the MPI layout against
every layer, checks that the input files (and every image an image list
names) exist, builds the network once, and prints its size and an estimate
of the memory each process will need. It exits 0 when the run could start.

It needs only one process even for a cluster layout: with ``--batchwidth``,
``--rows``, ``--columns`` (or the config's ``parallel`` section) it checks
the layout of B x R x C processes and estimates the memory of one of them.
Under ``mpiexec -n N`` the layout is the one N processes would use.

The network is built on one process at its full size: its arrays are
allocated (``np.zeros``) but never written, so the operating system gives
them no memory and a dry run of a large network stays cheap.
"""
import os

import numpy as np

from .errors import PvmpiError
from .model.shape import bytes_floor, network_shape

#: The interpreter, numpy, Numba and LLVM of one process before any network exists (measured ~150 MB).
BASE_BYTES_PER_PROCESS = 150 * 2 ** 20


def dry_run(args):
    """Run the dry run for parsed command-line ``args``; the exit status (0: the run could start)."""
    from .failure import fail
    from .parallel.job import Job, finish

    everyone = Job()
    error, text = None, None
    if everyone.rank == 0:  # the others only wait for the verdict
        try:
            text = report(args, everyone.size)
        except PvmpiError as e:
            if args.debug:
                raise
            error = str(e)
    code = 0
    if everyone.rank == 0:
        if error is None:
            print(text, flush=True)
        else:
            code = fail(error)
    code = everyone.bcast(code, root=0)
    if code and everyone.size > 1:
        finish(code)  # one error line, not one MPI_Abort message per rank
    return code


def target_layout(model, args, world_size):
    """The layout the run would use: that of ``world_size`` processes, or, from one process, of B x R x C."""
    from .parallel.decomposition import check_world, choose_layout
    from .simulation import choose_run_layout

    given = {"BatchWidth": args.batchwidth, "NumRows": args.rows, "NumColumns": args.columns}
    if world_size > 1:
        layout = choose_run_layout(model, world_size, given)
        check_world(layout, world_size)
        return layout
    par = model.parallel
    b = args.batchwidth or par.get("BatchWidth")
    r = args.rows or par.get("NumRows")
    c = args.columns or par.get("NumColumns")
    return choose_layout((b or 1) * (r or 1) * (c or 1), batch_width=b, rows=r, columns=c)


def check_sizes(model, layout):
    """Every layer's batch, rows and columns divide over ``layout`` (the error a real run gives)."""
    from .parallel.decomposition import tile

    for g in model.layers:
        nx, ny, _ = model.layer_size(g)
        tile(model.column["nbatch"], ny, nx, layout, 0, name=g.name)


def check_layout(column, layout, nbatch):
    """Every layer of a run of ``nbatch`` divides over ``layout`` and its halo fits in its tile
    (the checks a real run makes)."""
    from .parallel.decomposition import tile
    from .parallel.layout import check_margins

    for layer in column.layers.values():
        t = tile(nbatch, layer.tile.ny_global, layer.tile.nx_global, layout, 0, name=layer.name)
        check_margins(t, layer.margin_x, layer.margin_y, layout, bool(layer.group["mirrorBCflag"]))


def check_inputs(column):
    """Every image an input layer's list names exists (the run would fail only when it reaches it).

    Returns ``[(layer name, input path, number of frames)]``.
    """
    found = []
    for layer in column.layers.values():
        source = getattr(layer, "source", None)
        if source is None:
            continue
        files = getattr(source, "files", None)
        path = layer.group["inputPath"]
        if files is not None:
            local = [f for f in files if "://" not in f]
            missing = [f for f in local if not os.path.exists(f)]
            if missing:
                raise PvmpiError(f"{len(missing)} of the {len(files)} listed images not found "
                                 f"(first: {missing[0]})", file=path, group=layer.name, param="inputPath")
        found.append((layer.name, path, len(source)))
    return found


def array_bytes(obj):
    """Bytes of the numpy arrays an object holds (in its attributes, their lists, dicts and
    attribute objects one level down), each memory block counted once (see bench.memory)."""
    from .bench.memory import count_blocks

    return sum(count_blocks(obj, {}).values())


def weight_count(conn):
    """Weights a connection stores (a CloneConn stores none; a TransposeConn as many as its original)."""
    from .network.connections import CloneConn, TransposeConn

    if not getattr(conn, "has_weights", False) or isinstance(conn, CloneConn):
        return 0
    if isinstance(conn, TransposeConn):
        return weight_count(conn.original)
    return int(np.prod(conn.shape))


def memory_per_process(column, layout, nbatch):
    """Estimated bytes of pvmpi's arrays on one process of ``layout``: (layers, connections).

    Each layer's arrays, measured on the one-process network (of any batch), are scaled by
    the share of its extended buffer (batch x (ny + 2 margin) x (nx + 2
    margin)) one process of a run of ``nbatch`` holds. Shared weights are whole on every process:
    W in float32, and for a plastic connection dW, counts and the float64
    reduction buffer (24 bytes per weight), plus prev_dW for a MomentumConn.
    """
    built = column.model.column["nbatch"]
    layers = 0.0
    for layer in column.layers.values():
        t, my, mx = layer.tile, layer.margin_y, layer.margin_x
        whole = built * (t.ny_global + 2 * my) * (t.nx_global + 2 * mx)
        part = (nbatch // layout.batch_width) * (t.ny_global // layout.rows + 2 * my) \
            * (t.nx_global // layout.columns + 2 * mx)
        layers += array_bytes(layer) * part / whole
    conns = 0
    for conn in column.connections.values():
        per_weight = 4
        if getattr(conn, "plastic", False):
            per_weight += 24 + (4 if conn.group.is_a("MomentumConn") else 0)
        conns += weight_count(conn) * per_weight
    return layers, conns


def _size(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def report(args, world_size):
    """Everything a dry run checks, as the text it prints; raises PvmpiError on the first problem."""
    from .parallel.decomposition import Layout
    from .parallel.job import available_memory, one_process
    from .simulation import Simulation, check_memory, load

    model = load(args.config, args.set)
    layout = target_layout(model, args, world_size)
    check_sizes(model, layout)  # before building the network, which opens its inputs
    check_memory(model, layout, processes_here=1)  # the floor a real run refuses, on one process of it
    check_output(model, args)
    shape = network_shape(model)
    free = available_memory()
    # the network is built with one batch element (its arrays scale with the batch: measured once,
    # scaled to the layout), and only where that one element fits this process
    def build(m):
        if free is not None and bytes_floor(network_shape(m), Layout(1, 1, 1)) > free / 2:
            return None
        return Simulation(m, one_process(), backend=args.backend, layout=Layout(1, 1, 1),
                          output_path=args.output_path, seed=args.seed,
                          gpu_devices=getattr(args, "gpu_devices", None))

    try:
        sim = build(load(args.config, [*args.set, f"{model.column.name}.nbatch=1"]))
    except PvmpiError:  # parameters given per batch element (start_frame_index, ...): the whole batch
        sim = build(model)
    if sim is None:
        return "\n".join(model_only_report(model, shape, layout, free))
    with sim:
        column = sim.column
        check_layout(column, layout, model.column["nbatch"])
        inputs = check_inputs(column)

        nbatch = model.column["nbatch"]
        per_element = sum(la.tile.ny_global * la.tile.nx_global * la.nf for la in column.layers.values())
        weights = sum(weight_count(c) for c in column.connections.values()
                      if not (getattr(c, "has_weights", False) and c.group.is_a("TransposeConn")))
        layer_bytes, conn_bytes = memory_per_process(column, layout, nbatch)
        per_process = layer_bytes + conn_bytes
        n = layout.size
        text = [layout_line(model, layout) if line.startswith("  layout:") else
                line.replace(", nbatch 1,", f", nbatch {nbatch},") if line.startswith("  column ") else line
                for line in sim.summary().splitlines()]
        text.append("  inputs:")
        for name, path, frames in inputs:
            text.append(f"    {name:<24} {path} ({frames} frame{'s' if frames != 1 else ''}, all found)")
        text += [f"  size: {per_element:,} neurons per batch element, {per_element * nbatch:,} in all; "
                 f"{weights:,} weights",
                 f"  memory (estimate): {_size(per_process)} of arrays per process (layers {_size(layer_bytes)}, "
                 f"connections {_size(conn_bytes)}) + ~{_size(BASE_BYTES_PER_PROCESS)} for Python, numpy and "
                 f"Numba; {_size(n * (per_process + BASE_BYTES_PER_PROCESS))} over {n} "
                 f"process{'es' if n > 1 else ''}",
                 node_line(per_process + BASE_BYTES_PER_PROCESS, free)]
        if free is not None and per_process + BASE_BYTES_PER_PROCESS > free:
            text.append("pvmpi: dry run: the network and the layout are sound, but one process needs more "
                        "memory than this node has available")
        else:
            text.append("pvmpi: dry run: the run could start")
        return "\n".join(text)


def check_output(model, args):
    """The output folder as the run would find it: writable, and holding no other run's files unless
    --overwrite, -r or -c; a probe folder is made and removed in its nearest existing parent."""
    import errno
    import tempfile

    from .simulation import continues_folder, holds_files

    path = args.output_path or model.column["outputPath"]
    continuing = args.overwrite or args.restart or args.checkpoint
    if holds_files(path) and not continuing and not continues_folder(model, path):
        raise PvmpiError("the output directory already holds files of another run", file=path,
                         hint="--overwrite replaces them, -r continues that run, -o names another directory")
    parent = os.path.abspath(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    try:
        if not os.path.isdir(parent):
            raise NotADirectoryError(errno.ENOTDIR, f"{parent} is not a directory")
        os.rmdir(tempfile.mkdtemp(prefix=".pvmpi-dry-run-", dir=parent))
    except OSError as e:
        raise PvmpiError(f"cannot write the output directory: {e.strerror}", file=path) from None


def layout_line(model, layout):
    """The summary's layout line for the target layout."""
    n = layout.size
    return (f"  layout: BatchWidth {layout.batch_width} x NumRows {layout.rows} x NumColumns {layout.columns} "
            f"= {n} process{'es' if n > 1 else ''} ({model.column['nbatch'] // layout.batch_width} batch "
            f"elements and {model.column['ny'] // layout.rows}x{model.column['nx'] // layout.columns} of the "
            f"column each)")


def node_line(per_process, free):
    """Whether processes of ``per_process`` bytes fit this node's available memory, and how many."""
    if free is None:
        return "  this node: available memory unknown"
    room = int(free // per_process)
    verdict = "does not fit" if room < 1 else f"room for {room} such process{'es' if room != 1 else ''}"
    return f"  this node: {_size(free)} available: {verdict}"


def model_only_report(model, shape, layout, free):
    """The dry run of a network too large to build on this process: its sizes from the model, and
    whether a process of the target layout fits this node; the inputs are left to the run."""
    per_process = bytes_floor(shape, layout) + BASE_BYTES_PER_PROCESS
    text = [f"pvmpi network from {model.path} (too large to build on this process: sizes from the model)",
            layout_line(model, layout), "  layers:"]
    for lay in shape.layers:
        text.append(f"    {lay.name:<24} {lay.nx}x{lay.ny}x{lay.nf:<4} margin {lay.margin_x},{lay.margin_y}")
    per_element = sum(lay.nx * lay.ny * lay.nf for lay in shape.layers)
    text += [f"  size: {per_element:,} neurons per batch element, {per_element * shape.nbatch:,} in all",
             f"  memory (at least): {_size(per_process)} per process, layers alone",
             node_line(per_process, free)]
    return text + ["pvmpi: dry run: the layout fits the network (inputs not checked: the network is too "
                   "large to build here)"]
