"""The rest of the family, written as their authors (or torchvision) write
them, with the same module names: ShuffleNet V1 (megvii's ShuffleNet-Series
code, extended to groups 1-8 and every width of the paper), ShuffleNetV2+
style units (squeeze-excitation, hard-swish, 5x5 and 7x7 depthwise, the
authors' shuffle-and-split), MobileNetV2, MobileNetV3, MNASNet, ResNet-18 and
SqueezeNet 1.1 (torchvision)."""
from functools import partial

import torch
from torch import nn
import torch.nn.functional as F


# --------------------------------------------------------------------------- ShuffleNet V1

class ShuffleV1Block(nn.Module):
    def __init__(self, inp, oup, *, group, first_group, mid_channels, ksize, stride):
        super().__init__()
        self.stride = stride
        self.group = group
        pad = ksize // 2
        outputs = oup - inp if stride == 2 else oup
        self.branch_main_1 = nn.Sequential(
            nn.Conv2d(inp, mid_channels, 1, 1, 0, groups=1 if first_group else group, bias=False),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_channels, mid_channels, ksize, stride, pad, groups=mid_channels, bias=False),
            nn.BatchNorm2d(mid_channels),
        )
        self.branch_main_2 = nn.Sequential(
            nn.Conv2d(mid_channels, outputs, 1, 1, 0, groups=group, bias=False),
            nn.BatchNorm2d(outputs),
        )
        if stride == 2:
            self.branch_proj = nn.AvgPool2d(kernel_size=3, stride=2, padding=1)

    def forward(self, old_x):
        x = old_x
        x_proj = old_x
        x = self.branch_main_1(x)
        if self.group > 1:
            x = self.channel_shuffle(x)
        x = self.branch_main_2(x)
        if self.stride == 1:
            return F.relu(x + x_proj)
        return torch.cat((self.branch_proj(x_proj), F.relu(x)), 1)

    def channel_shuffle(self, x):
        batchsize, num_channels, height, width = x.data.size()
        assert num_channels % self.group == 0
        group_channels = num_channels // self.group
        x = x.reshape(batchsize, group_channels, self.group, height, width)
        x = x.permute(0, 2, 1, 3, 4)
        return x.reshape(batchsize, num_channels, height, width)


# output channels of stages 2-4 at 1.0x, by groups (the paper's table 1)
V1_CHANNELS = {1: [144, 288, 576], 2: [200, 400, 800], 3: [240, 480, 960],
               4: [272, 544, 1088], 8: [384, 768, 1536]}


