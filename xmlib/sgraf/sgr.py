"""SGR: similarity graph reasoning (Diao et al. 2021, Sec. "Similarity Graph Reasoning").

Nodes are the similarity vectors N = {s_1 .. s_P} of one image–caption pair (global node first).
One step, with its own parameters (W_in, W_out, W_r), updates edges and nodes:

- edges (a row softmax over all nodes, self included; directed since W_in ≠ W_out)
  ``e_pq = exp((W_in s_p)·(W_out s_q)) / Σ_q' exp((W_in s_p)·(W_out s_q'))``;
- node update ``s_p ← ReLU(W_r Σ_q e_pq s_q)``.

After N steps the score is ``sigmoid(W_s s_global)`` (FC m → 1).

The official code's three step linears have biases (``sgr_bias``): the edges become
``softmax_q((W_in s_p + b_in)·(W_out s_q + b_out))`` and the update ``ReLU(W_r Σ_q e_pq s_q + b_r)``.

:func:`sgr_step` is the plain form (small enough to check by hand on a 3-node graph, see
:func:`toy_graph_step`). :class:`SGR` computes the same numbers with less arithmetic, which matters on a
CPU (every image–caption pair has its own graph):

- the logits ``(W_in s_p)·(W_out s_q) = (W_outᵀ W_in s_p)·s_q``: one m × m product per node instead of
  two (``W_outᵀ W_in`` is formed once per forward pass);
- with biases, ``(W_in s_p + b_in)·(W_out s_q + b_out) = (W_outᵀ W_in s_p + W_outᵀ b_in)·s_q
  + (W_in s_p + b_in)·b_out``; the last term is the same for every key q of row p, so it cancels in the
  row softmax and the fast form adds only the vector ``W_outᵀ b_in`` (formed once) to each query;
- a full step's queries and updated values come from one product of the nodes with the stacked
  ``[W_outᵀ W_in; W_r]`` (2m × m; :meth:`GraphStep.query_update`), which runs nearer the machine's peak than two;
- the last step only needs the global node's row of edges and its update.
"""

from __future__ import annotations

import torch
from torch import nn

from xmlib.core.device import linear
from xmlib.sgraf.config import ModelConfig


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last axis, ignoring entries where ``mask`` (broadcastable) is False."""
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    return logits.softmax(-1)


def sgr_step(nodes: torch.Tensor, w_in: torch.Tensor, w_out: torch.Tensor, w_r: torch.Tensor,
             mask: torch.Tensor | None = None, *, b_in: torch.Tensor | None = None, b_out: torch.Tensor | None = None,
             b_r: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGR step in its plain form: edges then node update (SGRAF, Sec. "Similarity Graph Reasoning";
    in the chapter :math:numref:`eq-sgraf-edge` and :math:numref:`eq-sgraf-node`).

    Args:
        nodes: (..., P, m) node vectors s_p.
        w_in, w_out, w_r: (m, m) weights W_in, W_out, W_r of this step.
        mask: (..., P) bool, True on real nodes (None = all real).
        b_in, b_out, b_r: (m,) biases of the three linears (the official code's; None = the paper).
    Returns:
        new nodes (..., P, m) ``ReLU(W_r Σ_q e_pq s_q + b_r)`` and edges (..., P, P)
        ``e_pq = softmax_q((W_in s_p + b_in)·(W_out s_q + b_out))`` (rows sum to 1).
    """
    x = nodes @ w_in.T  # (..., P, m): W_in s_p
    z = nodes @ w_out.T  # (..., P, m): W_out s_q
    if b_in is not None:
        x = x + b_in
    if b_out is not None:
        z = z + b_out
    logits = x @ z.transpose(-1, -2)  # (..., P, P)
    edges = masked_softmax(logits, None if mask is None else mask.unsqueeze(-2))
    update = (edges @ nodes) @ w_r.T  # (..., P, m): W_r Σ_q e_pq s_q
    if b_r is not None:
        update = update + b_r
    return torch.relu(update), edges


