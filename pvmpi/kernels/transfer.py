"""OpenPV's ANN transfer function for one value (facts §3.6), shared by the compiled backends.

Plain Python: cpu.py compiles it with ``njit`` and cuda.py as a CUDA device
function, so the branch structure lives in one place (numpy_ref.py keeps the
readable vectorised form the backends are tested against).
"""
import numpy as np

FLT_MAX = 3.4028234663852886e38
_F32 = np.float32


def transfer1(v, on, VThresh, AMin, clip, AMax, AShift, VWidth):
    """OpenPV's ANN transfer of one V: AMin below VThresh, a ramp over VWidth, then V − AShift;
    capped at AMax when ``clip``. With ``on`` false (no VThresh) A = V before the cap."""
    a = v
    if on:
        top = VThresh + VWidth
        if v < VThresh:
            a = AMin
        elif v < top:
            a = AMin + (((top - AShift) - AMin) * (v - VThresh)) / VWidth
        else:
            a = v - AShift
    if clip and a > AMax:
        a = AMax
    return a


_LOWEST, _HIGHEST = _F32(-FLT_MAX), _F32(FLT_MAX)


def transfer_args(VThresh, AMin, AMax, AShift, VWidth):
    """float32 parameters plus the two switches: thresholding on, AMax clipping on."""
    VThresh, AMax = _F32(VThresh), _F32(AMax)
    return (bool(VThresh > _LOWEST), VThresh, _F32(AMin), bool(AMax < _HIGHEST), AMax, _F32(AShift), _F32(VWidth))
