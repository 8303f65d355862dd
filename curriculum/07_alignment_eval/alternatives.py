"""Blind alternatives for unit 07 (alignment_eval): correct answers written from the released
notebook only."""

from graders.authoring.alternatives import Alternative

CONT_SUFFIX = '''
def continuation_tokens(tokenizer, context, continuation):
    """Move the context's trailing whitespace onto the continuation, tokenize the whole text once."""
    kept = context.rstrip()
    moved = context[len(kept):]
    whole = tokenizer(kept + moved + continuation)["input_ids"]
    n_context = len(tokenizer(kept)["input_ids"])
    return list(whole[:n_context]), list(whole[n_context:])
'''

CONT_LOOP = """
def continuation_tokens(tokenizer, context, continuation):
    cut = len(context)
    while cut > 0 and context[cut - 1].isspace():
        cut -= 1
    context, continuation = context[:cut], context[cut:] + continuation
    full = list(tokenizer(context + continuation)["input_ids"])
    split = len(tokenizer(context)["input_ids"])
    head, tail = [], []
    for i, tok in enumerate(full):
        (head if i < split else tail).append(tok)
    return head, tail
"""

LOGPROBS_ROWWISE = '''
def sequence_logprobs(model, tokenizer, pairs):
    """Batched forward, then a per-row cross-entropy over the continuation slice."""
    dev = next(model.parameters()).device
    split = [continuation_tokens(tokenizer, c, a) for c, a in pairs]
    lengths = [len(c) + len(a) for c, a in split]
    width = max(lengths)
    rows = [c + a + [tokenizer.pad_token_id] * (width - len(c) - len(a)) for c, a in split]
    mask = [[1] * n + [0] * (width - n) for n in lengths]
    input_ids = torch.tensor(rows, dtype=torch.long, device=dev)
    attention_mask = torch.tensor(mask, dtype=torch.long, device=dev)
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    sums = []
    for i, (c, a) in enumerate(split):
        start, stop = len(c), len(c) + len(a)
        scored = logits[i, start - 1:stop - 1].float()
        sums.append(-F.cross_entropy(scored, input_ids[i, start:stop], reduction="sum"))
    counts = torch.tensor([len(a) for _, a in split], dtype=torch.int64, device=dev)
    return torch.stack(sums).float(), counts
'''

LOGPROBS_MASKED = '''
def sequence_logprobs(model, tokenizer, pairs):
    """One forward; a boolean mask marks the positions whose *next* token is a continuation token."""
    dev = next(model.parameters()).device
    split = [continuation_tokens(tokenizer, c, a) for c, a in pairs]
    n, width = len(split), max(len(c) + len(a) for c, a in split)
    input_ids = torch.full((n, width), tokenizer.pad_token_id, dtype=torch.long, device=dev)
    attention_mask = torch.zeros((n, width), dtype=torch.long, device=dev)
    scored = torch.zeros((n, width), dtype=torch.bool, device=dev)
    for i, (c, a) in enumerate(split):
        input_ids[i, : len(c) + len(a)] = torch.tensor(c + a, dtype=torch.long, device=dev)
        attention_mask[i, : len(c) + len(a)] = 1
        scored[i, len(c): len(c) + len(a)] = True
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    log_probs = torch.log_softmax(logits[:, :-1].to(torch.float32), dim=-1)
    token_lp = log_probs.gather(2, input_ids[:, 1:].unsqueeze(2)).squeeze(2)
    keep = scored[:, 1:]
    sums = torch.where(keep, token_lp, torch.zeros_like(token_lp)).sum(dim=1)
    return sums, keep.sum(dim=1).to(torch.int64)
'''

PREDICT_LOOP = '''
def predict_choices(sums, counts, n_choices, normalize=False):
    """Plain Python scan: a later choice wins only if strictly better (ties to the lowest index)."""
    s, c = sums.tolist(), counts.tolist()
    best = []
    for q in range(len(s) // n_choices):
        best_i, best_score = 0, None
        for j in range(n_choices):
            k = q * n_choices + j
            score = s[k] / c[k] if normalize else s[k]
            if best_score is None or score > best_score:
                best_i, best_score = j, score
        best.append(best_i)
    return torch.tensor(best, dtype=torch.int64, device=sums.device)
'''

