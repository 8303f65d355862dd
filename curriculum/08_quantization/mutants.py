"""Wrong-but-plausible answers for the quantization unit; each must lose points.

Every mutant is the reference answer cell (read from `quantization.py`, solution markers
removed) with one mistake edited in, so a mutant cannot drift from the reference: if the
reference text changes and an edit no longer applies, loading this file fails loudly.
"""

from __future__ import annotations

from pathlib import Path

from graders.authoring.mutants import EditedMutants, Mutant

_m = EditedMutants(Path(__file__).resolve().parent / "quantization.py")


QUANTIZE = ("test_quantize_visible", "test_quantize_hidden")
QPARAMS = ("test_qparams_visible", "test_qparams_hidden")
METRICS = ("test_metrics_visible", "test_metrics_hidden")
BLOCKS = ("test_blocks_visible", "test_blocks_hidden")
PACKING = ("test_packing_visible", "test_packing_hidden")
INT8MM = ("test_int8_matmul_visible", "test_int8_matmul_hidden")
LLMINT8 = ("test_llm_int8_visible", "test_llm_int8_hidden")
QLINEAR = ("test_quant_linear_visible", "test_quant_linear_hidden")
QMODEL = ("test_quantize_model_visible", "test_quantize_model_hidden")
BENCH = ("test_benchmark_visible", "test_benchmark_hidden")
GEN = ("test_generate_visible", "test_generate_hidden")
ROOF = ("test_roofline_visible", "test_roofline_hidden")

_LLM_INT8_BY_ROWS = '''def llm_int8_matmul(x, w, threshold=6.0):
    """LLM.int8() with outlier *tokens* (rows) in float32 instead of outlier feature columns."""
    outlier = (x.abs() > threshold).any(dim=1)  # tokens that hold a large value
    y = int8_matmul(x, w)
    if bool(outlier.any()):
        y[outlier] = x[outlier] @ w.T
    return y
'''

