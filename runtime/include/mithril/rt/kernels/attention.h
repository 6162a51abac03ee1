// kernels/attention.h - scaled dot-product attention and batched matmul.
#pragma once

#include "mithril/rt/kernels/common.h"
#include "mithril/rt/kernels/reduce.h"

namespace mithril::rt::k {

// Scratch elements scaled_dot_product_attention needs: L*S.
inline size_t scaled_dot_product_attention_scratch(int64_t L, int64_t S) { return static_cast<size_t>(L * S); }

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
        T* sc = scratch;
        T* o = out + b * L * Ev;
        if (S == 0) {
            for (int64_t i = 0; i < L * Ev; ++i) o[i] = T(0);
            continue;
        }
        if (E > 0) {
            gemm(Transpose::No, Transpose::Yes, L, S, E, static_cast<T>(scale), q + b * L * E, E, k + b * S * E, E,
                 T(0), sc, S);
        } else {
            for (int64_t i = 0; i < L * S; ++i) sc[i] = T(0);
        }
        const std::uint8_t* mb = mask_or_null ? mask_or_null + b * L * S : nullptr;
        const T* bb = bias_or_null ? bias_or_null + b * L * S : nullptr;
        MITHRIL_K_PARFOR(L * S >= kParallelWork)
        for (int64_t i = 0; i < L; ++i) {
            T* row = sc + i * S;
            if (bb)
                for (int64_t j = 0; j < S; ++j) row[j] += bb[i * S + j];
            if (mb)
                for (int64_t j = 0; j < S; ++j) row[j] = mb[i * S + j] ? row[j] : neg_inf<T>();
            if (causal)
                for (int64_t j = i + 1; j < S; ++j) row[j] = neg_inf<T>();
            T m = neg_inf<T>();
            for (int64_t j = 0; j < S; ++j) m = detail::max_step(m, row[j]);
            if (m == neg_inf<T>()) {  // fully masked row
                for (int64_t j = 0; j < S; ++j) row[j] = T(0);
                continue;
            }
            acc_t<T> s = 0;
            for (int64_t j = 0; j < S; ++j) {
                const T e = std::exp(row[j] - m);
                row[j] = e;
                s += static_cast<acc_t<T>>(e);
            }
            const T r = static_cast<T>(1 / s);
            for (int64_t j = 0; j < S; ++j) row[j] *= r;
        }
        gemm(Transpose::No, Transpose::No, L, Ev, S, T(1), sc, S, v + b * S * Ev, Ev, T(0), o, Ev);
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
        gemm(Transpose::No, Transpose::No, nb * M, N, K, T(1), a, K, b, N, T(0), out, N);
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
        gemm(Transpose::No, Transpose::No, M, N, K, T(1), a + ao * M * K, K, b + bo * K * N, N, T(0), out + t * M * N,
             N);
        for (int64_t d = batch_rank - 1; d >= 0; --d) {
            if (++idx[d] < out_batch[d]) break;
            idx[d] = 0;
        }
    }
}

}  // namespace mithril::rt::k
