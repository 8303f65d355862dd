"""Wrong-but-plausible answers for the linear algebra unit; each must lose points.

Every mutant is the reference answer cell (read from `linear_algebra.py`, solution
markers removed) with one mistake edited in, so a mutant cannot drift from the reference:
if the reference text changes and an edit no longer applies, loading this file fails
loudly. The notebook runs in a few seconds, so mutants are graded as whole notebooks.
"""

from __future__ import annotations

from pathlib import Path

from graders.authoring.mutants import EditedMutants

_m = EditedMutants(Path(__file__).resolve().parent / "linear_algebra.py")


DISTS = ("test_dists_visible", "test_dists_hidden")
SOFTMAX = ("test_softmax_visible", "test_softmax_hidden")
LSE = ("test_logsumexp_visible", "test_logsumexp_hidden")
SVD = ("test_svd_visible", "test_svd_hidden", "test_svd_claim")
POWER = ("test_power_visible", "test_power_hidden")
GD = ("test_gd_visible", "test_gd_hidden")
PCA = ("test_pca_visible", "test_pca_hidden")
SCORES = ("test_scores_visible", "test_scores_hidden")

_DISTS_BODY = (
    '    sq_x = np.einsum("ij,ij->i", X, X)[:, None]  # (n, 1)\n'
    '    sq_y = np.einsum("ij,ij->i", Y, Y)[None, :]  # (1, m)\n'
    "    dists = sq_x - 2 * (X @ Y.T) + sq_y\n"
    "    return np.maximum(dists, 0)\n"
)

_SVD_RANK = "r = min(int(np.searchsorted(kept, energy)) + 1, len(s))"

