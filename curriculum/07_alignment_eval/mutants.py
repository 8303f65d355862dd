"""Wrong-but-plausible answers for the evaluation, distillation and DPO unit; each must lose points.

Every mutant is the reference answer cell (read from `alignment_eval.py`, solution markers
removed) with one mistake edited in, so a mutant cannot drift from the reference: if the
reference text changes and an edit no longer applies, loading this file fails loudly.
"""

from __future__ import annotations

from pathlib import Path

from graders.authoring.mutants import EditedMutants

_m = EditedMutants(Path(__file__).resolve().parent / "alignment_eval.py")

CONT = ("test_continuation_visible", "test_continuation_hidden")
LP = ("test_logprobs_visible", "test_logprobs_hidden")
PRED = ("test_predict_visible", "test_predict_hidden")
EM = ("test_exact_match_visible", "test_exact_match_hidden")
PK = ("test_pass_at_k_visible", "test_pass_at_k_hidden")
BOOT = ("test_bootstrap_visible", "test_bootstrap_hidden")
MCN = ("test_mcnemar_visible", "test_mcnemar_hidden")
KD = ("test_kd_visible", "test_kd_hidden")
BT = ("test_bt_visible", "test_bt_hidden")
RM = ("test_reward_model_visible", "test_reward_model_hidden", "test_reward_model_outcome")
DPO = ("test_dpo_visible", "test_dpo_hidden")
ADV = ("test_grpo_advantages_visible", "test_grpo_advantages_hidden")
GL = ("test_grpo_loss_visible", "test_grpo_loss_hidden")
NG = ("test_ngram_visible", "test_ngram_hidden")

_MOVE = ("    if n_space:\n"
         "        context, continuation = context[:-n_space], context[-n_space:] + continuation\n")
_FORWARD = "    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()\n"
_LOSSES = ("    losses = -(1 - label_smoothing) * F.logsigmoid(beta * h) "
           "- label_smoothing * F.logsigmoid(-beta * h)\n")

