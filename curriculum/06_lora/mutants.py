"""Wrong-but-plausible answers for the LoRA unit; each must lose points.

Every mutant is the reference answer cell (read from `lora.py`, solution markers removed)
with one mistake edited in, so a mutant cannot drift from the reference: if the reference
text changes and an edit no longer applies, loading this file fails loudly.
"""

from __future__ import annotations

from pathlib import Path

from graders.authoring.mutants import EditedMutants

_m = EditedMutants(Path(__file__).resolve().parent / "lora.py")


LAYER = ("test_lora_linear_visible", "test_lora_linear_hidden")
INJECT = ("test_inject_visible", "test_inject_hidden")
COUNT = ("test_count_visible", "test_count_hidden")
ADAPTER = ("test_adapter_visible", "test_adapter_hidden")
SFT = ("test_sft_visible", "test_sft_hidden")
TRAIN = ("test_train_visible", "test_train_hidden")

_FREEZE = "        for p in base.parameters():\n            p.requires_grad_(False)\n"
_LOSS_RETURN = ("    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), "
                "targets.reshape(-1), ignore_index=-100)\n")
_FORWARD = ("        update = (self.dropout(x) @ self.lora_A.T) @ self.lora_B.T\n"
            "        return self.base(x) + self.scaling * update\n")

