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


def _mask_model_run(work_dir, precision: str) -> torch.Tensor:
    """20 steps of a tiny masked transformer (dropout on) at `precision` -> final weights."""
    from hmu.models.momask import MaskTransformer

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 16, (64, 12), generator=g)
    cond = torch.randn(64, 8, generator=g)
    lengths = torch.randint(3, 13, (64,), generator=g)
    torch.manual_seed(0)
    model = MaskTransformer(16, 16, 32, 64, 2, 4, dropout=0.1, clip_dim=8)

    def batch(idx, gen):
        return ids[idx], cond[idx], lengths[idx]

    def loss(model, batch):
        ce, acc = model.loss(*batch)
        return ce, {"acc": float(acc)}

    cfg = TrainConfig(steps=20, batch_size=16, lr=3e-3, checkpoint_every=100, precision=precision)
    train(model, 64, batch, loss, cfg, work_dir, progress=False)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # fp32 master weights
    return _flat(model)


def test_bf16_training_is_deterministic_on_two_threads(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        first = _mask_model_run(tmp_path / "a", "bf16")
        second = _mask_model_run(tmp_path / "b", "bf16")
        exact = _mask_model_run(tmp_path / "c", "fp32")
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(first, second)
    assert not torch.equal(first, exact)  # autocast took effect
    torch.testing.assert_close(first, exact, rtol=0, atol=0.05)  # the same training, roughly
    with pytest.raises(ValueError, match="precision"):
        TrainConfig.from_params({"precision": "fp16"})
