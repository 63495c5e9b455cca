"""Loading the authors' checkpoints: a file written here in their exact layout (their key names and
shapes, random weights and non-zero biases, their argparse options) loads into an xmlib model whose
scores equal a plain per-pair computation from the official formulas (float64, 1e-10); bad files are
refused with errors naming what is wrong; a pickle that would run code is refused without running it."""

import argparse
import json
import os
import pickle
from collections import OrderedDict

import pytest
import torch

from xmlib.sgraf.config import OFFICIAL_CODE, ModelConfig
from xmlib.sgraf.model import encode_split, score_matrix
from xmlib.sgraf.official import OfficialCheckpointError, load_official_checkpoint

D, W, E, M, K, V = 7, 5, 6, 4, 36, 20  # img_dim, word_dim, embed_size (d), sim_dim (m), regions, vocab_size
STEPS = 2


def options(**kw) -> argparse.Namespace:
    """The Namespace of the official opts.py (its defaults, tiny sizes), plus vocab_size as train.py sets it."""
    opt = dict(data_path="/data", data_name="f30k_precomp", vocab_path="./vocab/", model_name="./runs/f30k/checkpoint",
               logger_name="./runs/f30k/log", batch_size=128, num_epochs=40, lr_update=30, learning_rate=0.0002,
               workers=10, log_step=10, val_step=1000, grad_clip=2.0, margin=0.2, max_violation=True, img_dim=D,
               word_dim=W, embed_size=E, sim_dim=M, num_layers=1, bi_gru=True, no_imgnorm=False, no_txtnorm=False,
               module_name="SGR", sgr_step=STEPS, vocab_size=V)
    opt.update(kw)
    return argparse.Namespace(**opt)


