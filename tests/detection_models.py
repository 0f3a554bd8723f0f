"""NanoDet detectors as their authors' code (RangiLyu/nanodet) builds them
from its config files, with the same module names and state-dict keys:
NanoDet-Plus (ShuffleNetV2 with LeakyReLU, GhostPAN with bilinear
upsampling, 5x5 depthwise and an extra level, NanoDetPlusHead) and the
legacy NanoDet-m (PAN: bilinear up and down, NanoDetHead sharing cls and
reg).  Only what inference runs: the auxiliary head that NanoDet-Plus
trains with is not built (its checkpoints' aux_* keys load with
strict=False)."""
import math

import torch
from torch import nn
import torch.nn.functional as F

from torch_models import SHUFFLENET_V2_WIDTHS, InvertedResidual


def act_layers(name):
    """nanodet/model/module/activation.py: LeakyReLU at slope 0.1."""
    if name == 'LeakyReLU':
        return nn.LeakyReLU(negative_slope=0.1, inplace=True)
    return {'ReLU': nn.ReLU, 'ReLU6': nn.ReLU6}[name](inplace=True)


# --------------------------------------------------------------------------- modules

class ConvModule(nn.Module):
    """conv, norm ('bn' as mmdet's build_norm_layer names a BN), act."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, groups=1, bias='auto',
                 norm_cfg=None, activation='ReLU'):
        super().__init__()
        with_norm = norm_cfg is not None
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                              groups=groups, bias=not with_norm if bias == 'auto' else bias)
        if with_norm:
            self.bn = nn.BatchNorm2d(out_channels)
        self.norm_name = 'bn' if with_norm else None
        self.activation = activation
        if activation:
            self.act = act_layers(activation)

    def forward(self, x):
        x = self.conv(x)
        if self.norm_name:
            x = self.bn(x)
        return self.act(x) if self.activation else x


class DepthwiseConvModule(nn.Module):
    """depthwise, dwnorm, act, pointwise, pwnorm, act."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias='auto',
                 norm_cfg=dict(type='BN'), activation='ReLU'):
        super().__init__()
        with_norm = norm_cfg is not None
        bias = not with_norm if bias == 'auto' else bias
        self.depthwise = nn.Conv2d(in_channels, in_channels, kernel_size, stride=stride, padding=padding,
                                   groups=in_channels, bias=bias)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=bias)
        if with_norm:
            self.dwnorm = nn.BatchNorm2d(in_channels)
            self.pwnorm = nn.BatchNorm2d(out_channels)
        self.activation = activation
        if activation:
            self.act = act_layers(activation)

    def forward(self, x):
        for step in (self.depthwise, getattr(self, 'dwnorm', None), 'act',
                     self.pointwise, getattr(self, 'pwnorm', None), 'act'):
            if step == 'act':
                x = self.act(x) if self.activation else x
            elif step is not None:
                x = step(x)
        return x


# --------------------------------------------------------------------------- backbone

class ShuffleV2Block(InvertedResidual):
    """torchvision's unit and its forward (split or two branches, concat,
    shuffle), with the activation a choice."""

    def __init__(self, inp, oup, stride, activation='ReLU'):
        nn.Module.__init__(self)
        self.stride = stride
        half = oup // 2
        if stride > 1:
            self.branch1 = nn.Sequential(
                nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False), nn.BatchNorm2d(inp),
                nn.Conv2d(inp, half, 1, bias=False), nn.BatchNorm2d(half), act_layers(activation))
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            nn.Conv2d(inp if stride > 1 else half, half, 1, bias=False), nn.BatchNorm2d(half),
            act_layers(activation),
            nn.Conv2d(half, half, 3, stride, 1, groups=half, bias=False), nn.BatchNorm2d(half),
            nn.Conv2d(half, half, 1, bias=False), nn.BatchNorm2d(half), act_layers(activation))


