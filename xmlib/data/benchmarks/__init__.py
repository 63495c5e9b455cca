"""The three open benchmarks the book builds from registry-distributed images and text.

- :mod:`xmlib.data.benchmarks.clipart` — (a) clipart image search, for DCMM, written in the
  MediaEval'17 layout the DCMM code reads.
- :mod:`xmlib.data.benchmarks.emoji` — (b) emoji fine-grained similarity, for Deep Ranking.
- :mod:`xmlib.data.benchmarks.captions` — (c) open captions, for SGRAF, in the SCAN precomp format.

Each module has ``build(profile, ...)`` (idempotent, deterministic from a seed), ``load(profile)`` and
``stats(path)``. See ``DATA.md`` for the sources, licences and the measured design choices.
"""
