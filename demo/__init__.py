"""The Gradio app on top of ``resnet_core``."""

from .layout import build_demo

__all__ = ["build_demo"]