PREDICT_MAXEQ = """
def predict_choices(sums, counts, n_choices, normalize=False):
    scores = sums.double() / counts.double() if normalize else sums.double()
    table = scores.reshape(-1, n_choices)
    is_best = table == table.max(dim=1, keepdim=True).values
    # first True of each row: the lowest index among the tied maxima
    first = torch.where(is_best, torch.arange(n_choices, device=table.device), n_choices).min(dim=1).values
    return first.to(torch.int64)
"""

BOOT_CHOICE = '''
def bootstrap_ci(values, n_boot=2000, alpha=0.05, seed=0):
    """Resample the values themselves with rng.choice, row-wise means, np.quantile."""
    data = np.array(values, dtype=np.float64).ravel()
    rng = np.random.default_rng(seed)
    resamples = rng.choice(data, size=(n_boot, data.size), replace=True)
    means = resamples.mean(axis=1)
    lo = np.quantile(means, alpha / 2)
    hi = np.quantile(means, 1 - alpha / 2)
    return float(lo), float(hi)
'''

BOOT_LOOP = '''
def bootstrap_ci(values, n_boot=2000, alpha=0.05, seed=0):
    """One resample of indices per iteration of a loop."""
    data = np.asarray(values, dtype=float)
    n = len(data)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, n, size=n)
        means[b] = data[idx].mean()
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)
'''

MCNEMAR_COMB = '''
def mcnemar_exact(correct_a, correct_b):
    """Exact integer arithmetic: sum of binomial coefficients over 2**(b+c)."""
    a = [bool(v) for v in np.asarray(correct_a).tolist()]
    b_ = [bool(v) for v in np.asarray(correct_b).tolist()]
    b = sum(1 for x, y in zip(a, b_) if x and not y)
    c = sum(1 for x, y in zip(a, b_) if y and not x)
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1))
    return float(min(1.0, 2 * tail / 2 ** n))
'''

MCNEMAR_SCIPY = """
def mcnemar_exact(correct_a, correct_b):
    a = np.asarray(correct_a).astype(bool)
    b_ = np.asarray(correct_b).astype(bool)
    b = int(np.count_nonzero(a & ~b_))
    c = int(np.count_nonzero(b_ & ~a))
    if b + c == 0:
        return 1.0
    return float(min(1.0, 2.0 * stats.binom.cdf(min(b, c), b + c, 0.5)))
"""

KD_KLDIV = '''
def distillation_loss(student_logits, teacher_logits, temperature=2.0, mask=None):
    """F.kl_div per element, summed over the vocabulary, then a (masked) weighted mean."""
    t = temperature
    log_s = F.log_softmax(student_logits.float() / t, dim=-1)
    log_t = F.log_softmax(teacher_logits.detach().float() / t, dim=-1)
    per_position = F.kl_div(log_s, log_t, reduction="none", log_target=True).sum(-1)
    if mask is None:
        weights = torch.ones_like(per_position)
    else:
        weights = mask.to(per_position.dtype)
    return (t ** 2) * (per_position * weights).sum() / weights.sum()
'''

KD_MANUAL = '''
def distillation_loss(student_logits, teacher_logits, temperature=2.0, mask=None):
    """KL written out: sum p_t (log p_t - log p_s), positions selected by boolean indexing."""
    with torch.no_grad():
        log_p_teacher = torch.log_softmax(teacher_logits.to(torch.float32) / temperature, dim=-1)
    log_p_student = torch.log_softmax(student_logits.to(torch.float32) / temperature, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=-1)
    if mask is not None:
        kl = kl[mask.to(torch.bool)]
    return kl.mean() * temperature * temperature
'''

BT_LOGADDEXP = '''
def bradley_terry_loss(reward_chosen, reward_rejected):
    """-log sigmoid(z) = log(1 + e^-z) = logaddexp(0, -z): stable for any finite margin."""
    margin = reward_chosen - reward_rejected
    return torch.logaddexp(torch.zeros_like(margin), -margin).mean()
'''

