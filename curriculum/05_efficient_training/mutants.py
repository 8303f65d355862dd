"""Wrong-but-plausible answers for the efficient-training unit; each must lose points.

Every mutant is the reference answer cell (read from `efficient_training.py`, solution
markers removed) with one mistake edited in, so a mutant cannot drift from the reference:
if the reference text changes and an edit no longer applies, loading this file fails loudly.
"""

from __future__ import annotations

from pathlib import Path

from graders.authoring.mutants import EditedMutants

_m = EditedMutants(Path(__file__).resolve().parent / "efficient_training.py")

FORMATS = ("test_formats_visible", "test_formats_hidden")
ACCUMULATE = ("test_accumulate_visible", "test_accumulate_hidden")
SCALER = ("test_scaler_visible", "test_scaler_hidden")
STEP = ("test_scaled_step_visible", "test_scaled_step_hidden")
UNDERFLOW = ("test_underflow_visible", "test_underflow_hidden")
RECORDER = ("test_dtype_recorder_visible", "test_dtype_recorder_hidden")
TRAIN = ("test_train_mixed_visible", "test_train_mixed_hidden")
STATES = ("test_state_bytes_visible", "test_state_bytes_hidden")
ACTIVATIONS = ("test_activations_visible", "test_activations_hidden")
CKPT = ("test_checkpointing_visible", "test_checkpointing_hidden")
PLAN = ("test_plan_visible", "test_plan_hidden")

_LOOP = ("    for row in values:\n"
         "        acc = acc + row.to(acc_dtype)\n"
         "        history.append(acc.double())\n"
         "    return torch.stack(history)\n")
_CKPT_LOOP = ("    for layer in model.model.layers:\n"
              "        layer.forward = functools.partial(checkpoint, layer.forward, use_reentrant=False)\n")

