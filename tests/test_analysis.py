"""The analysis tools behind the lecture's examples (graphnet/analysis.py)."""

import numpy as np
import pytest

import graphnet as gn
from graphnet import analysis


def model_of(graph, seed=0):
    return gn.Model(graph, seed=seed, dtype="float64")


# --- building and linear collapse ---------------------------------------------
def test_mlp_names_layers_and_counts_params():
    model = model_of(analysis.mlp(3, [5, 4], 2))
    assert analysis.dense_nodes(model) == ["fc1", "fc2", "out"]
    assert model.param_count() == analysis.mlp_param_count(3, [5, 4], 2) == 3*5+5 + 5*4+4 + 4*2+2


def test_stacked_linear_layers_collapse_to_one():
    model = model_of(analysis.mlp(3, [6] * 9, 2, activation=None))
    x = np.random.default_rng(0).normal(size=(20, 3))
    W, b = analysis.collapse_dense(model)
    assert W.shape == (3, 2) and b.shape == (2,)
    assert np.allclose(model.predict({"x": x})["out"], x @ W + b, atol=1e-12)
    assert analysis.collapse_error(model, x) < 1e-12


def test_a_nonlinearity_breaks_the_collapse():
    model = model_of(analysis.mlp(3, [6], 2, activation="relu"))
    x = np.random.default_rng(0).normal(size=(50, 3))
    assert analysis.collapse_error(model, x) > 1e-2


def test_collapse_composes_biases_in_order():
    model = model_of(analysis.mlp(1, [1], 1, activation=None))
    model.params["fc1.weight"][...] = 2.0
    model.params["fc1.bias"][...] = 1.0
    model.params["out.weight"][...] = 3.0
    model.params["out.bias"][...] = 5.0
    W, b = analysis.collapse_dense(model)  # 3 * (2x + 1) + 5 = 6x + 8
    assert W[0, 0] == 6.0 and b[0] == 8.0


# --- activations ---------------------------------------------------------------
def test_activation_table_comes_from_the_registry():
    x = np.linspace(-2, 2, 9)
    table = analysis.activation_table(x)
    assert {"relu", "elu", "softplus", "sigmoid", "tanh"} <= set(table)
    y, dy = table["relu"]
    assert np.array_equal(y, np.maximum(x, 0)) and np.array_equal(dy, (x > 0).astype(float))
    assert np.allclose(table["tanh"][1], 1 - np.tanh(x) ** 2)


def test_activation_table_includes_a_plugins_activation():
    cube = gn.Activation("cube_for_table", fn=lambda x: x ** 3, derivative=lambda x, y: 3 * x ** 2)
    from graphnet.testing import registered
    with registered(cube):
        table = analysis.activation_table(np.array([2.0]))
    assert table["cube_for_table"][0][0] == 8.0 and table["cube_for_table"][1][0] == 12.0


def test_activation_table_names_an_unknown_activation():
    with pytest.raises(gn.UnknownOpError, match="nosuch"):
        analysis.activation_table(np.zeros(3), ["relu", "nosuch"])


# --- backprop ------------------------------------------------------------------
def test_finite_differences_of_a_quadratic():
    a = np.array([1.0, -2.0, 3.0])
    grad = analysis.finite_differences(lambda: float(np.sum(a ** 2)), a)
    assert np.allclose(grad, 2 * a, atol=1e-8)
    assert np.array_equal(a, [1.0, -2.0, 3.0])  # restored


def lecture_chain(activation="tanh"):
    g = gn.Graph("chain")
    x, t = g.input("x", shape=(3,)), g.input("y", shape=(1,))
    h = g.add("dense", x, units=4, name="Dense1")
    h = g.add(activation, h, name="Activation1")
    f = g.add("dense", h, units=1, name="Dense2")
    g.add("mse", f, t, name="loss")
    g.output(f)
    return model_of(g)


def test_node_gradients_match_finite_differences():
    model = lecture_chain()
    rng = np.random.default_rng(1)
    feeds = {"x": rng.normal(size=(5, 3)), "y": rng.normal(size=(5, 1))}
    pairs = analysis.node_gradients(model, feeds, ["Dense1", "Activation1", "Dense2"])
    assert set(pairs) == {"Dense1", "Activation1", "Dense2", "Dense1.weight", "Dense1.bias",
                          "Dense2.weight", "Dense2.bias"}
    assert pairs["Activation1"][0].shape == (5, 4)
    for key, (backward, numeric) in pairs.items():
        assert analysis.relative_error(backward, numeric) < 1e-6, key
    # the loss's gradient with respect to Dense2's output is 2 (f - y) / N
    f = model.predict({"x": feeds["x"]})["Dense2"]
    assert np.allclose(pairs["Dense2"][0], 2 * (f - feeds["y"]) / 5)