MUTANTS = [
    # --- 1. quantize / dequantize ----------------------------------------------------------
    _m("quantize_truncates", "quantize",
       [("torch.round(x.to(torch.float32) / scale)", "torch.trunc(x.to(torch.float32) / scale)")], QUANTIZE,
       "truncates towards zero (what a cast does) instead of rounding"),
    _m("quantize_no_clamp", "quantize", [("return q.clamp(qmin, qmax).to(dtype)", "return q.to(dtype)")],
       QUANTIZE, "casts without clamping: out-of-range values wrap around instead of saturating"),
    _m("quantize_round_half_up", "quantize",
       [("torch.round(x.to(torch.float32) / scale)", "torch.floor(x.to(torch.float32) / scale + 0.5)")],
       QUANTIZE, "rounds halves up instead of to even, unlike torch's quantizers"),
    _m("dequantize_ignores_zero_point", "quantize",
       [("return (q.to(torch.float32) - zero_point) * scale", "return q.to(torch.float32) * scale")],
       ("test_quantize_visible",), "forgets to subtract the zero point when dequantizing"),
    # --- 1b. choosing scales -----------------------------------------------------------------
    _m("absmax_per_channel_wrong_axis", "qparams",
       [("amax = x.abs().amax(dim=-1, keepdim=True)", "amax = x.abs().amax(dim=0, keepdim=True)")], QPARAMS,
       "per-channel scales along the input columns instead of one per output row"),
    _m("absmax_scale_from_mean", "qparams",
       [("        amax = x.abs().amax(dim=-1, keepdim=True)\n",
         "        amax = x.abs().mean(dim=-1, keepdim=True)\n"),
        ("        amax = x.abs().amax()\n", "        amax = x.abs().mean()\n")], QPARAMS,
       "scale from the mean magnitude instead of the maximum: large values saturate"),
    _m("absmax_divides_by_128", "qparams", [("amax / 127", "amax / 128")], QPARAMS,
       "scale = max/128: the largest value no longer maps to 127"),
    _m("absmax_zero_scale", "qparams",
       [("scale = torch.where(amax > 0, amax / 127, torch.ones_like(amax))", "scale = amax / 127")],
       ("test_qparams_hidden",), "no guard for all-zero rows: 0/0 gives NaN"),
    _m("zeropoint_range_without_zero", "qparams",
       [("lo, hi = lo.to(torch.float32).clamp(max=0), hi.to(torch.float32).clamp(min=0)",
         "lo, hi = lo.to(torch.float32), hi.to(torch.float32)")],
       ("test_qparams_hidden",), "does not widen [min, max] to include 0: constant rows break"),
    _m("zeropoint_not_rounded", "qparams",
       [("zero_point = torch.round(-lo / scale).clamp(0, 255).to(torch.int64)",
         "zero_point = (-lo / scale).clamp(0, 255)")],
       ("test_qparams_hidden",), "a fractional zero point: codes are no longer integers before the cast"),
    # --- 1c. error metrics ---------------------------------------------------------------------
    _m("sqnr_20_log10", "metrics", [("10 * math.log10(signal / noise)", "20 * math.log10(signal / noise)")],
       METRICS, "20 log10 of a power ratio (20 log10 is for amplitude ratios)"),
    _m("max_error_signed", "metrics", [("float(e.abs().max())", "float(e.max())")], ("test_metrics_hidden",),
       "largest signed error instead of largest absolute error"),
    _m("rel_error_elementwise_mean", "metrics",
       [('"rel_l2": math.sqrt(noise / signal)', '"rel_l2": float((e.abs() / x64.abs()).mean())')], METRICS,
       "mean of elementwise relative errors instead of the ratio of norms"),
    _m("rel_error_without_sqrt", "metrics",
       [('"rel_l2": math.sqrt(noise / signal)', '"rel_l2": noise / signal')],
       METRICS, "ratio of squared norms (a power ratio) instead of norms"),
    # --- 2. blocks ------------------------------------------------------------------------------
    _m("blocks_strided", "blocks",
       [("blocks = w.reshape(*w.shape[:-1], w.shape[-1] // block, block).to(torch.float32)",
         "blocks = w.reshape(*w.shape[:-1], block, w.shape[-1] // block)"
         ".transpose(-1, -2).to(torch.float32)")],
       BLOCKS, "blocks of every (K/32)-th weight instead of 32 consecutive weights"),
    _m("blocks_scale_from_mean", "blocks",
       [("blocks.abs().amax(dim=-1, keepdim=True) / qmax", "blocks.abs().mean(dim=-1, keepdim=True) / qmax")],
       BLOCKS, "block scale from the mean magnitude: the largest weights saturate"),
    _m("blocks_unsigned_range", "blocks", [("qmax = 2 ** (bits - 1) - 1", "qmax = 2 ** bits - 1")], BLOCKS,
       "uses 15 (the unsigned range) as the largest signed 4-bit code"),
    _m("blocks_unrounded_scale", "blocks",
       [("    scale = scale16.to(torch.float32)\n",
         "    scale = blocks.abs().amax(dim=-1, keepdim=True) / qmax\n")],
       ("test_blocks_hidden",), "quantizes with the float32 scale but stores the float16 one"),
    _m("bits_per_weight_no_scale", "blocks", [("return bits + scale_bits / block", "return bits")],
       ("test_bits_per_weight",),
       "forgets the cost of the shared scales"),
    # --- 2b. packing ----------------------------------------------------------------------------
    _m("packing_swapped_nibbles", "packing",
       [("u[..., 0::2] | (u[..., 1::2] << 4)", "u[..., 1::2] | (u[..., 0::2] << 4)"),
        ("torch.stack([low, high], dim=-1)", "torch.stack([high, low], dim=-1)")], PACKING,
       "even elements in the high nibble: round trip exact, but not the documented layout"),
    _m("packing_halves_layout", "packing",
       [("return u[..., 0::2] | (u[..., 1::2] << 4)",
         "h = u.shape[-1] // 2\n    return u[..., :h] | (u[..., h:] << 4)"),
        ("return torch.stack([low, high], dim=-1).reshape(*packed.shape[:-1], packed.shape[-1] * 2)",
         "return torch.cat([low, high], dim=-1)")], PACKING,
       "pairs element i with i + K/2 (a Q4_0-like layout) instead of 2j with 2j+1"),
    _m("unpack_no_offset", "packing",
       [("low = (packed & 15).to(torch.int8) - 8", "low = (packed & 15).to(torch.int8)"),
        ("high = (packed >> 4).to(torch.int8) - 8", "high = (packed >> 4).to(torch.int8)")], PACKING,
       "returns the unsigned nibbles 0..15 instead of the codes -8..7"),
    _m("pack_twos_complement", "packing",
       [("u = (q.to(torch.int16) + 8).to(torch.uint8)", "u = (q.to(torch.int16) & 15).to(torch.uint8)")],
       PACKING, "packs two's-complement nibbles while unpacking subtracts the offset 8"),
    # --- 3. int8 matmul and LLM.int8() ---------------------------------------------------------
    _m("int8_matmul_x_per_tensor", "int8_matmul",
       [("qx, sx = quantize_absmax(x, per_channel=True)", "qx, sx = quantize_absmax(x)")],
       ("test_int8_matmul_hidden",), "one scale for all activations instead of one per token"),
    _m("int8_matmul_w_per_tensor", "int8_matmul",
       [("qw, sw = quantize_absmax(w, per_channel=True)", "qw, sw = quantize_absmax(w)")],
       ("test_int8_matmul_hidden",), "one scale for the whole weight instead of one per output channel"),
    _m("int8_matmul_scales_transposed", "int8_matmul",
       [("acc.to(torch.float32) * sx * sw.t()", "acc.to(torch.float32) * sx.t() * sw")], INT8MM,
       "multiplies by the row and column scales along the wrong axes"),
    _m("int8_matmul_forgets_weight_scale", "int8_matmul",
       [("acc.to(torch.float32) * sx * sw.t()", "acc.to(torch.float32) * sx")], INT8MM,
       "rescales by the activation scale only"),
    Mutant(name="llm_int8_outlier_rows", cell="llm_int8", source=_LLM_INT8_BY_ROWS,
           must_fail=("test_llm_int8_hidden",),
           why="treats outlier tokens (rows) in float instead of outlier feature columns"),
    _m("llm_int8_drops_outliers", "llm_int8",
       [("        y = y + x[:, outlier] @ w[:, outlier].T\n", "        pass\n")], LLMINT8,
       "removes the outlier columns from the int8 product but never adds their float product"),
    _m("llm_int8_double_counts", "llm_int8",
       [("int8_matmul(x[:, regular], w[:, regular])", "int8_matmul(x, w)")], LLMINT8,
       "runs every column through int8 and adds the outlier columns again in float"),
    _m("llm_int8_threshold_on_mean", "llm_int8",
       [("outlier = (x.abs() > threshold).any(dim=0)", "outlier = x.abs().mean(dim=0) > threshold")],
       ("test_llm_int8_hidden",),
       "calls a column an outlier only if its mean magnitude exceeds the threshold"),
    # --- 4. the quantized model -----------------------------------------------------------------
    _m("quant_linear_int8_per_tensor", "quant_linear",
       [("q, s = quantize_absmax(w, per_channel=True)", "q, s = quantize_absmax(w)"),
        ('self.register_buffer("scale", s[:, 0].contiguous())',
         'self.register_buffer("scale", s.expand(w.shape[0]).contiguous())')],
       ("test_quant_linear_hidden",), "one int8 scale for the whole weight instead of one per output row"),
    _m("quant_linear_int4_unpacked", "quant_linear",
       [('self.register_buffer("qweight", pack_int4(q))', 'self.register_buffer("qweight", q)'),
        ("dequantize_blocks(unpack_int4(self.qweight), self.scale)",
         "dequantize_blocks(self.qweight, self.scale)")],
       QLINEAR, "keeps one 4-bit code per int8 byte: twice the memory"),
    _m("quant_linear_no_transpose", "quant_linear",
       [("return F.linear(x, self.dequantized_weight().to(x.dtype), self.bias)",
         "y = x @ self.dequantized_weight().to(x.dtype)\n"
         "        return y if self.bias is None else y + self.bias")],
       QLINEAR, "multiplies by W instead of W^T"),
    _m("quant_linear_keeps_padding", "quant_linear",
       [("dequantize_blocks(unpack_int4(self.qweight), self.scale)[:, : self.in_features]",
         "dequantize_blocks(unpack_int4(self.qweight), self.scale)")],
       ("test_quant_linear_hidden",), "forgets to cut the zero padding off the dequantized 4-bit weight"),
    _m("quant_linear_scale_from_mean", "quant_linear",
       [("q, s = quantize_absmax(w, per_channel=True)",
         "s = w.abs().mean(dim=-1, keepdim=True) / 127\n            q = quantize(w, s)")],
       ("test_quant_linear_hidden", "test_perplexity"),
       "int8 scale from the mean magnitude: large weights saturate"),
    _m("quantize_model_attention_only", "quantize_model",
       [("if isinstance(mod, nn.Linear)]", 'if isinstance(mod, nn.Linear) and "mlp" not in name]')], QMODEL,
       "quantizes the attention projections but not the MLP"),
    _m("quantize_model_includes_lm_head", "quantize_model",
       [("blocks = model.model.layers", "blocks = model")],
       QMODEL, "quantizes lm_head too, which the unit (like bitsandbytes) keeps in float"),
    _m("quantize_model_ignores_bits", "quantize_model",
       [("QuantLinear(linear, bits)", "QuantLinear(linear)")],
       ("test_quantize_model_hidden",), "always quantizes to 8 bits"),
    _m("model_bytes_parameters_only", "quantize_model",
       [("[p for _, p in model.named_parameters()] + [b for _, b in model.named_buffers()]",
         "[p for _, p in model.named_parameters()]")],
       ("test_quantize_model_hidden",),
       "counts parameters only: the quantized weights (buffers) are invisible"),
    _m("model_bytes_state_dict", "quantize_model",
       [("[p for _, p in model.named_parameters()] + [b for _, b in model.named_buffers()]",
         "list(model.state_dict().values())")],
       ("test_quantize_model_hidden",),
       "counts state_dict entries: tied weights twice, non-persistent buffers never"),
    # --- 5. timing ------------------------------------------------------------------------------
    _m("benchmark_no_warmup", "benchmark", [("    for _ in range(warmup):\n        fn()\n", "")],
       ("test_benchmark_hidden",), "no warm-up: the first, slow calls are timed"),
    _m("benchmark_no_sync_after", "benchmark", [("        fn()\n        sync()\n", "        fn()\n")],
       ("test_benchmark_hidden",),
       "stops the clock without synchronising: on a GPU it measures only the kernel launches"),
    _m("benchmark_no_sync_before", "benchmark",
       [("        sync()\n        start = timer()", "        start = timer()")],
       ("test_benchmark_hidden",), "starts the clock while earlier GPU work may still be queued"),
    _m("benchmark_times_warmup", "benchmark",
       [("    for _ in range(warmup):\n        fn()\n", ""),
        ("for _ in range(repeats):", "for _ in range(warmup + repeats):")],
       BENCH, "times the warm-up calls too and reports them"),
    _m("benchmark_p90_nearest_rank", "benchmark",
       [("p90 = ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)", "p90 = ordered[hi]")],
       ("test_benchmark_hidden",), "p90 by rounding up to the next order statistic instead of interpolating"),
    _m("benchmark_mean_not_median", "benchmark", [("statistics.median(times)", "statistics.mean(times)")],
       ("test_benchmark_hidden",), "reports the mean as the median"),
    # --- 5b. generation ---------------------------------------------------------------------------
    _m("generate_cache_unused", "generate",
       [("step_ids = ids if past is None else ids[:, -1:]", "step_ids = ids"),
        ("past_key_values=past, use_cache=True", "past_key_values=None, use_cache=True")],
       ("test_generate_speed",),
       "asks for a cache but never passes it back: every step recomputes the prefix"),
    _m("generate_full_ids_with_cache", "generate",
       [("step_ids = ids if past is None else ids[:, -1:]", "step_ids = ids")],
       GEN, "feeds the whole sequence again together with the cache: the cached tokens are seen twice"),
    _m("generate_first_position", "generate", [("logits = out.logits[:, -1]", "logits = out.logits[:, 0]")],
       GEN, "takes the logits of the first position instead of the last"),
    # --- 6. roofline ----------------------------------------------------------------------------
    _m("roofline_no_factor_two", "roofline", [("2 * n_tokens * i * o", "n_tokens * i * o")], ROOF,
       "counts one FLOP per multiply-add instead of two"),
    _m("roofline_ignores_weight_bits", "roofline", [("i * o * weight_bits / 8", "i * o * 4")],
       ("test_roofline_hidden",), "always reads 4 bytes per weight, whatever the format"),
    _m("roofline_kv_full_width", "roofline", [("(h, kv_out), (h, kv_out)", "(h, q_out), (h, q_out)")],
       ("test_roofline_hidden",), "forgets grouped-query attention: k_proj and v_proj as wide as q_proj"),
    _m("roofline_max_not_min", "roofline",
       [("min(peak_flops, bandwidth * intensity)", "max(peak_flops, bandwidth * intensity)")],
       ("test_attainable",), "the roofline is the minimum of the two bounds, not the maximum"),
    _m("roofline_no_activations", "roofline", [(" + n_tokens * (i + o) * act_bytes", "")], ROOF,
       "ignores the activation traffic"),
]