BT_LOGSIGMOID_SUM = """
def bradley_terry_loss(reward_chosen, reward_rejected):
    log_likelihood = F.logsigmoid(reward_chosen.float() - reward_rejected.float())
    return -log_likelihood.sum() / log_likelihood.numel()
"""

DPO_TRL = '''
def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.1, label_smoothing=0.0):
    """TRL's arrangement: policy log-ratio minus reference log-ratio."""
    pi_logratios = policy_chosen - policy_rejected
    ref_logratios = ref_chosen - ref_rejected
    logits = pi_logratios - ref_logratios
    losses = (-F.logsigmoid(beta * logits) * (1 - label_smoothing)
              - F.logsigmoid(-beta * logits) * label_smoothing)
    chosen_rewards = beta * (policy_chosen - ref_chosen).detach()
    rejected_rewards = beta * (policy_rejected - ref_rejected).detach()
    return losses, chosen_rewards, rejected_rewards
'''

DPO_SOFTPLUS = '''
def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.1, label_smoothing=0.0):
    """Rewards first; -log sigmoid(z) written as softplus(-z)."""
    with torch.no_grad():
        chosen_rewards = beta * (policy_chosen - ref_chosen)
        rejected_rewards = beta * (policy_rejected - ref_rejected)
    z = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))
    eps = label_smoothing
    losses = (1.0 - eps) * F.softplus(-z) + eps * F.softplus(z)
    return losses, chosen_rewards, rejected_rewards
'''

NGRAM_STRINGS = '''
def ngram_overlap(eval_texts, train_texts, n=8):
    """n-grams as space-joined strings (words hold no whitespace, so joining is unambiguous)."""
    def grams(text):
        words = text.lower().split()
        return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}

    seen = set()
    for text in train_texts:
        seen |= grams(text)
    return [not seen.isdisjoint(grams(text)) for text in eval_texts]
'''

NGRAM_ANY = """
def ngram_overlap(eval_texts, train_texts, n=8):
    train_grams = set()
    for text in train_texts:
        w = text.lower().split()
        train_grams.update(zip(*(w[i:] for i in range(n))))
    flags = []
    for text in eval_texts:
        w = text.lower().split()
        flags.append(any(g in train_grams for g in zip(*(w[i:] for i in range(n)))))
    return flags
"""

# Written by the unit's author (issue 32), not blind: no helper was available to write them from
# the release. Each differs from the reference in method: regular expressions and str.translate
# for the normalisation; exact integer binomials for pass@k; a flipped mask and gather for the last
# real token; an explicit loop and a hand-written variance for the advantages; torch.where on the
# advantage's sign and expm1 for the GRPO loss.
EXACT_MATCH_REGEX = """
import re as _re


def normalize_answer(text):
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    text = _re.sub(r"\\b(a|an|the)\\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction, reference):
    return 1.0 if normalize_answer(prediction) == normalize_answer(reference) else 0.0
"""

PASS_AT_K_EXACT = """
def pass_at_k(n, c, k):
    if c < 0 or c > n or k < 1 or k > n:
        raise ValueError("need 0 <= c <= n and 1 <= k <= n")
    # Python's int / int is correctly rounded, however large the binomials.
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)
"""

REWARD_MODEL_GATHER = """
class RewardModel(torch.nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.score = torch.nn.Linear(backbone.config.hidden_size, 1, bias=False)

    def pooled(self, input_ids, attention_mask):
        states = self.backbone(input_ids=input_ids, attention_mask=attention_mask)[0]
        width = attention_mask.shape[1]
        last = width - 1 - attention_mask.flip(1).argmax(dim=1)
        index = last.view(-1, 1, 1).expand(-1, 1, states.shape[-1])
        return states.gather(1, index).squeeze(1)

    def forward(self, input_ids, attention_mask):
        return self.score(self.pooled(input_ids, attention_mask))[:, 0].to(torch.float32)
"""

GRPO_ADVANTAGES_LOOP = """
def grpo_advantages(rewards, group_size, scale=True):
    out = torch.empty_like(rewards)
    for start in range(0, rewards.numel(), group_size):
        group = rewards[start : start + group_size]
        centred = group - group.sum() / group_size
        if scale:
            std = torch.sqrt((centred**2).sum() / (group_size - 1))
            centred = centred / (std + 1e-4)
        out[start : start + group_size] = centred
    return out
"""

