"""Floating-point work and compulsory memory traffic of one step, from the geometry and activity.

The bench divides these counts by measured time to give GFLOP/s, so they
count the arithmetic the algorithm needs, not what a kernel happens to do
(a dense delivery that skips zeros is still charged the dense count). A
multiply-add is 2 flops:

* dense delivery (pre- or post-perspective): every post neuron gathers from
  ``patch_post_y * patch_post_x * nf_pre`` pre neurons, so
  ``nb * ny_post * nx_post * patch_post_y * patch_post_x * nf_pre * nfp * 2``;
* sparse delivery: each entry of the pre layer's active list scatters one
  patch, ``active * nyp * nxp * nfp * 2``, with the list the connection
  really read that step (before or after the pre layer published);
* Hebbian learning of shared weights: the same counts as delivery, on the
  steps it runs;
* IdentConn: one add per post neuron; layer updates a few flops per neuron
  (:func:`layer_flops_per_neuron`).

Memory traffic is counted the same way, as a model: the *compulsory* bytes
a step must move between memory and the processor at least, if every array
were read or written exactly once per use and nothing stayed in cache from
the previous phase (float32, 4 bytes; an active-list entry, index and
value, 8 bytes). A kernel that re-reads data (gather patches, im2col
columns) or makes extra passes moves more; a cache that keeps a small
array between phases moves less. With ``n`` the restricted neurons of a
layer on this rank:

* layer update: read each GSyn channel, write V where the layer has V, write
  A: ``4 * n * (channels + 2)``; layers whose new V depends on the old one
  (LCA, LeakyIntegrator) also read V, an LCA layer also reads its previous A
  (``selfInteract``), a momentum LCA reads and writes its previous drive;
  input layers (no V, no GSyn) write A only (``4 * n``);
* dense delivery (pre- or post-perspective): per arbor, read the pre layer's
  restricted activity once and the arbor's weights once; read and write the
  post GSyn channel once;
* sparse delivery: per arbor 8 bytes per active-list entry read, plus the
  weights; read and write the post GSyn channel once;
* IdentConn (and RescaleConn): per arbor read the pre activity; read and
  write the post GSyn channel once;
* learning, on the steps it runs: read the pre activity (its active list
  when the pre layer is sparse) per arbor and the post activity once, read
  and write dW (per arbor, the size of the weights).

Publish, halo exchange, guard, I/O and probes are not counted: they are the
implementation's bookkeeping, not the algorithm's (as for flops).
"""

import numpy as np

F_LCA = 7  # V <- e*V + (1-e)*(G + s*A) is 5, soft threshold 2
F_ANN = 2  # threshold and shift
WORD = 4  # bytes of one float32
ENTRY = 8  # bytes of one active-list entry (index and value)


def layer_flops_per_neuron(layer):
    """Approximate flops per restricted neuron of one update: channel sum plus the layer's rule."""
    g = layer.group
    if g.is_a("ImageLayer") or g.is_a("PvpLayer") or g.is_a("ConstantLayer") or not getattr(layer, "has_v", False):
        return 0
    acc = 2 * layer.channels - 1
    if g.is_a("HyPerLCALayer"):
        return acc + F_LCA
    if g.is_a("ANNLayer"):
        return acc + F_ANN
    return acc


def layer_bytes_per_neuron(layer):
    """Compulsory bytes per restricted neuron of one update (see the module docstring)."""
    g = layer.group
    if g.is_a("ConstantLayer"):
        return 0
    if not getattr(layer, "has_v", False):
        return WORD  # an input layer writes A
    words = layer.channels + 2  # read every GSyn channel, write V, write A
    if g.is_a("HyPerLCALayer") or g.is_a("LeakyIntegrator"):
        words += 1  # the new V depends on the old one
    if g.is_a("HyPerLCALayer"):
        words += 1  # the previous A (selfInteract)
    if g.is_a("MomentumLCALayer"):
        words += 2  # read and write the previous drive
    return WORD * words


def _restricted(layer):
    """Restricted neurons of a layer on this rank."""
    t = layer.tile
    return t.nb * t.ny * t.nx * layer.nf


def _wshape(conn):
    """The weights' shape [arbor, kernel, nyp, nxp, nfp] as a tuple (a simulated device array's
    shape object takes no negative index or slice)."""
    return tuple(int(n) for n in conn.weights.shape)


def _arbor_weights(conn):
    """Weights of one arbor (all kernels, shared or not)."""
    return int(np.prod(_wshape(conn)[1:]))


def delivery_bytes(conn, entries=None):
    """Compulsory bytes of one step's delivery on this rank.

    ``entries``: active-list entries read over all arbors for a sparse delivery
    (None: the delivery reads the pre layer's dense activity).
    """
    arbors = len(conn.delays())
    nbytes = 2 * WORD * _restricted(conn.post)  # read and write the GSyn channel once
    if conn.has_weights:
        nbytes += arbors * WORD * _arbor_weights(conn)
    if entries is None:
        nbytes += arbors * WORD * _restricted(conn.pre)
    else:
        nbytes += ENTRY * entries
    return nbytes


