"""Floating-point work of one time step, counted from the network's geometry and activity.

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
"""

F_LCA = 7  # V <- e*V + (1-e)*(G + s*A) is 5, soft threshold 2
F_ANN = 2  # threshold and shift


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


def _dense_count(conn):
    """Multiply-adds of a dense delivery of a weighted connection, per step, on this rank."""
    post, pre = conn.post, conn.pre
    t = post.tile
    nfp = conn.weights.shape[-1]
    return t.nb * t.ny * t.nx * conn.ymap.patch_post * conn.xmap.patch_post * pre.nf * nfp


def _patch_count(conn):
    W = conn.weights
    return W.shape[2] * W.shape[3] * W.shape[4]  # nyp * nxp * nfp


class FlopCounter:
    """Counts flops step by step; call :meth:`start` once, then :meth:`step` after each ``advance()``."""

    def __init__(self, column):
        self.column = column
        self.per_object = {}  # timer name -> flops summed over counted steps
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
        """Add the flops of the step just advanced; returns them."""
        col = self.column
        counts = col.timers.counts
        before, after = self._nnz, self.active_sizes()
        total = 0

        def ran(name):
            return counts.get(name, 0) - self._counts.get(name, 0) > 0

        def add(name, flops):
            nonlocal total
            if flops:
                self.per_object[name] = self.per_object.get(name, 0) + flops
                total += flops

        for name, layer in col.layers.items():
            if ran("update:" + name):
                t = layer.tile
                add("update:" + name, t.nb * t.ny * t.nx * layer.nf * layer_flops_per_neuron(layer))
        for name, conn in col.connections.items():
            if conn.channel >= 0 and ran("deliver:" + name):
                if not conn.has_weights:
                    t = conn.post.tile
                    add("deliver:" + name, t.nb * t.ny * t.nx * conn.post.nf * len(conn.delays()))
                elif conn.delivery_mode() == "sparse":
                    n = sum(self._active_used(conn, d, before, after) for d in conn.delays())
                    add("deliver:" + name, 2 * n * _patch_count(conn))
                else:
                    add("deliver:" + name, 2 * _dense_count(conn) * len(conn.delays()))
            if conn.plastic and self._learned(conn):
                if conn.pre.group["sparseLayer"]:
                    n = sum(self._active_used(conn, d, before, after, learning=True) for d in conn.delays())
                    add("learn:" + name, 2 * n * _patch_count(conn))
                else:
                    add("learn:" + name, 2 * _dense_count(conn) * len(conn.delays()))
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
        return sum(self.per_object.values())
