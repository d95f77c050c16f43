"""The numerical checks of Q2-Q4, each against its own oracle."""
from __future__ import annotations

import numpy as np
import pytest

import common
import q2_q4_checks as checks
from conftest import run_script


def test_least_squares_fit_is_an_orthogonal_projection():
    result = checks.least_squares_projection()
    assert result["max_column_residual_product"] < 1e-10
    assert result["hat_asymmetry"] < 1e-12 and result["hat_idempotence"] < 1e-12
    assert result["projection_gap"] < 1e-10
    assert abs(result["trace"] - result["d"]) < 1e-10  # a projection onto d columns has rank d


def test_meeting_hulls_defeat_the_perceptron_and_apart_hulls_do_not():
    result = checks.convex_hulls()
    a, b = result["meeting"]
    point = result["common_point"]
    assert np.allclose(point, (a[0] + a[1]) / 2) and np.allclose(point, (b[0] + b[1]) / 2)
    assert result["errors_meeting"] >= 1
    assert result["errors_separable"] == 0
    w = result["separating_w"]
    sa, sb = result["separable"]
    assert (sa @ w[:2] + w[2] > 0).all() and (sb @ w[:2] + w[2] < 0).all()


def test_derived_logistic_ridge_gradient_equals_autograd():
    result = checks.logistic_gradient_check()
    assert result["gradient_gap"] < 1e-12 and result["update_gap"] < 1e-12


def test_unregularised_weight_keeps_growing_and_regularised_ones_settle():
    result = checks.weight_growth(iterations=20_000)
    none, l2, l1 = (result["paths"][k] for k in ("none", "L2", "L1"))
    middle = len(none) // 2
    assert none[-1] > none[middle] + 1  # still climbing, like log(t)
    late = -10  # about a quarter of the iterations in: long settled for L1 and L2
    assert abs(l2[-1] - l2[late]) < 1e-6 and abs(l1[-1] - l1[late]) < 1e-6
    x = np.array([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0])
    y = (x >= 0).astype(float)
    stationary = np.mean((1 / (1 + np.exp(-l2[-1] * x)) - y) * x) + result["lam"] * l2[-1]
    assert abs(stationary) < 1e-8  # the L2 weight is the minimiser: its gradient vanishes


def test_convolution_answers_match_hand_computation():
    result = checks.convolution_answers()
    window = [[10, 11, -14], [4, -11, -6], [3, 8, -3]]  # rows 3-5, columns 2-4 of X
    by_hand = sum(f * v for frow, vrow in zip(checks.Q4_F, window) for f, v in zip(frow, vrow)) / 16
    assert result["j"] == by_hand == -0.875
    assert result["output_size"] == [(6 - 2) // 2 + 1, (4 - 2) // 2 + 1] == [3, 2]
    assert list(result["padding"]) == [3, 2] and result["padded_size"] == [6, 4]
    assert result["parameters"] == 4 * 4 and result["conv_output_side_22"] == (22 - 4) // 2 + 1


def test_hand_derived_backpropagation_equals_autograd_in_both_relu_cases():
    result = checks.backprop_check(points=100)
    assert min(result["points"].values()) > 10
    assert max(result["max_relative_gap"].values()) < 1e-10


def test_script_writes_snippet_and_figures(tmp_path, drawn):
    done = run_script("q2_q4_checks.py", "--output-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    snippet = (tmp_path / "generated" / "checks.tex").read_text()
    assert "\\newcommand{\\CheckFourOneJ}{-0.875}" in snippet
    assert {"q2_2_convex_hulls.png", "q3_2_weight_growth.png", "q4_1_blur.png"} <= set(drawn)
    assert all((tmp_path / "figures" / name).exists() for name in drawn)
    # Q2.2: the separable hulls with the perceptron's line and no error
    hulls = drawn["q2_2_convex_hulls.png"]["panels"]
    assert "0 errors" in hulls[1]["title"] and any("perceptron" in label for label in hulls[1]["curves"])
    # Q3.2: without regularization w keeps climbing over the last half of the iterations; L1 and L2 settle
    growth = drawn["q3_2_weight_growth.png"]["panels"][0]
    assert growth["xscale"] == "log" and growth["ylabel"] == "weight w"
    curves = {label.split(",")[0]: values for label, (_, values) in growth["curves"].items()}
    none, l2, l1 = curves["no regularization"], curves["L2"], curves["L1"]
    assert none[-1] > none[len(none) // 2] + 1
    assert abs(l2[-1] - l2[-10]) < 1e-6 and abs(l1[-1] - l1[-10]) < 1e-6
    # Q4.1: the second image is the first filtered by F / 16, pixel by pixel inside the crop
    original, once, _ = (panel["images"][0] for panel in drawn["q4_1_blur.png"]["panels"])
    f = np.array(checks.Q4_F) / 16
    by_hand = sum(f[i, j] * original[i:i + 198, j:j + 198] for i in range(3) for j in range(3))
    np.testing.assert_allclose(once[1:-1, 1:-1], by_hand, rtol=1e-5, atol=1e-3)


def test_a_gap_beyond_float64_rounding_is_refused_not_printed():
    assert checks.below_rounding(3e-15) == "<10^{-12}"
    with pytest.raises(common.UserError, match="more than float64 rounding"):
        checks.below_rounding(2e-12)
