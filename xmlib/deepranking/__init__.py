"""Deep Ranking (Wang et al., "Learning Fine-grained Image Similarity with Deep Ranking", CVPR 2014).

- :mod:`~xmlib.deepranking.config` — ``Config`` + ``PROFILES`` (smoke / default / paper).
- :mod:`~xmlib.deepranking.loss` — Eqs. (1)–(4): squared distance, per-triplet hinge, weight decay.
- :mod:`~xmlib.deepranking.network` — the multiscale network of Fig. 3 and its single-scale variant.
- :mod:`~xmlib.deepranking.sampler` — relevance-weighted offline and buffered (reservoir) triplet samplers.
- :mod:`~xmlib.deepranking.golden` — Sec. 5: golden features and the relevance r_ij they define.
- :mod:`~xmlib.deepranking.emoji` — the emoji benchmark (:mod:`xmlib.data.benchmarks.emoji`) as training
  data: images, cached ConvNet features, the golden relevance of its training images, and evaluation.
- :mod:`~xmlib.deepranking.baselines` — Table 1's hand-made features and OASIS.
- :mod:`~xmlib.deepranking.training` — optimiser, sampler construction and the training loop.
- Metrics (similarity precision, score-at-top-K) live in :mod:`xmlib.metrics.triplets`.
"""
