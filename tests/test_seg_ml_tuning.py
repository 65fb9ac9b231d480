"""The tuner's search space and the reproducibility of a seeded Hyperband search."""

from __future__ import annotations

from pathlib import Path

import pytest
from seg_ml_data import make_transform_output

from reproml.seg import training, tuning


@pytest.mark.parametrize(("text", "expected"), [("16,8, 32", (8, 16, 32)), ("4", (4,)), ("8,8", (8,))])
def test_parse_choices(text: str, expected: tuple[int, ...]) -> None:
    assert tuning.parse_choices(text, "base_filters_choices") == expected


@pytest.mark.parametrize("text", ["", "8,x", "0,4"])
def test_parse_choices_names_the_parameter(text: str) -> None:
    with pytest.raises(ValueError, match="depth_choices: expected"):
        tuning.parse_choices(text, "depth_choices")


def test_search_space_drops_depths_the_image_size_cannot_take() -> None:
    assert tuning.SearchSpace(depth=(2, 3, 4, 5)).checked(48).depth == (2, 3, 4)
    with pytest.raises(ValueError, match=r"no depth in \(5,\) divides img_size 48"):
        tuning.SearchSpace(depth=(5,)).checked(48)
    with pytest.raises(ValueError, match="learning_rate range"):
        tuning.SearchSpace(learning_rate=(0.1, 0.01)).checked(32)


def test_trials_csv_has_fixed_columns_and_six_significant_digits(tmp_path: Path) -> None:
    row = {"trial_id": "0", "status": "COMPLETED", "score": 1.0 / 3, "epochs": 2, "learning_rate": 0.00123456789,
           "base_filters": 8, "depth": 2, "batch_size": 8, "dropout": 0.1}
    tuning.write_trials_csv([row], tmp_path / "trials.csv")
    assert (tmp_path / "trials.csv").read_text() == (
        "trial_id,status,score,epochs,learning_rate,base_filters,depth,batch_size,dropout\n"
        "0,COMPLETED,0.333333,2,0.00123457,8,2,8,0.1\n"
    )


@pytest.mark.slow  # four tiny trials: ~30 s on the shared CPU
def test_same_seed_gives_the_same_search(tmp_path: Path) -> None:
    root = make_transform_output(tmp_path / "t", size=32, counts={"training": 8, "validation": 4})
    space = tuning.SearchSpace(base_filters=(4, 8), depth=(2,), batch_size=(4,))

    def search(seed: int) -> tuning.SearchResult:
        training.set_determinism(seed)
        return tuning.search(root, space=space, max_epochs=1, max_trials=2, hyperband_iterations=2, seed=seed)

    first, again = search(3), search(3)
    assert first.trials == again.trials and first.best_hp == again.best_hp
    assert len(first.trials) == 2 and all(t["status"] == "COMPLETED" for t in first.trials)
    assert first.best_score == min(t["score"] for t in first.trials)
    assert set(first.best_hp) == set(training.HP_TYPES)


def test_the_search_reports_one_line_per_trial(tmp_path: Path) -> None:
    root = make_transform_output(tmp_path / "t", size=32, counts={"training": 8, "validation": 4})
    space = tuning.SearchSpace(base_filters=(4, 8), depth=(2,), batch_size=(4,))
    lines: list[str] = []
    result = tuning.search(root, space=space, max_epochs=1, max_trials=2, hyperband_iterations=2, seed=1,
                           report=lines.append)
    assert len(result.trials) == 2
    assert [line.split(":")[0] for line in lines] == ["trial 1 of 2", "trial 2 of 2"]
    best = min(t["score"] for t in result.trials)
    assert f"best so far {best:.4f}" in lines[-1] and "base_filters=" in lines[0] and "min elapsed" in lines[0]


@pytest.mark.unit
def test_a_trial_line_names_what_a_reader_follows() -> None:
    line = tuning.trial_line(3, 12, {"learning_rate": 0.001, "depth": 2}, 0.51234, None, 90)
    assert line == "trial 3 of 12: learning_rate=0.001, depth=2; val_loss 0.5123, best so far n/a; 1.5 min elapsed"


def test_trials_train_in_the_precision_the_notebook_asked_for(tmp_path: Path) -> None:
    # keras-tuner clears the Keras session before every trial, and with it the global dtype policy: the
    # trials of a mixed-precision search trained in float32, ~1.7x slower, unlike the model they choose.
    import keras

    root = make_transform_output(tmp_path / "t", size=32, counts={"training": 8, "validation": 4})
    space = tuning.SearchSpace(base_filters=(4,), depth=(2,), batch_size=(4,))
    policies: list[str] = []

    class Recorded(tuning.UNetHyperModel):
        def build(self, hp):
            model = super().build(hp)
            policies.append(model.get_layer("down0_conv1").dtype_policy.name)
            return model

    training.configure_device(mixed_precision=True)
    try:
        hypermodel = Recorded(root, space, seed=1)
        keras.backend.clear_session()  # what keras-tuner's Tuner._try_build does before each build
        import keras_tuner as kt

        hypermodel.build(kt.HyperParameters())
    finally:
        training.configure_device(mixed_precision=False)
    assert policies == ["mixed_bfloat16"]
    assert tuning.UNetHyperModel(root, space, seed=1).policy == "float32"  # taken when the search is set up
