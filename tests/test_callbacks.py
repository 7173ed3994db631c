"""The callbacks graphnet ships: EarlyStopping and LearningRateLogger, driven by fit."""

import numpy as np
import pytest

import graphnet as gn
from test_train import Recorder, model64, regression_data


def test_early_stopping_restores_the_best_weights():
    data = regression_data(20)
    rec = Recorder()
    # validation targets of the opposite sign: the validation loss rises as training fits
    validation = {"x": data["x"], "y": -data["y"]}
    stop = gn.EarlyStopping(patience=2, restore_best_weights=True)
    model = model64()
    history = model.fit(data, optimizer=gn.optimizer("adam", lr=0.05), epochs=50,
                        batch_size=5, validation=validation, callbacks=[rec, stop],
                        progress=False)
    assert len(history) < 50 and history.stop_reason.startswith("early stopping: val_loss")
    best = int(np.argmin(history["val_loss"]))
    assert stop.best_epoch == best + 1 and len(history) == best + 1 + 3
    for k, v in rec.params[best].items():
        np.testing.assert_array_equal(model.params[k], v)


def test_early_stopping_without_validation_says_what_to_do():
    with pytest.raises(gn.GraphnetError, match=r"monitors 'val_loss'.*pass validation=.*"
                                               r"monitor='loss'"):
        model64().fit(regression_data(5), optimizer="sgd", epochs=2,
                      callbacks=[gn.EarlyStopping()], progress=False)
    with pytest.raises(gn.GraphnetError, match="patience must be"):
        gn.EarlyStopping(patience=-1)


def test_learning_rate_logger_follows_the_schedule():
    sched = gn.schedule("warmup", schedule=gn.schedule("cosine", lr=0.1, steps=6), steps=2)
    logger = gn.LearningRateLogger()
    history = model64().fit(regression_data(8), optimizer=gn.optimizer("sgd", lr=sched),
                            epochs=4, batch_size=4, callbacks=[logger], progress=False)
    assert [s for s, _ in logger.steps] == list(range(1, 9))
    assert [lr for _, lr in logger.steps] == pytest.approx([sched(t) for t in range(8)])
    assert history["lr"] == pytest.approx([sched(1), sched(3), sched(5), sched(7)])
    assert logger.epochs == history["lr"]
