"""The shared training loop: schedule, resume, DDP equivalence."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from hmu.train.loop import TrainConfig, train

X = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
Y = X @ torch.randn(8, 2, generator=torch.Generator().manual_seed(1))


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))


def _batch(idx, gen):
    return X[idx], Y[idx]


def _loss(model, batch):
    x, y = batch
    return torch.nn.functional.mse_loss(model(x), y), {}


CFG = dict(steps=30, batch_size=16, lr=1e-2, warmup_steps=5, milestones=[20], checkpoint_every=10)


def _flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_lr_schedule():
    cfg = TrainConfig(lr=1.0, warmup_steps=4, milestones=[10, 20], gamma=0.5)
    assert [cfg.lr_at(s) for s in (0, 3, 9, 10, 25)] == [0.25, 1.0, 1.0, 0.5, 0.25]
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig.from_params({"stepz": 3})


def test_training_reduces_loss_and_resume_is_exact(tmp_path):
    full = _model()
    train(full, 64, _batch, _loss, TrainConfig(**CFG), tmp_path / "a", progress=False)
    assert _loss(full, (X, Y))[0] < _loss(_model(), (X, Y))[0] * 0.5

    part = _model()
    train(
        part, 64, _batch, _loss, TrainConfig(**{**CFG, "steps": 20}), tmp_path / "b", progress=False
    )
    resumed = _model()  # fresh weights: everything must come from the checkpoint
    train(resumed, 64, _batch, _loss, TrainConfig(**CFG), tmp_path / "b", progress=False)
    torch.testing.assert_close(_flat(resumed), _flat(full), rtol=0, atol=1e-6)


def _worker(rank, world, port, work_dir, queue):
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    model = _model()
    train(model, 64, _batch, _loss, TrainConfig(**CFG), work_dir, progress=False)
    if rank == 0:
        queue.put(_flat(model).numpy())  # by value: a shared tensor dies with its process
    torch.distributed.destroy_process_group()


def test_ddp_two_cpu_processes_match_single_process(tmp_path):
    single = _model()
    train(single, 64, _batch, _loss, TrainConfig(**CFG), tmp_path / "single", progress=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(r, 2, port, tmp_path / "ddp", queue)) for r in (0, 1)
    ]
    for p in procs:
        p.start()
    result = queue.get(timeout=120)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    torch.testing.assert_close(torch.from_numpy(result), _flat(single), rtol=1e-4, atol=1e-5)
