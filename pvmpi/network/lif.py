"""OpenPV's leaky integrate-and-fire layers, LIF and LIFGap: conductance-based spiking with noise.

Each neuron has conductances G_E, G_I, G_IB, a moving threshold Vth and a taus88 generator for its
noise (seeded by the global restricted neuron index, as OpenPV's Random of a restricted layer). Only
the "arma" integration is implemented; OpenPV deprecates "beginning" and "original".
"""
import numpy as np

from ..errors import PvmpiError
from ..kernels.numpy_ref import LIF_CONSTS
from .layers import HyPerLayer
from .random import TausBank, tile_seeds

F32 = np.float32
STATE = ("Vth", "G_E", "G_I", "G_IB")  # OpenPV's checkpoint names of the per-neuron state besides V


class LIF(HyPerLayer):
    """Spikes (A = 0 or 1) from excitatory, inhibitory and slow inhibitory (channel 2) conductances."""

    with_gap = False
    a_is_v = False

    def __init__(self, group, run):
        super().__init__(group, run)
        self.channels = 4 if self.with_gap else 3  # OpenPV requires exc, inh, inhB (and gap)
        method = group["method"] or "arma"
        if method[0] != "a":
            raise PvmpiError(f"method \"{method}\" (deprecated in OpenPV) is not implemented; only \"arma\" is",
                             group=self.name, param="method", hint='use method = "arma"')

    def allocate(self):
        """Also the threshold, the conductances and (LIFGap) the gap strength, restricted."""
        super().allocate()
        self.coefficients = None  # each channel has its own role (exc, inh, inhB, gap): none is summed
        k = self.run.kernels
        self.state = {name: k.zeros(self.restricted_shape) for name in STATE}
        self.gap = k.zeros(self.restricted_shape)
        self.gap_known = False
        self.rng = None

    def allocate_random(self, seeds):
        """One generator per restricted neuron of the global layer (OpenPV allocates at AllocateDataStructures)."""
        t = self.tile
        base = seeds.allocate(t.nbatch_global * t.ny_global * t.nx_global * self.nf)
        bank = TausBank(tile_seeds(base, ny_global=t.ny_global, nx_global=t.nx_global, kb0=t.kb0, ky0=t.ky0,
                                   kx0=t.kx0, nb=t.nb, ny=t.ny, nx=t.nx, nf=self.nf))
        state = np.stack([bank.s0, bank.s1, bank.s2, bank.s3]).reshape((4,) + self.restricted_shape)
        self.rng = self.run.kernels.to_device(state)

    def initialize(self, seeds):
        """V from InitVType, Vth = VthRest, conductances 0, A = 0 (OpenPV's InitializeState)."""
        k = self.run.kernels
        k.upload(self.V, self.run.initial_v(self, seeds))
        k.upload(self.state["Vth"], np.full(self.restricted_shape, F32(self.group["VthRest"])))

    def transfer(self):
        """A changes only at an update (spikes): nothing to do between."""

    def consts(self):
        """lif_arma's float32 constants (numpy_ref.LIF_CONSTS) from the parameters and dt; noise rates
        above one per step are cut to 1000/dt, as OpenPV does."""
        g = self.group
        dt = F32(self.run.dt)
        dt_sec = F32(0.001) * dt
        top = F32(1000.0 / self.run.dt)

        def prob(name):
            return dt_sec * min(F32(g[name]), top)

        def decay(name):
            return F32(np.exp(np.float64(-dt / F32(g[name]))))

        values = dict(tau=g["tau"], Vrest=g["Vrest"], Vexc=g["Vexc"], Vinh=g["Vinh"], VinhB=g["VinhB"],
                      VthRest=g["VthRest"], deltaVth=g["deltaVth"], deltaGIB=g["deltaGIB"], noiseAmpE=g["noiseAmpE"],
                      noiseAmpI=g["noiseAmpI"], noiseAmpIB=g["noiseAmpIB"], probE=prob("noiseFreqE"),
                      probI=prob("noiseFreqI"), probIB=prob("noiseFreqIB"), expE=decay("tauE"), expI=decay("tauI"),
                      expIB=decay("tauIB"), expVth=decay("tauVth"), dt=dt)
        return np.array([values[name] for name in LIF_CONSTS], F32)

    def update(self, t):
        """One arma step (LIFGap: its gap strength first computed, at the first update)."""
        k, s = self.run.kernels, self.state
        if self.with_gap and not self.gap_known:
            self.gap_strength()
        k.lif_arma(self.gsyn, self.A, self.V, s["Vth"], s["G_E"], s["G_I"], s["G_IB"], self.gap, self.rng,
                   self.margin_x, self.margin_y, self.consts(), self.with_gap)

    def gap_strength(self):
        """The gap strength: what the gap channel's connections deliver from activity 1 everywhere."""
        total = np.zeros(self.restricted_shape, F32)
        for conn in self.run.incoming[self.name]:
            if conn.channel == 3:
                conn.unit_input(total)
        self.run.kernels.upload(self.gap, total)
        self.gap_known = True

    def write_checkpoint(self, ck):
        """Also Vth, the conductances, (LIFGap) the gap strength and the generators, as OpenPV's files."""
        super().write_checkpoint(ck)
        k = self.run.kernels
        for name in STATE + (("gapStrength",) if self.with_gap else ()):
            buf = self.gap if name == "gapStrength" else self.state[name]
            ck.restricted(f"{self.key}/{name}", k.to_host(buf), self.tile, f"LIF {name}")
        state = np.moveaxis(np.asarray(k.to_host(self.rng)), 0, -1)
        ck.rand_state(self.key + "/rand_state", state, self.tile, lambda neurons: neurons)

    def read_checkpoint(self, rd, fresh_outputs=False):
        """Also the state :meth:`write_checkpoint` saved."""
        super().read_checkpoint(rd, fresh_outputs)
        k = self.run.kernels
        for name in STATE:
            k.upload(self.state[name], rd.restricted(f"{self.key}/{name}", self.tile, self.nf))
        if self.with_gap:
            k.upload(self.gap, rd.restricted(f"{self.key}/gapStrength", self.tile, self.nf))
            self.gap_known = True
        state = rd.rand_state(self.key + "/rand_state", self.tile, self.nf, lambda frames: frames)
        self.rng = k.to_device(np.ascontiguousarray(np.moveaxis(state, -1, 0), np.uint32))


class LIFGap(LIF):
    """A LIF with gap junctions: channel 3's input and the gap strength (the sum of its weights) join V."""

    with_gap = True


LIF_CLASSES = {"LIF": LIF, "LIFGap": LIFGap}
