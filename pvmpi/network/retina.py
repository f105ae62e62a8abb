"""OpenPV's Retina: activity from the excitatory minus the inhibitory input, as a rate or as spikes.

A spiking Retina gives each neuron a taus88 generator and the time since its last spike. OpenPV
seeds its generators over the extended layer but indexes them as restricted neurons; in one
process that makes neuron (b, y, x, f) of the global batch take seed base + its flat global
index, which pvmpi uses on every layout.
"""
import numpy as np

from .layers import Layer
from .random import TausBank

F32 = np.float32
PI = 3.1415926535897932  # OpenPV's PI (a double)


class Retina(Layer):
    """A = burst · P_stim · (exc − inh) + P_base (spikingFlag false), or spikes drawn with that
    probability, scaled by a refractory factor (spikingFlag true); no V."""

    def __init__(self, group, run):
        super().__init__(group, run)
        self.channels = 2  # OpenPV requires the excitatory and inhibitory channels
        g, dt = group, run.dt
        self.spiking = bool(g["spikingFlag"])
        # OpenPV's rates are per second, dt in milliseconds; probabilities are capped at 1
        self.prob_stim = min(F32(g["foregroundRate"] * dt * 0.001), F32(1))
        self.prob_base = min(F32(g["backgroundRate"] * dt * 0.001), F32(1))
        self.end_stim = g["endStim"] if g["endStim"] >= 0 else 3.4028234663852886e38

    def link(self, layers):
        """The trigger, if any."""
        self.controller = self.trigger_controller(layers) or self.controller

    def allocate(self):
        """Also the time since each neuron's last spike (spiking only)."""
        super().allocate()
        self.since = self.run.kernels.zeros(self.restricted_shape) if self.spiking else None
        self.rng = None

    def allocate_random(self, seeds):
        """The generators (spiking only): OpenPV allocates one seed per extended neuron of the global layer."""
        if not self.spiking:
            return
        t = self.tile
        self.seed_base = seeds.allocate(self.total_generators())
        b, y, x, f = np.meshgrid(np.arange(t.kb0, t.kb0 + t.nb), np.arange(t.ky0, t.ky0 + t.ny),
                                 np.arange(t.kx0, t.kx0 + t.nx), np.arange(self.nf), indexing="ij")
        flat = ((b * t.ny_global + y) * t.nx_global + x) * self.nf + f
        bank = TausBank((flat + self.seed_base) & 0xFFFFFFFF)
        state = np.stack([bank.s0, bank.s1, bank.s2, bank.s3]).reshape((4,) + self.restricted_shape)
        self.rng = self.run.kernels.to_device(state)

    def total_generators(self):
        """Seeds OpenPV allocates: one per extended neuron of the global layer and batch."""
        t = self.tile
        return t.nbatch_global * (t.ny_global + 2 * self.margin_y) * (t.nx_global + 2 * self.margin_x) * self.nf

    def initialize(self, seeds):
        """Since the last spike = 10 absolute refractory periods, then one update at t = 0 (from zero input)."""
        if self.spiking:
            host = self.run.kernels.host_buffer(self.since)
            host[...] = F32(10) * F32(self.group["absRefractoryPeriod"])
            self.run.kernels.upload(self.since, host)
        self.update(0.0)

    def burst(self, t):
        """OpenPV's burst status at t: a cosine of burstFreq (burstDuration <= 0), else 1 during the
        first burstDuration ms of each period; 0 outside [beginStim, endStim)."""
        g = self.group
        freq, duration = F32(g["burstFreq"]), F32(g["burstDuration"])
        if duration <= 0 or freq == 0:
            status = np.cos(F32(2.0 * PI * float(F32(t)) * float(freq) / 1000.0))
        else:
            status = F32(np.fmod(F32(t), F32(1000) / freq) < duration)
        return F32(status * F32(g["beginStim"] <= t < self.end_stim))

    def update(self, t):
        """A from this step's input: spikes or rates."""
        g, k = self.group, self.run.kernels
        burst = self.burst(t)
        if self.spiking:
            k.retina_spikes(self.gsyn, self.A, self.since, self.rng, self.margin_x, self.margin_y, self.run.dt,
                            self.prob_base, self.prob_stim, burst, g["absRefractoryPeriod"], g["refractoryPeriod"])
        else:
            k.retina_rate(self.gsyn, self.A, self.margin_x, self.margin_y, burst * self.prob_stim, self.prob_base)

    # --- checkpoints: OpenPV's SinceLastSpike.pvp and rand_state.pvp
    def neurons_of(self, frames):
        """The global generator states [nbatch, ny, nx, nf, 4] in OpenPV's rand_state frames."""
        t = self.tile
        n = len(frames) * t.ny_global * t.nx_global * self.nf
        return frames.reshape(-1, 4)[:n].reshape(len(frames), t.ny_global, t.nx_global, self.nf, 4)

    def frames_of(self, neurons):
        """OpenPV's rand_state frames [nbatch, nyE, nxE, nf, 4]: the neurons' generators first, the
        ones OpenPV never draws from as seeded."""
        t = self.tile
        bank = TausBank.from_base(self.seed_base, self.total_generators())
        flat = np.stack([bank.s0, bank.s1, bank.s2, bank.s3], axis=1)
        flat[:neurons.size // 4] = neurons.reshape(-1, 4)
        return flat.reshape(t.nbatch_global, t.ny_global + 2 * self.margin_y, t.nx_global + 2 * self.margin_x,
                            self.nf, 4)

    def write_checkpoint(self, ck):
        """Also, spiking, the time since the last spike and the generators."""
        super().write_checkpoint(ck)
        if self.spiking:
            k = self.run.kernels
            ck.restricted(self.key + "/SinceLastSpike", k.to_host(self.since), self.tile,
                          "time since each neuron's last spike")
            state = np.moveaxis(np.asarray(k.to_host(self.rng)), 0, -1)
            ck.rand_state(self.key + "/rand_state", state, self.tile, self.frames_of)

    def read_checkpoint(self, rd, fresh_outputs=False):
        """Also, spiking, the time since the last spike and the generators."""
        super().read_checkpoint(rd, fresh_outputs)
        if self.spiking:
            k = self.run.kernels
            k.upload(self.since, rd.restricted(self.key + "/SinceLastSpike", self.tile, self.nf))
            state = rd.rand_state(self.key + "/rand_state", self.tile, self.nf, self.neurons_of)
            self.rng = k.to_device(np.ascontiguousarray(np.moveaxis(state, -1, 0), np.uint32))
