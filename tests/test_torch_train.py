"""Every bundled spec trains: a backward pass and an optimizer step in training mode (aux heads
included), on the smallest square input its shape rules accept. Also DistributedDataParallel."""
import os
import socket

import pytest
import torch

import netc
from netc.errors import NetcError
from tests.conftest import SPECS

BUNDLED = sorted(p.stem for p in SPECS.glob("*.yaml"))
# below 32, deep ResNets run dozens of blocks at 1x1 with batch norm over 2 values: gradients overflow
SIZES = (32, 64, 96, 128, 160, 224, 299)


def smallest(spec: str):
    """The spec compiled at the smallest input side from SIZES that it accepts (else its own)."""
    default = netc.load(SPECS / f"{spec}.yaml")
    shape = default.input_shape
    if len(shape) != 3:
        return default
    for side in SIZES:
        if side >= min(shape[1:]):
            break
        try:
            return netc.load(SPECS / f"{spec}.yaml", input_shape=(shape[0], side, side))
        except NetcError:
            continue
    return default


def loss_of(out) -> torch.Tensor:
    outs = list(out) if isinstance(out, tuple) else [out]
    return sum(o.float().square().mean() for o in outs)


@pytest.mark.parametrize("spec", BUNDLED)
def test_backward_and_optimizer_step(spec):
    torch.manual_seed(0)
    net = smallest(spec)
    model = net.build(init=False).train()  # the init presets are tested in test_torch_module
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    before = [p.detach().clone() for p in model.parameters()]
    out = model(torch.randn(2, *net.input_shape))
    if any(aux for _, _, aux in net.outputs):
        assert isinstance(out, tuple) and len(out) == len(net.outputs)
    loss = loss_of(out)
    assert torch.isfinite(loss)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    opt.step()
    # every parameter with a clear gradient moved (some gradients are zero up to rounding: a conv
    # bias before batch norm, a conv feeding batch norm over two values)
    stuck = [n for (n, p), a in zip(model.named_parameters(), before)
             if p.grad.abs().max() > 1e-4 and torch.equal(a, p)]
    assert not stuck, stuck[:5]
    assert any(p.grad.any() for p in model.parameters()) or not before


# --- DistributedDataParallel -------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, result_dir: str):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(rank)  # different initial weights per rank: DDP must broadcast rank 0's
        net = netc.load(SPECS / "googlenet.yaml", {"num_classes": 10}, input_shape=(3, 32, 32))
        model = DistributedDataParallel(net.build().train())
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for step in range(2):
            g = torch.Generator().manual_seed(100 * step + rank)  # each rank its own batch
            out = model(torch.randn(2, 3, 32, 32, generator=g))
            opt.zero_grad()
            loss_of(out).backward()
            opt.step()
        state = {k: v.detach().clone() for k, v in model.module.state_dict().items()}
        torch.save(state, os.path.join(result_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.heavy
def test_distributed_data_parallel_replicas_stay_equal(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    a, b = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    assert a.keys() == b.keys()
    weights = [k for k in a if "running" not in k and "num_batches" not in k]
    assert all(torch.equal(a[k], b[k]) for k in weights), [k for k in weights if not torch.equal(a[k], b[k])][:5]
    # the training steps did something: weights moved away from a fresh build of rank 0's init
    torch.manual_seed(0)
    fresh = netc.load(SPECS / "googlenet.yaml", {"num_classes": 10}, input_shape=(3, 32, 32)).build().state_dict()
    assert any(not torch.equal(fresh[k], a[k]) for k in weights)
