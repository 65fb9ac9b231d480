"""Profiles override only parameters that the ML notebooks declare, with the declared types."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

NOTEBOOK_OF_PIPELINE = {"train": "train", "tune": "tune", "model": "train", "calibrate": "calibrate",
                        "evaluate": "evaluate"}
PARAMETER = re.compile(r"^(\w+): (str|int|float|bool) = ")


def _declared_parameters(notebook: str) -> dict[str, str]:
    source = (Path(__file__).resolve().parents[1] / "notebooks" / f"{notebook}.py").read_text()
    cell = source.split('# %% tags=["parameters"]\n', 1)[1].split("\n# %%", 1)[0]
    return {m[1]: m[2] for m in map(PARAMETER.match, cell.splitlines()) if m}


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_profiles_name_declared_parameters_with_their_types(profile: str) -> None:
    overrides = yaml.safe_load((Path(__file__).resolve().parents[1] / "profiles" / f"{profile}.yaml").read_text())
    kinds = {"str": str, "int": int, "float": float, "bool": bool}
    for pipeline, values in overrides.items():
        if pipeline not in NOTEBOOK_OF_PIPELINE:
            continue  # the data stages' parameters belong to their own notebooks and tests
        declared = _declared_parameters(NOTEBOOK_OF_PIPELINE[pipeline])
        for name, value in values.items():
            assert name in declared, f"{profile}.yaml: {pipeline}.{name} is not a parameter of {sorted(declared)}"
            assert type(value) is kinds[declared[name]], f"{profile}.yaml: {pipeline}.{name}={value!r}"
