"""edge/atomic.py on a folder that cannot be written (issue 14 row 6): one CctvkitError naming the path and a fix,
nothing half-written, and a directory already there under its final name left as it was."""

from __future__ import annotations

import pytest
from readonly_dir import read_only

from edge.atomic import atomic_dir, atomic_write_text
from edge.errors import CctvkitError


def test_a_read_only_folder_is_a_one_line_error_naming_it(tmp_path):
    folder = tmp_path / "out"
    (folder / "stage").mkdir(parents=True)
    (folder / "stage" / "old.txt").write_text("complete")
    with read_only(folder):
        with pytest.raises(CctvkitError) as e:
            atomic_write_text(folder / "manifest.json", "{}")
        assert str(folder) in str(e.value) and "cannot write here" in str(e.value) and "\n" not in str(e.value)
        with pytest.raises(CctvkitError, match="cannot write here"), atomic_dir(folder / "stage"):
            raise AssertionError("the body must not run: there is nowhere to write it")
    assert sorted(p.name for p in folder.rglob("*")) == ["old.txt", "stage"]


def test_a_file_where_the_folder_should_be(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CctvkitError, match="a file stands where a folder is needed"):
        atomic_write_text(blocker / "sub" / "a.txt", "data")
