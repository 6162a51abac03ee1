// kernels/attention.h - scaled dot-product attention and batched matmul.
#pragma once

#include "mithril/rt/kernels/common.h"
#include "mithril/rt/kernels/gemm.h"
#include "mithril/rt/kernels/reduce.h"
#include "mithril/rt/kernels/scalar.h"

namespace mithril::rt::k {

// Scratch elements scaled_dot_product_attention needs: L*S.
inline size_t scaled_dot_product_attention_scratch(int64_t L, int64_t S) { return static_cast<size_t>(L * S); }

namespace detail {
// The attention probabilities of one batch entry into p [L, S]: softmax over S
// of scale * q k^T (+ bias), masked (mask == 0, or j > i with `causal`) to
// -inf; a fully masked row gives zeros. q [L, E], k [S, E]; mask / bias
// [L, S] or null. S > 0.
template <class T>
void attention_probs(T* MITHRIL_K_RESTRICT p, const T* MITHRIL_K_RESTRICT q, const T* MITHRIL_K_RESTRICT k,
                     const std::uint8_t* MITHRIL_K_RESTRICT mask_or_null, const T* MITHRIL_K_RESTRICT bias_or_null,
                     int64_t L, int64_t S, int64_t E, double scale, bool causal) {
    if (E > 0) {
        gemm(Transpose::No, Transpose::Yes, L, S, E, static_cast<T>(scale), q, E, k, E, T(0), p, S);
    } else {
        for (int64_t i = 0; i < L * S; ++i) p[i] = T(0);
    }
    MITHRIL_K_PARFOR(L * S >= kParallelWork)
    for (int64_t i = 0; i < L; ++i) {
        T* row = p + i * S;
        if (bias_or_null)
            for (int64_t j = 0; j < S; ++j) row[j] += bias_or_null[i * S + j];
        if (mask_or_null)
            for (int64_t j = 0; j < S; ++j) row[j] = mask_or_null[i * S + j] ? row[j] : neg_inf<T>();
        if (causal)
            for (int64_t j = i + 1; j < S; ++j) row[j] = neg_inf<T>();
        T m = neg_inf<T>();
        for (int64_t j = 0; j < S; ++j) m = max_step(m, row[j]);
        if (m == neg_inf<T>()) {  // fully masked row
            for (int64_t j = 0; j < S; ++j) row[j] = T(0);
            continue;
        }
        // exp_: float exponentials without a call per element (scalar.h), summed in 8 lanes.
        for (int64_t j = 0; j < S; ++j) row[j] = exp_(row[j] - m);
        const T r = static_cast<T>(1 / sum_contig(row, S));
        for (int64_t j = 0; j < S; ++j) row[j] *= r;
    }
}
}  // namespace detail

// torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask,
// dropout_p=0, is_causal, scale) with batch and heads flattened into B:
// q [B, L, E], k [B, S, E], v [B, S, Ev], out [B, L, Ev].
// scores = scale * q k^T (+ bias); positions where mask == 0 (bool mask,
// uint8, True = attend, [B, L, S] or null) or, with `causal`, j > i
// (top-left aligned tril, as torch) get -inf; softmax over S; out = P v.
// bias_or_null: an additive float mask [B, L, S] (torch's float attn_mask).
// A row with every position masked gives zeros (torch >= 2.5 math backend;
// older torch gave NaN). scale: pass 1/sqrt(E) for torch's default.
// scratch: scaled_dot_product_attention_scratch(L, S) elements.
template <class T>
void scaled_dot_product_attention(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT q,
                                  const T* MITHRIL_K_RESTRICT k, const T* MITHRIL_K_RESTRICT v,
                                  const std::uint8_t* MITHRIL_K_RESTRICT mask_or_null,
                                  const opt<T>* MITHRIL_K_RESTRICT bias_or_null, int64_t B, int64_t L, int64_t S,
                                  int64_t E, int64_t Ev, double scale, bool causal, T* MITHRIL_K_RESTRICT scratch) {
    if (L * Ev == 0) return;
    for (int64_t b = 0; b < B; ++b) {
        T* o = out + b * L * Ev;
        if (S == 0) {
            for (int64_t i = 0; i < L * Ev; ++i) o[i] = T(0);
            continue;
        }
        detail::attention_probs(scratch, q + b * L * E, k + b * S * E,
                                mask_or_null ? mask_or_null + b * L * S : nullptr,
                                bias_or_null ? bias_or_null + b * L * S : nullptr, L, S, E, scale, causal);
        gemm_ab(o, scratch, v + b * S * Ev, L, Ev, S, S, Ev, Ev);
    }
}

// Scratch elements scaled_dot_product_attention_backward needs: 2*L*S.
inline size_t scaled_dot_product_attention_backward_scratch(int64_t L, int64_t S) {
    return static_cast<size_t>(2 * L * S);
}

// Backward of scaled_dot_product_attention (same layouts, mask, bias, causal
// and scale): from dout [B, L, Ev] gives dq [B, L, E], dk [B, S, E] and
// dv [B, S, Ev]. The probabilities P are recomputed from q and k for one batch
// entry at a time (flash-attention style: nothing [B, L, S] is kept from the
// forward pass), then five gemms:
//   dv = P^T dout, dP = dout v^T, dS = P * (dP - rowsum(P * dP)),
//   dq = scale * dS k, dk = scale * dS^T q.
// Fully masked rows have P = 0 and contribute nothing. The mask and bias get
// no gradient. scratch: scaled_dot_product_attention_backward_scratch(L, S).
template <class T>
void scaled_dot_product_attention_backward(T* MITHRIL_K_RESTRICT dq, T* MITHRIL_K_RESTRICT dk,
                                           T* MITHRIL_K_RESTRICT dv, const T* MITHRIL_K_RESTRICT dout,
                                           const T* MITHRIL_K_RESTRICT q, const T* MITHRIL_K_RESTRICT k,
                                           const T* MITHRIL_K_RESTRICT v,
                                           const std::uint8_t* MITHRIL_K_RESTRICT mask_or_null,
                                           const opt<T>* MITHRIL_K_RESTRICT bias_or_null, int64_t B, int64_t L,
                                           int64_t S, int64_t E, int64_t Ev, double scale, bool causal,
                                           T* MITHRIL_K_RESTRICT scratch) {
    if (L == 0 || S == 0) {  // nothing attends: every gradient is zero
        std::fill(dq, dq + B * L * E, T(0));
        std::fill(dk, dk + B * S * E, T(0));
        std::fill(dv, dv + B * S * Ev, T(0));
        return;
    }
    T* const p = scratch;
    T* const dp = scratch + L * S;
    const T sc = static_cast<T>(scale);
    for (int64_t b = 0; b < B; ++b) {
        const T* qb = q + b * L * E;
        const T* kb = k + b * S * E;
        const T* vb = v + b * S * Ev;
        const T* gb = dout + b * L * Ev;
        detail::attention_probs(p, qb, kb, mask_or_null ? mask_or_null + b * L * S : nullptr,
                                bias_or_null ? bias_or_null + b * L * S : nullptr, L, S, E, scale, causal);
        if (Ev > 0) {
            gemm(Transpose::Yes, Transpose::No, S, Ev, L, T(1), p, S, gb, Ev, T(0), dv + b * S * Ev, Ev);
            gemm(Transpose::No, Transpose::Yes, L, S, Ev, T(1), gb, Ev, vb, Ev, T(0), dp, S);
        } else {
            std::fill(dp, dp + L * S, T(0));
        }
        if (E == 0) continue;
        // dS = P * (dP - sum_j P dP), in place over dP.
        MITHRIL_K_PARFOR(L * S >= kParallelWork)
        for (int64_t i = 0; i < L; ++i) {
            const T* pr = p + i * S;
            T* d = dp + i * S;
            acc_t<T> s = 0;
            for (int64_t j = 0; j < S; ++j) s += static_cast<acc_t<T>>(pr[j]) * static_cast<acc_t<T>>(d[j]);
            const T st = static_cast<T>(s);
            for (int64_t j = 0; j < S; ++j) d[j] = pr[j] * (d[j] - st);
        }
        gemm(Transpose::No, Transpose::No, L, E, S, sc, dp, S, kb, E, T(0), dq + b * L * E, E);
        gemm(Transpose::Yes, Transpose::No, S, E, L, sc, dp, S, qb, E, T(0), dk + b * S * E, E);
    }
}

// numpy.matmul / torch.matmul of a [..., M, K] and b [..., K, N] with NumPy
// broadcasting over the batch dims: a_batch / b_batch / out_batch are the
// batch shapes padded on the left with 1s to batch_rank (out_batch[d] =
// max(a_batch[d], b_batch[d]), each a_batch[d] is 1 or out_batch[d]).
// out [out_batch..., M, N]. 1-D operands are the caller's business
// (unsqueeze to [1, K] / [K, 1], squeeze the result), as numpy does.
// Regular cases go through one gemm (b broadcast: a's batch folds into M) or
// gemm_batched (equal batches or one side fully broadcast); otherwise one gemm
// per output matrix.
template <class T>
void matmul(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT a, const T* MITHRIL_K_RESTRICT b,
            const int64_t* a_batch, const int64_t* b_batch, const int64_t* out_batch, int64_t batch_rank, int64_t M,
            int64_t K, int64_t N) {
    int64_t nb = 1, na = 1, nbb = 1;
    bool a_full = true, b_full = true;
    for (int64_t d = 0; d < batch_rank; ++d) {
        nb *= out_batch[d];
        na *= a_batch[d];
        nbb *= b_batch[d];
        a_full = a_full && a_batch[d] == out_batch[d];
        b_full = b_full && b_batch[d] == out_batch[d];
    }
    if (nb == 0 || M == 0 || N == 0) return;
    if (K == 0) {
        for (int64_t i = 0; i < nb * M * N; ++i) out[i] = T(0);
        return;
    }
    if (nbb == 1 && a_full) {  // [B, M, K] x [K, N]: one tall gemm
        gemm_ab(out, a, b, nb * M, N, K, K, N, N);
        return;
    }
    if ((a_full || na == 1) && (b_full || nbb == 1)) {
        gemm_batched(Transpose::No, Transpose::No, nb, M, N, K, T(1), a, K, na == 1 && nb > 1 ? 0 : M * K, b, N,
                     nbb == 1 && nb > 1 ? 0 : K * N, T(0), out, N, M * N);
        return;
    }
    // General broadcast: walk the output batch index.
    int64_t idx[16] = {};
    if (batch_rank > 16) throw Error("matmul: more than 16 batch dimensions");
    for (int64_t t = 0; t < nb; ++t) {
        int64_t ao = 0, bo = 0;
        for (int64_t d = 0; d < batch_rank; ++d) {
            ao = ao * a_batch[d] + (a_batch[d] == 1 ? 0 : idx[d]);
            bo = bo * b_batch[d] + (b_batch[d] == 1 ? 0 : idx[d]);
        }
        gemm_ab(out + t * M * N, a + ao * M * K, b + bo * K * N, M, N, K, K, N, N);
        for (int64_t d = batch_rank - 1; d >= 0; --d) {
            if (++idx[d] < out_batch[d]) break;
            idx[d] = 0;
        }
    }
}

// The sizes of an attention by name, so a call reads
// `scaled_dot_product_attention(out, q, k, v, mask, bias, geom, scratch)`: `batch` independent
// problems (batch and heads together), queries [len_q, dim_qk], keys [len_kv, dim_qk], values
// [len_kv, dim_v], scores times `scale`, `causal` masking.
struct AttentionGeom {
    int64_t batch = 1, len_q = 1, len_kv = 1, dim_qk = 1, dim_v = 1;
    double scale = 1.0;
    bool causal = false;
};

template <class T>
inline void scaled_dot_product_attention(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT q,
                                         const T* MITHRIL_K_RESTRICT k, const T* MITHRIL_K_RESTRICT v,
                                         const std::uint8_t* MITHRIL_K_RESTRICT mask_or_null,
                                         const opt<T>* MITHRIL_K_RESTRICT bias_or_null, const AttentionGeom& g,
                                         T* MITHRIL_K_RESTRICT scratch) {
    scaled_dot_product_attention(out, q, k, v, mask_or_null, bias_or_null, g.batch, g.len_q, g.len_kv, g.dim_qk, g.dim_v,
                                 g.scale, g.causal, scratch);
}

template <class T>
inline void scaled_dot_product_attention_backward(T* MITHRIL_K_RESTRICT dq, T* MITHRIL_K_RESTRICT dk,
                                                  T* MITHRIL_K_RESTRICT dv, const T* MITHRIL_K_RESTRICT dout,
                                                  const T* MITHRIL_K_RESTRICT q, const T* MITHRIL_K_RESTRICT k,
                                                  const T* MITHRIL_K_RESTRICT v,
                                                  const std::uint8_t* MITHRIL_K_RESTRICT mask_or_null,
                                                  const opt<T>* MITHRIL_K_RESTRICT bias_or_null, const AttentionGeom& g,
                                                  T* MITHRIL_K_RESTRICT scratch) {
    scaled_dot_product_attention_backward(dq, dk, dv, dout, q, k, v, mask_or_null, bias_or_null, g.batch, g.len_q,
                                          g.len_kv, g.dim_qk, g.dim_v, g.scale, g.causal, scratch);
}

// ---- compiled once, into the runtime library (src/kernels_nn.cpp) -------------------------------
MITHRIL_K_INSTANCE(void scaled_dot_product_attention<float>(float*, const float*, const float*, const float*,
                                                            const std::uint8_t*, const float*, int64_t, int64_t,
                                                            int64_t, int64_t, int64_t, double, bool, float*))
MITHRIL_K_INSTANCE(void scaled_dot_product_attention_backward<float>(float*, float*, float*, const float*, const float*,
                                                                     const float*, const float*, const std::uint8_t*,
                                                                     const float*, int64_t, int64_t, int64_t, int64_t,
                                                                     int64_t, double, bool, float*))
MITHRIL_K_INSTANCE(void matmul<float>(float*, const float*, const float*, const int64_t*, const int64_t*,
                                      const int64_t*, int64_t, int64_t, int64_t, int64_t))

}  // namespace mithril::rt::k
