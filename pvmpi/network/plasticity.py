"""Hebbian learning of shared weights, reduced over the whole batch (facts §4.5, §4.6).

Every local batch element accumulates into one dW; the sum (and the
normalizeDw counts) is then all-reduced over every rank, so each rank applies
the same update and the shared dictionary stays identical everywhere. The
reduction runs in float64, which makes the learned weights independent of
how the batch and the layer are split, to far better than float32 round-off.
"""
import math

import numpy as np

from .schedule import periodic_due

F32 = np.float32


class HebbianUpdater:
    """dW = dWMax · a_pre · a_post summed over batch and positions; normalised by counts."""

    def __init__(self, conn, layers):
        g = conn.group
        self.conn = conn
        self.run = conn.run
        self.dw_max = g["dWMax"]
        self.decay_interval = g["dWMaxDecayInterval"]
        self.decay_factor = g["dWMaxDecayFactor"]
        self.normalize_dw = g["normalizeDw"]
        self.immediate = g["immediateWeightUpdate"]
        trig = g["triggerLayerName"]
        self.trigger = layers[trig].controller if trig is not None else None
        self.trigger_offset = g["triggerOffset"]
        self.period = g["weightUpdatePeriod"]
        self.last_update = g["initialWeightUpdateTime"]
        self.num_updates = 0  # updates that came due (applied at once, or delayed to the next)
        self.decay_timer = 0  # OpenPV's dWMax decay timer: decays at the first update, then every interval + 1
        self.pending = None  # the request of a reduction still in flight
        self.waiting = False  # a reduced dW (restored from a checkpoint) waits to be applied
        self.clones = []  # PlasticCloneConns whose Hebbian terms join this dW

    def allocate(self):
        """dW and the normalizeDw counts (float32, shaped like W), this rank's [dW, counts] in
        float64 and the buffer their all-reduced sum lands in."""
        shape = self.conn.shape
        self.dW = self.run.kernels.zeros(shape)
        self.counts = self.run.kernels.zeros(shape)
        self.local_buf = np.zeros((2,) + shape, np.float64)
        self.reduce_buf = np.zeros((2,) + shape, np.float64)

    def due(self, t):
        """Whether W learns at t: when the trigger layer updates at t + triggerOffset, else every
        weightUpdatePeriod from the last update (initialWeightUpdateTime first)."""
        if self.trigger is not None:
            return self.trigger.due(t + self.trigger_offset)
        return periodic_due(t, self.last_update, self.period, self.run.dt)

    def update(self, t):
        """Learn if due at t; whether it was. As in OpenPV, a due update counts as a change of W
        (its timestamp, renormalising, copies) even when a delayed update has nothing to apply yet."""
        if not self.due(t):
            return False
        self.last_update = t
        if not self.immediate and (self.pending is not None or self.waiting):
            self.add_to_weights(self.finish_reduction())
        self.accumulate()
        comms = self.run.comms
        # shared weights: every rank's dW adds up; non-shared: only the batch copies of this tile
        if self.immediate:
            reduce = comms.allreduce_sum if self.conn.shared else comms.batch_sum
            self.run.timers.call("allreduce:" + self.conn.name, reduce, self.local_buf, self.reduce_buf)
            self.add_to_weights(self.reduced_dw())
        else:
            start = comms.iallreduce_sum if self.conn.shared else comms.ibatch_sum
            self.pending = start(self.local_buf, self.reduce_buf)
        self.count_update()
        return True

    def accumulate(self):
        """This rank's dW and counts, over its batch elements and tile (the connection's pre and post,
        then each PlasticCloneConn's, per arbor as OpenPV), into the reduction buffer."""
        conn, k = self.conn, self.run.kernels
        k.fill_zero(self.dW)
        k.fill_zero(self.counts)
        args = conn.map_args()
        for arbor, d in enumerate(conn.delays()):
            for pre, post in [(conn.pre, conn.post)] + [(c.pre, c.post) for c in self.clones]:
                if pre.group["sparseLayer"]:
                    offsets, idx, val = pre.active_level(d)
                    k.hebbian_shared_sparse(offsets, idx, val, pre.nf, pre.extended_shape[2], post.level(0),
                                            self.dW[arbor], self.counts[arbor], F32(self.dw_max), *args,
                                            pre.margin_x, pre.margin_y, post.margin_x, post.margin_y)
                else:
                    k.hebbian_shared(pre.level(d), post.level(0), self.dW[arbor], self.counts[arbor],
                                     F32(self.dw_max), *args, pre.margin_x, pre.margin_y,
                                     post.margin_x, post.margin_y)
        self.local_buf[0] = k.to_host(self.dW)  # dW crosses to the host for the all-reduce
        self.local_buf[1] = k.to_host(self.counts)

    def finish_reduction(self):
        """Wait for the dW all-reduce in flight (timed as all-reduce); the reduced dW."""
        if self.pending is not None:
            self.run.timers.call("allreduce:" + self.conn.name, self.pending.wait)
            self.pending = None
        self.waiting = False
        return self.reduced_dw()

    def reduced_dw(self):
        """The all-reduced dW as float32: divided by the counts for shared weights with
        normalizeDw (0 where none), else the sum."""
        dw, counts = self.reduce_buf
        if self.normalize_dw and self.conn.shared:  # non-shared dW is always the sum (facts §4.5)
            out = np.divide(dw, counts, out=np.zeros_like(dw), where=counts > 0)
        else:
            out = dw
        return out.astype(F32)

    def count_update(self):
        """One more update came due (its dW applied now or at the next): dWMax shrinks by
        dWMaxDecayFactor at the first, then every dWMaxDecayInterval + 1 (OpenPV's timer, float32)."""
        self.num_updates += 1
        if self.decay_interval > 0:
            self.decay_timer -= 1
            if self.decay_timer < 0:
                self.decay_timer = self.decay_interval
                self.dw_max = float(F32(self.dw_max) * (F32(1) - F32(self.decay_factor)))

    def add_to_weights(self, dw):
        """W += dw (the reduced dW, host float32: it crosses back where W lives)."""
        self.run.kernels.scale_into(self.conn.W, dw, 1.0, True)

    def next_update_time(self):
        """OpenPV's weightUpdateTime: initialWeightUpdateTime (moved past 0 by periods), then past
        each update by periods (kept for checkpoints in OpenPV's form)."""
        w, period = self.conn.group["initialWeightUpdateTime"], self.period
        if period <= 0:
            return w
        if w < 0:
            while w <= 0:
                w += period
        while self.num_updates and self.last_update >= w:
            w += period
        return w

    def write_checkpoint(self, ck, key):
        """Schedules, the decayed dWMax, and a reduced dW still waiting to be applied."""
        pending = self.pending is not None
        if pending:  # complete the reduction first: the checkpoint holds the reduced sums
            self.pending.wait()
            self.pending = None
            self.waiting = True
        waiting = getattr(self, "waiting", False)
        ck.attrs(key, last_update=self.last_update, num_updates=self.num_updates, dw_max=self.dw_max,
                 pending_dw=waiting, decay_timer=self.decay_timer)
        if self.trigger is None:  # OpenPV keeps an untriggered plastic connection's update times
            ck.entry(self.conn.name, "lastUpdateTime", self.last_update, "<f8")
            ck.entry(self.conn.name, "weightUpdateTime", self.next_update_time(), "<f8")
        if waiting:
            self.conn.checkpoint_weights(ck, key + "/dW", self.reduce_buf,
                                         "reduced [dW, counts] not yet applied "
                                         "(immediateWeightUpdate = false), float64")
        if not self.immediate:  # OpenPV keeps the dW the next update applies (0 before the first)
            dw = self.reduced_dw() if waiting else np.zeros(self.conn.shape, F32)
            self.conn.checkpoint_openpv_weights(ck, key + "/dW", dw)

    def read_checkpoint(self, rd, key, fresh_outputs=False):
        """Restore dWMax, the update schedule (unless ``fresh_outputs``: initialising from
        a checkpoint) and a reduced dW still waiting to be applied."""
        self.dw_max = rd.attr(key, "dw_max", self.dw_max)
        if not fresh_outputs:
            self.last_update = rd.attr(key, "last_update")
            self.num_updates = rd.attr(key, "num_updates")
            self.decay_timer = rd.attr(key, "decay_timer", 0)
        self.waiting = bool(rd.attr(key, "pending_dw"))
        if self.waiting:
            self.reduce_buf[...] = self.conn.restore_weights(rd, key + "/dW", self.reduce_buf)

    def open_output(self, resume=None):
        """No output of its own (MomentumConn writes prev_dW)."""

    def write_output(self, t):
        """Nothing to write (see :meth:`open_output`)."""

    def close(self):
        """Complete a dW all-reduce still in flight, so no MPI request outlives the run."""
        if self.pending is not None:
            self.pending.wait()
            self.pending = None


