# %% [markdown]
# # Unit 12 — Distributed training: collectives, DDP, ZeRO, tensor parallelism and the memory model
#
# One GPU holds neither the weights, gradients and optimizer state of a 70B model nor
# enough throughput to train it in a reasonable time. Distributed training splits the work
# across processes that talk through a handful of **collective operations** (all-reduce,
# all-gather, reduce-scatter, broadcast). In this unit you start real processes on this
# machine, joined by PyTorch's `gloo` backend (the CPU sibling of NCCL: the same
# `torch.distributed` calls, over loopback TCP), and
#
# 1. build the all-reduce that every data-parallel step runs out of point-to-point sends:
#    the **ring all-reduce** (reduce-scatter then all-gather), and count its bytes;
# 2. write **data parallelism (DDP) by hand**: broadcast the initial weights, average the
#    gradients; after k steps every rank holds exactly what one process training on the
#    whole batch holds, and what `torch.nn.parallel.DistributedDataParallel` computes; then
#    overlap communication with backward, in buckets started from gradient hooks, as DDP does;
# 3. shard the optimizer state (**ZeRO-1/2**): each rank keeps AdamW's moments for 1/N of
#    the parameters only, reduce-scatters the gradients and all-gathers the parameters,
#    sending exactly DDP's bytes, and the result still equals unsharded AdamW; then shard the
#    parameters too (**ZeRO-3 / FSDP**): all-gather each layer just before its forward and
#    backward, free it after, reduce-scatter its gradients, against torch's `fully_shard`;
# 4. split every weight matrix of Llama's MLP across ranks (**tensor parallelism**, Megatron's
#    column- then row-parallel layers): one all-reduce in forward, one in backward, and the
#    same outputs and gradients as the unsharded layer;
# 5. run a model cut into pipeline stages, one per rank, on micro-batches (GPipe), then
#    train it with the **1F1B** schedule (forwards and backwards interleaved) and measure its
#    bubble and the activations it holds;
# 6. put numbers on it: parameters of the 7B and 70B Llama configurations, bytes per GPU
#    under DDP, ZeRO-1/2/3 and tensor parallelism, the time an all-reduce must take, and
#    the idle "bubble" of pipeline parallelism.
#
# ## Learning objectives
#
# After this unit you can
# - explain what all-reduce, reduce-scatter, all-gather and broadcast do, and why a ring
#   all-reduce sends 2(N−1)/N of the tensor per rank, whatever N is;
# - write a data-parallel training step and prove it equal to single-process training;
# - overlap gradient communication with the backward pass (buckets, hooks, async collectives);
# - say which model states ZeRO-1, -2 and -3 shard and compute the bytes per GPU of each;
#   make ZeRO send no more than DDP (reduce-scatter, then all-gather), and write FSDP's
#   gather-compute-free cycle per layer with its reduce-scatter of gradients;
# - split a transformer MLP across ranks (column- then row-parallel) with one all-reduce per
#   pass, and write the collectives' backward as autograd functions;
# - estimate from first principles whether a model fits on a GPU and how long its gradient
#   all-reduce must take at a given bandwidth;
# - run a GPipe forward pass across ranks, and compute its bubble (p−1)/(m+p−1) to
#   choose a number of micro-batches; train a pipeline with 1F1B, which holds at most p
#   micro-batches' activations instead of m, and count its bubble from the schedule.
#
# ## Prerequisites
#
# PyTorch tensors, `nn.Module`, autograd and optimizers (`backward`, `.grad`, `step`), and
# AdamW's update rule (unit 06 uses it). No GPU is needed.
#
# ## Time, device, skills
#
# - **Time:** about 4 hours.
# - **Device:** CPU. Every exercise starts 2 to 4 worker processes from this notebook
#   (`graders.notebook.run_distributed`); the whole notebook takes about two minutes on 2
#   cores. On a machine with several GPUs the same code runs with the `nccl` backend and
#   CUDA tensors; nothing in the algorithms changes.
# - **Skills practised** (see the course skill map): *Training and fine-tuning* (data
#   parallelism, sharded optimizers, mixed-precision memory budgets); *Optimisation*
#   (AdamW's state); *Engineering habits* (exactness checks against a single process and a
#   real library, counting bytes rather than guessing).
#
# ### How the notebook runs processes
#
# `run_distributed(fn, N, *args)` forks N processes from this kernel. Each joins a `gloo`
# process group (so `dist.get_rank()`, `dist.all_reduce(...)` and friends work), calls
# `fn(rank, N, *args)` and sends its return value back; you get the N return values as a
# list, index = rank. A worker that raises shows its traceback here; a collective that some
# rank never joins (a deadlock) times out instead of hanging the notebook; and no worker
# outlives the call. What a worker prints appears here prefixed with its rank.
#
# Run the cell below first. It fixes seeds and threads and silences library warnings (the
# grader scores any test cell that writes to stderr as 0).

# %% setup id=setup
import contextlib
import functools
import inspect
import math

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F  # noqa: F401
from graders.notebook import setup

setup()

import matplotlib.pyplot as plt
from graders.notebook import assert_close, assert_scalar_close, run_distributed

# torch's first backward from a given gradient (out.backward(grad)) imports sympy, about 2 s:
# do it once here, so that the forked workers inherit the import instead of each paying it.
torch.ones(1, requires_grad=True).mul(2).backward(torch.ones(1))


class MLP(nn.Module):
    """A small MLP with a buffer and a parameter the forward pass never uses (its .grad
    stays None), as real models have."""

    def __init__(self, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3))
        self.unused = nn.Linear(2, 2)
        self.register_buffer("scale", torch.full((3,), 1.0 + seed / 100))

    def forward(self, x):
        return self.net(x) * self.scale


def make_mlp(seed):
    """An MLP whose initial weights and buffer depend on `seed`."""
    return MLP(seed)


def mlp_loss(model, x, y):
    """Mean squared error of the model's output, averaged over the batch."""
    return ((model(x) - y) ** 2).mean()


_METERED = ("all_reduce", "reduce_scatter", "reduce_scatter_tensor", "all_gather", "all_gather_into_tensor")


def _sent_elements(name, output, given, world_size, rank):
    """Elements this rank sends in the collective `name`, as the bandwidth-optimal
    algorithms send them: a reduce-scatter sends each other rank's piece once (n - n_r),
    an all-gather sends this rank's piece to the N - 1 others ((N - 1) n_r), and an
    all-reduce does both, on pieces cut by torch.tensor_split. `output` and `given` are the
    call's first two arguments (for all_reduce, the tensor and None)."""
    if name == "all_reduce":
        mine = torch.tensor_split(torch.arange(output.numel()), world_size)[rank].numel()
        return output.numel() - mine + (world_size - 1) * mine
    if name == "reduce_scatter":
        return sum(t.numel() for t in given) - output.numel()
    if name == "reduce_scatter_tensor":
        return given.numel() - output.numel()
    return (world_size - 1) * given.numel()  # all_gather(list, t), all_gather_into_tensor(out, t)


@contextlib.contextmanager
def count_sent_bytes():
    """Inside a worker: counts the bytes this rank sends in dist.all_reduce,
    dist.reduce_scatter(_tensor) and dist.all_gather(_into_tensor) while the block runs,
    charged as _sent_elements says. Yields a dict: "bytes" (the total) and "calls" (a
    list of (name, bytes), one per call, in order)."""
    meter = {"bytes": 0, "calls": []}
    real = {name: getattr(dist, name) for name in _METERED}

    def metered(name):
        signature = inspect.signature(real[name])

        @functools.wraps(real[name])
        def call(*args, **kwargs):
            bound = list(signature.bind(*args, **kwargs).arguments.values())
            output, given = bound[0], (bound[1] if name != "all_reduce" else None)
            size = output.element_size() if torch.is_tensor(output) else given.element_size()
            sent = size * _sent_elements(name, output, given, dist.get_world_size(), dist.get_rank())
            meter["bytes"] += sent
            meter["calls"].append((name, sent))
            return real[name](*args, **kwargs)
        return call

    for name in _METERED:
        setattr(dist, name, metered(name))
    try:
        yield meter
    finally:
        for name, fn in real.items():
            setattr(dist, name, fn)


def example(rank, world_size):
    x = torch.tensor([float(rank + 1)])
    dist.all_reduce(x)  # sum over ranks, in place, on every rank
    return x.item()


print("all_reduce of [1], [2]:", run_distributed(example, 2))

# %% [markdown]
# ## 1. All-reduce from point-to-point: the ring
#
# **All-reduce** leaves on every rank the sum (over ranks) of a tensor every rank holds.
# The naive way — everybody sends its whole tensor to rank 0, rank 0 adds and sends the
# sum back — makes rank 0 send and receive N−1 whole tensors: its link is the bottleneck,
# and it gets worse with N.
#
# The **ring all-reduce** keeps every link equally busy. Cut the tensor (flattened, $n$
# elements) into N chunks $c_0, \dots, c_{N-1}$ (`torch.tensor_split`: sizes differ by at
# most one; some are empty when $n < N$). Rank $r$ sends only to rank $r+1$ and receives
# only from rank $r-1$ (mod N).
#
# 1. **Reduce-scatter**, N−1 steps: at step $s$, rank $r$ sends its partial sum of chunk
#    $(r - s) \bmod N$ and adds what it receives, chunk $(r - s - 1) \bmod N$, into its own
#    copy. After N−1 steps rank $r$ holds the complete sum of chunk $(r + 1) \bmod N$.
# 2. **All-gather**, N−1 steps: at step $s$, rank $r$ sends the complete chunk
#    $(r + 1 - s) \bmod N$ and stores the complete chunk $(r - s) \bmod N$ it receives.
#
# Each rank sends $2(N-1)$ chunks, about $2(N-1)/N \cdot n$ elements: **less than twice the
# tensor, whatever N**, which is why all-reduce time barely grows with the number of GPUs.
# (NCCL uses rings and trees.) $2(N-1)/N \cdot n$ is the least a rank can send when the
# ranks do the additions themselves (Patarasuk and Yuan, 2009), so no algorithm of that
# kind beats the ring on bytes. It is not a bound for **in-network reduction**: switches
# that add (NVIDIA SHARP in NVSwitch and InfiniBand switches) let each GPU send its tensor
# once and receive the sum once, $n$ each way.
#
# A step where every rank sends and then receives would deadlock if sends blocked until
# received; use the non-blocking `dist.isend` (returns a request; `.wait()` on it) and a
# blocking `dist.recv`, or `dist.irecv` for both.
#
# **Exercise.** Write `ring_all_reduce(x)`: the sum over ranks, in place, using only
# `dist.send`/`dist.recv`/`dist.isend`/`dist.irecv` (called as `dist.…`: the grader counts
# what passes through them and forbids the collectives), and return the bytes this rank
# sent, counted by your own code.

# %% answer id=ring
def ring_all_reduce(x):
    """Sum `x` over all ranks in place, as `dist.all_reduce(x)` does, with a ring
    reduce-scatter then all-gather built only on dist.send / dist.recv / dist.isend /
    dist.irecv (no collective: dist.all_reduce, all_gather, reduce_scatter, broadcast,
    reduce are forbidden).

    x: a contiguous tensor of any shape and floating dtype, the same shape on every rank;
    it may have fewer elements than there are ranks. Rank and world size come from
    dist.get_rank() / dist.get_world_size(); world size 1 sends nothing.
    Returns: int, the bytes this rank sent (elements sent times x.element_size()). Over all
    ranks they must add up to exactly 2 (N - 1) x.numel() x.element_size(), and no rank
    may send more than 2 (N - 1) ceil(numel / N) elements.
    """
    ### BEGIN SOLUTION
    rank, n = dist.get_rank(), dist.get_world_size()
    chunks = torch.tensor_split(x.view(-1), n)
    right, left = (rank + 1) % n, (rank - 1) % n
    sent = 0
    for phase in ("reduce-scatter", "all-gather"):
        for step in range(n - 1):
            if phase == "reduce-scatter":
                out, into = (rank - step) % n, (rank - step - 1) % n
            else:
                out, into = (rank + 1 - step) % n, (rank - step) % n
            request = dist.isend(chunks[out].contiguous(), dst=right)
            received = torch.empty_like(chunks[into])
            dist.recv(received, src=left)
            request.wait()
            sent += chunks[out].numel() * x.element_size()
            if phase == "reduce-scatter":
                chunks[into].add_(received)
            else:
                chunks[into].copy_(received)
    return sent
    ### END SOLUTION

# %% test id=test_ring_visible points=1
def _ring_small(rank, world_size):
    x = torch.arange(5, dtype=torch.float32) + 10 * rank
    sent = ring_all_reduce(x)
    return x, sent

_out = run_distributed(_ring_small, 2, timeout=30)
for _r, (_x, _sent) in enumerate(_out):
    # rank 0 holds [0..4], rank 1 [10..14]: the sum is [10, 12, 14, 16, 18] on both.
    assert_close(_x, torch.tensor([10.0, 12, 14, 16, 18]), rtol=0, atol=0, name=f"rank {_r}'s x after ring_all_reduce")
# 2 ranks, 5 float32 elements: chunks of 3 and 2; each rank sends one chunk in each phase.
_total = sum(s for _, s in _out)
assert _total == 2 * (2 - 1) * 5 * 4, (
    f"bytes sent by both ranks: expected 2 (N-1) n x 4 bytes = 40, got {[s for _, s in _out]} (total {_total})"
)

# %% test id=test_ring_hidden points=3
### BEGIN HIDDEN TESTS
_FORBIDDEN = ("all_reduce", "all_gather", "all_gather_into_tensor", "reduce_scatter", "reduce_scatter_tensor",
              "broadcast", "reduce", "all_to_all", "all_to_all_single", "gather", "scatter", "batch_isend_irecv")


def _ring_case(rank, world_size, shape, dtype, seed):
    g = torch.Generator().manual_seed(seed + rank)
    integers = torch.randint(-1000, 1000, shape, generator=g).to(dtype)  # exact sums in any order
    floats = (100 * torch.randn(shape, generator=g)).to(dtype)
    expected = [t.clone() for t in (integers, floats)]
    for t in expected:
        dist.all_reduce(t)
    counted = {"bytes": 0}
    real = {name: getattr(dist, name) for name in ("send", "isend") + _FORBIDDEN}

    def counting(name):
        @functools.wraps(real[name])
        def send(tensor, *args, **kwargs):
            counted["bytes"] += tensor.numel() * tensor.element_size()
            return real[name](tensor, *args, **kwargs)
        return send

    def forbidden(name):
        def call(*args, **kwargs):
            raise AssertionError(f"ring_all_reduce must not call dist.{name}: build it from send/recv")
        return call

    for name in ("send", "isend"):
        setattr(dist, name, counting(name))
    for name in _FORBIDDEN:
        setattr(dist, name, forbidden(name))
    try:
        got, sent = [], []
        for t in (integers, floats):
            counted["bytes"] = 0
            returned = ring_all_reduce(t)
            got.append(t)
            sent.append((returned, counted["bytes"]))
    finally:
        for name, fn in real.items():
            setattr(dist, name, fn)
    return got, expected, sent


