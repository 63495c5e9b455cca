"""The three open benchmarks the book builds from registry-distributed images and text.

- :mod:`xmlib.data.benchmarks.clipart` — (a) clipart image search, for DCMM, written in the
  MediaEval'17 layout the DCMM code reads.
- :mod:`xmlib.data.benchmarks.emoji` — (b) emoji fine-grained similarity, for Deep Ranking.
- :mod:`xmlib.data.benchmarks.captions` — (c) open captions, for SGRAF, in the SCAN precomp format.

Every benchmark has the same face: a frozen config (``ClipartConfig``, ``EmojiConfig``,
``CaptionsConfig``) with named ``PROFILES`` (smoke / default / paper), ``build(profile, *, out_dir=None,
seed=0, force=False, overrides=None, roots=None, feature_fn=None) -> Path`` (deterministic from the
seed, built once by :mod:`xmlib.data.benchmarks._build`), ``load(profile_or_path)``,
``out_dir(profile)``, ``stats(...)``, ``examples(...)`` and ``VERSION``. They read their assets only
through :mod:`xmlib.data.sources`. See ``DATA.md`` for the sources, licences and the measured design
choices; ``python -m xmlib.data prepare`` builds all three.
"""
