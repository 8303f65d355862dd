"""Wrong-but-plausible answers for the pre-training unit; each must lose points.

Every mutant is the reference answer cell (read from `pretraining.py`, solution markers
removed) with one mistake edited in, so a mutant cannot drift from the reference: if the
reference text changes and an edit no longer applies, loading this file fails loudly.
"""

from __future__ import annotations

from pathlib import Path

from graders.authoring.mutants import EditedMutants

_m = EditedMutants(Path(__file__).resolve().parent / "pretraining.py")

DECODER = ("test_decoder_visible", "test_decoder_hidden")
COUNTS = ("test_counts_visible", "test_counts_hidden")
BACKPROP = ("test_backprop_visible", "test_backprop_hidden")
GRADCHECK = ("test_gradcheck_visible", "test_gradcheck_hidden")
ADAMW = ("test_adamw_visible", "test_adamw_hidden")
SCHEDULE = ("test_schedule_visible", "test_schedule_hidden")
CLIP = ("test_clip_visible", "test_clip_hidden")
ACCUMULATE = ("test_accumulate_visible", "test_accumulate_hidden")
LOOP = ("test_loop_visible", "test_loop_hidden")
DIAGNOSIS = ("test_diagnosis_hidden",)

_RESIDUAL = ("        x = x + self.self_attn(self.input_layernorm(x))\n"
             "        return x + self.mlp(self.post_attention_layernorm(x))\n")
_INIT = ("                nn.init.normal_(module.weight, mean=0.0, std=config.initializer_range)\n")