class ShuffleNetV2(nn.Module):
    """nanodet/model/backbone/shufflenetv2.py: the stages' outputs in out_stages."""

    def __init__(self, model_size='1.5x', out_stages=(2, 3, 4), activation='ReLU'):
        super().__init__()
        self.out_stages = out_stages
        channels = SHUFFLENET_V2_WIDTHS[model_size.rstrip('x')]
        self.conv1 = nn.Sequential(nn.Conv2d(3, channels[0], 3, 2, 1, bias=False), nn.BatchNorm2d(channels[0]),
                                   act_layers(activation))
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inp = channels[0]
        for i, (repeats, out) in enumerate(zip([4, 8, 4], channels[1:4]), start=2):
            blocks = [ShuffleV2Block(inp, out, 2, activation)]
            blocks += [ShuffleV2Block(out, out, 1, activation) for _ in range(repeats - 1)]
            setattr(self, f'stage{i}', nn.Sequential(*blocks))
            inp = out

    def forward(self, x):
        x = self.maxpool(self.conv1(x))
        outs = []
        for i in range(2, 5):
            x = getattr(self, f'stage{i}')(x)
            if i in self.out_stages:
                outs.append(x)
        return tuple(outs)


# --------------------------------------------------------------------------- GhostPAN (NanoDet-Plus)

class GhostModule(nn.Module):
    def __init__(self, inp, oup, kernel_size=1, ratio=2, dw_size=3, stride=1, activation='ReLU'):
        super().__init__()
        init_channels = math.ceil(oup / ratio)
        new_channels = init_channels * (ratio - 1)
        self.primary_conv = nn.Sequential(
            nn.Conv2d(inp, init_channels, kernel_size, stride, kernel_size // 2, bias=False),
            nn.BatchNorm2d(init_channels), act_layers(activation) if activation else nn.Sequential())
        self.cheap_operation = nn.Sequential(
            nn.Conv2d(init_channels, new_channels, dw_size, 1, dw_size // 2, groups=init_channels, bias=False),
            nn.BatchNorm2d(new_channels), act_layers(activation) if activation else nn.Sequential())

    def forward(self, x):
        x1 = self.primary_conv(x)
        return torch.cat([x1, self.cheap_operation(x1)], dim=1)


class GhostBottleneck(nn.Module):
    """Without squeeze-excitation and at stride 1, as GhostPAN uses it."""

    def __init__(self, in_chs, mid_chs, out_chs, dw_kernel_size=3, stride=1, activation='ReLU'):
        super().__init__()
        self.ghost1 = GhostModule(in_chs, mid_chs, activation=activation)
        self.ghost2 = GhostModule(mid_chs, out_chs, activation=None)
        if in_chs == out_chs and stride == 1:
            self.shortcut = nn.Sequential()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_chs, in_chs, dw_kernel_size, stride, (dw_kernel_size - 1) // 2, groups=in_chs,
                          bias=False),
                nn.BatchNorm2d(in_chs), nn.Conv2d(in_chs, out_chs, 1, bias=False), nn.BatchNorm2d(out_chs))

    def forward(self, x):
        residual = x
        x = self.ghost2(self.ghost1(x))
        x += self.shortcut(residual)
        return x


class GhostBlocks(nn.Module):
    def __init__(self, in_channels, out_channels, expand=1, kernel_size=5, num_blocks=1, activation='LeakyReLU'):
        super().__init__()
        self.blocks = nn.Sequential(*[
            GhostBottleneck(in_channels, int(out_channels * expand), out_channels, dw_kernel_size=kernel_size,
                            activation=activation) for _ in range(num_blocks)])

    def forward(self, x):
        return self.blocks(x)


