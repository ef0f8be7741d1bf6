"""Learning-rate schedules: the rate of each epoch, and their validation."""

import math
from types import SimpleNamespace

import pytest

from dlscratch.training import CosineLR, ExponentialLR, StepLR


def test_step_lr_divides_by_ten_every_step_size_epochs():
    s = StepLR(step_size=3, gamma=0.1, base_lr=0.5)
    assert [s.lr_at(e) for e in range(7)] == pytest.approx([0.5, 0.5, 0.5, 0.05, 0.05, 0.05, 0.005])


def test_exponential_lr():
    s = ExponentialLR(gamma=0.9, base_lr=0.1)
    assert [s.lr_at(e) for e in range(4)] == pytest.approx([0.1, 0.09, 0.081, 0.0729])


def test_cosine_lr_goes_from_base_to_min_over_total_epochs():
    s = CosineLR(total_epochs=4, min_lr=0.01, base_lr=0.11)
    values = [s.lr_at(e) for e in range(5)]
    quarter = 0.1 * (1 + math.cos(math.pi / 4)) / 2
    three_quarters = 0.1 * (1 + math.cos(3 * math.pi / 4)) / 2
    assert values == pytest.approx([0.11, 0.01 + quarter, 0.06, 0.01 + three_quarters, 0.01])
    assert s.lr_at(10) == pytest.approx(0.01)  # stays at the floor past the end


def test_schedule_takes_its_base_rate_from_the_optimizer_and_saves_it():
    trainer = SimpleNamespace(optimizer=SimpleNamespace(lr=0.3), epochs=6)
    s = CosineLR()
    s.on_train_begin(trainer)
    assert (s.base_lr, s.total_epochs) == (0.3, 6)
    s.on_epoch_begin(trainer, 4)
    assert trainer.optimizer.lr == pytest.approx(0.3 * 0.5 * (1 + math.cos(math.pi * 3 / 6)))
    # resuming must not take the decayed rate as the new base
    again = CosineLR()
    again.load_state_dict(s.state_dict())
    again.on_train_begin(trainer)
    assert again.base_lr == 0.3


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: StepLR(step_size=0), "step_size must be a whole number >= 1"),
        (lambda: StepLR(step_size=2, gamma=-1), "gamma must be a finite number > 0"),
        (lambda: ExponentialLR(gamma=0), "gamma must be a finite number > 0"),
        (lambda: CosineLR(min_lr=-1), "min_lr must be a number >= 0"),
        (lambda: StepLR(2).lr_at(0), "no base_lr yet"),
    ],
)
def test_bad_schedule_settings(make, message):
    with pytest.raises(ValueError, match=message):
        make()