MUTANTS = [
    # --- 1. continuation_tokens ---------------------------------------------------------------
    _m("cont_no_space_move", "continuation_tokens", [(_MOVE, "")], CONT,
       "does not move the context's trailing space: 'Kind: ' + 'module' leaves no continuation token"),
    _m("cont_encoded_apart", "continuation_tokens",
       [("    return whole[:n], whole[n:]\n",
         "    return (tokenizer(context)[\"input_ids\"],\n"
         "            tokenizer(continuation, add_special_tokens=False)[\"input_ids\"])\n")],
       ("test_continuation_hidden",),
       "tokenises the continuation on its own: wrong tokens when the boundary falls inside a word"),
    _m("cont_context_no_bos", "continuation_tokens",
       [("n = len(tokenizer(context)[\"input_ids\"])",
         "n = len(tokenizer(context, add_special_tokens=False)[\"input_ids\"])")], CONT,
       "counts the context's tokens without the <bos>: the split is one token early"),
    _m("cont_moves_spaces_only", "continuation_tokens",
       [("len(context.rstrip())", "len(context.rstrip(\" \"))")], ("test_continuation_hidden",),
       "moves trailing spaces but not a trailing newline or tab"),
    # --- 1. sequence_logprobs ----------------------------------------------------------------
    _m("lp_no_shift", "sequence_logprobs",
       [(".gather(-1, ids[:, 1:, None])", ".gather(-1, ids[:, :-1, None])")], LP,
       "scores each token with the logits of its own position instead of the previous one"),
    _m("lp_scores_context", "sequence_logprobs",
       [("    keep = scored[:, 1:]\n", "    keep = mask[:, 1:].bool()\n")], LP,
       "sums the log-probs of the context tokens too, not only the answer's"),
    _m("lp_mean_not_sum", "sequence_logprobs",
       [("    return (logp * keep).sum(dim=1), keep.sum(dim=1)\n",
         "    return (logp * keep).sum(dim=1) / keep.sum(dim=1), keep.sum(dim=1)\n")], LP,
       "returns the mean log-prob per token instead of the sum"),
    _m("lp_no_grad", "sequence_logprobs",
       [(_FORWARD, "    with torch.no_grad():\n    " + _FORWARD)], ("test_logprobs_hidden",),
       "switches off gradients inside the function: DPO cannot train through it"),
    _m("lp_forces_eval", "sequence_logprobs",
       [(_FORWARD, "    model.eval()\n" + _FORWARD)], ("test_logprobs_hidden",),
       "puts the model in eval mode and leaves it there (the training loop then runs in eval mode)"),
    _m("lp_probabilities", "sequence_logprobs",
       [("torch.log_softmax(logits, dim=-1)", "torch.softmax(logits, dim=-1)")], LP,
       "sums probabilities instead of log-probabilities"),
    # --- 1. predict_choices ------------------------------------------------------------------
    _m("pred_ignores_normalize", "predict_choices",
       [("scores = sums / counts if normalize else sums", "scores = sums")], PRED,
       "ignores normalize: acc_norm equals acc"),
    _m("pred_choice_major", "predict_choices",
       [("scores.reshape(-1, n_choices).argmax(dim=1)", "scores.reshape(n_choices, -1).argmax(dim=0)")], PRED,
       "reshapes choice-major: mixes the choices of different questions"),
    _m("pred_argmin", "predict_choices",
       [(".argmax(dim=1)", ".argmin(dim=1)")], PRED,
       "takes the smallest log-probability (thinking of losses)"),
    _m("pred_always_normalized", "predict_choices",
       [("scores = sums / counts if normalize else sums", "scores = sums / counts")], PRED,
       "always divides by the token count"),
    # --- 1. exact_match ----------------------------------------------------------------------
    _m("em_case_sensitive", "exact_match",
       [("for ch in text.lower() if", "for ch in text if")], EM, "compares without lower-casing"),
    _m("em_keeps_articles", "exact_match",
       [("w for w in text.split() if w not in (\"a\", \"an\", \"the\")", "w for w in text.split()")], EM,
       "does not delete the articles: 'a class' differs from 'class'"),
    _m("em_articles_before_punctuation", "exact_match",
       [("    text = \"\".join(ch for ch in text.lower() if ch not in string.punctuation)\n"
         "    return \" \".join(w for w in text.split() if w not in (\"a\", \"an\", \"the\"))\n",
         "    text = \" \".join(w for w in text.lower().split() if w not in (\"a\", \"an\", \"the\"))\n"
         "    return \"\".join(ch for ch in text if ch not in string.punctuation)\n")],
       ("test_exact_match_hidden",),
       "deletes the articles before the punctuation: 'the.' and '(the)' survive"),
    _m("em_split_on_space", "exact_match",
       [("for w in text.split() if", "for w in text.split(\" \") if w and")], ("test_exact_match_hidden",),
       "splits on single spaces only: tabs and newlines stay inside words"),
    _m("em_returns_bool", "exact_match",
       [("return float(normalize_answer(prediction) == normalize_answer(reference))",
         "return normalize_answer(prediction) == normalize_answer(reference)")], ("test_exact_match_hidden",),
       "returns a bool instead of the float score"),
    _m("em_substring", "exact_match",
       [("return float(normalize_answer(prediction) == normalize_answer(reference))",
         "return float(normalize_answer(reference) in normalize_answer(prediction))")],
       ("test_exact_match_hidden",), "counts a prediction that contains the reference as a match"),
    # --- 1. pass_at_k ------------------------------------------------------------------------
    _m("pk_plug_in", "pass_at_k",
       [("    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))\n",
         "    return float(1.0 - (1.0 - c / n) ** k)\n")], PK,
       "plugs the pass@1 estimate c/n into 1 - (1 - p)^k: biased low"),
    _m("pk_float_binomials", "pass_at_k",
       [("    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))\n",
         "    from scipy.special import comb\n"
         "    return float(1.0 - comb(n - c, k) / comb(n, k))\n")], ("test_pass_at_k_hidden",),
       "the direct formula with float64 binomial coefficients: inf / inf = nan once n is in the thousands"),
    _m("pk_range_off_by_one", "pass_at_k",
       [("np.arange(n - c + 1, n + 1,", "np.arange(n - c, n + 1,")], PK,
       "one factor too many in the product (from n - c instead of n - c + 1)"),
    _m("pk_no_checks", "pass_at_k",
       [("    if not (0 <= c <= n and 1 <= k <= n):\n"
         "        raise ValueError(f\"pass@k needs 0 <= c <= n and 1 <= k <= n, "
         "got n={n}, c={c}, k={k}\")\n", "")],
       ("test_pass_at_k_hidden",),
       "does not reject c > n, k > n or k = 0: returns 1.0 for impossible inputs"),
    # --- 2. bootstrap_ci ---------------------------------------------------------------------
    _m("boot_alpha_not_halved", "bootstrap_ci",
       [("[alpha / 2, 1 - alpha / 2]", "[alpha, 1 - alpha]")], ("test_bootstrap_hidden",),
       "uses the alpha and 1 - alpha quantiles: a 90 % interval labelled 95 %"),
    _m("boot_no_replacement", "bootstrap_ci",
       [("    idx = rng.integers(0, len(values), size=(n_boot, len(values)))\n",
         "    idx = np.stack([rng.permutation(len(values)) for _ in range(n_boot)])\n")], BOOT,
       "resamples without replacement: every resample has the same mean, the interval collapses"),
    _m("boot_quantiles_of_items", "bootstrap_ci",
       [("    means = values[idx].mean(axis=1)\n", "    means = values[idx].reshape(-1)\n")], BOOT,
       "takes quantiles of the resampled items instead of the resample means"),
    _m("boot_seed_ignored", "bootstrap_ci",
       [("np.random.default_rng(seed)", "np.random.default_rng()")], ("test_bootstrap_hidden",),
       "ignores the seed: the interval is not reproducible"),
    # --- 2. mcnemar_exact --------------------------------------------------------------------
    _m("mcn_one_sided", "mcnemar",
       [("return float(min(1.0, 2 * tail))", "return float(min(1.0, tail))")], MCN,
       "reports the one-sided p-value"),
    _m("mcn_no_cap", "mcnemar",
       [("return float(min(1.0, 2 * tail))", "return float(2 * tail)")], ("test_mcnemar_hidden",),
       "doubles the tail without capping at 1 (p > 1 when b = c)"),
    _m("mcn_unpaired_totals", "mcnemar",
       [("    b = int(np.sum(a & ~b_))\n    c = int(np.sum(~a & b_))\n",
         "    b = int(np.sum(a))\n    c = int(np.sum(b_))\n")], MCN,
       "compares the totals right instead of the discordant items"),
    _m("mcn_strict_tail", "mcnemar",
       [("range(k + 1)", "range(k)")], MCN, "P[X < min(b, c)] instead of P[X <= min(b, c)]"),
    # --- 3. distillation_loss ----------------------------------------------------------------
    _m("kd_no_t_squared", "distillation_loss",
       [("return temperature**2 * kl.mean()", "return kl.mean()")], KD,
       "forgets the T^2 factor"),
    _m("kd_reverse_kl", "distillation_loss",
       [("kl = (t.exp() * (t - s)).sum(dim=-1)", "kl = (s.exp() * (s - t)).sum(dim=-1)")], KD,
       "computes KL(student || teacher) instead of KL(teacher || student)"),
    _m("kd_mean_over_vocab", "distillation_loss",
       [("kl = (t.exp() * (t - s)).sum(dim=-1)", "kl = (t.exp() * (t - s)).mean(dim=-1)")], KD,
       "averages over the vocabulary too (F.kl_div's reduction='mean')"),
    _m("kd_teacher_not_softened", "distillation_loss",
       [("teacher_logits.detach().float().reshape(-1, vocab) / temperature",
         "teacher_logits.detach().float().reshape(-1, vocab)")], KD,
       "divides only the student's logits by the temperature"),
    _m("kd_mask_ignored", "distillation_loss",
       [("    if mask is not None:\n        keep = mask.reshape(-1)\n        s, t = s[keep], t[keep]\n", "")],
       ("test_kd_hidden",), "ignores the mask: padding positions count"),
    _m("kd_teacher_not_detached", "distillation_loss",
       [("teacher_logits.detach().float()", "teacher_logits.float()")], ("test_kd_hidden",),
       "lets the gradient flow into the teacher"),
    # --- 4. bradley_terry_loss ---------------------------------------------------------------
    _m("bt_log_sigmoid_unstable", "bradley_terry",
       [("-F.logsigmoid(reward_chosen - reward_rejected).mean()",
         "-torch.log(torch.sigmoid(reward_chosen - reward_rejected)).mean()")], ("test_bt_hidden",),
       "log(sigmoid(z)) in two steps: infinite for margins below about -100"),
    _m("bt_sign_swapped", "bradley_terry",
       [("reward_chosen - reward_rejected", "reward_rejected - reward_chosen")], BT,
       "prefers the rejected response"),
    _m("bt_sum", "bradley_terry", [(".mean()", ".sum()")], BT, "sums over pairs instead of averaging"),
    # --- 4. RewardModel ----------------------------------------------------------------------
    _m("rm_padded_end", "reward_model",
       [("last = (positions * attention_mask).argmax(dim=1)",
         "last = torch.full_like(attention_mask[:, 0], input_ids.shape[1] - 1)")], RM,
       "reads the reward at the last column: a pad token for every row shorter than the batch"),
    _m("rm_sum_minus_one", "reward_model",
       [("last = (positions * attention_mask).argmax(dim=1)", "last = attention_mask.sum(dim=1) - 1")],
       ("test_reward_model_hidden",),
       "attention_mask.sum() - 1 as the last real token: right for right padding only"),
    _m("rm_first_token", "reward_model",
       [("last = (positions * attention_mask).argmax(dim=1)",
         "last = torch.zeros_like(attention_mask[:, 0])")],
       ("test_reward_model_hidden", "test_reward_model_outcome"),
       "reads the reward at the first token (<bos>): the same for every response"),
    _m("rm_mean_pool", "reward_model",
       [("        return hidden[torch.arange(len(hidden), device=hidden.device), last]\n",
         "        m = attention_mask[..., None].to(hidden.dtype)\n"
         "        return (hidden * m).sum(dim=1) / m.sum(dim=1)\n")], ("test_reward_model_hidden",),
       "averages the hidden states over the real tokens instead of taking the last one"),
    _m("rm_score_bias", "reward_model",
       [("torch.nn.Linear(backbone.config.hidden_size, 1, bias=False)",
         "torch.nn.Linear(backbone.config.hidden_size, 1)")],
       ("test_reward_model_visible", "test_reward_model_hidden"),
       "gives the head a bias: not the layout of LlamaForSequenceClassification's score"),
    _m("rm_freezes_backbone", "reward_model",
       [("        self.backbone = backbone\n",
         "        self.backbone = backbone.requires_grad_(False)\n")], ("test_reward_model_hidden",),
       "freezes the caller's backbone inside the class (the caller decides what trains)"),
    # --- 4. dpo_loss -------------------------------------------------------------------------
    _m("dpo_no_reference", "dpo_loss",
       [("    h = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)\n",
         "    h = policy_chosen - policy_rejected\n")], DPO,
       "leaves out the reference log-probs"),
    _m("dpo_beta_outside", "dpo_loss",
       [(_LOSSES, "    losses = -(1 - label_smoothing) * beta * F.logsigmoid(h) "
                  "- label_smoothing * beta * F.logsigmoid(-h)\n")], DPO,
       "multiplies the log-sigmoid by beta instead of its argument"),
    _m("dpo_rewards_attached", "dpo_loss",
       [("beta * (policy_chosen - ref_chosen).detach()", "beta * (policy_chosen - ref_chosen)"),
        ("beta * (policy_rejected - ref_rejected).detach()", "beta * (policy_rejected - ref_rejected)")],
       ("test_dpo_hidden",), "returns the rewards still attached to the graph"),
    _m("dpo_smoothing_sign", "dpo_loss",
       [("- label_smoothing * F.logsigmoid(-beta * h)", "- label_smoothing * F.logsigmoid(beta * h)")],
       ("test_dpo_hidden",), "label smoothing with the wrong sign inside the second log-sigmoid"),
    _m("dpo_rewards_no_beta", "dpo_loss",
       [("chosen_rewards = beta * (policy_chosen - ref_chosen).detach()",
         "chosen_rewards = (policy_chosen - ref_chosen).detach()"),
        ("rejected_rewards = beta * (policy_rejected - ref_rejected).detach()",
         "rejected_rewards = (policy_rejected - ref_rejected).detach()")], DPO,
       "reports the log-ratio without beta as the reward"),
    # --- 4. grpo_advantages ------------------------------------------------------------------
    _m("adv_population_std", "grpo_advantages",
       [("groups.std(dim=1, keepdim=True)", "groups.std(dim=1, keepdim=True, correction=0)")], ADV,
       "divides by the population standard deviation (TRL uses torch.std's Bessel-corrected one)"),
    _m("adv_no_epsilon", "grpo_advantages",
       [("(groups.std(dim=1, keepdim=True) + 1e-4)", "groups.std(dim=1, keepdim=True)")], ADV,
       "no 1e-4 in the denominator: a group of equal rewards gives 0 / 0 = NaN"),
    _m("adv_batch_baseline", "grpo_advantages",
       [("groups - groups.mean(dim=1, keepdim=True)", "groups - groups.mean()"),
        ("groups.std(dim=1, keepdim=True)", "groups.std()")], ("test_grpo_advantages_hidden",),
       "normalises over the whole batch instead of within each prompt's group"),
    _m("adv_group_major", "grpo_advantages",
       [("groups = rewards.view(-1, group_size)", "groups = rewards.view(group_size, -1).T")], ADV,
       "reads the rewards group-major: mixes the completions of different prompts"),
    _m("adv_always_scaled", "grpo_advantages",
       [("    if scale:\n        advantages", "    if True:\n        advantages")], ADV,
       "ignores scale=False (Dr. GRPO's unscaled advantages)"),
    # --- 4. grpo_loss ------------------------------------------------------------------------
    _m("gl_clipped_only", "grpo_loss",
       [("-torch.min(ratio * adv, torch.clamp(ratio, 1 - epsilon, 1 + epsilon) * adv)",
         "-torch.clamp(ratio, 1 - epsilon, 1 + epsilon) * adv")], ("test_grpo_loss_hidden",),
       "uses only the clipped term: no gradient at all once a ratio leaves the clip range, on either side"),
    _m("gl_max", "grpo_loss",
       [("-torch.min(ratio * adv,", "-torch.max(ratio * adv,")], ("test_grpo_loss_hidden",),
       "the optimistic bound (max) instead of PPO's pessimistic min"),
    _m("gl_k3_reversed", "grpo_loss",
       [("d = ref_logps.detach() - logps", "d = logps - ref_logps.detach()")], GL,
       "k3 with the log-ratio the wrong way round: estimates KL(ref || policy)"),
    _m("gl_k1", "grpo_loss",
       [("beta * (torch.exp(d) - d - 1)", "beta * (-d)")], GL,
       "the k1 estimator log(pi / ref): unbiased too, but negative on many tokens, and not TRL's"),
    _m("gl_token_mean", "grpo_loss",
       [("((per_token * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)).mean()",
         "(per_token * mask).sum() / mask.sum().clamp(min=1.0)")], ("test_grpo_loss_hidden",),
       "averages over all the batch's tokens (TRL's 'bnpo'), not per completion then over completions"),
    _m("gl_old_not_detached", "grpo_loss",
       [("torch.exp(logps - old_logps.detach())", "torch.exp(logps - old_logps)"),
        ("d = ref_logps.detach() - logps", "d = ref_logps - logps")], ("test_grpo_loss_hidden",),
       "lets the gradient flow into the sampling and reference log-probs"),
    _m("gl_mask_ignored", "grpo_loss",
       [("((per_token * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)).mean()", "per_token.mean()")],
       ("test_grpo_loss_hidden",), "ignores the mask: padding tokens count"),
    # --- 5. ngram_overlap --------------------------------------------------------------------
    _m("ng_case_sensitive", "ngram_overlap",
       [("words = text.lower().split()", "words = text.split()")], NG, "compares words case-sensitively"),
    _m("ng_misses_last", "ngram_overlap",
       [("range(len(words) - n + 1)", "range(len(words) - n)")], ("test_ngram_hidden",),
       "off by one: the last n-gram of each text is skipped"),
    _m("ng_across_texts", "ngram_overlap",
       [("    for text in train_texts:\n        seen |= grams(text)\n",
         "    seen |= grams(\" \".join(train_texts))\n")], ("test_ngram_hidden",),
       "joins the training texts: n-grams run across two documents"),
    _m("ng_split_on_space", "ngram_overlap",
       [("words = text.lower().split()", "words = text.lower().split(\" \")")], ("test_ngram_hidden",),
       "splits on single spaces only: tabs and newlines glue words together"),
]

# Mistakes first made by the blind wrong answers (a helper who had not read the tests).
MUTANTS += [
    _m("lp_no_float_upcast", "sequence_logprobs",
       [(".logits[:, :-1].float()", ".logits[:, :-1]")], ("test_logprobs_hidden",),
       "no upcast of the logits: a bfloat16 model gives bfloat16 sums"),
    _m("pred_divides_in_place", "predict_choices",
       [("    scores = sums / counts if normalize else sums\n",
         "    scores = sums.div_(counts) if normalize else sums\n")], ("test_predict_hidden",),
       "normalises in place: the caller's sums become means"),
    _m("boot_global_seed", "bootstrap_ci",
       [("    rng = np.random.default_rng(seed)\n    idx = rng.integers(",
         "    np.random.seed(seed)\n    idx = np.random.randint(")],
       ("test_bootstrap_hidden",),
       "seeds NumPy's global generator: every other caller's random stream is reset"),
]
