import pytest
import torch

from xmlib.core.config import resolve_config
from xmlib.deepranking.config import PROFILES, Config
from xmlib.deepranking.network import DeepRankingNet, PixelShift, ShallowBranch, build_network, pixel_shift, shallow_output_side, tiny_cnn


@pytest.mark.parametrize("side,expect4,expect8", [(64, 2, 1), (96, 3, 1), (128, 4, 1), (224, 7, 2), (225, 7, 2)])
def test_shallow_branch_shapes_follow_the_padding_convention(side, expect4, expect8):
    b4, b8 = ShallowBranch(4, 3, 2, channels=5), ShallowBranch(8, 7, 4, channels=5)
    x = torch.rand(2, 3, side, side)
    assert b4(x).shape == (2, 5 * expect4**2) and b8(x).shape == (2, 5 * expect8**2)
    assert shallow_output_side(side, 4, 3, 2) == expect4 and shallow_output_side(side, 8, 7, 4) == expect8
    assert b4.out_dim(side) == 5 * expect4**2


def test_shallow_branch_is_subsample_conv_pool_by_hand():
    torch.manual_seed(0)
    b = ShallowBranch(4, 3, 2, channels=3)
    x = torch.rand(1, 3, 64, 64)
    sub = (x - 0.5).reshape(1, 3, 16, 4, 16, 4).mean(dim=(3, 5))  # centre, 4:1 area subsampling (1, 3, 16, 16)
    conv = torch.nn.functional.conv2d(torch.nn.functional.pad(sub, (2, 2, 2, 2)), b.conv.weight, b.conv.bias, stride=4).relu()
    assert conv.shape[-1] == 4
    cp = torch.nn.functional.pad(conv, (1, 1, 1, 1), value=float("-inf"))
    pooled = torch.stack([torch.stack([cp[..., 2 * i:2 * i + 3, 2 * j:2 * j + 3].amax(dim=(-1, -2)) for j in range(2)], -1) for i in range(2)], -2)
    torch.testing.assert_close(b(x), pooled.flatten(1))


@pytest.mark.parametrize("multiscale", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_network_outputs_unit_vectors_and_branch_shapes(multiscale, dtype):
    net = DeepRankingNet(tiny_cnn(16), 16, image_size=64, embed_dim=12, multiscale=multiscale,
                         shallow_channels=4, pixel_shift=3).to(dtype)
    x = torch.rand(5, 3, 64, 64, dtype=dtype)
    net.eval()
    f = net(x)
    assert f.shape == (5, 12) and f.dtype == dtype
    torch.testing.assert_close(f.norm(dim=1), torch.ones(5, dtype=dtype))
    assert net.convnet_branch(x).shape == (5, 16)
    torch.testing.assert_close(net.convnet_branch(x).norm(dim=1), torch.ones(5, dtype=dtype))
    if multiscale:
        assert net.shallow_dim == 4 * (2 * 2 + 1 * 1)
        assert net.shallow_branches(x).shape == (5, 20)
        torch.testing.assert_close(net.shallow_branches(x).norm(dim=1), torch.ones(5, dtype=dtype))
    assert net.embed.in_features == net.shallow_dim + 16


def test_cached_features_give_the_same_embedding():
    cnn = tiny_cnn(16)
    net = DeepRankingNet(cnn, 16, image_size=64, embed_dim=8, shallow_channels=4).eval()
    x = torch.rand(4, 3, 64, 64)
    torch.testing.assert_close(net(x), net(x, convnet_features=cnn(x)))
    cached = DeepRankingNet(None, 16, image_size=64, embed_dim=8, shallow_channels=4).eval()
    cached.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("convnet.")})
    torch.testing.assert_close(cached(x, cnn(x)), net(x))
    with pytest.raises(ValueError, match="convnet_features"):
        cached(x)


def test_frozen_convnet_gets_no_gradient_and_stays_in_eval_mode():
    cnn = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3), torch.nn.BatchNorm2d(6), torch.nn.ReLU())
    net = DeepRankingNet(cnn, 6, image_size=64, embed_dim=4, shallow_channels=2, frozen=True).train()
    assert not cnn.training and not cnn[1].training
    before = cnn[1].running_mean.clone()
    net(torch.rand(3, 3, 64, 64)).sum().backward()
    assert all(p.grad is None for p in cnn.parameters())
    torch.testing.assert_close(cnn[1].running_mean, before)
    assert net.branch4.conv.weight.grad is not None and net.embed.weight.grad is not None
    tuned = DeepRankingNet(tiny_cnn(6), 6, image_size=64, embed_dim=4, shallow_channels=2, frozen=False).train()
    tuned(torch.rand(3, 3, 64, 64)).sum().backward()
    assert all(p.grad is not None for p in tuned.convnet.parameters())