class ShuffleNetV1(nn.Module):
    def __init__(self, n_class=1000, model_size='1.0x', group=3, pool='avgpool7'):
        super().__init__()
        mult = float(model_size[:-1])
        self.stage_repeats = [4, 8, 4]
        unit = 4 * group                # mid channels (out / 4) split into groups
        stage = [max(unit, int(round(c * mult / unit)) * unit) for c in V1_CHANNELS[group]]
        first = int(24 * mult) if mult != 1.5 else 24
        first = max(group, first // group * group)
        self.stage_out_channels = [-1, first] + stage
        self.pool = pool
        input_channel = first
        self.first_conv = nn.Sequential(
            nn.Conv2d(3, input_channel, 3, 2, 1, bias=False),
            nn.BatchNorm2d(input_channel),
            nn.ReLU(inplace=True),
        )
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        features = []
        for idxstage in range(3):
            output_channel = self.stage_out_channels[idxstage + 2]
            for i in range(self.stage_repeats[idxstage]):
                stride = 2 if i == 0 else 1
                first_group = idxstage == 0 and i == 0
                features.append(ShuffleV1Block(input_channel, output_channel, group=group,
                                               first_group=first_group,
                                               mid_channels=output_channel // 4, ksize=3, stride=stride))
                input_channel = output_channel
        self.features = nn.Sequential(*features)
        self.globalpool = nn.AvgPool2d(7) if pool == 'avgpool7' else nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(self.stage_out_channels[-1], n_class, bias=False))

    def forward(self, x):
        x = self.first_conv(x)
        x = self.maxpool(x)
        x = self.features(x)
        if self.pool == 'mean':
            x = x.mean([2, 3])
        else:
            x = self.globalpool(x)
            x = x.contiguous().view(-1, self.stage_out_channels[-1])
        return self.classifier(x)


# --------------------------------------------------------------------------- ShuffleNetV2+ style

class HS(nn.Module):
    """megvii's hard-swish, written out"""

    def forward(self, inputs):
        clip = torch.clamp(inputs + 3, 0, 6) / 6
        return inputs * clip


class SELayer(nn.Module):
    def __init__(self, inplanes):
        super().__init__()
        self.SE_opr = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(inplanes, inplanes // 4, kernel_size=1, stride=1, bias=False),
            nn.BatchNorm2d(inplanes // 4),
            nn.ReLU(inplace=True),
            nn.Conv2d(inplanes // 4, inplanes, kernel_size=1, stride=1, bias=False),
        )

    def forward(self, x):
        atten = self.SE_opr(x)
        atten = torch.clamp(atten + 3, 0, 6) / 6
        return x * atten


class ShuffleV2PlusBlock(nn.Module):
    def __init__(self, inp, oup, base_mid_channels, *, ksize, stride, activation, useSE):
        super().__init__()
        self.stride = stride
        pad = ksize // 2
        outputs = oup - inp
        act = nn.ReLU(inplace=True) if activation == 'ReLU' else nn.Hardswish()
        branch_main = [
            nn.Conv2d(inp, base_mid_channels, 1, 1, 0, bias=False),
            nn.BatchNorm2d(base_mid_channels),
            act,
            nn.Conv2d(base_mid_channels, base_mid_channels, ksize, stride, pad,
                      groups=base_mid_channels, bias=False),
            nn.BatchNorm2d(base_mid_channels),
            nn.Conv2d(base_mid_channels, outputs, 1, 1, 0, bias=False),
            nn.BatchNorm2d(outputs),
            nn.ReLU(inplace=True) if activation == 'ReLU' else HS(),
        ]
        if useSE:
            branch_main.append(SELayer(outputs))
        self.branch_main = nn.Sequential(*branch_main)
        if stride == 2:
            self.branch_proj = nn.Sequential(
                nn.Conv2d(inp, inp, ksize, stride, pad, groups=inp, bias=False),
                nn.BatchNorm2d(inp),
                nn.Conv2d(inp, inp, 1, 1, 0, bias=False),
                nn.BatchNorm2d(inp),
                nn.ReLU(inplace=True) if activation == 'ReLU' else nn.Hardswish(),
            )

    def forward(self, old_x):
        if self.stride == 1:
            x_proj, x = channel_shuffle_split(old_x)
            return torch.cat((x_proj, self.branch_main(x)), 1)
        return torch.cat((self.branch_proj(old_x), self.branch_main(old_x)), 1)


def channel_shuffle_split(x):
    """the ShuffleNetV2 authors' shuffle and split in one step"""
    batchsize, num_channels, height, width = x.data.size()
    assert num_channels % 4 == 0
    x = x.reshape(batchsize * num_channels // 2, 2, height * width)
    x = x.permute(1, 0, 2)
    x = x.reshape(2, -1, num_channels // 2, height, width)
    return x[0], x[1]


class ShuffleNetV2Plus(nn.Module):
    """A small ShuffleNetV2+ (the architecture of megvii's ShuffleNet-Series),
    one stage per kind of unit so every variant is exercised."""

    def __init__(self, n_class=1000, channels=(16, 48, 96, 192, 256)):
        super().__init__()
        self.first_conv = nn.Sequential(nn.Conv2d(3, channels[0], 3, 2, 1, bias=False),
                                        nn.BatchNorm2d(channels[0]), nn.Hardswish())
        # (ksize, activation, useSE) for the units of each stage
        plan = [[(3, 'ReLU', False), (5, 'ReLU', False)],
                [(7, 'HS', False), (3, 'HS', True)],
                [(5, 'HS', True), (7, 'HS', True)]]
        features, inp = [], channels[0]
        for stage, units in enumerate(plan):
            oup = channels[stage + 1]
            for i, (k, act, se) in enumerate(units):
                if i == 0:
                    features.append(ShuffleV2PlusBlock(inp, oup, oup // 2, ksize=k, stride=2,
                                                       activation=act, useSE=se))
                else:
                    features.append(ShuffleV2PlusBlock(oup // 2, oup, oup // 2, ksize=k, stride=1,
                                                       activation=act, useSE=se))
                inp = oup
        self.features = nn.Sequential(*features)
        self.conv_last = nn.Sequential(nn.Conv2d(inp, channels[4], 1, 1, 0, bias=False),
                                       nn.BatchNorm2d(channels[4]), HS())
        self.globalpool = nn.AdaptiveAvgPool2d(1)
        self.LastSE = SELayer(channels[4])
        self.fc = nn.Sequential(nn.Linear(channels[4], 128, bias=False), HS())
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Sequential(nn.Linear(128, n_class, bias=False))

    def forward(self, x):
        x = self.first_conv(x)
        x = self.features(x)
        x = self.conv_last(x)
        x = self.globalpool(x)
        x = self.LastSE(x)
        x = x.contiguous().view(x.size(0), -1)
        x = self.fc(x)
        x = self.dropout(x)
        return self.classifier(x)


# --------------------------------------------------------------------------- torchvision

def _make_divisible(v, divisor, min_value=None):
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class Conv2dNormActivation(nn.Sequential):
    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=None, groups=1,
                 norm_layer=nn.BatchNorm2d, activation_layer=nn.ReLU, dilation=1):
        if padding is None:
            padding = (kernel_size - 1) // 2 * dilation
        layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation=dilation,
                            groups=groups, bias=norm_layer is None)]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if activation_layer is not None:
            layers.append(activation_layer(inplace=True))
        super().__init__(*layers)
        self.out_channels = out_channels


class MobileNetV2InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        hidden_dim = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(inp, hidden_dim, kernel_size=1, activation_layer=nn.ReLU6))
        layers.extend([
            Conv2dNormActivation(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim,
                                 activation_layer=nn.ReLU6),
            nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ])
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, num_classes=1000, width_mult=1.0, round_nearest=8, dropout=0.2):
        super().__init__()
        input_channel, last_channel = 32, 1280
        setting = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2],
                   [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]
        input_channel = _make_divisible(input_channel * width_mult, round_nearest)
        self.last_channel = _make_divisible(last_channel * max(1.0, width_mult), round_nearest)
        features = [Conv2dNormActivation(3, input_channel, stride=2, activation_layer=nn.ReLU6)]
        for t, c, n, s in setting:
            output_channel = _make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(MobileNetV2InvertedResidual(input_channel, output_channel,
                                                            s if i == 0 else 1, expand_ratio=t))
                input_channel = output_channel
        features.append(Conv2dNormActivation(input_channel, self.last_channel, kernel_size=1,
                                             activation_layer=nn.ReLU6))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes))

    def forward(self, x):
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        x = torch.flatten(x, 1)
        return self.classifier(x)


