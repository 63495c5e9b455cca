"""SGRAF (Diao, Zhang, Ma, Lu, AAAI 2021): similarity graph reasoning and attention filtration.

Modules, in the order of the chapter:

- :mod:`~xmlib.sgraf.config` — ``ModelConfig`` (the architecture every module reads, one name per field),
  ``Config`` (it plus training and budget), the ``smoke`` / ``default`` / ``paper`` profiles and
  ``OFFICIAL_CODE`` (the released code's switches);
- :mod:`~xmlib.sgraf.normalize` — the L2 / L1 normalisations with either ε rule (``norm_eps``);
- :mod:`~xmlib.sgraf.encoders` — region and word features, attention-pooled global vectors;
- :mod:`~xmlib.sgraf.similarity` — Eq. (1) vector similarity, text-to-visual (and image-to-text)
  attention, the graph's nodes;
- :mod:`~xmlib.sgraf.sgr` — similarity graph reasoning; :mod:`~xmlib.sgraf.saf` — attention filtration
  and the average aggregation of Table 4;
- :mod:`~xmlib.sgraf.model` — the model, block scoring, the chunked full-matrix evaluation, SGRAF as
  the average of SGR and SAF;
- :mod:`~xmlib.sgraf.loss` — the bidirectional hinge (hardest or all negatives);
- :mod:`~xmlib.sgraf.train` — batches, training with checkpoint/resume, evaluation;
- :mod:`~xmlib.sgraf.official` — the authors' released checkpoints loaded into ``SGRAFModel``
  (imported on its own: ``from xmlib.sgraf.official import load_official_checkpoint``).
"""

from xmlib.sgraf.config import OFFICIAL_CODE, PROFILES, Config, ModelConfig
from xmlib.sgraf.loss import contrastive_loss
from xmlib.sgraf.model import SGRAFModel, encode_split, score_matrix, sgraf_scores
from xmlib.sgraf.saf import SAF, AverageAggregation, saf_weights
from xmlib.sgraf.sgr import SGR, sgr_step, toy_graph_step
from xmlib.sgraf.similarity import SimilarityNodes, attend_image_to_text, attend_text_to_image, vector_similarity

__all__ = [
    "OFFICIAL_CODE", "PROFILES", "Config", "ModelConfig", "contrastive_loss", "SGRAFModel", "encode_split", "score_matrix", "sgraf_scores",
    "SAF", "AverageAggregation", "saf_weights", "SGR", "sgr_step", "toy_graph_step", "SimilarityNodes",
    "attend_image_to_text", "attend_text_to_image", "vector_similarity",
]
