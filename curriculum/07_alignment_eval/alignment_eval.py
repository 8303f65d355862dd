# %% [markdown]
# # Unit 07 — Evaluation you can trust, distillation, and preference tuning (reward models, DPO, GRPO)
#
# A number on a leaderboard is only as good as the way it was measured. This unit builds,
# on the bundled tiny Llama and the bundled docstring task, the pieces an LLM engineer
# uses to measure a model and to change it after pre-training, each checked against a
# real library or a direct computation:
#
# 1. **log-likelihood evaluation** of multiple-choice questions, the way evaluation
#    harnesses do it (answer-only tokens, the tokenisation boundary, length normalisation),
#    and **generated answers**: exact match after normalisation, and the unbiased pass@k;
# 2. **is the difference real?** bootstrap confidence intervals and McNemar's paired test,
#    graded by their coverage and error rates in a simulation where the truth is known;
# 3. **knowledge distillation**: the temperature-scaled KL loss, and a small student
#    that learns faster from the tiny Llama's soft targets than from the data alone;
# 4. **preference tuning**: the Bradley–Terry loss and a reward model with a scalar head,
#    graded on held-out pairwise accuracy; the DPO loss, and a short DPO run graded on its
#    held-out log-ratio margin, preference accuracy and KL to the reference; GRPO's
#    group-relative advantages and clipped, KL-penalised loss against TRL's formula;
# 5. **contamination**: n-gram overlap between an evaluation set and training data, and
#    what leaked items do to a measured accuracy.
#
# ## Learning objectives
#
# After this unit you can
# - score a multiple-choice item by the log-probability of each answer's tokens only, get
#   the tokenisation boundary right, and say when length normalisation changes the answer;
# - score generated answers by exact match after normalisation, and estimate pass@k without
#   bias and without overflow;
# - put a confidence interval on an accuracy, and decide with a paired test whether two
#   models evaluated on the same items really differ;
# - write the distillation loss with its T² factor and show what a teacher buys a student;
# - derive the DPO loss from the Bradley–Terry model, check it equals ln 2 at the start,
#   and read the implicit rewards and the KL to the reference during training;
# - turn a language model into a reward model, and write GRPO's advantages and loss;
# - measure how much of an evaluation set leaked into training, and what that does to
#   the score.
#
# ## Prerequisites
#
# Unit 06 (the tiny Llama, answer-only losses, a training loop with AdamW). The causal
# language-model loss; softmax, log-softmax and the KL divergence; the binomial
# distribution and what a p-value and a 95 % interval mean.
#
# ## Time, device, skills
#
# - **Time:** about 4 hours.
# - **Device:** CPU by default; the whole notebook runs in a few minutes on 2 cores (we
#   measured under 4 minutes with two copies running at once on a shared 2-core machine at load
#   11-15, before the reward model, GRPO and pass@k added about a sixth to it; the DPO run, the
#   slowest cell, took about 90 s). If a CUDA GPU is present, `device` below becomes `"cuda"`
#   and the same code runs there.
# - **Skills practised** (see the course skill map): *Training and fine-tuning*
#   (evaluation, distillation, DPO); *Probability and statistics* (bootstrap, paired
#   tests, coverage); *Information theory* (KL divergence, temperature); *Data*
#   (contamination); *Engineering habits* (testing against a library and against a
#   simulation with a known truth).
#
# Run the cell below first. It fixes seeds and threads and silences library warnings (the
# grader scores any test cell that writes to stderr as 0).

# %% setup id=setup
import copy
import math
import string

import numpy as np
import torch
import torch.nn.functional as F
from graders.notebook import setup

setup()

import matplotlib.pyplot as plt
from graders.notebook import (
    assert_close,
    assert_shape,
    encode_documents,
    load_corpus,
    load_model,
    load_task,
    load_tokenizer,
    model_source,
    perplexity,
    validation_ids,
)
from scipy import stats
from transformers import LlamaConfig, LlamaForCausalLM

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
tokenizer = load_tokenizer()
model = load_model(device=device)
CHOICES = [" module", " class", " function"]  # the three answers of the docstring task
train_task, val_task = load_task("train"), load_task("validation")
print(f"torch {torch.__version__}, running on {device}; model: {model_source()}")
print(f"docstring task: {len(train_task)} training and {len(val_task)} validation examples, e.g. "
      f"{val_task[0]['prompt']!r} -> {val_task[0]['answer']!r}")

# %% [markdown]
# ## 1. Log-likelihood evaluation
#
# Harnesses such as EleutherAI's `lm-evaluation-harness` score a multiple-choice item
# without generating anything: for a context $c$ and each candidate answer $a$ they compute
#
# $$ \log p(a \mid c) = \sum_{t \in \text{answer tokens}} \log p(x_t \mid x_{<t}), $$
#
# and predict the answer with the largest score. Two details decide whether the number
# is right.
#
# **The tokenisation boundary.** The answer's tokens must be the tokens the model would
# see in the whole text, not the tokens of the answer on its own: `" module"` after
# `"Kind:"` is one token (with its space), `"module"` alone another. Harnesses therefore
# tokenise `context + continuation` once and call *continuation* whatever follows the
# first `len(tokenize(context))` tokens. And since a space usually belongs to the next
# word's token, trailing whitespace of the context is first moved to the continuation
# (`"Kind: "` + `"module"` is scored as `"Kind:"` + `" module"`); otherwise the context
# would end in a lone space token that the continuation's token would have absorbed.
#
# Write `continuation_tokens` with exactly that rule.

# %% answer id=continuation_tokens
def continuation_tokens(tokenizer, context, continuation):
    """Split context + continuation into (context_ids, continuation_ids), as harnesses do.

    1. Trailing whitespace of `context` (as str.rstrip() removes it) moves to the front of
       `continuation`.
    2. whole = tokenizer(context + continuation)["input_ids"] (with the <bos> the tokenizer adds);
       n = len(tokenizer(context)["input_ids"]) for the moved context (with its <bos> too).
    3. Returns (whole[:n], whole[n:]): two lists of ints whose concatenation is exactly
       `whole`, the tokens of the full text.
    """
    ### BEGIN SOLUTION
    n_space = len(context) - len(context.rstrip())
    if n_space:
        context, continuation = context[:-n_space], context[-n_space:] + continuation
    whole = tokenizer(context + continuation)["input_ids"]
    n = len(tokenizer(context)["input_ids"])
    return whole[:n], whole[n:]
    ### END SOLUTION

# %% test id=test_continuation_visible points=1
ctx0, cont0 = continuation_tokens(tokenizer, "Docstring: Return x.\nKind:", " module")
module_id = tokenizer(" module", add_special_tokens=False)["input_ids"]
assert cont0 == module_id, f"the continuation ' module' after 'Kind:': expected {module_id}, got {cont0}"
assert ctx0 == tokenizer("Docstring: Return x.\nKind:")["input_ids"], f"context tokens: got {ctx0}"
ctx1, cont1 = continuation_tokens(tokenizer, "Docstring: Return x.\nKind: ", "module")
assert (ctx1, cont1) == (ctx0, cont0), (
    f"'Kind: ' + 'module' must be scored as 'Kind:' + ' module' (the space moves): expected {(ctx0, cont0)}, "
    f"got {(ctx1, cont1)}")