MUTANTS = [
    # --- 1. the decoder ----------------------------------------------------------------------
    _m("rmsnorm_layernorm", "decoder",
       [("x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)",
         "(x32 - x32.mean(dim=-1, keepdim=True)) * torch.rsqrt(x32.var(dim=-1, keepdim=True, unbiased=False)"
         " + self.eps)")],
       DECODER, "subtracts the mean, as LayerNorm does: not RMSNorm"),
    _m("rmsnorm_eps_outside_sqrt", "decoder",
       [("torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)",
         "1 / (x32.pow(2).mean(dim=-1, keepdim=True).sqrt() + self.eps)")],
       ("test_decoder_hidden",), "adds eps after the square root (different for small activations)"),
    _m("rmsnorm_weight_before_cast", "decoder",
       [("return self.weight * normed.to(x.dtype)", "return (self.weight * normed).to(x.dtype)")],
       ("test_decoder_hidden",),
       "multiplies by the weight before casting back: float32 weights on bfloat16 input give bfloat16, "
       "not float32 as in Llama (a blind wrong answer)"),
    _m("rmsnorm_no_float32", "decoder",
       [("        x32 = x.float()\n", "        x32 = x\n")],
       ("test_decoder_hidden",), "normalises in the input's dtype: float16 squares overflow"),
    _m("rmsnorm_default_eps", "decoder", [("def __init__(self, dim,"
                                           " eps=1e-6):", "def __init__(self, dim, eps=1e-5):")],
       ("test_decoder_hidden",), "uses 1e-5 as the default eps instead of Llama's 1e-6"),
    _m("swiglu_gate_up_swapped", "decoder",
       [("F.silu(self.gate_proj(x)) * self.up_proj(x)", "self.gate_proj(x) * F.silu(self.up_proj(x))")],
       DECODER, "applies silu to the up projection instead of the gate"),
    _m("swiglu_gelu", "decoder", [("F.silu(self.gate_proj(x))", "F.gelu(self.gate_proj(x))")], DECODER,
       "uses GELU instead of SiLU in the gate"),
    _m("block_post_norm", "decoder",
       [(_RESIDUAL, "        x = self.input_layernorm(x + self.self_attn(x))\n"
                    "        return self.post_attention_layernorm(x + self.mlp(x))\n")],
       DECODER, "normalises after the residual addition (post-norm), not the branch input"),
    _m("block_no_residual", "decoder",
       [(_RESIDUAL, "        x = self.self_attn(self.input_layernorm(x))\n"
                    "        return self.mlp(self.post_attention_layernorm(x))\n")],
       DECODER, "forgets the residual connections"),
    _m("block_one_norm", "decoder",
       [("        return x +"
         " self.mlp(self.post_attention_layernorm(x))\n", "        return x +"
                                                          " self.mlp(self.input_layernorm(x))\n")],
       DECODER, "uses the first norm twice: the second norm's gain is never used"),
    _m("decoder_no_final_norm", "decoder",
       [("        return"
         " self.norm(x)\n", "        return x\n")], DECODER, "forgets the final norm before the head"),
    _m("lm_untied", "decoder",
       [("        if config.tie_word_embeddings:\n            self.lm_head.weight ="
         " self.model.embed_tokens.weight\n", "")],
       DECODER, "never ties the head to the embedding: the checkpoint's head is then missing"),
    _m("init_std_one", "decoder", [(_INIT, "                nn.init.normal_(module.weight)\n")],
       ("test_decoder_hidden",), "initialises the weights from N(0, 1) instead of N(0, 0.02^2)"),
    _m("init_bias_kept", "decoder",
       [("            if isinstance(module, nn.Linear) and module.bias is not None:\n"
         "                nn.init.zeros_(module.bias)\n", "")],
       ("test_decoder_hidden",), "leaves PyTorch's default random biases instead of zeros"),
    # --- 1.2 counts ---------------------------------------------------------------------------
    _m("count_no_gqa", "counts",
       [("config.num_key_value_heads * d", "config.num_attention_heads * d")], COUNTS,
       "gives k_proj and v_proj as many heads as q_proj (forgets grouped-query attention)"),
    _m("count_head_always", "counts",
       [("head = 0 if config.tie_word_embeddings else V * h", "head = V * h")], COUNTS,
       "counts the output head even when it is tied to the embedding"),
    _m("count_no_biases", "counts",
       [('    if getattr(config, "attention_bias", False):\n', '    if False:\n')],
       ("test_counts_hidden",), "forgets the attention biases"),
    _m("flops_no_head", "counts",
       [("    n_matmul += config.vocab_size * config.hidden_size\n", "")], COUNTS,
       "leaves the tied output head out of the FLOPs: it still multiplies"),
    _m("flops_causal_half", "counts",
       [("attention = 4 * config.num_hidden_layers", "attention = 2 * config.num_hidden_layers")], COUNTS,
       "halves the attention term for the causal mask, which the counter does not do"),
    _m("flops_backward_once", "counts",
       [("return 3 * forward if training else"
         " forward", "return 2 * forward if training else forward")], COUNTS,
       "counts the backward pass as one forward pass (4N + ...), not two"),
    _m("flops_embedding_in_n", "counts",
       [("    n_matmul += config.vocab_size * config.hidden_size\n",
         "    n_matmul += config.vocab_size * config.hidden_size * (1 if config.tie_word_embeddings else"
         " 2)\n")],
       ("test_counts_hidden",), "counts the input embedding as a matrix product when the head is untied"),
    # --- 2. backprop --------------------------------------------------------------------------
    _m("ce_mean_over_all_rows", "backprop",
       [("loss = torch.where(keep, nll, torch.zeros_like(nll)).sum() / count",
         "loss = torch.where(keep, nll, torch.zeros_like(nll)).sum() / len(y)"),
        ("grad = grad * keep[:, None] / count.clamp(min=1)", "grad = grad * keep[:, None] / len(y)")],
       BACKPROP, "divides by every row, ignored ones included"),
    _m("ce_grad_on_ignored", "backprop",
       [("grad = grad * keep[:, None] / count.clamp(min=1)", "grad = grad / count.clamp(min=1)")],
       BACKPROP, "leaves a gradient on the ignored positions"),
    _m("ce_no_max_shift", "backprop",
       [("shifted = z - z.amax(dim=-1, keepdim=True)", "shifted = z")], ("test_backprop_hidden",),
       "no max shift: exp overflows for large logits"),
    _m("ce_grad_no_onehot", "backprop",
       [("    grad[torch.arange(len(y), device=y.device), safe] -= 1.0\n", "")], BACKPROP,
       "forgets to subtract the one-hot: the gradient is the probabilities alone"),
    _m("rms_backward_no_projection", "backprop",
       [("dx = rstd * (g - x_hat * (g * x_hat).mean(dim=-1, keepdim=True))", "dx = rstd * g")], BACKPROP,
       "treats the rms as a constant: forgets that it depends on x"),
    _m("rms_dweight_not_summed", "backprop",
       [("dweight = (dy * x_hat).reshape(-1,"
         " x_hat.shape[-1]).sum(dim=0)", "dweight = (dy * x_hat).reshape(-1, x_hat.shape[-1]).mean(dim=0)")],
       BACKPROP, "averages the weight gradient over tokens instead of summing it"),
    _m("rms_backward_sum_not_mean", "backprop",
       [("(g * x_hat).mean(dim=-1, keepdim=True)", "(g * x_hat).sum(dim=-1, keepdim=True)")], BACKPROP,
       "sums over the feature dimension where the derivative of the mean has 1/D"),
    # --- 2.2 gradient check ---------------------------------------------------------------------
    _m("gradcheck_forward_difference", "gradcheck",
       [("        flat[i] = old - eps\n        down ="
         " float(f(x))\n", "        flat[i] = old\n        down = float(f(x))\n"),
        ("grad_flat[i] = (up - down) / (2 * eps)", "grad_flat[i] = (up - down) / eps")],
       ("test_gradcheck_hidden",), "one-sided differences: an error of order eps, not eps^2"),
    _m("gradcheck_float32", "gradcheck",
       [("x = x.detach().to(torch.float64).clone()", "x = x.detach().clone()")], ("test_gradcheck_hidden",),
       "perturbs a float32 input in float32: eps = 1e-6 is below its resolution"),
    _m("gradcheck_absolute_error", "gradcheck",
       [("return ((a - b).norm() / (a.norm() +"
         " b.norm()).clamp(min=1e-12)).item()", "return (a - b).abs().max().item()")],
       GRADCHECK, "uses the absolute error, which depends on the gradient's scale"),
    _m("gradcheck_tolerance_ignored", "gradcheck",
       [("return bool(error < tol), error", "return bool(error < 1e-2), error")], GRADCHECK,
       "a criterion of 1e-2, loose enough to pass gradients that are 0.1 % (or 1 %) wrong"),
    _m("gradcheck_no_restore", "gradcheck", [("        flat[i] = old\n       "
                                              " grad_flat", "        grad_flat")],
       GRADCHECK, "does not put x_i back, so every later entry is taken at a shifted point"),
    # --- 3. AdamW -------------------------------------------------------------------------------
    _m("adam_no_bias_correction", "adamw",
       [("denom = (state[\"exp_avg_sq\"].sqrt() / math.sqrt(1 - beta2 **"
         " t)).add_(eps)", "denom = state[\"exp_avg_sq\"].sqrt().add_(eps)"),
        ("value=-lr / (1 - beta1 ** t))", "value=-lr)")], ADAMW, "forgets the bias corrections"),
    _m("adam_l2_not_decoupled", "adamw",
       [("                p.mul_(1 - lr * decay)\n                state[\"exp_avg\"].mul_(beta1).add_(p.grad,"
         " alpha=1 - beta1)\n"
         "                state[\"exp_avg_sq\"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)\n",
         "                g = p.grad + decay * p\n                state[\"exp_avg\"].mul_(beta1).add_(g,"
         " alpha=1 - beta1)\n"
         "                state[\"exp_avg_sq\"].mul_(beta2).addcmul_(g, g, value=1 - beta2)\n")],
       ADAMW, "adds the decay to the gradient (L2, Adam) instead of decaying the weights (AdamW)"),
    _m("adam_eps_inside_sqrt", "adamw",
       [("denom = (state[\"exp_avg_sq\"].sqrt() / math.sqrt(1 - beta2 ** t)).add_(eps)",
         "denom = (state[\"exp_avg_sq\"] / (1 - beta2 ** t) + eps).sqrt()")],
       ("test_adamw_hidden",), "adds eps inside the square root"),
    _m("adam_decay_without_lr", "adamw", [("p.mul_(1 - lr * decay)", "p.mul_(1 - decay)")], ADAMW,
       "decays by weight_decay alone, not lr * weight_decay"),
    _m("adam_bias_correction_no_sqrt", "adamw",
       [("/ math.sqrt(1 - beta2 ** t)", "/ (1 - beta2 ** t)")], ADAMW,
       "corrects the second moment's square root by (1 - beta2^t) instead of its square root"),
    _m("adam_step_int", "adamw", [('state["step"] = torch.tensor(0.0)', 'state["step"] = torch.tensor(0)')],
       ("test_adamw_hidden",), "keeps the step counter as an int64 tensor: 8 bytes, not torch's float32"),
    _m("adam_fixed_lr", "adamw",
       [('lr, (beta1, beta2), eps, decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]',
         'lr, (beta1, beta2), eps, decay = self.defaults["lr"], group["betas"], group["eps"],'
         ' group["weight_decay"]')],
       ("test_adamw_hidden",), "reads the learning rate from the defaults: schedulers and groups have no"
                               " effect"),
    _m("decay_groups_decay_all", "adamw",
       [("(decay if p.ndim >= 2 else no_decay).append(p)", "decay.append(p)")], ADAMW,
       "decays the norm gains and biases too"),
    _m("state_bytes_no_step", "adamw",
       [("return sum(2 * p.numel() * p.element_size() + 4 for p in params if p.requires_grad)",
         "return sum(2 * p.numel() * p.element_size() for p in params if p.requires_grad)")], ADAMW,
       "forgets the 4-byte step counter of each parameter tensor"),
    _m("state_bytes_fp32_assumed", "adamw",
       [("return sum(2 * p.numel() * p.element_size() + 4 for p in params if p.requires_grad)",
         "return sum(2 * p.numel() * 4 + 4 for p in params if p.requires_grad)")], ("test_adamw_hidden",),
       "assumes 4-byte moments whatever the parameter's dtype"),
    # --- 4. schedule and clipping ---------------------------------------------------------------
    _m("schedule_warmup_off_by_one", "schedule",
       [("return step / max(1, warmup_steps)", "return (step + 1) / max(1, warmup_steps)")], SCHEDULE,
       "starts the warm-up at 1/W instead of 0 (not transformers' convention)"),
    _m("schedule_no_floor", "schedule",
       [("return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))",
         "return max(min_lr_ratio, 0.5 * (1.0 + math.cos(math.pi * progress)))")], SCHEDULE,
       "clamps the cosine at the floor instead of rescaling it to end there"),
    _m("schedule_progress_from_zero", "schedule",
       [("progress = (step - warmup_steps) / max(1, total_steps -"
         " warmup_steps)", "progress = step / max(1, total_steps)")],
       SCHEDULE, "measures the cosine's progress from step 0 instead of from the end of the warm-up"),
    _m("schedule_full_cosine", "schedule", [("math.cos(math.pi *"
                                             " progress)", "math.cos(2 * math.pi * progress)")],
       SCHEDULE, "a full cosine period: the learning rate climbs back to the peak at the end"),
    _m("clip_per_tensor", "clip",
       [("    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))\n"
         "    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)\n"
         "    for g in grads:\n        g.mul_(scale.to(g.dtype))\n",
         "    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))\n"
         "    for g in grads:\n        g.mul_(torch.clamp(max_norm / (torch.linalg.vector_norm(g) + 1e-6),"
         " max=1.0))\n")],
       CLIP, "clips each tensor to the threshold on its own: the direction changes"),
    _m("clip_no_clamp", "clip", [("scale = torch.clamp(max_norm / (total + 1e-6),"
                                  " max=1.0)", "scale = max_norm / (total + 1e-6)")],
       ("test_clip_hidden",), "scales gradients up when their norm is below the threshold"),
    _m("clip_returns_clipped_norm", "clip",
       [("    return"
         " total\n", "    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in"
                     " grads]))\n")],
       CLIP, "returns the norm after clipping instead of before"),
    _m("clip_generator_twice", "clip",
       [("    grads = [p.grad for p in parameters if p.grad is not None]\n",
         "    n = sum(1 for p in parameters)\n    grads = [p.grad for p in parameters if p.grad is not"
         " None]\n")],
       ("test_clip_hidden",), "iterates `parameters` twice: a generator is empty the second time"),
    # --- 5. gradient accumulation ---------------------------------------------------------------
    _m("accumulate_mean_of_means", "accumulate",
       [("ignore_index=-100, reduction=\"sum\") / counted", "ignore_index=-100) / len(micro_batches)")],
       ACCUMULATE, "averages the micro-batches' mean losses: wrong when their token counts differ"),
    _m("accumulate_count_padding", "accumulate",
       [("counted = sum(int((labels[:, 1:] != -100).sum()) for _, labels in micro_batches)",
         "counted = sum(labels[:, 1:].numel() for _, labels in micro_batches)")], ACCUMULATE,
       "divides by every position, padding included"),
    _m("accumulate_no_shift", "accumulate",
       [("F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),",
         "F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),"),
        ("counted = sum(int((labels[:, 1:] != -100).sum())", "counted = sum(int((labels != -100).sum())")],
       ACCUMULATE, "scores the logits at t against the token at t: no shift"),
    _m("accumulate_zero_grad_inside", "accumulate",
       [("        logits ="
         " model(input_ids)\n", "        model.zero_grad()\n        logits = model(input_ids)\n")],
       ACCUMULATE, "zeroes the gradients before each micro-batch: only the last one survives"),
    # --- 6. the loop and checkpoints ------------------------------------------------------------
    _m("loop_no_zero_grad", "loop", [("        optimizer.zero_grad(set_to_none=True)\n", "")],
       ("test_loop_hidden", "test_pretrain_outcome"), "never zeroes the gradients: they sum over all steps"),
    _m("loop_labels_not_shifted", "loop",
       [("batch[:, 1:].reshape(-1))", "batch[:, :-1].reshape(-1))")],
       ("test_loop_hidden", "test_pretrain_outcome"),
       "scores the logits at t against the input token at t: the model learns to copy"),
    _m("loop_no_scheduler_step", "loop", [("        scheduler.step()\n", "")],
       LOOP + ("test_pretrain_outcome",), "never steps the scheduler: the learning rate stays at f(0) = 0"),
    _m("loop_clip_after_step", "loop",
       [("        grad_norm = clip_grad_norm(model.parameters(), max_norm)\n        lr ="
         " optimizer.param_groups[0][\"lr\"]\n"
         "        optimizer.step()\n",
         "        lr = optimizer.param_groups[0][\"lr\"]\n        optimizer.step()\n"
         "        grad_norm = clip_grad_norm(model.parameters(), max_norm)\n")],
       ("test_loop_hidden",), "clips after the optimizer step: the update uses unclipped gradients"),
    _m("loop_lr_after_scheduler", "loop",
       [("        lr = optimizer.param_groups[0][\"lr\"]\n        optimizer.step()\n       "
         " scheduler.step()\n",
         "        optimizer.step()\n        scheduler.step()\n        lr ="
         " optimizer.param_groups[0][\"lr\"]\n")],
       LOOP, "logs the next step's learning rate instead of the one this step used"),
    _m("checkpoint_no_rng", "loop",
       [("    torch.set_rng_state(checkpoint[\"rng\"])\n", "")], ("test_loop_hidden",),
       "does not restore the random state: the resumed run sees other batches"),
    _m("checkpoint_no_optimizer", "loop",
       [("    optimizer.load_state_dict(checkpoint[\"optimizer\"])\n", "")], ("test_loop_hidden",),
       "does not restore the optimizer: AdamW's moments and step counts start again from zero"),
    _m("checkpoint_no_scheduler", "loop",
       [("    scheduler.load_state_dict(checkpoint[\"scheduler\"])\n", "")], ("test_loop_hidden",),
       "does not restore the scheduler: the warm-up starts again"),
    # --- 7. diagnosis ------------------------------------------------------------------------------
    _m("diagnosis_swapped", "diagnosis",
       [('"C": "lr_too_high"', '"C": "no_zero_grad"'), ('"E": "no_zero_grad"', '"E": "lr_too_high"')],
       DIAGNOSIS, "mistakes the missing zero_grad for a too-high learning rate and vice versa"),
    _m("diagnosis_shuffle_is_healthy", "diagnosis",
       [('"B": "healthy"', '"B": "not_shuffled"'), ('"D": "not_shuffled"', '"D": "healthy"')], DIAGNOSIS,
       "takes the unshuffled run for the healthy one"),
    _m("check_grad_norm_grows", "diagnosis",
       [('"no_zero_grad": lambda run: np.mean(np.array(run["grad_norm"][30:]) > 1.0) > 0.5',
         '"no_zero_grad": lambda run: np.mean(np.diff(run["grad_norm"][10:]) > 0) > 0.8')],
       DIAGNOSIS, "expects the gradient norm to keep growing; clipping in place keeps the sum's norm near "
                  "the threshold, so it does not, and the check misses the bug"),
    _m("check_lr_any_spike", "diagnosis",
       [('"lr_too_high": lambda run: run["train_loss"][0] - run["train_loss"][6] > 0.8',
         '"lr_too_high": lambda run: max(x - min(run["train_loss"][:i + 1]) '
         'for i, x in enumerate(run["train_loss"])) > 1.0')],
       DIAGNOSIS, "calls any batch one nat above the best loss so far a spike: healthy runs have such "
                  "batches (code next to prose), so the check fires on them too"),
    _m("check_labels_low_loss", "diagnosis",
       [('"labels_not_shifted": lambda run: run["train_loss"][-1] < 0.5 * run["val_loss"][-1]',
         '"labels_not_shifted": lambda run: run["train_loss"][-1] < 1.0')],
       DIAGNOSIS, "looks for a training loss near zero instead of the gap to the validation loss: a "
                  "smaller learning rate copies more slowly, and the check misses it"),
]
