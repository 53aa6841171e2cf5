"""policy/replacement.py against the pinned pulumi-aws SDK in .venv."""

from __future__ import annotations

import importlib
import inspect
import re

import pytest

from policy.replacement import REPLACEMENT_TABLE

FORCES_NEW = re.compile(r"forces? (a )?new|will force a new|forces new resource", re.IGNORECASE)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _args_class(sdk_module: str) -> type:
    module, cls = sdk_module.split(".")
    return getattr(importlib.import_module(f"pulumi_aws.{module}"), f"{cls}Args")


def _sdk_force_new(args: type) -> set[str]:
    """Args parameters whose docstring says a change forces a new resource."""
    doc = inspect.getdoc(args.__init__) or ""
    found: set[str] = set()
    for block in re.split(r"\n(?=:param )", doc):
        match = re.match(r":param [^\n]*?(\w+): (.*)", block, re.DOTALL)
        if match and FORCES_NEW.search(match.group(2)):
            found.add(match.group(1))
    return found


@pytest.mark.parametrize("type_token", sorted(REPLACEMENT_TABLE))
def test_every_listed_property_exists_in_the_pinned_sdk(type_token: str) -> None:
    entry = REPLACEMENT_TABLE[type_token]
    params = set(inspect.signature(_args_class(entry.sdk_module).__init__).parameters)
    listed = {p.split(".")[0] for p in (*entry.name_props, *entry.force_new)}
    assert {_snake(p) for p in listed} <= params


@pytest.mark.parametrize("type_token", sorted(REPLACEMENT_TABLE))
def test_the_table_holds_every_replacement_the_sdk_docstrings_name(type_token: str) -> None:
    entry = REPLACEMENT_TABLE[type_token]
    listed = {_snake(p.split(".")[0]) for p in entry.force_new}
    assert _sdk_force_new(_args_class(entry.sdk_module)) <= listed


def test_the_docstring_reader_finds_a_known_replacement() -> None:
    """The reader is not vacuous: the pinned SDK documents this one."""
    assert "bootstrap_self_managed_addons" in _sdk_force_new(_args_class("eks.Cluster"))


def test_the_table_names_its_type_tokens_like_the_sdk() -> None:
    for type_token, entry in REPLACEMENT_TABLE.items():
        module, cls = entry.sdk_module.split(".")
        resource = getattr(importlib.import_module(f"pulumi_aws.{module}"), cls)
        source = inspect.getsource(resource)
        assert f"'{type_token}'" in source or f'"{type_token}"' in source, type_token
