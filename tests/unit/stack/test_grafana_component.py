"""stack/services/grafana.py: optional Grafana for native mode, same provisioning as compose."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from stack.services import Component, grafana
from stack.settings import StackSettings


def _settings(tmp_path: Path) -> StackSettings:
    return StackSettings(home=tmp_path / ".stack")


def test_missing_binary_is_a_one_line_note_not_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(grafana.shutil, "which", lambda _name: None)
    component = grafana.Grafana(_settings(tmp_path))
    assert isinstance(component, Component)
    assert not component.installed()
    note = component.start()
    assert note == grafana.NOT_INSTALLED and "\n" not in note
    assert component.pid() is None


def test_prefers_grafana_server_subcommand(monkeypatch):
    found = {"grafana": "/usr/bin/grafana", "grafana-server": "/usr/sbin/grafana-server"}
    monkeypatch.setattr(grafana.shutil, "which", found.get)
    assert grafana.find_binary() == ["/usr/bin/grafana", "server"]
    monkeypatch.setattr(grafana.shutil, "which", {"grafana-server": "/x/grafana-server"}.get)
    assert grafana.find_binary() == ["/x/grafana-server"]


def test_environment_points_at_the_checkout_and_stack_dirs(tmp_path, monkeypatch):
    monkeypatch.delenv("GRAFANA_PORT", raising=False)
    component = grafana.Grafana(_settings(tmp_path))
    env = component.environment()
    assert component.port == 3001 and env["GF_SERVER_HTTP_PORT"] == "3001"
    assert Path(env["GF_PATHS_PROVISIONING"]) == grafana.PROVISIONING_DIR
    assert Path(env["GF_PATHS_DATA"]).is_relative_to(tmp_path / ".stack")
    assert Path(env["GF_PATHS_LOGS"]).is_relative_to(tmp_path / ".stack")
    assert Path(env["GRAFANA_DASHBOARDS_DIR"]) == grafana.DASHBOARDS_DIR
    # every ${VAR} the provisioning files use is set
    for sub in ("datasources/datasources.yaml", "dashboards/dashboards.yaml"):
        text = (grafana.PROVISIONING_DIR / sub).read_text()
        body = yaml.safe_load(text)
        assert body["apiVersion"] == 1
        values = "\n".join(line.split("#")[0] for line in text.splitlines())
        for name in re.findall(r"\$\{(\w+)\}", values):
            assert env.get(name), f"{sub} needs {name}"