def test_tapped_graph_keeps_the_outputs():
    model = lecture_chain()
    tapped = analysis.tapped(model.graph, ["Activation1"])
    m2 = model_of(tapped)
    m2.params.update({k: v.copy() for k, v in model.params.items()})
    x = np.random.default_rng(2).normal(size=(4, 3))
    out1 = model.predict({"x": x})["Dense2"]
    out2 = m2.predict({"x": x, "tap_Activation1": np.zeros((4, 4))})["Dense2"]
    assert np.allclose(out1, out2)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "elu"])
def test_explicit_chain_rule_equals_backward(activation):
    model = lecture_chain(activation)
    rng = np.random.default_rng(3)
    feeds = {"x": rng.normal(size=(6, 3)), "y": rng.normal(size=(6, 1))}
    model.forward(feeds, training=True)
    grads = model.backward()
    explicit = analysis.chain_rule_dense_grad(model, feeds)
    assert analysis.relative_error(explicit, grads["Dense1.weight"]) < 1e-12


def test_gradients_vanish_in_a_deep_sigmoid_net_but_not_with_relu():
    rng = np.random.default_rng(0)
    feeds = {"x": rng.normal(size=(32, 16)), "y": rng.normal(size=(32, 1))}
    sig = analysis.layer_grad_norms(model_of(analysis.mlp(16, [16] * 12, 1, "sigmoid")), feeds)
    relu = analysis.layer_grad_norms(
        model_of(analysis.mlp(16, [16] * 12, 1, "relu", init="he_normal")), feeds)
    assert list(sig) == [f"fc{i}" for i in range(1, 13)] + ["out"]
    assert sig["fc1"] / sig["fc12"] < 1e-4
    assert relu["fc1"] / relu["fc12"] > 1e-2


# --- optimizers on surfaces ------------------------------------------------------
def test_surface_gradients_match_finite_differences():
    for s in analysis.SURFACES.values():
        p = np.array([0.3, -0.7])
        numeric = analysis.finite_differences(lambda: float(s.f(p)), p)
        assert np.allclose(s.grad(p), numeric, atol=1e-5), s.name


def test_surface_minima():
    assert analysis.SURFACES["rosenbrock"].f(np.array([1.0, 1.0])) == 0
    assert analysis.SURFACES["ravine"].f(np.array([0.0, 0.0])) == 0
    assert analysis.SURFACES["saddle"].f(np.array([0.0, 1.0])) == -0.25


def test_sgd_trajectory_on_the_ravine_is_the_closed_form():
    lr, steps = 0.01, 30
    path = analysis.trajectory("sgd", "ravine", lr, steps)
    a, b = analysis.RAVINE_CURVATURE
    k = np.arange(steps + 1)
    x0, y0 = analysis.SURFACES["ravine"].start
    assert path.shape == (steps + 1, 2)
    assert np.allclose(path[:, 0], x0 * (1 - lr * a) ** k)
    assert np.allclose(path[:, 1], y0 * (1 - lr * b) ** k)


def test_a_diverging_trajectory_is_cut_and_counted_as_infinite():
    path = analysis.trajectory("sgd", "ravine", 0.05, 500)   # lr * 100 > 2
    assert np.isnan(path[-1]).all()
    assert analysis.final_loss("ravine", path) == float("inf")
    sweep = analysis.lr_sweep(["sgd"], "ravine", [0.001, 0.01, 0.05], 200, executor="serial")
    assert np.isfinite(sweep["sgd"][:2]).all() and sweep["sgd"][2] == float("inf")
    assert analysis.best_lr([0.001, 0.01, 0.05], sweep["sgd"]) == 0.01
    assert analysis.tolerated_range([0.001, 0.01, 0.05], sweep["sgd"], 1.0) == (0.01, 0.01)


