"""Arrays in: float64/float32, C/Fortran order, strided views, pandas-like
objects, one row, zero rows, 1-D arrays. Arrays out: float64, owning their data."""
import numpy as np
import pytest

import flows
from conftest import SMALL_TRAINER, moons


@pytest.fixture(scope="module")
def scored(moons_model):
    model, _ = moons_model
    rows = moons(257, seed=2)
    return model, rows, model.log_prob(rows)


def test_result_is_float64_and_owns_its_buffer(scored):
    model, rows, log_p = scored
    assert log_p.dtype == np.float64 and log_p.shape == (257,)
    assert log_p.flags.c_contiguous and log_p.flags.writeable
    # Not a view of a temporary NumPy array: the SDK's buffer, kept alive by the array.
    assert log_p.base is not None and not isinstance(log_p.base, np.ndarray)
    assert np.isfinite(log_p).all()


def test_float32_is_converted_once(scored):
    model, rows, _ = scored
    as32 = rows.astype(np.float32)
    np.testing.assert_allclose(model.log_prob(as32), model.log_prob(as32.astype(np.float64)),
                               rtol=0, atol=0)


def test_fortran_order_and_strided_views_give_the_same_values(scored):
    model, rows, log_p = scored
    np.testing.assert_array_equal(model.log_prob(np.asfortranarray(rows)), log_p)
    wide = np.zeros((257 * 2, 5))
    wide[::2, 1] = rows[:, 0]
    wide[::2, 3] = rows[:, 1]
    view = wide[::2, 1::2]  # strides in both axes
    assert not view.flags.c_contiguous and not view.flags.f_contiguous
    np.testing.assert_array_equal(model.log_prob(view), log_p)
    # Negative strides: the rows sit elsewhere in BLAS's blocks, so equal to float32 rounding.
    np.testing.assert_allclose(model.log_prob(rows[::-1])[::-1], log_p, rtol=0, atol=1e-6)


def test_objects_with_array_and_lists_are_accepted(scored):
    model, rows, log_p = scored

    class Frame:  # what pandas offers: __array__ and column names
        columns = ["a", "b"]

        def __array__(self, dtype=None):
            return rows if dtype is None else rows.astype(dtype)

    np.testing.assert_array_equal(model.log_prob(Frame()), log_p)
    # Three rows are scored in another block layout than 257: equal to rounding.
    np.testing.assert_allclose(model.log_prob(rows[:3].tolist()), log_p[:3], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(model.log_prob(rows[:3].astype(np.float16).astype(np.float64)),
                                  model.log_prob(rows[:3].astype(np.float16)))


def test_one_row_and_zero_rows(scored):
    model, rows, log_p = scored
    one = model.log_prob(rows[4:5])
    assert one.shape == (1,) and one[0] == pytest.approx(log_p[4], abs=1e-12)
    empty = model.log_prob(np.empty((0, 2)))
    assert empty.shape == (0,) and empty.dtype == np.float64
    assert model.sample(0).shape == (0, 2)
    with pytest.raises(flows.DataError, match="x: no rows to score"):
        model.bits_per_dim(np.empty((0, 2)))


def test_a_1d_array_is_one_column_for_a_1d_model_and_an_error_otherwise(scored):
    x = np.random.default_rng(0).standard_normal(600)
    model = flows.fit(x, model={"bijectors": [{"type": "maf", "layers": 1, "hidden": [8]}]},
                      trainer=dict(SMALL_TRAINER, steps=30), progress=False)
    assert model.dim == 1
    np.testing.assert_array_equal(model.log_prob(x[:10]), model.log_prob(x[:10, None]))
    assert model.sample(5, seed=1).shape == (5, 1)
    two_d, rows, _ = scored
    with pytest.raises(flows.DataError, match=r"x: a 1-D array of 2 values.*x.reshape\(1, -1\)"):
        two_d.log_prob(rows[0])


def test_wrong_shapes_and_bad_values_are_data_errors(scored):
    model, rows, _ = scored
    with pytest.raises(flows.DataError, match=r"x: 3 columns, but the model 'fit' reads 2 x "
                                              r"columns and no context \(it is unconditional\)"):
        model.log_prob(np.zeros((4, 3)))
    with pytest.raises(flows.DataError, match="a 3-D array"):
        model.log_prob(np.zeros((2, 2, 2)))
    bad = rows[:5].copy()
    bad[3, 1] = np.nan
    with pytest.raises(flows.DataError, match="x: row 3, column 1 is nan"):
        model.log_prob(bad)
    with pytest.raises(flows.DataError, match="complex values"):
        model.log_prob(rows[:2].astype(complex))
    with pytest.raises(flows.DataError, match="dtype <U1 is not numeric"):
        model.log_prob(np.array([["a", "b"]]))
    with pytest.raises(flows.DataError, match="more precision than float64"):
        model.log_prob(rows[:2].astype(np.longdouble))


def test_samples_are_float64_rows(scored):
    model, _, _ = scored
    s, log_p = model.sample_and_log_prob(300, seed=5)
    assert s.shape == (300, 2) and s.dtype == np.float64 and log_p.shape == (300,)
    np.testing.assert_allclose(model.log_prob(s), log_p, rtol=0, atol=1e-8)
    np.testing.assert_array_equal(model.sample(300, seed=5), s)
    assert not np.array_equal(model.sample(10), model.sample(10))  # seed=None: fresh draws


def test_fit_takes_float32_fortran_data_and_dataframe_names():
    x = np.asfortranarray(moons(600).astype(np.float32))

    class Frame:
        columns = ["left", "right"]

        def __array__(self, dtype=None):
            return x if dtype is None else x.astype(dtype)

    model = flows.fit(Frame(), model={"bijectors": [{"type": "maf", "layers": 1, "hidden": [8]}]},
                      trainer=dict(SMALL_TRAINER, steps=20), progress=False)
    assert model.columns == ["left", "right"]
