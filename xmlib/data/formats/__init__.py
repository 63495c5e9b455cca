"""The papers' own on-disk formats: readers (for users who have the original data) and writers (the
project's open benchmarks are written in the same formats, so one reader serves both).

API summary (details in each module's docstring)
------------------------------------------------
- ``scan_precomp`` (SGRAF; Flickr30K / COCO): ``write_split(root, split, ims, captions, *, dtype=None)``,
  ``read_split(root, split, *, mmap=True) -> PrecompSplit``, ``coco_1k_folds(split_or_n, fold_size=1000)
  -> list[Fold]``, ``coco_5k(split_or_n) -> Fold``.
- ``vocab`` (SCAN vocabulary JSON): ``tokenize``, ``build_vocab(captions, threshold=4)``,
  ``save_vocab``, ``load_vocab``, ``encode(caption, vocab, max_len=None, *, strict=False)``, ``decode``,
  ``pad_batch``, ``Vocabulary``, ``UnknownWordError``.
- ``mediaeval`` (DCMM; MediaEval'17 layout): ``write_mediaeval(root, split, interactions, visual,
  qrels=None, *, folds=None, meta=None, feature_dir="inception_resnet")``, ``read_mediaeval(root, split,
  *, feature_dir=None) -> MediaEvalData``, ``make_query_folds``, ``qrels_from_interactions``.
- ``deepranking_triplets`` (Deep Ranking ``query_and_triplets.txt``): ``read_query_and_triplets(path)
  -> list[TripletRecord]``, ``write_query_and_triplets(path, records)``, ``resolve_image``.
- ``FormatError`` (a ``ValueError``): a file breaks its format; the message names the file and the fix.
"""

from xmlib.data.formats._common import FormatError
from xmlib.data.formats.deepranking_triplets import TripletRecord, read_query_and_triplets, resolve_image, write_query_and_triplets
from xmlib.data.formats.mediaeval import MediaEvalData, MediaEvalQuery, make_query_folds, qrels_from_interactions, read_mediaeval, write_mediaeval
from xmlib.data.formats.scan_precomp import CAPTIONS_PER_IMAGE, Fold, PrecompSplit, coco_1k_folds, coco_5k, read_split, write_split
from xmlib.data.formats.vocab import UnknownWordError, Vocabulary, build_vocab, decode, encode, load_vocab, pad_batch, save_vocab, tokenize

__all__ = [
    "CAPTIONS_PER_IMAGE",
    "Fold",
    "FormatError",
    "MediaEvalData",
    "MediaEvalQuery",
    "PrecompSplit",
    "TripletRecord",
    "UnknownWordError",
    "Vocabulary",
    "build_vocab",
    "coco_1k_folds",
    "coco_5k",
    "decode",
    "encode",
    "load_vocab",
    "make_query_folds",
    "pad_batch",
    "qrels_from_interactions",
    "read_mediaeval",
    "read_query_and_triplets",
    "read_split",
    "resolve_image",
    "save_vocab",
    "tokenize",
    "write_mediaeval",
    "write_query_and_triplets",
    "write_split",
]
