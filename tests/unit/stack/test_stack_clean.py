"""`make clean` deletes everything the stack wrote under .stack/, as it says.

It used to delete data, logs, pids and configs only, leaving the fetched classpaths and
jars (and so `make` believed the fetch still done), the spool and the build output
behind while it printed "wiped .stack".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stack import __main__ as stack_cli
from stack.services import wipe
from stack.settings import REPO_ROOT, StackSettings


def _filled_home(home: Path) -> StackSettings:
    settings = StackSettings(home=home)
    for path in settings.stack_dirs():
        (path / "sub").mkdir(parents=True)
        (path / "sub" / "file").write_text("x")
    (settings.classpath_dir / ".fetched").touch()  # the Makefile's fetch stamp
    return settings


def test_wipe_deletes_every_directory_of_the_stack_and_its_home(tmp_path: Path) -> None:
    settings = _filled_home(tmp_path / ".stack")
    assert wipe(settings) == []
    assert not settings.home.exists()


def test_wipe_keeps_what_the_stack_did_not_write(tmp_path: Path) -> None:
    settings = _filled_home(tmp_path / ".stack")
    (settings.home / "notes.txt").write_text("mine")
    assert wipe(settings) == [settings.home / "notes.txt"]
    assert [p.name for p in settings.home.iterdir()] == ["notes.txt"]


def test_clean_says_what_it_did(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / ".stack"
    _filled_home(home)
    monkeypatch.setenv("STACK_HOME", str(home))
    monkeypatch.setattr(stack_cli, "down", lambda settings: 0)  # nothing runs here
    assert stack_cli.main(["clean"]) == 0
    assert capsys.readouterr().out == f"wiped {home}\n"
    assert not home.exists()


def test_the_stack_writes_no_directory_clean_does_not_know() -> None:
    """After `make fetch` (and any stack run) in this checkout: stack/fetch.sh, the Maven
    poms and the runner write only directories that StackSettings.stack_dirs names."""
    home = REPO_ROOT / ".stack"
    if not home.exists():
        pytest.fail("no .stack yet: run `make fetch` (make test does)", pytrace=False)
    known = {path.name for path in StackSettings(home=home).stack_dirs()}
    assert {path.name for path in home.iterdir()} <= known