GRPO_LOSS_WHERE = """
def grpo_loss(logps, old_logps, ref_logps, advantages, mask, epsilon=0.2, beta=0.04):
    ratio = (logps - old_logps.detach()).exp()
    clipped = ratio.clamp(1 - epsilon, 1 + epsilon)
    a = advantages.unsqueeze(1).expand_as(ratio)
    # -min(ratio * A, clipped * A): the smaller ratio when A >= 0, the larger when A < 0.
    surrogate = torch.where(a >= 0, torch.minimum(ratio, clipped), torch.maximum(ratio, clipped)) * a
    d = ref_logps.detach() - logps
    per_token = -surrogate + beta * (torch.expm1(d) - d)
    m = mask.to(logps.dtype)
    per_row = (per_token * m).sum(dim=-1) / torch.clamp(m.sum(dim=-1), min=1.0)
    return per_row.sum() / per_row.numel()
"""

ALTERNATIVES = [
    Alternative(
        "cont_suffix", "continuation_tokens", CONT_SUFFIX, "rstrip, slice off the moved suffix, list() copies"
    ),
    Alternative(
        "cont_loop",
        "continuation_tokens",
        CONT_LOOP,
        "character loop with isspace, split by index into two lists",
    ),
    Alternative(
        "logprobs_rowwise",
        "sequence_logprobs",
        LOGPROBS_ROWWISE,
        "padding in Python lists, per-row -F.cross_entropy(reduction='sum') over the continuation slice",
    ),
    Alternative(
        "logprobs_masked",
        "sequence_logprobs",
        LOGPROBS_MASKED,
        "preallocated tensors, log_softmax + gather over all positions, torch.where with a scored mask",
    ),
    Alternative(
        "predict_loop", "predict_choices", PREDICT_LOOP, "pure Python double loop with strict > for ties"
    ),
    Alternative(
        "predict_maxeq",
        "predict_choices",
        PREDICT_MAXEQ,
        "float64 scores, equality with the row max, smallest index among the maxima",
    ),
    Alternative(
        "boot_choice", "bootstrap_ci", BOOT_CHOICE, "rng.choice on the values themselves, 2-D at once"
    ),
    Alternative("boot_loop", "bootstrap_ci", BOOT_LOOP, "one rng.integers call per resample in a loop"),
    Alternative(
        "mcnemar_comb", "mcnemar", MCNEMAR_COMB, "exact integer arithmetic with math.comb, Python loops"
    ),
    Alternative("mcnemar_scipy", "mcnemar", MCNEMAR_SCIPY, "scipy.stats.binom.cdf"),
    Alternative(
        "kd_kldiv", "distillation_loss", KD_KLDIV, "F.kl_div(reduction='none'), weighted mean by the mask"
    ),
    Alternative(
        "kd_manual", "distillation_loss", KD_MANUAL, "KL written out, teacher under no_grad, boolean indexing"
    ),
    Alternative(
        "bt_logaddexp", "bradley_terry", BT_LOGADDEXP, "logaddexp(0, -margin), the softplus identity"
    ),
    Alternative("bt_logsigmoid_sum", "bradley_terry", BT_LOGSIGMOID_SUM, "F.logsigmoid, sum / numel"),
    Alternative("dpo_trl", "dpo_loss", DPO_TRL, "TRL's order: policy log-ratio minus reference log-ratio"),
    Alternative("dpo_softplus", "dpo_loss", DPO_SOFTPLUS, "rewards under no_grad, losses as softplus"),
    Alternative("ngram_strings", "ngram_overlap", NGRAM_STRINGS, "n-grams as joined strings, set.isdisjoint"),
    Alternative("ngram_any", "ngram_overlap", NGRAM_ANY, "zip of shifted word lists, any() membership"),
    Alternative("em_regex", "exact_match", EXACT_MATCH_REGEX, "str.translate and SQuAD's regex (not blind)"),
    Alternative("pk_exact", "pass_at_k", PASS_AT_K_EXACT, "exact integer binomials, int / int (not blind)"),
    Alternative("rm_gather", "reward_model", REWARD_MODEL_GATHER, "flipped mask argmax, gather (not blind)"),
    Alternative(
        "adv_loop", "grpo_advantages", GRPO_ADVANTAGES_LOOP, "loop over groups, variance by hand (not blind)"
    ),
    Alternative("gl_where", "grpo_loss", GRPO_LOSS_WHERE, "torch.where on the sign of A, expm1 (not blind)"),
]