for _n_ranks, _shape, _dtype in [(2, (10,), torch.float32), (4, (1001,), torch.float32), (3, (7,), torch.float64),
                                 (4, (3,), torch.float32), (4, (6, 5), torch.float32), (1, (4,), torch.float32)]:
    _out = run_distributed(_ring_case, _n_ranks, _shape, _dtype, 7, timeout=30)
    _numel = math.prod(_shape)
    _item = torch.empty(0, dtype=_dtype).element_size()
    for _r, (_got, _expected, _sent) in enumerate(_out):
        assert_close(_got[0], _expected[0], rtol=0, atol=0,
                     name=f"ring_all_reduce of integer values, rank {_r} of {_n_ranks}, shape {_shape}")
        # Partial sums of values ~100 in another order than gloo's: float32 rounding only.
        assert_close(_got[1], _expected[1], rtol=1e-5, atol=1e-3,
                     name=f"ring_all_reduce of random values, rank {_r} of {_n_ranks}, shape {_shape}, {_dtype}")
        for _returned, _counted in _sent:
            assert _returned == _counted, (
                f"rank {_r} of {_n_ranks}, shape {_shape}, {_dtype}: ring_all_reduce returned {_returned} bytes "
                f"sent, but {_counted} bytes went through dist.send/dist.isend"
            )
            _cap = 2 * (_n_ranks - 1) * -(-_numel // _n_ranks) * _item
            assert _counted <= _cap, (
                f"rank {_r} of {_n_ranks} sent {_counted} bytes for {_numel} elements of {_item} bytes; a ring "
                f"sends at most 2 (N-1) ceil(n/N) elements = {_cap} bytes per rank"
            )
    for _i in range(2):
        _total = sum(s[_i][1] for _, _, s in _out)
        assert _total == 2 * (_n_ranks - 1) * _numel * _item, (
            f"{_n_ranks} ranks, {_numel} elements of {_item} bytes: all ranks together must send exactly "
            f"2 (N-1) n = {2 * (_n_ranks - 1) * _numel * _item} bytes, sent {_total}"
        )
### END HIDDEN TESTS
assert True

# %% [markdown]
# ## 2. Data parallelism by hand
#
# Data parallelism (DDP) keeps a full copy of the model on every rank and gives each rank
# a different slice of the batch. Two collectives make the copies stay identical:
#
# 1. before training, **broadcast** rank 0's parameters (and buffers) to every rank, since
#    each rank initialised its own copy at random;
# 2. after every `backward`, **all-reduce** each gradient and divide by N. For a loss that
#    is a mean over the batch and equal shards of $b$ examples,
#    $\nabla \frac{1}{Nb}\sum_{i} \ell_i = \frac{1}{N}\sum_{r} \nabla \frac{1}{b}\sum_{i \in r} \ell_i$:
#    the averaged gradient *is* the gradient of the whole batch, so every rank takes the same
#    optimizer step as one process training on the concatenated batch would.
#
# `torch.nn.parallel.DistributedDataParallel` does the same, plus one optimisation: it
# groups gradients into ~25 MB **buckets** and starts each bucket's all-reduce from a
# gradient hook as soon as the bucket is full, so that communication overlaps the rest of
# the backward pass.
#
# **Exercise.** Write `broadcast_parameters(model)` and `average_gradients(model)` (2b adds
# the buckets).

# %% answer id=ddp
def broadcast_parameters(model):
    """Overwrite, in place, every parameter and every buffer of `model` with rank 0's
    values (dist.broadcast from src=0), on every rank. Parameters stay the same objects
    (optimizers hold references to them). Returns nothing."""
    ### BEGIN SOLUTION
    with torch.no_grad():
        for tensor in list(model.parameters()) + list(model.buffers()):
            dist.broadcast(tensor, src=0)
    ### END SOLUTION


def average_gradients(model):
    """After loss.backward(): replace, in place, each parameter's .grad by its mean over all
    ranks (the sum from dist.all_reduce divided by the world size). Parameters whose .grad
    is None (unused in the forward pass, the same on every rank) are skipped and stay
    None. Returns nothing."""
    ### BEGIN SOLUTION
    world_size = dist.get_world_size()
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(world_size)
    ### END SOLUTION

# %% [markdown]
# The test below trains the MLP for a few steps on N ranks, each with its own quarter (or
# half) of a fixed batch, and compares every rank's parameters with a single process
# training on the whole batch.

# %% test id=test_ddp_visible points=1
def _ddp_small(rank, world_size, x, y, steps):
    model = make_mlp(seed=rank)  # a different initialisation on every rank
    broadcast_parameters(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    xs, ys = x.chunk(world_size), y.chunk(world_size)
    for _ in range(steps):
        opt.zero_grad()
        mlp_loss(model, xs[rank], ys[rank]).backward()
        average_gradients(model)
        opt.step()
    return {k: v.detach() for k, v in model.state_dict().items()}

torch.manual_seed(1)
_x, _y = torch.randn(8, 6), torch.randn(8, 3)
_single = make_mlp(seed=0)
_opt = torch.optim.SGD(_single.parameters(), lr=0.1)
for _ in range(3):
    _opt.zero_grad()
    mlp_loss(_single, _x, _y).backward()
    _opt.step()
_states = run_distributed(_ddp_small, 2, _x, _y, 3, timeout=60)
for _r, _state in enumerate(_states):
    for _k, _v in _single.state_dict().items():
        # Same arithmetic up to the order of float32 sums (a mean of two half-batch means).
        assert_close(_state[_k], _v, rtol=1e-5, atol=1e-6,
                     name=f"rank {_r}'s {_k} after 3 DDP steps vs one process on the whole batch")
_moved = (_states[0]["net.0.weight"] - make_mlp(seed=0).net[0].weight).abs().max().item()
assert _moved > 1e-3, f"3 steps with lr 0.1 must move the weights; they moved by at most {_moved:.2e}"

# %% test id=test_ddp_hidden points=3
### BEGIN HIDDEN TESTS
def _train(model, opt, x, y, steps, rank, world_size, sync):
    xs, ys = x.chunk(world_size), y.chunk(world_size)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        mlp_loss(model, xs[rank], ys[rank]).backward()
        if sync:
            before = [p.grad for p in model.parameters()]
            average_gradients(model)
            # In place: code that kept a reference to a .grad (a bucket view, an accumulation
            # buffer) must see the mean, not the sum left behind by a rebinding.
            rebound = [i for i, (p, g) in enumerate(zip(model.parameters(), before)) if p.grad is not g]
            assert not rebound, (
                f"average_gradients must change each .grad in place (all_reduce on p.grad, then "
                f"p.grad.div_), not bind a new tensor to p.grad: parameters {rebound} got new .grad tensors"
            )
        opt.step()


def _optimizer(name, params):
    if name == "sgd":
        return torch.optim.SGD(params, lr=0.05, momentum=0.9)
    return torch.optim.AdamW(params, lr=0.01, weight_decay=0.1)


def _ddp_case(rank, world_size, x, y, steps, opt_name):
    hand = make_mlp(seed=10 + rank)
    ids = [id(p) for p in hand.parameters()]
    broadcast_parameters(hand)
    assert [id(p) for p in hand.parameters()] == ids, "broadcast_parameters must update the parameters in place"
    after_broadcast = {k: v.detach().clone() for k, v in hand.state_dict().items()}
    _train(hand, _optimizer(opt_name, hand.parameters()), x, y, steps, rank, world_size, sync=True)
    unused_grad = hand.unused.weight.grad
    # The library's DDP: it broadcasts rank 0's initial state itself, and averages gradients
    # in buckets from autograd hooks.
    ref = nn.parallel.DistributedDataParallel(make_mlp(seed=10 + rank), find_unused_parameters=True)
    _train(ref, _optimizer(opt_name, ref.parameters()), x, y, steps, rank, world_size, sync=False)
    return after_broadcast, dict(hand.state_dict()), ref.module.state_dict(), unused_grad


for _n_ranks, _opt_name, _steps in [(2, "sgd", 4), (4, "adamw", 4)]:
    torch.manual_seed(20 + _n_ranks)
    _x, _y = 3 * torch.randn(8 * _n_ranks, 6), torch.randn(8 * _n_ranks, 3)
    _single = make_mlp(seed=10)  # rank 0's initialisation
    _train(_single, _optimizer(_opt_name, _single.parameters()), _x, _y, _steps, 0, 1, sync=False)
    _out = run_distributed(_ddp_case, _n_ranks, _x, _y, _steps, _opt_name, timeout=90)
    for _r, (_init, _hand, _ref, _unused) in enumerate(_out):
        for _k, _v in make_mlp(seed=10).state_dict().items():
            assert torch.equal(_init[_k], _v), (
                f"{_n_ranks} ranks: after broadcast_parameters, rank {_r}'s {_k} must equal rank 0's exactly"
            )
        assert _unused is None, f"rank {_r}: a parameter unused in forward must keep .grad None, got {_unused}"
        for _k, _v in _single.state_dict().items():
            # float32 sums in another order, amplified a little by AdamW's division by sqrt(v).
            assert_close(_hand[_k], _v, rtol=1e-4, atol=1e-5,
                         name=f"{_n_ranks} ranks, {_opt_name}, {_steps} steps: rank {_r}'s {_k} vs one process")
            assert_close(_hand[_k], _ref[_k], rtol=1e-4, atol=1e-5,
                         name=f"{_n_ranks} ranks, {_opt_name}: rank {_r}'s {_k} vs torch DistributedDataParallel")
### END HIDDEN TESTS
assert True

# %% [markdown]
# ### 2b. Buckets and overlap
#
# `average_gradients` waits for the whole backward pass, then runs one all-reduce per
# parameter: the network idles while the cores compute, then the cores idle while the
# network works, and many tiny messages each pay a fixed latency. `DistributedDataParallel`
# fixes both. It groups the parameters, in the **reverse** order of `model.parameters()`
# (roughly the order in which backward produces their gradients), into **buckets** of a
# few MB, and registers an autograd hook on every parameter; when the last gradient of a
# bucket has been accumulated, it flattens the bucket into one buffer and starts an
# **asynchronous** all-reduce of it (`dist.all_reduce(buffer, async_op=True)` returns at
# once, with a handle to `.wait()` on), while backward goes on with the earlier layers.
# After backward, it waits for every bucket and copies the averages back into `.grad`.
#
# `p.register_post_accumulate_grad_hook(hook)` calls `hook(p)` right after `p.grad` has
# been accumulated during backward.
#
# **The bucket rule here is simpler than DDP's**, and the tests grade this one. Here a
# bucket is closed *before* a parameter that would take it over `bucket_bytes`, so a
# bucket never exceeds the cap unless it holds one parameter larger than the cap. DDP
# (`torch.distributed._compute_bucket_assignment_by_size`) adds the parameter first and
# closes the bucket once it has *reached* the cap, so its buckets overshoot by up to one
# parameter; it also makes the first bucket small (1 MB by default, so that communication
# starts early), never mixes dtypes or devices in a bucket, and after the first step
# rebuilds its buckets in the order the gradients really arrived. For the visible test's
# model with a 4 KiB cap (parameters of 3, 96, 32, 1024, 32 and 192 float32 elements, in
# reverse order) this exercise's rule gives `[[3, 96, 32], [1024], [32, 192]]`, DDP's
# `[[3, 96, 32, 1024], [32, 192]]`. Both overlap communication with backward; only the grouping differs.
#
# **Exercise.** Write `BucketedGradSync`.

# %% answer id=buckets
class BucketedGradSync:
    """Averages the gradients of `model` across ranks during backward, in buckets, like
    DistributedDataParallel. Every parameter that requires grad must get a gradient in
    every backward pass (no unused parameters).

    Buckets (self.buckets: list of lists of Parameters): take the parameters that require
    grad in the reverse order of model.parameters(); append each to the current bucket,
    but first close the current bucket if it is not empty and the parameter would take it
    over `bucket_bytes` bytes (so a parameter larger than bucket_bytes gets a bucket of its
    own). This is NOT DDP's own rule, which closes a bucket after the parameter that reaches
    the cap (see the text above): the tests expect this one. One hook per parameter
    (register_post_accumulate_grad_hook): when the last gradient of a bucket arrives, start
    ONE dist.all_reduce(flat, async_op=True) of the bucket's gradients flattened into one
    buffer (of the bucket's total number of elements), during backward, without waiting.
    finish(): call after loss.backward() and before optimizer.step(); waits for every
    bucket, and replaces each .grad in place by its mean over ranks; ready for the next
    backward pass. One all_reduce per bucket per step, nothing else.
    """

    def __init__(self, model, bucket_bytes=2**20):
        ### BEGIN SOLUTION
        self.world_size = dist.get_world_size()
        params = [p for p in model.parameters() if p.requires_grad]
        self.buckets, current, size = [], [], 0
        for p in reversed(params):
            nbytes = p.numel() * p.element_size()
            if current and size + nbytes > bucket_bytes:
                self.buckets.append(current)
                current, size = [], 0
            current.append(p)
            size += nbytes
        if current:
            self.buckets.append(current)
        bucket_of = {p: i for i, bucket in enumerate(self.buckets) for p in bucket}
        self.arrived = [0] * len(self.buckets)
        self.pending = []

        def grad_ready(p):
            i = bucket_of[p]
            self.arrived[i] += 1
            if self.arrived[i] == len(self.buckets[i]):
                flat = torch.cat([q.grad.reshape(-1) for q in self.buckets[i]])
                self.pending.append((i, flat, dist.all_reduce(flat, async_op=True)))

        for p in params:
            p.register_post_accumulate_grad_hook(grad_ready)
        ### END SOLUTION

    def finish(self):
        ### BEGIN SOLUTION
        for i, flat, work in self.pending:
            work.wait()
            flat.div_(self.world_size)
            offset = 0
            for q in self.buckets[i]:
                q.grad.copy_(flat[offset:offset + q.numel()].view_as(q))
                offset += q.numel()
        self.pending = []
        self.arrived = [0] * len(self.buckets)
        ### END SOLUTION

# %% test id=test_buckets_visible points=1
def _deep_mlp(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 3))


def _buckets_small(rank, world_size, x, y):
    model = _deep_mlp(0)
    sync = BucketedGradSync(model, bucket_bytes=4 * 32 * 32)  # 4 KiB: the 32x32 weight fills a bucket
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    xs, ys = x.chunk(world_size), y.chunk(world_size)
    for _ in range(2):
        opt.zero_grad()
        mlp_loss(model, xs[rank], ys[rank]).backward()
        sync.finish()
        opt.step()
    return [[tuple(p.shape) for p in b] for b in sync.buckets], [p.detach() for p in model.parameters()]

torch.manual_seed(2)
_x, _y = torch.randn(8, 6), torch.randn(8, 3)
_single = _deep_mlp(0)
_opt = torch.optim.SGD(_single.parameters(), lr=0.1)
for _ in range(2):
    _opt.zero_grad()
    mlp_loss(_single, _x, _y).backward()
    _opt.step()
_out = run_distributed(_buckets_small, 2, _x, _y, timeout=60)
for _r, (_buckets, _params) in enumerate(_out):
    for _i, (_g, _p) in enumerate(zip(_params, _single.parameters())):
        assert_close(_g, _p.detach(), rtol=1e-5, atol=1e-6, name=f"rank {_r}'s parameter {_i} after 2 bucketed steps")
# Reverse order: bias (3), weight (3, 32), bias (32) fit in 4 KiB together; the 32x32 weight
# alone; then bias (32) and weight (32, 6) together.
_expected = [[(3,), (3, 32), (32,)], [(32, 32)], [(32,), (32, 6)]]
assert _out[0][0] == _expected, f"buckets (parameter shapes): expected {_expected}, got {_out[0][0]}"

# %% test id=test_buckets_hidden points=2
### BEGIN HIDDEN TESTS
def _buckets_case(rank, world_size, x, y, bucket_bytes, steps, opt_name):
    model = _deep_mlp(5)
    params = list(model.parameters())
    sync = BucketedGradSync(model, bucket_bytes=bucket_bytes)
    calls = []
    real_all_reduce = dist.all_reduce

    @functools.wraps(real_all_reduce)
    def spy(tensor, *args, **kwargs):
        # How many gradients backward has not produced yet when this all-reduce starts.
        calls.append((tensor.numel(), sum(p.grad is None for p in params), kwargs.get("async_op", False)))
        return real_all_reduce(tensor, *args, **kwargs)

    opt = _bucket_optimizer(opt_name, params)
    xs, ys = x.chunk(world_size), y.chunk(world_size)
    dist.all_reduce = spy
    try:
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            mlp_loss(model, xs[rank], ys[rank]).backward()
            sync.finish()
            opt.step()
    finally:
        dist.all_reduce = real_all_reduce
    ref = nn.parallel.DistributedDataParallel(_deep_mlp(5), bucket_cap_mb=bucket_bytes / 2**20)
    opt_ref = _bucket_optimizer(opt_name, ref.parameters())
    for _ in range(steps):
        opt_ref.zero_grad(set_to_none=True)
        mlp_loss(ref, xs[rank], ys[rank]).backward()
        opt_ref.step()
    return ([[p.numel() for p in b] for b in sync.buckets], calls, [p.detach() for p in params],
            [p.detach() for p in ref.module.parameters()])


def _bucket_optimizer(name, params):
    # SGD sees a gradient N times too large; AdamW hardly would (it divides by sqrt(v)).
    if name == "sgd":
        return torch.optim.SGD(params, lr=0.05, momentum=0.9)
    return torch.optim.AdamW(params, lr=0.01)


def _expected_buckets(model, bucket_bytes):
    buckets, current, size = [], [], 0
    for p in reversed(list(model.parameters())):
        if current and size + 4 * p.numel() > bucket_bytes:
            buckets.append(current)
            current, size = [], 0
        current.append(p.numel())
        size += 4 * p.numel()
    return buckets + [current]


# Bucket sizes chosen so that a bucket fills exactly: 524 = 12 + 384 + 128 bytes (the last
# layer's bias and weight, the previous bias), 896 = 128 + 768 (the first layer).
for _n_ranks, _bucket_bytes, _opt_name in [(2, 524, "adamw"), (4, 896, "sgd"), (2, 10**9, "sgd")]:
    torch.manual_seed(30 + _n_ranks)
    _x, _y = torch.randn(4 * _n_ranks, 6), torch.randn(4 * _n_ranks, 3)
    _single = _deep_mlp(5)
    _opt = _bucket_optimizer(_opt_name, _single.parameters())
    for _ in range(3):
        _opt.zero_grad()
        mlp_loss(_single, _x, _y).backward()
        _opt.step()
    _expected = _expected_buckets(_single, _bucket_bytes)
    _out = run_distributed(_buckets_case, _n_ranks, _x, _y, _bucket_bytes, 3, _opt_name, timeout=90)
    for _r, (_buckets, _calls, _params, _ref) in enumerate(_out):
        assert _buckets == _expected, (
            f"bucket_bytes={_bucket_bytes}: buckets (numel of each parameter) expected {_expected}, got {_buckets}")
        _per_step = [c[0] for c in _calls]
        assert _per_step == [sum(b) for b in _expected] * 3, (
            f"bucket_bytes={_bucket_bytes}, 3 steps: expected one dist.all_reduce per bucket per step, of "
            f"{[sum(b) for b in _expected]} elements, got all-reduces of {_per_step}")
        assert all(c[2] for c in _calls), f"rank {_r}: every bucket's all_reduce must be async_op=True, got {_calls}"
        if len(_expected) > 1:
            assert _calls[0][1] > 0, (
                f"bucket_bytes={_bucket_bytes}: the first bucket's all-reduce must start during backward, while "
                f"some gradients are still None; it started when {_calls[0][1]} were")
        for _i, (_g, _p, _q) in enumerate(zip(_params, _single.parameters(), _ref)):
            # float32 sums in another order (AdamW's division by sqrt(v) amplifies them a little).
            assert_close(_g, _p.detach(), rtol=1e-4, atol=1e-5,
                         name=f"{_n_ranks} ranks, {_opt_name}, buckets of {_bucket_bytes} B: rank {_r}'s "
                              f"parameter {_i} vs one process")
            assert_close(_g, _q, rtol=1e-4, atol=1e-5,
                         name=f"{_n_ranks} ranks: rank {_r}'s parameter {_i} vs torch DistributedDataParallel")


def _default_buckets(rank, world_size):
    model = nn.Sequential(nn.Linear(300, 600), nn.Linear(600, 300))  # 723.6 KB + 722.4 KB of float32
    return [[p.numel() for p in b] for b in BucketedGradSync(model).buckets]


# The default bucket_bytes, 2**20: the second layer and the first bias fit, the first weight does not.
_default = run_distributed(_default_buckets, 1, timeout=60)[0]
assert _default == [[300, 180000, 600], [180000]], (
    f"BucketedGradSync(model) with the default bucket_bytes=2**20: expected buckets of "
    f"[[300, 180000, 600], [180000]] elements, got {_default}")
### END HIDDEN TESTS
assert True

# %% [markdown]
# ## 3. ZeRO-1 and -2: shard the optimizer state, communicate like DDP
#
# With AdamW every parameter carries two more float32 tensors, the moments $m$ and $v$.
# In DDP every rank stores all of them, N times the same numbers. **ZeRO-1** (Rajbhandari
# et al., 2020) gives each rank the optimizer state of 1/N of the parameters only: rank $r$
# runs the AdamW update only on *its shard*, a contiguous slice of the flattened,
# concatenated parameters, with its own $m$, $v$ for that slice. So rank $r$ needs the
# averaged gradient of its shard only, not of everything. An all-reduce *is* a
# reduce-scatter followed by an all-gather (exercise 1); ZeRO stops the all-reduce halfway
# and moves the all-gather after the update:
#
# 1. **reduce-scatter** the gradients (each rank's own, from its own slice of the batch):
#    rank $r$ receives the sum over ranks of its shard of the gradient; divided by N, the mean;
# 2. **AdamW on the shard**, with the shard's $m$ and $v$;
# 3. **all-gather** the updated shards, so that every rank holds all the new parameters.
#
# AdamW, for the elements of the shard, at step $t = 1, 2, \dots$ (as `torch.optim.AdamW`):
#
# $$ p \leftarrow p\,(1 - \eta\lambda), \quad m \leftarrow \beta_1 m + (1-\beta_1) g, \quad
#    v \leftarrow \beta_2 v + (1-\beta_2) g^2, \quad
#    p \leftarrow p - \eta\,\frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t)} + \epsilon}. $$
#
# The optimizer state per rank drops from $8P$ to $8P/N$ bytes, and the traffic is **exactly
# DDP's**: $(N-1)/N \cdot P$ elements per rank in step 1 and as many in step 3, together
# $2(N-1)/N \cdot P$, the bytes of DDP's all-reduce of the gradients. The obvious
# alternative, all-reducing the gradients as DDP does and then all-gathering the updated
# shards, sends $3(N-1)/N \cdot P$: 1.5 times DDP's bytes (the cell after the tests measures
# both). **ZeRO-2** communicates the same way and saves memory as well: it reduce-scatters
# in buckets during backward (as in 2b) and frees each bucket's full gradients once its
# reduce-scatter is done, so a rank keeps only its shard of the gradients (section 6 counts
# the bytes). Here the reduce-scatter runs once, after backward.
#
# On `gloo` in torch 2.13 both collectives run: `dist.reduce_scatter_tensor(out, inp)` (`inp`
# of N·k elements, `out` of k; rank r gets the sum of the r-th k elements) and
# `dist.all_gather_into_tensor(out, inp)` (the reverse); `dist.reduce_scatter(out, pieces)`
# accepts pieces of unequal sizes, but `dist.all_gather` refuses them (`RuntimeError:
# ProcessGroupGloo::allgather: invalid tensor size at index 1 (expected (4), got (3))`), and
# NCCL wants equal pieces for both. When N does not divide P, pad the *communication
# buffers* (never the state): each rank's piece to $\lceil P/N \rceil$ elements. That costs at
# most one padding element per piece; when N divides P the bytes are exactly DDP's.
#
# `count_sent_bytes()` (setup cell) counts, inside a worker, the bytes a rank sends in
# collectives, charging each as the bandwidth-optimal algorithm sends it: a reduce-scatter,
# the pieces of the other ranks ($n - n_r$ elements); an all-gather, the rank's own piece to
# each of the N−1 others ($(N-1)\,n_r$); an all-reduce, both. The tests use it.
#
# **Exercise.** Write `ShardedAdamW`.

# %% answer id=zero
class ShardedAdamW:
    """AdamW (same update and defaults as torch.optim.AdamW) whose state is sharded across
    the ranks of the process group (ZeRO-1), with ZeRO's communication: one reduce-scatter
    of the gradients and one all-gather of the parameters per step.

    params: list of float32 Parameters, the same shapes (and values) on every rank. Flatten
    and concatenate them in order (P elements in all) and cut that into world-size shards
    with torch.tensor_split: this rank updates only its shard [start, end).
    self.state: dict {"exp_avg": tensor, "exp_avg_sq": tensor} of float32 tensors of
    shape (end - start,): the moments of this rank's shard, the only tensors of optimizer
    state this rank keeps (graded by their bytes: 8 (end - start), never 8 P; a shard
    may be empty when P < world size).
    step(): call after loss.backward() on this rank's own data: every parameter has a .grad,
    which differs between ranks (do NOT average them first). Reduce-scatter the flattened
    gradients so this rank gets the sum over ranks of its shard, divide by the world size
    (the mean), update the shard with AdamW, then all-gather the shards so every rank's
    parameters (updated in place, same objects) equal what torch.optim.AdamW gives on the
    mean gradient. Collectives: only dist.reduce_scatter_tensor or dist.reduce_scatter, and
    dist.all_gather_into_tensor or dist.all_gather (no all_reduce). Bytes this rank sends
    per step, counted as count_sent_bytes counts them: exactly those of dist.all_reduce of
    the P gradient elements (DDP's) when the world size N divides P, and at most
    2 (N - 1) ceil(P / N) elements otherwise (pad each piece to ceil(P / N)).
    zero_grad(): sets every .grad to None.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        ### BEGIN SOLUTION
        self.params = list(params)
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        total = sum(p.numel() for p in self.params)
        self.sizes = [len(s) for s in torch.tensor_split(torch.arange(total), self.world_size)]
        self.start = sum(self.sizes[: self.rank])
        self.end = self.start + self.sizes[self.rank]
        self.padded = max(self.sizes)
        self.t = 0
        self.state = {"exp_avg": torch.zeros(self.end - self.start), "exp_avg_sq": torch.zeros(self.end - self.start)}
        ### END SOLUTION

    def zero_grad(self):
        ### BEGIN SOLUTION
        for p in self.params:
            p.grad = None
        ### END SOLUTION

    def step(self):
        ### BEGIN SOLUTION
        with torch.no_grad():
            n, k = self.world_size, self.padded
            # Both collectives want N pieces of one size: piece r padded to k = ceil(P / N).
            pieces = torch.zeros(n, k)
            flat_g = torch.cat([p.grad.reshape(-1) for p in self.params])
            for r, piece in enumerate(torch.tensor_split(flat_g, n)):
                pieces[r, : piece.numel()] = piece
            summed = torch.empty(k)
            dist.reduce_scatter_tensor(summed, pieces.view(-1))
            g = summed[: self.end - self.start] / n
            flat_p = torch.cat([p.reshape(-1) for p in self.params])
            p = flat_p[self.start:self.end]
            m, v = self.state["exp_avg"], self.state["exp_avg_sq"]
            beta1, beta2 = self.betas
            self.t += 1
            p.mul_(1 - self.lr * self.weight_decay)
            m.mul_(beta1).add_(g, alpha=1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            m_hat = m / (1 - beta1 ** self.t)
            v_hat = v / (1 - beta2 ** self.t)
            p.sub_(self.lr * m_hat / (v_hat.sqrt() + self.eps))
            mine = torch.zeros(k)
            mine[: self.end - self.start] = p
            gathered = torch.empty(n, k)
            dist.all_gather_into_tensor(gathered.view(-1), mine)
            new = torch.cat([gathered[r, :size] for r, size in enumerate(self.sizes)])
            offset = 0
            for param in self.params:
                param.copy_(new[offset:offset + param.numel()].view_as(param))
                offset += param.numel()
        ### END SOLUTION

# %% test id=test_zero_visible points=1
def _zero_small(rank, world_size):
    torch.manual_seed(0)
    params = [nn.Parameter(torch.randn(4, 2)), nn.Parameter(torch.randn(2))]  # P = 10
    opt = ShardedAdamW(params, lr=0.1)
    for step in range(2):
        torch.manual_seed(100 + 10 * step + rank)  # each rank's own gradients
        for p in params:
            p.grad = torch.randn_like(p)
        with count_sent_bytes() as zero:
            opt.step()
        with count_sent_bytes() as ddp:  # what DDP sends: one all-reduce of the P gradients
            dist.all_reduce(torch.cat([p.grad.reshape(-1) for p in params]))
    state_bytes = sum(t.numel() * t.element_size() for t in opt.state.values() if torch.is_tensor(t))
    return [p.detach() for p in params], state_bytes, zero["bytes"], ddp["bytes"]

torch.manual_seed(0)
_params = [nn.Parameter(torch.randn(4, 2)), nn.Parameter(torch.randn(2))]
_opt = torch.optim.AdamW(_params, lr=0.1)
for _step in range(2):
    _grads = []
    for _rank in range(2):
        torch.manual_seed(100 + 10 * _step + _rank)
        _grads.append([torch.randn_like(_p) for _p in _params])
    for _p, _g0, _g1 in zip(_params, *_grads):
        _p.grad = (_g0 + _g1) / 2  # the mean over the two ranks
    _opt.step()
_out = run_distributed(_zero_small, 2, timeout=60)
for _r, (_got, _bytes, _zero_sent, _ddp_sent) in enumerate(_out):
    for _i, (_g, _p) in enumerate(zip(_got, _params)):
        # The same float32 operations as torch's AdamW, maybe in another order.
        assert_close(_g, _p.detach(), rtol=1e-5, atol=1e-6,
                     name=f"rank {_r}'s parameter {_i} after 2 steps vs AdamW on the mean gradient")
    # 10 float32 elements on 2 ranks: DDP's all-reduce sends 2 (N-1)/N x 10 x 4 = 40 bytes per rank.
    assert _zero_sent == _ddp_sent == 40, (
        f"rank {_r}: bytes sent in one step: ShardedAdamW {_zero_sent}, DDP's all-reduce {_ddp_sent}; "
        f"reduce-scatter + all-gather must send exactly DDP's 40"
    )
# 10 parameters on 2 ranks: shards of 5 and 5 elements, two float32 moments each.
assert [b for _, b, _, _ in _out] == [2 * 4 * 5, 2 * 4 * 5], (
    f"optimizer-state bytes per rank: expected [40, 40] (exp_avg and exp_avg_sq of 5 elements each), "
    f"got {[b for _, b, _, _ in _out]}"
)

# %% test id=test_zero_hidden points=3
### BEGIN HIDDEN TESTS
_ZERO_FORBIDDEN = ("broadcast", "reduce", "all_to_all", "all_to_all_single", "gather", "scatter", "send", "recv",
                   "isend", "irecv", "batch_isend_irecv")


def _zero_params(seed, extra=0):
    torch.manual_seed(seed)
    params = [nn.Parameter(torch.randn(7, 5)), nn.Parameter(torch.randn(5)), nn.Parameter(torch.randn(4, 7)),
              nn.Parameter(torch.randn(1))]  # P = 35 + 5 + 28 + 1 = 69
    return params + ([nn.Parameter(torch.randn(extra))] if extra else [])


def _zero_grads(params, step, scale, rank):
    torch.manual_seed(1000 + 10 * step + rank)
    return [scale * torch.randn_like(p) * 10 ** (i - 2) for i, p in enumerate(params)]  # 0.01 to 10, times scale


def _zero_case(rank, world_size, kwargs, steps, make, scale):
    params = make()
    ids = [id(p) for p in params]
    opt = ShardedAdamW(params, **kwargs)
    real = {name: getattr(dist, name) for name in _ZERO_FORBIDDEN}

    def forbidden(name):
        def call(*args, **kwargs):
            raise AssertionError(f"ShardedAdamW.step must not call dist.{name}: one reduce-scatter, one all-gather")
        return call

    sent = []
    for step in range(steps):
        opt.zero_grad()
        assert all(p.grad is None for p in params), "zero_grad() must set every .grad to None"
        for p, g in zip(params, _zero_grads(params, step, scale, rank)):
            p.grad = g
        for name in _ZERO_FORBIDDEN:
            setattr(dist, name, forbidden(name))
        try:
            with count_sent_bytes() as meter:
                opt.step()
        finally:
            for name, fn in real.items():
                setattr(dist, name, fn)
        sent.append((meter["bytes"], [name for name, _ in meter["calls"]]))
    assert [id(p) for p in params] == ids
    state = [t for t in opt.state.values() if torch.is_tensor(t)]
    return [p.detach() for p in params], sum(t.numel() * t.element_size() for t in state), [t.dtype for t in state], sent


# Gradients of 1e-10 to 1e-7 make eps (default 1e-8) matter as much as sqrt(v). P = 69 divides by 3
# (exactly DDP's bytes), 72 by 4; the others need padding.
for _n_ranks, _kwargs, _make, _scale in [(2, {}, functools.partial(_zero_params, 3), 1.0),
                                         (4, {"lr": 0.05, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.3},
                                          functools.partial(_zero_params, 4), 1.0),
                                         (3, {"lr": 0.02}, functools.partial(_zero_params, 5), 1.0),
                                         (4, {"lr": 0.03}, functools.partial(_zero_params, 7, 3), 1.0),
                                         (2, {}, functools.partial(_zero_params, 6), 1e-8),
                                         (4, {"lr": 0.1}, lambda: [nn.Parameter(torch.tensor([1.0, -2.0]))], 1.0)]:
    _params = _make()
    _total = sum(p.numel() for p in _params)
    _opt = torch.optim.AdamW(_params, **_kwargs)
    for _step in range(5):
        _opt.zero_grad()
        _per_rank = [_zero_grads(_params, _step, _scale, _rank) for _rank in range(_n_ranks)]
        for _i, _p in enumerate(_params):
            _p.grad = sum(g[_i] for g in _per_rank) / _n_ranks
        _opt.step()
    _out = run_distributed(_zero_case, _n_ranks, _kwargs, 5, _make, _scale, timeout=60)
    _case = f"{_n_ranks} ranks, P = {_total}, AdamW{_kwargs}, gradients x {_scale}"
    _chunks = [len(c) for c in torch.tensor_split(torch.arange(_total), _n_ranks)]
    for _r, (_got, _bytes, _dtypes, _sent) in enumerate(_out):
        for _i, (_g, _p) in enumerate(zip(_got, _params)):
            # Sums over ranks in another order than the test's, then the same float32 AdamW.
            assert_close(_g, _p.detach(), rtol=1e-5, atol=1e-6,
                         name=f"{_case}: rank {_r}'s parameter {_i} after 5 steps vs AdamW on the mean gradient")
        assert all(d == torch.float32 for d in _dtypes), f"rank {_r}: optimizer state must be float32, got {_dtypes}"
        _cap = 8 * -(-_total // _n_ranks)
        assert _bytes <= _cap, (
            f"{_case}: rank {_r} keeps {_bytes} bytes of optimizer state; its shard has at most ceil(P/N) "
            f"elements, so at most {_cap} bytes (two float32 moments)"
        )
        _ddp = 4 * (_total - _chunks[_r] + (_n_ranks - 1) * _chunks[_r])
        _bound = 4 * 2 * (_n_ranks - 1) * -(-_total // _n_ranks)
        for _step, (_b, _calls) in enumerate(_sent):
            assert "all_reduce" not in _calls, (
                f"{_case}: rank {_r}, step {_step}: collectives {_calls}; ZeRO replaces DDP's all-reduce by a "
                f"reduce-scatter (and an all-gather after the update), so that it sends no more than DDP")
            if _total % _n_ranks == 0:
                assert _b == _ddp, (
                    f"{_case}: rank {_r} sent {_b} bytes in step {_step} ({_calls}); N divides P, so a "
                    f"reduce-scatter and an all-gather send exactly DDP's all-reduce, {_ddp} bytes")
            else:
                assert _b <= _bound, (
                    f"{_case}: rank {_r} sent {_b} bytes in step {_step} ({_calls}); with pieces padded to "
                    f"ceil(P/N) it sends at most 2 (N-1) ceil(P/N) x 4 = {_bound} bytes (DDP: {_ddp})")
    _sum = sum(b for _, b, _, _ in _out)
    assert _sum == 8 * _total, (
        f"{_case}: the ranks' optimizer states must add up to exactly 8 P = {8 * _total} "
        f"bytes (every element's two moments kept once, nothing padded), got {[b for _, b, _, _ in _out]}"
    )
### END HIDDEN TESTS
assert True

# %% [markdown]
# ZeRO's bytes against DDP's, measured: one step on 4 ranks of a model of $P$ = 4096 parameters.
# "all-reduce + all-gather" is the obvious way (DDP's averaging, then the all-gather of the
# updated shards); the reduce-scatter moves the second half of the all-reduce after the update.

# %%
def _zero_traffic(rank, world_size):
    g = torch.randn(4096)
    with count_sent_bytes() as ddp:
        dist.all_reduce(g.clone())
    with count_sent_bytes() as naive:
        dist.all_reduce(g.clone())
        dist.all_gather_into_tensor(torch.empty(4096), g[:1024].clone())
    params = [nn.Parameter(torch.zeros(4096))]
    params[0].grad = g
    with count_sent_bytes() as zero:
        ShardedAdamW(params).step()
    return ddp["bytes"], naive["bytes"], zero["bytes"]

_ddp_b, _naive_b, _zero_b = run_distributed(_zero_traffic, 4, timeout=60)[0]
for _label, _b in [("DDP all-reduce", _ddp_b), ("all-reduce + all-gather", _naive_b),
                   ("ZeRO: reduce-scatter + all-gather", _zero_b)]:
    print(f"{_label:36} {_b:7,} bytes sent by rank 0 per step ({_b / _ddp_b:.2f} x DDP)")

# %% [markdown]
# ### 3b. ZeRO-3 / FSDP by hand: shard the parameters too
#
# ZeRO-1 and -2 still keep every parameter on every rank. **ZeRO-3**, which PyTorch calls
# **FSDP** (Fully Sharded Data Parallel), keeps only a shard of each layer's parameters and
# assembles a whole layer just when it is needed:
#
# - **sharding**: each layer's parameters are flattened into one vector of $P_\ell$ elements,
#   padded with zeros to $N k_\ell$ with $k_\ell = \lceil P_\ell/N \rceil$, and rank $r$ keeps
#   elements $[r k_\ell, (r+1) k_\ell)$ only (FSDP pads at the end like this, so that every
#   rank's piece has the same size);
# - **forward**: just before layer $\ell$ runs, one **all-gather** of its shards gives the full
#   parameters; the layer runs; the gathered buffer is **freed**;
# - **backward**: just before layer $\ell$'s backward, all-gather again (it was freed), compute
#   the gradients of its parameters and of its input, free; one **reduce-scatter** of the flat
#   parameter gradient gives each rank the sum over ranks of its shard's gradient; divided by
#   N, the mean, as in DDP;
# - **step**: each rank's optimizer updates its shards only (any optimizer, since each element
#   is updated independently).
#
# Parameters held per rank: the shards, $\sum_\ell k_\ell \approx P/N$ elements, plus one layer's
# full parameters at a time: $\sum_\ell k_\ell + \max_\ell N k_\ell$ instead of DDP's $P$.
# Traffic per step and rank: two all-gathers and one reduce-scatter of every layer,
# $3(N-1)\sum_\ell k_\ell$ elements, **1.5 times** DDP's $2(N-1)P/N$: the parameters' memory is
# bought with one more all-gather.
#
# A layer's backward needs its parameters and its input. Here the simplest way: an
# `autograd.Function` per layer whose `forward` gathers, runs the layer under `torch.no_grad()`,
# keeps only the layer's input (`ctx.save_for_backward(x)`) and frees the parameters, and whose
# `backward` gathers again and **recomputes** the layer's forward with autograd on, then calls
# `torch.autograd.grad` for the input and the flat parameters. This is what FSDP combined with
# activation checkpointing does (the usual setting for large models). FSDP without checkpointing
# keeps the layer's autograd graph and its activations, and before backward refills the very
# storage it freed after forward (`untyped_storage().resize_(...)`), so the graph's saved
# tensors see the parameters again. To run a layer on parameters that are not its own, call
# `torch.func.functional_call(layer, {name: tensor, ...}, (x,))`; to free a layer's own
# parameters, move it to the meta device (`layer.to("meta")`: shapes without memory).
#
# PyTorch's own FSDP (`torch.distributed.fsdp.fully_shard`, applied to each layer and then to
# the whole model) runs on `gloo` and the CPU in torch 2.13; the hidden tests train it beside
# yours and compare the parameters. It calls the process group directly, so
# `count_sent_bytes` does not see its collectives.
#
# **Exercise.** Write `HandFSDP` (the `autograd.Function` is a suggested helper: the tests
# grade `HandFSDP` only).

# %% answer id=fsdp
class FSDPLayer(torch.autograd.Function):
    """One layer of a HandFSDP: forward(ctx, x, shard, fsdp, i) returns the i-th layer with
    parameters applied to x, gathering its full parameters just before and freeing them
    after; backward(ctx, grad_y) gathers them again, recomputes the layer from its saved
    input, and returns (grad of x or None, the mean over ranks of this rank's shard of the
    gradient (one reduce-scatter), None, None)."""

    @staticmethod
    def forward(ctx, x, shard, fsdp, i):
        ### BEGIN SOLUTION
        with torch.no_grad():
            y = torch.func.functional_call(fsdp.layers[i], fsdp.gather(i), (x,))
        ctx.fsdp, ctx.i = fsdp, i
        ctx.save_for_backward(x)
        return y
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_y):
        ### BEGIN SOLUTION
        (x,) = ctx.saved_tensors
        fsdp, i = ctx.fsdp, ctx.i
        n = dist.get_world_size()
        shard = fsdp.shards[i]
        full = torch.empty(n * shard.numel())
        dist.all_gather_into_tensor(full, shard.detach())
        full.requires_grad_(True)
        x = x.detach().requires_grad_(ctx.needs_input_grad[0])
        with torch.enable_grad():
            y = torch.func.functional_call(fsdp.layers[i], fsdp.unflatten(i, full), (x,))
            wrt = (x, full) if ctx.needs_input_grad[0] else (full,)
            grads = torch.autograd.grad(y, wrt, grad_y)
        shard_grad = torch.empty_like(shard)
        dist.reduce_scatter_tensor(shard_grad, grads[-1])
        shard_grad.div_(n)
        return (grads[0] if ctx.needs_input_grad[0] else None), shard_grad, None, None
        ### END SOLUTION


class HandFSDP(nn.Module):
    """ZeRO-3 / FSDP by hand around `model`, an nn.Sequential of float32 layers, the same
    (same values) on every rank; each child is either free of parameters (an activation)
    or has parameters and no buffers.

    self.shards: nn.ParameterList, one float32 Parameter per child with parameters, in
    order (child with parameters number i): flatten that child's parameters (in
    named_parameters() order, P_i elements), pad with zeros to N k_i elements where
    k_i = ceil(P_i / N), and keep elements [r k_i, (r + 1) k_i) of rank r: k_i elements.
    self.parameters() are these shards only, and the children's own parameters hold no
    memory afterwards (move the children to the meta device).
    gather(i): the full parameters of child-with-parameters i, from ONE all-gather of the
    shards: a dict {name: tensor} with the names and shapes of the child's named_parameters().
    forward(x): applies the children in order, equal to model(x). For each child with
    parameters: one all-gather of its shards just before its forward and one just before its
    backward; at most one child's gathered parameters alive at any time (no prefetch), none
    once forward or backward has returned; in backward one reduce-scatter per child, which
    accumulates into shards[i].grad the mean over ranks of this rank's piece of the flat
    gradient (the same loss on every rank gives that loss's gradient). Collectives: only
    dist.all_gather_into_tensor or dist.all_gather, and dist.reduce_scatter_tensor or
    dist.reduce_scatter; per training step, sending exactly 3 (N - 1) sum_i k_i elements.
    An optimizer over self.parameters(), stepped on every rank, then trains exactly as one
    process training `model` on the whole batch (the mean of the ranks' losses).
    """

    def __init__(self, model):
        super().__init__()
        ### BEGIN SOLUTION
        rank, n = dist.get_rank(), dist.get_world_size()
        self.order, self.layers, self.specs = [], [], []
        self.shards = nn.ParameterList()
        for child in model:
            named = list(child.named_parameters())
            if not named:
                self.order.append((child, None))
                continue
            flat = torch.cat([p.detach().reshape(-1) for _, p in named])
            k = -(-flat.numel() // n)
            padded = torch.zeros(n * k)
            padded[: flat.numel()] = flat
            self.shards.append(nn.Parameter(padded[rank * k:(rank + 1) * k].clone()))
            self.specs.append([(name, p.shape) for name, p in named])
            child.to("meta")
            self.order.append((child, len(self.layers)))
            self.layers.append(child)
        ### END SOLUTION

    def unflatten(self, i, full):
        """Views of the flat (padded) vector `full` as child i's parameters, by name."""
        ### BEGIN SOLUTION
        params, offset = {}, 0
        for name, shape in self.specs[i]:
            params[name] = full[offset:offset + shape.numel()].view(shape)
            offset += shape.numel()
        return params
        ### END SOLUTION

    def gather(self, i):
        ### BEGIN SOLUTION
        shard = self.shards[i]
        full = torch.empty(dist.get_world_size() * shard.numel())
        dist.all_gather_into_tensor(full, shard.detach())
        return self.unflatten(i, full)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        for child, i in self.order:
            x = child(x) if i is None else FSDPLayer.apply(x, self.shards[i], self, i)
        return x
        ### END SOLUTION

# %% test id=test_fsdp_visible points=1
def _fsdp_mlp(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3))


def _fsdp_small(rank, world_size, x, y):
    model = _fsdp_mlp(0)
    fsdp = HandFSDP(model)
    opt = torch.optim.SGD(fsdp.parameters(), lr=0.1)
    xs, ys = x.chunk(world_size), y.chunk(world_size)
    sent = []
    for _ in range(2):
        opt.zero_grad()
        with count_sent_bytes() as meter:
            ((fsdp(xs[rank]) - ys[rank]) ** 2).mean().backward()
        sent.append(meter["bytes"])
        opt.step()
    return [s.detach() for s in fsdp.shards], sent

torch.manual_seed(4)
_x, _y = torch.randn(8, 6), torch.randn(8, 3)
_single = _fsdp_mlp(0)
_opt = torch.optim.SGD(_single.parameters(), lr=0.1)
for _ in range(2):
    _opt.zero_grad()
    ((_single(_x) - _y) ** 2).mean().backward()
    _opt.step()
_out = run_distributed(_fsdp_small, 2, _x, _y, timeout=60)
# Layers of 6x16+16 = 112, 16x16+16 = 272 and 16x3+3 = 51 parameters: shards of 56, 136 and 26.
assert [s.numel() for s in _out[0][0]] == [56, 136, 26], (
    f"rank 0's shards: expected 56, 136 and 26 elements (ceil(P_i / 2)), got {[s.numel() for s in _out[0][0]]}")
for _i, _layer in enumerate([_single[0], _single[2], _single[4]]):
    _flat = torch.cat([p.detach().reshape(-1) for p in _layer.parameters()])
    _joined = torch.cat([_out[0][0][_i], _out[1][0][_i]])[: _flat.numel()]
    # The same SGD arithmetic on the mean of two half-batch gradients.
    assert_close(_joined, _flat, rtol=1e-5, atol=1e-6,
                 name=f"layer {_i}'s parameters (rank 0's shard, then rank 1's) after 2 FSDP steps vs one process")
# Two all-gathers and one reduce-scatter of 56 + 136 + 26 = 218 elements each, (N-1) x 218 x 4 bytes.
assert [s for s in _out[0][1]] == [3 * 218 * 4] * 2, (
    f"bytes rank 0 sent per step: expected 3 (N-1) sum k_i x 4 = {3 * 218 * 4}, got {_out[0][1]}")

# %% test id=test_fsdp_hidden points=3
### BEGIN HIDDEN TESTS
import weakref

_FSDP_GATHERS = ("all_gather", "all_gather_into_tensor")
_FSDP_FORBIDDEN = ("all_reduce", "broadcast", "reduce", "all_to_all", "all_to_all_single", "gather", "scatter",
                   "send", "recv", "isend", "irecv", "batch_isend_irecv")


class _Done:
    """What an async collective returns, for one that has already completed."""

    def wait(self, *args, **kwargs):
        return True

    def is_completed(self):
        return True


@contextlib.contextmanager
def _fsdp_watch():
    """Watches every all-gather: its output buffers are the gathered parameters. Records the
    bytes of gathered buffers alive (earlier ones still referenced, plus the new one) at
    each gather, and the kind of every collective, in order."""
    record = {"alive": [], "peak": 0, "kinds": []}
    real = {name: getattr(dist, name) for name in _FSDP_GATHERS + ("reduce_scatter", "reduce_scatter_tensor")}
    real.update({name: getattr(dist, name) for name in _FSDP_FORBIDDEN})

    def held():
        return sum(t.numel() * t.element_size() for ref in record["alive"]
                   if (t := ref()) is not None and t.untyped_storage().nbytes() > 0)

    def gathering(name):
        @functools.wraps(real[name])
        def call(out, *args, **kwargs):
            outs = list(out) if isinstance(out, (list, tuple)) else [out]
            record["peak"] = max(record["peak"], held() + sum(t.numel() * t.element_size() for t in outs))
            record["alive"].extend(weakref.ref(t) for t in outs)
            record["kinds"].append("gather")
            # gloo keeps a reference to a collective's tensors for a few ms after it returns: gather
            # into private buffers and copy, so that only the learner's own references keep `out` alive.
            private = [torch.empty_like(t) for t in outs]
            asked_async = kwargs.pop("async_op", False)
            real[name](private if isinstance(out, (list, tuple)) else private[0], *args, **kwargs)
            for t, p in zip(outs, private):
                t.copy_(p)
            return _Done() if asked_async else None
        return call

    def scattering(name):
        @functools.wraps(real[name])
        def call(*args, **kwargs):
            record["kinds"].append("scatter")
            return real[name](*args, **kwargs)
        return call

    def forbidden(name):
        def call(*args, **kwargs):
            raise AssertionError(f"HandFSDP must not call dist.{name}: all-gathers and reduce-scatters only")
        return call

    for name in _FSDP_GATHERS:
        setattr(dist, name, gathering(name))
    for name in ("reduce_scatter", "reduce_scatter_tensor"):
        setattr(dist, name, scattering(name))
    for name in _FSDP_FORBIDDEN:
        setattr(dist, name, forbidden(name))
    record["held"] = held
    try:
        yield record
    finally:
        for name, fn in real.items():
            setattr(dist, name, fn)


def _fsdp_net(seed, kind):
    torch.manual_seed(seed)
    if kind == "mlp":
        return _fsdp_mlp(seed)
    # Layers of 5x7+7 = 42, 7x7 = 49 (no bias) and 7x2+2 = 16 parameters; a GELU between.
    return nn.Sequential(nn.Linear(5, 7), nn.GELU(), nn.Linear(7, 7, bias=False), nn.Tanh(), nn.Linear(7, 2))


def _fsdp_optimizer(name, params):
    if name == "sgd":
        return torch.optim.SGD(params, lr=0.05, momentum=0.9)
    return torch.optim.AdamW(params, lr=0.01, weight_decay=0.1)


def _fsdp_case(rank, world_size, kind, opt_name, x, y, steps):
    from torch.distributed.fsdp import fully_shard

    model = _fsdp_net(1, kind)
    unsharded = _fsdp_net(1, kind)
    fsdp = HandFSDP(model)
    live = [(name, p.device.type, p.untyped_storage().nbytes()) for name, p in model.named_parameters()
            if p.device.type != "meta" and p.untyped_storage().nbytes() > 0]
    n_params = [p.numel() for p in fsdp.parameters()]
    storage = [s.untyped_storage().nbytes() for s in fsdp.shards]
    opt = _fsdp_optimizer(opt_name, fsdp.parameters())
    xs, ys = x.chunk(world_size), y.chunk(world_size)
    steps_seen = []
    for _ in range(steps):
        opt.zero_grad()
        with _fsdp_watch() as watch, count_sent_bytes() as meter:
            out = fsdp(xs[rank])
            after_forward = watch["held"]()
            ((out - ys[rank]) ** 2).mean().backward()
            after_backward = watch["held"]()
        steps_seen.append((watch["peak"], after_forward, after_backward, watch["kinds"], meter["bytes"]))
        opt.step()
    with torch.no_grad():
        forward_now = fsdp(xs[rank])
        expected_now = None
    gathered = [{k: v.detach().clone() for k, v in fsdp.gather(i).items()} for i in range(len(fsdp.shards))]
    # PyTorch's FSDP on the same model, as the oracle.
    ref = _fsdp_net(1, kind)
    for child in ref:
        if any(True for _ in child.parameters()):
            fully_shard(child)
    fully_shard(ref)
    opt_ref = _fsdp_optimizer(opt_name, ref.parameters())
    for _ in range(steps):
        opt_ref.zero_grad()
        ((ref(xs[rank]) - ys[rank]) ** 2).mean().backward()
        opt_ref.step()
    torch_fsdp = {k: v.full_tensor().detach() for k, v in ref.state_dict().items()}
    del expected_now, unsharded
    return ([s.detach() for s in fsdp.shards], n_params, live, steps_seen, forward_now, gathered, torch_fsdp,
            storage)


for _n_ranks, _kind, _opt_name, _steps in [(3, "mlp", "adamw", 3), (2, "odd", "sgd", 3), (4, "odd", "adamw", 2)]:
    torch.manual_seed(40 + _n_ranks)
    _x, _y = torch.randn(4 * _n_ranks, 6 if _kind == "mlp" else 5), torch.randn(4 * _n_ranks, 3 if _kind == "mlp" else 2)
    _single = _fsdp_net(1, _kind)
    _opt = _fsdp_optimizer(_opt_name, _single.parameters())
    for _ in range(_steps):
        _opt.zero_grad()
        ((_single(_x) - _y) ** 2).mean().backward()
        _opt.step()
    _layers = [c for c in _single if any(True for _ in c.parameters())]
    _sizes = [sum(p.numel() for p in c.parameters()) for c in _layers]
    _ks = [-(-s // _n_ranks) for s in _sizes]
    _case = f"{_n_ranks} ranks, {_opt_name}, layers of {_sizes} parameters"
    _out = run_distributed(_fsdp_case, _n_ranks, _kind, _opt_name, _x, _y, _steps, timeout=120)
    for _r, (_shards, _n_params, _live, _seen, _fwd, _gathered, _torch, _storage) in enumerate(_out):
        assert _n_params == _ks, (
            f"{_case}: rank {_r}'s HandFSDP parameters must be its shards only, of ceil(P_i / N) = {_ks} "
            f"elements; got {_n_params}")
        assert _storage == [4 * k for k in _ks], (
            f"{_case}: rank {_r}'s shards hold storages of {_storage} bytes; each must own its k_i elements only, "
            f"{[4 * k for k in _ks]} bytes (a view into the padded flat layer keeps the whole layer alive: clone it)")
        assert not _live, f"{_case}: rank {_r}: the wrapped model's own parameters still hold memory: {_live}"
        for _i, _layer in enumerate(_layers):
            _flat = torch.cat([p.detach().reshape(-1) for p in _layer.parameters()])
            _mine = _flat.new_zeros(_n_ranks * _ks[_i])
            _mine[: _flat.numel()] = _flat
            # Means of per-rank gradients (sums in another order), amplified a little by AdamW's 1/sqrt(v).
            assert_close(_shards[_i], _mine[_r * _ks[_i]:(_r + 1) * _ks[_i]], rtol=1e-4, atol=1e-5,
                         name=f"{_case}: rank {_r}'s shard of layer {_i} after {_steps} steps vs one process "
                              f"(elements [r k, (r+1) k) of the zero-padded flat parameters)")
            for (_name, _p), (_got_name, _got) in zip(_layer.named_parameters(), _gathered[_i].items()):
                assert _got_name == _name, f"{_case}: gather({_i}) names {list(_gathered[_i])}, expected {_name}"
                assert_close(_got, _p.detach(), rtol=1e-4, atol=1e-5, name=f"{_case}: rank {_r}'s gather({_i})[{_name!r}]")
        _index = 0
        for _j, _child in enumerate(_single):
            for _name, _p in _child.named_parameters():
                assert_close(_torch[f"{_j}.{_name}"], _p.detach(), rtol=1e-4, atol=1e-5,
                             name=f"{_case}: torch's fully_shard, {_j}.{_name} (the oracle itself vs one process)")
                _index += 1
        with torch.no_grad():
            _expected_fwd = _single(_x.chunk(_n_ranks)[_r])
        assert_close(_fwd, _expected_fwd, rtol=1e-5, atol=1e-6, name=f"{_case}: rank {_r}'s HandFSDP forward after training")
        _layer_bytes = [4 * _n_ranks * k for k in _ks]
        for _step, (_peak, _after_fwd, _after_bwd, _kinds, _bytes) in enumerate(_seen):
            _where = f"{_case}: rank {_r}, step {_step}"
            assert _peak == max(_layer_bytes), (
                f"{_where}: at the peak, {_peak} bytes of gathered parameters were alive; one layer at a time "
                f"(the largest, N k_i x 4 = {max(_layer_bytes)} bytes) is the most FSDP holds without prefetch "
                f"(layers: {_layer_bytes} bytes)")
            assert _after_fwd == 0 and _after_bwd == 0, (
                f"{_where}: gathered parameters still alive after forward ({_after_fwd} bytes) or after backward "
                f"({_after_bwd} bytes): free each layer's full parameters once it has run")
            _expected_kinds = ["gather"] * len(_ks) + ["gather", "scatter"] * len(_ks)
            assert _kinds == _expected_kinds, (
                f"{_where}: collectives in order: expected one all-gather per layer in forward, then per layer "
                f"(last first) an all-gather before its backward and a reduce-scatter after: {_expected_kinds}; "
                f"got {_kinds}")
            _want = 4 * 3 * (_n_ranks - 1) * sum(_ks)
            assert _bytes == _want, (
                f"{_where}: sent {_bytes} bytes; two all-gathers and one reduce-scatter of every layer's padded "
                f"parameters send 3 (N-1) sum k_i x 4 = {_want}")
### END HIDDEN TESTS
assert True

# %% [markdown]
# What sharding buys and costs, measured on 4 ranks for a stack of 8 layers of 32 × 32 (+ bias):
# the parameters held per rank at the peak against DDP's full copy, and the bytes sent per step
# against DDP's all-reduce. The more layers, the closer the parameters held get to 1/N.

# %%
def _fsdp_traffic(rank, world_size):
    torch.manual_seed(0)
    model = nn.Sequential(*[layer for _ in range(8) for layer in (nn.Linear(32, 32), nn.Tanh())])
    total = sum(p.numel() for p in model.parameters())
    fsdp = HandFSDP(model)
    with count_sent_bytes() as meter:
        fsdp(torch.randn(2, 32)).sum().backward()
    with count_sent_bytes() as ddp:
        dist.all_reduce(torch.zeros(total))
    shards = [s.numel() for s in fsdp.shards]
    held = 4 * (sum(shards) + max(world_size * k for k in shards))
    return 4 * total, held, ddp["bytes"], meter["bytes"]

_ddp_held, _fsdp_held, _ddp_sent, _fsdp_sent = run_distributed(_fsdp_traffic, 4, timeout=60)[0]
print(f"parameters held at the peak: DDP {_ddp_held:,} bytes, FSDP {_fsdp_held:,} ({_fsdp_held / _ddp_held:.2f} x)")
print(f"bytes sent per step:         DDP {_ddp_sent:,}, FSDP {_fsdp_sent:,} ({_fsdp_sent / _ddp_sent:.2f} x)")

# %% [markdown]
# ## 4. Tensor parallelism: split every layer (Megatron)
#
# DDP and ZeRO keep whole layers on every rank. When one layer's matrices are too large for
# a GPU, or its matmuls too slow, **tensor parallelism** (TP) splits every weight matrix
# across ranks. Megatron-LM (Shoeybi et al., 2019) splits a transformer MLP so that it needs
# a single collective per block. Llama's MLP (transformers' `LlamaMLP`) is
#
# $$ y = W_d\,\big(\mathrm{silu}(W_g x) \odot W_u x\big), \qquad
#    W_g, W_u \in \mathbb{R}^{f \times h}, \quad W_d \in \mathbb{R}^{h \times f}. $$
#
# Cut the $f$ intermediate features into N blocks $B_0, \dots, B_{N-1}$ (`torch.tensor_split`).
# Rank $r$ keeps
#
# - rows $B_r$ of $W_g$ and $W_u$: the **column-parallel** layers (Megatron writes $XW$, so
#   these are columns of its $W$; `nn.Linear` stores $W^\top$, hence rows of torch's `weight`).
#   SiLU and $\odot$ act element by element, so rank $r$ computes
#   $a_r = \mathrm{silu}(W_g[B_r]\,x) \odot W_u[B_r]\,x$, exactly block $B_r$ of the unsharded
#   intermediate, without talking to anyone;
# - columns $B_r$ of $W_d$: the **row-parallel** layer. $W_d\,a = \sum_r W_d[:, B_r]\, a_r$, so
#   each rank computes a partial output of full size $h$, and **one all-reduce** (sum) gives
#   every rank $y$.
#
# Backward mirrors forward. Megatron names the two places where the ranks meet $f$ and $g$:
#
# | | forward | backward |
# |---|---|---|
# | $f$: the replicated $x$ enters the column-parallel layers | identity | all-reduce $\partial L/\partial x$ (each rank holds only its blocks' share) |
# | $g$: after the row-parallel layer | all-reduce the partial outputs | identity (every rank already has the whole $\partial L/\partial y$) |
#
# `dist.all_reduce` is invisible to autograd: write $f$ and $g$ as `torch.autograd.Function`s
# (static `forward(ctx, t)` and `backward(ctx, grad)`, used as `MyFunction.apply(t)`). The weight
# gradients need no communication: rank $r$'s gradient of $W_g[B_r]$ *is* block $B_r$ of the
# unsharded gradient. Each rank stores $3hf/N$ of the MLP's weights (with their gradients and
# optimizer state: the $16\Psi/N$ of the TP row in section 6), at the price of two all-reduces
# of activations per MLP per step, on the critical path: TP stays inside a node, on NVLink.
#
# **Exercise.** Write `TensorParallelMLP` (and the two autograd functions it uses).

# %% answer id=tp
class CopyToTensorParallel(torch.autograd.Function):
    """Megatron's f: identity in forward; in backward, the sum over ranks (dist.all_reduce)
    of the incoming gradient."""

    @staticmethod
    def forward(ctx, x):
        ### BEGIN SOLUTION
        return x
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        # Autograd hands this node the sum of the two projections' input gradients, a buffer
        # of its own: reduce it in place, as Megatron does.
        dist.all_reduce(grad)
        return grad
        ### END SOLUTION


class ReduceFromTensorParallel(torch.autograd.Function):
    """Megatron's g: in forward, the sum over ranks (dist.all_reduce) of the partial
    outputs; identity in backward."""

    @staticmethod
    def forward(ctx, partial):
        ### BEGIN SOLUTION
        dist.all_reduce(partial)
        return partial
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        return grad
        ### END SOLUTION


class TensorParallelMLP(nn.Module):
    """This rank's part of a Megatron-style tensor-parallel copy of a Llama MLP.

    mlp: transformers' LlamaMLP (y = down_proj(act_fn(gate_proj(x)) * up_proj(x)), no biases;
    gate_proj, up_proj: nn.Linear(h, f); down_proj: nn.Linear(f, h); act_fn: SiLU for Llama),
    the same weights on every rank, float32 or float64. Cut the f intermediate features into
    world-size blocks with torch.tensor_split (f need not divide by N: block sizes differ by at
    most one, the larger ones first); rank r keeps block r, of f_r features:
    self.gate_proj, self.up_proj: nn.Linear(h, f_r, bias=False), weights = rows of block r of
    mlp's (column parallel); self.down_proj: nn.Linear(f_r, h, bias=False), weight = columns
    of block r of mlp.down_proj.weight (row parallel). Copies in mlp's dtype: changing them
    leaves mlp untouched; the module's parameters are these three shards only (3 h f_r elements).
    forward(x): x (..., h), the same on every rank; returns (..., h), equal to mlp(x) on every
    rank. Collectives: in forward exactly ONE dist.all_reduce (of the partial outputs); in
    backward (the same loss on every rank) exactly one dist.all_reduce (of the gradient of x);
    no other dist call. Each reduces as many elements as x has, in x's shape or reshaped
    (say to (-1, h), as Megatron does). After backward, x.grad equals the unsharded layer's on every rank and
    each shard's weight .grad equals the matching block of the unsharded layer's.
    """

    def __init__(self, mlp):
        super().__init__()
        ### BEGIN SOLUTION
        rank, n = dist.get_rank(), dist.get_world_size()
        h, f = mlp.gate_proj.in_features, mlp.gate_proj.out_features
        sizes = [len(block) for block in torch.tensor_split(torch.arange(f), n)]
        start = sum(sizes[:rank])
        end = start + sizes[rank]
        dtype = mlp.gate_proj.weight.dtype
        self.gate_proj = nn.Linear(h, end - start, bias=False, dtype=dtype)
        self.up_proj = nn.Linear(h, end - start, bias=False, dtype=dtype)
        self.down_proj = nn.Linear(end - start, h, bias=False, dtype=dtype)
        with torch.no_grad():
            self.gate_proj.weight.copy_(mlp.gate_proj.weight[start:end])
            self.up_proj.weight.copy_(mlp.up_proj.weight[start:end])
            self.down_proj.weight.copy_(mlp.down_proj.weight[:, start:end])
        self.act_fn = mlp.act_fn
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        x = CopyToTensorParallel.apply(x)
        partial = self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))
        return ReduceFromTensorParallel.apply(partial)
        ### END SOLUTION

# %% test id=test_tp_visible points=1
from graders.notebook import load_model

_tiny_mlp = load_model().model.layers[0].mlp  # the bundled tiny Llama: h = 256, f = 688


def _tp_small(rank, world_size, mlp, x, w):
    tp = TensorParallelMLP(mlp)
    x = x.clone().requires_grad_(True)
    y = tp(x)
    (y * w).sum().backward()
    return y.detach(), x.grad, tuple(tp.gate_proj.weight.shape)

torch.manual_seed(3)
_x, _w = torch.randn(4, 256), torch.randn(4, 256)
_xr = _x.clone().requires_grad_(True)
_y = _tiny_mlp(_xr)
(_y * _w).sum().backward()
_out = run_distributed(_tp_small, 2, _tiny_mlp, _x, _w, timeout=60)
for _r, (_got, _grad, _shape) in enumerate(_out):
    assert _shape == (344, 256), f"rank {_r}'s gate_proj.weight: expected (344, 256) (688 features / 2), got {_shape}"
    # The same products summed in another order (two halves of 344 features, then the all-reduce).
    assert_close(_got, _y.detach(), rtol=1e-4, atol=1e-5, name=f"rank {_r}'s TensorParallelMLP output vs the tiny Llama's MLP")
    assert_close(_grad, _xr.grad, rtol=1e-4, atol=1e-5, name=f"rank {_r}'s gradient of x vs the unsharded MLP's")
# Both ranks add the same two partial outputs: the all-reduce leaves one identical result on each.
assert torch.equal(_out[0][0], _out[1][0]), (
    f"the two ranks' outputs differ by up to {(_out[0][0] - _out[1][0]).abs().max().item():.3e}: after the "
    f"all-reduce every rank must hold the same sum"
)

# %% test id=test_tp_hidden points=3
### BEGIN HIDDEN TESTS
from transformers.models.llama.modeling_llama import LlamaConfig as _MLPConfig
from transformers.models.llama.modeling_llama import LlamaMLP

_TP_FORBIDDEN = ("all_gather", "all_gather_into_tensor", "reduce_scatter", "reduce_scatter_tensor", "broadcast",
                 "reduce", "all_to_all", "all_to_all_single", "gather", "scatter", "send", "recv", "isend", "irecv",
                 "batch_isend_irecv")


def _tp_case(rank, world_size, mlp, x, w):
    before = {k: v.clone() for k, v in mlp.state_dict().items()}
    calls, phase = [], ["init"]
    real = {name: getattr(dist, name) for name in ("all_reduce",) + _TP_FORBIDDEN}

    @functools.wraps(real["all_reduce"])
    def spy(tensor, *args, **kwargs):
        calls.append((phase[0], tuple(tensor.shape)))
        return real["all_reduce"](tensor, *args, **kwargs)

    def forbidden(name):
        def call(*args, **kwargs):
            raise AssertionError(f"TensorParallelMLP must not call dist.{name}: one all_reduce in forward, "
                                 f"one in backward")
        return call

    dist.all_reduce = spy
    for name in _TP_FORBIDDEN:
        setattr(dist, name, forbidden(name))
    try:
        tp = TensorParallelMLP(mlp)
        x = x.clone().requires_grad_(True)
        phase[0] = "forward"
        y = tp(x)
        phase[0] = "backward"
        (y * w).sum().backward()
    finally:
        for name, fn in real.items():
            setattr(dist, name, fn)
    shards = {name: getattr(tp, name).weight for name in ("gate_proj", "up_proj", "down_proj")}
    values = {name: p.detach().clone() for name, p in shards.items()}
    grads = {name: p.grad for name, p in shards.items()}
    n_params = sum(p.numel() for p in tp.parameters())
    with torch.no_grad():
        for p in shards.values():
            p.add_(1.0)  # a training step on the shards must leave the unsharded layer alone
    untouched = all(torch.equal(v, before[k]) for k, v in mlp.state_dict().items())
    return y.detach(), x.grad, values, grads, calls, n_params, untouched


def _random_mlp(h, f, dtype, seed):
    torch.manual_seed(seed)
    cfg = _MLPConfig(hidden_size=h, intermediate_size=f, num_attention_heads=1, num_key_value_heads=1)
    mlp = LlamaMLP(cfg).to(dtype)
    with torch.no_grad():
        for p in mlp.parameters():
            p.normal_(0, 0.5)  # O(1) activations, where SiLU is far from linear
    return mlp


# 688 = 230 + 229 + 229 on 3 ranks (torch.chunk would give 230, 230, 228); 10 = 3 + 3 + 2 + 2.
_tp_cases = [(3, load_model().model.layers[1].mlp, (2, 3, 256), torch.float32),
             (4, _random_mlp(12, 10, torch.float64, 7), (5, 12), torch.float64),
             (2, _random_mlp(6, 9, torch.float32, 8), (1, 1, 2, 6), torch.float32)]
for _n_ranks, _mlp, _shape, _dtype in _tp_cases:
    torch.manual_seed(_n_ranks)
    _x, _w = torch.randn(_shape, dtype=_dtype), torch.randn(_shape, dtype=_dtype)
    _xr = _x.clone().requires_grad_(True)
    _y = _mlp(_xr)
    (_y * _w).sum().backward()
    _h, _f = _mlp.gate_proj.in_features, _mlp.gate_proj.out_features
    _blocks = torch.tensor_split(torch.arange(_f), _n_ranks)
    _out = run_distributed(_tp_case, _n_ranks, _mlp, _x, _w, timeout=60)
    # float32: the same products summed in another order; float64 all but exact.
    _tol = dict(rtol=1e-4, atol=1e-5) if _dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    _case = f"{_n_ranks} ranks, h = {_h}, f = {_f}, x {_shape} {_dtype}"
    for _r, (_got, _grad, _shards, _grads, _calls, _n_params, _untouched) in enumerate(_out):
        _b = _blocks[_r]
        _expected = {"gate_proj": (_mlp.gate_proj.weight, _mlp.gate_proj.weight[_b]),
                     "up_proj": (_mlp.up_proj.weight, _mlp.up_proj.weight[_b]),
                     "down_proj": (_mlp.down_proj.weight, _mlp.down_proj.weight[:, _b])}
        for _name, (_full, _block) in _expected.items():
            _want = _full.grad[_b] if _name != "down_proj" else _full.grad[:, _b]
            assert _shards[_name].dtype == _dtype, f"{_case}: rank {_r}'s {_name} is {_shards[_name].dtype}, expected {_dtype}"
            assert _shards[_name].shape == _block.shape, (
                f"{_case}: rank {_r}'s {_name}.weight must be block {_r} of torch.tensor_split over the {_f} "
                f"features, shape {tuple(_block.shape)}; got {tuple(_shards[_name].shape)}")
            assert_close(_shards[_name], _block.detach(), rtol=0, atol=0, name=f"{_case}: rank {_r}'s {_name}.weight")
            assert _grads[_name] is not None, f"{_case}: rank {_r}'s {_name}.weight got no gradient"
            assert_close(_grads[_name], _want, **_tol,
                         name=f"{_case}: rank {_r}'s {_name}.weight.grad vs block {_r} of the unsharded gradient")
        assert_close(_got, _y.detach(), **_tol, name=f"{_case}: rank {_r}'s output vs the unsharded MLP")
        assert_close(_grad, _xr.grad, **_tol, name=f"{_case}: rank {_r}'s gradient of x vs the unsharded MLP's")
        # Any shape of the same elements: x's shape, or flattened to (-1, h) as Megatron's layers do.
        _numel = math.prod(_shape)
        _got_calls = [(_phase, math.prod(_s)) for _phase, _s in _calls]
        assert _got_calls == [("forward", _numel), ("backward", _numel)], (
            f"{_case}: rank {_r} must call dist.all_reduce exactly once in forward (the partial outputs) and once "
            f"in backward (the gradient of x), each of {_numel} elements (x's shape {_shape}, or reshaped); got "
            f"(phase, shape) {_calls}")
        _cap = 3 * _h * len(_b)
        assert _n_params == _cap, (
            f"{_case}: rank {_r}'s parameters must be its three shards only, 3 h f_r = {_cap} elements; got {_n_params}")
        assert _untouched, f"{_case}: rank {_r}: changing the shards changed the unsharded mlp (copy the weights)"
### END HIDDEN TESTS
assert True

# %% [markdown]
# ## 5. Pipeline parallelism: GPipe micro-batches
#
# Pipeline parallelism cuts the *stack of layers* into $p$ **stages**, one per rank: rank 0
# runs the first layers and sends its activations to rank 1, which runs the next ones, and so
# on. Sent as one batch, only one rank works at a time. GPipe (Huang et al., 2019) cuts the
# batch into $m$ **micro-batches**: while rank 1 works on micro-batch $j$, rank 0 already
# computes micro-batch $j+1$. Each stage then idles only while the pipeline fills and drains,
# $p - 1$ of the $m + p - 1$ time slots: the **bubble** $(p-1)/(m+p-1)$ (section 6 plots it).
#
# ```
# time slot:   1    2    3    4    5          (p = 2 stages, m = 4 micro-batches, forward)
# rank 0:     F1   F2   F3   F4   --
# rank 1:     --   F1   F2   F3   F4
# ```
#
# Here every stage keeps the width $d$ of its input, so a rank knows the shape of what it
# will receive. Send with `dist.isend` (rank 0 goes on computing while the message travels)
# and keep each sent tensor alive until its request has been waited on.
#
# **Exercise.** Write `gpipe_forward(stage, x, micro_batches)` (forward only).

# %% answer id=gpipe
def gpipe_forward(stage, x, micro_batches):
    """GPipe forward pass over all ranks, without autograd (under torch.no_grad()).

    stage: this rank's module (rank r holds the r-th stage); maps (b, d) to (b, d).
    x: (batch, d) float32 input, the same on every rank (only rank 0 uses its values;
    the others use its shape). micro_batches: m, 1 <= m <= batch; the micro-batches are
    torch.tensor_split(x, m) (sizes differ by at most one).
    For each micro-batch in order: rank 0 applies its stage to it; rank r > 0 receives its
    input from rank r - 1 (dist.recv or dist.irecv), applies its stage; every rank but the
    last sends the result to rank r + 1 (dist.send or dist.isend), one message per
    micro-batch (m sends per rank, batch x d elements in all).
    Returns: on the last rank, the (batch, d) output, the same as applying every stage in
    turn to x; None on the other ranks.
    """
    ### BEGIN SOLUTION
    rank, n = dist.get_rank(), dist.get_world_size()
    outputs, in_flight = [], []
    with torch.no_grad():
        for chunk in torch.tensor_split(x, micro_batches):
            if rank == 0:
                h = chunk
            else:
                h = torch.empty_like(chunk)
                dist.recv(h, src=rank - 1)
            h = stage(h)
            if rank < n - 1:
                in_flight.append((h, dist.isend(h, dst=rank + 1)))
            else:
                outputs.append(h)
        for _, request in in_flight:
            request.wait()
    return torch.cat(outputs) if rank == n - 1 else None
    ### END SOLUTION

# %% test id=test_gpipe_visible points=1
def _stage(rank):
    torch.manual_seed(50 + rank)
    return nn.Sequential(nn.Linear(4, 4), nn.Tanh())


def _gpipe_small(rank, world_size, x):
    return gpipe_forward(_stage(rank), x, 3)

_x = torch.randn(6, 4)
with torch.no_grad():
    _expected = _stage(1)(_stage(0)(_x))
_out = run_distributed(_gpipe_small, 2, _x, timeout=30)
assert _out[0] is None, f"rank 0 (not the last stage) must return None, got {_out[0]}"
# The same matrix products, row by row, on micro-batches of 2 rows instead of 6.
assert_close(_out[1], _expected, rtol=1e-5, atol=1e-5, name="gpipe_forward on 2 ranks, 3 micro-batches (last rank)")
assert not _out[1].requires_grad, "gpipe_forward runs without autograd (torch.no_grad()): its output requires grad"

# %% test id=test_gpipe_hidden points=2
### BEGIN HIDDEN TESTS
def _gpipe_case(rank, world_size, x, m):
    sends = []
    real = {name: getattr(dist, name) for name in ("send", "isend")}

    def counting(name):
        @functools.wraps(real[name])
        def send(tensor, *args, **kwargs):
            sends.append(tensor.numel())  # elements: a message may be (rows, d) or flattened
            return real[name](tensor, *args, **kwargs)
        return send

    for name in real:
        setattr(dist, name, counting(name))
    try:
        out = gpipe_forward(_stage(rank), x, m)
    finally:
        for name, fn in real.items():
            setattr(dist, name, fn)
    return out, sends


# (2, 5, 4) and (3, 6, 4): torch.chunk would cut only 3 micro-batches (pieces of ceil(batch / m)).
for _n_ranks, _batch, _m in [(2, 7, 4), (4, 8, 8), (3, 5, 1), (4, 9, 2), (2, 5, 4), (3, 6, 4)]:
    torch.manual_seed(_batch)
    _x = torch.randn(_batch, 4)
    with torch.no_grad():
        _expected = _x
        for _r in range(_n_ranks):
            _expected = _stage(_r)(_expected)
    _out = run_distributed(_gpipe_case, _n_ranks, _x, _m, timeout=30)
    _sizes = [c.numel() for c in torch.tensor_split(_x, _m)]
    for _r, (_y, _sends) in enumerate(_out):
        if _r < _n_ranks - 1:
            assert _y is None, f"{_n_ranks} ranks: rank {_r} is not the last stage and must return None, got {_y}"
            assert _sends == _sizes, (
                f"{_n_ranks} ranks, batch {_batch}, {_m} micro-batches: rank {_r} must send one message per "
                f"micro-batch, of {_sizes} elements (rows x 4), in order; sent messages of {_sends} elements")
        else:
            assert _sends == [], f"the last rank sends nothing, it sent messages of {_sends} elements"
            # The same products on fewer rows at a time (a matmul's summation order may change with its shape).
            assert_close(_y, _expected, rtol=1e-5, atol=1e-5,
                         name=f"gpipe_forward on {_n_ranks} ranks, batch {_batch}, {_m} micro-batches")
            assert not _y.requires_grad, f"{_n_ranks} ranks: gpipe_forward must run under torch.no_grad()"
### END HIDDEN TESTS
assert True

# %% [markdown]
# ### 5b. 1F1B: forward and backward interleaved
#
# Training needs the backward pass too, which runs through the stages in reverse: the last
# rank computes the loss of a micro-batch and its gradient, sends the gradient of its
# *input* back to rank $p-2$, and so on down to rank 0. A stage can run the backward of
# micro-batch $j$ only while it still holds what its forward of $j$ saved (the activations).
# GPipe runs all $m$ forwards, then all $m$ backwards, so every stage holds the activations
# of all $m$ micro-batches at once. **1F1B** (PipeDream-Flush, Narayanan et al., 2021) starts
# backwards as early as possible. Rank $r$ of $p$:
#
# 1. **warm-up**: $w_r = \min(p - r - 1, m)$ forwards (micro-batches $0, \dots, w_r - 1$);
# 2. **steady state**, $m - w_r$ times: one forward (the next micro-batch), then one backward
#    (the oldest micro-batch whose forward it has run);
# 3. **cool-down**: the $w_r$ backwards left.
#
# ```
# slot:     1   2   3   4   5   6   7   8   9   10        (p = 2, m = 4; F = forward, B = backward)
# rank 0:  F0  F1  --  B0  F2  B1  F3  B2  --  B3
# rank 1:  --  F0  B0  F1  B1  F2  B2  F3  B3  --
# ```
#
# Rank $r$ then never holds more than $\min(p - r, m)$ micro-batches' activations (at most $p$,
# on rank 0) instead of GPipe's $m$; its bubble is still $(p-1)/(m+p-1)$ when a forward and a
# backward take one time slot each. You will measure that bubble: replay the order in which
# each rank ran its operations, each as early as its inputs allow (forward $j$ on rank $r$
# after forward $j$ on rank $r-1$; backward $j$ after backward $j$ on rank $r+1$, or, on the
# last rank, after its own forward $j$), count the slots, and compare.
#
# The loss is the mean squared error over the whole batch: micro-batch $j$ of $b_j$ rows
# contributes `F.mse_loss(out_j, y_j) * b_j / batch`, so that the gradients summed over the
# micro-batches equal those of the whole batch in one piece. A stage's input must require grad
# (`h.requires_grad_(True)` after receiving it) for `backward` to give its gradient, which
# goes to rank $r-1$; the last rank calls `loss.backward()`, the others `out.backward(grad)`
# with the gradient they received. As in GPipe, send with `dist.isend` and wait on every
# request before returning.
#
# **Exercise.** Write `one_f_one_b(stage, x, y, micro_batches)` and `pipeline_bubble(schedules)`.

# %% answer id=onefoneb
def one_f_one_b(stage, x, y, micro_batches):
    """One training step (forward and backward, no optimizer step) of a pipeline over all
    ranks with the 1F1B schedule. The stages' gradients accumulate into their .grad.

    stage: this rank's module (rank r holds the r-th stage), (b, d) -> (b, d) float32.
    x, y: (batch, d) float32 input and target, the same on every rank (rank 0 uses x's values,
    the last rank y's, the others only their shapes). micro_batches: m, 1 <= m <= batch; the
    micro-batches are torch.tensor_split(x, m) and torch.tensor_split(y, m).
    Rank r of p runs w = min(p - r - 1, m) forwards, then m - w times one forward and one
    backward, then w backwards; micro-batches in order 0, 1, ... for forwards and for
    backwards. Forward of j: rank 0 applies its stage to x_j; rank r > 0 receives its input
    (dist.recv or dist.irecv) from rank r - 1; every rank but the last sends its output to
    rank r + 1 (dist.send or dist.isend); the last rank's loss for j is
    F.mse_loss(out_j, y_j) * b_j / batch (b_j rows in micro-batch j). Backward of j: the
    last rank back-propagates its loss; rank r < p - 1 receives the gradient of its output
    from rank r + 1 and back-propagates it; every rank but rank 0 sends the gradient of its
    input to rank r - 1. A rank keeps a micro-batch's activations from its forward until its
    backward only (at most min(p - r, m) at a time).
    Returns (schedule, loss): schedule, the list of ("F", j) and ("B", j) in the order this
    rank ran them; loss, on the last rank the float sum of the micro-batches' losses (the
    whole batch's mean squared error), None on the others.
    """
    ### BEGIN SOLUTION
    rank, p = dist.get_rank(), dist.get_world_size()
    xs, ys = torch.tensor_split(x, micro_batches), torch.tensor_split(y, micro_batches)
    inputs, outputs, in_flight, schedule = {}, {}, [], []
    total = 0.0

    def forward(j):
        nonlocal total
        if rank == 0:
            h = xs[j]
        else:
            h = torch.empty_like(xs[j])
            dist.recv(h, src=rank - 1)
            h.requires_grad_(True)
        out = stage(h)
        if rank == p - 1:
            out = F.mse_loss(out, ys[j]) * (len(xs[j]) / len(x))
            total += out.item()
        else:
            sent = out.detach()
            in_flight.append((sent, dist.isend(sent, dst=rank + 1)))
        inputs[j], outputs[j] = h, out
        schedule.append(("F", j))

    def backward(j):
        h, out = inputs.pop(j), outputs.pop(j)
        if rank == p - 1:
            out.backward()
        else:
            grad = torch.empty_like(out)
            dist.recv(grad, src=rank + 1)
            out.backward(grad)
        if rank > 0:
            in_flight.append((h.grad, dist.isend(h.grad, dst=rank - 1)))
        schedule.append(("B", j))

    warmup = min(p - rank - 1, micro_batches)
    for j in range(warmup):
        forward(j)
    for j in range(micro_batches - warmup):
        forward(warmup + j)
        backward(j)
    for j in range(micro_batches - warmup, micro_batches):
        backward(j)
    for _, request in in_flight:
        request.wait()
    return schedule, (total if rank == p - 1 else None)
    ### END SOLUTION


def pipeline_bubble(schedules):
    """The bubble of a pipeline schedule, counted in time slots.

    schedules: a list with one list per rank (rank r's at index r, p ranks) of ("F", j) and
    ("B", j), in the order that rank ran them. Every operation takes one slot. Replay them:
    each rank runs its operations one at a time in its list's order, each as early as
    possible: ("F", j) on rank r > 0 once ("F", j) on rank r - 1 has ended; ("B", j) on
    rank r < p - 1 once ("B", j) on rank r + 1 has ended, on the last rank once its own
    ("F", j) has ended (rank 0's forwards wait for nothing else).
    Returns (slots, bubble): slots, the int number of slots until the last operation ends;
    bubble, the float fraction of the p x slots rank-slots in which no operation runs.
    Raises ValueError if the schedules can never finish (an operation waits for one that
    comes later, or never comes).
    """
    ### BEGIN SOLUTION
    p = len(schedules)
    ended, clock, done = {}, [0] * p, [0] * p
    total = sum(len(s) for s in schedules)
    while sum(done) < total:
        progressed = False
        for r in range(p):
            if done[r] == len(schedules[r]):
                continue
            kind, j = schedules[r][done[r]]
            if kind == "F":
                ready = 0 if r == 0 else ended.get(("F", r - 1, j))
            else:
                ready = ended.get(("B", r + 1, j)) if r < p - 1 else ended.get(("F", r, j))
            if ready is None:
                continue
            clock[r] = max(clock[r], ready) + 1
            ended[(kind, r, j)] = clock[r]
            done[r] += 1
            progressed = True
        if not progressed:
            raise ValueError(f"the schedules cannot finish: every rank waits (next operations {done})")
    slots = max(clock)
    return slots, 1 - total / (p * slots)
    ### END SOLUTION

# %% test id=test_onefoneb_visible points=1
class _Counted(nn.Module):
    """Wraps a stage: counts the micro-batches whose forward (with autograd) has run and whose
    backward has not yet reached the stage's first parameter, and keeps the largest count."""

    def __init__(self, stage):
        super().__init__()
        self.stage, self.alive, self.most = stage, 0, 0
        next(stage.parameters()).register_post_accumulate_grad_hook(self._backward_done)

    def _backward_done(self, p):
        self.alive -= 1

    def forward(self, h):
        if torch.is_grad_enabled():
            self.alive += 1
            self.most = max(self.most, self.alive)
        return self.stage(h)


def _ofob_small(rank, world_size, x, y, m):
    stage = _Counted(_stage(rank))
    schedule, loss = one_f_one_b(stage, x, y, m)
    return schedule, loss, [p.grad for p in stage.parameters()], stage.most

torch.manual_seed(6)
_x, _y = torch.randn(8, 4), torch.randn(8, 4)
_whole = nn.Sequential(_stage(0), _stage(1))
_loss = F.mse_loss(_whole(_x), _y)
_loss.backward()
_out = run_distributed(_ofob_small, 2, _x, _y, 4, timeout=60)
for _r, (_schedule, _l, _grads, _most) in enumerate(_out):
    # The same products on micro-batches of 2 rows, summed over 4 micro-batches.
    for _i, (_g, _p) in enumerate(zip(_grads, _whole[_r].parameters())):
        assert_close(_g, _p.grad, rtol=1e-5, atol=1e-6, name=f"rank {_r}'s gradient {_i} vs the unpipelined model's")
    # Rank r holds at most min(p - r, m) micro-batches: 2 on rank 0, 1 on rank 1 (GPipe: 4 on both).
    assert _most == 2 - _r, f"rank {_r} held {_most} micro-batches' activations at once; 1F1B holds {2 - _r}"
assert_scalar_close(_out[1][1], _loss.item(), rtol=1e-5, atol=1e-7, name="the last rank's loss vs the whole batch's")
assert _out[0][1] is None, f"rank 0 is not the last stage and returns loss None, got {_out[0][1]}"
# In a worker process, so that a replay that never ends stops after 20 s instead of hanging the notebook.
_slots, _bubble = run_distributed(lambda rank, world_size, s: pipeline_bubble(s), 1, [s for s, _, _, _ in _out],
                                  timeout=20)[0]
assert (_slots, round(_bubble, 6)) == (10, 0.2), (
    f"pipeline_bubble of your 1F1B schedules on 2 ranks, 4 micro-batches: expected 10 slots and a bubble of "
    f"(p-1)/(m+p-1) = 0.2, got {_slots} slots, bubble {_bubble}")

# %% test id=test_onefoneb_hidden points=3
### BEGIN HIDDEN TESTS
def _ofob_case(rank, world_size, x, y, m):
    sends = []
    real = {name: getattr(dist, name) for name in ("send", "isend")}

    def counting(name):
        @functools.wraps(real[name])
        def send(tensor, *args, **kwargs):
            sends.append((tensor.numel(), kwargs.get("dst", args[0] if args else None)))
            return real[name](tensor, *args, **kwargs)
        return send

    for name in real:
        setattr(dist, name, counting(name))
    try:
        stage = _Counted(_stage(rank))
        schedule, loss = one_f_one_b(stage, x, y, m)
    finally:
        for name, fn in real.items():
            setattr(dist, name, fn)
    return schedule, loss, [p.grad for p in stage.parameters()], stage.most, sends


def _canonical_1f1b(p, m):
    out = []
    for r in range(p):
        w, s = min(p - r - 1, m), []
        s += [("F", j) for j in range(w)]
        for j in range(m - w):
            s += [("F", w + j), ("B", j)]
        s += [("B", j) for j in range(m - w, m)]
        out.append(s)
    return out


def _replay(schedules):
    """The test's own replay: the ASAP start of every operation, by repeated relaxation."""
    p = len(schedules)
    ops = [(r, i, kind, j) for r, s in enumerate(schedules) for i, (kind, j) in enumerate(s)]
    start = {}
    for _ in range(len(ops) + 1):
        changed = False
        for r, i, kind, j in ops:
            deps = [(r, i - 1)] if i else []
            if kind == "F" and r > 0:
                deps.append((r - 1, schedules[r - 1].index(("F", j)) if ("F", j) in schedules[r - 1] else None))
            if kind == "B":
                q = r + 1 if r < p - 1 else r
                want = ("B", j) if r < p - 1 else ("F", j)
                deps.append((q, schedules[q].index(want) if want in schedules[q] else None))
            if any(d[1] is None for d in deps):
                continue
            if all(d in start for d in deps):
                t = max([start[d] + 1 for d in deps], default=0)
                if start.get((r, i)) != t:
                    start[(r, i)], changed = t, True
        if not changed:
            break
    if len(start) < len(ops):
        return None
    slots = max(start.values()) + 1
    return slots, 1 - len(ops) / (p * slots)


_bubble_cases = []
for _n_ranks, _batch, _m in [(4, 8, 8), (3, 5, 1), (4, 9, 2), (3, 7, 5), (2, 5, 3)]:
    torch.manual_seed(60 + _batch)
    _x, _y = torch.randn(_batch, 4), torch.randn(_batch, 4)
    _whole = nn.Sequential(*[_stage(r) for r in range(_n_ranks)])
    _loss = F.mse_loss(_whole(_x), _y)
    _loss.backward()
    _case = f"{_n_ranks} ranks, batch {_batch}, {_m} micro-batches"
    _out = run_distributed(_ofob_case, _n_ranks, _x, _y, _m, timeout=60)
    _sizes = [c.numel() for c in torch.tensor_split(_x, _m)]
    _canon = _canonical_1f1b(_n_ranks, _m)
    for _r, (_schedule, _l, _grads, _most, _sends) in enumerate(_out):
        for _i, (_g, _p) in enumerate(zip(_grads, _whole[_r].parameters())):
            # Gradients summed over micro-batches of fewer rows: float32 sums in another order.
            assert_close(_g, _p.grad, rtol=1e-5, atol=1e-6,
                         name=f"{_case}: rank {_r}'s gradient {_i} vs the unpipelined model's")
        assert _schedule == _canon[_r], (
            f"{_case}: rank {_r} ran {_schedule}; 1F1B runs min(p - r - 1, m) forwards, then one forward and one "
            f"backward at a time, then the backwards left: {_canon[_r]}")
        assert _most == min(_n_ranks - _r, _m), (
            f"{_case}: rank {_r} held {_most} micro-batches' activations at once (counted at the stage); 1F1B "
            f"holds min(p - r, m) = {min(_n_ranks - _r, _m)} (GPipe: m = {_m})")
        _forward = [n for n, dst in _sends if dst == _r + 1]
        _backward = [n for n, dst in _sends if dst == _r - 1]
        assert _forward == (_sizes if _r < _n_ranks - 1 else []) and _backward == (_sizes if _r > 0 else []), (
            f"{_case}: rank {_r} sent {_forward} elements forward and {_backward} back; expected one message "
            f"per micro-batch of {_sizes} elements to rank r + 1 (all but the last rank) and to rank r - 1 "
            f"(all but rank 0)")
        if _r == _n_ranks - 1:
            assert_scalar_close(_l, _loss.item(), rtol=1e-5, atol=1e-7, name=f"{_case}: the last rank's loss")
        else:
            assert _l is None, f"{_case}: rank {_r} is not the last stage and returns loss None, got {_l}"
    _p, _want = _n_ranks, (_n_ranks - 1) / (_m + _n_ranks - 1)
    _named = [("1F1B", _canon),
              ("GPipe", [[("F", j) for j in range(_m)] + [("B", j) for j in range(_m)]] * _p),
              ("one micro-batch at a time", [sum(([("F", j), ("B", j)] for j in range(_m)), [])] * _p)]
    _bubble_cases.extend((f"the {_name} schedule, {_case}", _sched, _want if _name == "1F1B" else None)
                         for _name, _sched in _named)
# Uneven work: rank 1 idles while rank 0 runs 3 forwards it never uses.
_bubble_cases.append(("an uneven schedule", [[("F", 0), ("F", 1), ("F", 2), ("B", 0)], [("F", 0), ("B", 0)]], None))
# Backward of a micro-batch on the last rank before its forward; a forward that rank 0 never runs.
_stuck = [[[("F", 0), ("B", 0)], [("B", 0), ("F", 0)]], [[("F", 0), ("B", 0)], [("F", 1), ("B", 1)]]]


def _bubbles(rank, world_size, cases, stuck):
    results = [pipeline_bubble(sched) for _, sched, _ in cases]
    raised = []
    for sched in stuck:
        try:
            pipeline_bubble(sched)
        except ValueError:
            raised.append(True)
        else:
            raised.append(False)
    return results, raised


# In a worker process, so that a replay that never ends fails after 30 s instead of hanging the notebook.
_results, _raised = run_distributed(_bubbles, 1, _bubble_cases, _stuck, timeout=30)[0]
for (_what, _sched, _want), (_slots, _bubble) in zip(_bubble_cases, _results):
    _oracle = _replay(_sched)
    assert isinstance(_slots, int) and (_slots, round(_bubble, 9)) == (_oracle[0], round(_oracle[1], 9)), (
        f"pipeline_bubble of {_what}: expected {_oracle[0]} slots, bubble {_oracle[1]:.4f}; got {_slots}, {_bubble}")
    if _want is not None:
        assert_scalar_close(_bubble, _want, rtol=1e-9, atol=1e-12, name=f"{_what}: 1F1B's bubble vs (p-1)/(m+p-1)")
for _sched, _ok in zip(_stuck, _raised):
    assert _ok, f"pipeline_bubble({_sched}) must raise ValueError: those schedules can never finish"
### END HIDDEN TESTS
assert True

# %% [markdown]
# GPipe against 1F1B, measured on 4 ranks and 8 micro-batches: the same slots and bubble, and
# the activations each rank holds at the peak.

# %%
def _pipelines(rank, world_size, x, y, m):
    stage = _Counted(_stage(rank))
    schedule, _ = one_f_one_b(stage, x, y, m)
    return schedule, stage.most

_m = 8
_runs = run_distributed(_pipelines, 4, torch.randn(16, 4), torch.randn(16, 4), _m, timeout=60)
_gpipe = [[("F", j) for j in range(_m)] + [("B", j) for j in range(_m)]] * 4
print("1F1B : slots %d, bubble %.3f, activations held per rank %s" % (
    *pipeline_bubble([s for s, _ in _runs]), [most for _, most in _runs]))
print("GPipe: slots %d, bubble %.3f, activations held per rank %s" % (*pipeline_bubble(_gpipe), [_m] * 4))
print(f"(p-1)/(m+p-1) = {3 / (_m + 3):.3f}")

# %% [markdown]
# ## 6. The memory and communication model
#
# **Parameters of a Llama.** With hidden size $h$, MLP size $f$, $L$ layers, $a$ attention
# heads of size $d$ (`head_dim`, which is $h/a$ unless the config says otherwise), $k$
# key/value heads (grouped-query attention) and vocabulary $V$, each layer has
# $q$ and $o$ projections of $h \cdot ad$ weights each, $k$ and $v$ projections of $h \cdot kd$,
# three MLP matrices of $h f$, and two RMSNorm weight vectors of $h$; the model adds the token
# embedding $Vh$, a final norm $h$ and the output head $Vh$ — unless the head is tied to the
# embedding (`tie_word_embeddings`). Llama has no biases.
#
# **Bytes per GPU for model states** (mixed-precision AdamW, as in the ZeRO paper): bf16
# parameters (2 bytes each), bf16 gradients (2), and the optimizer's float32 master
# weights, $m$ and $v$ ($4+4+4 = 12$): $16\Psi$ bytes for $\Psi$ parameters under DDP. On $N$ GPUs:
#
# | strategy | bytes per GPU |
# |---|---|
# | DDP | $(2 + 2 + 12)\Psi$ |
# | ZeRO-1 (optimizer state sharded) | $(2 + 2)\Psi + 12\Psi/N$ |
# | ZeRO-2 (+ gradients sharded) | $2\Psi + (2 + 12)\Psi/N$ |
# | ZeRO-3 (+ parameters sharded) | $16\Psi/N$ |
# | tensor parallel, degree $N$ (every weight split) | $16\Psi/N$ |
#
# (Activations come on top and depend on batch and sequence length; we leave them out.)
#
# **All-reduce time.** A ring all-reduce of $S$ bytes on $N$ GPUs sends $2(N-1)/N \cdot S$ bytes
# per GPU (exercise 1). At a per-GPU bandwidth $B$ bytes/s it takes at least
# $2(N-1)/N \cdot S / B$ seconds.
#
# **Pipeline bubble.** With $p$ stages and $m$ micro-batches, GPipe runs $m + p - 1$ time
# slots per pass, of which each stage is busy in $m$: the idle fraction is
# $(p-1)/(m+p-1)$.
#
# **Exercise.** Write the four functions.

# %% answer id=model
def llama_parameters(config):
    """Exact number of parameters of transformers' LlamaForCausalLM(config): uses
    config.vocab_size, hidden_size, intermediate_size, num_hidden_layers,
    num_attention_heads, num_key_value_heads, head_dim (may differ from hidden_size //
    num_attention_heads) and tie_word_embeddings. No biases. Returns an int."""
    ### BEGIN SOLUTION
    h, f, n_layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    d = getattr(config, "head_dim", None) or h // config.num_attention_heads
    attention = 2 * h * config.num_attention_heads * d + 2 * h * config.num_key_value_heads * d
    per_layer = attention + 3 * h * f + 2 * h
    embeddings = config.vocab_size * h * (1 if config.tie_word_embeddings else 2)
    return n_layers * per_layer + embeddings + h
    ### END SOLUTION


def bytes_per_gpu(n_params, n_gpus, strategy):
    """Bytes of model states (bf16 parameters and gradients, float32 AdamW master weights
    and moments) per GPU for strategy "ddp", "zero1", "zero2", "zero3" or "tp" (tensor
    parallelism of degree n_gpus), by the table above; no activations. Returns a number
    (a float in general: 12 Psi / N need not be whole).
    Raises ValueError for any other strategy."""
    ### BEGIN SOLUTION
    psi, n = n_params, n_gpus
    table = {
        "ddp": 16 * psi,
        "zero1": 4 * psi + 12 * psi / n,
        "zero2": 2 * psi + 14 * psi / n,
        "zero3": 16 * psi / n,
        "tp": 16 * psi / n,
    }
    if strategy not in table:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {sorted(table)}")
    return float(table[strategy])
    ### END SOLUTION


def allreduce_seconds(n_bytes, n_gpus, bandwidth):
    """Lower bound on the time of a ring all-reduce of n_bytes over n_gpus GPUs, each able
    to send `bandwidth` bytes per second: 2 (N - 1) / N * n_bytes / bandwidth (0 for one
    GPU). Returns a float."""
    ### BEGIN SOLUTION
    return 2 * (n_gpus - 1) / n_gpus * n_bytes / bandwidth
    ### END SOLUTION


def bubble_fraction(stages, micro_batches):
    """Fraction of GPipe's schedule a stage is idle: (p - 1) / (m + p - 1). Returns a float."""
    ### BEGIN SOLUTION
    return (stages - 1) / (micro_batches + stages - 1)
    ### END SOLUTION

# %% test id=test_model_visible points=1
from transformers import LlamaConfig

_cfg = LlamaConfig(vocab_size=100, hidden_size=8, intermediate_size=16, num_hidden_layers=2,
                   num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=False)
# Per layer: q, o 8x8 = 128; k, v 8x4 = 64; MLP 3 x 8 x 16 = 384; norms 16 -> 592.
# 2 layers 1184, embedding and head 2 x 800, final norm 8: 2792.
assert llama_parameters(_cfg) == 2792, f"llama_parameters of the small config: expected 2792, got {llama_parameters(_cfg)}"
assert_scalar_close(bytes_per_gpu(1e9, 8, "ddp"), 16e9, rtol=1e-12, atol=0, name="bytes_per_gpu(1e9, 8, 'ddp')")
assert_scalar_close(bytes_per_gpu(1e9, 8, "zero3"), 2e9, rtol=1e-12, atol=0, name="bytes_per_gpu(1e9, 8, 'zero3')")
assert_scalar_close(allreduce_seconds(1e9, 2, 1e9), 1.0, rtol=1e-12, atol=0, name="allreduce_seconds(1e9, 2, 1e9)")
assert_scalar_close(bubble_fraction(4, 4), 3 / 7, rtol=1e-12, atol=0, name="bubble_fraction(4, 4)")

# %% test id=test_model_hidden points=3
### BEGIN HIDDEN TESTS
from transformers import LlamaForCausalLM

_llama7 = dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
               num_attention_heads=32, num_key_value_heads=32, tie_word_embeddings=False)