def official_states(module: str, seed: int = 0) -> list[OrderedDict]:
    """[img_enc, txt_enc, sim_enc] state dicts with the official key names and shapes, float32 like theirs."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g) * 0.5  # noqa: E731

    def lin(prefix, n_out, n_in):
        return {prefix + "weight": r(n_out, n_in), prefix + "bias": r(n_out)}

    def bn(prefix, n):
        return {prefix + "weight": 1 + r(n), prefix + "bias": r(n), prefix + "running_mean": r(n),
                prefix + "running_var": 0.5 + torch.rand(n, generator=g), prefix + "num_batches_tracked": torch.tensor(7)}

    img = OrderedDict(lin("fc.", E, D))
    txt = OrderedDict({"embed.weight": r(V, W)})
    for sfx in ("_l0", "_l0_reverse"):
        txt.update({f"cap_rnn.weight_ih{sfx}": r(3 * E, W), f"cap_rnn.weight_hh{sfx}": r(3 * E, E),
                    f"cap_rnn.bias_ih{sfx}": r(3 * E), f"cap_rnn.bias_hh{sfx}": r(3 * E)})
    sim = OrderedDict()
    sim.update(lin("v_global_w.embedding_local.0.", E, E))
    sim.update(bn("v_global_w.embedding_local.1.", K))
    sim.update(lin("v_global_w.embedding_global.0.", E, E))
    sim.update(bn("v_global_w.embedding_global.1.", E))
    sim.update(lin("v_global_w.embedding_common.0.", 1, E))
    sim.update(lin("t_global_w.embedding_local.0.", E, E))
    sim.update(lin("t_global_w.embedding_global.0.", E, E))
    sim.update(lin("t_global_w.embedding_common.0.", 1, E))
    sim.update(lin("sim_tranloc_w.", M, E))
    sim.update(lin("sim_tranglo_w.", M, E))
    sim.update(lin("sim_eval_w.", 1, M))
    if module == "SGR":
        for k in range(STEPS):
            for name in ("graph_query_w", "graph_key_w", "sim_graph_w"):
                sim.update(lin(f"SGR_module.{k}.{name}.", M, M))
    else:
        sim.update(lin("SAF_module.attn_sim_w.", 1, M))
        sim.update(bn("SAF_module.bn.", 1))
    return [img, txt, sim]


def write(path, module="SGR", legacy=False, states=None, **opt_kw):
    ckpt = {"epoch": 31, "model": states or official_states(module), "best_rsum": 488.25, "opt": options(module_name=module, **opt_kw),
            "Eiters": 7000}
    torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy)
    return path


# --- the official formulas, one pair at a time ----------------------------------------------------------------

def reference_score(states, module, image, tokens):
    """S(image, caption) from the official forward pass, written out: image (K, D), tokens (n,) float64."""
    img, txt, sim = ({k: v.double() for k, v in s.items()} for s in states)
    l2n = lambda x: x / (x.pow(2).sum(-1, keepdim=True).sqrt() + 1e-8)  # noqa: E731  (official: ε added)
    lin = lambda sd, p, x: x @ sd[p + "weight"].T + sd[p + "bias"]  # noqa: E731

    def bn(sd, p, x):  # eval-mode BatchNorm, channel on the last axis of x
        return (x - sd[p + "running_mean"]) / torch.sqrt(sd[p + "running_var"] + 1e-5) * sd[p + "weight"] + sd[p + "bias"]

    def gru(xs, sfx):  # torch's GRU cell: gates r, z, n
        h, out = torch.zeros(E, dtype=torch.float64), []
        for x in xs:
            gi = txt[f"cap_rnn.weight_ih{sfx}"] @ x + txt[f"cap_rnn.bias_ih{sfx}"]
            gh = txt[f"cap_rnn.weight_hh{sfx}"] @ h + txt[f"cap_rnn.bias_hh{sfx}"]
            r = torch.sigmoid(gi[:E] + gh[:E])
            z = torch.sigmoid(gi[E:2 * E] + gh[E:2 * E])
            n = torch.tanh(gi[2 * E:] + r * gh[2 * E:])
            h = (1 - z) * n + z * h
            out.append(h)
        return torch.stack(out)

    # regions and the image's global vector (VisualSA; its first BatchNorm has one channel per region)
    v = l2n(lin(img, "fc.", image))  # (K, d)
    p = "v_global_w."
    h_l = torch.tanh(bn(sim, p + "embedding_local.1.", lin(sim, p + "embedding_local.0.", v).T).T)  # BN over regions
    h_g = torch.tanh(bn(sim, p + "embedding_global.1.", lin(sim, p + "embedding_global.0.", v.mean(0))))
    w = torch.softmax(lin(sim, p + "embedding_common.0.", h_l * h_g)[:, 0], 0)
    vg = l2n((w[:, None] * v).sum(0))
    # words: embedding, BiGRU (mean of the two directions), L2; the text's global vector (TextSA)
    x = txt["embed.weight"][tokens]
    t = l2n((gru(x, "_l0") + gru(x.flip(0), "_l0_reverse").flip(0)) / 2)  # (n, d)
    p = "t_global_w."
    h_l = torch.tanh(lin(sim, p + "embedding_local.0.", t))
    h_g = torch.tanh(lin(sim, p + "embedding_global.0.", t.mean(0)))
    w = torch.softmax(lin(sim, p + "embedding_common.0.", h_l * h_g)[:, 0], 0)
    tg = l2n((w[:, None] * t).sum(0))
    # SCAN attention (text to image): LeakyReLU(0.1), L2 over the words, softmax over regions with λ = 9
    n = len(tokens)
    c = torch.nn.functional.leaky_relu(v @ t.T, 0.1)  # (K, n)
    c = c / (c.pow(2).sum(1, keepdim=True).sqrt() + 1e-8)
    nodes = [l2n(lin(sim, "sim_tranglo_w.", (vg - tg) ** 2))]
    for j in range(n):
        a = torch.softmax(9.0 * c[:, j], 0)
        ctx = l2n((a[:, None] * v).sum(0))
        nodes.append(l2n(lin(sim, "sim_tranloc_w.", (ctx - t[j]) ** 2)))
    s = torch.stack(nodes)  # (1 + n, m)
    if module == "SGR":
        for k in range(STEPS):
            q = lin(sim, f"SGR_module.{k}.graph_query_w.", s)
            key = lin(sim, f"SGR_module.{k}.graph_key_w.", s)
            e = torch.softmax(q @ key.T, -1)
            s = torch.relu(lin(sim, f"SGR_module.{k}.sim_graph_w.", e @ s))
        vec = s[0]
    else:
        a = torch.sigmoid(bn(sim, "SAF_module.bn.", lin(sim, "SAF_module.attn_sim_w.", s)))[:, 0]
        vec = l2n(((a / (a.abs().sum() + 1e-8))[:, None] * s).sum(0))
    return torch.sigmoid(lin(sim, "sim_eval_w.", vec))[0]


def tiny_data(dtype=torch.float64):
    g = torch.Generator().manual_seed(5)
    images = torch.randn(2, K, D, generator=g, dtype=dtype)
    lengths = torch.tensor([5, 1, 3])
    tokens = torch.randint(4, V, (3, 5), generator=g) * (torch.arange(5)[None] < lengths[:, None])
    return images, tokens, lengths


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy-format"])
@pytest.mark.parametrize("module", ["SGR", "SAF"])
def test_loaded_model_scores_equal_the_official_formulas(tmp_path, module, legacy):
    path = write(tmp_path / "model_best.pth.tar", module, legacy)
    model, info = load_official_checkpoint(path)
    assert not model.training and next(model.parameters()).dtype == torch.float32
    states = official_states(module)
    images, tokens, lengths = tiny_data()
    want = torch.stack([torch.stack([reference_score(states, module, images[i], tokens[c, :int(lengths[c])])
                                     for c in range(3)]) for i in range(2)])  # (n_i, n_c)
    model = model.double()
    enc = encode_split(model, images, tokens, lengths)
    with torch.no_grad():
        block = model.score_block(enc["regions"], enc["img_glob"], enc["words"], enc["txt_glob"], lengths)
        loop = model.score_per_caption(enc["regions"], enc["img_glob"], enc["words"], enc["txt_glob"], lengths)
    matrix = score_matrix(model, enc, max_bytes=1, dtype=None)
    for got in (block, loop, matrix):
        assert got.dtype == torch.float64
        torch.testing.assert_close(got, want, rtol=0.0, atol=1e-10)
    # in float32, as the authors evaluate
    enc32 = encode_split(model.float(), images.float(), tokens, lengths)
    torch.testing.assert_close(score_matrix(model, enc32), want.float(), rtol=1e-4, atol=1e-5)
    # what else was read
    want_cfg = ModelConfig(img_dim=D, word_dim=W, embed_size=E, sim_dim=M, num_regions=K, sgr_steps=STEPS,
                           aggregator=module.lower()).replace(**OFFICIAL_CODE)
    assert info.config == want_cfg and info.vocab_size == V and info.assumed == {}
    assert (info.epoch, info.best_rsum, info.iterations) == (31, 488.25, 7000)
    assert info.options["data_name"] == "f30k_precomp" and len(info.sha256) == 64
    assert argparse.Namespace not in torch.serialization.get_safe_globals()  # the allowance was scoped


def test_biases_matter_so_the_check_can_fail(tmp_path):
    """The same weights without the official biases and ε rule give other scores (well above 1e-10)."""
    model, _ = load_official_checkpoint(write(tmp_path / "model_best.pth.tar"))
    images, tokens, lengths = tiny_data()
    model = model.double()
    enc = encode_split(model, images, tokens, lengths)
    paper = type(model)(model.cfg.replace(sim_bias=False, sgr_bias=False, norm_eps="clamp"), V).double().eval()
    paper.load_state_dict({k: v for k, v in model.state_dict().items() if k in paper.state_dict()})
    enc_p = encode_split(paper, images, tokens, lengths)
    assert (score_matrix(model, enc, dtype=None) - score_matrix(paper, enc_p, dtype=None)).abs().max() > 1e-4


def test_vocabulary_json_in_their_format(tmp_path):
    words = ["<pad>", "<start>", "<end>", "<unk>"] + [f"w{i}" for i in range(V - 4)]
    vocab = {"word2idx": {w: i for i, w in enumerate(words)}, "idx2word": {str(i): w for i, w in enumerate(words)},
             "idx": V}
    (tmp_path / "f30k_precomp_vocab.json").write_text(json.dumps(vocab))
    path = write(tmp_path / "model_best.pth.tar")
    _, info = load_official_checkpoint(path, tmp_path / "f30k_precomp_vocab.json")
    assert len(info.vocab) == V and info.vocab("w3") == 7
    short = {"word2idx": vocab["word2idx"], "idx2word": vocab["idx2word"], "idx": V}
    del short["word2idx"]["w15"], short["idx2word"][str(V - 1)]
    short["idx"] = V - 1
    (tmp_path / "short.json").write_text(json.dumps(short))
    with pytest.raises(OfficialCheckpointError, match=f"vocab_size = {V}.*has {V - 1}"):
        load_official_checkpoint(path, tmp_path / "short.json")


@pytest.mark.parametrize("change, message", [
    ({"num_layers": 2}, "num_layers = 2"),
    ({"bi_gru": False}, "bi_gru = False"),
    ({"no_txtnorm": True}, "no_txtnorm = True"),
    ({"module_name": "AVE"}, "module_name = 'AVE'"),
])
def test_unsupported_options_are_named(tmp_path, change, message):
    change = dict(change)
    path = write(tmp_path / "model_best.pth.tar", change.pop("module_name", "SGR"), **change)
    with pytest.raises(OfficialCheckpointError, match=message):
        load_official_checkpoint(path)


def test_keys_and_shapes_that_do_not_fit_are_named(tmp_path):
    states = official_states("SGR")
    states[2]["sim_tranloc_w.weight"] = torch.zeros(M + 1, E)
    with pytest.raises(OfficialCheckpointError, match=r"'sim_tranloc_w.weight' has shape \(5, 6\).*needs \(4, 6\)"):
        load_official_checkpoint(write(tmp_path / "a.pth.tar", states=states))
    states = official_states("SGR")
    states[2]["SGR_module.2.graph_query_w.weight"] = torch.zeros(M, M)  # a third step the options do not have
    with pytest.raises(OfficialCheckpointError, match="SGR_module.2.graph_query_w.weight"):
        load_official_checkpoint(write(tmp_path / "b.pth.tar", states=states))
    states = official_states("SGR")
    del states[0]["fc.bias"]
    with pytest.raises(OfficialCheckpointError, match="img_enc.fc.bias"):
        load_official_checkpoint(write(tmp_path / "c.pth.tar", states=states))
    states = official_states("SGR")
    states[1]["embed.weight"] = [[0.0] * W] * V
    with pytest.raises(OfficialCheckpointError, match="'embed.weight' holds a list"):
        load_official_checkpoint(write(tmp_path / "e.pth.tar", states=states))
    torch.save({"state_dict": {}}, tmp_path / "d.pth.tar")
    with pytest.raises(OfficialCheckpointError, match="'model'.*'opt'"):
        load_official_checkpoint(tmp_path / "d.pth.tar")


class _Payload:
    """A pickle that runs a shell command when it is loaded (what a malicious checkpoint does)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def test_a_pickle_that_runs_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "model_best.pth.tar"
    # the official layout with one poisoned entry, torch's zip format
    states = official_states("SGR")
    torch.save({"epoch": 1, "model": states, "opt": options(), "Eiters": _Payload(marker)}, path)
    with pytest.raises(OfficialCheckpointError, match=f"{path}: refused to unpickle"):
        load_official_checkpoint(path)
    # a bare pickle under the same name (torch.load's legacy reader)
    with open(path, "wb") as fh:
        pickle.dump(_Payload(marker), fh, protocol=2)
    with pytest.raises(OfficialCheckpointError, match="refused to unpickle"):
        load_official_checkpoint(path)
    assert not marker.exists()
    with open(path, "rb") as fh:  # the payload is real: an unrestricted load would have run it
        pickle.load(fh)
    assert marker.exists()
