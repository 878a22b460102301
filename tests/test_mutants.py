"""The mutants of tests/mutants.py: every target is where its patch expects it (fast), and every
mutant is caught by its tests (slow: one pytest run per mutant on a copy of the tree)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mutants
import pytest


def test_every_mutant_patch_finds_its_target(tmp_path: Path) -> None:
    """A refactor that moves a target fails here, in seconds, instead of in the slow run."""
    paths = {patch.path for mutant in mutants.MUTANTS for patch in mutant.patches}
    for relative in paths:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text((mutants.REPO / relative).read_text())
    for mutant in mutants.MUTANTS:
        originals = mutants.apply(tmp_path, mutant.patches)
        assert any(text != path.read_text() for path, text in originals.items()), mutant.name
        mutants.restore(originals)
    for mutant in mutants.MUTANTS:
        for node in mutant.tests:
            assert (mutants.REPO / node.split("::")[0]).is_file(), node


def test_a_moved_target_is_an_error_not_a_skip(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    with pytest.raises(mutants.PatchTargetMissing, match="expected 1 occurrence"):
        mutants.apply(tmp_path, (mutants.Patch("a.py", "x = 2\n", "x = 3\n"),))


@pytest.mark.slow
def test_every_mutant_is_caught(capsys: pytest.CaptureFixture) -> None:
    result = subprocess.run(
        [sys.executable, str(mutants.REPO / "tests" / "mutants.py")],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    with capsys.disabled():  # the table mutant -> test that caught it, in the CI log
        print("\n" + result.stdout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