class MomentumUpdater(HebbianUpdater):
    """dW = (1−f)·dW_hebb + f·prev_dW − c·W, prev_dW = dW (facts §4.6)."""

    def __init__(self, conn, layers):
        super().__init__(conn, layers)
        g = conn.group
        self.method = g["momentumMethod"]
        self.deprecated = g["timeConstantTau"] is None and g["momentumTau"] is not None
        tau = g["momentumTau"] if self.deprecated else g["timeConstantTau"]
        if self.method == "viscosity":
            self.f = F32(math.exp(-1.0 / tau)) if tau != 0 else F32(0)
        else:
            self.f = F32(tau)
        self.decay = g["momentumDecay"]
        self.writer = None

    def allocate(self):
        """Also prev_dW: zero, or read from initPrev_dWFile (frame prev_dWFrameNumber)."""
        super().allocate()
        g = self.conn.group
        k = self.run.kernels
        self.prev_dW = k.zeros(self.conn.shape)
        if g["initPrev_dWFile"]:
            k.upload(self.prev_dW, self.run.read_weights(g["initPrev_dWFile"], g["prev_dWFrameNumber"],
                                                         self.conn, "initPrev_dWFile"))

    def add_to_weights(self, dw):
        """W += (1−f)·dW + f·prev_dW − c·W (no 1−f with the deprecated momentumTau), c = momentumDecay
        (times dWMax for 'alex'); the change is kept as the next prev_dW."""
        c = F32(self.decay * self.dw_max if self.method == "alex" else self.decay)
        a = F32(1) if self.deprecated else F32(1) - self.f
        self.run.kernels.momentum_weights(self.conn.W, dw, self.prev_dW, a, self.f, c)

    def write_checkpoint(self, ck, key):
        super().write_checkpoint(ck, key)
        self.conn.checkpoint_weights(ck, key + "/prev_dW", self.run.kernels.to_host(self.prev_dW),
                                     "momentum state: the previous dW, shaped as W")
        ck.attrs(key, prev_delta_frames=self.writer.num_frames if self.writer is not None else -1)
        if self.writer is not None:
            ck.file_position(self.conn.name + ".prevDelta", self.writer.position)

    def read_checkpoint(self, rd, key, fresh_outputs=False):
        """Also restore prev_dW."""
        super().read_checkpoint(rd, key, fresh_outputs)
        k = self.run.kernels
        k.upload(self.prev_dW, self.conn.restore_weights(rd, key + "/prev_dW", k.to_host(self.prev_dW)))

    def open_output(self, resume=None):
        """Open <conn>.prevDelta.pvp for prev_dW, cut back to its checkpointed frames on resume."""
        from ..io import pvp
        from ..io.outputs import continue_output

        frames = None if resume is None else resume.attr(self.conn.key, "prev_delta_frames")
        self.writer = pvp.WeightsWriter(self.run.output_file(self.conn.name + ".prevDelta.pvp"),
                                        append=frames is not None)
        if frames is not None:
            continue_output(self.writer, frames)

    def write_output(self, t):
        """Append prev_dW at time t to <conn>.prevDelta.pvp (collective for non-shared weights)."""
        self.conn.write_weights(self.writer, t, self.run.kernels.to_host(self.prev_dW))

    def close(self):
        """Also close the prevDelta file."""
        super().close()
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class CopyUpdater:
    """A CopyConn's updater (OpenPV's CopyUpdater): copies the original's W whenever it changed
    after the copy's own (their timestamps); checkpoints the time of the last copy."""

    def __init__(self, conn):
        self.conn = conn
        self.last_update = 0.0

    def allocate(self):
        """No buffers of its own."""

    def update(self, t):
        """Copy the original's W if it is newer than the copy's; return True when W changed."""
        if self.conn.original.timestamp <= self.conn.timestamp:
            return False
        self.conn.copy_original()
        self.last_update = t
        return True

    def write_checkpoint(self, ck, key):
        """lastUpdateTime, as OpenPV's CopyUpdater registers it."""
        ck.attrs(key, last_update=self.last_update)
        ck.entry(self.conn.name, "lastUpdateTime", self.last_update, "<f8")

    def read_checkpoint(self, rd, key, fresh_outputs=False):
        """The time of the last copy, unless ``fresh_outputs`` (initialising from a checkpoint)."""
        if not fresh_outputs:
            self.last_update = rd.attr(key, "last_update", self.last_update)

    def open_output(self, resume=None):
        """No output of its own."""

    def write_output(self, t):
        """Nothing to write."""

    def close(self):
        """Nothing to close."""


def make_updater(conn, layers):
    """The weight updater of a plastic connection: MomentumUpdater for a MomentumConn, else Hebbian."""
    return (MomentumUpdater if conn.group.cls == "MomentumConn" else HebbianUpdater)(conn, layers)