_llama70 = dict(vocab_size=32000, hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
                num_attention_heads=64, num_key_value_heads=8, tie_word_embeddings=False)
# The published sizes of Llama 2 7B and 70B.
assert llama_parameters(LlamaConfig(**_llama7)) == 6_738_415_616, (
    f"Llama 2 7B: expected 6,738,415,616 parameters, got {llama_parameters(LlamaConfig(**_llama7)):,}")
assert llama_parameters(LlamaConfig(**_llama70)) == 68_976_648_192, (
    f"Llama 2 70B: expected 68,976,648,192 parameters, got {llama_parameters(LlamaConfig(**_llama70)):,}")
# Small configs against transformers itself (on the meta device: no memory), with tied
# heads and a head_dim that is not hidden / heads.
for _kw in [dict(vocab_size=50, hidden_size=12, intermediate_size=20, num_hidden_layers=3, num_attention_heads=3,
                 num_key_value_heads=3, tie_word_embeddings=True),
            dict(vocab_size=70, hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=6, tie_word_embeddings=False),
            dict(vocab_size=33, hidden_size=24, intermediate_size=40, num_hidden_layers=1, num_attention_heads=6,
                 num_key_value_heads=1, head_dim=8, tie_word_embeddings=True)]:
    _c = LlamaConfig(**_kw)
    with torch.device("meta"):
        _expected = sum(p.numel() for p in LlamaForCausalLM(_c).parameters())
    assert llama_parameters(_c) == _expected, (
        f"llama_parameters({_kw}): transformers' LlamaForCausalLM has {_expected}, got {llama_parameters(_c)}")
