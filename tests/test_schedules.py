"""Learning-rate schedules: their values, composition, dict form, validation, plugins."""

import json
import math

import pytest

import graphnet as gn
from graphnet.plugins import as_schedule


def values(schedule, n):
    return [schedule(t) for t in range(n)]


def test_constant():
    assert values(gn.schedule("constant", lr=0.3), 3) == [0.3, 0.3, 0.3]


def test_step_multiplies_by_gamma_every_step_size_updates():
    s = gn.schedule("step", lr=1.0, step_size=3, gamma=0.5)
    assert values(s, 8) == [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25]


def test_exponential_multiplies_every_update():
    s = gn.schedule("exponential", lr=2.0, gamma=0.9)
    assert values(s, 4) == pytest.approx([2.0, 1.8, 1.62, 1.458])


def test_cosine_goes_from_lr_to_min_lr_and_stays():
    s = gn.schedule("cosine", lr=1.0, steps=4, min_lr=0.2)
    expected = [0.2 + 0.8 * 0.5 * (1 + math.cos(math.pi * t / 4)) for t in range(5)]
    assert values(s, 5) == pytest.approx(expected)
    assert s(0) == 1.0 and s(2) == pytest.approx(0.6) and s(4) == pytest.approx(0.2)
    assert s(100) == pytest.approx(0.2)


def test_warmup_rises_linearly_then_hands_over_to_the_inner_schedule():
    inner = gn.schedule("cosine", lr=0.4, steps=4)
    s = gn.schedule("warmup", schedule=inner, steps=4)
    assert values(s, 4) == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert values(s, 9)[4:] == pytest.approx([inner(t) for t in range(5)])
    # a number is a constant lr after the warmup
    assert values(gn.schedule("warmup", schedule=0.2, steps=2), 4) == pytest.approx(
        [0.1, 0.2, 0.2, 0.2])


def test_dict_form_round_trips_through_json():
    s = gn.schedule("warmup", steps=10, schedule=gn.schedule("step", lr=0.1, step_size=5))
    data = json.loads(json.dumps(s.to_dict()))
    assert data == {"name": "warmup", "steps": 10,
                    "schedule": {"name": "step", "lr": 0.1, "step_size": 5, "gamma": 0.1}}
    again = as_schedule(data)
    assert values(again, 30) == values(s, 30)


def test_an_optimizer_takes_the_dict_form_as_lr():
    opt = gn.optimizer("sgd", lr={"name": "exponential", "lr": 1.0, "gamma": 0.5})
    assert opt.lr == 1.0
    assert opt.state_dict()["hyper"]["lr"] == {"name": "exponential", "lr": 1.0, "gamma": 0.5}


@pytest.mark.parametrize("name, config, message", [
    ("constant", {"lr": 0}, "lr must be a finite number > 0"),
    ("step", {"lr": 0.1, "step_size": 0}, "step_size must be a whole number of steps >= 1"),
    ("step", {"lr": 0.1, "step_size": 2.5}, "step_size must be a whole number"),
    ("exponential", {"lr": 0.1, "gamma": 1.5}, r"gamma must be in \(0, 1\]"),
    ("cosine", {"lr": 0.1, "steps": 10, "min_lr": 0.5}, "min_lr .* must not exceed lr"),
    ("cosine", {"lr": 0.1, "steps": 10, "min_lr": -1}, "min_lr must be a finite number >= 0"),
    ("warmup", {"schedule": "fast", "steps": 3}, "schedule 'warmup': schedule: expected a number"),
])
def test_bad_settings_are_refused(name, config, message):
    with pytest.raises(gn.GraphnetError, match=message):
        gn.schedule(name, **config)


def test_unknown_setting_and_unknown_schedule_have_did_you_mean():
    with pytest.raises(gn.GraphnetError, match=r"no hyperparameter 'step' \(did you mean "
                                               r"'steps'"):
        gn.schedule("cosine", lr=0.1, step=10)
    with pytest.raises(gn.UnknownOpError, match=r"unknown schedule 'cosin' \(did you mean "
                                                r"'cosine'"):
        gn.schedule("cosin", lr=0.1)
    with pytest.raises(gn.GraphnetError, match="needs a 'name'"):
        as_schedule({"lr": 0.1})


class Halving(gn.Schedule):
    name = "halving"

    def __init__(self, lr, every):
        super().__init__(lr=lr, every=every)

    def value(self, t):
        return self.lr * 0.5 ** (t // self.every)


class HalvingPlugin:
    @gn.hookimpl
    def graphnet_schedules(self):
        return [Halving]


def test_a_plugin_adds_a_schedule():
    name = gn.plugins.register(HalvingPlugin(), name="test-halving")
    try:
        s = gn.schedule("halving", lr=1.0, every=2)
        assert values(s, 5) == [1.0, 1.0, 0.5, 0.5, 0.25]
        assert as_schedule(s.to_dict())(4) == 0.25
        opt = gn.optimizer("sgd", lr={"name": "halving", "lr": 1.0, "every": 2})
        assert opt.schedule(2) == 0.5
    finally:
        gn.plugins.unregister(name)
    assert "schedule" in {e.kind for e in gn.plugins.entries()}


def test_a_plugin_returning_a_non_schedule_is_refused():
    class Bad:
        @gn.hookimpl
        def graphnet_schedules(self):
            return [object]

    with pytest.raises(gn.PluginError, match="graphnet.Schedule subclasses"):
        gn.plugins.register(Bad(), name="test-bad-schedule")
