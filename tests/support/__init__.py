"""Helpers shared by the test folders (``tests`` is on pytest's ``pythonpath``, so ``from support.files import coco``):

- :mod:`support.files`: the one builder of tiny datasets and image files, good and bad, made in a test's tmp_path;
- :mod:`support.standin`: a tiny stand-in detector and dataset that obey the gfocal.models / gfocal.data contracts;
- :mod:`support.standin_run`: the stand-in's training run, also run as a subprocess (``python -m support.standin_run``).
"""
