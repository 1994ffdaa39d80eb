"""Local stand-ins that speak the real protocols, for development, tests and the demo."""