_psi = 6_738_415_616
for _n in (1, 4, 8, 64):
    for _s, _per_param in [("ddp", 16), ("zero1", 4 + 12 / _n), ("zero2", 2 + 14 / _n), ("zero3", 16 / _n),
                           ("tp", 16 / _n)]:
        assert_scalar_close(bytes_per_gpu(_psi, _n, _s), _psi * _per_param, rtol=1e-12, atol=0,
                            name=f"bytes_per_gpu({_psi}, {_n}, {_s!r})")
try:
    bytes_per_gpu(_psi, 8, "fsdp")
except ValueError:
    pass
else:
    raise AssertionError("bytes_per_gpu(..., 'fsdp') must raise ValueError (unknown strategy)")
for _b, _n, _bw in [(2 * _psi, 8, 300e9), (123.0, 1, 1e9), (1e6, 3, 2.5e9), (4e9, 1024, 50e9)]:
    assert_scalar_close(allreduce_seconds(_b, _n, _bw), 2 * (_n - 1) / _n * _b / _bw, rtol=1e-12, atol=0,
                        name=f"allreduce_seconds({_b}, {_n}, {_bw})")
for _p, _m in [(1, 1), (2, 1), (2, 8), (8, 32), (4, 100)]:
    assert_scalar_close(bubble_fraction(_p, _m), (_p - 1) / (_m + _p - 1), rtol=1e-12, atol=0,
                        name=f"bubble_fraction({_p}, {_m})")
