"""BatchIndexer, mt19937 and std::shuffle against facts 3.9b(c)."""
import numpy as np
import pytest

from pvmpi.errors import PvmpiError
from pvmpi.network.batch_indexer import BatchIndexer, mt19937, std_shuffle, uniform_int


def sequence(ix, steps):
    """Frames shown by every element: one row per displayed frame."""
    rows = [ix.frames().copy()]
    for _ in range(steps):
        ix.advance()
        rows.append(ix.frames().copy())
    return np.array(rows)


def test_mt19937_reference_values():
    g = mt19937(5489)  # the C++ standard's check: 10000th output of the default seed
    assert g() == 3499211612
    for _ in range(9998):
        g()
    assert g() == 4123659995


@pytest.mark.parametrize("seed, n, perm", [
    (1, 10, [9, 0, 2, 5, 7, 4, 6, 3, 1, 8]),
    (1, 7, [1, 0, 6, 3, 5, 4, 2]),
    (123456789, 10, [7, 1, 4, 3, 8, 9, 0, 6, 5, 2]),
    (123456789, 7, [2, 6, 0, 5, 4, 3, 1]),
])
def test_std_shuffle_vectors(seed, n, perm):
    assert std_shuffle(n, seed).tolist() == perm


def test_std_shuffle_is_a_permutation_in_both_modes():
    for n in (0, 1, 2, 3, 65535, 65536, 70001):  # 65536 and up: one draw per swap
        p = std_shuffle(n, 7)
        assert sorted(p.tolist()) == list(range(n))


def test_uniform_int_lemire():
    g1, g2 = mt19937(3), mt19937(3)
    for m in (1, 5, 99, 1000):
        x = g2()
        assert uniform_int(g1, m) == (x * (m + 1)) >> 32  # no rejection for these draws


def test_batch_method_test_by_file():
    ix = BatchIndexer("byFile", 4, 10, start_frame_index=[0, 0, 0, 0])
    seq = sequence(ix, 5)
    # byFile: element b shows b, b+4, b+8, then wraps modulo 10 on its own
    assert seq.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 1], [2, 3, 4, 5],
                            [6, 7, 8, 9], [0, 1, 2, 3]]


def test_batch_method_test_by_list():
    ix = BatchIndexer("byList", 4, 10)
    seq = sequence(ix, 10)
    assert seq[0].tolist() == [0, 2, 4, 6]
    assert seq[:, 0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0]
    assert seq[:, 3].tolist() == [6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6]


def test_aliases_and_starts():
    a = sequence(BatchIndexer("byImage", 3, 7, start_frame_index=[5, 9, 0]), 4)
    b = sequence(BatchIndexer("byFile", 3, 7, start_frame_index=[5, 9, 0]), 4)
    assert (a == b).all()
    assert a[0].tolist() == [5, (9 % 7 + 1) % 7, 2]
    c = sequence(BatchIndexer("byMovie", 3, 7, start_frame_index=[1, 0, 3]), 3)
    assert c[0].tolist() == [1, 2, (3 + 4) % 7]  # s + g*(N//B)
    assert (c == sequence(BatchIndexer("byList", 3, 7, start_frame_index=[1, 0, 3]), 3)).all()


def test_by_specified_skip_and_reset():
    ix = BatchIndexer("bySpecified", 3, 10, start_frame_index=[2, 13, 0],
                      skip_frame_index=[3, 0, -2])
    seq = sequence(ix, 4)
    assert seq[:, 0].tolist() == [2, 5, 8, 1, 4]  # wraps modulo N
    assert seq[:, 1].tolist() == [3, 4, 5, 6, 7]  # skip 0 means step 1
    assert seq[:, 2].tolist() == [0, 1, 2, 3, 4]
    ix = BatchIndexer("bySpecified", 2, 10, start_frame_index=[2, 7], skip_frame_index=[3, 1],
                      reset_to_start_on_loop=True)
    seq = sequence(ix, 5)
    assert seq[:, 0].tolist() == [2, 5, 8, 2, 5, 8]
    assert seq[:, 1].tolist() == [7, 8, 9, 7, 8, 9]
    # resetToStartOnLoop is read only for bySpecified
    ix = BatchIndexer("byList", 2, 4, reset_to_start_on_loop=True)
    assert sequence(ix, 3)[:, 1].tolist() == [2, 3, 0, 1]