def test_pixel_shift_translates_each_image_by_at_most_s():
    torch.manual_seed(1)
    x = torch.zeros(20, 1, 16, 16)
    x[:, :, 8, 8] = 1.0
    y = pixel_shift(x, 3)
    for img in y:
        (r, c), = torch.nonzero(img[0] == 1.0).tolist()
        assert abs(r - 8) <= 3 and abs(c - 8) <= 3
    offsets = {tuple(torch.nonzero(img[0] == 1.0)[0].tolist()) for img in y}
    assert len(offsets) > 5  # images get different shifts
    # content is translated, not distorted: a ramp image stays a ramp with replicated edges
    ramp = torch.arange(16.0).repeat(16, 1)[None, None]  # value = column index
    shifted = pixel_shift(ramp, 2)[0, 0]
    d = shifted[0, 5] - ramp[0, 0, 0, 5]
    torch.testing.assert_close(shifted[:, 4:12], ramp[0, 0, :, 4:12] + d)
    m = PixelShift(2).eval()
    assert torch.equal(m(x), x)


def test_pixel_shift_equals_the_per_pixel_definition():
    """out[b, :, y, x] = image[b, :, clamp(y − dy_b), clamp(x − dx_b)], written pixel by pixel with the
    same offsets (drawn from the same generator state), bit for bit."""
    x = torch.rand(5, 3, 9, 11, generator=torch.Generator().manual_seed(0))
    s = 3
    got = pixel_shift(x, s, torch.Generator().manual_seed(4))
    off = torch.randint(0, 2 * s + 1, (5, 2), generator=torch.Generator().manual_seed(4))  # crop corners
    want = torch.empty_like(x)
    for b in range(5):
        dy, dx = s - int(off[b, 0]), s - int(off[b, 1])
        for y in range(9):
            for c in range(11):
                want[b, :, y, c] = x[b, :, min(max(y - dy, 0), 8), min(max(c - dx, 0), 10)]
    assert torch.equal(got, want)


def test_dropout_only_in_training_and_is_p_04():
    cfg = resolve_config(Config, PROFILES, "smoke")
    net = build_network(cfg, convnet=tiny_cnn(16))
    assert net.dropout.p == pytest.approx(0.4)
    x = torch.rand(4, 3, 64, 64)
    net.eval()
    torch.testing.assert_close(net(x), net(x))
    net.train()
    torch.manual_seed(0)
    a = net(x)
    torch.manual_seed(1)
    assert not torch.allclose(a, net(x))


def test_image_size_is_checked():
    net = DeepRankingNet(tiny_cnn(4), 4, image_size=64, embed_dim=4, shallow_channels=2)
    with pytest.raises(ValueError, match="image_size=64"):
        net(torch.rand(1, 3, 96, 96))


@pytest.mark.slow
def test_efficientnet_lite0_branch_is_the_pretrained_pooled_feature():
    from xmlib.data.features import efficientnet_lite0
    from xmlib.data.images import LITE_MEAN, LITE_STD
    from xmlib.deepranking.network import efficientnet_lite0_backbone

    b = efficientnet_lite0_backbone(224).eval()
    x = torch.rand(2, 3, 64, 64)
    ref_net = efficientnet_lite0(pretrained=True).eval()
    xr = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
    with torch.no_grad():
        ref = ref_net.pooled((xr - LITE_MEAN[0]) / LITE_STD[0])
        torch.testing.assert_close(b(x), ref)
    net = DeepRankingNet(b, 1280, image_size=64, embed_dim=8, shallow_channels=4, frozen=True)
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == sum(
        p.numel() for n, p in net.named_parameters() if not n.startswith("convnet."))


def test_init_from_convnet_reproduces_the_convnet_ranking():
    torch.manual_seed(0)
    feats = torch.randn(60, 12).abs()  # ReLU-like features
    net = DeepRankingNet(None, 12, image_size=32, embed_dim=12, multiscale=True, shallow_channels=4, dropout=0.0)
    net.init_from_convnet(feats).eval()
    images = torch.rand(60, 3, 32, 32)
    f = net(images, feats)
    # with embed_dim = F the projection is a rotation of the centred features: distances are those of c − μ
    c = torch.nn.functional.normalize(feats, dim=1)
    want = torch.nn.functional.normalize(c - c.mean(0), dim=1)
    torch.testing.assert_close(f @ f.T, (want @ want.T).float(), atol=1e-4, rtol=1e-4)
    assert float(net.embed.weight.detach()[:, :net.shallow_dim].abs().max()) == 0.0  # shallow block starts silent
    with pytest.raises(ValueError, match="convnet_dim"):
        net.init_from_convnet(torch.randn(5, 7))