# Fairness defects found: none. Probed without loss: rng.choice bootstrap (another RNG stream than
# rng.integers), McNemar in exact integer arithmetic, Bradley-Terry via logaddexp / DPO via softplus
# (no F.logsigmoid call), TRL's log-ratio order, a per-row forward-free loss over one batch.
DEFECTS: list = []


# Blind alternatives of this round's new exercises: written from the released notebook only
# by a helper who never read the tests, each graded full marks before it was added here.
EM_REGEX = '''import re


def normalize_answer(text):
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\\b(a|an|the)\\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction, reference):
    return float(normalize_answer(prediction) == normalize_answer(reference))
'''

EM_WORDS = '''def normalize_answer(text):
    table = str.maketrans("", "", string.punctuation)
    words = text.lower().translate(table).split()
    kept = []
    for w in words:
        if w in ("a", "an", "the"):
            continue
        kept.append(w)
    return " ".join(kept)


def exact_match(prediction, reference):
    if normalize_answer(prediction) == normalize_answer(reference):
        return 1.0
    return 0.0
'''

PK_NUMPY = '''def pass_at_k(n, c, k):
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))
'''

PK_KFACTORS = '''def pass_at_k(n, c, k):
    """product over k factors (n-c-i)/(n-i), i = 0..k-1: the same ratio"""
    for name, v in (("n", n), ("c", c), ("k", k)):
        if not isinstance(v, int):
            raise ValueError(f"{name} must be an int")
    if c < 0 or c > n or k < 1 or k > n:
        raise ValueError("bad n, c, k")
    if n - c < k:
        return 1.0
    ratio = 1.0
    for i in range(k):
        ratio *= (n - c - i) / (n - i)
    return 1.0 - ratio
'''

PK_LOG = '''def pass_at_k(n, c, k):
    if c < 0 or c > n or k < 1 or k > n:
        raise ValueError("0 <= c <= n and 1 <= k <= n")
    if n - c < k:
        return 1.0
    log_ratio = math.fsum(math.log1p(-k / i) for i in range(n - c + 1, n + 1))
    return -math.expm1(log_ratio)
'''

PK_COMB = '''def pass_at_k(n, c, k):
    if c < 0 or c > n or k < 1 or k > n:
        raise ValueError("0 <= c <= n and 1 <= k <= n")
    # exact integers; Python's int / int rounds correctly, so nothing overflows
    return float(1 - math.comb(n - c, k) / math.comb(n, k))
'''

RM_ARGMAX = '''class RewardModel(torch.nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.score = torch.nn.Linear(backbone.config.hidden_size, 1, bias=False)

    def pooled(self, input_ids, attention_mask):
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        T = attention_mask.shape[1]
        pos = torch.arange(T, device=attention_mask.device).expand_as(attention_mask)
        last = torch.where(attention_mask.bool(), pos, torch.full_like(pos, -1)).max(dim=1).values
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]

    def forward(self, input_ids, attention_mask):
        return self.score(self.pooled(input_ids, attention_mask)).squeeze(-1).float()
'''

RM_FLIP = '''class RewardModel(torch.nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        hidden_size = backbone.embed_tokens.weight.shape[1]
        self.score = torch.nn.Linear(hidden_size, 1, bias=False)

    def pooled(self, input_ids, attention_mask):
        out = self.backbone(input_ids, attention_mask=attention_mask)
        hidden = out[0]
        T = attention_mask.shape[1]
        last = (T - 1) - attention_mask.flip(1).long().argmax(1)
        idx = last.view(-1, 1, 1).expand(-1, 1, hidden.shape[-1])
        return hidden.gather(1, idx).squeeze(1)

    def forward(self, input_ids, attention_mask):
        rewards = self.score(self.pooled(input_ids, attention_mask))
        return rewards[:, 0].to(torch.float32)
'''