MUTANTS = [
    # --- 1. number formats -----------------------------------------------------------------------
    _m("formats_bf16_bits_swapped", "formats", [("torch.bfloat16: (8, 7),", "torch.bfloat16: (7, 8),")],
       ("test_formats_hidden",), "swaps bf16's exponent and mantissa bits"),
    _m("formats_bias_off_by_one", "formats",
       [("bias = 2 ** (exp_bits - 1) - 1", "bias = 2 ** (exp_bits - 1)")],
       FORMATS, "takes the bias as 2**(e-1) instead of 2**(e-1) - 1"),
    _m("formats_top_exponent_is_normal", "formats",
       [("top = 2 ** exp_bits - 2 - bias", "top = 2 ** exp_bits - 1 - bias")], FORMATS,
       "counts the all-ones exponent (inf/NaN) as a normal exponent in IEEE formats"),
    _m("formats_fn_no_nan_pattern", "formats",
       [("        largest_fraction = 2.0 - 2.0 ** (1 - man_bits)"
         "  # ...but its all-ones fraction is NaN\n", "")],
       ("test_formats_hidden",), "forgets that e4m3fn's all-ones pattern is NaN: max 480 instead of 448"),
    _m("formats_subnormal_one_binade_low", "formats",
       [('"smallest_subnormal": 2.0 ** (1 - bias - man_bits)',
         '"smallest_subnormal": 2.0 ** (-bias - man_bits)')],
       FORMATS, "puts the smallest subnormal one binade too low (2**(-bias-m))"),
    _m("formats_eps_is_unit_roundoff", "formats",
       [('"eps": 2.0 ** -man_bits', '"eps": 2.0 ** (-man_bits - 1)')],
       FORMATS, "gives the unit roundoff 2**-(m+1) as machine epsilon"),
    # --- 1. accumulation -------------------------------------------------------------------------
    _m("accumulate_in_float64", "accumulate",
       [("acc = torch.zeros(values.shape[1], dtype=acc_dtype, device=values.device)",
         "acc = torch.zeros(values.shape[1], dtype=torch.float64, device=values.device)"),
        ("        history.append(acc.double())\n", "        history.append(acc.to(acc_dtype).double())\n")],
       ACCUMULATE, "accumulates in float64 and only rounds the reported values: no stall"),
    _m("accumulate_cumsum", "accumulate",
       [(_LOOP, "    sums = values.to(acc_dtype).cumsum(0).double()\n"
                "    return torch.cat([torch.stack(history), sums])\n")],
       ACCUMULATE, "uses torch.cumsum, whose kernel accumulates in higher precision than the dtype"),
    _m("accumulate_in_place", "accumulate",
       [("        acc = acc + row.to(acc_dtype)\n", "        acc += row.to(acc_dtype)\n")],
       ("test_accumulate_hidden",),
       "adds in place: with a float64 accumulator acc.double() is acc, so every history row is the final "
       "sum (a blind wrong answer)"),
    _m("accumulate_no_initial_zero", "accumulate", [("    history = [acc.double()]\n", "    history = []\n")],
       ACCUMULATE, "leaves out the starting zero: n rows instead of n + 1"),
    _m("stall_floor_log2", "accumulate",
       [("ceil_log2 = exp - 1 if frac == 0.5 else exp", "ceil_log2 = exp - 1")],
       ACCUMULATE, "uses floor(log2 x) instead of ceil(log2 x)"),
    _m("stall_missing_half_ulp", "accumulate",
       [("return 2.0 ** (ceil_log2 + man_bits + 1)", "return 2.0 ** (ceil_log2 + man_bits)")],
       ACCUMULATE, "stalls when x < ulp instead of x <= ulp / 2"),
    # --- 2. dynamic loss scaler ------------------------------------------------------------------
    _m("scaler_never_skips", "scaler",
       [("        if self._found_inf:\n            return False\n"
         "        optimizer.step()\n        return True\n",
         "        optimizer.step()\n        return not self._found_inf\n")],
       SCALER, "steps even when a gradient overflowed: inf/NaN reach the weights"),
    _m("scaler_count_kept_after_overflow", "scaler",
       [("            self._scale *= self.backoff_factor\n            self._good_steps = 0\n",
         "            self._scale *= self.backoff_factor\n")],
       ("test_scaler_hidden",), "keeps counting good steps across an overflow"),
    _m("scaler_count_kept_after_growth", "scaler",
       [("                    self._scale = grown\n                self._good_steps = 0\n",
         "                    self._scale = grown\n")],
       ("test_scaler_hidden",), "does not restart the count after growing: grows only once"),
    _m("scaler_no_unscale", "scaler", [("                        p.grad.mul_(inv_scale)\n", "")],
       SCALER, "never divides the gradients by the scale"),
    _m("scaler_growth_unbounded", "scaler",
       [("if grown <= torch.finfo(torch.float32).max:", "if math.isfinite(grown):")],
       ("test_scaler_hidden",), "lets the scale grow past float32's range (Python floats go further)"),
    _m("scaler_nan_not_detected", "scaler",
       [("found_inf = found_inf or not bool(torch.isfinite(p.grad).all())",
         "found_inf = found_inf or bool(torch.isinf(p.grad).any())")],
       ("test_scaler_hidden",), "checks for inf only: a NaN gradient is stepped into the weights"),
    _m("scaler_double_unscale_allowed", "scaler",
       [('            raise RuntimeError("unscale_() has already been called on this optimizer'
         ' since the last update()")\n',
         "            pass\n")],
       ("test_scaler_hidden",), "allows a second unscale_, which divides the gradients twice"),
    # --- 2. scaled step --------------------------------------------------------------------------
    _m("step_clip_before_unscale", "scaled_step",
       [("    scaler.unscale_(optimizer)\n"
         "    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)\n",
         "    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)\n"
         "    scaler.unscale_(optimizer)\n")],
       STEP, "clips the scaled gradients, then unscales"),
    _m("step_no_unscale", "scaled_step", [("    scaler.unscale_(optimizer)\n", "")], STEP,
       "leaves unscaling to step(): clipping sees gradients S times too large"),
    _m("step_no_update", "scaled_step", [("    scaler.update()\n", "")], ("test_scaled_step_hidden",),
       "never updates the scale (GradScaler then refuses the next unscale_)"),
    _m("step_no_zero_grad", "scaled_step", [("    optimizer.zero_grad(set_to_none=True)\n", "")], STEP,
       "never zeroes the gradients: they accumulate across steps"),
    _m("step_zero_grad_before_step", "scaled_step",
       [("    scaler.step(optimizer)\n    scaler.update()\n    optimizer.zero_grad(set_to_none=True)\n",
         "    optimizer.zero_grad(set_to_none=True)\n    scaler.step(optimizer)\n    scaler.update()\n")],
       ("test_scaled_step_hidden",), "zeroes the gradients before the optimizer step: nothing is learned"),
    # --- 2. underflow ----------------------------------------------------------------------------
    _m("underflow_counts_zeros", "underflow",
       [("return sum(int(((g != 0) & ((g * scale).half() == 0)).sum()) for g in grads)",
         "return sum(int(((g * scale).half() == 0).sum()) for g in grads)")],
       UNDERFLOW, "also counts gradients that were zero to begin with"),
    _m("underflow_ignores_scale", "underflow", [("((g * scale).half() == 0)", "(g.half() == 0)")], UNDERFLOW,
       "forgets to multiply by the scale before rounding"),
    _m("underflow_bf16", "underflow", [("((g * scale).half() == 0)", "((g * scale).bfloat16() == 0)")],
       UNDERFLOW, "rounds to bf16 instead of fp16"),
    _m("safe_scale_no_adjustment", "underflow",
       [("    while torch.isinf(torch.tensor(amax * 2.0**k).half()):\n        k -= 1\n"
         "    while not torch.isinf(torch.tensor(amax * 2.0 ** (k + 1)).half()):\n        k += 1\n", "")],
       ("test_underflow_hidden",), "trusts floor(log2(65504 / max)) and ignores rounding at the limit"),
    _m("safe_scale_signed_max", "underflow", [("float(g.abs().max())", "float(g.max())")], UNDERFLOW,
       "takes the largest gradient instead of the largest magnitude"),
    # --- 3. dtype recorder -----------------------------------------------------------------------
    _m("recorder_input_dtypes", "dtype_recorder",
       [("outputs = out if isinstance(out, (tuple, list)) else (out,)", "outputs = args")], RECORDER,
       "records the dtypes of the inputs instead of the outputs"),
    _m("recorder_full_op_name", "dtype_recorder",
       [("self.ops.setdefault(func.overloadpacket.__name__, set())",
         "self.ops.setdefault(str(func), set())")],
       RECORDER, "keys the record by the overload's full name ('aten.mm.default')"),
    _m("recorder_tuples_ignored", "dtype_recorder",
       [("outputs = out if isinstance(out, (tuple, list)) else (out,)", "outputs = (out,)")],
       ("test_dtype_recorder_hidden",),
       "misses operators that return several tensors (attention, max, split)"),
    _m("recorder_integer_outputs", "dtype_recorder",
       [("isinstance(t, torch.Tensor) and t.is_floating_point()", "isinstance(t, torch.Tensor)")],
       ("test_dtype_recorder_hidden",), "records integer and boolean outputs too"),
    _m("recorder_overwrites", "dtype_recorder",
       [("self.ops.setdefault(func.overloadpacket.__name__, set()).update(dtypes)",
         "self.ops[func.overloadpacket.__name__] = dtypes")],
       ("test_dtype_recorder_hidden",), "keeps only the dtypes of an operator's last call"),
    # --- 3. train_mixed --------------------------------------------------------------------------
    _m("train_no_autocast", "train_mixed", [("enabled=autocast_dtype is not None", "enabled=False")],
       ("test_train_mixed_hidden",), "never enters autocast: everything stays fp32"),
    _m("train_model_in_bf16", "train_mixed",
       [("    model.train()\n",
         "    model.train()\n    if autocast_dtype is not None:\n        model.to(autocast_dtype)\n")],
       TRAIN, "converts the model to bf16: no fp32 master weights"),
    _m("train_dtype_ignored", "train_mixed",
       [("dtype=autocast_dtype or torch.bfloat16", "dtype=torch.bfloat16")], ("test_train_mixed_hidden",),
       "always autocasts to bf16, whatever dtype is asked for"),
    _m("train_no_zero_grad", "train_mixed", [("        optimizer.zero_grad(set_to_none=True)\n", "")],
       ("test_train_mixed_hidden",), "never zeroes the gradients"),
    _m("train_fresh_optimizer_each_step", "train_mixed",
       [("    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)\n", ""),
        ("    for batch in batches:\n",
         "    for batch in batches:\n        optimizer = torch.optim.AdamW(model.parameters(), lr=lr)\n")],
       ("test_train_mixed_hidden",),
       "creates the optimizer inside the loop: AdamW's moments restart every step"),
    # --- 4. state bytes --------------------------------------------------------------------------
    _m("states_8bit_no_scales", "state_bytes", [(" + 2 * 4 * blocks", "")], STATES,
       "forgets the fp32 scale of each block"),
    _m("states_blocks_over_whole_model", "state_bytes",
       [("blocks = sum(-(-k // block_size) for k in numels)", "blocks = -(-n // block_size)")], STATES,
       "counts blocks over the whole model instead of per tensor"),
    _m("states_mixed_no_master", "state_bytes",
       [('out = {"weights": 2 * n, "grads": 2 * n, "master": 4 * n, "optimizer": 8 * n}',
         'out = {"weights": 2 * n, "grads": 2 * n, "master": 0, "optimizer": 8 * n}')], STATES,
       "forgets the fp32 master weights of mixed precision (12 bytes per parameter)"),
    _m("states_8bit_one_state_scaled", "state_bytes", [(" + 2 * 4 * blocks", " + 4 * blocks")], STATES,
       "gives only one of AdamW's two states block scales"),
    _m("states_fp32_with_master", "state_bytes",
       [('out = {"weights": 4 * n, "grads": 4 * n, "master": 0, "optimizer": 8 * n}',
         'out = {"weights": 4 * n, "grads": 4 * n, "master": 4 * n, "optimizer": 8 * n}')], STATES,
       "adds a master copy to fp32 training, where the weights are already fp32"),
    # --- 4. activations --------------------------------------------------------------------------
    _m("act_no_gqa", "activations",
       [("q, kv = config.num_attention_heads * d, config.num_key_value_heads * d",
         "q, kv = config.num_attention_heads * d, config.num_attention_heads * d")], ACTIVATIONS,
       "gives k and v as many heads as q (forgets grouped-query attention)"),
    _m("act_lse_in_low_precision", "activations",
       [("+ 4 * config.num_attention_heads", "+ bytes_per_value * config.num_attention_heads")],
       ("test_activations_hidden",), "stores the log-sum-exp in the activation dtype instead of float32"),
    _m("act_no_rsqrt", "activations", [("norms = 2 * (3 * h + 1)", "norms = 2 * 3 * h")], ACTIVATIONS,
       "forgets the RMSNorm's saved rsqrt"),
    _m("act_mlp_three_tensors", "activations", [("mlp = 4 * m", "mlp = 3 * m")], ACTIVATIONS,
       "counts three MLP tensors (forgets that silu's output is kept for the product)"),
    _m("act_head_dim_ignored", "activations",
       [('d = getattr(config, "head_dim", None) or h // config.num_attention_heads',
         "d = h // config.num_attention_heads")], ("test_activations_hidden",),
       "derives the head size from hidden_size even when config.head_dim is set"),
    _m("act_measure_not_differenced", "activations",
       [("return (peaks[1] - peaks[0]) / (batch * seq)", "return peaks[1] / (2 * batch * seq)")], ACTIVATIONS,
       "divides the whole peak by the layers instead of taking the difference"),
    # --- 5. checkpointing ------------------------------------------------------------------------
    _m("ckpt_reentrant", "checkpointing", [("use_reentrant=False)\n", "use_reentrant=True)\n")], CKPT,
       "uses the reentrant checkpoint, which does not take the layers' keyword arguments"),
    _m("ckpt_late_binding_closure", "checkpointing",
       [(_CKPT_LOOP, "    for layer in model.model.layers:\n"
                     "        inner = layer.forward\n"
                     "        layer.forward = lambda *args, **kwargs: "
                     "checkpoint(inner, *args, use_reentrant=False, **kwargs)\n")],
       CKPT, "a lambda in a loop: every layer replays the last layer's forward"),
    _m("ckpt_mlp_only", "checkpointing",
       [(_CKPT_LOOP, "    for layer in model.model.layers:\n"
                     "        layer.mlp.forward = "
                     "functools.partial(checkpoint, layer.mlp.forward, use_reentrant=False)\n")],
       ("test_checkpointing_hidden",), "checkpoints only the MLPs: attention and the norms stay stored"),
    _m("ckpt_whole_stack", "checkpointing",
       [(_CKPT_LOOP, "    model.model.forward = "
                     "functools.partial(checkpoint, model.model.forward, use_reentrant=False)\n")],
       ("test_checkpointing_hidden",),
       "checkpoints the whole model in one piece: the replay stores everything again"),
    _m("ckpt_skips_last_layer", "checkpointing",
       [("    for layer in model.model.layers:\n", "    for layer in model.model.layers[:-1]:\n")],
       ("test_checkpointing_hidden",), "leaves the last layer out"),
    _m("flops_with_down_proj", "checkpointing",
       [("replayed = h * q + 2 * h * kv + q * h + 2 * h * m",
         "replayed = h * q + 2 * h * kv + q * h + 3 * h * m")],
       CKPT, "counts down_proj in the replay, which non-reentrant checkpointing stops before"),
    _m("flops_no_gqa", "checkpointing",
       [("q, kv = config.num_attention_heads * d, config.num_key_value_heads * d\n    replayed",
         "q, kv = config.num_attention_heads * d, config.num_attention_heads * d\n    replayed")], CKPT,
       "gives k_proj and v_proj as many heads as q_proj"),
    _m("flops_multiply_add_as_one", "checkpointing",
       [("return 2 * tokens * config.num_hidden_layers * replayed",
         "return tokens * config.num_hidden_layers * replayed")],
       CKPT, "counts a multiply-add as one FLOP"),
    # --- 6. planning -----------------------------------------------------------------------------
    _m("plan_ckpt_without_replayed_layer", "plan",
       [("per_token = config.num_hidden_layers * config.hidden_size * b + per_layer",
         "per_token = config.num_hidden_layers * config.hidden_size * b")], ("test_plan_hidden",),
       "forgets the one layer whose activations the replay rebuilds"),
    _m("plan_no_head", "plan", [("(per_token + 8 * config.vocab_size)", "per_token")], PLAN,
       "forgets the logits and log-softmax over the vocabulary"),
    _m("plan_last_fitting_config", "plan",
       [("best = max(fitting, key=lambda i: sum(param_numels(configs[i])))", "best = fitting[-1]")],
       ("test_plan_hidden",), "takes the last config that fits, assuming the list is sorted by size"),
    _m("plan_batch_off_by_one", "plan",
       [("return best, (budget - fixed) // per_batch", "return best, (budget - fixed) // per_batch - 1")],
       ("test_plan_hidden",), "stops one batch short of the budget"),
    _m("plan_ignores_memory_argument", "plan",
       [("if memory(c, 1, seq, recipe) <= budget]", "if training_memory(c, 1, seq, recipe) <= budget]"),
        ("    fixed = 2 * memory(cfg, 1, seq, recipe) - memory(cfg, 2, seq, recipe)",
         "    fixed = 2 * training_memory(cfg, 1, seq, recipe) - training_memory(cfg, 2, seq, recipe)"),
        ("    per_batch = memory(cfg, 1, seq, recipe) - fixed",
         "    per_batch = training_memory(cfg, 1, seq, recipe) - fixed")],
       ("test_plan_hidden",), "ignores the memory function it is given"),
    _m("plan_ckpt_ignored", "plan",
       [('    if r["checkpointing"]:\n', "    if False:\n")], ("test_plan_hidden",),
       "ignores checkpointing: every layer's activations stay stored"),
]