def test_trajectory_uses_the_registered_optimizer():
    class Half(gn.Optimizer):
        name = "half_for_trajectory"

        def update(self, param, grad, state, step):
            param *= 0.5

    class Plugin:
        @gn.hookimpl
        def graphnet_optimizers(self):
            return [Half]

    name = gn.plugins.register(Plugin(), name="half-plugin")
    try:
        path = analysis.trajectory("half_for_trajectory", "saddle", 0.1, 3)
    finally:
        gn.plugins.unregister(name)
    assert np.allclose(path[3], np.array(analysis.SURFACES["saddle"].start) / 8)


def test_unknown_surface_is_named():
    with pytest.raises(gn.GraphnetError, match="unknown surface 'bowl'"):
        analysis.trajectory("sgd", "bowl", 0.1, 3)


# --- loss landscapes --------------------------------------------------------------
def test_filter_normalization_matches_each_column_norm():
    model = model_of(analysis.mlp(5, [7, 3], 2, activation="tanh"))
    d = analysis.filter_normalized_direction(model.params, np.random.default_rng(0))
    assert set(d) == set(model.params)
    for key, theta in model.params.items():
        assert d[key].shape == theta.shape
        if theta.ndim == 1:
            assert not d[key].any(), f"{key}: biases are zeroed (ignore='biasbn')"
        else:
            assert np.allclose(np.linalg.norm(d[key], axis=0), np.linalg.norm(theta, axis=0))
            assert not np.allclose(d[key], theta)


def test_filter_normalization_can_keep_biases():
    params = {"a.weight": np.ones((2, 2)), "a.bias": np.array([0.5, -2.0])}
    d = analysis.filter_normalized_direction(params, np.random.default_rng(0), ignore_bias=False)
    assert np.allclose(np.abs(d["a.bias"]), [0.5, 2.0])


def test_loss_surface_centre_is_the_loss_and_params_are_restored():
    model = model_of(analysis.mlp(4, [8], 1))
    rng = np.random.default_rng(0)
    feeds = {"x": rng.normal(size=(16, 4)), "y": rng.normal(size=(16, 1))}
    before = {k: v.copy() for k, v in model.params.items()}
    d1 = analysis.filter_normalized_direction(model.params, rng)
    d2 = analysis.filter_normalized_direction(model.params, rng)
    alphas, betas = np.linspace(-1, 1, 5), np.linspace(-1, 1, 3)
    surf = analysis.loss_surface(model, feeds, d1, d2, alphas, betas)
    assert surf.shape == (3, 5)
    centre = float(model.forward(feeds)["loss"])
    assert np.isclose(surf[1, 2], centre)
    for k, v in before.items():
        assert np.array_equal(model.params[k], v)
    # one corner by hand: theta + a d1 + b d2
    for k in model.params:
        model.params[k] += -1 * d1[k] + 1 * d2[k]
    assert np.isclose(surf[2, 0], float(model.forward(feeds)["loss"]))


# --- double descent ------------------------------------------------------------------
def test_min_norm_lstsq_interpolates_with_the_smallest_norm():
    rng = np.random.default_rng(0)
    phi, y = rng.normal(size=(5, 12)), rng.normal(size=5)
    coef = analysis.min_norm_lstsq(phi, y)
    assert np.allclose(phi @ coef, y)
    assert np.allclose(coef, np.linalg.pinv(phi) @ y)


def test_random_features_test_error_peaks_at_the_interpolation_threshold():
    x_tr, y_tr, x_te, y_te = analysis.regression_task(40, 400, dim=4, noise=0.3, seed=0)
    sizes = [5, 10, 20, 30, 40, 50, 80, 160, 640]
    curve = analysis.random_features_curve(x_tr, y_tr, x_te, y_te, sizes, seeds=3,
                                           executor="serial")
    peak = sizes[int(np.argmax(curve["test_mse"]))]
    assert peak == 40
    assert curve["train_mse"][sizes.index(80)] < 1e-10      # past the threshold: interpolates
    assert curve["test_mse"][-1] < curve["test_mse"][sizes.index(40)] / 3   # second descent


def test_rise_peak_skips_the_underfitting_start():
    assert analysis.rise_peak([9, 5, 4, 6, 3, 2]) == 3
    assert analysis.rise_peak([9, 5, 4, 6, 3, 7, 1]) == 5
    assert analysis.rise_peak([3, 2, 1]) is None


