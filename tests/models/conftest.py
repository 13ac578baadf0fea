"""Fixtures of the model tests: torch hub without a network."""

import urllib.error
import urllib.request

import pytest
import torch


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """torch hub pointed at an empty tmp folder, with every download failing as on a machine without a network."""

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))  # torch.hub.set_dir, undone after the test
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    return tmp_path / "hub"
