"""--tile raises PIL's image-size limit for the process; each test here gets the limit back afterwards."""

import pytest
from PIL import Image


@pytest.fixture(autouse=True)
def _restore_pil_limit(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