# %% test id=test_continuation_hidden points=2
### BEGIN HIDDEN TESTS
rng_tok = np.random.default_rng(7)
texts_tok = [ex["prompt"] + ex["answer"] for ex in val_task[:40]]
for k, text in enumerate(texts_tok):
    cut = int(rng_tok.integers(1, len(text)))  # anywhere, often inside a word
    context, continuation = text[:cut], text[cut:]
    if k % 4 == 0:  # whitespace at the end of the context: one space, several, a newline
        context = context + [" ", "  ", "\n", " \n "][k // 4 % 4]
    got_ctx, got_cont = continuation_tokens(tokenizer, context, continuation)
    moved = len(context) - len(context.rstrip())
    c2, a2 = (context[:-moved], context[-moved:] + continuation) if moved else (context, continuation)
    whole = tokenizer(c2 + a2)["input_ids"]
    n_ctx = len(tokenizer(c2)["input_ids"])
    assert got_ctx + got_cont == whole, (
        f"context {context!r}, continuation {continuation!r}: the two parts must concatenate to the tokens of "
        f"the whole text {whole}, got {got_ctx} + {got_cont}")
    assert (got_ctx, got_cont) == (whole[:n_ctx], whole[n_ctx:]), (
        f"context {context!r}, continuation {continuation!r}: expected the split after {n_ctx} tokens "
        f"{(whole[:n_ctx], whole[n_ctx:])}, got {(got_ctx, got_cont)}")
    assert all(isinstance(t, int) for t in got_ctx + got_cont), "token ids must be Python ints"
### END HIDDEN TESTS
assert True

# %% [markdown]
# Now the scores. `sequence_logprobs` puts a list of (context, continuation) pairs in one
# right-padded batch, runs the model once, and sums the log-probabilities of the
# continuation tokens only. Remember the shift: the logits at position $t$ predict the
# token at position $t+1$. Do not switch off gradients inside the function: section 4
# trains through it (wrap evaluation calls in `torch.no_grad()` yourself).

# %% answer id=sequence_logprobs
def sequence_logprobs(model, tokenizer, pairs):
    """Summed log-probabilities of the continuation tokens of (context, continuation) pairs.

    Tokens from continuation_tokens; one batch, right-padded with tokenizer.pad_token_id and
    an attention mask; one forward pass of `model` (a causal LM, left in the mode it is in).
    Returns (sums, counts): sums, float32 tensor (n,) on the model's device, sum over the
    continuation tokens of log p(token | everything before it), carrying the autograd graph
    when gradients are enabled; counts, int64 tensor (n,), the number of continuation tokens.
    """
    ### BEGIN SOLUTION
    rows = [continuation_tokens(tokenizer, c, a) for c, a in pairs]
    length = max(len(c) + len(a) for c, a in rows)
    dev = next(model.parameters()).device
    ids = torch.full((len(rows), length), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros(len(rows), length, dtype=torch.long)
    scored = torch.zeros(len(rows), length, dtype=torch.bool)
    for i, (c, a) in enumerate(rows):
        ids[i, : len(c) + len(a)] = torch.tensor(c + a)
        mask[i, : len(c) + len(a)] = 1
        scored[i, len(c) : len(c) + len(a)] = True
    ids, mask, scored = ids.to(dev), mask.to(dev), scored.to(dev)
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    logp = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
    keep = scored[:, 1:]
    return (logp * keep).sum(dim=1), keep.sum(dim=1)
    ### END SOLUTION

# %% test id=test_logprobs_visible points=1
pairs0 = [(val_task[0]["prompt"], c) for c in CHOICES] + [("Docstring: Return the", "ir value.")]
with torch.no_grad():
    sums0, counts0 = sequence_logprobs(model, tokenizer, pairs0)
assert_shape(sums0, (4,), name="sums")
assert_shape(counts0, (4,), name="counts")
assert counts0.tolist()[:3] == [1, 1, 1], f"each choice is one token after 'Kind:': expected counts 1, got {counts0.tolist()}"
# The oracle: one unpadded forward pass per pair, log-softmax, the continuation's tokens.
for i, (c, a) in enumerate(pairs0):
    c_ids, a_ids = continuation_tokens(tokenizer, c, a)
    with torch.no_grad():
        lp = torch.log_softmax(model(torch.tensor([c_ids + a_ids], device=device)).logits[0].double(), -1)
    want = sum(lp[len(c_ids) + j - 1, t].item() for j, t in enumerate(a_ids))
    # float32 batched vs unbatched forward: log-probs agree to ~1e-5 nats.
    assert abs(sums0[i].item() - want) < 1e-3, (
        f"pair {i} ({c[-12:]!r}, {a!r}): expected the summed continuation log-prob {want:.5f}, got {sums0[i].item():.5f}")
assert counts0[3].item() == len(continuation_tokens(tokenizer, *pairs0[3])[1]), f"counts of pair 3: got {counts0[3].item()}"

# %% test id=test_logprobs_hidden points=3
### BEGIN HIDDEN TESTS
rng_lp = np.random.default_rng(3)
pairs_lp = []
for ex in val_task[10:22]:
    text = ex["prompt"] + ex["answer"]
    cut = int(rng_lp.integers(5, len(text) - 1))
    pairs_lp.append((text[:cut], text[cut:]))  # contexts and continuations of very different lengths
pairs_lp += [("Docstring: A", " class for a very long continuation with many tokens in it."), ("Kind: ", "function")]
with torch.no_grad():
    sums_lp, counts_lp = sequence_logprobs(model, tokenizer, pairs_lp)
assert sums_lp.dtype == torch.float32 and counts_lp.dtype == torch.int64, (
    f"dtypes: expected (float32, int64), got ({sums_lp.dtype}, {counts_lp.dtype})")
for i, (c, a) in enumerate(pairs_lp):
    c_ids, a_ids = continuation_tokens(tokenizer, c, a)
    with torch.no_grad():
        lp = torch.log_softmax(model(torch.tensor([c_ids + a_ids], device=device)).logits[0].double(), -1)
    want = sum(lp[len(c_ids) + j - 1, t].item() for j, t in enumerate(a_ids))
    assert counts_lp[i].item() == len(a_ids), f"pair {i}: expected {len(a_ids)} continuation tokens, got {counts_lp[i].item()}"
    # Padding to the batch's longest row must not change a row's scores (right padding + mask).
    assert abs(sums_lp[i].item() - want) < 1e-3 * max(1, len(a_ids)), (
        f"pair {i} ({c[-15:]!r} + {a[:15]!r}): expected {want:.5f}, got {sums_lp[i].item():.5f}")
# Gradients flow when enabled (section 4 trains through this function), and the mode is kept.
model.train()
sums_g, _ = sequence_logprobs(model, tokenizer, pairs_lp[:2])
assert model.training, "sequence_logprobs must leave the model in the mode it found (training here)"
model.eval()
assert sums_g.requires_grad, "with gradients enabled, the sums must carry the autograd graph (do not use no_grad inside)"
# A bfloat16 model: the sums are still float32 (log-softmax in bf16 keeps ~3 significant digits).
model_bf16 = copy.deepcopy(model).to(torch.bfloat16)
with torch.no_grad():
    sums_bf, _ = sequence_logprobs(model_bf16, tokenizer, pairs_lp[:2])
del model_bf16
assert sums_bf.dtype == torch.float32, (
    f"with a bfloat16 model the sums must still be float32 (upcast the logits first), got {sums_bf.dtype}")
### END HIDDEN TESTS
assert True

# %% [markdown]
# With the scores of every (question, choice) pair, the prediction is the choice with the
# largest score. A sum of log-probabilities favours short answers (every extra token can
# only lower it), so harnesses also report a *length-normalised* accuracy ("acc_norm").
# We divide by the number of tokens (the mean log-prob per token); `lm-evaluation-harness`
# divides by the number of characters of the answer string (`len(choice)`), the same idea with
# a unit that does not depend on the tokenizer.

# %% answer id=predict_choices
def predict_choices(sums, counts, n_choices, normalize=False):
    """Index of the best choice of each question.

    sums, counts: tensors (n_questions * n_choices,), question-major (the choices of question 0
        first, then those of question 1, ...), as sequence_logprobs returns them.
    normalize: False scores a choice by its sum; True by sum / count (mean log-prob per token).
    Returns an int64 tensor (n_questions,) of indices in [0, n_choices); ties go to the lowest index.
    sums and counts are not modified.
    """
    ### BEGIN SOLUTION
    scores = sums / counts if normalize else sums
    return scores.reshape(-1, n_choices).argmax(dim=1)
    ### END SOLUTION

# %% test id=test_predict_visible points=1
s_ex = torch.tensor([-1.0, -3.0, -2.5, -4.0, -1.5, -0.5])
n_ex = torch.tensor([1, 2, 5, 1, 1, 1])
got_ex = predict_choices(s_ex, n_ex, 3)
assert got_ex.tolist() == [0, 2], f"by sums: expected [0, 2], got {got_ex.tolist()}"
got_norm = predict_choices(s_ex, n_ex, 3, normalize=True)
assert got_norm.tolist() == [2, 2], f"by mean log-prob per token (-1, -1.5, -0.5 for question 0): expected [2, 2], got {got_norm.tolist()}"

# %% test id=test_predict_hidden points=2
### BEGIN HIDDEN TESTS
gen_pc = torch.Generator().manual_seed(5)
for n_q, n_c in [(7, 4), (1, 2), (5, 1), (12, 3)]:
    s_h = -torch.rand(n_q * n_c, generator=gen_pc) * 10
    c_h = torch.randint(1, 6, (n_q * n_c,), generator=gen_pc)
    for norm in (False, True):
        want = (s_h / c_h if norm else s_h).view(n_q, n_c).argmax(1)
        got = predict_choices(s_h, c_h, n_c, normalize=norm)
        assert got.dtype == torch.int64 and got.tolist() == want.tolist(), (
            f"{n_q} questions of {n_c} choices, normalize={norm}: expected {want.tolist()}, got {got.tolist()} ({got.dtype})")
tie = predict_choices(torch.tensor([-1.0, -1.0, -2.0]), torch.tensor([1, 1, 1]), 3)
assert tie.tolist() == [0], f"a tie goes to the lowest index: expected [0], got {tie.tolist()}"
s_keep, c_keep = torch.tensor([-2.0, -3.0, -1.0]), torch.tensor([2, 2, 1])
predict_choices(s_keep, c_keep, 3, normalize=True)
assert s_keep.tolist() == [-2.0, -3.0, -1.0] and c_keep.tolist() == [2, 2, 1], (
    f"predict_choices must not modify its inputs: sums became {s_keep.tolist()} (was [-2.0, -3.0, -1.0])")
### END HIDDEN TESTS
assert True

# %% [markdown]
# The accuracy of the bundled (pre-trained only) model on the validation split of the
# docstring task, by summed and by normalised score (the three answers are one token each,
# so here the two agree), and how often it picks each answer.

# %%
labels = torch.tensor([CHOICES.index(ex["answer"]) for ex in val_task])


def choice_scores(m, examples):
    with torch.no_grad():
        return sequence_logprobs(m, tokenizer, [(ex["prompt"], c) for ex in examples for c in CHOICES])


base_sums, base_counts = choice_scores(model, val_task)
base_pred = predict_choices(base_sums.cpu(), base_counts.cpu(), len(CHOICES))
base_correct = (base_pred == labels).numpy()
print(f"pre-trained model: accuracy {base_correct.mean():.3f} (chance 1/3), "
      f"normalised {(predict_choices(base_sums.cpu(), base_counts.cpu(), 3, True) == labels).float().mean():.3f}; "
      f"answers chosen: {dict(zip(CHOICES, torch.bincount(base_pred, minlength=3).tolist()))}")

# %% test id=test_task_accuracy points=1
# Re-grades section 1 on the real task: the accuracy from the learner's functions against a
# direct computation (the last-position logits of each prompt, the three answer tokens).
choice_ids = [tokenizer(c, add_special_tokens=False)["input_ids"][0] for c in CHOICES]
with torch.no_grad():
    enc_v = tokenizer([ex["prompt"] for ex in val_task], return_tensors="pt", padding=True).to(device)
    last_v = enc_v["attention_mask"].sum(1) - 1
    direct = model(**enc_v).logits[torch.arange(len(val_task)), last_v][:, choice_ids].argmax(1).cpu()
want_right, got_right = int((direct == labels).sum()), int(base_correct.sum())
assert got_right == want_right, (
    f"the bundled model on the {len(val_task)} validation items: expected {want_right} right "
    f"(accuracy {want_right / len(val_task):.4f}), got {got_right} ({got_right / len(val_task):.4f})")

# %% [markdown]
# ### Generated answers: exact match and pass@k
#
# Not every task comes with choices to score. On generation tasks (short answers, maths,
# code) the model writes an answer, and the harness checks it. Two pieces decide the number.
#
# **Exact match after normalisation.** `"The Function."` and `"function"` should count as
# the same answer. SQuAD's evaluation script (Rajpurkar et al., 2016), whose rules many
# harnesses reuse, normalises both strings before comparing them, in this order:
# lower-case; delete every ASCII punctuation character (the characters of
# `string.punctuation`); delete the words "a", "an" and "the"; split on any whitespace and
# join the words with single spaces. Write `normalize_answer` with exactly these rules, and
# `exact_match`, which compares two normalised strings.
#
# **pass@k.** A code model is allowed $k$ tries: a problem counts as solved when one of $k$
# samples passes its unit tests. Drawing exactly $k$ samples per problem gives a noisy
# estimate, so Chen et al. (2021, the Codex paper) draw $n \ge k$ samples, count the $c$
# correct ones, and use the unbiased estimator
#
# $$ \text{pass@}k = 1 - \frac{\binom{n-c}{k}}{\binom{n}{k}}, $$
#
# the probability that $k$ samples drawn without replacement from the $n$ contain at least
# one correct one, averaged over the problems. The binomial coefficients overflow float64
# once $n$ reaches about a thousand ($\binom{2000}{1000} \approx 10^{600}$), so compute the
# ratio as a product of $c$ factors, each between 0 and 1:
#
# $$ \frac{\binom{n-c}{k}}{\binom{n}{k}} = \prod_{i=n-c+1}^{n} \Bigl(1 - \frac{k}{i}\Bigr), $$
#
# and when $n - c < k$ every draw of $k$ holds a correct sample: pass@$k$ = 1. (Plugging the
# pass@1 estimate into $1 - (1 - c/n)^k$ is *biased*: it underestimates pass@$k$.)

# %% answer id=exact_match
def normalize_answer(text):
    """SQuAD's answer normalisation, in this order: text.lower(); delete every character of
    string.punctuation; delete the words "a", "an", "the" (whole words only: "another" stays);
    split on any whitespace and join with single spaces (no space at either end). Returns a str.
    """
    ### BEGIN SOLUTION
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    return " ".join(w for w in text.split() if w not in ("a", "an", "the"))
    ### END SOLUTION


def exact_match(prediction, reference):
    """1.0 when normalize_answer(prediction) == normalize_answer(reference), else 0.0 (a float)."""
    ### BEGIN SOLUTION
    return float(normalize_answer(prediction) == normalize_answer(reference))
    ### END SOLUTION

# %% test id=test_exact_match_visible points=1
assert normalize_answer("  The Function. ") == "function", f"expected 'function', got {normalize_answer('  The Function. ')!r}"
assert exact_match(" class", "Class!") == 1.0 and exact_match("a class", "classes") == 0.0, (
    f"expected 1.0 and 0.0, got {exact_match(' class', 'Class!')} and {exact_match('a class', 'classes')}")
got_ws = normalize_answer("an apple,\tthe\npear")
assert got_ws == "apple pear", f"articles, punctuation, tabs and newlines: expected 'apple pear', got {got_ws!r}"

# %% test id=test_exact_match_hidden points=2
### BEGIN HIDDEN TESTS
import re as _re
import string as _string


def _squad_normalize(s):
    # SQuAD v1.1's evaluate script (normalize_answer), written out: lower, remove_punc,
    # remove_articles, white_space_fix.
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(_string.punctuation))
    s = _re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


rng_em = np.random.default_rng(17)
pieces = ["a", "an", "the", "The", "A", "AN", "another", "theme", "an't", "a.", "(the)", "module", "Class",
          "func-tion", "x_y", "42", "3.14", "don't", "naïve", "Ünïcode", "e.g.", "!", "...", "--", "$", "[the]"]
seps = [" ", "  ", "\t", "\n", " \n\t ", ""]
for _ in range(400):
    words = rng_em.choice(pieces, size=int(rng_em.integers(0, 7)))
    text = "".join(str(w) + str(rng_em.choice(seps)) for w in words)
    if rng_em.random() < 0.5:
        text = str(rng_em.choice(seps)) + text
    want = _squad_normalize(text)
    got = normalize_answer(text)
    assert got == want, f"normalize_answer({text!r}): expected {want!r} (SQuAD's rules), got {got!r}"
assert normalize_answer("") == "" and normalize_answer("The a an.") == "", (
    f"only articles and punctuation: expected '', got {normalize_answer('The a an.')!r}")
assert normalize_answer("another theme") == "another theme", "articles are removed as whole words only"
assert normalize_answer("a-n") == "" and normalize_answer("t.h.e end") == "end", (
    f"punctuation goes first, then the articles: expected '' and 'end', "
    f"got {normalize_answer('a-n')!r} and {normalize_answer('t.h.e end')!r}")
assert normalize_answer("ÀB The") == "àb", f"str.lower() of every character: expected 'àb', got {normalize_answer('ÀB The')!r}"
for pred, ref, want in [("The class.", "class", 1.0), ("classes", "class", 0.0), ("a module", "Module!", 1.0),
                        ("", "", 1.0), ("the", "", 1.0), ("module function", "function module", 0.0),
                        ("3.14", "314", 1.0), ("3 14", "314", 0.0)]:
    got = exact_match(pred, ref)
    assert type(got) is float and got == want, f"exact_match({pred!r}, {ref!r}): expected {want}, got {got!r}"
### END HIDDEN TESTS
assert True

# %% answer id=pass_at_k
def pass_at_k(n, c, k):
    """Unbiased estimate of pass@k for one problem (Chen et al., 2021).

    n: samples drawn; c: how many of them are correct; k: the budget. Python ints with
    0 <= c <= n and 1 <= k <= n, else ValueError.
    Returns 1 - C(n - c, k) / C(n, k) as a Python float: 1 - prod_{i=n-c+1}^{n} (1 - k / i)
    in float64, and 1.0 when n - c < k. Accurate to ~1e-12 for any n (nothing overflows).
    """
    ### BEGIN SOLUTION
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))
    ### END SOLUTION

