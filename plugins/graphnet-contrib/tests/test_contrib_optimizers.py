import numpy as np
import pytest

from graphnet_contrib.optimizers import Lion, NAdam


def test_lion_first_step_moves_each_coordinate_by_lr():
    theta = {"w": np.array([1.0, -2.0, 0.5, 3.0])}
    g = np.array([0.3, -4.0, 0.0, 1e-9])
    opt = Lion(lr=0.1, beta1=0.9, beta2=0.99)
    opt.step(theta, {"w": g})
    # m starts at 0, so c = 0.1 * g and the step is -lr * sign(g)
    np.testing.assert_allclose(theta["w"], [0.9, -1.9, 0.5, 2.9])
    np.testing.assert_allclose(opt.state["w"]["m"], 0.01 * g)


def test_lion_second_step_uses_beta1_interpolation_and_weight_decay():
    theta = {"w": np.array([1.0])}
    opt = Lion(lr=0.1, beta1=0.9, beta2=0.99, weight_decay=0.5)
    opt.step(theta, {"w": np.array([1.0])})       # m = 0.01
    # decay: 1 * (1 - 0.05) = 0.95, then - 0.1 * sign(0.1) = 0.85
    np.testing.assert_allclose(theta["w"], [0.85])
    # c = 0.9 * 0.01 + 0.1 * (-0.05) = 0.004 > 0: still a step down although g < 0
    opt.step(theta, {"w": np.array([-0.05])})
    np.testing.assert_allclose(theta["w"], [0.85 * 0.95 - 0.1])
    np.testing.assert_allclose(opt.state["w"]["m"], [0.99 * 0.01 + 0.01 * -0.05])


def test_nadam_first_step_by_hand():
    lr, b1, b2, eps, psi = 0.01, 0.9, 0.999, 1e-8, 4e-3
    g = np.array([0.5, -2.0])
    theta = {"w": np.array([1.0, 1.0])}
    NAdam(lr=lr, beta1=b1, beta2=b2, eps=eps, momentum_decay=psi).step(theta, {"w": g})
    mu1 = b1 * (1 - 0.5 * 0.96 ** psi)
    mu2 = b1 * (1 - 0.5 * 0.96 ** (2 * psi))
    denom = np.abs(g) + eps          # sqrt(v1 / (1 - b2)) = |g|
    m1 = (1 - b1) * g
    expected = 1.0 - lr * g / denom - lr * mu2 / (1 - mu1 * mu2) * m1 / denom
    np.testing.assert_allclose(theta["w"], expected, rtol=1e-12)
    # about lr * (1 + 0.1 * mu2 / (1 - mu1 mu2)) ~ 1.056 lr against the gradient's sign
    np.testing.assert_allclose(1.0 - theta["w"], np.sign(g) * 0.01 * 1.0565, rtol=1e-4)


def _quadratic_run(opt, steps):
    a = np.array([1.0, 10.0, 0.1, 3.0])
    theta = {"w": np.array([2.0, -1.5, 3.0, 0.7])}
    f = lambda w: 0.5 * np.sum(a * w * w)
    start = f(theta["w"])
    for _ in range(steps):
        opt.step(theta, {"w": a * theta["w"]})
    return start, f(theta["w"])


@pytest.mark.parametrize("opt", [Lion(lr=0.02), NAdam(lr=0.05)], ids=["lion", "nadam"])
def test_reduces_a_quadratic(opt):
    start, end = _quadratic_run(opt, 300)
    assert end < 0.01 * start


def test_nadam_state_dict_round_trip_continues_identically():
    a, b = NAdam(lr=0.05), NAdam(lr=0.05)
    wa = {"w": np.array([1.0, -1.0])}
    for _ in range(3):
        a.step(wa, {"w": 2 * wa["w"]})
    wb = {"w": wa["w"].copy()}
    b.load_state_dict(a.state_dict())
    a.step(wa, {"w": 2 * wa["w"]})
    b.step(wb, {"w": 2 * wb["w"]})
    np.testing.assert_array_equal(wa["w"], wb["w"])


@pytest.mark.parametrize("cls", [Lion, NAdam])
def test_float32_params_stay_float32(cls):
    w = {"w": np.ones(3, dtype=np.float32)}
    cls().step(w, {"w": np.ones(3, dtype=np.float32)})
    assert w["w"].dtype == np.float32


def test_bad_hyperparameters_are_refused_with_their_name():
    import graphnet as gn
    with pytest.raises(gn.GraphnetError, match="beta2"):
        Lion(beta2=1.0)
    with pytest.raises(gn.GraphnetError, match="momentum_decay"):
        NAdam(momentum_decay=-1)


def test_a_schedule_as_lr_drives_lion_step_sizes():
    # graphnet's Optimizer base class gives plugins schedules for free: lr halves each step
    import graphnet as gn
    opt = Lion(lr=gn.schedule("step", lr=0.1, step_size=1, gamma=0.5))
    w = {"w": np.array([1.0])}
    moves = []
    for _ in range(3):
        before = w["w"].copy()
        opt.step(w, {"w": np.array([1.0])})
        moves.append(float(before[0] - w["w"][0]))
    np.testing.assert_allclose(moves, [0.1, 0.05, 0.025])