class SqueezeExcitation(nn.Module):
    def __init__(self, input_channels, squeeze_channels, activation=nn.ReLU,
                 scale_activation=nn.Sigmoid):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def forward(self, input):
        scale = self.avgpool(input)
        scale = self.activation(self.fc1(scale))
        scale = self.scale_activation(self.fc2(scale))
        return scale * input


class MobileNetV3InvertedResidual(nn.Module):
    def __init__(self, cnf, norm_layer):
        super().__init__()
        inp, kernel, expanded, out, use_se, use_hs, stride, dilation = cnf
        self.use_res_connect = stride == 1 and inp == out
        activation_layer = nn.Hardswish if use_hs else nn.ReLU
        layers = []
        if expanded != inp:
            layers.append(Conv2dNormActivation(inp, expanded, kernel_size=1, norm_layer=norm_layer,
                                               activation_layer=activation_layer))
        layers.append(Conv2dNormActivation(expanded, expanded, kernel_size=kernel,
                                           stride=1 if dilation > 1 else stride, dilation=dilation,
                                           groups=expanded, norm_layer=norm_layer,
                                           activation_layer=activation_layer))
        if use_se:
            layers.append(SqueezeExcitation(expanded, _make_divisible(expanded // 4, 8),
                                            scale_activation=nn.Hardsigmoid))
        layers.append(Conv2dNormActivation(expanded, out, kernel_size=1, norm_layer=norm_layer,
                                           activation_layer=None))
        self.block = nn.Sequential(*layers)

    def forward(self, input):
        result = self.block(input)
        if self.use_res_connect:
            result += input
        return result


MOBILENET_V3 = {
    'large': ([(16, 3, 16, 16, False, False, 1, 1), (16, 3, 64, 24, False, False, 2, 1),
               (24, 3, 72, 24, False, False, 1, 1), (24, 5, 72, 40, True, False, 2, 1),
               (40, 5, 120, 40, True, False, 1, 1), (40, 5, 120, 40, True, False, 1, 1),
               (40, 3, 240, 80, False, True, 2, 1), (80, 3, 200, 80, False, True, 1, 1),
               (80, 3, 184, 80, False, True, 1, 1), (80, 3, 184, 80, False, True, 1, 1),
               (80, 3, 480, 112, True, True, 1, 1), (112, 3, 672, 112, True, True, 1, 1),
               (112, 5, 672, 160, True, True, 2, 1), (160, 5, 960, 160, True, True, 1, 1),
               (160, 5, 960, 160, True, True, 1, 1)], 1280),
    'small': ([(16, 3, 16, 16, True, False, 2, 1), (16, 3, 72, 24, False, False, 2, 1),
               (24, 3, 88, 24, False, False, 1, 1), (24, 5, 96, 40, True, True, 2, 1),
               (40, 5, 240, 40, True, True, 1, 1), (40, 5, 240, 40, True, True, 1, 1),
               (40, 5, 120, 48, True, True, 1, 1), (48, 5, 144, 48, True, True, 1, 1),
               (48, 5, 288, 96, True, True, 2, 1), (96, 5, 576, 96, True, True, 1, 1),
               (96, 5, 576, 96, True, True, 1, 1)], 1024),
}


class MobileNetV3(nn.Module):
    def __init__(self, arch='large', num_classes=1000, dropout=0.2):
        super().__init__()
        setting, last_channel = MOBILENET_V3[arch]
        norm_layer = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
        layers = [Conv2dNormActivation(3, setting[0][0], kernel_size=3, stride=2, norm_layer=norm_layer,
                                       activation_layer=nn.Hardswish)]
        layers += [MobileNetV3InvertedResidual(cnf, norm_layer) for cnf in setting]
        last_in = setting[-1][3]
        layers.append(Conv2dNormActivation(last_in, 6 * last_in, kernel_size=1, norm_layer=norm_layer,
                                           activation_layer=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(6 * last_in, last_channel), nn.Hardswish(inplace=True),
            nn.Dropout(p=dropout, inplace=True), nn.Linear(last_channel, num_classes))

    def forward(self, x):
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


class MNASNetInvertedResidual(nn.Module):
    def __init__(self, in_ch, out_ch, kernel_size, stride, expansion_factor, bn_momentum=0.1):
        super().__init__()
        mid_ch = in_ch * expansion_factor
        self.apply_residual = in_ch == out_ch and stride == 1
        self.layers = nn.Sequential(
            nn.Conv2d(in_ch, mid_ch, 1, bias=False),
            nn.BatchNorm2d(mid_ch, momentum=bn_momentum),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_ch, mid_ch, kernel_size, padding=kernel_size // 2, stride=stride,
                      groups=mid_ch, bias=False),
            nn.BatchNorm2d(mid_ch, momentum=bn_momentum),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_ch, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch, momentum=bn_momentum),
        )

    def forward(self, input):
        if self.apply_residual:
            return self.layers(input) + input
        return self.layers(input)