# %% test id=test_pass_at_k_visible points=1
# 1 - C(7, 2) / C(10, 2) = 1 - 21/45; pass@1 is c / n; n - c < k: every draw holds a correct sample.
for (n0, c0, k0), want0 in [((10, 3, 2), 1 - 21 / 45), ((10, 3, 1), 0.3), ((5, 0, 2), 0.0), ((4, 2, 3), 1.0)]:
    got0 = pass_at_k(n0, c0, k0)
    assert isinstance(got0, float) and abs(got0 - want0) < 1e-12, f"pass_at_k({n0}, {c0}, {k0}): expected {want0:.6f}, got {got0!r}"
assert pass_at_k(3, 3, 3) == 1.0, f"c = n = k = 3: expected 1.0, got {pass_at_k(3, 3, 3)!r}"

# %% test id=test_pass_at_k_hidden points=3
### BEGIN HIDDEN TESTS
from fractions import Fraction


def _pass_at_k_exact(n, c, k):
    # The direct formula 1 - C(n-c, k) / C(n, k) in exact rational arithmetic, then rounded to float64.
    return float(1 - Fraction(math.comb(n - c, k), math.comb(n, k)))


rng_pk = np.random.default_rng(21)
cases_pk = [(int(n), int(rng_pk.integers(0, n + 1)), int(rng_pk.integers(1, n + 1)))
            for n in rng_pk.integers(1, 60, size=300)]
cases_pk += [(200, 1, 1), (200, 1, 100), (200, 199, 1), (1000, 3, 10), (1000, 500, 1), (1000, 1, 999),
             (2000, 3, 1000), (2000, 20, 50), (5000, 2, 2500), (100000, 7, 3)]
for n, c, k in cases_pk:
    want = _pass_at_k_exact(n, c, k)
    got = pass_at_k(n, c, k)
    assert isinstance(got, float), f"pass_at_k({n}, {c}, {k}) must return a Python float, got {type(got)}"
    # A product of at most c float64 factors: relative error ~c * 1e-16 (n = 2000 overflows a float binomial).
    assert abs(got - want) <= 1e-12 + 1e-10 * abs(want), (
        f"pass_at_k({n}, {c}, {k}): expected {want!r} (1 - C(n-c, k)/C(n, k), exact), got {got!r}")
# Edge cases: n = k; no correct sample; all correct; k > n - c.
for n in (1, 2, 7, 50):
    assert pass_at_k(n, 0, n) == 0.0 and pass_at_k(n, 1, n) == 1.0, f"n = k = {n}: expected 0.0 with c = 0, 1.0 with c >= 1"
    assert pass_at_k(n, n, 1) == 1.0 and pass_at_k(n, 0, 1) == 0.0, f"n = {n}: c = n gives 1.0, c = 0 gives 0.0"
assert pass_at_k(30, 25, 6) == 1.0 and pass_at_k(30, 25, 5) < 1.0, "k > n - c gives exactly 1.0; k = n - c does not"
for bad in [(5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6), (0, 0, 1)]:
    try:
        pass_at_k(*bad)
    except ValueError:
        continue
    raise AssertionError(f"pass_at_k{bad}: expected a ValueError (need 0 <= c <= n and 1 <= k <= n)")
### END HIDDEN TESTS
assert True

# %% [markdown]
# Both on the real task. Left to itself the bundled model almost never writes one of the three
# answers after `Kind:` (they get well under 1 % of its next-token probability: it was
# pre-trained on documentation, not on this format, which is why harnesses score base models by
# log-likelihood). So we sample the way a constrained decoder does: 20 answers per validation
# prompt, each drawn from the model's probabilities of the three answer tokens, renormalised.
# Each sample is marked correct by exact match with the true answer, and pass@$k$ is estimated
# from the 20. The plot also shows the plug-in estimate $1-(1-c/n)^k$ of the same samples,
# which sits below. (With three possible answers a handful of tries almost always includes the
# right one: pass@$k$ is meant for open-ended answers such as programs, where guessing does not pay.)

# %%
N_SAMPLES = 20
with torch.no_grad():
    enc_s = tokenizer([ex["prompt"] for ex in val_task], return_tensors="pt", padding=True).to(device)
    last_s = enc_s["attention_mask"].sum(1) - 1
    probs_s = torch.softmax(model(**enc_s).logits[torch.arange(len(val_task)), last_s].float(), -1).cpu()
choice_ids = [tokenizer(c, add_special_tokens=False)["input_ids"][0] for c in CHOICES]
print(f"next-token probability of the three answers, mean over the prompts: {probs_s[:, choice_ids].sum(1).mean():.4f}")
picks = torch.multinomial(probs_s[:, choice_ids], N_SAMPLES, replacement=True, generator=torch.Generator().manual_seed(0))
samples = torch.tensor(choice_ids)[picks]  # the sampled answer tokens, (102, 20)
sample_correct = np.array([[exact_match(tokenizer.decode([t]), ex["answer"]) for t in row.tolist()]
                           for row, ex in zip(samples, val_task)])
n_correct = sample_correct.sum(1).astype(int)
ks = list(range(1, N_SAMPLES + 1))
pass_curve = [np.mean([pass_at_k(N_SAMPLES, int(c), k) for c in n_correct]) for k in ks]
plugin_curve = [np.mean([1 - (1 - c / N_SAMPLES) ** k for c in n_correct]) for k in ks]
print(f"{N_SAMPLES} sampled answers per prompt: pass@1 {pass_curve[0]:.3f}, pass@5 {pass_curve[4]:.3f}, "
      f"pass@20 {pass_curve[-1]:.3f}; greedy (multiple-choice) accuracy {base_correct.mean():.3f}")
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.plot(ks, pass_curve, marker="o", label="unbiased estimator")
ax.plot(ks, plugin_curve, linestyle="--", label="plug-in 1 - (1 - c/n)^k (biased)")
ax.set_xlabel("k")
ax.set_ylabel("pass@k on the validation prompts")
ax.legend()
plt.show()

# %% test id=test_pass_at_k_task points=1
# Re-grades both functions on the samples above: exact match against a direct comparison of the
# sampled token with the answer's, and pass@1 = mean of c/n, pass@n = share of prompts with c > 0.
answer_ids = torch.tensor([tokenizer(ex["answer"], add_special_tokens=False)["input_ids"][0] for ex in val_task])
direct_c = (samples == answer_ids[:, None]).sum(1).numpy()
assert np.array_equal(n_correct, direct_c), (
    f"correct samples per prompt: expected {direct_c.tolist()[:12]}... ({direct_c.sum()} in all), "
    f"got {n_correct.tolist()[:12]}... ({n_correct.sum()})")
assert abs(pass_curve[0] - n_correct.mean() / N_SAMPLES) < 1e-12 and abs(pass_curve[-1] - (n_correct > 0).mean()) < 1e-12, (
    f"pass@1 must be the mean of c/n ({n_correct.mean() / N_SAMPLES:.4f}) and pass@{N_SAMPLES} the share of prompts "
    f"with a correct sample ({(n_correct > 0).mean():.4f}); got {pass_curve[0]:.4f} and {pass_curve[-1]:.4f}")

# %% [markdown]
# ## 2. Is the difference real?
#
# An accuracy on 102 questions is an estimate. If the items are a random sample from a
# population of questions with true accuracy $p$, the measured accuracy has standard error
# $\sqrt{p(1-p)/n} \approx 0.05$ here: two models 5 points apart may well be equally good.
#
# **The percentile bootstrap** estimates the sampling distribution without a formula:
# resample the $n$ per-item scores *with replacement* $B$ times, compute the mean of each
# resample, and report the $\alpha/2$ and $1-\alpha/2$ quantiles of those $B$ means as a
# $1-\alpha$ interval. A 95 % interval is right when, over many repetitions of the whole
# experiment, it covers the true value 95 % of the time: that is how the test grades it,
# in a simulation where the truth is known.
#
# **Paired comparison.** Two models evaluated on the *same* items are paired: what matters
# is on how many items they disagree. McNemar's exact test looks only at the discordant
# items: $b$ = items A gets right and B wrong, $c$ = the opposite. If the models are
# equally good, each discordant item is a fair coin, so $\min(b, c)$ follows
# Binomial$(b + c, 1/2)$, and the two-sided p-value is
#
# $$ p = \min\bigl(1,\; 2\,P[\text{Bin}(b+c, \tfrac12) \le \min(b,c)]\bigr), \qquad p = 1 \text{ when } b + c = 0. $$
#
# (For the interval of a *difference* between two models, bootstrap the per-item
# differences $a_i - b_i$: that resamples items, keeping the pairs together.)

# %% answer id=bootstrap_ci
def bootstrap_ci(values, n_boot=2000, alpha=0.05, seed=0):
    """Percentile bootstrap 1 - alpha interval of the mean of `values`.

    values: 1-D array-like of n per-item scores (0/1 correctness, or differences).
    Draw n_boot resamples of n indices with replacement (np.random.default_rng(seed)), take the
    mean of each, and return (lo, hi), the alpha/2 and 1 - alpha/2 quantiles of the n_boot means
    (np.quantile's default interpolation), as Python floats. `values` is not modified, nor is
    NumPy's global random state (np.random.seed would reset it for every other caller).
    """
    ### BEGIN SOLUTION
    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    means = values[idx].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)
    ### END SOLUTION

# %% test id=test_bootstrap_visible points=1
lo0, hi0 = bootstrap_ci(np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1] * 10))
assert isinstance(lo0, float) and isinstance(hi0, float), f"expected two floats, got {type(lo0)}, {type(hi0)}"
# The normal approximation for p = 0.7, n = 100: 0.7 +- 1.96 * 0.046 = (0.61, 0.79).
assert 0.58 < lo0 < 0.64 and 0.76 < hi0 < 0.82, f"95% interval of an accuracy of 0.7 on 100 items: expected about (0.61, 0.79), got ({lo0:.3f}, {hi0:.3f})"
assert bootstrap_ci(np.ones(20)) == (1.0, 1.0), "all-correct items: the interval is (1.0, 1.0)"

# %% test id=test_bootstrap_hidden points=3
### BEGIN HIDDEN TESTS
# Against scipy.stats.bootstrap (percentile method) on the same data. The two use different
# random streams, and the mean of n 0/1 scores lies on a lattice of step 1/n (0.01 at n = 100,
# 0.017 at n = 60), so a correct answer that draws its indices another way (rng.choice, another
# index layout) can land an end one lattice step away: in 1,800 such runs (3 ways x 200 seeds x
# 3 cases) the largest difference was exactly one step. The tolerance is one step plus the
# Monte-Carlo error of an interpolated quantile (about 0.003 at n_boot = 10000). A 90 % instead
# of 95 % interval is caught by the coverage check below (and here at n = 100 and 250, where it
# moves an end by 0.012-0.02).
np.random.seed(123)
global_before = np.random.get_state()
bootstrap_ci(np.arange(10) % 3, n_boot=200)
global_after = np.random.get_state()
assert np.array_equal(global_after[1], global_before[1]) and global_after[2] == global_before[2], (
    "bootstrap_ci changed NumPy's global random state (np.random.seed / np.random.* draws): use its own "
    "np.random.default_rng(seed)")
rng_b = np.random.default_rng(11)
for n_items, p_true, alpha in [(100, 0.7, 0.05), (250, 0.4, 0.1), (60, 0.9, 0.05)]:
    vals = (rng_b.random(n_items) < p_true).astype(float)
    before = vals.copy()
    got = bootstrap_ci(vals, n_boot=10000, alpha=alpha, seed=1)
    assert np.array_equal(vals, before), "bootstrap_ci must not modify its input"
    ref = stats.bootstrap((vals,), np.mean, n_resamples=10000, confidence_level=1 - alpha, method="percentile",
                          random_state=np.random.default_rng(2)).confidence_interval
    tol_b = 1 / n_items + 0.003
    assert abs(got[0] - ref.low) < tol_b and abs(got[1] - ref.high) < tol_b, (
        f"n={n_items}, p={p_true}, alpha={alpha}: expected about ({ref.low:.3f}, {ref.high:.3f}) "
        f"(scipy.stats.bootstrap, percentile; within one lattice step 1/n plus Monte-Carlo error, {tol_b:.3f}), "
        f"got ({got[0]:.3f}, {got[1]:.3f})")
# Continuous scores have no lattice, so there the ends are pinned down to the Monte-Carlo error of
# 40,000 resamples: 300 correct answers drawing their indices three ways differed from scipy by
# at most 0.0062, while an interval that is not equal-tailed (alpha / 3 on one side) moves that
# end by 0.021-0.026 and a 90 % interval labelled 95 % both ends by 0.04-0.05. Hence 0.012.
cont_b = np.random.default_rng(12).normal(0.2, 1.0, size=50)
got_c = bootstrap_ci(cont_b, n_boot=40000, alpha=0.1, seed=1)
ref_c = stats.bootstrap((cont_b,), np.mean, n_resamples=40000, confidence_level=0.9, method="percentile",
                        random_state=np.random.default_rng(2)).confidence_interval
