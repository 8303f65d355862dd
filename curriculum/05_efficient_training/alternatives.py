"""Alternative correct answers for efficient_training, written blind (from the released
notebook only), in styles unlike a typical reference. Graded by
`python -m graders.authoring.alternatives efficient_training`.
"""

# ruff: noqa: E501  (answer cells are notebook code, as long as a notebook line)

from graders.authoring.alternatives import Alternative

ALTERNATIVES = [
    Alternative(
        "formats_from_finfo_ldexp",
        "formats",
        """def format_bits():
    # Read off torch.finfo: eps = 2**-m, and bits = 1 + e + m.
    out = {}
    for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2):
        info = torch.finfo(dtype)
        man = -math.frexp(info.eps)[1] + 1
        out[dtype] = (info.bits - 1 - man, man)
    return out


def float_format(exp_bits, man_bits, finite_only=False):
    bias = (1 << (exp_bits - 1)) - 1
    if finite_only:
        # top exponent 2**e - 1 holds numbers; its largest fraction (all ones) is NaN
        top_exp = (1 << exp_bits) - 1 - bias
        max_fraction = (1 << man_bits) - 2
    else:
        top_exp = (1 << exp_bits) - 2 - bias
        max_fraction = (1 << man_bits) - 1
    return {
        "bias": bias,
        "eps": math.ldexp(1.0, -man_bits),
        "max": math.ldexp(float((1 << man_bits) + max_fraction), top_exp - man_bits),
        "smallest_normal": math.ldexp(1.0, 1 - bias),
        "smallest_subnormal": math.ldexp(1.0, 1 - bias - man_bits),
    }
""",
        "the bit counts read off torch.finfo (eps, bits); constants with math.ldexp and integer fractions",
    ),
    Alternative(
        "formats_fractions",
        "formats",
        """def format_bits():
    return dict(
        [
            (torch.float32, (8, 23)),
            (torch.float16, (5, 10)),
            (torch.bfloat16, (8, 7)),
            (torch.float8_e4m3fn, (4, 3)),
            (torch.float8_e5m2, (5, 2)),
        ]
    )


def float_format(exp_bits, man_bits, finite_only=False):
    from fractions import Fraction

    bias = 2 ** (exp_bits - 1) - 1
    two = Fraction(2)
    if finite_only:
        largest = (2 - 2 * two**-man_bits) * two ** (2**exp_bits - 1 - bias)
    else:
        largest = (2 - two**-man_bits) * two ** (2**exp_bits - 2 - bias)
    return {
        "bias": int(bias),
        "eps": float(two**-man_bits),
        "max": float(largest),
        "smallest_normal": float(two ** (1 - bias)),
        "smallest_subnormal": float(two ** (1 - bias - man_bits)),
    }
""",
        "a literal table; constants as exact fractions.Fraction, converted at the end",
    ),
    Alternative(
        "accumulate_preallocated",
        "accumulate",
        """def running_sum(values, acc_dtype):
    n, k = values.shape
    history = torch.zeros(n + 1, k, dtype=torch.float64, device=values.device)
    acc = torch.zeros(k, dtype=acc_dtype, device=values.device)
    for i in range(n):
        acc = acc + values[i].to(acc_dtype)
        history[i + 1] = acc
    return history


def stall_value(x, man_bits):
    mant, exp = math.frexp(x)  # x = mant * 2**exp, 0.5 <= mant < 1
    ceil_log2 = exp - 1 if mant == 0.5 else exp
    return math.ldexp(1.0, ceil_log2 + man_bits + 1)
""",
        "a preallocated float64 history filled row by row; ceil(log2) from math.frexp",
    ),
    Alternative(
        "accumulate_stack_steps",
        "accumulate",
        """def running_sum(values, acc_dtype):
    steps = [torch.zeros(values.shape[1], dtype=acc_dtype, device=values.device)]
    for row in values.unbind(0):
        steps.append(torch.add(steps[-1], row.to(acc_dtype)))
    return torch.stack([s.to(torch.float64) for s in steps])


def stall_value(x, man_bits):
    # The smallest k with 2**k >= x, by stepping (exact for powers of two).
    k = 0
    while 2.0**k < x:
        k += 1
    while 2.0 ** (k - 1) >= x:
        k -= 1
    return float(2.0 ** (k + man_bits + 1))
""",
        "a list of accumulators and torch.stack; ceil(log2) by stepping powers of two",
    ),
    Alternative(
        "scaler_tensor_state",
        "scaler",
        '''class DynamicLossScaler:
    """The scale kept as a 0-dim float32 tensor, as GradScaler keeps it."""

    def __init__(self, init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000):
        self._scale = torch.tensor(init_scale, dtype=torch.float32)
        self.growth_factor = growth_factor
        self.backoff_factor = backoff_factor
        self.growth_interval = growth_interval
        self._good_steps = 0
        self._unscaled = False
        self._found_inf = False

    def get_scale(self):
        return self._scale.item()

    def scale(self, loss):
        return loss * self._scale.to(loss.device)

    def unscale_(self, optimizer):
        if self._unscaled:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        inv = self._scale.double().reciprocal().float()
        found = False
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                p.grad.mul_(inv.to(p.grad.device))
                if not bool(torch.isfinite(p.grad).all()):
                    found = True
        self._found_inf = found
        self._unscaled = True

    def step(self, optimizer):
        if not self._unscaled:
            self.unscale_(optimizer)
        if self._found_inf:
            return False
        optimizer.step()
        return True

    def update(self):
        if self._found_inf:
            self._scale = self._scale * self.backoff_factor
            self._good_steps = 0
        else:
            self._good_steps += 1
            if self._good_steps == self.growth_interval:
                grown = self._scale * self.growth_factor
                if bool(torch.isfinite(grown)):
                    self._scale = grown
                self._good_steps = 0
        self._unscaled = False
        self._found_inf = False
''',
        "the scale as a 0-dim float32 tensor, double reciprocal as GradScaler",
    ),
    Alternative(
        "scaler_python_float_flags",
        "scaler",
        '''class DynamicLossScaler:
    """The scale kept as a Python float rounded to float32 after every change; the per-step
    flags in a small dict that update() clears."""

    FLOAT32_MAX = torch.finfo(torch.float32).max

    def __init__(self, init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000):
        self._s = self._f32(init_scale)
        self.factors = {"growth": growth_factor, "backoff": backoff_factor}
        self.growth_interval = growth_interval
        self.streak = 0
        self.pending = {}

    @staticmethod
    def _f32(value):
        return torch.tensor(value, dtype=torch.float32).item()

    def get_scale(self):
        return float(self._s)

    def scale(self, loss):
        return loss * self._s

    def unscale_(self, optimizer):
        if "found_inf" in self.pending:
            raise RuntimeError("unscale_ was already called in this step")
        inverse = self._f32(1.0 / self._s)
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        for grad in grads:
            grad.mul_(inverse)
        self.pending["found_inf"] = any(not torch.isfinite(grad).all().item() for grad in grads)

    def step(self, optimizer):
        if "found_inf" not in self.pending:
            self.unscale_(optimizer)
        if self.pending["found_inf"]:
            return False
        optimizer.step()
        return True

    def update(self):
        if self.pending.get("found_inf", False):
            self._s = self._f32(self._s * self.factors["backoff"])
            self.streak = 0
        else:
            self.streak += 1
            if self.streak == self.growth_interval:
                grown = self._s * self.factors["growth"]
                if grown <= self.FLOAT32_MAX:
                    self._s = self._f32(grown)
                self.streak = 0
        self.pending = {}
''',
        "the scale as a Python float rounded to float32, per-step flags in a dict",
    ),
    Alternative(
        "scaled_step_clip_grad_norm",
        "scaled_step",
        """def scaled_step(loss, model, optimizer, scaler, max_norm):
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    total = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm, error_if_nonfinite=False)
    scaler.step(optimizer)
    scaler.update()
    model.zero_grad(set_to_none=True)
    return total.item()
""",
        "torch.nn.utils.clip_grad_norm_, model.zero_grad",
    ),
    Alternative(
        "scaled_step_manual_clip",
        "scaled_step",
        """def scaled_step(loss, model, optimizer, scaler, max_norm):
    # Clipping by hand: the norm of the per-tensor norms, one scale for all gradients.
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if grads:
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        coef = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
        for g in grads:
            g.mul_(coef)
    else:
        norm = torch.tensor(0.0)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    for p in model.parameters():
        p.grad = None
    return float(norm)
""",
        "clipping by hand (norm of per-tensor norms, clamped scale), optimizer.zero_grad plus p.grad = None",
    ),
    Alternative(
        "underflow_cast_and_search",
        "underflow",
        """def fp16_underflow_count(grads, scale=1.0):
    count = 0
    for g in grads:
        scaled = g * scale
        count += int(((g != 0) & (scaled.to(torch.float16) == 0)).sum())
    return count


def largest_safe_scale(grads):
    # Start from the exponent that the largest magnitude allows, then check with real fp16 casts.
    biggest = max(float(g.abs().max()) for g in grads)
    k = math.floor(math.log2(65504.0 / biggest)) + 1

    def overflows(power):
        return any(bool(torch.isinf((g * 2.0**power).half()).any()) for g in grads)

    while overflows(k):
        k -= 1
    while not overflows(k + 1):
        k += 1
    return 2.0**k
""",
        "casts to float16; the scale from log2 of the largest magnitude, then checked by real casts",
    ),
    Alternative(
        "underflow_thresholds",
        "underflow",
        """def fp16_underflow_count(grads, scale=1.0):
    # Round-to-nearest-even sends exactly the magnitudes <= 2**-25 (half the smallest fp16
    # subnormal; the tie goes to the even neighbour, 0) to zero.
    half_subnormal = 2.0**-25
    total = 0
    for g in grads:
        scaled = (g * scale).abs()
        total += int(torch.count_nonzero((g != 0) & (scaled <= half_subnormal)))
    return total


def largest_safe_scale(grads):
    # Magnitudes from 65520 up (the midpoint between 65504 and 2**16, which rounds to even,
    # i.e. up) become inf in fp16; scaling by a power of two is exact in float32.
    biggest = max(g.abs().max().item() for g in grads)
    mant, exp = math.frexp(65520.0 / biggest)
    k = exp  # 2**(exp-1) <= 65520 / biggest < 2**exp
    while biggest * 2.0**k >= 65520.0:
        k -= 1
    return float(2.0**k)
""",
        "no casts: |g s| <= 2**-25 underflows, |g| 2**k >= 65520 overflows (round to nearest even)",
    ),
    Alternative(
        "recorder_pytree",
        "dtype_recorder",
        '''class DtypeRecorder(TorchDispatchMode):
    """Flattens any output structure with torch.utils._pytree."""

    def __init__(self):
        super().__init__()
        self.ops = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        from torch.utils._pytree import tree_leaves

        result = func(*args, **(kwargs or {}))
        dtypes = {t.dtype for t in tree_leaves(result) if isinstance(t, torch.Tensor) and t.is_floating_point()}
        if dtypes:
            self.ops.setdefault(func.overloadpacket.__name__, set()).update(dtypes)
        return result
''',
        "outputs flattened by torch.utils._pytree.tree_leaves",
    ),
    Alternative(
        "recorder_explicit",
        "dtype_recorder",
        """class DtypeRecorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = {} if kwargs is None else kwargs
        out = func(*args, **kwargs)
        outputs = list(out) if isinstance(out, (tuple, list)) else [out]
        name = func.overloadpacket.__name__
        for item in outputs:
            if torch.is_tensor(item) and torch.is_floating_point(item):
                if name not in self.ops:
                    self.ops[name] = set()
                self.ops[name].add(item.dtype)
        return out
""",
        "explicit tuple/list handling",
    ),
    Alternative(
        "train_nullcontext",
        "train_mixed",
        """def train_mixed(model, batches, lr, autocast_dtype=None):
    import contextlib

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    for batch in batches:
        ctx = (
            torch.autocast(batch.device.type, dtype=autocast_dtype)
            if autocast_dtype is not None
            else contextlib.nullcontext()
        )
        with ctx:
            loss = model(input_ids=batch, labels=batch, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses
""",
        "contextlib.nullcontext when no dtype, optimizer.zero_grad",
    ),
    Alternative(
        "train_enabled_flag",
        "train_mixed",
        """def train_mixed(model, batches, lr, autocast_dtype=None):
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train(True)
    out = []
    for i in range(len(batches)):
        ids = batches[i]
        with torch.autocast(ids.device.type, dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
            result = model(input_ids=ids, labels=ids, use_cache=False)
        result.loss.backward()
        opt.step()
        for p in model.parameters():
            p.grad = None
        out.append(float(result.loss.detach()))
    return out
""",
        "torch.autocast(enabled=...) always entered, gradients set to None by hand",
    ),
    Alternative(
        "state_bytes_table",
        "state_bytes",
        """def training_state_bytes(numels, recipe, block_size=2048):
    per_param = {
        "fp32": {"weights": 4, "grads": 4, "master": 0, "optimizer": 8},
        "mixed": {"weights": 2, "grads": 2, "master": 4, "optimizer": 8},
        "mixed_8bit": {"weights": 2, "grads": 2, "master": 4, "optimizer": 2},
    }
    if recipe not in per_param:
        raise ValueError(f"unknown recipe {recipe!r}")
    n = sum(numels)
    out = {key: b * n for key, b in per_param[recipe].items()}
    if recipe == "mixed_8bit":
        out["optimizer"] += sum(2 * 4 * -(-size // block_size) for size in numels)
    out["total"] = out["weights"] + out["grads"] + out["master"] + out["optimizer"]
    return out
""",
        "a bytes-per-parameter table, ceil division for the blocks",
    ),
    Alternative(
        "state_bytes_branches",
        "state_bytes",
        """def training_state_bytes(numels, recipe, block_size=2048):
    n = 0
    blocks = 0
    for size in numels:
        n += size
        blocks += math.ceil(size / block_size)
    if recipe == "fp32":
        weights, grads, master, optimizer = 4 * n, 4 * n, 0, 2 * 4 * n
    elif recipe == "mixed":
        weights, grads, master, optimizer = 2 * n, 2 * n, 4 * n, 2 * 4 * n
    elif recipe == "mixed_8bit":
        weights, grads, master, optimizer = 2 * n, 2 * n, 4 * n, 2 * (n + 4 * blocks)
    else:
        raise ValueError("recipe must be fp32, mixed or mixed_8bit")
    return {"weights": weights, "grads": grads, "master": master, "optimizer": optimizer,
            "total": weights + grads + master + optimizer}
""",
        "if/elif per recipe, math.ceil for the blocks",
    ),
    Alternative(
        "activations_by_module",
        "activations",
        """def activation_bytes_per_token_per_layer(config, bytes_per_value=4):
    h = config.hidden_size
    d = getattr(config, "head_dim", None) or h // config.num_attention_heads
    q_width = config.num_attention_heads * d
    kv_width = config.num_key_value_heads * d
    m = config.intermediate_size
    norm = h + 1 + h  # RMSNorm: its input (pow, mul), the rsqrt output, the normalised x (weight *)
    attention = h + q_width + 2 * kv_width + q_width  # shared input of q/k/v_proj; q, k, v, output
    mlp = h + m + m + m + m  # input of gate/up, gate output (silu), silu output and up output (mul), down input
    values = 2 * norm + attention + mlp
    return values * bytes_per_value + 4 * config.num_attention_heads  # float32 log-sum-exp per head


def measure_activation_bytes_per_token_per_layer(config, batch=2, seq=32):
    ids = torch.randint(0, config.vocab_size, (batch, seq))
    peaks = []
    for layers in (1, 2):
        cfg = LlamaConfig(**{**config.to_dict(), "num_hidden_layers": layers})
        model = LlamaForCausalLM(cfg).train()
        peaks.append(peak_memory_torch(lambda m=model: m(input_ids=ids, labels=ids, use_cache=False).loss)[1])
    return float(peaks[1] - peaks[0]) / (batch * seq)
""",
        "the count module by module; two models in a loop over layer counts",
    ),
    Alternative(
        "activations_by_width",
        "activations",
        """def activation_bytes_per_token_per_layer(config, bytes_per_value=4):
    # Grouped by what is kept: widths of hidden size, of the projections, of the MLP.
    head = config.head_dim if getattr(config, "head_dim", None) else config.hidden_size // config.num_attention_heads
    hidden_wide = 2 * 2 * config.hidden_size + 2 * config.hidden_size  # norms: in + out; projections' inputs
    scalars = 2  # one rsqrt per norm
    heads_wide = 2 * config.num_attention_heads * head + 2 * config.num_key_value_heads * head
    mlp_wide = 4 * config.intermediate_size
    lse = 4 * config.num_attention_heads
    return bytes_per_value * (hidden_wide + scalars + heads_wide + mlp_wide) + lse


def measure_activation_bytes_per_token_per_layer(config, batch=2, seq=32):
    import copy as _copy

    def peak(n_layers):
        cfg = _copy.deepcopy(config)
        cfg.num_hidden_layers = n_layers
        model = LlamaForCausalLM(cfg)
        model.train()
        ids = torch.randint(0, cfg.vocab_size, (batch, seq), device="cpu")

        def forward():
            return model(input_ids=ids, labels=ids, use_cache=False).loss

        return peak_memory_torch(forward, device="cpu")[1]

    return (peak(2) - peak(1)) / float(batch * seq)
""",
        "the count grouped by widths; configs by deepcopy, a nested peak() helper",
    ),
    Alternative(
        "checkpointing_partial",
        "checkpointing",
        """def checkpoint_layers(model):
    def run_checkpointed(inner, *args, **kwargs):
        return checkpoint(inner, *args, use_reentrant=False, **kwargs)

    count = 0
    for layer in model.model.layers:
        layer.forward = functools.partial(run_checkpointed, layer.forward)
        count += 1
    return count


def recompute_matmul_flops(config, tokens):
    h, m = config.hidden_size, config.intermediate_size
    d = getattr(config, "head_dim", None) or h // config.num_attention_heads
    q, kv = config.num_attention_heads * d, config.num_key_value_heads * d
    replayed = h * q + 2 * h * kv + q * h + 2 * h * m  # q, k, v, o, gate, up; not down
    return 2 * tokens * replayed * config.num_hidden_layers
""",
        "functools.partial around the bound forward; FLOPs from the config",
    ),
    Alternative(
        "checkpointing_factory",
        "checkpointing",
        """def _checkpointed(forward):
    def wrapped(*args, **kwargs):
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)

    return wrapped


def checkpoint_layers(model):
    layers = list(model.model.layers)
    for layer in layers:
        layer.forward = _checkpointed(layer.forward)
    return len(layers)


def recompute_matmul_flops(config, tokens):
    # The projections' weights, read off a LlamaForCausalLM built on the meta device.
    cfg = LlamaConfig(**{**config.to_dict(), "attention_bias": False, "mlp_bias": False})
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg)
    weights = sum(
        module.weight.numel()
        for name, module in model.model.layers.named_modules()
        if isinstance(module, nn.Linear) and not name.endswith("down_proj")
    )
    return int(2 * tokens * weights)
""",
        "a closure factory; FLOPs from the nn.Linear weights of a meta-device model",
    ),
    Alternative(
        "plan_slope_intercept",
        "plan",
        """RECIPES = {
    "fp32": {"states": "fp32", "bytes_per_value": 4, "checkpointing": False},
    "bf16+ckpt": {"states": "mixed", "bytes_per_value": 2, "checkpointing": True},
    "bf16+ckpt+8bit": {"states": "mixed_8bit", "bytes_per_value": 2, "checkpointing": True},
}


def training_memory(config, batch, seq, recipe):
    spec = RECIPES[recipe]
    b = spec["bytes_per_value"]
    states = training_state_bytes(param_numels(config), spec["states"])["total"]
    per_layer = activation_bytes_per_token_per_layer(config, b)
    if spec["checkpointing"]:
        per_token = config.num_hidden_layers * config.hidden_size * b + per_layer
    else:
        per_token = config.num_hidden_layers * per_layer
    return int(states + batch * seq * (per_token + 8 * config.vocab_size))


def largest_fit(configs, budget, seq, recipe, memory=training_memory):
    # Linear in B: the memory at B = 1 and B = 2 give the intercept and the slope.
    best = None
    for index, config in enumerate(configs):
        if memory(config, 1, seq, recipe) > budget:
            continue
        size = sum(param_numels(config))
        if best is None or size > best[0]:
            best = (size, index)
    if best is None:
        return None
    config = configs[best[1]]
    one, two = memory(config, 1, seq, recipe), memory(config, 2, seq, recipe)
    slope = two - one
    return best[1], (budget - (one - slope)) // slope
""",
        "the largest batch from the memory at B = 1 and 2 (slope and intercept)",
    ),
    Alternative(
        "plan_doubling_bisection",
        "plan",
        """RECIPES = {
    "fp32": {"states": "fp32", "bytes_per_value": 4, "checkpointing": False},
    "bf16+ckpt": {"states": "mixed", "bytes_per_value": 2, "checkpointing": True},
    "bf16+ckpt+8bit": {"states": "mixed_8bit", "bytes_per_value": 2, "checkpointing": True},
}


def training_memory(config, batch, seq, recipe):
    r = RECIPES[recipe]
    L, h, V = config.num_hidden_layers, config.hidden_size, config.vocab_size
    A = activation_bytes_per_token_per_layer(config, r["bytes_per_value"])
    acts = (L * h * r["bytes_per_value"] + A) if r["checkpointing"] else L * A
    states = training_state_bytes(param_numels(config), r["states"])["total"]
    return states + batch * seq * acts + batch * seq * 8 * V


def largest_fit(configs, budget, seq, recipe, memory=training_memory):
    # Doubling then bisection on the batch size, calling `memory` itself.
    fitting = [i for i, c in enumerate(configs) if memory(c, 1, seq, recipe) <= budget]
    if not fitting:
        return None
    index = max(fitting, key=lambda i: (sum(param_numels(configs[i])), -i))
    config = configs[index]
    lo, hi = 1, 2
    while memory(config, hi, seq, recipe) <= budget:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if memory(config, mid, seq, recipe) <= budget:
            lo = mid
        else:
            hi = mid
    return index, lo
""",
        "the largest batch by doubling then bisection on memory()",
    ),
    Alternative(
        "plan_ties_to_last",
        "plan",
        """RECIPES = {
    "fp32": {"states": "fp32", "bytes_per_value": 4, "checkpointing": False},
    "bf16+ckpt": {"states": "mixed", "bytes_per_value": 2, "checkpointing": True},
    "bf16+ckpt+8bit": {"states": "mixed_8bit", "bytes_per_value": 2, "checkpointing": True},
}


def training_memory(config, batch, seq, recipe):
    spec = RECIPES[recipe]
    b = spec["bytes_per_value"]
    states = training_state_bytes(param_numels(config), spec["states"])["total"]
    per_layer = activation_bytes_per_token_per_layer(config, b)
    if spec["checkpointing"]:
        per_token = config.num_hidden_layers * config.hidden_size * b + per_layer
    else:
        per_token = config.num_hidden_layers * per_layer
    return int(states + batch * seq * (per_token + 8 * config.vocab_size))


def largest_fit(configs, budget, seq, recipe, memory=training_memory):
    # Linear in B: the memory at B = 1 and B = 2 give the intercept and the slope. Ties of
    # size (not covered by the docstring) go to the last config.
    best = None
    for index, config in enumerate(configs):
        if memory(config, 1, seq, recipe) > budget:
            continue
        size = sum(param_numels(config))
        if best is None or size >= best[0]:  # among equal sizes, the last
            best = (size, index)
    if best is None:
        return None
    config = configs[best[1]]
    one, two = memory(config, 1, seq, recipe), memory(config, 2, seq, recipe)
    slope = two - one
    return best[1], (budget - (one - slope)) // slope
""",
        "slope and intercept; configs of equal size: the last one (the docstring names no tie rule)",
    ),
    Alternative(
        "scaled_step_float64_norm",
        "scaled_step",
        """def scaled_step(loss, model, optimizer, scaler, max_norm):
    # The norm of the unscaled gradients summed in float64 (exact to ~1e-16), clipping in place.
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    total = math.sqrt(sum(float(g.detach().double().pow(2).sum()) for g in grads))
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            g.mul_(coef)
    scaler.step(optimizer)
    scaler.update()
    model.zero_grad(set_to_none=True)
    return total
""",
        "the norm summed in float64 in Python, scaled only when above max_norm",
    ),
]

DEFECTS: list = []