### END HIDDEN TESTS
assert True

# %% [markdown]
# What fits on an 80 GB GPU? Model states only: activations, the CUDA context and
# fragmentation come on top, so a real run needs a margin.

# %%
_gb = 1e9
_configs = {
    "Llama 2 7B": LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                              num_attention_heads=32, num_key_value_heads=32),
    "Llama 2 70B": LlamaConfig(vocab_size=32000, hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
                               num_attention_heads=64, num_key_value_heads=8),
}
print(f"{'model':12} {'params':>8} " + " ".join(f"{s + ' x8':>10}" for s in ("ddp", "zero1", "zero2", "zero3", "tp"))
      + "   (GB per GPU, * = fits in 80 GB)")
for _name, _c in _configs.items():
    _p = llama_parameters(_c)
    _cells = []
    for _s in ("ddp", "zero1", "zero2", "zero3", "tp"):
        _v = bytes_per_gpu(_p, 8, _s) / _gb
        _cells.append(f"{_v:9.1f}{'*' if _v <= 80 else ' '}")
    print(f"{_name:12} {_p / 1e9:7.2f}B " + " ".join(_cells))
    _t = allreduce_seconds(2 * _p, 8, 300e9)
    print(f"{'':12} bf16 gradient all-reduce over 8 GPUs at 300 GB/s: at least {_t * 1e3:.0f} ms per step")