def toy_graph_step() -> dict[str, torch.Tensor]:
    """A 3-node, 2-d graph whose SGR step can be done by hand (for the notebook and the tests).

    W_in = W_out = W_r = I, nodes s_1 = (1, 0), s_2 = (0, 1), s_3 = (1, 1). Then the logits are
    the dot products s_p·s_q = [[1, 0, 1], [0, 1, 1], [1, 1, 2]], each row is soft-maxed, and the new
    node p is ReLU(Σ_q e_pq s_q). Returns the inputs, the hand-computed expectation and
    :func:`sgr_step`'s result.
    """
    nodes = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    eye = torch.eye(2, dtype=torch.float64)
    e1 = torch.tensor(1.0, dtype=torch.float64).exp()
    e2 = torch.tensor(2.0, dtype=torch.float64).exp()
    # row 1: logits (1, 0, 1) → (e, 1, e) / (2e + 1); row 2: (0, 1, 1) → (1, e, e) / (1 + 2e)
    # row 3: logits (1, 1, 2) → (e, e, e²) / (2e + e²)
    edges = torch.stack([
        torch.stack([e1, torch.ones_like(e1), e1]) / (2 * e1 + 1),
        torch.stack([torch.ones_like(e1), e1, e1]) / (2 * e1 + 1),
        torch.stack([e1, e1, e2]) / (2 * e1 + e2),
    ])
    expected = torch.relu(edges @ nodes)  # W_r = I
    new_nodes, got_edges = sgr_step(nodes, eye, eye, eye)
    return {"nodes": nodes, "expected_edges": edges, "expected_nodes": expected,
            "edges": got_edges, "new_nodes": new_nodes}


