"""The bidirectional hinge (hardest and all negatives) against a loop over the batch."""

import pytest
import torch

from xmlib.sgraf.loss import contrastive_loss


def loop_loss(s, margin, hardest, ids=None):
    b = s.shape[0]
    total = 0.0
    for i in range(b):
        neg = [c for c in range(b) if c != i and (ids is None or ids[c] != ids[i])]
        cap = [max(0.0, margin - float(s[i, i]) + float(s[i, c])) for c in neg]  # image i vs other captions
        img = [max(0.0, margin - float(s[i, i]) + float(s[c, i])) for c in neg]  # caption i vs other images
        if hardest:
            total += max(cap, default=0.0) + max(img, default=0.0)
        else:
            total += sum(cap) + sum(img)
    return total


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("hardest", [True, False])
@pytest.mark.parametrize("with_ids", [False, True])
def test_loss_matches_loop(dtype, hardest, with_ids):
    torch.manual_seed(0)
    s = torch.rand(6, 6, dtype=dtype)
    ids = torch.tensor([0, 1, 1, 2, 3, 3]) if with_ids else None
    got = contrastive_loss(s, margin=0.2, max_violation=hardest, image_ids=ids)
    want = torch.tensor(loop_loss(s, 0.2, hardest, ids), dtype=dtype)
    torch.testing.assert_close(got, want)


def test_loss_by_hand_and_gradient():
    s = torch.tensor([[0.9, 0.1], [0.8, 0.5]], requires_grad=True)
    # image 0: 0.2 − 0.9 + 0.1 < 0 → 0; caption 0 vs image 1: 0.2 − 0.9 + 0.8 = 0.1
    # image 1: 0.2 − 0.5 + 0.8 = 0.5; caption 1 vs image 0: 0.2 − 0.5 + 0.1 < 0 → 0
    loss = contrastive_loss(s, margin=0.2)
    torch.testing.assert_close(loss, torch.tensor(0.6))
    loss.backward()
    assert s.grad[1, 0] == 2.0 and s.grad[0, 1] == 0.0


def test_loss_rejects_non_square():
    with pytest.raises(ValueError, match="square"):
        contrastive_loss(torch.zeros(2, 3))