def learning_bytes(conn, entries=None):
    """Compulsory bytes of one dW accumulation on this rank (``entries`` as for :func:`delivery_bytes`)."""
    arbors = len(conn.delays())
    pre = arbors * WORD * _restricted(conn.pre) if entries is None else ENTRY * entries
    return pre + WORD * _restricted(conn.post) + arbors * 2 * WORD * _arbor_weights(conn)


def _dense_count(conn):
    """Multiply-adds of a dense delivery of a weighted connection, per step, on this rank."""
    post, pre = conn.post, conn.pre
    t = post.tile
    nfp = _wshape(conn)[-1]
    return t.nb * t.ny * t.nx * conn.ymap.patch_post * conn.xmap.patch_post * pre.nf * nfp


def _patch_count(conn):
    shape = _wshape(conn)
    return shape[2] * shape[3] * shape[4]  # nyp * nxp * nfp


class FlopCounter:
    """Counts flops and compulsory bytes step by step, per timer name.

    Call :meth:`start` once, then :meth:`step` after each ``advance()``.
    """

    def __init__(self, column):
        self.column = column
        self.per_object = {}  # timer name -> flops summed over counted steps
        self.bytes_per_object = {}  # timer name -> compulsory bytes summed over counted steps
        self.steps = 0
        self._nnz = None
        self._counts = None

    def active_sizes(self):
        """Entries in every level of every layer's active list (None where a layer has none)."""
        out = {}
        for name, layer in self.column.layers.items():
            lists = getattr(layer, "active", None)
            if lists and any(a is not None for a in lists):
                out[name] = [None if a is None else int(a[0][-1]) for a in lists]
        return out

    def start(self):
        """Take the baseline (active-list sizes, timer counts) and zero the totals; call after warm-up."""
        self._nnz = self.active_sizes()
        self._counts = dict(self.column.timers.counts)
        self.per_object.clear()
        self.bytes_per_object.clear()
        self.steps = 0

    def _active_used(self, conn, d, before, after, learning=False):
        """Active entries of the list a sparse connection read at delay d this step."""
        pre = conn.pre
        published_first = learning or pre.phase < conn.post.phase
        sizes = (after if published_first else before).get(pre.name)
        if sizes is None or d >= len(sizes) or sizes[d] is None:
            return 0
        return sizes[d]

    def step(self):
        """Add the flops and bytes of the step just advanced; returns its flops."""
        col = self.column
        counts = col.timers.counts
        before, after = self._nnz, self.active_sizes()
        total = 0

        def ran(name):
            return counts.get(name, 0) - self._counts.get(name, 0) > 0

        def add(name, flops, nbytes):
            nonlocal total
            if flops:
                self.per_object[name] = self.per_object.get(name, 0) + flops
                total += flops
            if nbytes:
                self.bytes_per_object[name] = self.bytes_per_object.get(name, 0) + nbytes

        for name, layer in col.layers.items():
            if ran("update:" + name):
                n = _restricted(layer)
                add("update:" + name, n * layer_flops_per_neuron(layer), n * layer_bytes_per_neuron(layer))
        for name, conn in col.connections.items():
            if conn.channel >= 0 and ran("deliver:" + name):
                if not conn.has_weights:
                    add("deliver:" + name, _restricted(conn.post) * len(conn.delays()), delivery_bytes(conn))
                elif conn.delivery_mode() == "sparse":
                    n = sum(self._active_used(conn, d, before, after) for d in conn.delays())
                    add("deliver:" + name, 2 * n * _patch_count(conn), delivery_bytes(conn, n))
                else:
                    add("deliver:" + name, 2 * _dense_count(conn) * len(conn.delays()), delivery_bytes(conn))
            if conn.plastic and self._learned(conn):
                if conn.pre.group["sparseLayer"]:
                    n = sum(self._active_used(conn, d, before, after, learning=True) for d in conn.delays())
                    add("learn:" + name, 2 * n * _patch_count(conn), learning_bytes(conn, n))
                else:
                    add("learn:" + name, 2 * _dense_count(conn) * len(conn.delays()), learning_bytes(conn))
        self._nnz = after
        self._counts = dict(counts)
        self.steps += 1
        return total

    def _learned(self, conn):
        """The updater accumulated dW at this step (it records the time of its last update)."""
        upd = getattr(conn, "updater", None)
        if upd is None:
            return False
        return abs(upd.last_update - self.column.t) < self.column.dt / 2

    @property
    def total(self):
        """Flops summed over the counted steps."""
        return sum(self.per_object.values())

    @property
    def total_bytes(self):
        """Compulsory bytes summed over the counted steps."""
        return sum(self.bytes_per_object.values())