def test_flip_labels_flip_the_asked_fraction_to_other_classes():
    from graphnet.datasets import flip_labels
    y = np.arange(1000) % 10
    noisy = flip_labels(y, 0.2, 10, np.random.default_rng(0))
    changed = noisy != y
    assert 0.15 < changed.mean() < 0.25
    assert noisy.min() >= 0 and noisy.max() < 10


# --- width ---------------------------------------------------------------------------
def test_sawtooth_has_its_teeth():
    x = np.linspace(-1, 1, 9)
    assert np.allclose(analysis.sawtooth(x, teeth=4), [-1, 1, -1, 1, -1, 1, -1, 1, -1])


def test_approximation_error_falls_with_width():
    fn = analysis.TARGETS["|x|"]
    narrow = analysis.approximation_error(fn, [1], optimizer="sgd", lr=0.1, steps=300,
                                          n_train=50, n_test=101)
    wide = analysis.approximation_error(fn, [16], optimizer="sgd", lr=0.1, steps=300,
                                        n_train=50, n_test=101)
    assert wide < narrow / 3


def test_worst_loss_is_the_highest_point_of_a_path_and_inf_once_it_diverged():
    path = np.array([[-1.5, 2.0], [0.0, 3.0], [1.0, 1.0]])
    assert analysis.worst_loss("rosenbrock", path) == analysis.rosenbrock((0.0, 3.0)) == 901.0
    path[2] = np.nan
    assert analysis.worst_loss("rosenbrock", path) == float("inf")


# --- the lecture's sweeps on the sweep executors ----------------------------------------
def test_lecture_sweeps_give_the_same_numbers_in_this_process_and_in_worker_processes(
        tmp_path):
    """The same cells, serial and on spawned processes: gn.sweep's rows (a double-descent
    grid of widths and seeds on noisy digits) and map_cells values (lr sweeps), equal."""
    rows, losses = {}, {}
    for executor in ("serial", "processes"):
        r = analysis.mlp_double_descent([2, 6], [0, 1], train_size=40, label_noise=0.25,
                                        epochs=15, out=tmp_path / executor, executor=executor,
                                        workers=2)
        rows[executor] = [{k: v for k, v in row.items() if k != "seconds"} for row in r["rows"]]
        losses[executor] = analysis.lr_sweeps(["sgd", "adam"], ["ravine", "saddle"],
                                              [0.003, 0.03], 50, executor=executor)
    assert [(row["fc1.units"], row["seed"]) for row in rows["serial"]] == \
        [(2, 0), (2, 1), (6, 0), (6, 1)]
    assert rows["serial"] == rows["processes"]
    assert len({row["test_loss"] for row in rows["serial"]}) == 4      # the cells differ
    for a, b in zip(losses["serial"], losses["processes"]):
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_mlp_double_descent_summarizes_the_seeds_of_each_width(tmp_path):
    r = analysis.mlp_double_descent([1, 24], [0, 1, 2], train_size=50, label_noise=0.2,
                                    epochs=200, out=tmp_path, executor="serial")
    assert r["params"] == [analysis.mlp_param_count(64, [w], 10) for w in (1, 24)]
    assert r["threshold"] == 500
    test = r["test_error"]
    for i in range(2):
        errors = [row["test_error"] for row in r["rows"] if row["fc1.units"] == r["widths"][i]]
        assert test["mean"][i] == pytest.approx(np.mean(errors))
        assert test["min"][i] == min(errors) and test["max"][i] == max(errors)
    assert r["train_error"]["max"][1] == 0.0           # 24 units fit every noisy label
    assert r["interpolates_from"] == r["params"][1]
    assert r["train_error"]["mean"][0] > 0.3           # one unit cannot
    assert (tmp_path / "results.json").exists()
    again = analysis.mlp_double_descent([1, 24], [0, 1, 2], train_size=50, label_noise=0.2,
                                        epochs=200, out=tmp_path, executor="serial")
    assert [row["seconds"] for row in again["rows"]] == [row["seconds"] for row in r["rows"]]


def test_map_values_names_a_failed_cell():
    with pytest.raises(gn.GraphnetError, match="final_losses: cell 1 of 2 failed: .*nosuch"):
        analysis.map_values(analysis.final_losses, [
            {"name": "sgd", "surf": "ravine", "lrs": [0.01], "steps": 3, "hyper": {}},
            {"name": "sgd", "surf": "nosuch", "lrs": [0.01], "steps": 3, "hyper": {}}],
            executor="serial")