_ms = list(range(1, 33))
fig, ax = plt.subplots(figsize=(6, 3.2))
for _p in (2, 4, 8):
    ax.plot(_ms, [bubble_fraction(_p, m) for m in _ms], label=f"{_p} stages")
ax.set_xlabel("micro-batches m")
ax.set_ylabel("bubble fraction (p-1)/(m+p-1)")
ax.set_title("GPipe: more micro-batches, less idle time")
ax.legend()
plt.show()

# %% [markdown]
# ## Wrap-up: what real systems do differently
#
# - **NCCL, not gloo.** On GPUs the collectives run in NCCL, which picks rings or trees per
#   message size and topology (NVLink inside a node, InfiniBand between nodes), and splits a
#   ring into several channels. The byte count of exercise 1 stays the lower bound for
#   all-reduces the GPUs compute themselves; switches that reduce in the network (NVLink
#   SHARP, InfiniBand SHARP) beat it by sending each GPU's tensor once.
# - **Overlap.** `DistributedDataParallel` starts each ~25 MB bucket's all-reduce from a
#   gradient hook while backward still computes earlier layers; on GPUs this hides most of
#   the communication. On 2 CPU cores, computation and communication share the cores, so
#   the gain is small (see the benchmark).
# - **ZeRO-2/3 and FSDP.** Real ZeRO-2 reduce-scatters in buckets during backward and frees
#   each bucket's gradients at once; FSDP (exercise 3b) prefetches the next layer's
#   all-gather while the current one computes (so two layers' parameters are alive), keeps
#   activations instead of recomputing them unless activation checkpointing is on, and
#   reduce-scatters in bf16 or fp32 as configured.
# - **Tensor and pipeline parallelism.** Megatron splits attention as you split the MLP
#   (heads are independent: q, k, v column-parallel, the output projection row-parallel), so
#   a transformer layer costs two all-reduces forward and two backward; sequence parallelism
#   replaces each by a reduce-scatter and an all-gather so that norms and dropout also run on
#   1/N of the activations. Pipelines (exercise 5b): a backward takes about twice a forward,
#   so real schedules count it as two slots, and the bubble of 1F1B stays $(p-1)/(m+p-1)$
#   of the time. Only **interleaved** schedules (Megatron's virtual stages:
#   $v$ non-adjacent chunks of layers per rank) shrink the bubble, by about a factor $v$,
#   for $v$ times more messages. Large runs combine all three: data × tensor × pipeline
#   ("3D") parallelism, TP inside a node, pipeline and data across nodes.
# - **Mixed precision and activations.** Real budgets add activations (reduced by
#   activation checkpointing) and keep the all-reduce in bf16 or fp32 depending on the
#   model's sensitivity.