_QUANT_LINEAR_GLOBAL_CACHE = (
    "        return F.linear(x, self.dequantized_weight().to(x.dtype), self.bias)\n",
    "        w = _DEQUANTIZED.setdefault(id(self), self.dequantized_weight())\n"
    "        return F.linear(x, w.to(x.dtype), self.bias)\n\n\n"
    "_DEQUANTIZED = {}  # dequantize once per layer, for speed\n",
)

_GENERATE_WITH_ORACLE = (
    "    ids, past, steps = input_ids, None, []\n"
    "    with torch.no_grad():\n"
    "        for _ in range(max_new_tokens):\n"
    "            if use_cache:\n"
    "                step_ids = ids if past is None else ids[:, -1:]\n"
    "                out = model(input_ids=step_ids, past_key_values=past, use_cache=True)\n"
    "                past = out.past_key_values\n"
    "            else:\n"
    "                out = model(input_ids=ids, use_cache=False)\n"
    "            logits = out.logits[:, -1]\n"
    "            steps.append(logits)\n"
    "            ids = torch.cat([ids, logits.argmax(dim=-1, keepdim=True)], dim=1)\n"
    "    return ids, torch.stack(steps, dim=1)\n",
    "    out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids),\n"
    "                         max_new_tokens=max_new_tokens, do_sample=False, use_cache=use_cache,\n"
    "                         eos_token_id=None, pad_token_id=model.config.eos_token_id,\n"
    "                         output_logits=True, return_dict_in_generate=True)\n"
    "    return out.sequences, torch.stack(out.logits, dim=1)\n",
)

