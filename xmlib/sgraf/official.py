"""The authors' released SGRAF checkpoints (github.com/Paranioar/SGRAF) as :class:`~xmlib.sgraf.model.SGRAFModel`.

:func:`load_official_checkpoint` reads one ``model_best.pth.tar`` (an SGR or an SAF model; the released
SGRAF is the average of one of each, :func:`~xmlib.sgraf.model.sgraf_scores`), builds the
:class:`~xmlib.sgraf.config.ModelConfig` its options describe with the :data:`~xmlib.sgraf.config.OFFICIAL_CODE`
switches on, and copies every tensor into the model, checking each name and shape.

File layout (``torch.save`` in the official ``train.py``): a dict with ``"model"``, a list of three
state dicts ``[image encoder, text encoder, similarity encoder]``; ``"opt"``, the training run's
``argparse.Namespace``; ``"epoch"``, ``"best_rsum"`` and ``"Eiters"``. With d = ``embed_size``,
m = ``sim_dim``, D = ``img_dim``, w = ``word_dim``, V = ``vocab_size``, K = 36 regions:

- image encoder: ``fc.weight`` (d, D), ``fc.bias`` (d);
- text encoder: ``embed.weight`` (V, w); ``cap_rnn.{weight_ih,weight_hh,bias_ih,bias_hh}_l0[_reverse]``,
  torch's GRU names, (3d, w), (3d, d), (3d,), (3d,);
- similarity encoder: the two pooled global vectors ``v_global_w.*`` (image: Linear, BatchNorm1d(K),
  Linear, BatchNorm1d(d), Linear(d, 1)) and ``t_global_w.*`` (text: three Linears, no BatchNorm);
  Eq. (1)'s projections ``sim_tranloc_w`` (W_l) and ``sim_tranglo_w`` (W_g), (m, d) + (m,); the score
  ``sim_eval_w`` (1, m) + (1,); then either ``SGR_module.{k}.{graph_query_w,graph_key_w,sim_graph_w}``
  (W_in, W_out, W_r of step k, (m, m) + (m,)) or ``SAF_module.attn_sim_w`` (W_f, (1, m) + (1,)) and
  ``SAF_module.bn`` (BatchNorm1d(1)).

:data:`PARAMETER_MAP` says where each group goes in xmlib. Options the released model class never
reads (data paths, the schedule, SCAN options such as ``lambda_softmax``: the official code fixes
λ = 9) are kept in :attr:`OfficialCheckpoint.options` and change nothing. Not loadable, each with an
error naming the option: ``num_layers`` ≠ 1, ``bi_gru`` False, ``no_imgnorm`` or ``no_txtnorm`` True,
``module_name`` other than SGR / SAF (the released models use none of these).

What is trusted. The file is a pickle, and unpickling can run code; it is read with
``torch.load(weights_only=True)``, whose unpickler builds only tensors, plain containers and numbers,
plus (allowed for this one call, in a ``torch.serialization.safe_globals`` block) ``argparse.Namespace``,
whose state is a plain dict. Any other global (``os.system`` in a crafted ``__reduce__``, a class of
the training code) is refused before anything is called, with an error naming the file. Nothing in the
options is executed or opened (the paths they hold are only recorded). The tensor values themselves
are taken as they are: the loader checks names and shapes, not where the numbers came from (the
authors publish no checksums; :attr:`OfficialCheckpoint.sha256` lets a reader compare files). The
vocabulary JSON is parsed as JSON by :func:`xmlib.data.formats.vocab.load_vocab`.

Captions: the official code tokenises with NLTK's ``word_tokenize`` on lower-cased text (punctuation
kept); :func:`xmlib.data.formats.vocab.tokenize` with ``punctuation=True`` comes close but is not the
same rule (it does not split "don't" into "do" + "n't").
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from xmlib.core.io import sha256_file
from xmlib.data.formats.vocab import Vocabulary, load_vocab
from xmlib.sgraf.config import OFFICIAL_CODE, ModelConfig
from xmlib.sgraf.model import SGRAFModel


class OfficialCheckpointError(ValueError):
    """A file is not a loadable official SGRAF checkpoint (the message names the file and what is wrong)."""


# (part of "model", official prefix, xmlib prefix): one row per module; "{k}" is an SGR step.
PARAMETER_MAP: tuple[tuple[int, str, str], ...] = (
    # image encoder: the region FC (EncoderImage.fc)
    (0, "fc.", "img_enc.fc."),
    # text encoder: word embedding, then the BiGRU (torch's GRU parameter names on both sides)
    (1, "embed.", "txt_enc.embed."),
    (1, "cap_rnn.", "txt_enc.gru."),
    # image global vector: the official VisualSA sits in the similarity encoder, xmlib's AttentionPool in
    # the image encoder; embedding_local = W_l + BatchNorm1d over the K regions (global_norm="region"),
    # embedding_global = W_g + BatchNorm1d over the features, embedding_common = W_c
    (2, "v_global_w.embedding_local.0.", "img_enc.pool.local."),
    (2, "v_global_w.embedding_local.1.", "img_enc.pool.norm_l."),
    (2, "v_global_w.embedding_global.0.", "img_enc.pool.glob."),
    (2, "v_global_w.embedding_global.1.", "img_enc.pool.norm_g.bn."),
    (2, "v_global_w.embedding_common.0.", "img_enc.pool.common."),
    # text global vector (TextSA: the same three linears, no BatchNorm)
    (2, "t_global_w.embedding_local.0.", "txt_enc.pool.local."),
    (2, "t_global_w.embedding_global.0.", "txt_enc.pool.glob."),
    (2, "t_global_w.embedding_common.0.", "txt_enc.pool.common."),
    # Eq. (1): W_l (local nodes) and W_g (global node), with their biases (sim_bias)
    (2, "sim_tranloc_w.", "nodes.w_local."),
    (2, "sim_tranglo_w.", "nodes.w_global."),
    # the score sigmoid(W_s s) of either aggregator
    (2, "sim_eval_w.", "aggregate.score."),
    # SGR step k: query = W_in, key = W_out, node update = W_r, each with a bias (sgr_bias)
    (2, "SGR_module.{k}.graph_query_w.", "aggregate.steps.{k}.w_in."),
    (2, "SGR_module.{k}.graph_key_w.", "aggregate.steps.{k}.w_out."),
    (2, "SGR_module.{k}.sim_graph_w.", "aggregate.steps.{k}.w_r."),
    # SAF: W_f and the one-channel BatchNorm (xmlib's MaskedBatchNorm keeps no num_batches_tracked)
    (2, "SAF_module.attn_sim_w.", "aggregate.w_f."),
    (2, "SAF_module.bn.", "aggregate.bn."),
)
"""Where each official parameter group goes in :class:`~xmlib.sgraf.model.SGRAFModel`."""

PARTS = ("image encoder (model[0])", "text encoder (model[1])", "similarity encoder (model[2])")

# encoder options of the official opts.py: their defaults, which are also the only values xmlib builds
_ENCODER_OPTIONS: dict[str, Any] = {"num_layers": 1, "bi_gru": True, "no_imgnorm": False, "no_txtnorm": False}


@dataclasses.dataclass(frozen=True)
class OfficialCheckpoint:
    """What :func:`load_official_checkpoint` read besides the weights."""

    path: Path
    sha256: str
    config: ModelConfig  # the architecture built (OFFICIAL_CODE switches on)
    vocab_size: int
    options: dict[str, Any]  # every option of the saved Namespace, as saved
    assumed: dict[str, Any]  # architecture options the file lacks, filled with the official defaults
    epoch: int | None
    best_rsum: float | None
    iterations: int | None  # "Eiters"
    vocab: Vocabulary | None  # the vocabulary JSON, when one was given


def _read(path: Path) -> Any:
    """torch.load with the restricted unpickler; argparse.Namespace allowed for this call only."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise OfficialCheckpointError(
            f"{path}: refused to unpickle it: the file asks for objects other than tensors, plain values and "
            f"argparse.Namespace, which an SGRAF checkpoint never holds ({exc}). Nothing in it was run. Do not "
            "load it with weights_only=False unless you know who made it") from exc
    except Exception as exc:  # a truncated file, a foreign format
        raise OfficialCheckpointError(f"{path} cannot be read as a torch checkpoint ({type(exc).__name__}: {exc})") from exc