class GhostPAN(nn.Module):
    def __init__(self, in_channels, out_channels, use_depthwise=False, kernel_size=5, expand=1, num_blocks=1,
                 num_extra_level=0, upsample_cfg=dict(scale_factor=2, mode='bilinear'), norm_cfg=dict(type='BN'),
                 activation='LeakyReLU'):
        super().__init__()
        self.in_channels = in_channels
        conv = DepthwiseConvModule if use_depthwise else ConvModule
        self.upsample = nn.Upsample(**upsample_cfg)
        self.reduce_layers = nn.ModuleList([
            ConvModule(c, out_channels, 1, norm_cfg=norm_cfg, activation=activation) for c in in_channels])

        def blocks():
            return GhostBlocks(out_channels * 2, out_channels, expand, kernel_size=kernel_size,
                               num_blocks=num_blocks, activation=activation)

        def down():
            return conv(out_channels, out_channels, kernel_size, stride=2, padding=kernel_size // 2,
                        norm_cfg=norm_cfg, activation=activation)
        levels = len(in_channels)
        self.top_down_blocks = nn.ModuleList([blocks() for _ in range(levels - 1)])
        self.downsamples = nn.ModuleList([down() for _ in range(levels - 1)])
        self.bottom_up_blocks = nn.ModuleList([blocks() for _ in range(levels - 1)])
        self.extra_lvl_in_conv = nn.ModuleList([down() for _ in range(num_extra_level)])
        self.extra_lvl_out_conv = nn.ModuleList([down() for _ in range(num_extra_level)])

    def forward(self, inputs):
        inputs = [reduce(x) for x, reduce in zip(inputs, self.reduce_layers)]
        levels = len(self.in_channels)
        inner_outs = [inputs[-1]]           # top-down: coarsest first
        for idx in range(levels - 1, 0, -1):
            up = self.upsample(inner_outs[0])
            inner_outs.insert(0, self.top_down_blocks[levels - 1 - idx](torch.cat([up, inputs[idx - 1]], 1)))
        outs = [inner_outs[0]]              # bottom-up
        for idx in range(levels - 1):
            down = self.downsamples[idx](outs[-1])
            outs.append(self.bottom_up_blocks[idx](torch.cat([down, inner_outs[idx + 1]], 1)))
        for extra_in, extra_out in zip(self.extra_lvl_in_conv, self.extra_lvl_out_conv):
            outs.append(extra_in(inputs[-1]) + extra_out(outs[-1]))
        return tuple(outs)


class NanoDetPlusHead(nn.Module):
    """Per level stacked depthwise-separable convolutions, then one 1x1 to
    num_classes + 4 * (reg_max + 1) channels; the levels' points flattened,
    concatenated and permuted to (N, points, channels)."""

    def __init__(self, num_classes, input_channel, feat_channels=96, stacked_convs=2, kernel_size=5,
                 strides=(8, 16, 32), conv_type='DWConv', norm_cfg=dict(type='BN'), reg_max=7,
                 activation='LeakyReLU'):
        super().__init__()
        self.num_classes, self.strides, self.reg_max = num_classes, list(strides), reg_max
        conv = ConvModule if conv_type == 'Conv' else DepthwiseConvModule
        self.cls_convs = nn.ModuleList([
            nn.ModuleList([conv(input_channel if i == 0 else feat_channels, feat_channels, kernel_size,
                                padding=kernel_size // 2, norm_cfg=norm_cfg, bias=norm_cfg is None,
                                activation=activation) for i in range(stacked_convs)])
            for _ in self.strides])
        self.gfl_cls = nn.ModuleList([nn.Conv2d(feat_channels, num_classes + 4 * (reg_max + 1), 1)
                                      for _ in self.strides])

    def forward(self, feats):
        outputs = []
        for feat, cls_convs, gfl_cls in zip(feats, self.cls_convs, self.gfl_cls):
            for conv in cls_convs:
                feat = conv(feat)
            outputs.append(gfl_cls(feat).flatten(start_dim=2))
        return torch.cat(outputs, dim=2).permute(0, 2, 1)


# --------------------------------------------------------------------------- legacy NanoDet (PAN)

class PAN(nn.Module):
    """FPN's 1x1 lateral convolutions, then a top-down pass (bilinear x2) and
    a bottom-up one (bilinear x0.5), adding in place."""

    def __init__(self, in_channels, out_channels, num_outs, start_level=0, norm_cfg=None, activation=None):
        super().__init__()
        self.in_channels, self.start_level = in_channels, start_level
        self.lateral_convs = nn.ModuleList([
            ConvModule(c, out_channels, 1, norm_cfg=norm_cfg, activation=activation)
            for c in in_channels[start_level:]])

    def forward(self, inputs):
        laterals = [conv(inputs[i + self.start_level]) for i, conv in enumerate(self.lateral_convs)]
        levels = len(laterals)
        for i in range(levels - 1, 0, -1):
            laterals[i - 1] += F.interpolate(laterals[i], scale_factor=2, mode='bilinear')
        for i in range(levels - 1):
            laterals[i + 1] += F.interpolate(laterals[i], scale_factor=0.5, mode='bilinear')
        return tuple(laterals)