assert abs(got_c[0] - ref_c.low) < 0.012 and abs(got_c[1] - ref_c.high) < 0.012, (
    f"50 continuous scores, alpha=0.1, n_boot=40000: expected the equal-tailed interval about "
    f"({ref_c.low:.4f}, {ref_c.high:.4f}) (scipy.stats.bootstrap, percentile; within Monte-Carlo error, 0.012), "
    f"got ({got_c[0]:.4f}, {got_c[1]:.4f})")
# Continuous scores and the seed: same seed, same interval; different seed, slightly different.
scores_b = rng_b.normal(0.2, 1.0, size=80)
assert bootstrap_ci(scores_b, seed=4) == bootstrap_ci(scores_b, seed=4), "the same seed must give the same interval"
assert bootstrap_ci(list(scores_b), n_boot=500) != bootstrap_ci(scores_b, n_boot=500, seed=5), (
    "a different seed must give a (slightly) different interval")
# The defaults: n_boot = 2000, alpha = 0.05, seed = 0.
assert bootstrap_ci(scores_b) == bootstrap_ci(scores_b, n_boot=2000, alpha=0.05, seed=0), (
    "the defaults must be n_boot=2000, alpha=0.05, seed=0")
# Every item can be drawn, the first included: one right answer in 20 gives a non-zero upper end.
lo_one, hi_one = bootstrap_ci(np.array([1.0] + [0.0] * 19), seed=3)
assert lo_one == 0.0 and hi_one >= 0.1, f"one right answer of 20: expected about (0.0, 0.15), got ({lo_one}, {hi_one})"
# Coverage with a known truth: 600 experiments of 200 items at p = 0.7. For this seed a correct
# 95 % interval covers 0.963 of them (a proportion's lattice of values makes it a little
# conservative), a 90 % interval 0.927; binomial error of 600 experiments is 0.008, so the bar
# [0.94, 0.985] holds the first and rejects the second.
rng_cov = np.random.default_rng(2024)
covered = 0
for rep in range(600):
    sample = (rng_cov.random(200) < 0.7).astype(float)
    lo, hi = bootstrap_ci(sample, n_boot=1000, seed=rep)
    covered += lo <= 0.7 <= hi
coverage = covered / 600
assert 0.94 <= coverage <= 0.985, f"coverage of the 95% interval over 600 experiments: expected 0.95 +- binomial error, got {coverage:.3f}"
### END HIDDEN TESTS
assert True

# %% answer id=mcnemar
def mcnemar_exact(correct_a, correct_b):
    """Two-sided exact McNemar test of two models scored on the same items.

    correct_a, correct_b: 1-D boolean (or 0/1) arrays of equal length, item i correct or not.
    b = items A gets right and B wrong, c = items B gets right and A wrong;
    p = min(1, 2 * P[Binomial(b + c, 1/2) <= min(b, c)]), and 1.0 when b + c = 0.
    Returns the p-value as a Python float.
    """
    ### BEGIN SOLUTION
    a = np.asarray(correct_a).astype(bool)
    b_ = np.asarray(correct_b).astype(bool)
    b = int(np.sum(a & ~b_))
    c = int(np.sum(~a & b_))
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return float(min(1.0, 2 * tail))
    ### END SOLUTION

# %% test id=test_mcnemar_visible points=1
# b = 1, c = 9: 2 * P[Bin(10, 1/2) <= 1] = 2 * 11 / 1024.
a_v = np.array([1] * 9 + [0] * 1 + [1] * 50, dtype=bool)
b_v = np.array([0] * 9 + [1] * 1 + [1] * 50, dtype=bool)
p_v = mcnemar_exact(a_v, b_v)
assert abs(p_v - 22 / 1024) < 1e-12, f"b=9, c=1: expected p = 22/1024 = {22 / 1024:.6f}, got {p_v}"
assert mcnemar_exact(a_v, a_v) == 1.0, "identical models: expected p = 1.0"

# %% test id=test_mcnemar_hidden points=3
### BEGIN HIDDEN TESTS
# Against scipy.stats.binomtest on the discordant items (two-sided; for p = 1/2 it equals the formula).
rng_m = np.random.default_rng(5)
for n_items, p_a, p_b in [(100, 0.6, 0.6), (300, 0.5, 0.58), (40, 0.9, 0.7), (500, 0.3, 0.31), (12, 0.5, 0.5)]:
    ca = rng_m.random(n_items) < p_a
    cb = np.where(rng_m.random(n_items) < 0.5, ca, rng_m.random(n_items) < p_b)  # correlated, as real models are
    b, c = int(np.sum(ca & ~cb)), int(np.sum(~ca & cb))
    want = 1.0 if b + c == 0 else stats.binomtest(min(b, c), b + c, 0.5).pvalue
    got = mcnemar_exact(ca.astype(int), cb.astype(int))
    assert isinstance(got, float) and abs(got - want) < 1e-9, (
        f"{n_items} items, b={b}, c={c}: expected p = {want:.6g} (scipy.stats.binomtest), got {got}")
    assert abs(mcnemar_exact(cb, ca) - want) < 1e-9, "the test is symmetric in the two models"
assert mcnemar_exact(np.array([1, 0, 1]), np.array([0, 1, 1])) == 1.0, "b = c = 1: expected p = 1.0 (capped at 1)"
# Under the null (both models 60 % right, independently of each other) the exact test rejects at
# 5 % no more often than 5 % (it is conservative): 400 experiments, binomial error 0.011.
rng_null = np.random.default_rng(9)
rejects = sum(mcnemar_exact(rng_null.random(150) < 0.6, rng_null.random(150) < 0.6) < 0.05 for _ in range(400))
assert rejects / 400 <= 0.075, f"false positive rate at alpha = 0.05 under the null: expected <= 0.05 + error, got {rejects / 400:.3f}"
# And it has power: A right on 75 %, B on 55 % of 200 items.
hits = sum(mcnemar_exact(rng_null.random(200) < 0.75, rng_null.random(200) < 0.55) < 0.05 for _ in range(100))
assert hits >= 80, f"power against a 20-point difference on 200 items: expected >= 80 of 100 rejections, got {hits}"
### END HIDDEN TESTS
assert True

# %% [markdown]
# A picture of what the interval means: 60 experiments with a known truth, each drawing
# 102 items at $p = 0.5$. About 3 of the 60 intervals miss the dashed line.

# %%
rng_demo = np.random.default_rng(0)
fig, ax = plt.subplots(figsize=(7, 3))
for k in range(60):
    lo_d, hi_d = bootstrap_ci((rng_demo.random(102) < 0.5).astype(float), n_boot=1000, seed=k)
    ax.plot([k, k], [lo_d, hi_d], color="C0" if lo_d <= 0.5 <= hi_d else "C3")
ax.axhline(0.5, color="gray", linestyle="--", label="true accuracy")
ax.set_xlabel("experiment")
ax.set_ylabel("95% interval of the accuracy")
ax.legend()
plt.show()
lo_b, hi_b = bootstrap_ci(base_correct.astype(float))
print(f"pre-trained model on the 102 validation items: accuracy {base_correct.mean():.3f}, 95% interval ({lo_b:.3f}, {hi_b:.3f})")

# %% [markdown]
# ## 3. Knowledge distillation
#
# A large *teacher* knows more than the one-hot next token: its whole distribution says
# which other tokens were plausible. Distillation (Hinton et al., 2015) trains a small
# *student* to match it, softened by a temperature $T$:
#
# $$ \mathcal{L}_\text{KD} = T^2 \cdot \frac{1}{N}\sum_{\text{positions}} \mathrm{KL}\bigl(\operatorname{softmax}(z^t/T)\,\big\|\,\operatorname{softmax}(z^s/T)\bigr). $$
#
# The direction is teacher ‖ student (the student must put mass wherever the teacher
# does: the "forward" KL). The gradient of the softened loss with respect to the student
# logits scales as $1/T^2$, so the factor $T^2$ keeps its size comparable to the ordinary
# cross-entropy when the two are mixed, $\mathcal{L} = (1-\lambda)\,\mathrm{CE} + \lambda\,\mathcal{L}_\text{KD}$,
# and lets you change $T$ without retuning $\lambda$. The teacher is fixed: no gradient
# flows into it.

# %% answer id=distillation_loss
def distillation_loss(student_logits, teacher_logits, temperature=2.0, mask=None):
    """T^2 * mean over positions of KL(softmax(teacher / T) || softmax(student / T)).

    student_logits, teacher_logits: tensors (..., vocab) of the same shape (any float dtype;
        computed in float32).
    mask: None (every position counts) or a bool tensor of the leading shape (...): only
        positions where it is True count, and the mean is over those.
    No gradient flows into teacher_logits. Returns a scalar float32 tensor.
    """
    ### BEGIN SOLUTION
    vocab = student_logits.shape[-1]
    s = F.log_softmax(student_logits.float().reshape(-1, vocab) / temperature, dim=-1)
    t = F.log_softmax(teacher_logits.detach().float().reshape(-1, vocab) / temperature, dim=-1)
    if mask is not None:
        keep = mask.reshape(-1)
        s, t = s[keep], t[keep]
    kl = (t.exp() * (t - s)).sum(dim=-1)
    return temperature**2 * kl.mean()
    ### END SOLUTION

# %% test id=test_kd_visible points=1
torch.manual_seed(0)
s_kd, t_kd = torch.randn(2, 5, 11), torch.randn(2, 5, 11)
got_kd = distillation_loss(s_kd, t_kd, temperature=2.0)
want_kd = 4.0 * F.kl_div(F.log_softmax(s_kd.view(-1, 11) / 2, -1), F.log_softmax(t_kd.view(-1, 11) / 2, -1),
                         reduction="batchmean", log_target=True)
# float32 sums of 11 terms.
assert_close(got_kd, want_kd, rtol=1e-5, atol=1e-6, name="distillation_loss vs T^2 * F.kl_div(batchmean)")
assert distillation_loss(t_kd, t_kd).abs().item() < 1e-6, "student == teacher: expected a loss of 0"

# %% test id=test_kd_hidden points=3
### BEGIN HIDDEN TESTS
torch.manual_seed(1)
for shape, T in [((3, 7, 50), 1.0), ((4, 13), 4.0), ((2, 3, 5, 9), 0.5), ((6, 4096), 2.0)]:
    s_h = torch.randn(*shape) * 3
    t_h = torch.randn(*shape) * 3
    V = shape[-1]
    want = T * T * F.kl_div(F.log_softmax(s_h.reshape(-1, V) / T, -1), F.log_softmax(t_h.reshape(-1, V) / T, -1),
                            reduction="batchmean", log_target=True)
    got = distillation_loss(s_h, t_h, temperature=T)
    assert got.dim() == 0 and got.dtype == torch.float32, f"expected a float32 scalar, got shape {tuple(got.shape)}, {got.dtype}"
    # float32 sums over up to 4096 terms.
    assert_close(got, want, rtol=1e-4, atol=1e-5, name=f"distillation_loss, shape {shape}, T={T}")
    if len(shape) >= 2:
        mask_h = torch.rand(shape[:-1]) < 0.5
        mask_h.view(-1)[0] = True
        want_m = T * T * F.kl_div(F.log_softmax(s_h[mask_h] / T, -1), F.log_softmax(t_h[mask_h] / T, -1),
                                  reduction="batchmean", log_target=True)
        assert_close(distillation_loss(s_h, t_h, temperature=T, mask=mask_h), want_m, rtol=1e-4, atol=1e-5,
                     name=f"distillation_loss with a mask, shape {shape}, T={T}")
# The default temperature is 2.
s_d, t_d = torch.randn(5, 40), torch.randn(5, 40)
assert_close(distillation_loss(s_d, t_d), distillation_loss(s_d, t_d, temperature=2.0), rtol=0, atol=0,
             name="distillation_loss with the default temperature (2.0)")
# bf16 inputs are computed in float32.
s16, t16 = torch.randn(4, 30).bfloat16(), torch.randn(4, 30).bfloat16()
want16 = distillation_loss(s16.float(), t16.float(), 2.0)
got16 = distillation_loss(s16, t16, 2.0)
assert got16.dtype == torch.float32, f"bf16 logits: expected a float32 loss, got {got16.dtype}"
assert_close(got16, want16, rtol=1e-5, atol=1e-6, name="distillation_loss on bf16 logits")
# Gradients: into the student only.
s_g = torch.randn(3, 20, requires_grad=True)
t_g = torch.randn(3, 20, requires_grad=True)
distillation_loss(s_g, t_g, 3.0).backward()
assert s_g.grad is not None and s_g.grad.abs().sum() > 0, "the student logits must receive a gradient"
assert t_g.grad is None, "no gradient may flow into the teacher logits (detach them)"
### END HIDDEN TESTS
assert True

