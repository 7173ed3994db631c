"""graphnet.runs: one training run (what ``graphnet train`` does) as a library function."""

import json

import numpy as np
import pytest

import graphnet as gn
from graphnet.callbacks import Callback

from test_cli import graphnet, write_model


def params_equal(a, b):
    assert a.params.keys() == b.params.keys()
    return all(np.array_equal(a.params[k], b.params[k]) for k in a.params)


def untimed(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_train_run_is_graphnet_train_bit_for_bit(tmp_path):
    model = write_model(tmp_path / "m.json", dataset="moons", dataset_options={"n": 80},
                        epochs=3, seed=2)
    cli = graphnet("train", model, "--lr", 0.02, "--set", "fc1.units=5", "--out",
                   tmp_path / "cli", "--quiet")
    assert cli.returncode == 0, cli.stderr
    result = gn.train_run(str(model), lr=0.02, attrs={"fc1.units": 5}, out=tmp_path / "lib")
    assert result.model.params["fc1.weight"].shape == (2, 5)
    assert params_equal(result.model, gn.load(str(tmp_path / "cli" / "model.npz")))
    written = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    for key in ("train", "test", "epochs"):
        assert written[key] == result.metrics[key]
    assert written["settings"]["dataset_options"] == {"n": 80}   # from the training block
    rows = json.loads((tmp_path / "cli" / "history.json").read_text())["epochs"]
    assert untimed(result.history.rows) == untimed(rows)


def test_train_run_takes_a_path_a_graph_or_a_dict_and_prints_nothing(tmp_path, capsys):
    path = write_model(tmp_path / "m.json", dataset="xor", epochs=2)
    graph = gn.Graph.from_json(str(path))
    runs = [gn.train_run(m, out=tmp_path / str(i))
            for i, m in enumerate((str(path), graph, json.loads(path.read_text())))]
    assert capsys.readouterr() == ("", "")
    assert all(params_equal(runs[0].model, r.model) for r in runs[1:])
    assert {r.metrics["epochs"] for r in runs} == {2}


def test_log_gets_the_lines_graphnet_train_prints(tmp_path):
    lines = []
    gn.train_run(str(write_model(tmp_path / "m.json")), dataset="xor", epochs=2,
                 out=tmp_path / "o", log=lines.append, log_epochs=True)
    assert lines[0].startswith("training 'points'") and "2 epochs" in lines[0]
    assert [l.split(":")[0] for l in lines[1:3]] == ["epoch 1/2", "epoch 2/2"]
    assert "test_loss" in lines[1]
    assert lines[-2].startswith("train loss") and lines[-1].startswith("test loss")


class Interrupt(Callback):
    def on_epoch_end(self, run, logs):
        if run.epoch == 2:
            raise KeyboardInterrupt


def test_auto_resume_continues_an_interrupted_run_to_the_same_result(tmp_path):
    model = str(write_model(tmp_path / "m.json", dataset="moons", dataset_options={"n": 60}))
    whole = gn.train_run(model, epochs=4, batch_size=8, out=tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        gn.train_run(model, epochs=4, batch_size=8, out=tmp_path / "cut",
                     callbacks=[Interrupt()])
    assert not (tmp_path / "cut" / "metrics.json").exists()
    lines = []
    rest = gn.train_run(model, epochs=4, batch_size=8, out=tmp_path / "cut", resume="auto",
                        log=lines.append)
    assert "resuming from" in lines[1] and "after epoch 1 of 4" in lines[1]
    assert params_equal(whole.model, rest.model)
    assert rest.metrics["test"] == whole.metrics["test"]
    again = []
    gn.train_run(model, epochs=4, batch_size=8, out=tmp_path / "cut", resume="auto",
                 log=again.append)
    assert "nothing more to train" in again[1]


def test_settings_record_every_choice(tmp_path):
    model = write_model(tmp_path / "m.json", dataset="xor",
                        optimizer={"name": "momentum", "lr": 0.2, "beta": 0.5})
    _, s = gn.runs.resolve(str(model), optimizer_options={"beta": 0.7}, epochs=3)
    assert s["optimizer"] == {"name": "momentum", "lr": 0.2, "beta": 0.7}
    assert (s["epochs"], s["batch_size"], s["seed"], s["dataset"]) == (3, 32, 0, "xor")
    _, s = gn.runs.resolve(str(model), optimizer="sgd", lr=0.1)
    assert s["optimizer"] == {"name": "sgd", "lr": 0.1}    # momentum's beta is not sgd's


@pytest.mark.parametrize("attrs, words", [
    ({"fc9.units": 3}, ["fc9", "did you mean 'fc1'"]),
    ({"units": 3}, ["NODE.ATTR"]),
    ({"fc1.units": "many"}, ["fc1", "units"]),
])
def test_bad_attr_overrides_name_the_node(tmp_path, attrs, words):
    with pytest.raises(gn.GraphnetError) as info:
        gn.train_run(str(write_model(tmp_path / "m.json")), dataset="xor", attrs=attrs,
                     out=tmp_path / "o")
    for w in words:
        assert w in str(info.value)


def test_dataset_options_in_the_training_block_need_a_dataset(tmp_path):
    path = write_model(tmp_path / "m.json", data="d.csv", dataset_options={"n": 5})
    with pytest.raises(gn.SchemaError, match="dataset_options"):
        gn.Graph.from_json(str(path))
    path = write_model(tmp_path / "m.json", dataset="moons", dataset_options={"n": [5]})
    with pytest.raises(gn.SchemaError, match="dataset_options"):
        gn.Graph.from_json(str(path))


def test_the_module_example_runs():
    import doctest
    import graphnet.runs
    assert doctest.testmod(graphnet.runs).failed == 0