MUTANTS = [
    # --- 1. LoRALinear ---------------------------------------------------------------------
    _m("layer_b_random", "lora_linear",
       [("torch.zeros(base.out_features, r,", "torch.randn(base.out_features, r,")], LAYER,
       "initialises B randomly: the model no longer starts at the pre-trained function"),
    _m("layer_scaling_alpha", "lora_linear",
       [("self.scaling = alpha / math.sqrt(r) if use_rslora else alpha / r", "self.scaling = alpha")], LAYER,
       "scales the update by alpha instead of alpha / r"),
    _m("layer_dropout_on_base", "lora_linear",
       [(_FORWARD, "        x = self.dropout(x)\n"
                   "        update = (x @ self.lora_A.T) @ self.lora_B.T\n"
                   "        return self.base(x) + self.scaling * update\n")],
       ("test_lora_linear_hidden",), "applies dropout to the input of the frozen path too"),
    _m("layer_base_trainable", "lora_linear", [(_FREEZE, "")], LAYER,
       "leaves the base weight and bias trainable"),
    _m("layer_a_zero", "lora_linear",
       [("nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))", "nn.init.zeros_(self.lora_A)")],
       ("test_lora_linear_hidden",), "initialises A to zero too: no gradient ever reaches A or B"),
    _m("layer_a_normal", "lora_linear",
       [("nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))", "nn.init.normal_(self.lora_A)")],
       ("test_lora_linear_hidden",), "initialises A from N(0, 1) instead of peft's Kaiming-uniform"),
    _m("layer_rslora_ignored", "lora_linear",
       [("self.scaling = alpha / math.sqrt(r) if use_rslora else alpha / r", "self.scaling = alpha / r")],
       ("test_lora_linear_hidden",), "ignores use_rslora (alpha / r instead of alpha / sqrt(r))"),
    _m("layer_dropout_always_on", "lora_linear",
       [("update = (self.dropout(x) @ self.lora_A.T) @ self.lora_B.T",
         "update = (F.dropout(x, self.dropout.p) @ self.lora_A.T) @ self.lora_B.T")],
       ("test_lora_linear_hidden",),
       "calls F.dropout(x, p), whose training=True default keeps dropout on in eval mode too"),
    _m("layer_dropout_after_a", "lora_linear",
       [("update = (self.dropout(x) @ self.lora_A.T) @ self.lora_B.T",
         "update = self.dropout(x @ self.lora_A.T) @ self.lora_B.T")],
       ("test_lora_linear_hidden",),
       "drops out the rank-r activations A x instead of the input x (peft drops x)"),
    _m("layer_adapters_float32", "lora_linear",
       [("torch.empty(r, base.in_features, device=w.device, dtype=w.dtype)",
         "torch.empty(r, base.in_features, device=w.device)"),
        ("torch.zeros(base.out_features, r, device=w.device, dtype=w.dtype)",
         "torch.zeros(base.out_features, r, device=w.device)")],
       ("test_lora_linear_hidden",),
       "creates A and B in float32 whatever the base weight's dtype (bf16 breaks)"),
    _m("layer_adapters_no_device", "lora_linear",
       [("torch.empty(r, base.in_features, device=w.device, dtype=w.dtype)",
         "torch.empty(r, base.in_features, dtype=w.dtype)"),
        ("torch.zeros(base.out_features, r, device=w.device, dtype=w.dtype)",
         "torch.zeros(base.out_features, r, dtype=w.dtype)")],
       ("test_lora_linear_hidden",), "creates A and B on the CPU whatever the base weight's device"),
    _m("layer_rewraps_base_weight", "lora_linear",
       [(_FREEZE, "        base.weight = nn.Parameter(base.weight.detach(), requires_grad=False)\n"
                  "        if base.bias is not None:\n"
                  "            base.bias = nn.Parameter(base.bias.detach(), requires_grad=False)\n")],
       ("test_lora_linear_hidden",),
       "freezes the base by replacing its parameters with new frozen ones "
       "(anything holding the old ones is cut off)"),
    _m("layer_inplace_dropout", "lora_linear",
       [("self.dropout = nn.Dropout(dropout)", "self.dropout = nn.Dropout(dropout, inplace=True)")],
       ("test_lora_linear_hidden",),
       "uses an in-place dropout: it zeroes entries of the caller's x (and of the base path's input)"),
    # --- 2. inject_lora ---------------------------------------------------------------------
    _m("inject_no_freeze", "inject",
       [("    for p in model.parameters():\n        p.requires_grad_(False)\n", "")],
       ("test_inject_hidden",), "freezes only the wrapped layers: embeddings and norms still train"),
    _m("inject_head_too", "inject",
       [('(target_modules == "all-linear" and last != "lm_head")', '(target_modules == "all-linear")')],
       ("test_inject_hidden",), '"all-linear" also wraps the output head lm_head'),
    _m("inject_full_name_match", "inject", [("or last in target_modules", "or name in target_modules")],
       INJECT, "compares the full dotted name with the target names, so nothing matches"),
    _m("inject_drops_rslora", "inject",
       [("LoRALinear(model.get_submodule(name), r, alpha, dropout, use_rslora)",
         "LoRALinear(model.get_submodule(name), r, alpha, dropout)")],
       ("test_inject_hidden",), "does not pass use_rslora on to the layers"),
    _m("inject_freezes_weights_only", "inject",
       [("    for p in model.parameters():\n        p.requires_grad_(False)\n",
         "    for n, p in model.named_parameters():\n        if n.endswith(\"weight\"):\n"
         "            p.requires_grad_(False)\n")],
       ("test_inject_hidden",),
       "freezes the weights only: the biases of a model with attention_bias / mlp_bias still train"),
    _m("inject_wraps_copies", "inject",
       [("LoRALinear(model.get_submodule(name), r,",
         "LoRALinear(copy.deepcopy(model.get_submodule(name)), r,")],
       ("test_inject_hidden",),
       "wraps a copy of each layer: the model's own parameters are dropped and memory doubles"),
    # --- 3. counts ----------------------------------------------------------------------------
    _m("count_no_gqa", "count",
       [("config.num_key_value_heads * d_head", "config.num_attention_heads * d_head")], COUNT,
       "gives k_proj and v_proj as many heads as q_proj (forgets grouped-query attention)"),
    _m("count_one_layer", "count",
       [("return config.num_hidden_layers * sum(r * sum(shapes[n]) for n in names)",
         "return sum(r * sum(shapes[n]) for n in names)")], COUNT,
       "counts the adapters of one decoder layer only"),
    _m("count_untied_head", "count",
       [("head = 0 if config.tie_word_embeddings else config.vocab_size * h",
         "head = config.vocab_size * h")],
       COUNT, "counts the output head even when it shares the embedding matrix"),
    _m("count_no_norms", "count", [(" + 2 * h\n", "\n")], COUNT,
       "forgets the two RMSNorm weights of each layer"),
    _m("count_ignores_head_dim", "count",
       [('getattr(config, "head_dim", None) or h // config.num_attention_heads',
         "h // config.num_attention_heads")],
       ("test_count_hidden",), "assumes head_dim = hidden_size / num_heads even when the config sets it"),
    _m("count_true_division", "count",
       [("h // config.num_attention_heads", "h / config.num_attention_heads")],
       ("test_count_hidden",),
       "divides with / for the head size: a config without head_dim gives float counts"),
    _m("count_ignores_biases", "count",
       [('    if getattr(config, "attention_bias", False):\n'
         '        per_layer += sum(shapes[n][1] for n in ("q_proj", "k_proj", "v_proj", "o_proj"))\n'
         '    if getattr(config, "mlp_bias", False):\n'
         '        per_layer += sum(shapes[n][1] for n in ("gate_proj", "up_proj", "down_proj"))\n', "")],
       ("test_count_hidden",),
       "ignores attention_bias and mlp_bias (Llama has no biases, but the config may add them)"),
    _m("count_attention_bias_qkv_only", "count",
       [('for n in ("q_proj", "k_proj", "v_proj", "o_proj"))', 'for n in ("q_proj", "k_proj", "v_proj"))')],
       ("test_count_hidden",),
       "gives only q, k and v a bias when attention_bias is set (Llama's o_proj has one too)"),
    # --- 4. adapter file ------------------------------------------------------------------------
    _m("adapter_no_prefix", "adapter_io",
       [('f"base_model.model.{name}.lora_A.weight"', 'f"{name}.lora_A.weight"'),
        ('f"base_model.model.{name}.lora_B.weight"', 'f"{name}.lora_B.weight"'),
        ('f"base_model.model.{name}.{part}.weight"', 'f"{name}.{part}.weight"')], ADAPTER,
       "writes the transformers module names without peft's base_model.model. prefix"),
    _m("adapter_a_b_swapped", "adapter_io",
       [('state[f"base_model.model.{name}.lora_A.weight"] = module.lora_A.detach()',
         'state[f"base_model.model.{name}.lora_A.weight"] = module.lora_B.detach()'),
        ('state[f"base_model.model.{name}.lora_B.weight"] = module.lora_B.detach()',
         'state[f"base_model.model.{name}.lora_B.weight"] = module.lora_A.detach()'),
        ('for part in ("lora_A", "lora_B"):',
         'for part, src in (("lora_B", "lora_A"), ("lora_A", "lora_B")):'),
        ('key = f"base_model.model.{name}.{part}.weight"', 'key = f"base_model.model.{name}.{src}.weight"')],
       ("test_adapter_hidden",),
       "stores B under A's name and A under B's (round-trips with itself, not with peft)"),
    _m("adapter_includes_base", "adapter_io",
       [('            state[f"base_model.model.{name}.lora_B.weight"] = module.lora_B.detach()\n',
         '            state[f"base_model.model.{name}.lora_B.weight"] = module.lora_B.detach()\n'
         '            state[f"base_model.model.{name}.base_layer.weight"] = module.base.weight.detach()\n'),
        ("    unexpected = sorted(set(state) - expected)\n",
         '    unexpected = sorted(k for k in set(state) - expected '
         'if not k.endswith("base_layer.weight"))\n')],
       ADAPTER, "saves the frozen base weights too: the adapter file is no longer small"),
    _m("adapter_replaces_parameters", "adapter_io",
       [("getattr(module, part).copy_(state[key])",
         "setattr(module, part, nn.Parameter(state[key].clone()))")],
       ("test_adapter_hidden",),
       "replaces the parameters instead of copying into them (an optimizer would lose them)"),
    _m("adapter_ignores_extra_keys", "adapter_io",
       [("    if unexpected:\n", "    if False:\n")],
       ("test_adapter_hidden",), "silently ignores tensors for layers the model does not adapt"),
    _m("adapter_not_detached", "adapter_io",
       [("module.lora_A.detach()", "module.lora_A"), ("module.lora_B.detach()", "module.lora_B")],
       ("test_adapter_hidden",),
       "returns the live parameters (with requires_grad) instead of detached tensors"),
    _m("adapter_load_aliases", "adapter_io",
       [("getattr(module, part).copy_(state[key])", "getattr(module, part).data = state[key]")],
       ("test_adapter_hidden",),
       "rebinds .data to the dictionary's tensors: the model then shares memory with another "
       "model's adapter"),
    _m("adapter_load_pops_keys", "adapter_io",
       [("                    getattr(module, part).copy_(state[key])\n"
         "                    expected.add(key)\n",
         "                    getattr(module, part).copy_(state.pop(key))\n"),
        ("    unexpected = sorted(set(state) - expected)\n", "    unexpected = sorted(state)\n")],
       ("test_adapter_hidden",),
       "pops the keys it loads to find the leftovers: the caller's dictionary is emptied"),
    # --- 5. merge / unmerge -----------------------------------------------------------------------
    _m("merge_no_scaling", "merge",
       [("module.base.weight += module.scaling * (module.lora_B @ module.lora_A)",
         "module.base.weight += module.lora_B @ module.lora_A")],
       ("test_merge_hidden",), "merges B A without the scaling alpha / r"),
    _m("merge_no_flag", "merge",
       [("                module.base.weight += module.scaling * (module.lora_B @ module.lora_A)\n"
         "                module.merged = True\n",
         "                module.base.weight += module.scaling * (module.lora_B @ module.lora_A)\n")],
       ("test_merge_visible", "test_merge_hidden"),
       "does not set merged: forward adds the update a second time"),
    _m("unmerge_adds", "merge",
       [("module.base.weight -= module.scaling", "module.base.weight += module.scaling")],
       ("test_merge_visible", "test_merge_hidden"),
       "unmerge adds the update again instead of subtracting it"),
    _m("merge_twice", "merge",
       [("if isinstance(module, LoRALinear) and not module.merged:", "if isinstance(module, LoRALinear):")],
       ("test_merge_hidden",), "merges already-merged layers again"),
    _m("merge_transposed", "merge",
       [("module.base.weight += module.scaling * (module.lora_B @ module.lora_A)",
         "module.base.weight += module.scaling * (module.lora_A.T @ module.lora_B.T)")],
       ("test_merge_visible", "test_merge_hidden"), "adds (B A) transposed"),
    _m("merge_replaces_weight", "merge",
       [("                module.base.weight += module.scaling * (module.lora_B @ module.lora_A)\n",
         "                module.base.weight = nn.Parameter(module.base.weight + module.scaling * "
         "(module.lora_B @ module.lora_A), requires_grad=False)\n")],
       ("test_merge_hidden",), "replaces base.weight by a new Parameter instead of adding into it"),
    _m("merge_rebinds_data", "merge",
       [("                module.base.weight += module.scaling * (module.lora_B @ module.lora_A)\n",
         "                module.base.weight.data = module.base.weight.data + module.scaling * "
         "(module.lora_B @ module.lora_A)\n")],
       ("test_merge_hidden",),
       "rebinds base.weight.data to a new tensor: whatever shared the weight's memory no longer sees it"),
    _m("merge_freezes_adapters", "merge",
       [("                module.merged = True\n",
         "                module.merged = True\n                module.lora_A.requires_grad_(False)\n"
         "                module.lora_B.requires_grad_(False)\n")],
       ("test_merge_hidden",),
       "freezes A and B when merging and never unfreezes them: after unmerge nothing trains"),
    # --- 6. SFT batch and loss ----------------------------------------------------------------------
    _m("sft_labels_on_prompt", "sft",
       [("label_rows.append([-100] * len(prompt) + answer)", "label_rows.append(prompt + answer)")], SFT,
       "puts the prompt tokens in the labels too: the model is trained to write prompts"),
    _m("sft_pad_with_eos", "sft",
       [("torch.full((len(rows), width), tokenizer.pad_token_id,",
         "torch.full((len(rows), width), tokenizer.eos_token_id,")],
       ("test_sft_hidden",), "pads with <eos> instead of the pad token"),
    _m("sft_answer_with_bos", "sft",
       [('tokenizer(ex["answer"], add_special_tokens=False)["input_ids"]',
         'tokenizer(ex["answer"])["input_ids"]')],
       SFT, "tokenizes the answer with special tokens: a <bos> in the middle of the sequence"),
    _m("loss_no_shift", "sft",
       [("targets = batch[\"labels\"][:, 1:]", "targets = batch[\"labels\"]"),
        ("logits[:, :-1].reshape", "logits.reshape")],
       SFT, "does not shift: the logits at t are scored against the token at t"),
    _m("loss_mean_over_all_positions", "sft",
       [('targets.reshape(-1), ignore_index=-100)',
         'targets.reshape(-1), ignore_index=-100, reduction="sum") / targets.numel()')],
       SFT, "divides the summed loss by every position, padding and prompt included"),
    _m("sft_first_answer_token_only", "sft",
       [("label_rows.append([-100] * len(prompt) + answer)",
         "label_rows.append([-100] * len(prompt) + answer[:1] + [-100] * (len(answer) - 1))")],
       ("test_sft_hidden",),
       "labels only the first token of the answer (every answer of the task has one token)"),
    _m("loss_mean_of_example_means", "sft",
       [(_LOSS_RETURN,
         '    nll = F.cross_entropy(logits[:, :-1].transpose(1, 2).float(), targets, ignore_index=-100,\n'
         '                          reduction="none")\n'
         '    return ((nll * (targets != -100)).sum(1) / (targets != -100).sum(1)).mean()\n')],
       ("test_sft_hidden",),
       "averages per example, then over examples: a long answer counts as much as a short one"),
    _m("loss_passes_labels", "sft",
       [('    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits\n'
         '    targets = batch["labels"][:, 1:]\n' + _LOSS_RETURN,
         '    return model(**batch).loss\n')],
       ("test_sft_hidden",), "lets the model compute the loss from labels= instead of writing the shift"),
    _m("loss_no_attention_mask", "sft",
       [('model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits',
         'model(input_ids=batch["input_ids"]).logits')],
       ("test_sft_hidden",),
       "calls the model without attention_mask: harmless with right padding, wrong as soon as pads "
       "come first"),
    _m("loss_no_upcast", "sft", [("logits[:, :-1].reshape(-1, logits.shape[-1]).float()",
                                  "logits[:, :-1].reshape(-1, logits.shape[-1])")],
       ("test_sft_hidden",),
       "computes the cross-entropy in the logits' dtype: a bf16 model's loss is bf16 and off by ~1 %"),
    _m("loss_shifts_labels_in_place", "sft",
       [('    targets = batch["labels"][:, 1:]\n',
         '    targets = batch["labels"]\n    targets[:, :-1] = targets[:, 1:].clone()\n'
         '    targets[:, -1] = -100\n'
         '    targets = targets[:, :-1]\n')],
       ("test_sft_hidden",),
       "shifts the labels in place: the caller's batch is changed, and a second call shifts again"),
    _m("sft_ignores_device", "sft",
       [('return {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device), '
         '"labels": labels.to(device)}',
         'return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}')],
       ("test_sft_hidden",), "ignores device=: the batch stays on the CPU (a GPU run then fails)"),
    # --- 7. training loop and optimizer bytes --------------------------------------------------------
    _m("train_all_parameters", "train",
       [("params = [p for p in model.parameters() if p.requires_grad]", "params = list(model.parameters())")],
       ("test_train_hidden",), "gives the optimizer every parameter, frozen ones included"),
    _m("train_no_zero_grad", "train", [("        optimizer.zero_grad(set_to_none=True)\n", "")],
       ("test_train_hidden", "test_lora_outcome"),
       "never zeroes the gradients: they accumulate over the steps, and the fine-tune collapses to one "
       "answer"),
    _m("train_zero_grad_before_step", "train",
       [("        loss.backward()\n        optimizer.step()\n        optimizer.zero_grad(set_to_none=True)\n",
         "        loss.backward()\n        optimizer.zero_grad(set_to_none=True)\n"
         "        optimizer.step()\n")],
       ("test_train_visible", "test_train_hidden", "test_lora_outcome"),
       "zeroes the gradients between backward and step: nothing is learned"),
    _m("train_stays_in_train_mode", "train", [("    model.eval()\n    return losses", "    return losses")],
       ("test_train_hidden",), "leaves the model in training mode (dropout stays on at evaluation)"),
    _m("train_no_train_mode", "train", [("    model.train()\n    for step", "    for step")],
       ("test_train_hidden",),
       "never calls model.train(): a model from from_pretrained trains in eval mode, dropout off"),
    _m("train_callback_before_step", "train",
       [("        loss.backward()\n        optimizer.step()\n        optimizer.zero_grad(set_to_none=True)\n"
         "        losses.append(loss.item())\n        if callback is not None:\n            callback(step)\n",
         "        loss.backward()\n        if callback is not None:\n            callback(step)\n"
         "        optimizer.step()\n        optimizer.zero_grad(set_to_none=True)\n"
         "        losses.append(loss.item())\n")],
       ("test_train_hidden",),
       "calls the callback before the optimizer step: an evaluation there sees the old weights"),
    _m("state_bytes_of_parameters", "train",
       [("    return sum(t.numel() * t.element_size() for state in optimizer.state.values()\n"
         "               for t in state.values() if torch.is_tensor(t))\n",
         "    return sum(p.numel() * p.element_size() for g in optimizer.param_groups "
         "for p in g[\"params\"])\n")],
       TRAIN, "counts the bytes of the parameters, not of the optimizer's state"),
    _m("state_bytes_numel", "train", [("t.numel() * t.element_size()", "t.numel()")], TRAIN,
       "counts elements instead of bytes"),
    _m("state_bytes_first_moment_only", "train",
       [("for t in state.values() if torch.is_tensor(t))", 'for t in [state["exp_avg"]])')], TRAIN,
       "counts only Adam's first moment"),
]