# %% [markdown]
# Now the experiment. The teacher is the bundled tiny Llama (4 layers, hidden size 256,
# about 4 million parameters, pre-trained on the bundled corpus). The student has the
# same vocabulary but 2 layers of hidden size 64, initialised at random. Both students
# below see the same batches, with the same seeds and the same number of steps; one is
# trained on the cross-entropy alone, the other on $\tfrac12\mathrm{CE} + \tfrac12\mathcal{L}_\text{KD}$
# with $T = 2$. Graded: the validation perplexity of the distilled student against the one
# trained without the teacher, measured in this one run.

# %%
KD_STEPS, KD_BATCH, KD_SEQ, KD_LR, KD_T, KD_LAMBDA = 60, 8, 64, 3e-3, 2.0, 0.5
kd_ids = torch.tensor(encode_documents(tokenizer, load_corpus("train"), max_tokens=KD_STEPS * KD_BATCH * KD_SEQ + 1))
kd_windows = kd_ids[: KD_STEPS * KD_BATCH * KD_SEQ].view(KD_STEPS, KD_BATCH, KD_SEQ)
kd_val = validation_ids(4096)
student_config = LlamaConfig(vocab_size=model.config.vocab_size, hidden_size=64, intermediate_size=172,
                             num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=32,
                             max_position_embeddings=512, tie_word_embeddings=True,
                             bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id)


def train_student(teacher=None):
    """A fresh student trained for KD_STEPS steps; with a teacher, on the mixed loss."""
    torch.manual_seed(0)
    student = LlamaForCausalLM(student_config).to(device).train()
    opt = torch.optim.AdamW(student.parameters(), lr=KD_LR)
    losses = []
    for step in range(KD_STEPS):
        x = kd_windows[step].to(device)
        logits = student(input_ids=x).logits
        ce = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        loss = ce
        if teacher is not None:
            with torch.no_grad():
                teacher_logits = teacher(input_ids=x).logits
            loss = (1 - KD_LAMBDA) * ce + KD_LAMBDA * distillation_loss(logits, teacher_logits, KD_T)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(ce.item())
    return student.eval(), losses


student_plain, plain_losses = train_student()
student_kd, kd_losses = train_student(teacher=model)
ppl_teacher, ppl_plain, ppl_kd = (perplexity(m, kd_val) for m in (model, student_plain, student_kd))
n_student = sum(p.numel() for p in student_kd.parameters())
n_teacher = sum(p.numel() for p in model.parameters())
print(f"teacher ({n_teacher:,} parameters): validation perplexity {ppl_teacher:.1f}")
print(f"student ({n_student:,} parameters), {KD_STEPS} steps: without the teacher {ppl_plain:.1f}, distilled {ppl_kd:.1f}")
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(plain_losses, label="student, cross-entropy only")
ax.plot(kd_losses, label=f"student, distilled (T={KD_T}, lambda={KD_LAMBDA})")
ax.set_xlabel("step")
ax.set_ylabel("training cross-entropy (nats)")
ax.legend()
plt.show()

# %% test id=test_kd_outcome points=2
assert n_student < n_teacher / 3, f"the student must be much smaller: {n_student:,} vs {n_teacher:,} parameters"
### BEGIN HIDDEN TESTS
# Calibrated on the bundled model (CPU, seed 0): teacher 125, plain student 847, distilled 657
# (ratio 0.78; 0.75 after 50 steps, 0.79 after 80). The bar, 0.9, leaves room for another
# device's round-off; a distillation that does nothing (a zero loss, or a teacher that gets no
# weight) scores the plain student's ratio, 1.
KD_GAIN = 0.9
assert ppl_kd < KD_GAIN * ppl_plain, (
    f"after {KD_STEPS} steps on the same batches: expected the distilled student's validation perplexity below "
    f"{KD_GAIN} x the plain student's ({KD_GAIN * ppl_plain:.1f}), got {ppl_kd:.1f}")
assert ppl_kd > ppl_teacher, f"the student should not beat its teacher at this budget: {ppl_kd:.1f} vs {ppl_teacher:.1f}"
### END HIDDEN TESTS
assert True

# %% [markdown]
# What we measured on the bundled model (your run prints its own numbers above): validation
# perplexity 125 for the teacher; after 60 steps of 8 × 64 tokens, 847 for the student
# trained on the data alone and 657 for the distilled one. Early in training the teacher's
# soft targets carry far more information per token than the one-hot next token (which
# other tokens are plausible, and how much), so the student learns the shape of the
# distribution faster. With long training on plenty of data the gap narrows; distillation
# pays most when data or steps are scarce, which is exactly when a small model is trained
# from a big one.
#
# ## 4. Reward models and DPO
#
# Preference data says, for a prompt $x$, that a response $y_w$ was preferred to $y_l$. The
# **Bradley–Terry** model explains such data with a scalar reward $r(x, y)$:
# $P(y_w \succ y_l) = \sigma\bigl(r(x,y_w) - r(x,y_l)\bigr)$, and a reward model is trained by
# maximum likelihood, $\mathcal{L}_\text{BT} = -\log\sigma(r_w - r_l)$, averaged over pairs.
# Write it with `F.logsigmoid`: $\log(\sigma(z))$ computed in two steps underflows to
# $-\infty$ once $z < -100$ or so.
#
# RLHF then maximises that reward with a KL penalty to a reference model. **DPO**
# (Rafailov et al., 2023) noticed that the optimal policy of that problem is
# $\pi^*(y|x) \propto \pi_\text{ref}(y|x)\,e^{r(x,y)/\beta}$, so the reward can be written
# through the policy itself, $r(x,y) = \beta \log\frac{\pi(y|x)}{\pi_\text{ref}(y|x)} + \text{const}$,
# and the Bradley–Terry loss becomes a loss on the policy, with no reward model and no
# sampling:
#
# $$ \mathcal{L}_\text{DPO} = -\log\sigma\Bigl(\beta\bigl[(\log\pi_w - \log\pi^\text{ref}_w) - (\log\pi_l - \log\pi^\text{ref}_l)\bigr]\Bigr). $$
#
# At the start, policy = reference, every pair's loss is $\ln 2$. TRL's `DPOTrainer` (loss
# type `"sigmoid"`, its default, with `beta=0.1` and `label_smoothing=0.0` by default) also
# returns the *implicit rewards* $\beta(\log\pi_w - \log\pi^\text{ref}_w)$ and
# $\beta(\log\pi_l - \log\pi^\text{ref}_l)$, detached, which it logs; and with label
# smoothing $\varepsilon$ (conservative DPO: a fraction $\varepsilon$ of the labels is assumed
# flipped) the loss is $-(1-\varepsilon)\log\sigma(\beta h) - \varepsilon\log\sigma(-\beta h)$,
# with $h$ the bracket above.

# %% answer id=bradley_terry
def bradley_terry_loss(reward_chosen, reward_rejected):
    """Mean over pairs of -log sigmoid(reward_chosen - reward_rejected); tensors (n,) -> scalar.
    Finite for any finite rewards (margins of -1000 included)."""
    ### BEGIN SOLUTION
    return -F.logsigmoid(reward_chosen - reward_rejected).mean()
    ### END SOLUTION

# %% test id=test_bt_visible points=1
bt0 = bradley_terry_loss(torch.zeros(4), torch.zeros(4))
assert abs(bt0.item() - math.log(2)) < 1e-6, f"equal rewards: expected ln 2 = {math.log(2):.6f}, got {bt0.item()}"
bt1 = bradley_terry_loss(torch.tensor([2.0]), torch.tensor([0.0]))
assert abs(bt1.item() - math.log(1 + math.exp(-2))) < 1e-6, f"margin 2: expected log(1 + e^-2), got {bt1.item()}"

# %% test id=test_bt_hidden points=2
### BEGIN HIDDEN TESTS
torch.manual_seed(2)
rc_h, rr_h = torch.randn(64) * 3, torch.randn(64) * 3
want_bt = F.binary_cross_entropy_with_logits(rc_h - rr_h, torch.ones(64))
assert_close(bradley_terry_loss(rc_h, rr_h), want_bt, rtol=1e-5, atol=1e-6, name="Bradley-Terry loss vs BCE-with-logits")
far = bradley_terry_loss(torch.tensor([-1000.0, 0.0]), torch.tensor([0.0, 1000.0]))
assert torch.isfinite(far) and abs(far.item() - 1000.0) < 1e-3, (
    f"margins of -1000: expected a finite loss of 1000 (use F.logsigmoid), got {far.item()}")
### END HIDDEN TESTS
assert True

# %% [markdown]
# **A reward model.** RLHF's reward model is a language model whose LM head is replaced by a
# scalar head. In transformers this is `LlamaForSequenceClassification` with `num_labels=1`
# (what TRL's `RewardTrainer` trains): it runs the decoder on prompt + response, takes the last
# hidden state at the *last real token* (the one that has seen the whole text), and maps it to
# one number with a linear layer without bias (a bias would cancel in $r_w - r_l$ anyway).
# Write `RewardModel` the same way: `pooled` returns those hidden states, `forward` the
# rewards. Rows may be padded on either side (generation pads on the left), so the last real
# token is the last position where `attention_mask` is 1, which is not always
# `attention_mask.sum() - 1`.

# %% answer id=reward_model
class RewardModel(torch.nn.Module):
    """A scalar reward on a causal LM's decoder, like LlamaForSequenceClassification(num_labels=1).

    backbone: the decoder stack without its LM head (`model.model` of a LlamaForCausalLM), kept
        as given (not copied, not frozen here) in self.backbone.
    self.score: torch.nn.Linear(hidden_size, 1, bias=False), torch's default initialisation.
    pooled(input_ids, attention_mask): int64 tensors (n, T), each row padded on either side; runs
        the backbone once and returns its last hidden states at each row's last position whose
        attention_mask is 1: (n, hidden_size).
    forward(input_ids, attention_mask): self.score of the pooled states, as float32 rewards (n,).
    """

    def __init__(self, backbone):
        super().__init__()
        ### BEGIN SOLUTION
        self.backbone = backbone
        self.score = torch.nn.Linear(backbone.config.hidden_size, 1, bias=False)
        ### END SOLUTION

    def pooled(self, input_ids, attention_mask):
        ### BEGIN SOLUTION
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        last = (positions * attention_mask).argmax(dim=1)
        return hidden[torch.arange(len(hidden), device=hidden.device), last]
        ### END SOLUTION

    def forward(self, input_ids, attention_mask):
        ### BEGIN SOLUTION
        return self.score(self.pooled(input_ids, attention_mask)).squeeze(-1).float()
        ### END SOLUTION

# %% test id=test_reward_model_visible points=1
torch.manual_seed(0)
rm0 = RewardModel(copy.deepcopy(model.model)).to(device)
assert isinstance(rm0.score, torch.nn.Linear) and rm0.score.bias is None and rm0.score.weight.shape == (1, 256), (
    f"score: expected Linear(256, 1, bias=False), got {rm0.score}")
texts0 = ["Docstring: Return x.\nKind: function", "Docstring: A widget.\nKind: class", "Kind: module"]
enc0 = tokenizer(texts0, return_tensors="pt", padding=True).to(device)
with torch.no_grad():
    r0 = rm0(enc0["input_ids"], enc0["attention_mask"])
    alone0 = torch.cat([rm0(**{k: v[i : i + 1, : int(enc0["attention_mask"][i].sum())] for k, v in enc0.items()})
                        for i in range(3)])
assert_shape(r0, (3,), name="rewards")
assert r0.dtype == torch.float32, f"rewards: expected float32, got {r0.dtype}"
# The padded batch against each row on its own (float32 round-off of a 4-layer forward).
assert_close(r0, alone0, rtol=1e-4, atol=1e-5, name="rewards of a right-padded batch vs each row unpadded")

# %% test id=test_reward_model_hidden points=3
### BEGIN HIDDEN TESTS
from transformers import LlamaForSequenceClassification

# The oracle: transformers' own sequence-classification head on the same weights.
torch.manual_seed(4)
rm_h = RewardModel(copy.deepcopy(model.model)).to(device)
with torch.no_grad():
    rm_h.score.weight.normal_(0, 0.3)
clf_config = copy.deepcopy(model.config)
clf_config.num_labels = 1
clf = LlamaForSequenceClassification(clf_config).to(device).eval()
clf.model.load_state_dict(rm_h.backbone.state_dict())
with torch.no_grad():
    clf.score.weight.copy_(rm_h.score.weight)
texts_h = [ex["prompt"] + ex["answer"] for ex in val_task[30:42]] + ["Kind:", "Docstring: A very long docstring " * 6]
for side in ("right", "left"):
    tokenizer.padding_side = side
    try:
        enc_h = tokenizer(texts_h, return_tensors="pt", padding=True).to(device)
    finally:
        tokenizer.padding_side = "right"
    with torch.no_grad():
        want_h = clf(**enc_h).logits[:, 0]
        got_h = rm_h(enc_h["input_ids"], enc_h["attention_mask"])
        pooled_h = rm_h.pooled(enc_h["input_ids"], enc_h["attention_mask"])
    assert_shape(pooled_h, (len(texts_h), 256), name=f"pooled states ({side} padding)")
    assert got_h.dtype == torch.float32, f"rewards: expected float32, got {got_h.dtype}"
    # Same weights, same forward pass: float32 round-off only.
    assert_close(got_h, want_h, rtol=1e-4, atol=1e-5,
                 name=f"rewards vs LlamaForSequenceClassification(num_labels=1), {side} padding")
