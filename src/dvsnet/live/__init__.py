"""Live video: a run's overlay and figures served to browsers as they are made (docs/live-view.md)."""
from dvsnet.live.view import LiveView, parse_address

__all__ = ["LiveView", "parse_address"]
