"""libyaml parses fmp-install's own YAML files exactly as the pure-Python loader does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from installer import yamlmarks
from installer.paths import assets_dir, profiles_dir

BUNDLED = [*sorted(profiles_dir().glob("*/profile.yaml")), assets_dir() / "workloads.yaml"]


@pytest.mark.skipif(not hasattr(yaml, "CSafeLoader"), reason="PyYAML without libyaml")
@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_libyaml_gives_the_same_data_and_marks(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    c_loader: Any = yaml.CSafeLoader  # not a SafeLoader subclass to the type stubs
    fast = yamlmarks._load_marked(text, c_loader)
    pure = yamlmarks._load_marked(text, yaml.SafeLoader)
    assert fast.data == pure.data
    assert fast.marks == pure.marks and fast.key_marks == pure.key_marks
    assert yamlmarks.load_marked(text, bundled=True) == pure


def test_errors_in_a_bundled_file_read_as_before() -> None:
    text = "a: 1\nb: [1, 2\nc: 3\n"
    with pytest.raises(yamlmarks.YamlLoadError) as fast:
        yamlmarks.load_marked(text, bundled=True)
    with pytest.raises(yamlmarks.YamlLoadError) as pure:
        yamlmarks.load_marked(text)
    assert (fast.value.message, fast.value.mark) == (pure.value.message, pure.value.mark)


def test_answers_keep_the_pure_python_loader() -> None:
    # libyaml accepts a tab inside a flow mapping; PyYAML, which reads answers, does not.
    text = "hosts:\n  - {address: 10.0.0.1,\tname: a}\n"
    with pytest.raises(yamlmarks.YamlLoadError):
        yamlmarks.load_marked(text)
