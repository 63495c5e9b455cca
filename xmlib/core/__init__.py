"""Shared machinery for every chapter: device, seeding, configs, atomic I/O, checkpoints, training.

Import the submodules directly (``from xmlib.core.config import resolve_config``); this package
imports nothing itself, so light modules (I/O, configs) load without torch.
"""