def _stack(in_ch, out_ch, kernel_size, stride, exp_factor, repeats, bn_momentum):
    first = MNASNetInvertedResidual(in_ch, out_ch, kernel_size, stride, exp_factor, bn_momentum)
    rest = [MNASNetInvertedResidual(out_ch, out_ch, kernel_size, 1, exp_factor, bn_momentum)
            for _ in range(1, repeats)]
    return nn.Sequential(first, *rest)


def _round_to_multiple_of(val, divisor, round_up_bias=0.9):
    new_val = max(divisor, int(val + divisor / 2) // divisor * divisor)
    return new_val if new_val >= round_up_bias * val else new_val + divisor


class MNASNet(nn.Module):
    def __init__(self, alpha=1.0, num_classes=1000, dropout=0.2):
        super().__init__()
        m = 1 - 0.9997
        d = [_round_to_multiple_of(x * alpha, 8) for x in [32, 16, 24, 40, 80, 96, 192, 320]]
        self.layers = nn.Sequential(
            nn.Conv2d(3, d[0], 3, padding=1, stride=2, bias=False), nn.BatchNorm2d(d[0], momentum=m),
            nn.ReLU(inplace=True),
            nn.Conv2d(d[0], d[0], 3, padding=1, stride=1, groups=d[0], bias=False),
            nn.BatchNorm2d(d[0], momentum=m), nn.ReLU(inplace=True),
            nn.Conv2d(d[0], d[1], 1, padding=0, stride=1, bias=False), nn.BatchNorm2d(d[1], momentum=m),
            _stack(d[1], d[2], 3, 2, 3, 3, m), _stack(d[2], d[3], 5, 2, 3, 3, m),
            _stack(d[3], d[4], 5, 2, 6, 3, m), _stack(d[4], d[5], 3, 1, 6, 2, m),
            _stack(d[5], d[6], 5, 2, 6, 4, m), _stack(d[6], d[7], 3, 1, 6, 1, m),
            nn.Conv2d(d[7], 1280, 1, padding=0, stride=1, bias=False), nn.BatchNorm2d(1280, momentum=m),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Sequential(nn.Dropout(p=dropout, inplace=True), nn.Linear(1280, num_classes))

    def forward(self, x):
        x = self.layers(x)
        x = x.mean([2, 3])
        return self.classifier(x)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet18(nn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, 2)
        self.layer2 = self._make_layer(128, 2, stride=2)
        self.layer3 = self._make_layer(256, 2, stride=2)
        self.layer4 = self._make_layer(512, 2, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)

    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


class Fire(nn.Module):
    def __init__(self, inplanes, squeeze_planes, expand1x1_planes, expand3x3_planes):
        super().__init__()
        self.squeeze = nn.Conv2d(inplanes, squeeze_planes, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                          self.expand3x3_activation(self.expand3x3(x))], 1)


class SqueezeNet11(nn.Module):
    def __init__(self, num_classes=1000, dropout=0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=3, stride=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(64, 16, 64, 64), Fire(128, 16, 64, 64),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(128, 32, 128, 128), Fire(256, 32, 128, 128),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256),
            Fire(512, 64, 256, 256),
        )
        final_conv = nn.Conv2d(512, num_classes, kernel_size=1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), final_conv, nn.ReLU(inplace=True),
                                        nn.AdaptiveAvgPool2d((1, 1)))

    def forward(self, x):
        return torch.flatten(self.classifier(self.features(x)), 1)


