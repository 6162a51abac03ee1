// kernels/data.h - data movement: embedding, permute, concat, slice, pad,
// take (gather), expand, and the adjoints of slice and take (gradients).
// Templates over any trivially copyable element type.
// Shapes are given as int64 arrays of length `rank` (rank <= 8).
#pragma once

#include "mithril/rt/kernels/common.h"

namespace mithril::rt::k {

inline constexpr int64_t kMaxRank = 8;

namespace detail {
inline void check_rank(const char* kernel, int64_t rank) {
    if (rank < 0 || rank > kMaxRank)
        throw Error(std::string(kernel) + ": rank " + std::to_string(rank) + " is outside [0, 8]");
}
// Advances the multi-index idx over shape[0..rank) (last dim fastest); false when done.
inline bool next_index(int64_t* idx, const int64_t* shape, int64_t rank) {
    for (int64_t d = rank - 1; d >= 0; --d) {
        if (++idx[d] < shape[d]) return true;
        idx[d] = 0;
    }
    return false;
}
}  // namespace detail

// torch.nn.functional.embedding(indices, weight) (forward; padding_idx and
// max_norm do not change the forward values): out[i, :] = weight[indices[i], :].
// weight [num_embeddings, dim], indices [count] (int32 or int64), out [count, dim].
// An index outside [0, num_embeddings) throws Error naming it and the range.
template <class T, class I>
void embedding(T* MITHRIL_K_RESTRICT out, const I* MITHRIL_K_RESTRICT indices, const T* MITHRIL_K_RESTRICT weight,
               int64_t count, int64_t dim, int64_t num_embeddings) {
    for (int64_t i = 0; i < count; ++i) {
        const int64_t ix = static_cast<int64_t>(indices[i]);
        if (ix < 0 || ix >= num_embeddings) index_error("embedding", ix, num_embeddings);
        std::memcpy(out + i * dim, weight + ix * dim, static_cast<size_t>(dim) * sizeof(T));
    }
}

namespace detail {

// out[b][j][i] = in[b][i][j] for in [batches, rows, cols]: tiles of 32 x 32, so
// that both sides are read and written a cache line at a time.
template <class T>
void transpose_batches(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, int64_t batches, int64_t rows,
                       int64_t cols) {
    constexpr int64_t kTile = 32;
    const int64_t rt = (rows + kTile - 1) / kTile, ct = (cols + kTile - 1) / kTile;
    MITHRIL_K_PARFOR(batches * rows * cols >= kParallelWork)
    for (int64_t t = 0; t < batches * rt * ct; ++t) {
        const int64_t b = t / (rt * ct), i0 = t / ct % rt * kTile, j0 = t % ct * kTile;
        const int64_t i1 = std::min(rows, i0 + kTile), j1 = std::min(cols, j0 + kTile);
        const T* x = in + b * rows * cols;
        T* y = out + b * rows * cols;
        for (int64_t j = j0; j < j1; ++j)
            for (int64_t i = i0; i < i1; ++i) y[j * rows + i] = x[i * cols + j];
    }
}

}  // namespace detail

// torch.permute(in, perm).contiguous() / numpy.transpose(in, perm):
// out.shape[d] = shape[perm[d]], out[idx] = in[idx permuted back].
// in: contiguous with `shape` (rank <= 8); out contiguous. A permutation that
// keeps the leading axes and swaps two runs of trailing ones (NCHW <-> NHWC:
// [0, 2, 3, 1] and [0, 3, 1, 2]) is a batch of matrix transposes, done in tiles.
template <class T>
void permute(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, int64_t rank, const int64_t* shape,
             const int64_t* perm) {
    detail::check_rank("permute", rank);
    {
        int64_t lead = 0;
        while (lead < rank && perm[lead] == lead) ++lead;
        // perm = [0 .. lead), [s .. rank), [lead .. s) for the s where the second run starts.
        if (lead < rank) {
            const int64_t s = perm[lead];
            bool rotation = s > lead;
            for (int64_t d = lead; rotation && d < rank; ++d)
                rotation = perm[d] == (d - lead < rank - s ? s + (d - lead) : lead + (d - lead - (rank - s)));
            if (rotation) {
                int64_t batches = 1, rows = 1, cols = 1;
                for (int64_t d = 0; d < lead; ++d) batches *= shape[d];
                for (int64_t d = lead; d < s; ++d) rows *= shape[d];
                for (int64_t d = s; d < rank; ++d) cols *= shape[d];
                detail::transpose_batches(out, in, batches, rows, cols);
                return;
            }
        }
    }
    int64_t in_stride[kMaxRank], oshape[kMaxRank], ostride_in[kMaxRank];
    int64_t total = 1;
    for (int64_t d = rank - 1, s = 1; d >= 0; --d) {
        in_stride[d] = s;
        s *= shape[d];
        total *= shape[d];
    }
    if (total == 0) return;
    if (rank == 0) {
        out[0] = in[0];
        return;
    }
    for (int64_t d = 0; d < rank; ++d) {
        oshape[d] = shape[perm[d]];
        ostride_in[d] = in_stride[perm[d]];
    }
    const int64_t last = oshape[rank - 1], ls = ostride_in[rank - 1];
    const int64_t rows = total / last;
    MITHRIL_K_PARFOR(total >= kParallelWork)
    for (int64_t r = 0; r < rows; ++r) {
        // input offset of output row r (all dims but the last)
        int64_t rem = r, off = 0;
        for (int64_t d = rank - 2; d >= 0; --d) {
            off += (rem % oshape[d]) * ostride_in[d];
            rem /= oshape[d];
        }
        T* y = out + r * last;
        const T* x = in + off;
        if (ls == 1) {
            for (int64_t j = 0; j < last; ++j) y[j] = x[j];
        } else {
            for (int64_t j = 0; j < last; ++j) y[j] = x[j * ls];
        }
    }
}

// torch.cat(parts, dim): part p is [outer, axis_lens[p], inner]; out is
// [outer, sum(axis_lens), inner].
template <class T>
void concat(T* MITHRIL_K_RESTRICT out, const T* const* parts, const int64_t* axis_lens, int64_t nparts, int64_t outer,
            int64_t inner) {
    int64_t total = 0;
    for (int64_t p = 0; p < nparts; ++p) total += axis_lens[p];
    for (int64_t o = 0; o < outer; ++o) {
        T* y = out + o * total * inner;
        for (int64_t p = 0; p < nparts; ++p) {
            const int64_t n = axis_lens[p] * inner;
            if (n == 0) continue;
            std::memcpy(y, parts[p] + o * n, static_cast<size_t>(n) * sizeof(T));
            y += n;
        }
    }
}

// x[..., start : start + step*out_len : step, ...] along one axis (torch
// slicing, or ONNX Slice with any non-zero step, negative walking backwards):
// in [outer, in_len, inner], out [outer, out_len, inner],
// out[o, j, i] = in[o, start + j*step, i]. start/out_len are already
// normalised by the caller (every start + j*step lies in [0, in_len)).
template <class T>
void slice(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, int64_t outer, int64_t in_len, int64_t inner,
           int64_t start, int64_t step, int64_t out_len) {
    MITHRIL_K_PARFOR(outer * out_len * inner >= kParallelWork)
    for (int64_t o = 0; o < outer; ++o)
        for (int64_t j = 0; j < out_len; ++j) {
            const T* x = in + (o * in_len + start + j * step) * inner;
            T* y = out + (o * out_len + j) * inner;
            for (int64_t i = 0; i < inner; ++i) y[i] = x[i];
        }
}

// The adjoint of slice (the gradient of x[..., start::step, ...]): dx [outer,
// in_len, inner] gets dy [outer, out_len, inner] at rows start + j*step and
// zeros elsewhere, one pass over dx. start/out_len as for slice.
template <class T>
void slice_grad(T* MITHRIL_K_RESTRICT dx, const T* MITHRIL_K_RESTRICT dy, int64_t outer, int64_t in_len, int64_t inner,
                int64_t start, int64_t step, int64_t out_len) {
    MITHRIL_K_PARFOR(outer * in_len * inner >= kParallelWork)
    for (int64_t o = 0; o < outer; ++o)
        for (int64_t l = 0; l < in_len; ++l) {
            T* x = dx + (o * in_len + l) * inner;
            const int64_t d = l - start, j = d / step;
            if (d % step == 0 && j >= 0 && j < out_len) {
                const T* y = dy + (o * out_len + j) * inner;
                for (int64_t i = 0; i < inner; ++i) x[i] = y[i];
            } else {
                for (int64_t i = 0; i < inner; ++i) x[i] = T(0);
            }
        }
}

// torch.nn.functional.pad(in, pads, mode="constant", value) for rank <= 8:
// out.shape[d] = in_shape[d] + before[d] + after[d]; negative pads crop (as
// torch). out[idx + before] = in[idx] where inside, `value` elsewhere.
template <class T>
void pad_constant(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, int64_t rank, const int64_t* in_shape,
                  const int64_t* pads_before, const int64_t* pads_after, T value) {
    detail::check_rank("pad_constant", rank);
    int64_t oshape[kMaxRank], ostride[kMaxRank];
    int64_t ototal = 1, itotal = 1;
    for (int64_t d = rank - 1; d >= 0; --d) {
        oshape[d] = in_shape[d] + pads_before[d] + pads_after[d];
        ostride[d] = ototal;
        ototal *= oshape[d];
        itotal *= in_shape[d];
    }
    for (int64_t i = 0; i < ototal; ++i) out[i] = value;
    if (itotal == 0 || ototal == 0) return;
    if (rank == 0) {
        out[0] = in[0];
        return;
    }
    // Copy every input row (all dims but the last) that lands inside out.
    const int64_t last = in_shape[rank - 1], b = pads_before[rank - 1];
    const int64_t j0 = std::max<int64_t>(0, -b), j1 = std::min(last, oshape[rank - 1] - b);
    if (j0 >= j1) return;
    int64_t idx[kMaxRank] = {};
    const T* x = in;
    do {
        bool inside = true;
        int64_t off = 0;
        for (int64_t d = 0; d + 1 < rank; ++d) {
            const int64_t od = idx[d] + pads_before[d];
            inside = inside && od >= 0 && od < oshape[d];
            off += od * ostride[d];
        }
        if (inside) {
            T* y = out + off + b;
            for (int64_t j = j0; j < j1; ++j) y[j] = x[j];
        }
        x += last;
    } while (detail::next_index(idx, in_shape, rank - 1));
}

// numpy.take(in, indices, axis) / torch.index_select: in [outer, axis_len,
// inner], indices [count] (int32 or int64; negative values count from the
// end as numpy), out [outer, count, inner]. Out-of-range indices throw Error.
template <class T, class I>
void take(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, const I* MITHRIL_K_RESTRICT indices,
          int64_t outer, int64_t axis_len, int64_t inner, int64_t count) {
    for (int64_t j = 0; j < count; ++j) {
        const int64_t ix = static_cast<int64_t>(indices[j]);
        if (ix < -axis_len || ix >= axis_len) index_error("take", ix, axis_len);
    }
    MITHRIL_K_PARFOR(outer * count * inner >= kParallelWork)
    for (int64_t o = 0; o < outer; ++o)
        for (int64_t j = 0; j < count; ++j) {
            int64_t ix = static_cast<int64_t>(indices[j]);
            if (ix < 0) ix += axis_len;
            const T* x = in + (o * axis_len + ix) * inner;
            T* y = out + (o * count + j) * inner;
            for (int64_t i = 0; i < inner; ++i) y[i] = x[i];
        }
}

// The adjoint of take (the gradient of numpy.take / torch.index_select):
// dx [outer, axis_len, inner] = 0, then dx[o, indices[j], i] += dy[o, j, i];
// repeated indices accumulate. Blocks of inner elements run in parallel, so an
// embedding table (outer 1) is split too; each block owns its slice of dx.
template <class T, class I>
void take_grad(T* MITHRIL_K_RESTRICT dx, const T* MITHRIL_K_RESTRICT dy, const I* MITHRIL_K_RESTRICT indices,
               int64_t outer, int64_t axis_len, int64_t inner, int64_t count) {
    for (int64_t j = 0; j < count; ++j) {
        const int64_t ix = static_cast<int64_t>(indices[j]);
        if (ix < -axis_len || ix >= axis_len) index_error("take_grad", ix, axis_len);
    }
    constexpr int64_t kCols = 256;
    const int64_t nb = (inner + kCols - 1) / kCols;
    MITHRIL_K_PARFOR(outer * (axis_len + count) * inner >= kParallelWork)
    for (int64_t ob = 0; ob < outer * nb; ++ob) {
        const int64_t o = ob / nb, i0 = (ob % nb) * kCols, bn = std::min(kCols, inner - i0);
        T* x = dx + o * axis_len * inner + i0;
        for (int64_t l = 0; l < axis_len; ++l)
            for (int64_t i = 0; i < bn; ++i) x[l * inner + i] = T(0);
        for (int64_t j = 0; j < count; ++j) {
            int64_t ix = static_cast<int64_t>(indices[j]);
            if (ix < 0) ix += axis_len;
            const T* y = dy + (o * count + j) * inner + i0;
            T* xr = x + ix * inner;
            for (int64_t i = 0; i < bn; ++i) xr[i] += y[i];
        }
    }
}

// torch.Tensor.expand(out_shape).contiguous() / numpy.broadcast_to: in_shape
// is the input shape left-padded with 1s to `rank` (<= 8); each in_shape[d]
// is 1 or out_shape[d].
template <class T>
void expand(T* MITHRIL_K_RESTRICT out, const T* MITHRIL_K_RESTRICT in, int64_t rank, const int64_t* in_shape,
            const int64_t* out_shape) {
    detail::check_rank("expand", rank);
    int64_t total = 1, istride[kMaxRank];
    for (int64_t d = rank - 1, s = 1; d >= 0; --d) {
        istride[d] = in_shape[d] == 1 ? 0 : s;
        s *= in_shape[d];
        total *= out_shape[d];
    }
    if (total == 0) return;
    if (rank == 0) {
        out[0] = in[0];
        return;
    }
    const int64_t last = out_shape[rank - 1], ls = istride[rank - 1];
    const int64_t rows = total / last;
    MITHRIL_K_PARFOR(total >= kParallelWork)
    for (int64_t r = 0; r < rows; ++r) {
        int64_t rem = r, off = 0;
        for (int64_t d = rank - 2; d >= 0; --d) {
            off += (rem % out_shape[d]) * istride[d];
            rem /= out_shape[d];
        }
        const T* x = in + off;
        T* y = out + r * last;
        if (ls == 0) {
            const T v = x[0];
            for (int64_t j = 0; j < last; ++j) y[j] = v;
        } else {
            for (int64_t j = 0; j < last; ++j) y[j] = x[j];
        }
    }
}

// ---- compiled once, into the runtime library (src/kernels_nn.cpp) -------------------------------
MITHRIL_K_INSTANCE(void embedding<float, int64_t>(float*, const int64_t*, const float*, int64_t, int64_t, int64_t))
MITHRIL_K_INSTANCE(void permute<float>(float*, const float*, int64_t, const int64_t*, const int64_t*))
MITHRIL_K_INSTANCE(void concat<float>(float*, const float* const*, const int64_t*, int64_t, int64_t, int64_t))
MITHRIL_K_INSTANCE(void slice<float>(float*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t))
MITHRIL_K_INSTANCE(void slice_grad<float>(float*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t))
MITHRIL_K_INSTANCE(void pad_constant<float>(float*, const float*, int64_t, const int64_t*, const int64_t*,
                                            const int64_t*, float))
MITHRIL_K_INSTANCE(void expand<float>(float*, const float*, int64_t, const int64_t*, const int64_t*))
MITHRIL_K_INSTANCE(void take<float, int64_t>(float*, const float*, const int64_t*, int64_t, int64_t, int64_t, int64_t))
MITHRIL_K_INSTANCE(void take_grad<float, int64_t>(float*, const float*, const int64_t*, int64_t, int64_t, int64_t,
                                                  int64_t))

}  // namespace mithril::rt::k
