"""Independent answers to linear_algebra's short exercises, written from the released
notebook's stubs and docstrings only, without reading the reference answers: the
"honest student" side of the copy-detection calibration (scripts in
`tests/data/similarity/calibrate.py`). Not graded here; only their text matters.

One caveat, stated in the README: the author had glimpsed the first lines of the
reference `dists` body in the unit's mutants before writing `dists` below.
"""

ANSWERS: dict[str, list[str]] = {
    "dists": [
        '''def pairwise_sq_dists(X, Y):
    """All squared Euclidean distances between the rows of X and the rows of Y."""
    xx = (X * X).sum(axis=1, keepdims=True)
    yy = (Y * Y).sum(axis=1)
    out = xx + yy - 2.0 * np.dot(X, Y.T)
    out[out < 0] = 0
    return out.astype(X.dtype, copy=False)
''',
    ],
    "softmax": [
        '''def softmax(x, axis=-1):
    """Softmax of x along `axis`, stable for any finite logits."""
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0)
    e = np.exp(x - top)
    total = e.sum(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(total > 0, e / total, 0)
    return p.astype(x.dtype)
''',
    ],
    "logsumexp": [
        '''def logsumexp(x, axis=-1, keepdims=False):
    """log(sum(exp(x))) along `axis`, stable for any finite logits."""
    peak = x.max(axis=axis, keepdims=True)
    shift = np.where(np.isneginf(peak), 0.0, peak).astype(x.dtype)
    with np.errstate(divide="ignore"):
        res = np.log(np.exp(x - shift).sum(axis=axis, keepdims=True)) + shift
    if not keepdims:
        res = np.squeeze(res, axis=axis)
    return res.astype(x.dtype)
''',
    ],
    "svd": [
        '''def low_rank_compress(W, energy=0.95):
    """Compress W (m, n) into factors A (m, r) and B (r, n) with the thin SVD."""
    m, n = W.shape
    U, s, Vt = np.linalg.svd(W, full_matrices=False)
    e = s ** 2
    cum = np.cumsum(e)
    r = len(s)
    for i in range(len(s)):
        if cum[i] >= energy * cum[-1]:
            r = i + 1
            break
    A = U[:, :r] * s[:r]
    B = Vt[:r].copy()
    ratio = float(m * n / (r * (m + n)))
    err = float(np.linalg.norm(W - A @ B) / np.linalg.norm(W))
    return A, B, ratio, err
''',
    ],
    "power": [
        '''def power_iteration(H, num_iters=1000, tol=1e-10, seed=0):
    """Largest eigenvalue and a unit eigenvector of a symmetric PSD H."""
    gen = np.random.default_rng(seed)
    vec = gen.standard_normal(H.shape[0])
    vec /= np.linalg.norm(vec)
    lam_old = None
    lam = 0.0
    for _ in range(num_iters):
        w = H.dot(vec)
        size = np.linalg.norm(w)
        if size == 0:
            return 0.0, vec
        vec = w / size
        lam = float(vec.dot(H.dot(vec)))
        if lam_old is not None and abs(lam - lam_old) <= tol * abs(lam):
            break
        lam_old = lam
    return lam, vec
''',
    ],
    "gd": [
        '''def gd_quadratic(H, b, lr, steps, w0=None):
    """Gradient descent on L(w) = 0.5 * w^T H w - b^T w."""
    w = np.zeros_like(b) if w0 is None else np.array(w0, dtype=float)

    def loss(u):
        return 0.5 * u @ H @ u - b @ u

    hist = [loss(w)]
    for _ in range(steps):
        g = H @ w - b
        w = w - lr * g
        hist.append(loss(w))
    return w, np.asarray(hist, dtype=np.float64)


def max_stable_lr(H):
    """The edge of stability of gradient descent: 2 / lambda_max."""
    top, _ = power_iteration(H)
    if top == 0:
        return math.inf
    return 2.0 / top
''',
    ],
    "pca": [
        '''def pca(X, k):
    """Principal component analysis of X (n, d) via the SVD."""
    centred = X - X.mean(axis=0)
    _, sing, rows = np.linalg.svd(centred, full_matrices=False)
    comps = rows[:k]
    var = sing ** 2
    frac = var[:k] / var.sum()
    proj = centred @ comps.T
    return comps, frac, proj
''',
    ],
    "scores": [
        '''def attention_scores(Q, K):
    """Scaled dot-product scores of every query with every key, per batch and head."""
    d = Q.shape[-1]
    S = np.matmul(Q, np.swapaxes(K, -1, -2))
    return (S / np.sqrt(d)).astype(Q.dtype)
''',
        """def attention_scores(Q, K):
    scale = 1.0 / math.sqrt(Q.shape[-1])
    return np.einsum("bhqe,bhke->bhqk", Q, K) * Q.dtype.type(scale)
""",
    ],
}
