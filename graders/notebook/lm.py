"""Language-model measurements shared by notebooks, tests and the dataset build scripts."""

from __future__ import annotations

import math
from typing import Any


def _windows(ids: Any, seq_len: int) -> list[Any]:
    """Non-overlapping windows of `seq_len` tokens; a shorter last window is kept if it has a target."""
    return [ids[i : i + seq_len] for i in range(0, len(ids), seq_len) if len(ids[i : i + seq_len]) >= 2]


def perplexity(model: Any, ids: Any, seq_len: int = 256, batch_size: int = 8) -> float:
    """exp(mean next-token negative log-likelihood) of a causal LM on a 1-D tensor of ids.

    The ids are cut into non-overlapping windows of `seq_len` tokens (no context carried
    across windows); inside each window every token after the first is predicted from the
    ones before it, and the mean is over all predicted tokens of all windows.
    """
    import torch
    import torch.nn.functional as F

    ids = torch.as_tensor(ids, dtype=torch.long).flatten()
    if ids.numel() < 2:
        raise ValueError(f"perplexity needs at least 2 token ids, got {ids.numel()}")
    device = next(model.parameters()).device
    windows = _windows(ids, seq_len)
    total_nll, total_tokens = 0.0, 0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(windows), batch_size):
            group = windows[start : start + batch_size]
            by_len: dict[int, list[Any]] = {}
            for w in group:  # the short last window goes in a batch of its own
                by_len.setdefault(len(w), []).append(w)
            for batch in by_len.values():
                x = torch.stack(batch).to(device)
                logits = model(input_ids=x).logits.float()
                nll = F.cross_entropy(
                    logits[:, :-1].reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1), reduction="sum"
                )
                total_nll += nll.item()
                total_tokens += x[:, 1:].numel()
    model.train(was_training)
    return math.exp(total_nll / total_tokens)


def unigram_perplexity(train_ids: Any, ids: Any, vocab_size: int, seq_len: int = 256) -> float:
    """Perplexity of an add-one-smoothed unigram model (counts of `train_ids`) on the same
    targets `perplexity` scores: every token of each window except its first."""
    import torch

    counts = torch.bincount(torch.as_tensor(train_ids, dtype=torch.long).flatten(), minlength=vocab_size)
    logp = torch.log((counts.double() + 1) / (counts.sum().double() + vocab_size))
    ids = torch.as_tensor(ids, dtype=torch.long).flatten()
    targets = torch.cat([w[1:] for w in _windows(ids, seq_len)])
    return math.exp(-logp[targets].mean().item())