# Gradients reach the head (the training below trains it), and the backbone is the one given.
bb = copy.deepcopy(model.model)
rm_g = RewardModel(bb)
assert rm_g.backbone is bb, "self.backbone must be the backbone passed in (not a copy)"
assert all(p.requires_grad for p in bb.parameters()), "RewardModel must not freeze the backbone (the caller decides)"
enc_g = tokenizer(texts_h[:3], return_tensors="pt", padding=True)
rm_g(enc_g["input_ids"], enc_g["attention_mask"]).sum().backward()
assert rm_g.score.weight.grad is not None and rm_g.score.weight.grad.abs().sum() > 0, "the score head gets no gradient"
del clf, rm_h, rm_g, bb
### END HIDDEN TESTS
assert True

# %% [markdown]
# Now train one on the preference pairs of the docstring task: for each prompt the true kind
# is *chosen* and one of the two other kinds, drawn at random, *rejected* (DPO trains on the same
# pairs below). To take seconds on a CPU, the backbone (a copy of the bundled model's) is frozen
# and only the head learns. Its pooled states then never change, so we compute them once and
# fit the head on them with your Bradley–Terry loss: 300 full-batch AdamW steps. (A real reward
# model fine-tunes the whole network, starting from a model that already follows instructions.)
# Graded: the **held-out pairwise accuracy**, the share of the 102 validation pairs where the
# reward of prompt + chosen is above that of prompt + rejected.

# %%
RM_STEPS, RM_LR = 300, 1e-2


def preference_pairs(examples, seed):
    gen = torch.Generator().manual_seed(seed)
    pairs = []
    for ex in examples:
        others = [c for c in CHOICES if c != ex["answer"]]
        pairs.append((ex["prompt"], ex["answer"], others[int(torch.randint(2, (1,), generator=gen))]))
    return pairs


def encode_texts(texts, batch=64):
    """Right-padded token ids and masks of `texts`, in batches of `batch`."""
    for i in range(0, len(texts), batch):
        enc = tokenizer(texts[i : i + batch], return_tensors="pt", padding=True).to(device)
        yield enc["input_ids"], enc["attention_mask"]


def pair_rewards(fn, pairs):
    """fn(input_ids, attention_mask) on prompt + chosen and prompt + rejected: (chosen, rejected)."""
    texts = [p + w for p, w, _ in pairs] + [p + lo for p, _, lo in pairs]
    out = torch.cat([fn(ids, mask) for ids, mask in encode_texts(texts)])
    return out[: len(pairs)], out[len(pairs):]


dpo_train, dpo_val = preference_pairs(train_task, 0), preference_pairs(val_task, 1)
torch.manual_seed(0)
reward_model = RewardModel(copy.deepcopy(model.model)).to(device)
reward_model.backbone.requires_grad_(False)
with torch.no_grad():
    feats_w, feats_l = pair_rewards(reward_model.pooled, dpo_train)
rm_optimizer = torch.optim.AdamW(reward_model.score.parameters(), lr=RM_LR, weight_decay=0.0)
rm_losses = []
for _ in range(RM_STEPS):
    loss = bradley_terry_loss(reward_model.score(feats_w).squeeze(-1), reward_model.score(feats_l).squeeze(-1))
    rm_optimizer.zero_grad()
    loss.backward()
    rm_optimizer.step()
    rm_losses.append(loss.item())
with torch.no_grad():
    rm_val_w, rm_val_l = pair_rewards(reward_model, dpo_val)
    rm_train_w, rm_train_l = reward_model.score(feats_w).squeeze(-1), reward_model.score(feats_l).squeeze(-1)
rm_val_acc = (rm_val_w > rm_val_l).float().mean().item()
rm_train_acc = (rm_train_w > rm_train_l).float().mean().item()
print(f"reward model after {RM_STEPS} steps: Bradley-Terry loss {rm_losses[0]:.3f} -> {rm_losses[-1]:.3f}; "
      f"pairwise accuracy {rm_train_acc:.3f} on the {len(dpo_train)} training pairs, "
      f"{rm_val_acc:.3f} on the {len(dpo_val)} held-out pairs")
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(rm_losses)
ax.axhline(math.log(2), color="gray", linestyle=":", label="ln 2 (no preference)")
ax.set_xlabel("step")
ax.set_ylabel("Bradley-Terry loss")
ax.legend()
plt.show()

# %% test id=test_reward_model_outcome points=2
assert rm_losses[-1] < rm_losses[0], (
    f"the Bradley-Terry loss must fall during training: {rm_losses[0]:.4f} -> {rm_losses[-1]:.4f}")
### BEGIN HIDDEN TESTS
# Calibrated on the bundled model (CPU, seed 0): held-out accuracy 0.657 (0.667 after 100 steps,
# 0.696 after 1,000; 0.735 on the training pairs). A reward read at the padded end of each row
# instead of its last real token: 0.529; at the first token (<bos>, the same for both responses):
# 0.0; with the Bradley-Terry loss's sign flipped: 0.353. The bar, 0.6, sits 6 pairs (of 102)
# below the reference and 7 above the padded-end reward; a correct answer computes the same
# pooled states up to float32 round-off, which moves at most a pair or two.
RM_ACC_MIN = 0.6
assert rm_val_acc >= RM_ACC_MIN, (
    f"held-out pairwise accuracy of the reward model (share of the {len(dpo_val)} validation pairs with "
    f"reward(chosen) > reward(rejected)): expected at least {RM_ACC_MIN}, got {rm_val_acc:.3f}")
assert rm_losses[-1] < 0.6, f"the Bradley-Terry loss after {RM_STEPS} steps: expected below 0.6, got {rm_losses[-1]:.4f}"
### END HIDDEN TESTS
assert True

# %% [markdown]
# Back to DPO: write its loss from the formula above, as TRL computes it.

# %% answer id=dpo_loss
def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.1, label_smoothing=0.0):
    """DPO loss of TRL's default loss type ("sigmoid"), per pair.

    All four inputs: tensors (n,) of summed log-probabilities of the chosen / rejected response
    under the policy and under the (frozen) reference.
    h = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected);
    losses = -(1 - label_smoothing) * logsigmoid(beta * h) - label_smoothing * logsigmoid(-beta * h).
    Returns (losses, chosen_rewards, rejected_rewards), each (n,): the rewards are
    beta * (policy - ref) of each response, detached from the graph.
    """
    ### BEGIN SOLUTION
    h = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    losses = -(1 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)
    chosen_rewards = beta * (policy_chosen - ref_chosen).detach()
    rejected_rewards = beta * (policy_rejected - ref_rejected).detach()
    return losses, chosen_rewards, rejected_rewards
    ### END SOLUTION

# %% test id=test_dpo_visible points=1
lp_same = torch.tensor([-3.0, -7.5, -1.2])
l0, cr0, rr0 = dpo_loss(lp_same, lp_same - 1, lp_same, lp_same - 1)
assert_close(l0, torch.full((3,), math.log(2)), rtol=0, atol=1e-6, name="DPO loss when policy == reference (ln 2)")
assert_close(cr0, torch.zeros(3), rtol=0, atol=0, name="chosen rewards when policy == reference")
l1, cr1, _ = dpo_loss(torch.tensor([-1.0]), torch.tensor([-5.0]), torch.tensor([-2.0]), torch.tensor([-4.0]), beta=0.5)
# h = (-1 + 2) - (-5 + 4) = 2, beta * h = 1: loss = log(1 + e^-1).
assert abs(l1.item() - math.log(1 + math.exp(-1))) < 1e-6, f"h = 2, beta = 0.5: expected log(1 + e^-1), got {l1.item()}"
assert abs(cr1.item() - 0.5) < 1e-6, f"chosen reward beta * (-1 - (-2)) = 0.5, got {cr1.item()}"

# %% test id=test_dpo_hidden points=3
### BEGIN HIDDEN TESTS
# TRL's formula (dpo_trainer.py, loss_type "sigmoid"), written out here on the same tensors.
torch.manual_seed(3)
for n, beta, ls in [(16, 0.1, 0.0), (8, 0.5, 0.0), (32, 0.05, 0.2), (5, 1.0, 0.1)]:
    pc, pr, rc, rr = (torch.randn(n, dtype=torch.float64) * 5 - 20 for _ in range(4))
    pc.requires_grad_(True)
    pr.requires_grad_(True)
    logits = (pc - pr) - (rc - rr)
    want = -F.logsigmoid(beta * logits) * (1 - ls) - F.logsigmoid(-beta * logits) * ls
    losses, crw, rrw = dpo_loss(pc, pr, rc, rr, beta=beta, label_smoothing=ls)
    assert_close(losses, want, rtol=1e-10, atol=1e-12, name=f"DPO losses, beta={beta}, label_smoothing={ls}")
    assert_close(crw, beta * (pc - rc), rtol=1e-10, atol=1e-12, name="chosen rewards")
    assert_close(rrw, beta * (pr - rr), rtol=1e-10, atol=1e-12, name="rejected rewards")
    assert not crw.requires_grad and not rrw.requires_grad, "the rewards must be detached (TRL logs them, never trains on them)"
    assert losses.requires_grad, "the losses must carry the policy's graph"
# Defaults: beta = 0.1, no label smoothing (TRL's defaults).
pc, pr, rc, rr = torch.tensor([-2.0]), torch.tensor([-9.0]), torch.tensor([-4.0]), torch.tensor([-6.0])
want_d = -F.logsigmoid(torch.tensor(0.1 * 5.0))
assert_close(dpo_loss(pc, pr, rc, rr)[0], want_d.reshape(1), rtol=1e-6, atol=1e-7, name="DPO loss with the default beta (0.1)")
# Stable for large margins.
huge = dpo_loss(torch.tensor([-5000.0]), torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([0.0]), beta=1.0)[0]
assert torch.isfinite(huge).all() and abs(huge.item() - 5000.0) < 1e-2, f"h = -5000: expected a finite loss of 5000, got {huge.item()}"
### END HIDDEN TESTS
assert True

# %% [markdown]
# A short DPO run. Preference pairs come from the docstring task: for each prompt, the
# true kind is *chosen* and one of the two other kinds, drawn at random, *rejected*. The
# policy starts as a copy of the bundled model, which is also the frozen reference. Graded
# on 102 held-out pairs: the **held-out log-ratio margin**, the mean over the pairs of
# $(\log\pi_w - \log\pi^\text{ref}_w) - (\log\pi_l - \log\pi^\text{ref}_l)$ (the implicit
# reward margin that TRL logs, divided by $\beta$), must be clearly positive: DPO raises the
# chosen answers against the rejected ones on prompts it never trained on, where a run that
# learns nothing stays at 0 and one that learns the wrong way goes negative. The **preference
# accuracy** (the policy gives the chosen answer a larger log-probability than the rejected
# one) must beat the reference model's, and the **KL to the reference** (of the next-token
# distribution at the answer position, averaged over the held-out prompts) must stay small:
# DPO's $\beta$ keeps the policy near the reference, which is the point of the method.

# %%
DPO_STEPS, DPO_BATCH, DPO_LR, DPO_BETA = 20, 16, 3e-4, 0.1


def pair_logprobs(m, batch):
    """Summed log-probs of the chosen and of the rejected answers, in one forward pass."""
    sums, _ = sequence_logprobs(m, tokenizer, [(p, w) for p, w, _ in batch] + [(p, lo) for p, _, lo in batch])
    return sums[: len(batch)], sums[len(batch):]


def answer_kl(policy, reference, examples):
    """Mean KL(policy || reference) of the next-token distribution after each prompt."""
    with torch.no_grad():
        enc = tokenizer([ex["prompt"] for ex in examples], return_tensors="pt", padding=True).to(device)
        last = enc["attention_mask"].sum(1) - 1
        rows = torch.arange(len(examples), device=device)
        lp = torch.log_softmax(policy(**enc).logits[rows, last].float(), -1)
        lq = torch.log_softmax(reference(**enc).logits[rows, last].float(), -1)
    return (lp.exp() * (lp - lq)).sum(-1).mean().item()


