"""Deployment: ONNX export of a gfocal detector, and a numpy reference decode of its raw outputs."""

from gfocal.export.onnx import DECODED_OUTPUTS, RAW_OUTPUTS, ExportedDetector, batched_detections, export_onnx

__all__ = ["DECODED_OUTPUTS", "RAW_OUTPUTS", "ExportedDetector", "batched_detections", "export_onnx"]