class NanoDetHead(nn.Module):
    """GFL's head made light: per level 3x3 depthwise-separable stacks for
    classes and boxes (one stack for both with share_cls_reg), 1x1 outputs,
    the levels' points concatenated as NanoDetPlusHead's."""

    def __init__(self, num_classes, input_channel, feat_channels=96, stacked_convs=2, strides=(8, 16, 32),
                 conv_type='DWConv', norm_cfg=dict(type='BN'), reg_max=7, share_cls_reg=False,
                 activation='LeakyReLU'):
        super().__init__()
        self.share_cls_reg, self.strides = share_cls_reg, list(strides)
        conv = ConvModule if conv_type == 'Conv' else DepthwiseConvModule

        def stack():
            return nn.ModuleList([conv(input_channel if i == 0 else feat_channels, feat_channels, 3, padding=1,
                                       norm_cfg=norm_cfg, bias=norm_cfg is None, activation=activation)
                                  for i in range(stacked_convs)])
        self.cls_convs = nn.ModuleList([stack() for _ in self.strides])
        self.reg_convs = nn.ModuleList([stack() if not share_cls_reg else nn.ModuleList() for _ in self.strides])
        boxes = 4 * (reg_max + 1)
        self.gfl_cls = nn.ModuleList([nn.Conv2d(feat_channels, num_classes + boxes * share_cls_reg, 1)
                                      for _ in self.strides])
        self.gfl_reg = nn.ModuleList([nn.Conv2d(feat_channels, boxes, 1) for _ in self.strides])

    def forward(self, feats):
        outputs = []
        for x, cls_convs, reg_convs, gfl_cls, gfl_reg in zip(feats, self.cls_convs, self.reg_convs, self.gfl_cls,
                                                             self.gfl_reg):
            cls_feat = reg_feat = x
            for conv in cls_convs:
                cls_feat = conv(cls_feat)
            for conv in reg_convs:
                reg_feat = conv(reg_feat)
            output = gfl_cls(cls_feat) if self.share_cls_reg else \
                torch.cat([gfl_cls(cls_feat), gfl_reg(reg_feat)], dim=1)
            outputs.append(output.flatten(start_dim=2))
        return torch.cat(outputs, dim=2).permute(0, 2, 1)


# --------------------------------------------------------------------------- detectors, from the configs

class OneStageDetector(nn.Module):
    def __init__(self, backbone, fpn, head):
        super().__init__()
        self.backbone, self.fpn, self.head = backbone, fpn, head

    def forward(self, x):
        return self.head(self.fpn(self.backbone(x)))


def nanodet_plus_m(num_classes=80, model_size='1.0x'):
    """config/nanodet-plus-m_320.yml and _416.yml (the input size is the
    data pipeline's), and nanodet-plus-m-1.5x_*.yml with model_size 1.5x."""
    channels = SHUFFLENET_V2_WIDTHS[model_size.rstrip('x')][1:4]
    width = {'1.0x': 96, '1.5x': 128}[model_size]
    return OneStageDetector(
        ShuffleNetV2(model_size, out_stages=(2, 3, 4), activation='LeakyReLU'),
        GhostPAN(channels, width, kernel_size=5, num_extra_level=1, use_depthwise=True, activation='LeakyReLU'),
        NanoDetPlusHead(num_classes, width, feat_channels=width, stacked_convs=2, kernel_size=5,
                        strides=[8, 16, 32, 64], activation='LeakyReLU', reg_max=7))


def nanodet_m(num_classes=80):
    """config/legacy_v0.x_configs/nanodet-m.yml."""
    return OneStageDetector(
        ShuffleNetV2('1.0x', out_stages=(2, 3, 4), activation='LeakyReLU'),
        PAN([116, 232, 464], 96, num_outs=3, start_level=0),
        NanoDetHead(num_classes, 96, feat_channels=96, stacked_convs=2, share_cls_reg=True, strides=[8, 16, 32],
                    reg_max=7))