torch.manual_seed(0)
reference = model
policy = copy.deepcopy(model).train()
optimizer = torch.optim.AdamW(policy.parameters(), lr=DPO_LR)
gen_dpo = torch.Generator().manual_seed(0)
dpo_log = {"loss": [], "margin": []}
for step in range(DPO_STEPS):
    batch = [dpo_train[i] for i in torch.randint(len(dpo_train), (DPO_BATCH,), generator=gen_dpo).tolist()]
    with torch.no_grad():
        ref_w, ref_l = pair_logprobs(reference, batch)
    pol_w, pol_l = pair_logprobs(policy, batch)
    losses, reward_w, reward_l = dpo_loss(pol_w, pol_l, ref_w, ref_l, beta=DPO_BETA)
    optimizer.zero_grad()
    losses.mean().backward()
    optimizer.step()
    dpo_log["loss"].append(losses.mean().item())
    dpo_log["margin"].append((reward_w - reward_l).mean().item())
policy.eval()
with torch.no_grad():
    ref_val_w, ref_val_l = pair_logprobs(reference, dpo_val)
    pol_val_w, pol_val_l = pair_logprobs(policy, dpo_val)
ref_pref = (ref_val_w > ref_val_l).float().mean().item()
pol_pref = (pol_val_w > pol_val_l).float().mean().item()
val_margin = ((pol_val_w - ref_val_w) - (pol_val_l - ref_val_l)).mean().item()
kl_to_ref = answer_kl(policy, reference, val_task)
dpo_first_loss = dpo_log["loss"][0]
print(f"held-out pairs: log-ratio margin {val_margin:.3f} nats; preference accuracy reference {ref_pref:.3f}, "
      f"DPO policy {pol_pref:.3f}; KL(policy || reference) at the answer {kl_to_ref:.3f} nats; "
      f"first loss {dpo_first_loss:.4f} (ln 2 = 0.6931)")
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
axes[0].plot(dpo_log["loss"])
axes[0].axhline(math.log(2), color="gray", linestyle=":", label="ln 2")
axes[0].set_xlabel("step")
axes[0].set_ylabel("DPO loss")
axes[0].legend()
axes[1].plot(dpo_log["margin"])
axes[1].set_xlabel("step")
axes[1].set_ylabel("reward margin (chosen - rejected)")
plt.show()

# %% test id=test_dpo_outcome points=2
assert abs(dpo_first_loss - math.log(2)) < 1e-4, (
    f"the first DPO step (policy == reference): expected a loss of ln 2 = 0.6931, got {dpo_first_loss:.5f}")
### BEGIN HIDDEN TESTS
# Calibrated on the bundled model (CPU, seed 0, 20 steps at lr 3e-4): held-out log-ratio margin
# 0.21 nats, preference accuracy 0.598 against the reference's 0.490 (it answers " class" almost
# always; any fixed ranking of the three answers scores about 1/2), KL 0.80 nats. A run that
# learns nothing has a margin of exactly 0 and the reference's accuracy; DPO with the sign flipped
# goes the other way (margin -0.20, accuracy 0.480).
# The margin is a mean of continuous log-probabilities, not a count of 102 pairs, so the bar,
# 0.08, sits 0.13 below a working run and 0.08 above one that learns nothing. Wrong formulas that
# still push the chosen answer up reach about 0.11 (beta outside the log-sigmoid; no reference
# terms): the loss tests above catch those, and the first-loss check catches the second.
MARGIN_MIN, KL_MAX = 0.08, 2.0
assert val_margin > MARGIN_MIN, (
    f"held-out log-ratio margin after {DPO_STEPS} DPO steps (mean over the 102 held-out pairs of "
    f"(log pi_w - log ref_w) - (log pi_l - log ref_l)): expected above {MARGIN_MIN} nats, got {val_margin:.4f}")
assert pol_pref > ref_pref, (
    f"held-out preference accuracy after {DPO_STEPS} DPO steps: expected above the reference's {ref_pref:.3f}, "
    f"got {pol_pref:.3f}")
assert 0 < kl_to_ref < KL_MAX, f"KL(policy || reference) at the answer: expected in (0, {KL_MAX}) nats, got {kl_to_ref:.4f}"
assert dpo_log["margin"][-1] > 0, f"the implicit reward margin must grow above 0, got {dpo_log['margin'][-1]:.4f}"
### END HIDDEN TESTS
assert True

# %% [markdown]
# What we measured (CPU, seed 0): the first loss is ln 2 to 4 decimals; after 20 steps a held-out
# log-ratio margin of 0.21 nats and a preference accuracy of 0.60 for the policy against 0.490
# for the reference (11 more right pairs of 102), with a KL to the reference of about 0.8 nats
# at the answer position. The gain is modest because any fixed
# ranking of the three answers scores about 1/2 on these pairs: to do better the policy must
# tell a class from a function from the docstring, which takes hundreds of steps of
# fine-tuning on this tiny model (unit 06). Note how fast the KL grows once the margin
# starts to move: $\beta$ sets how expensive that is.

# %% [markdown]
# ### GRPO: reinforcement learning with a verifiable reward
#
# DPO learns from a fixed set of pairs. Reasoning models (DeepSeekMath, DeepSeek-R1) are trained
# instead by reinforcement learning on rewards that a program checks (is the final answer right,
# do the unit tests pass) with **GRPO**, group relative policy optimisation (Shao et al., 2024).
# For each prompt the policy samples a *group* of $G$ completions, each gets a reward $r_i$, and
# the advantage of a completion is its reward relative to the rest of its group:
#
# $$ A_i = \frac{r_i - \operatorname{mean}(r_1, \dots, r_G)}{\operatorname{std}(r_1, \dots, r_G) + 10^{-4}}, $$
#
# with the standard deviation Bessel-corrected (`torch.std`'s default), as TRL's `GRPOTrainer`
# computes it. No value network (PPO's critic) is needed: the group is the baseline. A group
# whose completions all get the same reward has advantages 0 and teaches nothing. (Dr. GRPO,
# Liu et al., 2025, leaves out the division by the standard deviation: `scale=False` below.)
#
# Each completion token $t$ then gets PPO's clipped surrogate, with the probability ratio
# $\rho_t = \pi_\theta(o_t \mid \cdot) / \pi_\text{old}(o_t \mid \cdot)$ against the policy that sampled
# the completion, plus a penalty for moving away from the reference model, the KL estimated per
# token with the "k3" estimator (Schulman, 2020):
#
# $$ \ell_t = -\min\bigl(\rho_t A,\ \operatorname{clip}(\rho_t, 1-\varepsilon, 1+\varepsilon)\,A\bigr) + \beta\,\bigl(e^{\,d_t} - d_t - 1\bigr), \qquad d_t = \log\pi_\text{ref}(o_t \mid \cdot) - \log\pi_\theta(o_t \mid \cdot). $$
#
# The k3 term is never negative, and its expectation over tokens sampled from $\pi_\theta$ is
# $\mathrm{KL}(\pi_\theta \,\|\, \pi_\text{ref})$. The loss averages $\ell_t$ over the tokens of each
# completion (the mask marks them), then over the completions: TRL's `loss_type="grpo"` (its other
# loss types divide by the batch's total token count instead). With one gradient step per batch
# of samples $\pi_\text{old} = \pi_\theta$, so $\rho_t = 1$ in value, but its gradient is that of
# $\log \pi_\theta$: the sampling log-probabilities enter as constants. $\varepsilon = 0.2$ and
# $\beta = 0.04$ are the DeepSeekMath paper's values. The hidden tests compare both functions with
# the formula of TRL's `GRPOTrainer` on fixed tensors.

# %% answer id=grpo_advantages
def grpo_advantages(rewards, group_size, scale=True):
    """Group-relative advantages of GRPO, as TRL's GRPOTrainer computes them.

    rewards: float tensor (n_prompts * group_size,), prompt-major (the group_size completions of
        prompt 0 first, then those of prompt 1, ...).
    Each reward minus the mean of its group; with scale=True, divided by (the group's standard
    deviation, Bessel-corrected as torch.std computes it, + 1e-4). Returns a tensor of the same
    shape and dtype; `rewards` is not modified.
    """
    ### BEGIN SOLUTION
    groups = rewards.view(-1, group_size)
    advantages = groups - groups.mean(dim=1, keepdim=True)
    if scale:
        advantages = advantages / (groups.std(dim=1, keepdim=True) + 1e-4)
    return advantages.reshape(rewards.shape)
    ### END SOLUTION

# %% test id=test_grpo_advantages_visible points=1
adv0 = grpo_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0]), 4)
# Group 1: mean 0.25, std (Bessel) 0.5: (0.75, -0.25, -0.25, -0.25) / 0.5001; group 2: all equal, all 0.
want0 = torch.tensor([0.75, -0.25, -0.25, -0.25, 0.0, 0.0, 0.0, 0.0]) / torch.tensor([0.5001] * 4 + [1e-4] * 4)
assert_close(adv0, want0, rtol=1e-5, atol=1e-6, name="advantages of two groups of 4")
assert_close(grpo_advantages(torch.tensor([1.0, 0.0, 3.0, 3.0]), 2, scale=False), torch.tensor([0.5, -0.5, 0.0, 0.0]),
             rtol=0, atol=1e-7, name="advantages with scale=False")

# %% test id=test_grpo_advantages_hidden points=2
### BEGIN HIDDEN TESTS
# TRL's GRPOTrainer (_generate_and_score_completions), written out here from its formula.
def _trl_advantages(rewards, num_generations, scale_rewards=True):
    mean_grouped_rewards = rewards.view(-1, num_generations).mean(dim=1)
    std_grouped_rewards = rewards.view(-1, num_generations).std(dim=1)
    mean_grouped_rewards = mean_grouped_rewards.repeat_interleave(num_generations, dim=0)
    std_grouped_rewards = std_grouped_rewards.repeat_interleave(num_generations, dim=0)
    advantages = rewards - mean_grouped_rewards
    if scale_rewards:
        advantages = advantages / (std_grouped_rewards + 1e-4)
    return advantages


gen_adv = torch.Generator().manual_seed(31)
for n_prompts, g, kind in [(5, 8, "binary"), (3, 4, "float"), (1, 16, "binary"), (7, 2, "float"), (4, 3, "float")]:
    if kind == "binary":  # pass/fail rewards, the usual verifiable reward
        r = (torch.rand(n_prompts * g, generator=gen_adv) < 0.4).double()
    else:
        r = torch.randn(n_prompts * g, generator=gen_adv, dtype=torch.float64) * 3 + 1
    for scale in (True, False):
        before = r.clone()
        got = grpo_advantages(r, g, scale=scale)
        assert torch.equal(r, before), "grpo_advantages must not modify the rewards"
        assert got.shape == r.shape and got.dtype == r.dtype, f"expected shape {tuple(r.shape)} and {r.dtype}, got {tuple(got.shape)} and {got.dtype}"
        assert_close(got, _trl_advantages(r, g, scale), rtol=1e-10, atol=1e-12,
                     name=f"advantages, {n_prompts} prompts x {g} completions ({kind}), scale={scale}")
# The default is scale=True; a group of equal rewards gives zeros, never NaN.
r_eq = torch.tensor([0.5, 0.5, 0.5, 1.0, 0.0, 1.0])
assert_close(grpo_advantages(r_eq, 3), _trl_advantages(r_eq, 3), rtol=1e-5, atol=1e-6, name="advantages with the default scale")
assert torch.isfinite(grpo_advantages(torch.ones(8), 4)).all(), "equal rewards in a group: expected advantages 0, got NaN/inf"
### END HIDDEN TESTS
assert True

# %% answer id=grpo_loss
def grpo_loss(logps, old_logps, ref_logps, advantages, mask, epsilon=0.2, beta=0.04):
    """GRPO's loss (TRL's loss_type "grpo"): clipped surrogate plus beta * k3 KL, per token.

    logps: (B, T) log-probs of the completion tokens under the policy being trained (with grad).
    old_logps: (B, T) under the policy that sampled them; ref_logps: (B, T) under the reference
        (both treated as constants: no gradient flows into them).
    advantages: (B,), one per completion. mask: (B, T), 1 (or True) on completion tokens, 0 on padding.
    ratio = exp(logps - old_logps); per token -min(ratio * A, clamp(ratio, 1 - epsilon, 1 + epsilon) * A)
    + beta * (exp(ref_logps - logps) - (ref_logps - logps) - 1); averaged over each row's masked
    tokens (a row with none counts 0: divide by max(count, 1)), then over the B rows. Returns a
    scalar tensor in logps' dtype.
    """
    ### BEGIN SOLUTION
    ratio = torch.exp(logps - old_logps.detach())
    adv = advantages[:, None]
    surrogate = -torch.min(ratio * adv, torch.clamp(ratio, 1 - epsilon, 1 + epsilon) * adv)
    d = ref_logps.detach() - logps
    per_token = surrogate + beta * (torch.exp(d) - d - 1)
    mask = mask.to(logps.dtype)
    return ((per_token * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)).mean()
    ### END SOLUTION