# passes position_ids derived from the mask, as generate() does for left-padded rows
RM_POSIDS = '''class RewardModel(torch.nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.score = torch.nn.Linear(backbone.config.hidden_size, 1, bias=False)

    def pooled(self, input_ids, attention_mask):
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        rows = []
        for i in range(input_ids.shape[0]):
            nz = attention_mask[i].nonzero()
            rows.append(hidden[i, int(nz[-1])])
        return torch.stack(rows)

    def forward(self, input_ids, attention_mask):
        return self.score(self.pooled(input_ids, attention_mask)).view(-1).float()
'''

GA_LOOP = '''def grpo_advantages(rewards, group_size, scale=True):
    out = torch.empty_like(rewards)
    for start in range(0, rewards.shape[0], group_size):
        g = rewards[start : start + group_size]
        a = g - g.mean()
        if scale:
            a = a / (g.std() + 1e-4)
        out[start : start + group_size] = a
    return out
'''

GA_MANUAL = '''def grpo_advantages(rewards, group_size, scale=True):
    grouped = rewards.reshape(-1, group_size)
    mean = grouped.sum(dim=1, keepdim=True) / group_size
    centred = grouped - mean
    if scale:
        std = torch.sqrt((centred ** 2).sum(dim=1, keepdim=True) / (group_size - 1))
        centred = centred / (std + 1e-4)
    return centred.reshape(rewards.shape)
'''

GA_REPEAT = '''def grpo_advantages(rewards, group_size, scale=True):
    g = rewards.view(-1, group_size)
    mean = g.mean(dim=1).repeat_interleave(group_size)
    adv = rewards - mean
    if scale:
        adv = adv / (g.std(dim=1).repeat_interleave(group_size) + 1e-4)
    return adv
'''

GL_WHERE = '''def grpo_loss(logps, old_logps, ref_logps, advantages, mask, epsilon=0.2, beta=0.04):
    old = old_logps.detach()
    ref = ref_logps.detach()
    ratio = torch.exp(logps - old)
    A = advantages.detach().unsqueeze(1).to(logps.dtype)
    unclipped = ratio * A
    clipped = torch.clamp(ratio, 1 - epsilon, 1 + epsilon) * A
    surrogate = torch.where(unclipped < clipped, unclipped, clipped)
    d = ref - logps
    k3 = torch.expm1(d) - d
    per_token = -surrogate + beta * k3
    m = mask.to(logps.dtype)
    per_row = (per_token * m).sum(dim=1) / m.sum(dim=1).clamp(min=1)
    return per_row.mean()
'''

GL_LOOP = '''def grpo_loss(logps, old_logps, ref_logps, advantages, mask, epsilon=0.2, beta=0.04):
    rows = []
    for b in range(logps.shape[0]):
        keep = mask[b].bool()
        lp = logps[b][keep]
        ratio = (lp - old_logps[b][keep].detach()).exp()
        a = advantages[b].detach()
        surr = torch.minimum(ratio * a, ratio.clamp(1 - epsilon, 1 + epsilon) * a)
        d = ref_logps[b][keep].detach() - lp
        tok = -surr + beta * (d.exp() - d - 1)
        rows.append(tok.sum() / max(int(keep.sum()), 1))
    return torch.stack(rows).mean()
'''

ALTERNATIVES += [
    Alternative("blind_em_regex", "exact_match", EM_REGEX, "SQuAD's own regex \\b(a|an|the)\\b, char filter for punctuation"),
    Alternative("blind_pk_numpy", "pass_at_k", PK_NUMPY, "Codex paper's numpy one-liner, float() of np.float64"),
    Alternative("blind_rm_argmax", "reward_model", RM_ARGMAX, "max of masked positions, hidden_size from config"),
    Alternative("blind_ga_loop", "grpo_advantages", GA_LOOP, "loop over groups, empty_like"),
    Alternative("blind_gl_where", "grpo_loss", GL_WHERE, "torch.where for min, expm1 for k3, clamp(min=1) count"),
]