def _options(path: Path, ckpt: Any) -> dict[str, Any]:
    if not isinstance(ckpt, dict) or "model" not in ckpt or "opt" not in ckpt:
        keys = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise OfficialCheckpointError(f"{path}: expected the official layout, a dict with 'model' (three state "
                                      f"dicts) and 'opt' (an argparse.Namespace); found {keys}")
    if not isinstance(ckpt["opt"], argparse.Namespace):
        raise OfficialCheckpointError(f"{path}: 'opt' is a {type(ckpt['opt']).__name__}, expected argparse.Namespace")
    parts = ckpt["model"]
    if not isinstance(parts, (list, tuple)) or len(parts) != 3 or not all(isinstance(p, dict) for p in parts):
        raise OfficialCheckpointError(f"{path}: 'model' must be a list of three state dicts {list(PARTS)}, "
                                      f"found {type(parts).__name__} of length {len(parts) if hasattr(parts, '__len__') else '?'}")
    for part, state in enumerate(parts):
        for key, value in state.items():
            if not isinstance(value, torch.Tensor):
                raise OfficialCheckpointError(f"{path}: {PARTS[part]} key {key!r} holds a {type(value).__name__}, "
                                              "not a tensor")
    return dict(vars(ckpt["opt"]))


def _config(path: Path, opt: dict[str, Any], parts: list[dict[str, torch.Tensor]]) -> tuple[ModelConfig, int, dict]:
    missing = [k for k in ("img_dim", "word_dim", "embed_size", "sim_dim", "module_name") if k not in opt]
    if missing:
        raise OfficialCheckpointError(f"{path}: the saved options lack {missing}; they fix the architecture")
    assumed = {k: v for k, v in _ENCODER_OPTIONS.items() if k not in opt}
    for name, want in _ENCODER_OPTIONS.items():
        if name in opt and opt[name] != want:
            raise OfficialCheckpointError(f"{path}: option {name} = {opt[name]!r} is not supported (xmlib's text and "
                                          f"image encoders are those of {name} = {want!r}, as in every released model)")
    module = str(opt["module_name"])
    if module not in ("SGR", "SAF"):
        raise OfficialCheckpointError(f"{path}: option module_name = {module!r} is not supported (SGR or SAF)")
    if module == "SGR" and "sgr_step" not in opt:
        raise OfficialCheckpointError(f"{path}: module_name = 'SGR' but the options lack sgr_step (the number of steps)")
    embed = parts[1].get("embed.weight")
    if embed is None:
        raise OfficialCheckpointError(f"{path}: the text encoder (model[1]) has no 'embed.weight'")
    vocab_size = int(opt.get("vocab_size", embed.shape[0]))
    bn = parts[2].get("v_global_w.embedding_local.1.weight")
    if bn is None:
        raise OfficialCheckpointError(f"{path}: the similarity encoder (model[2]) has no "
                                      "'v_global_w.embedding_local.1.weight' (the image pooling's BatchNorm over regions)")
    sizes = {k: int(opt[k]) for k in ("img_dim", "word_dim", "embed_size", "sim_dim")}
    cfg = ModelConfig(**sizes, num_regions=int(bn.shape[0]), dropout=0.4, lambda_softmax=9.0,
                      aggregator="sgr" if module == "SGR" else "saf",
                      sgr_steps=int(opt.get("sgr_step", 3)), **OFFICIAL_CODE)
    return cfg, vocab_size, assumed


