"""Numerical checks of the written answers to Q2-Q4, each with an independent tool (least squares and
linear algebra, a perceptron, torch.autograd, torch's convolution). The numbers go into
report/generated/checks.tex, which the report inputs, so the text and the code cannot disagree:

- Q2.1  the least-squares residual is orthogonal to every column of X; the hat matrix is symmetric and idempotent;
- Q2.2  a perceptron never separates two point sets whose convex hulls meet, but does separate a separable pair;
- Q3.1  the derived gradient of the ridge-regularised logistic loss equals autograd, one update step is as derived;
- Q3.2  on separable 1-D data the unregularised weight grows without bound, while L2 and L1 keep it finite;
- Q4.1  j, the output size, the padding and the parameter count, computed with torch; F applied to a photograph;
- Q4.2  every hand-derived gradient of the DAG equals autograd, in both ReLU cases.

    python codes/q2_q4_checks.py                # writes the snippet and three figures
    python codes/q2_q4_checks.py --output-dir D # elsewhere

Figures: report/figures/q2_2_convex_hulls.png, q3_2_weight_growth.png and q4_1_blur.png.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import cli
import common
import latex
import plotting
import runs

# Q4.1's image X and filter F, as printed in the assignment.
Q4_X = [[-15, -10, -13, 12, 6, 2],
        [8, 12, 10, -1, 3, -15],
        [8, 10, 11, -14, -14, 5],
        [-4, 4, -11, -6, 13, 14],
        [-13, 3, 8, -3, -2, 15],
        [14, 12, -2, -9, -11, 0]]
Q4_F = [[1, 2, 1], [2, 4, 2], [1, 2, 1]]  # divided by 16


def least_squares_projection(n: int = 50, d: int = 4, seed: int = 0) -> dict:
    """Q2.1 on random data: X^T (y - X theta*) = 0, H = H^T, H^2 = H, y_hat = H y."""
    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(n, d)), rng.normal(size=n)
    theta, *_ = np.linalg.lstsq(X, y, rcond=None)
    hat = X @ np.linalg.inv(X.T @ X) @ X.T
    return {
        "max_column_residual_product": float(np.abs(X.T @ (y - X @ theta)).max()),
        "hat_asymmetry": float(np.abs(hat - hat.T).max()),
        "hat_idempotence": float(np.abs(hat @ hat - hat).max()),
        "projection_gap": float(np.abs(hat @ y - X @ theta).max()),
        "trace": float(np.trace(hat)),
        "n": n, "d": d,
    }


def perceptron_errors(a: np.ndarray, b: np.ndarray, epochs: int = 1000) -> tuple[int, np.ndarray]:
    """Fewest points a perceptron (w^T x + w0 > 0 for a, < 0 for b) gets wrong over `epochs`, and its last w."""
    points = np.hstack([np.concatenate([a, b]), np.ones((len(a) + len(b), 1))])  # a constant 1 for w0
    signs = np.concatenate([np.ones(len(a)), -np.ones(len(b))])
    w, fewest = np.zeros(3), len(points)
    for _ in range(epochs):
        for x, s in zip(points, signs):
            if s * (w @ x) <= 0:
                w += s * x
        fewest = min(fewest, int((signs * (points @ w) <= 0).sum()))
        if fewest == 0:
            break
    return fewest, w


def convex_hulls() -> dict:
    """Q2.2: an XOR-like pair whose hulls share the origin, and a separable pair."""
    meeting = (np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, -2.0]]), np.array([[0.0, -1.0], [0.0, 1.0], [2.0, 1.5]]))
    common_point = 0.5 * meeting[0][0] + 0.5 * meeting[0][1]  # also 0.5 * b[0] + 0.5 * b[1]
    separable = (meeting[0] + np.array([-2.5, 0.0]), meeting[1] + np.array([2.0, 0.5]))
    (errors_meeting, _), (errors_separable, w) = perceptron_errors(*meeting), perceptron_errors(*separable)
    return {"meeting": meeting, "separable": separable, "common_point": common_point,
            "errors_meeting": errors_meeting, "errors_separable": errors_separable, "separating_w": w}


def logistic_gradient_check(n: int = 40, m: int = 5, lam: float = 0.3, lr: float = 0.5, seed: int = 0) -> dict:
    """Q3.1: the derived gradient against autograd, one update theta <- theta - eta df/dtheta against SGD's."""
    g = torch.Generator().manual_seed(seed)
    X = torch.cat([torch.randn(n, m, generator=g, dtype=torch.float64), torch.ones(n, 1, dtype=torch.float64)], 1)
    y = (torch.rand(n, generator=g, dtype=torch.float64) < 0.5).double()
    theta = torch.randn(m + 1, generator=g, dtype=torch.float64, requires_grad=True)
    z = X @ theta
    ((-y * z + torch.log1p(torch.exp(z))).mean() + lam / 2 * (theta**2).sum()).backward()
    start = theta.detach().clone()
    derived = X.T @ (torch.sigmoid(X @ start) - y) / n + lam * start  # the bias is regularised too
    torch.optim.SGD([theta], lr=lr).step()
    return {"gradient_gap": float((theta.grad - derived).abs().max()),
            "update_gap": float((theta.detach() - (start - lr * derived)).abs().max()), "n": n, "m": m}


