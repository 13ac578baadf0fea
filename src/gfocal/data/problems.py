"""What validation found in a dataset: counts per kind, a few examples each, warnings and strict mode.

Every problem has a *kind* (``"clipped_box"``, ``"missing_image"``...) and a
message that names the file and the record (``"ann.json, image id=3,
annotation id=17: box ..."``). Kinds in :data:`WARNING_KINDS` are data defects
that the loader repaired or skipped; with ``strict=True`` the first one raises
:class:`DatasetError`. Kinds in :data:`NOTE_KINDS` are facts worth knowing
(images without boxes, EXIF-rotated or grayscale images) that are handled
correctly and never raise.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DatasetError", "DatasetWarning", "ProblemReport", "WARNING_KINDS", "NOTE_KINDS"]


class DatasetError(ValueError):
    """A dataset cannot be loaded as given; the message names the file and the record."""


class DatasetWarning(UserWarning):
    """A dataset defect was repaired or skipped while loading (see :class:`ProblemReport`)."""


#: Defects: repaired or skipped, one warning per kind; errors under ``strict=True``.
WARNING_KINDS: dict[str, str] = {
    "missing_image": "image files missing (records skipped)",
    "unreadable_image": "image files unreadable or not an image (records skipped)",
    "truncated_image": "image files truncated or corrupt (records skipped)",
    "oversized_image": "images larger than the decoding limit PIL.Image.MAX_IMAGE_PIXELS (records skipped)",
    "size_mismatch": "images whose declared size differs from the file (file size used)",
    "clipped_box": "boxes partly outside the image (clipped to it)",
    "outside_box": "boxes entirely outside the image (dropped)",
    "degenerate_box": "degenerate boxes: width or height <= 0, NaN or infinite (dropped)",
    "duplicate_box": "duplicate boxes with the same label in one image (dropped)",
    "malformed_annotation": "malformed annotation records (skipped)",
    "unreadable_annotation": "annotation files unreadable or malformed (skipped)",
    "orphan_annotation": "annotations pointing to an unknown image (skipped)",
    "duplicate_image": "images listed twice (later copies skipped)",
}

#: Facts that need no repair; counted, never raised.
NOTE_KINDS: dict[str, str] = {
    "empty_image": "images without boxes (kept as negatives)",
    "ignored_box": "crowd/difficult boxes (kept, ignored in training)",
    "exif_rotated": "images with an EXIF orientation (rotated on decode)",
    "non_rgb_image": "images not stored as 8-bit RGB (converted on decode)",
    "missing_label_file": "images without a label file (kept as negatives)",
}


@dataclass
class ProblemReport:
    """Counts and example messages of what validation found.

    Attributes:
        counts: number of occurrences per kind.
        examples: the first ``max_examples`` messages per kind.
        strict: raise :class:`DatasetError` on the first warning kind.
    """

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    strict: bool = False
    max_examples: int = 5

    def add(self, kind: str, message: str) -> None:
        """Record one problem of ``kind``; ``message`` names the file and the record."""
        if kind not in WARNING_KINDS and kind not in NOTE_KINDS:
            raise KeyError(f"unknown problem kind {kind!r}")
        if self.strict and kind in WARNING_KINDS:
            raise DatasetError(f"{message} [{kind}; strict mode turns this warning into an error]")
        self.counts[kind] = self.counts.get(kind, 0) + 1
        bucket = self.examples.setdefault(kind, [])
        if len(bucket) < self.max_examples:
            bucket.append(message)

    def count(self, kind: str) -> int:
        """Occurrences of ``kind`` (0 when none)."""
        return self.counts.get(kind, 0)

    @property
    def warnings(self) -> dict[str, int]:
        """Counts of the defect kinds only."""
        return {k: n for k, n in self.counts.items() if k in WARNING_KINDS}

    @property
    def notes(self) -> dict[str, int]:
        """Counts of the informational kinds only."""
        return {k: n for k, n in self.counts.items() if k in NOTE_KINDS}

    def lines(self) -> list[str]:
        """One human-readable line per kind found, defects first, with the first example."""
        out = []
        for kinds in (WARNING_KINDS, NOTE_KINDS):
            for kind, text in kinds.items():
                if kind in self.counts:
                    out.append(f"{self.counts[kind]} {text}; e.g. {self.examples[kind][0]}")
        return out

    def defects_summary(self) -> str:
        """The defects found, one clause per kind with its count: ``"12 annotations pointing to an unknown image
        (skipped); 1 image files missing (records skipped)"``; "" when none."""
        return "; ".join(f"{self.counts[kind]} {text}" for kind, text in WARNING_KINDS.items() if kind in self.counts)

    def emit_warnings(self, source: str) -> None:
        """Issue one :class:`DatasetWarning` per defect kind found, with its count and examples."""
        for kind, text in WARNING_KINDS.items():
            if kind in self.counts:
                examples = "; ".join(self.examples[kind])
                warnings.warn(
                    f"{source}: {self.counts[kind]} {text}. Examples: {examples}", DatasetWarning, stacklevel=3
                )

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form: ``{"warnings": {kind: n}, "notes": {kind: n}, "examples": {kind: [...]}}``."""
        return {
            "warnings": self.warnings,
            "notes": self.notes,
            "examples": {k: list(v) for k, v in self.examples.items()},
        }