def _prefixes(cfg: ModelConfig) -> list[tuple[int, str, str]]:
    rows = []
    for part, src, dst in PARAMETER_MAP:
        if "{k}" in src:
            rows += [(part, src.format(k=k), dst.format(k=k)) for k in range(cfg.sgr_steps)]
        else:
            rows.append((part, src, dst))
    return rows


def _convert(path: Path, parts: list[dict[str, torch.Tensor]], model: SGRAFModel) -> dict[str, torch.Tensor]:
    """The official three state dicts as one state dict of ``model``, every name and shape checked."""
    target = model.state_dict()
    rows = _prefixes(model.cfg)
    out: dict[str, torch.Tensor] = {}
    for part, state in enumerate(parts):
        for key, value in state.items():
            match = max((r for r in rows if r[0] == part and key.startswith(r[1])), key=lambda r: len(r[1]), default=None)
            if match is None:
                raise OfficialCheckpointError(f"{path}: {PARTS[part]} holds {key!r} {tuple(value.shape)}, which has no "
                                              f"place in an xmlib {model.cfg.aggregator.upper()} model with "
                                              f"{model.cfg.sgr_steps} steps")
            name = match[2] + key[len(match[1]):]
            if name not in target:
                if key.endswith("num_batches_tracked"):
                    continue  # a counter xmlib's MaskedBatchNorm does not keep (it never changes an output)
                raise OfficialCheckpointError(f"{path}: {PARTS[part]} key {key!r} maps to {name!r}, which the xmlib "
                                              "model does not have")
            if tuple(value.shape) != tuple(target[name].shape):
                raise OfficialCheckpointError(f"{path}: {PARTS[part]} key {key!r} has shape {tuple(value.shape)}, the "
                                              f"xmlib parameter {name!r} needs {tuple(target[name].shape)} "
                                              f"(options: embed_size={model.cfg.embed_size}, sim_dim={model.cfg.sim_dim})")
            out[name] = value.to(target[name].dtype)
    lacking = [n for n in target if n not in out and not n.endswith("num_batches_tracked")]
    if lacking:
        raise OfficialCheckpointError(f"{path}: the checkpoint has no tensor for the xmlib parameters {lacking}")
    for n in target:
        out.setdefault(n, target[n])  # num_batches_tracked of files saved without it
    return out


