"""Alternative correct answers for linear_algebra, written blind (from the released
notebook only), in styles unlike a typical reference. Graded by
`python -m graders.authoring.alternatives linear_algebra`."""

from graders.authoring.alternatives import Alternative

ALTERNATIVES = [
    Alternative(
        "dists_einsum_inplace",
        "dists",
        """def pairwise_sq_dists(X, Y):
    xx = np.einsum("ij,ij->i", X, X)
    yy = np.einsum("ij,ij->i", Y, Y)
    D = np.dot(X, Y.T)
    D *= -2
    D += xx[:, np.newaxis]
    D += yy[np.newaxis, :]
    np.clip(D, 0, None, out=D)
    return D
""",
        "norms by einsum, the product by np.dot, then in-place updates and np.clip(out=)",
    ),
    Alternative(
        "dists_add_outer",
        "dists",
        """def pairwise_sq_dists(X, Y):
    sq_x = (X * X).sum(axis=1)
    sq_y = (Y * Y).sum(axis=1)
    return np.maximum(np.add.outer(sq_x, sq_y) - 2 * np.matmul(X, Y.T), 0)
""",
        "np.add.outer for the norms, np.maximum for the clamp",
    ),
    Alternative(
        "softmax_moveaxis_where",
        "softmax",
        """def softmax(x, axis=-1):
    z = np.moveaxis(np.asarray(x), axis, -1)
    top = z.max(axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, np.zeros_like(top))
    e = np.exp(z - top)
    total = e.sum(axis=-1, keepdims=True)
    out = np.divide(e, total, out=np.zeros_like(e), where=total > 0)
    return np.moveaxis(out, -1, axis)
""",
        "works on the last axis after np.moveaxis; masked rows by np.divide(where=)",
    ),
    Alternative(
        "softmax_shift_by_own_lse",
        "softmax",
        """def softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    m[~np.isfinite(m)] = 0
    shifted = x - m
    with np.errstate(divide="ignore"):
        lse = np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    log_p = shifted - lse
    log_p[np.isnan(log_p)] = -np.inf
    return np.exp(log_p)
""",
        "through log-probabilities: exp(x - max - log(sum)), NaN of a masked row set to -inf",
    ),
    Alternative(
        "lse_logaddexp_reduce",
        "logsumexp",
        """def logsumexp(x, axis=-1, keepdims=False):
    return np.logaddexp.reduce(x, axis=axis, keepdims=keepdims)
""",
        "the ufunc reduction np.logaddexp.reduce instead of a max shift",
    ),
    Alternative(
        "lse_moveaxis",
        "logsumexp",
        """def logsumexp(x, axis=-1, keepdims=False):
    z = np.moveaxis(x, axis, -1)
    c = z.max(axis=-1)
    c = np.where(np.isfinite(c), c, np.zeros_like(c))
    with np.errstate(divide="ignore"):
        out = c + np.log(np.exp(z - c[..., None]).sum(axis=-1))
    if keepdims:
        out = np.expand_dims(out, axis)
    return out
""",
        "last axis after np.moveaxis, keepdims by np.expand_dims afterwards",
    ),
    Alternative(
        "svd_python_loop_rank",
        "svd",
        """def low_rank_compress(W, energy=0.95):
    U, s, Vt = np.linalg.svd(W, full_matrices=False)
    sq = [float(v) ** 2 for v in s]
    total = 0.0
    for v in sq:
        total += v
    r = len(sq)
    running = 0.0
    for i, v in enumerate(sq):
        running += v
        if running >= energy * total:
            r = i + 1
            break
    A = U[:, :r] * s[:r]
    B = Vt[:r]
    m, n = W.shape
    ratio = (m * n) / (r * (m + n))
    dropped = sum(sq[r:])
    rel_error = math.sqrt(dropped / total) if total > 0 else 0.0
    return A, B, ratio, rel_error
""",
        "rank by a Python loop over the energies; the error from the dropped singular values (Eckart-Young)",
    ),
    Alternative(
        "svd_searchsorted",
        "svd",
        """def low_rank_compress(W, energy=0.95):
    U, s, Vt = np.linalg.svd(W, full_matrices=False)
    cum = np.cumsum(s**2)
    r = int(np.searchsorted(cum, energy * cum[-1], side="left")) + 1
    r = min(r, s.size)
    A = U[:, :r] @ np.diag(s[:r])
    B = Vt[:r, :].copy()
    ratio = float(W.size) / (r * sum(W.shape))
    rel_error = float(np.linalg.norm(W - A @ B, "fro") / np.linalg.norm(W, "fro"))
    return A, B, ratio, rel_error
""",
        "np.searchsorted on the cumulative energy, U Sigma by np.diag, error measured directly",
    ),
    Alternative(
        "power_one_matvec",
        "power",
        """def power_iteration(H, num_iters=1000, tol=1e-10, seed=0):
    n = H.shape[0]
    v = np.random.default_rng(seed).standard_normal(n)
    v /= np.linalg.norm(v)
    lam_prev = None
    lam = 0.0
    it = 0
    while it < num_iters:
        w = H.dot(v)
        lam = float(np.dot(v, w))
        norm = np.linalg.norm(w)
        if norm == 0:
            return 0.0, v
        v = w / norm
        it += 1
        if lam_prev is not None and abs(lam - lam_prev) <= tol * abs(lam):
            break
        lam_prev = lam
    return lam, v
""",
        "one mat-vec per iteration: the Rayleigh quotient of v reuses H v before normalising",
    ),
    Alternative(
        "power_uniform_start",
        "power",
        """def power_iteration(H, num_iters=1000, tol=1e-10, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.uniform(-1.0, 1.0, size=H.shape[0])
    v = v / math.sqrt(v @ v)
    lam = float(v @ H @ v)
    for _ in range(num_iters):
        hv = H @ v
        size = math.sqrt(hv @ hv)
        if size == 0.0:
            return 0.0, v
        v = hv / size
        new = float(v @ (H @ v))
        done = abs(new - lam) <= tol * abs(new)
        lam = new
        if done:
            break
    return lam, v
""",
        "uniform random start, the Rayleigh quotient before the loop and after each step",
    ),
    Alternative(
        "gd_list_of_losses",
        "gd",
        """def gd_quadratic(H, b, lr, steps, w0=None):
    w = np.zeros_like(b, dtype=np.float64) if w0 is None else np.array(w0, dtype=np.float64)
    losses = []
    for k in range(steps + 1):
        g = H @ w - b
        losses.append(0.5 * float(w @ (g - b)))
        if k < steps:
            w = w - lr * g
    return w, np.asarray(losses, dtype=np.float64)


def max_stable_lr(H):
    lam = power_iteration(H)[0]
    return math.inf if not lam > 0 else 2.0 / lam
""",
        "one mat-vec per step: the loss 0.5 w.(Hw - 2b) reuses the gradient; losses in a list",
    ),
    Alternative(
        "gd_preallocated",
        "gd",
        """def gd_quadratic(H, b, lr, steps, w0=None):
    d = b.shape[0]
    w = np.empty(d)
    w[:] = 0.0 if w0 is None else w0
    losses = np.empty(steps + 1, dtype=np.float64)
    step = 0
    while True:
        losses[step] = 0.5 * np.dot(w, np.dot(H, w)) - np.dot(b, w)
        if step == steps:
            break
        np.subtract(w, lr * (np.dot(H, w) - b), out=w)
        step += 1
    return w, losses


def max_stable_lr(H):
    lam, _ = power_iteration(H)
    if lam == 0:
        return math.inf
    return 2 / lam
""",
        "a preallocated loss array filled in a while loop, in-place updates on a fresh w",
    ),
    Alternative(
        "pca_u_times_s",
        "pca",
        """def pca(X, k):
    centred = X - X.mean(axis=0, keepdims=True)
    U, s, Vt = np.linalg.svd(centred, full_matrices=False)
    energy = s**2
    return Vt[:k].copy(), energy[:k] / energy.sum(), U[:, :k] * s[:k]
""",
        "the projection as U_k Sigma_k instead of X_c V_k",
    ),
    Alternative(
        "pca_variance_ratio",
        "pca",
        """def pca(X, k):
    n = X.shape[0]
    Xc = X.copy()
    Xc -= np.mean(Xc, axis=0)
    _, sing, Vt = np.linalg.svd(Xc, full_matrices=False)
    components = Vt[:k, :]
    variances = sing[:k] ** 2 / (n - 1)
    ratio = variances / np.var(X, axis=0, ddof=1).sum()
    Z = np.dot(Xc, components.T)
    return components, ratio, Z
""",
        "the ratio as variance over np.var's total variance; centres a copy in place",
    ),
    Alternative(
        "scores_matmul",
        "scores",
        """def attention_scores(Q, K):
    return np.matmul(Q, np.swapaxes(K, -1, -2)) / math.sqrt(Q.shape[-1])
""",
        "batched np.matmul instead of einsum",
    ),
    Alternative(
        "scores_broadcast_sum",
        "scores",
        """def attention_scores(Q, K):
    scale = 1.0 / math.sqrt(K.shape[3])
    return (Q[:, :, :, None, :] * K[:, :, None, :, :]).sum(axis=4) * scale
""",
        "broadcast product and a sum over the feature axis, multiplied by 1/sqrt(d)",
    ),
]

DEFECTS: list = []