# Mistakes of the kinds issue 11 found (dtypes, devices, side effects, method, edge cases).
HARDENING = [
    _m("quantize_half_quotient", "quantize",
       [("torch.round(x.to(torch.float32) / scale)", "torch.round(x / scale)")], ("test_quantize_hidden",),
       "divides bf16/fp16 inputs in their own dtype: the quotient keeps 8 bits and codes move by a step"),
    _m("quantize_round_after_zero_point", "quantize",
       [("q = torch.round(x.to(torch.float32) / scale) + zero_point",
         "q = torch.round(x.to(torch.float32) / scale + zero_point)")], ("test_quantize_hidden",),
       "adds the zero point before rounding: an odd zero point sends halves to the other neighbour"),
    _m("absmax_scale_in_input_dtype", "qparams",
       [("    amax = amax.to(torch.float32)\n"
         "    scale = torch.where(amax > 0, amax / 127, torch.ones_like(amax))\n",
         "    scale = torch.where(amax > 0, amax / 127, torch.ones_like(amax)).to(torch.float32)\n")],
       ("test_qparams_hidden",),
       "divides max|x| by 127 in bf16/fp16 and only then converts the scale to float32"),
    _m("absmax_max_not_abs", "qparams",
       [("amax = x.abs().amax(dim=-1, keepdim=True)", "amax = x.amax(dim=-1, keepdim=True)"),
        ("amax = x.abs().amax()", "amax = x.amax()")], QPARAMS,
       "takes the largest value instead of the largest magnitude: a negative outlier saturates"),
    _m("absmax_ones_on_cpu", "qparams",
       [("scale = torch.where(amax > 0, amax / 127, torch.ones_like(amax))",
         "scale = torch.where(amax > 0, amax / 127, torch.ones(amax.shape))")],
       ("test_qparams_hidden",), "makes the fallback scale on the CPU (no device=): fails for GPU tensors"),
    _m("metrics_in_input_dtype", "metrics",
       [("x64 = x.to(torch.float64)", "x64 = x"), ("e = x64 - x_hat.to(torch.float64)", "e = x64 - x_hat")],
       ("test_metrics_hidden",), "sums squares in the inputs' dtype instead of float64"),
    _m("blocks_scale_in_input_dtype", "blocks",
       [("blocks = w.reshape(*w.shape[:-1], w.shape[-1] // block, block).to(torch.float32)",
         "blocks = w.reshape(*w.shape[:-1], w.shape[-1] // block, block)")],
       ("test_blocks_hidden",),
       "computes bf16/fp16 block scales in the weight's dtype before rounding to float16"),
    _m("blocks_max_not_abs", "blocks",
       [("blocks.abs().amax(dim=-1, keepdim=True) / qmax", "blocks.amax(dim=-1, keepdim=True) / qmax")],
       ("test_blocks_hidden",),
       "block scale from the largest value instead of the largest magnitude"),
    _m("pack_modifies_input", "packing",
       [("u = (q.to(torch.int16) + 8).to(torch.uint8)", "u = q.add_(8).to(torch.uint8)")],
       ("test_packing_hidden",),
       "adds the offset 8 to the caller's codes in place"),
    _m("int8_matmul_float_gemm", "int8_matmul",
       [("acc = int_mm(qx, qw.t().contiguous())", "acc = qx.float() @ qw.float().t()")],
       ("test_int8_matmul_hidden",),
       "multiplies the int8 codes in float32 instead of on the integer kernel"),
    _m("int8_matmul_squeezed_scales", "int8_matmul",
       [("return acc.to(torch.float32) * sx * sw.t()",
         "return acc.to(torch.float32) * torch.outer(sx.squeeze(), sw.squeeze())")],
       ("test_int8_matmul_hidden",),
       "squeezes the (M, 1) and (N, 1) scales: one token (M = 1) or one output (N = 1) leaves a 0-d scale"),
    _m("llm_int8_threshold_inclusive", "llm_int8",
       [("outlier = (x.abs() > threshold).any(dim=0)", "outlier = (x.abs() >= threshold).any(dim=0)")],
       ("test_llm_int8_hidden",), "counts a value equal to the threshold as an outlier"),
    _m("llm_int8_zeroes_input", "llm_int8",
       [("    y = int8_matmul(x[:, regular], w[:, regular]) if bool(regular.any()) else 0.0\n"
         "    if bool(outlier.any()):\n        y = y + x[:, outlier] @ w[:, outlier].T\n",
         "    y_out = x[:, outlier] @ w[:, outlier].T\n    x[:, outlier] = 0.0\n"
         "    y = int8_matmul(x, w) + y_out\n")],
       ("test_llm_int8_hidden",),
       "zeroes the outlier columns of the caller's x in place and runs all columns in int8"),
    _m("quant_linear_scale_in_weight_dtype", "quant_linear",
       [("q, s = quantize_absmax(w, per_channel=True)",
         "s = w.abs().amax(dim=-1, keepdim=True) / 127\n            q = quantize(w, s)")],
       ("test_quant_linear_hidden",),
       "computes the int8 scales in the weight's dtype (bf16 scales for a bf16 layer)"),
    _m("quant_linear_caches_float_weight", "quant_linear",
       [("        return F.linear(x, self.dequantized_weight().to(x.dtype), self.bias)\n",
         "        if getattr(self, \"_w_cache\", None) is None:\n"
         "            self._w_cache = self.dequantized_weight()\n"
         "        return F.linear(x, self._w_cache.to(x.dtype), self.bias)\n")],
       ("test_quant_linear_hidden",),
       "caches the dequantized float weight on the layer: model_bytes cannot see it"),
    _m("quant_linear_squeezed_scale", "quant_linear",
       [('self.register_buffer("scale", s[:, 0].contiguous())',
         'self.register_buffer("scale", s.squeeze())')],
       ("test_quant_linear_hidden",),
       "stores the int8 scales with .squeeze(): a Linear with one output gets a 0-d scale and breaks"),
    _m("quant_linear_global_cache", "quant_linear", [_QUANT_LINEAR_GLOBAL_CACHE],
       ("test_quant_linear_hidden",),
       "caches the dequantized float weights in a global dict: invisible to model_bytes, never freed"),
    _m("quant_linear_padding_on_cpu", "quant_linear",
       [("F.pad(w, (0, pad))", "torch.cat([w, torch.zeros(w.shape[0], pad, dtype=w.dtype)], dim=1)")],
       ("test_quant_linear_hidden",), "pads with zeros made on the CPU (no device=): fails for GPU weights"),
    _m("benchmark_noop_default_sync", "benchmark",
       [("sync=synchronize, timer=time.perf_counter", "sync=lambda: None, timer=time.perf_counter")],
       ("test_benchmark_hidden",),
       "a default sync that does nothing: on a GPU the default measures kernel launches"),
    _m("generate_with_autograd", "generate", [("with torch.no_grad():", "with torch.enable_grad():")],
       ("test_generate_hidden",), "generates with autograd on: every step's graph is built and kept"),
    _m("generate_stops_at_eos", "generate",
       [("            ids = torch.cat([ids, logits.argmax(dim=-1, keepdim=True)], dim=1)\n",
         "            ids = torch.cat([ids, logits.argmax(dim=-1, keepdim=True)], dim=1)\n"
         "            if bool((ids[:, -1] == model.config.eos_token_id).any()):\n                break\n")],
       ("test_generate_hidden",),
       "stops at the first end-of-sequence token although the spec asks for no early stop"),
    _m("blocks_flat_view", "blocks",
       [("blocks = w.reshape(*w.shape[:-1], w.shape[-1] // block, block).to(torch.float32)",
         "blocks = w.view(-1, block).to(torch.float32)"),
        ("return q.reshape(w.shape), scale16.squeeze(-1)",
         "return q.view(w.shape), scale16.view(*w.shape[:-1], -1)")],
       ("test_blocks_hidden",),
       "flattens the weight into blocks with .view(-1, 32): fails for a transposed (non-contiguous) weight"),
    _m("dequantize_blocks_flat_view", "blocks",
       [("blocks = q.reshape(*q.shape[:-1], q.shape[-1] // block, block).to(torch.float32)",
         "blocks = q.view(-1, block).to(torch.float32)"),
        ("return (blocks * scale.to(torch.float32)[..., None]).reshape(q.shape)",
         "return (blocks * scale.reshape(-1, 1).to(torch.float32)).view(q.shape)")],
       ("test_blocks_hidden",),
       "flattens the codes with .view(-1, 32) when dequantizing: fails for non-contiguous codes"),
    _m("generate_calls_model_generate", "generate", [_GENERATE_WITH_ORACLE], ("test_generate_hidden",),
       "calls model.generate instead of writing the decoding loop"),
    _m("roofline_head_dim_from_hidden", "roofline",
       [('head_dim = getattr(config, "head_dim", None) or h // config.num_attention_heads',
         "head_dim = h // config.num_attention_heads")],
       ("test_roofline_hidden",),
       "assumes head_dim = hidden_size / num_attention_heads, ignoring config.head_dim"),
]
MUTANTS += HARDENING