class GraphStep(nn.Module):
    """The parameters of one SGR step (not shared between steps): W_in, W_out, W_r, each m × m, with
    biases b_in, b_out, b_r when ``sgr_bias`` is on (the official code, which starts them at zero)."""

    def __init__(self, sim_dim: int, *, sgr_bias: bool = False):
        super().__init__()
        self.w_in = nn.Linear(sim_dim, sim_dim, bias=sgr_bias)  # W_in (query)
        self.w_out = nn.Linear(sim_dim, sim_dim, bias=sgr_bias)  # W_out (key)
        self.w_r = nn.Linear(sim_dim, sim_dim, bias=sgr_bias)  # W_r (node update)
        if sgr_bias:
            for lin in (self.w_in, self.w_out, self.w_r):
                nn.init.zeros_(lin.bias)

    def forward(self, nodes: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The plain step (:func:`sgr_step`); returns (new nodes, edges)."""
        return sgr_step(nodes, self.w_in.weight, self.w_out.weight, self.w_r.weight, mask,
                        b_in=self.w_in.bias, b_out=self.w_out.bias, b_r=self.w_r.bias)

    def bilinear(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(W_outᵀ W_in, W_outᵀ b_in or None)`` of the fast step. Without autograd (scoring) they are
        computed once and reused until a weight changes (an optimiser step or a loaded state bumps the
        tensors' version counters; a dtype or device move makes new tensors)."""
        w_in, w_out, b_in = self.w_in.weight, self.w_out.weight, self.w_in.bias
        return self._memo("_bilinear", (w_in, w_out, b_in),
                          lambda: (w_out.T @ w_in, (None if b_in is None else b_in @ w_out)))

    def query_update(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The full step's two node products as one: the weight ``[W_outᵀ W_in; W_r]`` (2m, m) and the bias
        ``[W_outᵀ b_in; b_r]`` (2m,) or None, so that one matrix product of the nodes gives the queries
        and the updated values (a product twice as wide runs nearer the machine's peak than two).
        Cached without autograd as :meth:`bilinear`."""
        w_r, b_r = self.w_r.weight, self.w_r.bias

        def compute():
            bilinear, q_bias = self.bilinear()
            weight = torch.cat([bilinear, w_r])
            if q_bias is None and b_r is None:
                return weight, None
            zeros = torch.zeros_like(w_r[0])
            return weight, torch.cat([zeros if q_bias is None else q_bias, zeros if b_r is None else b_r])

        return self._memo("_query_update", (self.w_in.weight, self.w_out.weight, self.w_in.bias, w_r, b_r), compute)

    def _memo(self, name: str, tensors: tuple[torch.Tensor | None, ...], compute):
        """``compute()``, kept under ``name`` while none of ``tensors`` changes (no autograd only)."""
        live = [t for t in tensors if t is not None]
        if torch.is_grad_enabled() and any(t.requires_grad for t in live):
            return compute()
        key = tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in live)
        cached = self.__dict__.get(name)
        if cached is None or cached[0] != key:
            cached = (key, compute())
            self.__dict__[name] = cached
        return cached[1]

    def fast(self, nodes: torch.Tensor, mask: torch.Tensor | None, global_only: bool) -> torch.Tensor:
        """The same SGRAF step (Sec. "Similarity Graph Reasoning"; in the chapter :math:numref:`eq-sgraf-edge`,
        :math:numref:`eq-sgraf-node`) with one m × m product per node for the edges; ``global_only`` updates node 0 only.

        The key bias b_out is not used: it adds ``(W_in s_p + b_in)·b_out`` to every logit of row p,
        which the row softmax removes (see the module docstring). A full step multiplies every node by
        W_r before the edges (``Σ_q e_pq (W_r s_q + b_r) = W_r Σ_q e_pq s_q + b_r``, as each row of edges
        sums to 1), in the same matrix product as the queries (:meth:`query_update`); the global-only
        step aggregates first (one row of edges)."""
        keys = None if mask is None else mask.unsqueeze(-2)
        if global_only:
            bilinear, q_bias = self.bilinear()  # W_outᵀ W_in, W_outᵀ b_in
            u = linear(nodes[..., :1, :], bilinear, q_bias)  # (..., 1, m)
            edges = masked_softmax(u @ nodes.transpose(-1, -2), keys)  # (..., 1, P)
            return torch.relu(linear(edges @ nodes, self.w_r.weight, self.w_r.bias))  # (..., 1, m)
        weight, bias = self.query_update()
        m = nodes.shape[-1]
        uv = linear(nodes, weight, bias)  # (..., P, 2m)
        u, v = uv[..., :m], uv[..., m:]  # W_outᵀ W_in s_p (+ W_outᵀ b_in); W_r s_q (+ b_r)
        edges = masked_softmax(u @ nodes.transpose(-1, -2), keys)  # (..., P, P); logits (W_in s_p + b_in)·(W_out s_q) [+ const in q]
        out = edges @ v  # (..., P, m)
        return torch.relu(out) if out.requires_grad else torch.relu_(out)  # in place when no graph records it


class SGR(nn.Module):
    """Similarity graph reasoning over N unshared steps, then ``sigmoid(W_s s_global)`` (SGRAF, Sec.
    "Similarity Graph Reasoning"; in the chapter :math:numref:`eq-sgraf-edge`, :math:numref:`eq-sgraf-node`).

    Reads from ``cfg``: ``sim_dim`` (m), ``sgr_steps`` (N; 0 = score the global node without
    reasoning), ``sgr_bias`` (the step linears' biases, official code), ``use_global`` (node 0 is the
    global node s^g; without it, Table 3's "local only", the score reads the mean of the reasoned local
    nodes: our choice, the paper does not say).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.steps = nn.ModuleList(GraphStep(cfg.sim_dim, sgr_bias=cfg.sgr_bias) for _ in range(cfg.sgr_steps))
        self.score = nn.Linear(cfg.sim_dim, 1)  # W_s
        self.use_global = cfg.use_global

    def reason(self, nodes: torch.Tensor, mask: torch.Tensor | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every step's (nodes, edges) in the plain form, for pictures of the graph."""
        out = []
        for step in self.steps:
            nodes, edges = step(nodes, mask)
            out.append((nodes, edges))
        return out

    def forward(self, nodes: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """nodes (..., P, m), mask (..., P) → scores (...) in (0, 1)."""
        n = len(self.steps)
        for k, step in enumerate(self.steps):
            last = k == n - 1
            nodes = step.fast(nodes, mask, global_only=last and self.use_global)
        if self.use_global:
            out = nodes[..., 0, :]  # s_global after N steps
        else:
            w = torch.ones(nodes.shape[:-1], dtype=nodes.dtype, device=nodes.device) if mask is None else \
                mask.to(nodes.dtype).expand(nodes.shape[:-1])
            out = (nodes * w.unsqueeze(-1)).sum(-2) / w.sum(-1, keepdim=True).clamp_min(1.0)
        return torch.sigmoid(self.score(out)).squeeze(-1)

