"""Built-in architectures as engine graphs, made without torch: for the
on-device benchmark and for tests that must run where torch is absent.

Weights are seeded random values (speed does not depend on them, as in
ncnn's benchncnn); the graph is what tools/convert_pytorch.py makes of
torchvision's model of the same name."""
import numpy as np

from engine.graph import Graph, Node
from engine.shuffle import shuffle_permutation
from engine.optimize import optimize

SHUFFLENET_V2_CHANNELS = {
    '0.5': [24, 48, 96, 192, 1024],
    '1.0': [24, 116, 232, 464, 1024],
    '1.5': [24, 176, 352, 704, 1024],
    '2.0': [24, 244, 488, 976, 2048],
}
SHUFFLENET_V2_REPEATS = [4, 8, 4]


class _Builder:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes = []

    def add(self, name, op, inputs, attrs=None, params=None):
        self.nodes.append(Node(name, op, list(inputs), attrs or {}, params or {}))
        return name

    def conv_bn(self, name, x, cin, cout, k=1, stride=1, groups=1, relu=True, bn_index=1):
        """Conv2d(bias=False) + BatchNorm2d (+ ReLU), named like nn.Sequential."""
        fan_in = cin // groups * k * k
        w = self.rng.standard_normal((cout, cin // groups, k, k)) * np.sqrt(2.0 / fan_in)
        prefix, idx = name.rsplit('.', 1)
        idx = int(idx)
        self.add(name, 'conv', [x], dict(in_channels=cin, out_channels=cout, kernel=[k, k],
                                         stride=[stride, stride], padding=[k // 2, k // 2],
                                         dilation=[1, 1], groups=groups, clamp=None),
                 dict(weight=w.astype(np.float32)))
        bn = f'{prefix}.{idx + 1}'
        self.add(bn, 'batchnorm', [name], dict(eps=1e-5), dict(
            weight=(1 + 0.2 * self.rng.standard_normal(cout)).astype(np.float32),
            bias=(0.2 * self.rng.standard_normal(cout)).astype(np.float32),
            running_mean=(0.2 * self.rng.standard_normal(cout)).astype(np.float32),
            running_var=(0.5 + self.rng.random(cout)).astype(np.float32)))
        if not relu:
            return bn
        return self.add(f'{prefix}.{idx + 2}', 'act', [bn], dict(clamp=[0.0, None]))


def shufflenet_v2(width='1.0', num_classes=1000, seed=0, input_size=224):
    """torchvision's shufflenet_v2_x{width} as an engine graph."""
    if width not in SHUFFLENET_V2_CHANNELS:
        raise ValueError(f'width must be one of {sorted(SHUFFLENET_V2_CHANNELS)}, got {width!r}')
    ch = SHUFFLENET_V2_CHANNELS[width]
    b = _Builder(seed)
    x = b.conv_bn('conv1.0', 'input', 3, ch[0], k=3, stride=2)
    x = b.add('maxpool', 'maxpool', [x], dict(kernel=[3, 3], stride=[2, 2], padding=[1, 1],
                                              dilation=[1, 1], ceil_mode=False))
    cin = ch[0]
    for stage, repeats, cout in zip((2, 3, 4), SHUFFLENET_V2_REPEATS, ch[1:4]):
        half = cout // 2
        for i in range(repeats):
            unit = f'stage{stage}.{i}'
            if i == 0:
                left = b.conv_bn(f'{unit}.branch1.0', x, cin, cin, k=3, stride=2, groups=cin, relu=False)
                left = b.conv_bn(f'{unit}.branch1.2', left, cin, half)
                right_in, rc = x, cin
            else:
                left = b.add(f'{unit}.chunk0', 'gather', [x], dict(indices=list(range(half))))
                right_in = b.add(f'{unit}.chunk1', 'gather', [x], dict(indices=list(range(half, cout))))
                rc = half
            s = 2 if i == 0 else 1
            r = b.conv_bn(f'{unit}.branch2.0', right_in, rc, half)
            r = b.conv_bn(f'{unit}.branch2.3', r, half, half, k=3, stride=s, groups=half, relu=False)
            r = b.conv_bn(f'{unit}.branch2.5', r, half, half)
            cat = b.add(f'{unit}.cat', 'concat', [left, r])
            x = b.add(f'{unit}.shuffle', 'gather', [cat], dict(indices=shuffle_permutation(cout, 2).tolist()))
        cin = cout
    x = b.conv_bn('conv5.0', x, cin, ch[4])
    x = b.add('mean', 'global_avgpool', [x], dict(keepdims=False))
    w = b.rng.standard_normal((num_classes, ch[4])) * np.sqrt(1.0 / ch[4])
    x = b.add('fc', 'linear', [x], dict(in_features=ch[4], out_features=num_classes, clamp=None),
              dict(weight=w.astype(np.float32),
                   bias=(0.1 * b.rng.standard_normal(num_classes)).astype(np.float32)))
    graph = Graph('input', (1, 3, input_size, input_size), b.nodes, [x],
                  {'architecture': f'shufflenet_v2_x{width}', 'weights': f'random (seed {seed})'})
    return optimize(graph)


MODELS = {f'shufflenet_v2_x{w.replace(".", "_")}': (lambda w=w, **kw: shufflenet_v2(w, **kw))
          for w in SHUFFLENET_V2_CHANNELS}