# %% test id=test_grpo_loss_visible points=1
# One token, ratio 1 (old = current), advantage 2, reference = policy: loss = -2.
lp1 = torch.tensor([[-1.0]], requires_grad=True)
got1 = grpo_loss(lp1, lp1.detach(), lp1.detach(), torch.tensor([2.0]), torch.ones(1, 1))
assert abs(got1.item() + 2.0) < 1e-6, f"ratio 1, A = 2, no KL: expected -2.0, got {got1.item()}"
got1.backward()
assert abs(lp1.grad.item() + 2.0) < 1e-6, f"d loss / d logp at ratio 1 is -A = -2, got {lp1.grad.item()}"
# k3 alone (A = 0): d = log 2 - 0 gives beta * (2 - log 2 - 1).
got2 = grpo_loss(torch.tensor([[math.log(0.5)]]), torch.tensor([[math.log(0.5)]]), torch.tensor([[0.0]]),
                 torch.tensor([0.0]), torch.ones(1, 1), beta=0.5)
assert abs(got2.item() - 0.5 * (1 - math.log(2))) < 1e-6, f"beta * k3 with ratio ref/policy = 2: expected {0.5 * (1 - math.log(2)):.6f}, got {got2.item()}"

# %% test id=test_grpo_loss_hidden points=3
### BEGIN HIDDEN TESTS
# TRL's GRPOTrainer._compute_loss, loss_type "grpo" (trl/trainer/grpo_trainer.py), written out
# here from its formula.
def _trl_grpo_loss(per_token_logps, old_per_token_logps, ref_per_token_logps, advantages, completion_mask,
                   epsilon_low=0.2, epsilon_high=0.2, beta=0.04):
    per_token_kl = torch.exp(ref_per_token_logps - per_token_logps) - (ref_per_token_logps - per_token_logps) - 1
    coef_1 = torch.exp(per_token_logps - old_per_token_logps)
    coef_2 = torch.clamp(coef_1, 1 - epsilon_low, 1 + epsilon_high)
    per_token_loss1 = coef_1 * advantages.unsqueeze(1)
    per_token_loss2 = coef_2 * advantages.unsqueeze(1)
    per_token_loss = -torch.min(per_token_loss1, per_token_loss2)
    if beta != 0.0:
        per_token_loss = per_token_loss + beta * per_token_kl
    return ((per_token_loss * completion_mask).sum(-1) / completion_mask.sum(-1).clamp(min=1.0)).mean()


gen_g = torch.Generator().manual_seed(41)
for b, t, eps, beta, same_old in [(6, 9, 0.2, 0.04, True), (8, 5, 0.2, 0.04, False), (4, 12, 0.1, 0.0, False),
                                  (5, 7, 0.3, 1.0, False), (3, 1, 0.2, 0.5, False)]:
    base = -torch.rand(b, t, generator=gen_g, dtype=torch.float64) * 4
    # Ratios far outside the clip range on both sides, with advantages of both signs.
    old = base.clone() if same_old else base + torch.randn(b, t, generator=gen_g, dtype=torch.float64) * 0.5
    ref = base + torch.randn(b, t, generator=gen_g, dtype=torch.float64) * 0.7
    adv = torch.randn(b, generator=gen_g, dtype=torch.float64) * 2
    mask = (torch.rand(b, t, generator=gen_g) < 0.7).double()
    mask[:, 0] = 1.0
    if b > 3:
        mask[-1] = 0.0  # a completion without tokens counts 0
    lp_got = base.clone().requires_grad_(True)
    lp_want = base.clone().requires_grad_(True)
    old_g, ref_g = old.clone().requires_grad_(True), ref.clone().requires_grad_(True)
    got = grpo_loss(lp_got, old_g, ref_g, adv, mask, epsilon=eps, beta=beta)
    want = _trl_grpo_loss(lp_want, old, ref, adv, mask, epsilon_low=eps, epsilon_high=eps, beta=beta)
    assert got.dim() == 0 and got.dtype == torch.float64, f"expected a float64 scalar, got shape {tuple(got.shape)}, {got.dtype}"
    assert_close(got, want, rtol=1e-10, atol=1e-12, name=f"GRPO loss ({b}x{t}, epsilon={eps}, beta={beta})")
    got.backward()
    want.backward()
    # The gradient is where clipping shows: a clipped token on the side that matters gets none.
    assert_close(lp_got.grad, lp_want.grad, rtol=1e-9, atol=1e-12, name=f"d loss / d logps ({b}x{t}, epsilon={eps}, beta={beta})")
    assert old_g.grad is None and ref_g.grad is None, "no gradient may flow into old_logps or ref_logps"
# A bool mask, the defaults (epsilon 0.2, beta 0.04) and float32.
lp32 = -torch.rand(4, 6, generator=gen_g) * 3
old32 = lp32 + torch.randn(4, 6, generator=gen_g) * 0.3
ref32 = lp32 + torch.randn(4, 6, generator=gen_g) * 0.3
adv32, mask32 = torch.randn(4, generator=gen_g), torch.rand(4, 6, generator=gen_g) < 0.6
mask32[:, 0] = True
got32 = grpo_loss(lp32, old32, ref32, adv32, mask32)
assert got32.dtype == torch.float32, f"float32 inputs: expected a float32 loss, got {got32.dtype}"
assert_close(got32, _trl_grpo_loss(lp32, old32, ref32, adv32, mask32.float()), rtol=1e-5, atol=1e-6,
             name="GRPO loss with a bool mask and the default epsilon and beta")
### END HIDDEN TESTS
assert True

# %% [markdown]
# ## 5. Contamination
#
# If evaluation items were in the training data, a model can answer them from memory and
# the score says little about new questions. Model reports (GPT-3, Llama 2, ...) measure
# overlap with n-grams of words: an item is *contaminated* when any sequence of $n$
# consecutive words of it also occurs in the training data ($n = 13$ for GPT-3; shorter
# items need a shorter $n$). Write the check with lower-cased, whitespace-separated words.

# %% answer id=ngram_overlap
def ngram_overlap(eval_texts, train_texts, n=8):
    """Flag the evaluation texts that share a word n-gram with the training texts.

    Words: text.lower().split(). The n-grams of a text: every run of n consecutive words
    (len(words) - n + 1 of them; none if it has fewer than n words, so it is never flagged).
    Returns a list of bools, one per eval text: True when at least one of its n-grams is an
    n-gram of some training text (n-grams do not run across two training texts).
    """
    ### BEGIN SOLUTION
    def grams(text):
        words = text.lower().split()
        return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}

    seen = set()
    for text in train_texts:
        seen |= grams(text)
    return [not grams(text).isdisjoint(seen) for text in eval_texts]
    ### END SOLUTION

# %% test id=test_ngram_visible points=1
train_c = ["the quick brown fox jumps over the lazy dog", "a b c d"]
got_c = ngram_overlap(["The QUICK brown fox", "quick brown dog", "c d e", "Brown fox jumps"], train_c, n=3)
assert got_c == [True, False, False, True], f"3-gram overlap: expected [True, False, False, True], got {got_c}"

# %% test id=test_ngram_hidden points=2
### BEGIN HIDDEN TESTS
words_pool = [f"w{i}" for i in range(12)]
rng_ng = np.random.default_rng(8)
train_ng = [" ".join(rng_ng.choice(words_pool, size=int(rng_ng.integers(0, 15)))) for _ in range(30)]
eval_ng = [" ".join(rng_ng.choice(words_pool, size=int(rng_ng.integers(0, 8))).tolist()).upper() for _ in range(200)]
for n_g in (1, 2, 3, 4):
    tr_grams = set()
    for t in train_ng:
        w = t.lower().split()
        tr_grams |= {tuple(w[i:i + n_g]) for i in range(len(w) - n_g + 1)}
    want_ng = []
    for t in eval_ng:
        w = t.lower().split()
        want_ng.append(any(tuple(w[i:i + n_g]) in tr_grams for i in range(len(w) - n_g + 1)))
    got_ng = ngram_overlap(eval_ng, train_ng, n=n_g)
    assert got_ng == want_ng, (
        f"n={n_g}: expected {sum(want_ng)} flagged texts, got {sum(got_ng)}; first difference at "
        f"{next((i, eval_ng[i]) for i in range(len(eval_ng)) if got_ng[i] != want_ng[i])}")
# Only whole runs within one training text; the last n-gram of a text counts; tabs and newlines split words.
assert ngram_overlap(["x y"], ["a x", "y b"], n=2) == [False], "an n-gram must not run across two training texts"
assert ngram_overlap(["q r s t"], ["a b s t"], n=2) == [True], "the last n-gram of an eval text counts"
assert ngram_overlap(["one\ttwo\nthree"], ["ONE two three four"], n=3) == [True], "words are split on any whitespace"
assert ngram_overlap(["a b"], ["a b"], n=3) == [False], "a text shorter than n words is never flagged"
assert ngram_overlap(["a b c d e f g h"], ["a b c d e f g h i"]) == [True], "the default n is 8"
### END HIDDEN TESTS
assert True

# %% [markdown]
# What leakage does to a score. Suppose someone evaluates the DPO policy on a set made of
# the 102 validation prompts plus 60 prompts that (by mistake) also come from the DPO
# training split. Flag the leaked items by their 8-gram overlap with the training prompts
# (the docstring lines: the shared "Kind:" suffix would match everything), then compare
# the accuracy on flagged and clean items.

# %%
leaked = train_task[:60]
eval_mix = val_task + leaked
is_leaked = np.array([False] * len(val_task) + [True] * len(leaked))


def docstring(ex):
    return ex["prompt"].split("\n")[0]


flags = np.array(ngram_overlap([docstring(ex) for ex in eval_mix], [docstring(ex) for ex in train_task], n=8))
mix_labels = torch.tensor([CHOICES.index(ex["answer"]) for ex in eval_mix])
mix_sums, mix_counts = choice_scores(policy, eval_mix)
mix_correct = (predict_choices(mix_sums.cpu(), mix_counts.cpu(), 3) == mix_labels).numpy()
print(f"flagged {flags.sum()} of {len(eval_mix)} items ({(flags & is_leaked).sum()} of the {is_leaked.sum()} leaked, "
      f"{(flags & ~is_leaked).sum()} false alarms)")
print(f"DPO policy accuracy: whole set {mix_correct.mean():.3f}, flagged items {mix_correct[flags].mean():.3f}, "
      f"clean items {mix_correct[~flags].mean():.3f}")

# %% test id=test_contamination_outcome points=1
### BEGIN HIDDEN TESTS
# Every leaked item is found (its docstring is a training docstring), and short docstrings
# of fewer than 8 words cannot be flagged: the count is exact for these data.
short = np.array([len(docstring(ex).split()) < 8 for ex in eval_mix])
assert flags[is_leaked & ~short].all(), f"every leaked item of >= 8 words must be flagged, missed {(~flags & is_leaked & ~short).sum()}"
assert not flags[~is_leaked].any() or (flags & ~is_leaked).sum() <= 2, (
    f"clean validation items flagged: expected at most 2 near-duplicates, got {(flags & ~is_leaked).sum()}")
### END HIDDEN TESTS
assert flags.dtype == bool and len(flags) == len(eval_mix), f"one flag per item: expected {len(eval_mix)} bools"

# %% [markdown]
# ## Wrap-up
#
# You scored multiple-choice items by the log-likelihood of their answer tokens, put an
# interval on the result and tested a difference with paired data, distilled a teacher into
# a student, trained a policy with DPO, and measured contamination. What real systems do
# differently:
#
# - **Harnesses** (`lm-evaluation-harness`, HELM, OpenAI's `evals`) batch thousands of
#   requests sorted by length, cache the context's KV state across choices, and report
#   acc and acc_norm (normalised by characters) side by side; generation tasks use exact match
#   after answer extraction, where the prompt format can move the score by many points.
# - **Statistics**: report intervals (and the number of items) with every score; with many
#   benchmarks, correct for multiple comparisons; clustered items (several questions per
#   passage) need a clustered bootstrap. Miller (2024), "Adding error bars to evals", is a
#   short guide.
# - **Distillation** at scale uses the teacher's top-k logits stored offline, on-policy
#   distillation (the student's own samples scored by the teacher, reverse KL), and
#   sequence-level distillation (training on the teacher's generations).
# - **Preference tuning**: DPO has many relatives (IPO, KTO, ORPO, SimPO) that TRL exposes
#   through `loss_type`; RLHF with PPO or GRPO uses a learned or verifiable reward and
#   explicit sampling. Real runs track the reward margins, accuracies and the KL exactly
#   as you did above, and watch for the chosen log-probabilities *falling* too. Reward
#   models fine-tune the whole network (TRL's `RewardTrainer`), not only a head on frozen
#   features. A GRPO run samples a group of completions per prompt at every step (TRL's
#   `GRPOTrainer` hands the sampling to vLLM) and takes hundreds of steps on a GPU: this
#   notebook checks the loss, not a run.
# - **Contamination**: reports combine n-gram overlap with embedding similarity and
#   membership-inference tests (perplexity on the item vs on paraphrases); the honest
#   fix is a held-out set built after the training cut-off.
#
# `benchmark.py` in this unit's folder measures the time of each part of the notebook and
# the figures quoted above on the machine you run it on.