# --------------------------------------------------------------------------- builders for tools/convert_pytorch.py

def shufflenet_v1_g3():
    return ShuffleNetV1(group=3)


def shufflenet_v1_g8():
    return ShuffleNetV1(group=8)


def shufflenet_v2_plus():
    return ShuffleNetV2Plus()


mobilenet_v2 = MobileNetV2
mobilenet_v3_large = partial(MobileNetV3, 'large')
mobilenet_v3_small = partial(MobileNetV3, 'small')
mnasnet1_0 = MNASNet
resnet18 = ResNet18
squeezenet1_1 = SqueezeNet11


def dense3x3_ladder():
    """Not an architecture: dense 3x3 stride-1 convolutions (BatchNorm, ReLU)
    of the channel counts and planes the Winograd path model is fitted to
    (engine/ops/conv.py: PATH_COST_NS; tools/count_aarch64.py --models
    dense3x3_ladder --plan winograd=0, 2, 4), for a 112x112 input: few
    channels on large planes to many on 7x7, square and not."""
    layers, cin = [], 3
    for side, widths in ((112, (24, 32)), (56, (48, 40)), (28, (96, 64)), (14, (128, 384)), (7, (96, 192))):
        if side < 112:
            layers.append(nn.MaxPool2d(2))
        for cout in widths:
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
