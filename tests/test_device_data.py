"""Training data on a device: 8-bit image training sets travel and stay as uint8 levels, every
path that reads them (the one-model loop, the batched kernel, predict) gets the very float32
values of the float set, and predict bounds its chunks by their size. No GPU is needed: the
"meta" device stands for one where the device matters, and uint8 sets train on the CPU too."""
import torch
from torch import nn

from lrsc import datasets, models
from lrsc.datasets import Split, as_inputs, pixel_levels
from lrsc.runs import load_data
from lrsc.settings import TrainSettings
from lrsc.stacked import train_batched
from lrsc.train import train

MOON = {"dataset": "moon_star", "dataset_params": {"rho": 0.1, "image_size": 16, "n_train": 200, "n_test": 50,
                                                   "pixel_noise": 0.0}, "seed": 0}  # noise-free: black and white


def _images(n: int = 200) -> Split:
    """Random 8-bit images made float32 as the image builders make them (k / 255); the label says
    whether the left half is the brighter one."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 1, 8, 8), generator=g, dtype=torch.uint8).float().div_(255)
    y = (x[..., :4].mean((1, 2, 3)) > x[..., 4:].mean((1, 2, 3))).long()
    return Split(x, y, y.clone(), num_classes=2, num_bias=2)


def _levels(split: Split) -> Split:
    levels = pixel_levels(split.x)
    assert levels is not None
    return Split(levels, split.y, split.b, split.num_classes, split.num_bias, split.regions)


def test_pixel_levels_give_the_float_images_back_bit_for_bit():
    images = _images()
    levels = pixel_levels(images.x, chunk=1000)  # several chunks
    assert levels.dtype == torch.uint8 and levels.shape == images.x.shape and len(levels.unique()) == 256
    assert torch.equal(as_inputs(levels), images.x) and as_inputs(images.x) is images.x
    parity, _ = datasets.build("parity", seed=0, n_core=3, n_spu=1, n_noise=4, n_train=50, n_test=10)
    assert pixel_levels(parity.x) is None  # not k / 255: stays float32
    assert pixel_levels(torch.tensor([0.5, 1.0])) is None and pixel_levels(torch.tensor([2.0])) is None


def test_off_the_cpu_an_image_training_set_travels_as_uint8():
    train_set, test_set = load_data(MOON, torch.device("meta"))  # stands for a GPU
    assert train_set.x.dtype == torch.uint8 and train_set.x.device.type == "meta"
    assert test_set.x.dtype == torch.float32  # every metric reads the test set: it stays float32
    noisy = {**MOON, "dataset_params": {**MOON["dataset_params"], "pixel_noise": 0.05}}
    assert load_data(noisy, torch.device("meta"))[0].x.dtype == torch.float32  # not 8-bit: float32 there too
    assert load_data(MOON, "cpu")[0].x.dtype == torch.float32  # the CPU path is as it was


def test_the_one_model_loop_trains_on_levels_to_the_same_numbers():
    train_set = _images()
    runs = []
    for data in (train_set, _levels(train_set)):
        torch.manual_seed(0)
        model = models.build("cnn", input_shape=(1, 8, 8), num_classes=2, width=0.125)
        result = train(model, data, lr=0.05, batch_size=50, max_steps=60, eval_every=20)
        runs.append((result, [p.detach().clone() for p in model.parameters()]))
    (a, wa), (b, wb) = runs
    assert a.steps == b.steps and a.train_acc == b.train_acc
    assert all(torch.equal(p, q) for p, q in zip(wa, wb))
    assert all(torch.equal(a.records[k].nan_to_num(), b.records[k].nan_to_num()) for k in a.records)


def test_the_batched_kernel_trains_on_levels_to_the_same_numbers():
    train_set = _images()
    weights = []
    for data in (train_set, _levels(train_set)):
        torch.manual_seed(0)
        nets = [models.build("fcn", input_shape=(1, 8, 8), num_classes=2, width=16) for _ in range(2)]
        settings = [TrainSettings(lr=lr, batch_size=50, max_steps=60, eval_every=20) for lr in (0.1, 0.5)]
        train_batched(nets, [data, data], settings, seed=[0, 1])
        weights.append(torch.cat([p.detach().flatten() for net in nets for p in net.parameters()]))
    assert torch.equal(weights[0], weights[1])


class _Mean(nn.Module):
    """Features: each image's mean; counts the inputs of each forward pass."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(1, 2)
        self.chunks = []

    def features(self, x):
        self.chunks.append((len(x), x.dtype))
        return x.flatten(1).mean(1, keepdim=True)


def test_predict_bounds_its_chunks_by_the_input_size():
    model = _Mean()
    big = torch.full((1400, 3, 128, 128), 255, dtype=torch.uint8)  # 128 px: 1365 images a chunk
    feats, logits = models.predict(model, big)
    assert model.chunks == [(1365, torch.float32), (35, torch.float32)] and torch.equal(feats, torch.ones(1400, 1))
    model.chunks.clear()
    models.predict(model, torch.zeros(9000, 3, 32, 32))  # small images keep chunks of 8192
    assert [n for n, _ in model.chunks] == [8192, 808]