def test_single_frame():
    for method in ("byFile", "byList", "bySpecified", "random"):
        assert (sequence(BatchIndexer(method, 3, 1), 3) == 0).all()


def test_random_tables_and_reshuffles():
    seed = 1000
    ix = BatchIndexer("random", 4, 10, random_seed=seed)
    assert ix.indices.tolist() == [0, 1, 2, 3]
    t0 = std_shuffle(10, seed)
    assert ix.frames().tolist() == t0[[0, 1, 2, 3]].tolist()
    ix.advance()  # 4..7, no wrap
    assert ix.frames().tolist() == t0[[4, 5, 6, 7]].tolist()
    ix.advance()  # 8, 9, 10, 11: two elements wrap -> two regenerations, seeds +1 and +2
    assert ix.indices.tolist() == [8, 9, 0, 1]
    t2 = std_shuffle(10, seed + 2)
    assert ix.frames().tolist() == t2[[8, 9, 0, 1]].tolist()
    assert ix.seed == seed + 3
    ix.advance()  # 12, 13, 4, 5: elements 0 and 1 wrap again -> seeds +3, +4
    t4 = std_shuffle(10, seed + 4)
    assert ix.indices.tolist() == [2, 3, 4, 5]
    assert ix.frames().tolist() == t4[[2, 3, 4, 5]].tolist()
    assert [ix.frame(g) for g in range(4)] == t4[[2, 3, 4, 5]].tolist()
    ix.advance()  # 6..9: no wrap, the table stays
    assert ix.frames().tolist() == t4[[6, 7, 8, 9]].tolist() and ix.seed == seed + 5


def test_random_default_seed_and_wrap_of_u32():
    ix = BatchIndexer("random", 2, 5)
    assert ix.frames().tolist() == std_shuffle(5, 123456789)[:2].tolist()
    ix = BatchIndexer("random", 1, 3, random_seed=2**32 - 1)
    ix.advance()
    ix.advance()
    ix.advance()  # wraps
    assert ix.seed == 1 and ix.frames().tolist() == [std_shuffle(3, 0)[0]]


def test_state_round_trip():
    ix = BatchIndexer("random", 3, 8, random_seed=42)
    for _ in range(5):
        ix.advance()
    state = ix.state()
    assert all(isinstance(v, (int, str, list, type(None))) for v in state.values())
    ref = sequence(ix, 6)
    other = BatchIndexer("random", 3, 8, random_seed=42)
    other.set_state(state)
    assert (sequence(other, 6) == ref).all()
    # an OpenPV checkpoint has no table seed: the constructor's table stays until a wrap
    quirk = BatchIndexer("random", 3, 8, random_seed=42)
    quirk.set_state({"indices": state["indices"], "seed": state["seed"]})
    assert quirk.frames().tolist() == std_shuffle(8, 42)[state["indices"]].tolist()
    assert quirk.seed == state["seed"]
    plain = BatchIndexer("byList", 2, 5)
    plain.advance()
    back = BatchIndexer("byList", 2, 5)
    back.set_state(plain.state())
    assert (sequence(back, 4) == sequence(plain, 4)).all()
    with pytest.raises(PvmpiError):
        back.set_state({"indices": [0, 5]})


def test_user_errors():
    with pytest.raises(PvmpiError, match="batchMethod"):
        BatchIndexer("bySomething", 2, 5)
    with pytest.raises(PvmpiError, match="start_frame_index"):
        BatchIndexer("byFile", 2, 5, start_frame_index=[1, 2, 3])
    with pytest.raises(PvmpiError, match="negative"):
        BatchIndexer("byFile", 2, 5, start_frame_index=[1, -1])
    with pytest.raises(PvmpiError, match="skip_frame_index"):
        BatchIndexer("bySpecified", 2, 5, skip_frame_index=[1])
    BatchIndexer("byFile", 2, 5, skip_frame_index=[1])  # read only for bySpecified
    assert BatchIndexer("byFile", 2, 5, start_frame_index=[]).indices.tolist() == [0, 1]
