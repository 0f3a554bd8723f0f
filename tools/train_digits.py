#!/usr/bin/env python3
"""Train a small ShuffleNetV2 on scikit-learn's handwritten digits, convert
it, and write what weights/ ships:

  weights/digits_shufflenet.engine   the converted model (labels and preprocessing inside)
  weights/digits_shufflenet.pth      the PyTorch state dict it came from (torch.load(..., weights_only=True))
  weights/digits_test.npz            the held-out images, their labels and PyTorch's logits
  weights/digits_calibration.npz     training images for int8 calibration (engine/int8.py)
  weights/samples/*.png              a few held-out images to classify

  pip install -e ".[test]" scikit-learn && python tools/train_digits.py

The digits (1,797 images of 8x8 pixels, 17 grey levels, shipped inside
scikit-learn, so no download) are scaled to 0-255 and enlarged to 32x32 by
pixel repetition; 20 % are held out, stratified, with a fixed seed.  The
network is torchvision's ShuffleNetV2 unit (tests/torch_models.py) in a
small stack for 32x32 single-channel inputs.  Training is seeded and takes
about a minute on two cores.
"""
import argparse
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'tests'))

SIZE = 32
PREPROCESS = {'resize': SIZE, 'crop': SIZE, 'mean': [0.25], 'std': [0.35]}
CALIBRATION_IMAGES = 200


def digits_images():
    """(uint8 images N x 32 x 32, labels) from scikit-learn's digits."""
    from sklearn.datasets import load_digits
    d = load_digits()
    small = np.round(d.images * (255 / 16)).astype(np.uint8)           # 0..16 -> 0..255
    big = small.repeat(SIZE // 8, axis=1).repeat(SIZE // 8, axis=2)     # 8x8 -> 32x32
    return big, d.target.astype(np.int64)


def split(labels):
    """(training indices, held-out indices): 20 % held out, stratified."""
    from sklearn.model_selection import train_test_split
    return train_test_split(np.arange(len(labels)), test_size=0.2, random_state=0, stratify=labels)


def write_calibration(folder):
    """digits_calibration.npz: the first CALIBRATION_IMAGES training images
    (a random sample: the split shuffles), for int8 calibration, apart from
    the held-out ones the accuracy is measured on."""
    images, labels = digits_images()
    idx_train, _ = split(labels)
    pick = idx_train[:CALIBRATION_IMAGES]
    np.savez_compressed(os.path.join(folder, 'digits_calibration.npz'), images=images[pick], labels=labels[pick])


def build_net():
    import torch_models
    from torch import nn

    class DigitsShuffleNet(nn.Module):
        """conv1 3x3 -> ShuffleNetV2 stages at 16x16 and 8x8 -> conv5 1x1 -> mean -> fc"""

        def __init__(self):
            super().__init__()
            unit = torch_models.InvertedResidual
            self.conv1 = nn.Sequential(nn.Conv2d(1, 24, 3, 1, 1, bias=False), nn.BatchNorm2d(24),
                                       nn.ReLU(inplace=True))
            self.stage2 = nn.Sequential(unit(24, 48, 2), unit(48, 48, 1), unit(48, 48, 1))
            self.stage3 = nn.Sequential(unit(48, 96, 2), unit(96, 96, 1))
            self.conv5 = nn.Sequential(nn.Conv2d(96, 128, 1, 1, 0, bias=False), nn.BatchNorm2d(128),
                                       nn.ReLU(inplace=True))
            self.fc = nn.Linear(128, 10)

        def forward(self, x):
            x = self.conv5(self.stage3(self.stage2(self.conv1(x))))
            return self.fc(x.mean([2, 3]))
    return DigitsShuffleNet()


def convert_args(folder):
    """tools/convert_pytorch.py's arguments that make digits_shufflenet.engine
    (the command weights/README.md gives, for folder weights/)."""
    return ['tools.train_digits:build_net', '--checkpoint', os.path.join(folder, 'digits_shufflenet.pth'),
            '--input-shape', f'1,1,{SIZE},{SIZE}', '--resize', str(PREPROCESS['resize']),
            '--crop', str(PREPROCESS['crop']), '--mean', str(PREPROCESS['mean'][0]),
            '--std', str(PREPROCESS['std'][0]), '--labels', os.path.join(folder, 'digits_labels.txt'),
            '-o', os.path.join(folder, 'digits_shufflenet.engine'), '--check']


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--epochs', type=int, default=30)
    p.add_argument('--out', default=os.path.join(ROOT, 'weights'))
    args = p.parse_args(argv)

    import torch
    import engine
    from engine.preprocess import to_array

    torch.manual_seed(0)
    images, labels = digits_images()
    idx_train, idx_test = split(labels)
    # exactly the inputs engine.Model.classify makes of these images
    x = np.stack([to_array(im, PREPROCESS, 1) for im in images])
    xt, yt = torch.from_numpy(x[idx_train]), torch.from_numpy(labels[idx_train])

    net = build_net()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = args.epochs * (len(idx_train) + 63) // 64
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(0)
    for epoch in range(args.epochs):
        net.train()
        order = torch.randperm(len(idx_train), generator=gen)
        total = 0.0
        for start in range(0, len(order), 64):
            b = order[start:start + 64]
            batch = xt[b]
            # shifts of up to 2 pixels (half a digit pixel) as augmentation
            dy, dx = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
            batch = torch.roll(batch, shifts=(dy, dx), dims=(2, 3))
            loss = torch.nn.functional.cross_entropy(net(batch), yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(b)
        print(f'epoch {epoch + 1:2d}/{args.epochs}  loss {total / len(idx_train):.4f}', flush=True)

    net.eval()
    with torch.no_grad():
        logits = net(torch.from_numpy(x[idx_test])).numpy()
    accuracy = float((logits.argmax(1) == labels[idx_test]).mean())
    print(f'held-out accuracy (PyTorch): {accuracy:.4f} on {len(idx_test)} images')

    os.makedirs(os.path.join(args.out, 'samples'), exist_ok=True)
    torch.save(net.state_dict(), os.path.join(args.out, 'digits_shufflenet.pth'))
    with open(os.path.join(args.out, 'digits_labels.txt'), 'w') as f:
        f.write(''.join(f'{i}\n' for i in range(10)))
    # the conversion weights/README.md gives, from the state dict just saved
    sys.path.insert(0, os.path.join(ROOT, 'tools'))
    import convert_pytorch
    os.chdir(ROOT)
    if convert_pytorch.main(convert_args(args.out)) != 0:
        raise SystemExit('converting the trained model failed')
    model = engine.load(os.path.join(args.out, 'digits_shufflenet.engine'))
    np.savez_compressed(os.path.join(args.out, 'digits_test.npz'), images=images[idx_test],
                        labels=labels[idx_test], torch_logits=logits)
    write_calibration(args.out)
    engine_acc = float((model(x[idx_test]).argmax(1) == labels[idx_test]).mean())
    print(f'held-out accuracy (engine):  {engine_acc:.4f}')

    from PIL import Image
    for d in range(10):       # the first held-out image of each digit
        i = int(np.flatnonzero(labels[idx_test] == d)[0])
        Image.fromarray(images[idx_test][i]).save(os.path.join(args.out, 'samples', f'digit_{d}.png'))
    with open(os.path.join(args.out, 'digits_result.json'), 'w') as f:
        json.dump({'accuracy_torch': accuracy, 'accuracy_engine': engine_acc,
                   'test_images': int(len(idx_test)), 'epochs': args.epochs}, f, indent=2)


if __name__ == '__main__':
    main()
