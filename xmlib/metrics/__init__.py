"""Evaluation measures: ``ranking`` (trec_eval semantics via pytrec_eval), and per-chapter modules."""