MUTANTS = [
    # --- 1. pairwise distances ---------------------------------------------------------------
    _m("dists_no_clamp", "dists", [("    return np.maximum(dists, 0)\n", "    return dists\n")],
       ("test_dists_hidden",), "forgets to clamp: round-off gives small negative squared distances"),
    _m("dists_missing_factor_two", "dists", [("sq_x - 2 * (X @ Y.T) + sq_y", "sq_x - (X @ Y.T) + sq_y")],
       DISTS, "drops the factor 2 of the cross term"),
    _m("dists_pair_loop", "dists",
       [(_DISTS_BODY,
         "    out = np.empty((len(X), len(Y)), dtype=np.result_type(X, Y))\n"
         "    for i in range(len(X)):\n"
         "        for j in range(len(Y)):\n"
         "            out[i, j] = np.sum((X[i] - Y[j]) ** 2)\n"
         "    return out\n")],
       ("test_dists_speed",), "right answer from a Python loop over all pairs: no faster than the baseline"),
    _m("dists_difference_tensor", "dists",
       [(_DISTS_BODY, "    return ((X[:, None, :] - Y[None, :, :]) ** 2).sum(axis=-1)\n")],
       ("test_dists_memory",),
       "broadcasts an (n, m, d) difference tensor: right and loop-free, but d times the memory"),
    _m("dists_row_loop", "dists",
       [(_DISTS_BODY,
         "    out = np.empty((X.shape[0], Y.shape[0]), dtype=np.result_type(X, Y))\n"
         "    for i in range(X.shape[0]):\n"
         "        out[i] = np.sum((X[i] - Y) ** 2, axis=1)\n"
         "    return out\n")],
       ("test_dists_speed",),
       "loops over the rows of X with broadcasting inside: tens of times faster than the double loop, "
       "but still a Python loop"),
    _m("dists_feature_loop", "dists",
       [(_DISTS_BODY,
         "    out = np.zeros((X.shape[0], Y.shape[0]), dtype=np.result_type(X, Y))\n"
         "    for k in range(X.shape[1]):\n"
         "        out += (X[:, k, None] - Y[None, :, k]) ** 2\n"
         "    return out\n")],
       ("test_dists_speed",), "loops over the d features, each step vectorised over all pairs"),
    _m("dists_norms_comprehension", "dists",
       [('    sq_x = np.einsum("ij,ij->i", X, X)[:, None]  # (n, 1)\n'
         '    sq_y = np.einsum("ij,ij->i", Y, Y)[None, :]  # (1, m)\n',
         "    sq_x = np.array([x @ x for x in X])[:, None]\n"
         "    sq_y = np.array([y @ y for y in Y])[None, :]\n")],
       ("test_dists_speed",), "computes the squared norms in list comprehensions: a Python loop per row"),
    _m("dists_centres_in_place", "dists",
       [('    sq_x = np.einsum("ij,ij->i", X, X)[:, None]  # (n, 1)\n',
         "    centre = X.mean(axis=0)\n"
         "    X -= centre  # centring helps round-off, but in place it changes the caller's arrays\n"
         "    Y -= centre\n"
         '    sq_x = np.einsum("ij,ij->i", X, X)[:, None]  # (n, 1)\n')],
       ("test_dists_hidden",),
       "centres the points in place (X -= mean): right distances, but the caller's X and Y change"),
    _m("dists_float64_result", "dists",
       [("    dists = sq_x - 2 * (X @ Y.T) + sq_y\n",
         "    dists = np.zeros((X.shape[0], Y.shape[0]))\n"
         "    dists[:] = sq_x - 2 * (X @ Y.T) + sq_y\n")],
       ("test_dists_hidden",),
       "preallocates the result with np.zeros((n, m)), float64: float32 inputs give a float64 matrix"),
    # --- 2. softmax ----------------------------------------------------------------------------
    _m("softmax_no_max_shift", "softmax",
       [("    shift = np.max(x, axis=axis, keepdims=True)\n"
         "    shift = np.where(np.isfinite(shift), shift, 0.0)  # all -inf: shift by 0, exp gives 0\n"
         "    e = np.exp(x - shift)\n", "    e = np.exp(x)\n")],
       ("test_softmax_hidden",), "forgets to subtract the max: exp overflows for large logits"),
    _m("softmax_global_max", "softmax",
       [("shift = np.max(x, axis=axis, keepdims=True)", "shift = np.max(x)")], ("test_softmax_hidden",),
       "subtracts the maximum of the whole array: rows far below it underflow to 0/0"),
    _m("softmax_masked_row_nan", "softmax",
       [("    shift = np.where(np.isfinite(shift), shift, 0.0)  # all -inf: shift by 0, exp gives 0\n", ""),
        ("np.divide(e, total, out=np.zeros_like(e), where=total > 0)", "e / total")],
       ("test_softmax_hidden",),
       "the textbook stable softmax: a fully masked row gives NaN instead of zeros"),
    _m("softmax_ignores_axis", "softmax", [("axis=axis", "axis=-1")], SOFTMAX,
       "always normalises along the last axis"),
    _m("softmax_mean_shift", "softmax",
       [("shift = np.max(x, axis=axis, keepdims=True)", "shift = np.mean(x, axis=axis, keepdims=True)")],
       ("test_softmax_hidden",),
       "shifts by the mean (any constant works on paper): logits spread by hundreds still overflow"),
    _m("softmax_shift_at_least_zero", "softmax",
       [("shift = np.max(x, axis=axis, keepdims=True)",
         "shift = np.maximum(np.max(x, axis=axis, keepdims=True), 0)")],
       ("test_softmax_hidden",),
       "only shifts when the maximum is positive: a row of very negative logits underflows to 0/0"),
    _m("softmax_subtracts_in_place", "softmax",
       [("    e = np.exp(x - shift)\n", "    x -= shift\n    e = np.exp(x)\n")],
       ("test_softmax_hidden",), "subtracts the shift in place: the caller's logits change"),
    # --- 2. log-sum-exp ---------------------------------------------------------------------------
    _m("lse_no_shift", "logsumexp",
       [("np.log(np.sum(np.exp(x - shift), axis=axis, keepdims=True)) + shift",
         "np.log(np.sum(np.exp(x), axis=axis, keepdims=True))")],
       ("test_logsumexp_hidden",),
       "no max shift: overflows to inf for large logits, -inf for very negative ones"),
    _m("lse_forgets_to_add_shift", "logsumexp",
       [("np.log(np.sum(np.exp(x - shift), axis=axis, keepdims=True)) + shift",
         "np.log(np.sum(np.exp(x - shift), axis=axis, keepdims=True))")],
       LSE, "subtracts the max before exp but forgets to add it back"),
    _m("lse_masked_row_nan", "logsumexp",
       [("    shift = np.where(np.isfinite(shift), shift, 0.0)\n", "")], ("test_logsumexp_hidden",),
       "a fully masked row gives -inf - (-inf) = NaN instead of -inf"),
    _m("lse_keepdims_ignored", "logsumexp",
       [("return out if keepdims else np.squeeze(out, axis=axis)", "return np.squeeze(out, axis=axis)")], LSE,
       "ignores keepdims=True"),
    _m("lse_squeezes_every_axis", "logsumexp",
       [("np.squeeze(out, axis=axis)", "np.squeeze(out)")], ("test_logsumexp_hidden",),
       "np.squeeze without an axis: other axes of size 1 disappear too"),
    _m("lse_first_entry_shift", "logsumexp",
       [("shift = np.max(x, axis=axis, keepdims=True)", "shift = np.take(x, [0], axis=axis)")],
       ("test_logsumexp_hidden",),
       "shifts by the first logit of each row: fine until the others exceed it by hundreds"),
    _m("lse_shift_at_least_zero", "logsumexp",
       [("shift = np.max(x, axis=axis, keepdims=True)",
         "shift = np.maximum(np.max(x, axis=axis, keepdims=True), 0)")],
       ("test_logsumexp_hidden",), "only shifts positive maxima: very negative rows underflow to log(0)"),
    # --- 3. SVD compression ------------------------------------------------------------------------
    _m("svd_energy_from_sigma", "svd", [("energies = s**2", "energies = s")], SVD,
       "measures energy with the singular values instead of their squares"),
    _m("svd_rank_off_by_one", "svd",
       [("int(np.searchsorted(kept, energy)) + 1, len(s))", "int(np.searchsorted(kept, energy)), len(s))")],
       SVD, "uses the index where the energy is reached as the rank: one singular value short"),
    _m("svd_rank_strict", "svd",
       [("np.searchsorted(kept, energy)", 'np.searchsorted(kept, energy, side="right")')],
       ("test_svd_hidden",),
       "requires strictly more than the energy fraction, so an exact tie takes one rank too many"),
    _m("svd_ratio_inverted", "svd", [("ratio = m * n / (r * (m + n))", "ratio = r * (m + n) / (m * n)")], SVD,
       "compression ratio upside down (factor parameters over W's)"),
    _m("svd_error_not_sqrt", "svd",
       [("rel_error = math.sqrt(energies[r:].sum() / energies.sum())",
         "rel_error = energies[r:].sum() / energies.sum()")],
       SVD, "reports the dropped energy fraction as the relative error (forgets the square root)"),
    _m("svd_columns_of_vt", "svd", [("B = Vt[:r]", "B = Vt[:, :r].T")],
       ("test_svd_visible", "test_svd_hidden"), "takes columns of Vt, as if svd returned V instead of V^T"),
    _m("svd_full_matrices", "svd",
       [("np.linalg.svd(W, full_matrices=False)", "np.linalg.svd(W)")], ("test_svd_hidden",),
       "the default full SVD: a tall W gets an m x m U, many times its own size"),
    _m("svd_energy_one_keeps_all", "svd",
       [("    A = U[:, :r] * s[:r]\n",
         "    if energy >= 1:\n        r = len(s)\n    A = U[:, :r] * s[:r]\n")],
       ("test_svd_hidden",),
       "energy = 1 keeps every singular value, even exact zeros that add no energy"),
    _m("svd_argmax_rank", "svd",
       [(_SVD_RANK, "r = int(np.argmax(kept >= energy)) + 1")],
       ("test_svd_hidden",),
       "finds the rank with argmax: when round-off never reaches the energy, argmax of all-False is 0"),
    _m("svd_rank_past_the_end", "svd",
       [(_SVD_RANK, "r = int(np.searchsorted(kept, energy)) + 1")],
       ("test_svd_hidden",),
       "forgets that the energy may never be reached: rank min(m, n) + 1, a wrong ratio"),
    # --- 4. power iteration ----------------------------------------------------------------------------
    _m("power_no_normalisation", "power", [("v = hv / norm", "v = hv")], POWER,
       "never normalises v: it overflows (or vanishes) and the Rayleigh quotient is off"),
    _m("power_fixed_start", "power",
       [("v = np.random.default_rng(seed).standard_normal(H.shape[0])", "v = np.eye(H.shape[0])[0]")], POWER,
       "starts from e_1, which can be orthogonal to the top eigenvector"),
    _m("power_twenty_iterations", "power", [("for _ in range(num_iters):", "for _ in range(20):")],
       ("test_power_hidden",), "a fixed 20 iterations: not converged when the top two eigenvalues are close"),
    _m("power_absolute_tolerance", "power",
       [("abs(new_lam - lam) <= tol * abs(new_lam)", "abs(new_lam - lam) <= tol")], ("test_power_hidden",),
       "absolute stopping tolerance: stops far too early when the eigenvalues are tiny"),
    _m("power_unseeded_start", "power",
       [("np.random.default_rng(seed).standard_normal(", "np.random.standard_normal(")],
       ("test_power_hidden",),
       "draws the start from NumPy's global generator: the seed is ignored, results vary"),
    _m("power_ones_start", "power",
       [("v = np.random.default_rng(seed).standard_normal(H.shape[0])", "v = np.ones(H.shape[0])")],
       ("test_power_hidden",),
       "starts from the all-ones vector: the seed does nothing, and a top eigenvector orthogonal "
       "to it is never found"),
    _m("power_ignores_num_iters", "power", [("for _ in range(num_iters):", "while True:")],
       ("test_power_hidden",), "loops until converged, ignoring num_iters"),
    _m("power_zero_matrix_nan", "power",
       [("        if norm == 0.0:  # H v = 0: v is in the null space and lambda_max may be 0\n"
         "            return 0.0, v\n", "")],
       ("test_power_hidden",), "divides by ||H v|| without a check: the zero matrix gives 0/0 = NaN"),
    _m("power_stops_on_residual", "power",
       [("converged = abs(new_lam - lam) <= tol * abs(new_lam)",
         "converged = np.linalg.norm(hv - new_lam * v) <= tol * abs(new_lam)")],
       ("test_power_hidden",),
       "stops on the residual ||H v - lambda v|| instead of the change of the estimate: far more iterations"),
    _m("power_never_stops_early", "power", [("        if converged:\n            break\n", "")],
       ("test_power_hidden",), "computes the convergence test but never breaks: always num_iters iterations"),
    # --- 4. gradient descent ----------------------------------------------------------------------------
    _m("gd_bound_one_over_lambda", "gd", [("return 2.0 / lam", "return 1.0 / lam")], GD,
       "learning-rate bound 1/lambda_max instead of 2/lambda_max"),
    _m("gd_bound_from_diagonal", "gd", [("lam, _ = power_iteration(H)", "lam = float(np.max(np.diag(H)))")],
       ("test_gd_hidden",),
       "takes the largest diagonal entry of H for lambda_max (true only for diagonal H)"),
    _m("gd_gradient_ascent", "gd", [("w = w - lr * (H @ w - b)", "w = w + lr * (H @ w - b)")], GD,
       "steps along the gradient instead of against it"),
    _m("gd_gradient_without_b", "gd", [("w = w - lr * (H @ w - b)", "w = w - lr * (H @ w)")], GD,
       "gradient H w instead of H w - b: converges to 0, not to the minimum"),
    _m("gd_loss_without_half", "gd", [("0.5 * w @ H @ w - b @ w", "w @ H @ w - b @ w")], GD,
       "loss w^T H w - b^T w, without the 1/2 that makes H w - b its gradient"),
    _m("gd_updates_w0_in_place", "gd",
       [("np.array(w0, dtype=np.float64)", "np.asarray(w0, dtype=np.float64)"),
        ("        w = w - lr * (H @ w - b)\n", "        w -= lr * (H @ w - b)\n")],
       ("test_gd_hidden",), "updates w in place, and w is the caller's w0: the start they passed changes"),
    _m("gd_bound_divides_by_zero", "gd", [("return 2.0 / lam if lam > 0 else math.inf", "return 2.0 / lam")],
       ("test_gd_hidden",), "2 / lambda_max with lambda_max = 0: ZeroDivisionError instead of inf"),
    # --- 5. PCA ---------------------------------------------------------------------------------------
    _m("pca_not_centred", "pca", [("centred = X - X.mean(axis=0)", "centred = X")], PCA,
       "forgets to centre: the first component points at the mean"),
    _m("pca_variance_from_sigma", "pca", [("ratio = s[:k] ** 2 / np.sum(s**2)", "ratio = s[:k] / np.sum(s)")],
       PCA, "explained variance from singular values instead of their squares"),
    _m("pca_ratio_of_kept", "pca",
       [("ratio = s[:k] ** 2 / np.sum(s**2)", "ratio = s[:k] ** 2 / np.sum(s[:k] ** 2)")],
       ("test_pca_hidden",), "divides by the variance of the k kept components instead of the total"),
    _m("pca_columns_of_vt", "pca", [("components = Vt[:k]", "components = Vt[:, :k].T")],
       ("test_pca_hidden",), "takes columns of Vt as the principal directions"),
    _m("pca_centres_in_place", "pca",
       [("    centred = X - X.mean(axis=0)\n", "    X -= X.mean(axis=0)\n    centred = X\n")],
       ("test_pca_hidden",), "centres X in place: right answer, but the caller's data lose their mean"),
    _m("pca_full_matrices", "pca",
       [("np.linalg.svd(centred, full_matrices=False)", "np.linalg.svd(centred)")], ("test_pca_hidden",),
       "the default full SVD: with many samples the unused n x n U dwarfs the data"),
    # --- 5. einsum attention scores ---------------------------------------------------------------------
    _m("scores_no_scale", "scores", [(" / math.sqrt(Q.shape[-1])", "")], SCORES,
       "forgets the 1/sqrt(d) scale"),
    _m("scores_divide_by_d", "scores", [("math.sqrt(Q.shape[-1])", "Q.shape[-1]")], SCORES,
       "divides by d instead of sqrt(d)"),
    _m("scores_transposed", "scores", [('"bhqd,bhkd->bhqk"', '"bhqd,bhkd->bhkq"')], SCORES,
       "output indices swapped: (B, H, T_k, T_q) instead of (B, H, T_q, T_k)"),
    _m("scores_numpy_sqrt", "scores", [("math.sqrt(", "np.sqrt(")], ("test_scores_hidden",),
       "divides by np.sqrt(d), a float64 scalar: float32 scores come back as float64"),
]