def load_official_checkpoint(path: str | os.PathLike, vocab_json: str | os.PathLike | None = None
                             ) -> tuple[SGRAFModel, OfficialCheckpoint]:
    """An official SGR or SAF checkpoint as an xmlib model (CPU, float32, eval mode) and what else it holds.

    Args:
        path: the ``.pth.tar`` file written by the official ``train.py``.
        vocab_json: the vocabulary the model was trained with (``{data_name}_vocab.json``, the format of
            :mod:`xmlib.data.formats.vocab`); its size must equal the model's ``vocab_size``.
    Raises:
        OfficialCheckpointError: the file is refused by the safe unpickler, is not in the official layout,
            uses an option xmlib cannot build, or has a tensor whose name or shape does not fit.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: expected an official SGRAF checkpoint (model_best.pth.tar)")
    ckpt = _read(path)
    opt = _options(path, ckpt)
    parts = list(ckpt["model"])
    cfg, vocab_size, assumed = _config(path, opt, parts)
    model = SGRAFModel(cfg, vocab_size)
    model.load_state_dict(_convert(path, parts, model))
    vocab = None
    if vocab_json is not None:
        vocab = load_vocab(vocab_json)
        if len(vocab) != vocab_size:
            raise OfficialCheckpointError(f"{path}: the model has vocab_size = {vocab_size} words, the vocabulary "
                                          f"{vocab_json} has {len(vocab)}; pass the vocabulary it was trained with")
    info = OfficialCheckpoint(path=path, sha256=sha256_file(path), config=cfg, vocab_size=vocab_size, options=opt,
                              assumed=assumed, epoch=ckpt.get("epoch"), best_rsum=ckpt.get("best_rsum"),
                              iterations=ckpt.get("Eiters"), vocab=vocab)
    return model.eval(), info
