"""Explicit 8-float vector code for the two CPU loops LLVM leaves slow: im2col's moves, patch sums.

Numba keeps LLVM's straight-line vectoriser off, so an 8-float move is 16
scalar instructions, and a sum into memory pays a store-to-load round trip
per term. These intrinsics emit ``<8 x float>`` loads, stores and separate
multiplies and adds (no fused multiply-add: each element gets exactly the
rounding of the scalar loop it replaces). Callers keep every index in range:
nothing here checks bounds. Their callers live in cpu.py, whose Numba cache
does not notice edits here: clear ``__pycache__`` after changing this file.
"""
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

LANES = 8
MAX_VECTORS = 8  # patch sums of up to 64 floats stay in registers
_F32 = ir.FloatType()
_I64 = ir.IntType(64)
_VEC = ir.VectorType(_F32, LANES)


def _is_f32(a):
    return isinstance(a, types.Array) and a.dtype == types.float32 and a.ndim == 1 and a.layout == "C"


def _data(context, builder, typ, value):
    return context.make_array(typ)(context, builder, value).data


def _vector_at(builder, base, offset):
    """A <8 x float>* at base[offset] (float* base, i64 offset)."""
    return builder.bitcast(builder.gep(base, [offset]), _VEC.as_pointer())


@intrinsic
def move8(typingctx, dst, d, src, s):
    """dst[d:d+8] = src[s:s+8] as one vector load and store (1-D float32 arrays)."""
    if not (_is_f32(dst) and _is_f32(src)):
        return None
    sig = types.void(dst, types.int64, src, types.int64)

    def codegen(context, builder, signature, args):
        dp = _data(context, builder, signature.args[0], args[0])
        sp = _data(context, builder, signature.args[2], args[2])
        value = builder.load(_vector_at(builder, sp, args[3]), align=4)
        builder.store(value, _vector_at(builder, dp, args[1]), align=4)
        return context.get_dummy_value()

    return sig, codegen


def _patch_sum(nv):
    """The intrinsic of :func:`add_patch_sum` for runs of ``nv`` vectors (8*nv floats)."""

    @intrinsic
    def add_sum(typingctx, dst, d, W, idx, val, n, m, row0, stride, c):
        if not (_is_f32(dst) and _is_f32(W) and _is_f32(val)
                and isinstance(idx, types.Array) and idx.dtype == types.int32 and idx.ndim == 1):
            return None
        sig = types.void(dst, types.int64, W, idx, val, *(types.int64,) * 5)

        def codegen(context, builder, signature, args):
            dst_, d_, W_, idx_, val_, n_, m_, row0_, stride_, c_ = args
            dp = _data(context, builder, signature.args[0], dst_)
            wp = _data(context, builder, signature.args[2], W_)
            ip = _data(context, builder, signature.args[3], idx_)
            vp = _data(context, builder, signature.args[4], val_)
            zero = ir.Constant(_VEC, [0.0] * LANES)
            entry = builder.block
            head = builder.append_basic_block("patch_sum.head")
            body = builder.append_basic_block("patch_sum.body")
            done = builder.append_basic_block("patch_sum.done")
            builder.branch(head)

            builder.position_at_end(head)
            e = builder.phi(_I64)
            acc = [builder.phi(_VEC) for _ in range(nv)]
            e.add_incoming(n_, entry)
            for a in acc:
                a.add_incoming(zero, entry)
            builder.cbranch(builder.icmp_signed("<", e, m_), body, done)

            builder.position_at_end(body)
            k = builder.sext(builder.load(builder.gep(ip, [e])), _I64)
            a = builder.load(builder.gep(vp, [e]))
            i32 = ir.IntType(32)
            lane0 = builder.insert_element(ir.Constant(_VEC, ir.Undefined), a, ir.Constant(i32, 0))
            splat = builder.shuffle_vector(lane0, ir.Constant(_VEC, ir.Undefined),
                                           ir.Constant(ir.VectorType(i32, LANES), [0] * LANES))
            start = builder.add(builder.mul(builder.add(row0_, k), stride_), c_)
            nxt = []
            for v in range(nv):
                w = builder.load(_vector_at(builder, wp, builder.add(start, ir.Constant(_I64, v * LANES))), align=4)
                nxt.append(builder.fadd(acc[v], builder.fmul(splat, w)))
            e.add_incoming(builder.add(e, ir.Constant(_I64, 1)), body)
            for a, b in zip(acc, nxt):
                a.add_incoming(b, body)
            builder.branch(head)

            builder.position_at_end(done)
            for v in range(nv):
                p = _vector_at(builder, dp, builder.add(d_, ir.Constant(_I64, v * LANES)))
                builder.store(builder.fadd(builder.load(p, align=4), acc[v]), p, align=4)
            return context.get_dummy_value()

        return sig, codegen

    return add_sum


_S1, _S2, _S3, _S4, _S5, _S6, _S7, _S8 = (_patch_sum(nv) for nv in range(1, MAX_VECTORS + 1))


@njit(inline="always")
def add_patch_sum(dst, d, W, idx, val, n, m, row0, stride, c, length, acc):
    """dst[d:d+length] += Σ_{e in [n, m)} val[e] * W[(row0 + idx[e]) * stride + c:][:length].

    The sum is formed first (from 0, in e order) and added once, so one
    position's features cost no memory round trip; runs of 8 to 64 floats
    keep it in registers, others in ``acc`` (scratch of >= length floats),
    with the same arithmetic for every element either way.
    """
    nv = length // LANES
    if length == nv * LANES and 1 <= nv <= MAX_VECTORS:
        if nv == 8:
            _S8(dst, d, W, idx, val, n, m, row0, stride, c)
        elif nv == 4:
            _S4(dst, d, W, idx, val, n, m, row0, stride, c)
        elif nv == 1:
            _S1(dst, d, W, idx, val, n, m, row0, stride, c)
        elif nv == 2:
            _S2(dst, d, W, idx, val, n, m, row0, stride, c)
        elif nv == 3:
            _S3(dst, d, W, idx, val, n, m, row0, stride, c)
        elif nv == 5:
            _S5(dst, d, W, idx, val, n, m, row0, stride, c)
        elif nv == 6:
            _S6(dst, d, W, idx, val, n, m, row0, stride, c)
        else:
            _S7(dst, d, W, idx, val, n, m, row0, stride, c)
        return
    for q in range(length):
        acc[q] = 0
    for e in range(n, m):
        a = val[e]
        w0 = (row0 + idx[e]) * stride + c
        for q in range(length):
            acc[q] += a * W[w0 + q]
    for q in range(length):
        dst[d + q] += acc[q]


_MASK_BITS = 64


@intrinsic
def nonzero_mask64(typingctx, row, start):
    """Bit q set where row[start + q] != 0 (NaN included), q < 64: four vector compares."""
    if not _is_f32(row):
        return None
    sig = types.uint64(row, types.int64)

    def codegen(context, builder, signature, args):
        rp = _data(context, builder, signature.args[0], args[0])
        vec = ir.VectorType(_F32, _MASK_BITS)
        values = builder.load(builder.bitcast(builder.gep(rp, [args[1]]), vec.as_pointer()), align=4)
        bits = builder.fcmp_unordered("!=", values, ir.Constant(vec, [0.0] * _MASK_BITS))
        return builder.bitcast(bits, _I64)

    return sig, codegen
