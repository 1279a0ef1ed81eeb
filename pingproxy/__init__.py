"""pingproxy: receive Pingbacks, forward them as WebMentions."""

__version__ = "0.1.0"