def weight_growth(iterations: int = 100_000, lr: float = 1.0, lam: float = 0.01) -> dict:
    """Q3.2: gradient descent on separable 1-D data (x < 0: y = 0, x >= 0: y = 1), no bias. Unregularised,
    the loss keeps falling as |w| grows, so w grows like log(t); with L2 or L1 the minimiser is finite."""
    x = np.array([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0])
    y = (x >= 0).astype(float)
    record = np.unique(np.logspace(0, math.log10(iterations), 60).astype(int))
    paths = {}
    for name in ("none", "L2", "L1"):
        w, paths[name] = 0.0, []
        for t in range(1, iterations + 1):
            w -= lr * (np.mean((1 / (1 + np.exp(-w * x)) - y) * x) + (lam * w if name == "L2" else 0.0))
            if name == "L1":  # soft threshold: the proximal step of lam |w|
                w = math.copysign(max(abs(w) - lr * lam, 0.0), w)
            if t in record:
                paths[name].append(w)
    return {"iterations": record.tolist(), "paths": paths, "lam": lam, "lr": lr}


def convolution_answers() -> dict:
    """Q4.1 computed with torch's convolution (no flip: F is symmetric, so it would not matter)."""
    X = torch.tensor(Q4_X, dtype=torch.float64).view(1, 1, 6, 6)
    Y = F.conv2d(X, torch.tensor(Q4_F, dtype=torch.float64).view(1, 1, 3, 3) / 16)[0, 0]
    output_size = lambda padding: tuple(F.conv2d(torch.zeros(1, 1, 6, 4), torch.zeros(1, 1, 2, 2), stride=2,
                                                 padding=padding).shape[2:])
    # the smallest symmetric padding, per dimension (each output side depends only on its own), that keeps (6, 4)
    padding = tuple(next(p for p in range(10) if output_size((p, p))[dim] == (6, 4)[dim]) for dim in (0, 1))
    layer = torch.nn.Conv2d(1, 1, kernel_size=4, stride=2, bias=False)
    return {
        "Y": Y.tolist(), "j": float(Y[2, 1]), "j_times_16": float(Y[2, 1] * 16),
        "output_size": list(output_size((0, 0))), "padding": list(padding), "padded_size": list(output_size(padding)),
        "parameters": common.parameter_count(layer), "parameters_with_bias": layer.weight.numel() + 1,
        "conv_output_side_22": layer(torch.zeros(1, 1, 22, 22)).shape[-1],
    }


