"""Profiles override only parameters that the pipelines' notebooks declare, with the declared types."""

from __future__ import annotations

import re

import pytest
import yaml

from conftest import PROJECT
from reproml.pps.spec import load_specs
from reproml.stage.runner import declared_parameters, read_notebook

KINDS = {"str": (str,), "int": (int,), "float": (float, int), "bool": (bool,)}


def _notebook_of(pipeline: str) -> str:
    spec = load_specs(PROJECT / "pachyderm")[pipeline]
    return next(arg for arg in spec.cmd if arg.startswith("notebooks/"))


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_profiles_name_declared_parameters_with_their_types(profile: str) -> None:
    overrides = yaml.safe_load((PROJECT / "profiles" / f"{profile}.yaml").read_text())
    for pipeline, values in overrides.items():
        declared = declared_parameters(read_notebook(PROJECT / _notebook_of(pipeline)))
        for name, value in values.items():
            assert name in declared, f"{profile}.yaml: {pipeline}.{name} is not a parameter of {sorted(declared)}"
            type_name = re.sub(r"^Optional\[(\w+)\]$", r"\1", declared[name][0])
            assert type(value) in KINDS[type_name], f"{profile}.yaml: {pipeline}.{name}={value!r} is not {type_name}"