def dag_forward(p: dict, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Figure 4's graph: the ReLU's input, z1, z2, y1 hat, y2 hat and the loss J."""
    pre1 = p["w11"] * x[0] + p["w21"] * x[1]
    z1 = torch.relu(pre1)
    z2 = p["w22"] * x[1] ** 2 + p["w32"] * x[2] + p["b2"]
    y1 = torch.sigmoid(p["m11"] * z1**3 + p["c1"])
    y2 = p["m12"] * torch.sin(z1) + p["m22"] * torch.cos(z2)
    return pre1, z1, z2, y1, y2, torch.log((y[0] - y1) ** 2) + torch.log((y[1] - y2) ** 2)


def dag_gradients(p: dict, x: torch.Tensor, y: torch.Tensor) -> dict:
    """The hand-derived backpropagation of Q4.2, written as in the report, from the forward pass's values."""
    pre1, z1, z2, s, y2, _ = dag_forward(p, x, y)  # s: y1 hat
    dJ_dy1 = -2 / (y[0] - s)  # d/dy1 of log((y1 - y1hat)^2) = 2 / (y1hat - y1)
    dJ_dy2 = -2 / (y[1] - y2)
    dJ_dc1 = dJ_dy1 * s * (1 - s)
    dJ_dz1 = dJ_dc1 * 3 * p["m11"] * z1**2 + dJ_dy2 * p["m12"] * torch.cos(z1)
    dJ_dz2 = -dJ_dy2 * p["m22"] * torch.sin(z2)
    relu_derivative = 0.0 if pre1 < 0 else 1.0  # the assignment's convention: 1 at 0
    return {"m11": dJ_dc1 * z1**3, "c1": dJ_dc1, "m12": dJ_dy2 * torch.sin(z1), "m22": dJ_dy2 * torch.cos(z2),
            "w22": dJ_dz2 * x[1] ** 2, "w32": dJ_dz2 * x[2], "b2": dJ_dz2,
            "w11": dJ_dz1 * relu_derivative * x[0], "w21": dJ_dz1 * relu_derivative * x[1]}


def backprop_check(points: int = 200, seed: int = 0) -> dict:
    """Q4.2: hand-derived gradients against autograd at random points, split by the ReLU case."""
    g = torch.Generator().manual_seed(seed)
    gaps, counts = {"active": 0.0, "inactive": 0.0}, {"active": 0, "inactive": 0}
    names = ("w11", "w21", "w22", "w32", "m11", "m12", "m22", "b2", "c1")
    for _ in range(points):
        p = {n: torch.randn((), generator=g, dtype=torch.float64, requires_grad=True) for n in names}
        x, y = torch.randn(3, generator=g, dtype=torch.float64), torch.randn(2, generator=g, dtype=torch.float64) * 3
        pre1, *_, loss = dag_forward(p, x, y)
        autograd = torch.autograd.grad(loss, list(p.values()))
        hand = dag_gradients({n: v.detach() for n, v in p.items()}, x, y)
        case = "active" if pre1 >= 0 else "inactive"
        counts[case] += 1
        for n, exact in zip(names, autograd):
            gaps[case] = max(gaps[case], float((exact - hand[n]).abs()) / max(1.0, float(exact.abs())))
    return {"max_relative_gap": gaps, "points": counts}


def plot_hulls(result: dict, path: Path) -> Path:
    fig, axes = plotting.plt.subplots(1, 2, figsize=(9, 4))
    titles = {"meeting": f"hulls meet: a perceptron leaves {result['errors_meeting']} point(s) wrong",
              "separable": "hulls apart: separated with 0 errors"}
    for ax, (key, title) in zip(axes, titles.items()):
        for points, color, name in zip(result[key], ("C0", "C3"), ("{x_n}", "{y_n}")):
            ax.fill(*np.vstack([points, points[:1]]).T, color=color, alpha=0.2)
            ax.scatter(*points.T, color=color, label=f"{name} and its hull")
        if key == "meeting":
            ax.scatter(*result["common_point"], marker="*", s=150, color="k", label="a point in both hulls")
        else:
            w = result["separating_w"]
            gx, gy = np.meshgrid(np.linspace(-4, 4.5, 200), np.linspace(-3, 3, 200))
            ax.contour(gx, gy, w[0] * gx + w[1] * gy + w[2], levels=[0], colors="k")
            ax.plot([], [], color="k", label="w^T x + w0 = 0 (perceptron)")
        ax.set(aspect="equal", xlim=(-4, 4.5), ylim=(-3, 3))
        ax.legend(fontsize=7, loc="lower right")
        ax.set_title(title, fontsize=9)
    fig.suptitle("Q2.2 intersecting convex hulls cannot be linearly separated", fontsize=10)
    return plotting.save(fig, path)


@plotting.plt.rc_context(plotting.PRINTED_TYPE)
def plot_growth(result: dict, path: Path) -> Path:
    """Drawn at its printed size, beside the text (0.41 of the text width)."""
    fig, ax = plotting.plt.subplots(figsize=(2.7, 2.1))
    for name, color in (("none", "C0"), ("L2", "C1"), ("L1", "C2")):
        label = "no regularization" if name == "none" else f"{name}, lambda = {result['lam']}"
        ax.plot(result["iterations"], result["paths"][name], color=color, label=label)
    ax.set(xscale="log", xlabel="gradient-descent iterations", ylabel="weight w")
    ax.legend()
    ax.set_title("Q3.2: on separable 1-D data,\nw grows like log t unless regularized")
    return plotting.save(fig, path)


def plot_blur(path: Path) -> Path:
    """The filter F applied to a photograph shipped with matplotlib."""
    photo = plotting.plt.imread(plotting.matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    kernel = torch.tensor(Q4_F, dtype=torch.float32).view(1, 1, 3, 3) / 16
    passes = 10  # one pass is hard to see at print size; ten show the same effect, stronger
    blurred = [torch.tensor(photo.mean(2), dtype=torch.float32)[None, None]]  # blurred[k]: F applied k times
    for _ in range(passes):
        blurred.append(F.conv2d(blurred[-1], kernel, padding=1))
    with plotting.plt.rc_context(plotting.PRINTED_TYPE):  # at its printed size, 0.44 of the text width
        fig, axes = plotting.plt.subplots(1, 3, figsize=(2.9, 1.45))
        for ax, k, title in zip(axes, (0, 1, passes), ("input (detail)", "F once", f"F {passes} times")):
            ax.imshow(blurred[k][0, 0, 130:330, 150:350].numpy(), cmap="gray")
            ax.set_title(title)
            ax.axis("off")
        fig.suptitle("Q4.1: F = [1 2 1; 2 4 2; 1 2 1] / 16 averages\neach pixel with its neighbours: a blur")
    return plotting.save(fig, path)


ROUNDING_BOUND = -12  # float64 checks agree to this power of ten on any CPU; the last digits vary between CPUs


def below_rounding(gap: float) -> str:
    """A float64 check's gap as the bound it is under, so that the report does not change with the CPU's kernels."""
    if not gap < 10.0 ** ROUNDING_BOUND:
        raise common.UserError(f"a numerical check is off by {gap:.1e}, more than float64 rounding explains")
    return f"<10^{{{ROUNDING_BOUND}}}"


def snippet(projection, hulls, logistic, growth, conv, backprop) -> str:
    exact = lambda v: f"{v:.4f}".rstrip("0").rstrip(".")  # Y's entries are sixteenths: four decimals are exact
    rows = " \\\\ ".join(" & ".join(exact(v) for v in row) for row in conv["Y"])
    paths, middle = growth["paths"], len(growth["iterations"]) // 2
    iterations = [f"{n:,}".replace(",", "{,}") for n in growth["iterations"]]  # LaTeX's thousands separator
    return latex.latex_macros("codes/q2_q4_checks.py", {
        "CheckTwoOneResidual": below_rounding(projection["max_column_residual_product"]),
        "CheckTwoOneSymmetry": below_rounding(projection["hat_asymmetry"]),
        "CheckTwoOneIdempotence": below_rounding(projection["hat_idempotence"]),
        "CheckTwoOneShape": f"{projection['n']}\\times {projection['d']}",
        "CheckTwoTwoErrorsMeeting": str(hulls["errors_meeting"]),
        "CheckTwoTwoErrorsSeparable": str(hulls["errors_separable"]),
        "CheckThreeOneGradientGap": below_rounding(logistic["gradient_gap"]),
        "CheckThreeOneUpdateGap": below_rounding(logistic["update_gap"]),
        "CheckThreeTwoIterations": iterations[-1],
        "CheckThreeTwoNone": f"{paths['none'][-1]:.2f}",
        "CheckThreeTwoNoneTenth": f"{paths['none'][middle]:.2f}",
        "CheckThreeTwoTenthIterations": iterations[middle],
        "CheckThreeTwoLTwo": f"{paths['L2'][-1]:.2f}",
        "CheckThreeTwoLOne": f"{paths['L1'][-1]:.2f}",
        "CheckThreeTwoLambda": str(growth["lam"]),
        "CheckFourOneJ": f"{conv['j']:g}",
        "CheckFourOneJSixteen": f"{conv['j_times_16']:g}",
        "CheckFourOneY": f"\\begin{{bmatrix}} {rows} \\end{{bmatrix}}",
        "CheckFourOneSize": "({}, {})".format(*conv["output_size"]),
        "CheckFourOnePadHeight": str(conv["padding"][0]),
        "CheckFourOnePadWidth": str(conv["padding"][1]),
        "CheckFourOnePaddedSize": "({}, {})".format(*conv["padded_size"]),
        "CheckFourOneParameters": str(conv["parameters"]),
        "CheckFourOneParametersBias": str(conv["parameters_with_bias"]),
        "CheckFourOneOutputSide": str(conv["conv_output_side_22"]),
        "CheckFourTwoGapActive": below_rounding(backprop["max_relative_gap"]["active"]),
        "CheckFourTwoGapInactive": below_rounding(backprop["max_relative_gap"]["inactive"]),
        "CheckFourTwoPointsActive": str(backprop["points"]["active"]),
        "CheckFourTwoPointsInactive": str(backprop["points"]["inactive"]),
    })


def main(argv: list[str] | None = None) -> int:
    parser = cli.script_parser(__doc__)
    parser.add_argument("--output-dir", type=cli.given_path, default=None,
                        help="write figures/ and generated/ here (default: report/figures and report/generated)")
    paths = cli.output_paths("q2_q4_checks", {}, {}, parser.parse_args(argv).output_dir)
    paths.claim("checks", "q2_", "q3_", "q4_")
    projection, hulls = least_squares_projection(), convex_hulls()
    logistic, growth = logistic_gradient_check(), weight_growth()
    conv, backprop = convolution_answers(), backprop_check()
    path = paths.generated / "checks.tex"
    runs.write_atomic(path, snippet(projection, hulls, logistic, growth, conv, backprop))
    print(f"Q2.1 max |X^T r| = {projection['max_column_residual_product']:.1e}; Q3.1 gradient gap "
          f"{logistic['gradient_gap']:.1e}; Q4.1 j = {conv['j']:g}; Q4.2 max relative gap "
          f"{max(backprop['max_relative_gap'].values()):.1e}")
    print(f"snippet: {path}")
    for figure in (plot_hulls(hulls, paths.figures / "q2_2_convex_hulls.png"),
                   plot_growth(growth, paths.figures / "q3_2_weight_growth.png"),
                   plot_blur(paths.figures / "q4_1_blur.png")):
        print(f"figure: {figure}")
    return 0


if __name__ == "__main__":
    cli.run_main(main)
