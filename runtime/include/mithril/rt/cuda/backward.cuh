// cuda/backward.cuh - the device kernels of the backward pass (included by cuda/kernels.cuh; same
// conventions: outputs first, int64_t sizes, contiguous row-major, one stream, launches checked).
// Gradients an op does not need are null. Each kernel says how it parallelizes; every one is the
// CPU kernel's formula (kernels/*.h), so the CPU target is the reference within float tolerance.
#pragma once

namespace mithril::rt::cuda {

// ---- cross entropy with class-index targets: logits [N, C, inner], targets [N, inner] ----------
// Row r = n * inner + i: one block per row. loss_rows[r] and weight_rows[r] (1, or 0 for an ignored
// target) feed the reduction; a target outside [0, C) is reported (Device::check_status).
template <class I>
__global__ void cross_entropy_rows_kernel(float* loss_rows, float* weight_rows, const float* logits, const I* target,
                                          int64_t C, int64_t inner, int64_t ignore_index, float ls, std::int64_t* status,
                                          const char* layer) {
    __shared__ float red[32];
    const int64_t r = blockIdx.x, n = r / inner, i = r % inner;
    const float* x = logits + n * C * inner + i;
    const int64_t t = static_cast<int64_t>(target[r]);
    if (t == ignore_index || t < 0 || t >= C) {
        if (threadIdx.x == 0) {
            if (t != ignore_index) report_index(status, layer, t, C);
            loss_rows[r] = t == ignore_index ? 0.f : NAN;
            weight_rows[r] = t == ignore_index ? 0.f : 1.f;
        }
        return;
    }
    float m = -INFINITY;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) m = fmaxf(m, x[c * inner]);
    m = block_max(m, red);
    float s = 0.f, all = 0.f;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
        s += expf(x[c * inner] - m);
        all += x[c * inner];
    }
    s = block_sum(s, red);
    all = ls != 0.f ? block_sum(all, red) : 0.f;
    if (threadIdx.x == 0) {
        const float lse = m + logf(s);
        float l = -(1.f - ls) * (x[t * inner] - lse);
        if (ls != 0.f) l += ls / static_cast<float>(C) * (static_cast<float>(C) * lse - all);
        loss_rows[r] = l;
        weight_rows[r] = 1.f;
    }
}

// out[0] = sum(values) / (divide_by_weights ? sum(weights) : 1) over n values: one block.
__global__ inline void sum_rows_kernel(float* out, const float* values, const float* weights, int64_t n, bool mean) {
    __shared__ float red[32];
    float s = 0.f, w = 0.f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        s += values[j];
        if (mean) w += weights[j];
    }
    s = block_sum(s, red);
    if (mean) w = block_sum(w, red);
    if (threadIdx.x == 0) out[0] = mean ? s / w : s;
}

template <class I>
__global__ void count_targets_kernel(float* count, const I* target, int64_t n, int64_t ignore_index);

// out[0] = scale * sum(values[0, n)): one block (the pointwise losses' mean and sum).
__global__ inline void sum_scaled_kernel(float* out, const float* values, int64_t n, float scale) {
    __shared__ float red[32];
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += values[j];
    s = block_sum(s, red);
    if (threadIdx.x == 0) out[0] = s * scale;
}
inline void sum_scaled(const Device& dev, float* out, const float* values, int64_t n, double scale, const char* layer) {
    MITHRIL_CUDA_LAUNCH(1, 1024, 0, stream_of(dev), sum_scaled_kernel)(out, values, n, static_cast<float>(scale));
    Device::check_launch(layer);
}

// nll_loss with class-index targets, log-probabilities [N, C, inner]: per row r the loss -x[n, t, i]
// and a weight (0 for an ignored target), then the mean over the weights or the sum (as
// cross_entropy); a target outside [0, C) is reported. scratch: 2 * N * inner floats.
template <class I>
void nll_loss(const Device& dev, float* out, const float* logp, const I* target, float* scratch, int64_t N, int64_t C, int64_t inner,
              int64_t ignore_index, int reduction, const char* layer) {
    const int64_t rows = N * inner;
    if (rows <= 0) {
        if (reduction != 0) zero(dev, out, sizeof(float), layer);
        return;
    }
    float* loss_rows = reduction == 0 ? out : scratch;
    float* weight_rows = reduction == 0 ? scratch : scratch + rows;
    std::int64_t* status = dev.status();
    for_each(
        dev, rows,
        [=] __device__(int64_t r) {
            const int64_t t = static_cast<int64_t>(target[r]);
            if (t == ignore_index) {
                loss_rows[r] = weight_rows[r] = 0.f;
                return;
            }
            if (t < 0 || t >= C) {
                report_index(status, layer, t, C);
                loss_rows[r] = NAN;
                weight_rows[r] = 1.f;
                return;
            }
            loss_rows[r] = -logp[(r / inner * C + t) * inner + r % inner];
            weight_rows[r] = 1.f;
        },
        layer);
    if (reduction == 0) return;
    MITHRIL_CUDA_LAUNCH(1, 1024, 0, stream_of(dev), sum_rows_kernel)(out, loss_rows, weight_rows, rows, reduction == 1);
    Device::check_launch(layer);
}
// Its gradient: -g at [n, t, i], zero elsewhere; g = dy[r] (none), dy[0] / (targets not ignored)
// (mean), dy[0] (sum). scratch: 1 float.
template <class I>
void nll_loss_backward(const Device& dev, float* dx, const float* dy, const I* target, float* scratch, int64_t N, int64_t C,
                       int64_t inner, int64_t ignore_index, int reduction, const char* layer) {
    const int64_t rows = N * inner;
    zero(dev, dx, static_cast<std::size_t>(N * C * inner) * sizeof(float), layer);
    if (rows <= 0) return;
    if (reduction == 1) {
        MITHRIL_CUDA_LAUNCH(1, 1024, 0, stream_of(dev), count_targets_kernel<I>)(scratch, target, rows, ignore_index);
        Device::check_launch(layer);
    }
    const float* count = scratch;
    for_each(
        dev, rows,
        [=] __device__(int64_t r) {
            const int64_t t = static_cast<int64_t>(target[r]);
            if (t == ignore_index || t < 0 || t >= C) return;
            const float g = reduction == 0 ? dy[r] : reduction == 1 ? dy[0] / count[0] : dy[0];
            dx[(r / inner * C + t) * inner + r % inner] = -g;
        },
        layer);
}

// torch.nn.functional.cross_entropy(logits, target, ignore_index, reduction, label_smoothing):
// reduction 0 none (out [N, inner]), 1 mean, 2 sum. scratch: 2 * N * inner floats (mean, sum).
template <class I>
void cross_entropy(const Device& dev, float* out, const float* logits, const I* target, float* scratch, int64_t N, int64_t C,
                   int64_t inner, int64_t ignore_index, double label_smoothing, int reduction, const char* layer) {
    const int64_t rows = N * inner;
    if (rows <= 0) {
        if (reduction != 0) zero(dev, out, sizeof(float), layer);
        return;
    }
    float* loss_rows = reduction == 0 ? out : scratch;
    float* weight_rows = reduction == 0 ? scratch : scratch + rows;
    MITHRIL_CUDA_LAUNCH(static_cast<unsigned>(rows), kThreads, 0, stream_of(dev), cross_entropy_rows_kernel<I>)(
        loss_rows, weight_rows, logits, target, C, inner, ignore_index, static_cast<float>(label_smoothing), dev.status(), layer);
    Device::check_launch(layer);
    if (reduction == 0) return;
    MITHRIL_CUDA_LAUNCH(1, 1024, 0, stream_of(dev), sum_rows_kernel)(out, loss_rows, weight_rows, rows, reduction == 1);
    Device::check_launch(layer);
}

// Its gradient w.r.t. the logits: dx[n, c, i] = g * (softmax(x)[c] - ls/C - (1-ls) [c == t]), zero for
// an ignored target; g = dy[r] (none), dy[0] / (targets not ignored) (mean), dy[0] (sum). One block per
// row; the mean's count is one block first, into scratch[0].
template <class I>
__global__ void count_targets_kernel(float* count, const I* target, int64_t n, int64_t ignore_index) {
    __shared__ float red[32];
    float k = 0.f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) k += static_cast<int64_t>(target[j]) != ignore_index ? 1.f : 0.f;
    k = block_sum(k, red);
    if (threadIdx.x == 0) count[0] = k;
}
template <class I>
__global__ void cross_entropy_backward_kernel(float* dx, const float* dy, const float* count, const float* logits, const I* target,
                                              int64_t C, int64_t inner, int64_t ignore_index, float ls, int reduction) {
    __shared__ float red[32];
    const int64_t r = blockIdx.x, n = r / inner, i = r % inner;
    const float* x = logits + n * C * inner + i;
    float* d = dx + n * C * inner + i;
    const int64_t t = static_cast<int64_t>(target[r]);
    if (t == ignore_index || t < 0 || t >= C) {  // out of range: the forward pass reported it
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) d[c * inner] = t == ignore_index ? 0.f : NAN;
        return;
    }
    const float g = reduction == 0 ? dy[r] : reduction == 1 ? dy[0] / count[0] : dy[0];
    float m = -INFINITY;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) m = fmaxf(m, x[c * inner]);
    m = block_max(m, red);
    float s = 0.f;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s += expf(x[c * inner] - m);
    s = block_sum(s, red);
    const float inv = 1.f / s, off = ls / static_cast<float>(C);
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
        d[c * inner] = g * (expf(x[c * inner] - m) * inv - off - (c == t ? 1.f - ls : 0.f));
}
template <class I>
void cross_entropy_backward(const Device& dev, float* dx, const float* dy, const float* logits, const I* target, float* scratch,
                            int64_t N, int64_t C, int64_t inner, int64_t ignore_index, double label_smoothing, int reduction,
                            const char* layer) {
    const int64_t rows = N * inner;
    if (rows <= 0) return;
    if (reduction == 1) {
        MITHRIL_CUDA_LAUNCH(1, 1024, 0, stream_of(dev), count_targets_kernel<I>)(scratch, target, rows, ignore_index);
        Device::check_launch(layer);
    }
    MITHRIL_CUDA_LAUNCH(static_cast<unsigned>(rows), kThreads, 0, stream_of(dev), cross_entropy_backward_kernel<I>)(
        dx, dy, scratch, logits, target, C, inner, ignore_index, static_cast<float>(label_smoothing), reduction);
    Device::check_launch(layer);
}

// ---- softmax and log-softmax over the last axis, backward: one block per row ---------------------
// softmax: dx = y (g - sum(g y)); log-softmax: dx = g - exp(y) sum(g).
template <bool Log>
__global__ void softmax_backward_kernel(float* dx, const float* dy, const float* y, int64_t cols) {
    __shared__ float red[32];
    const float* g = dy + blockIdx.x * cols;
    const float* yr = y + blockIdx.x * cols;
    float* d = dx + blockIdx.x * cols;
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += Log ? g[j] : g[j] * yr[j];
    s = block_sum(s, red);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) d[j] = Log ? g[j] - expf(yr[j]) * s : yr[j] * (g[j] - s);
}
template <bool Log>
void softmax_backward(const Device& dev, float* dx, const float* dy, const float* y, int64_t rows, int64_t cols, const char* layer) {
    if (rows <= 0 || cols <= 0) return;
    MITHRIL_CUDA_LAUNCH(static_cast<unsigned>(rows), kThreads, 0, stream_of(dev), softmax_backward_kernel<Log>)(dx, dy, y, cols);
    Device::check_launch(layer);
}

// ---- layer norm backward over rows of `cols`: dx one block per row (the row's mean and rstd kept in
// stats [2 * rows]), then dweight / dbias one thread per column over the rows -----------------------
__global__ inline void layer_norm_backward_rows_kernel(float* dx, float* stats, const float* dy, const float* x, const float* weight,
                                                       int64_t cols, float eps) {
    __shared__ float red[32];
    const float* xr = x + blockIdx.x * cols;
    const float* g = dy + blockIdx.x * cols;
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += xr[j];
    const float mean = block_sum(s, red) / static_cast<float>(cols);
    float q = 0.f;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) q += (xr[j] - mean) * (xr[j] - mean);
    const float rstd = rsqrtf(block_sum(q, red) / static_cast<float>(cols) + eps);
    if (threadIdx.x == 0) {
        stats[2 * blockIdx.x] = mean;
        stats[2 * blockIdx.x + 1] = rstd;
    }
    if (!dx) return;
    float a = 0.f, b = 0.f;  // mean of g w and of g w xhat
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
        const float gw = g[j] * (weight ? weight[j] : 1.f);
        a += gw;
        b += gw * (xr[j] - mean) * rstd;
    }
    a = block_sum(a, red) / static_cast<float>(cols);
    b = block_sum(b, red) / static_cast<float>(cols);
    float* d = dx + blockIdx.x * cols;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
        const float gw = g[j] * (weight ? weight[j] : 1.f), xhat = (xr[j] - mean) * rstd;
        d[j] = rstd * (gw - a - xhat * b);
    }
}
inline void layer_norm_backward(const Device& dev, float* dx, float* dweight, float* dbias, const float* dy, const float* x,
                                const float* weight, int64_t rows, int64_t cols, double eps, float* stats, const char* layer) {
    if (cols <= 0) return;
    if (rows > 0) {
        MITHRIL_CUDA_LAUNCH(static_cast<unsigned>(rows), kThreads, 0, stream_of(dev), layer_norm_backward_rows_kernel)(
            dx, stats, dy, x, weight, cols, static_cast<float>(eps));
        Device::check_launch(layer);
    }
    if (!dweight && !dbias) return;
    for_each(
        dev, cols,
        [=] __device__(int64_t j) {
            float sw = 0.f, sb = 0.f;
            for (int64_t r = 0; r < rows; ++r) {
                const float g = dy[r * cols + j];
                sw += g * (x[r * cols + j] - stats[2 * r]) * stats[2 * r + 1];
                sb += g;
            }
            if (dweight) dweight[j] = sw;
            if (dbias) dbias[j] = sb;
        },
        layer);
}

// ---- group norm over [N, C, HW] with G groups: one block per (sample, group), whose Cg * HW values
// are contiguous; stats (2 * N * G floats, or null) keep each group's mean and rstd -----------------
__global__ inline void group_norm_kernel(float* y, float* stats, const float* x, const float* weight, const float* bias, int64_t C,
                                         int64_t HW, int64_t groups, float eps) {
    __shared__ float red[32];
    const int64_t ng = blockIdx.x, g = ng % groups, Cg = C / groups, count = Cg * HW;
    const float* xg = x + ng * count;
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < count; j += blockDim.x) s += xg[j];
    const float mean = block_sum(s, red) / static_cast<float>(count);
    float q = 0.f;
    for (int64_t j = threadIdx.x; j < count; j += blockDim.x) q += (xg[j] - mean) * (xg[j] - mean);
    const float rstd = rsqrtf(block_sum(q, red) / static_cast<float>(count) + eps);
    if (y)
        for (int64_t j = threadIdx.x; j < count; j += blockDim.x) {
            const int64_t c = g * Cg + j / HW;
            y[ng * count + j] = (xg[j] - mean) * rstd * (weight ? weight[c] : 1.f) + (bias ? bias[c] : 0.f);
        }
    if (threadIdx.x == 0 && stats) {
        stats[2 * ng] = mean;
        stats[2 * ng + 1] = rstd;
    }
}
inline void group_norm(const Device& dev, float* y, const float* x, const float* weight, const float* bias, int64_t N, int64_t C, int64_t HW,
                       int64_t groups, double eps, const char* layer) {
    if (N * groups <= 0) return;
    MITHRIL_CUDA_LAUNCH(static_cast<unsigned>(N * groups), kThreads, 0, stream_of(dev), group_norm_kernel)(
        y, nullptr, x, weight, bias, C, HW, groups, static_cast<float>(eps));
    Device::check_launch(layer);
}
// Its backward: per group dx = rstd (gw - mean(gw) - xhat mean(gw xhat)) with gw = dy weight[c] (one
// block per group, after the statistics again); dweight[c] = sum dy xhat and dbias[c] = sum dy over
// the samples and positions (one block per channel).
__global__ inline void group_norm_backward_kernel(float* dx, const float* stats, const float* dy, const float* x, const float* weight,
                                                  int64_t C, int64_t HW, int64_t groups) {
    __shared__ float red[32];
    const int64_t ng = blockIdx.x, g = ng % groups, Cg = C / groups, count = Cg * HW;
    const float mean = stats[2 * ng], rstd = stats[2 * ng + 1];
    const float* xg = x + ng * count;
    const float* gg = dy + ng * count;
    float a = 0.f, b = 0.f;
    for (int64_t j = threadIdx.x; j < count; j += blockDim.x) {
        const float gw = gg[j] * (weight ? weight[g * Cg + j / HW] : 1.f);
        a += gw;
        b += gw * (xg[j] - mean) * rstd;
    }
    a = block_sum(a, red) / static_cast<float>(count);
    b = block_sum(b, red) / static_cast<float>(count);
    for (int64_t j = threadIdx.x; j < count; j += blockDim.x) {
        const float gw = gg[j] * (weight ? weight[g * Cg + j / HW] : 1.f);
        dx[ng * count + j] = rstd * (gw - a - (xg[j] - mean) * rstd * b);
    }
}
__global__ inline void group_norm_param_grads_kernel(float* dweight, float* dbias, const float* stats, const float* dy, const float* x,
                                                     int64_t N, int64_t C, int64_t HW, int64_t groups) {
    __shared__ float red[32];
    const int64_t c = blockIdx.x, g = c / (C / groups);
    float sw = 0.f, sb = 0.f;
    for (int64_t k = threadIdx.x; k < N * HW; k += blockDim.x) {
        const int64_t n = k / HW, at = (n * C + c) * HW + k % HW, ng = n * groups + g;
        sw += dy[at] * (x[at] - stats[2 * ng]) * stats[2 * ng + 1];
        sb += dy[at];
    }
    sw = block_sum(sw, red);
    sb = block_sum(sb, red);
    if (threadIdx.x == 0) {
        if (dweight) dweight[c] = sw;
        if (dbias) dbias[c] = sb;
    }
}
inline void group_norm_backward(const Device& dev, float* dx, float* dweight, float* dbias, const float* dy, const float* x,
                                const float* weight, int64_t N, int64_t C, int64_t HW, int64_t groups, double eps, float* stats,
                                const char* layer) {
    if (N * groups <= 0) return;
    MITHRIL_CUDA_LAUNCH(static_cast<unsigned>(N * groups), kThreads, 0, stream_of(dev), group_norm_kernel)(
        nullptr, stats, x, nullptr, nullptr, C, HW, groups, static_cast<float>(eps));
    Device::check_launch(layer);
    if (dx) {
        MITHRIL_CUDA_LAUNCH(static_cast<unsigned>(N * groups), kThreads, 0, stream_of(dev), group_norm_backward_kernel)(
            dx, stats, dy, x, weight, C, HW, groups);
        Device::check_launch(layer);
    }
    if ((dweight || dbias) && C > 0) {
        MITHRIL_CUDA_LAUNCH(static_cast<unsigned>(C), kThreads, 0, stream_of(dev), group_norm_param_grads_kernel)(
            dweight, dbias, stats, dy, x, N, C, HW, groups);
        Device::check_launch(layer);
    }
}

// ---- batch norm backward in evaluation (the running statistics are constants) --------------------
// dx = dy * weight / sqrt(var + eps) per element; dweight, dbias: one block per channel over N * HW.
__global__ inline void batch_norm_param_grads_kernel(float* dweight, float* dbias, const float* dy, const float* x, const float* mean,
                                                     const float* var, int64_t N, int64_t C, int64_t HW, float eps) {
    __shared__ float red[32];
    const int64_t c = blockIdx.x;
    float sb = 0.f, sw = 0.f;
    for (int64_t k = threadIdx.x; k < N * HW; k += blockDim.x) {
        const int64_t at = (k / HW * C + c) * HW + k % HW;
        sb += dy[at];
        sw += dy[at] * (x[at] - mean[c]);
    }
    sb = block_sum(sb, red);
    sw = block_sum(sw, red);
    if (threadIdx.x == 0) {
        if (dweight) dweight[c] = sw * rsqrtf(var[c] + eps);
        if (dbias) dbias[c] = sb;
    }
}
inline void batch_norm_inference_backward(const Device& dev, float* dx, float* dweight, float* dbias, const float* dy,
                                          const float* x, const float* mean, const float* var, const float* weight, int64_t N,
                                          int64_t C, int64_t HW, double eps, const char* layer) {
    const float e = static_cast<float>(eps);
    if (dx)
        for_each(
            dev, N * C * HW,
            [=] __device__(int64_t i) {
                const int64_t c = i / HW % C;
                dx[i] = dy[i] * (weight ? weight[c] : 1.f) * rsqrtf(var[c] + e);
            },
            layer);
    if ((dweight || dbias) && C > 0) {
        MITHRIL_CUDA_LAUNCH(static_cast<unsigned>(C), kThreads, 0, stream_of(dev), batch_norm_param_grads_kernel)(
            dweight, dbias, dy, x, mean, var, N, C, HW, e);
        Device::check_launch(layer);
    }
}

// ---- embedding: the table's gradient, rows of dy added up by index (atomics: the order of the
// additions, and so the last bits, may change from run to run) -------------------------------------
template <class I>
void embedding_backward(const Device& dev, float* dweight, const float* accumulate, const float* dy, const I* index, int64_t n,
                        int64_t dim, int64_t rows, int64_t padding_idx, const char* layer) {
    if (accumulate)
        copy(dev, dweight, accumulate, static_cast<std::size_t>(rows * dim) * sizeof(float), layer);
    else
        zero(dev, dweight, static_cast<std::size_t>(rows * dim) * sizeof(float), layer);
    for_each(
        dev, n * dim,
        [=] __device__(int64_t i) {
            const int64_t r = static_cast<int64_t>(index[i / dim]);
            if (r < 0 || r >= rows || r == padding_idx) return;  // out of range: the forward pass reported it
            atomicAdd(dweight + r * dim + i % dim, dy[i]);
        },
        layer);
}

// ---- attention backward: never a [L, S] buffer ---------------------------------------------------
// Pass 1, one block per query row (b, i): the probabilities p_j again, dp_j = dO_i . v_j,
// D_i = sum_j p_j dp_j, dq_i = scale sum_j p_j (dp_j - D_i) k_j; keeps lse_i and D_i (stats [2 B L]).
// Pass 2, one block per key row (b, j): p_ij = exp(scale q_i . k_j - lse_i), dv_j = sum_i p_ij dO_i,
// dk_j = scale sum_i p_ij (dO_i . v_j - D_i) q_i. Both keep a row of floats in shared memory (S or L
// of them: attention_max_keys() / 2 each, as two rows are kept in pass 2).
__global__ inline void attention_backward_rows_kernel(float* dq, float* stats, const float* dout, const float* q, const float* k,
                                                      const float* v, const std::uint8_t* mask, int64_t L, int64_t S, int64_t E,
                                                      int64_t Ev, float scale, bool causal) {
    MITHRIL_CUDA_DYNAMIC_SHARED(float, p);
    __shared__ float red[32];
    const int64_t b = blockIdx.x / L, i = blockIdx.x % L;
    const float* qi = q + (b * L + i) * E;
    const float* gi = dout + (b * L + i) * Ev;
    const float* kb = k + b * S * E;
    const float* vb = v + b * S * Ev;
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < S; j += blockDim.x) {
        float s = -INFINITY;
        if (!(causal && j > i) && !(mask && !mask[i * S + j])) {
            s = 0.f;
            for (int64_t e = 0; e < E; ++e) s += qi[e] * kb[j * E + e];
            s *= scale;
        }
        p[j] = s;
        m = fmaxf(m, s);
    }
    m = block_max(m, red);
    float* dqi = dq ? dq + (b * L + i) * E : nullptr;
    if (m == -INFINITY) {  // every key masked: the output was zeros, nothing flows back
        if (dqi)
            for (int64_t e = threadIdx.x; e < E; e += blockDim.x) dqi[e] = 0.f;
        if (threadIdx.x == 0) {
            stats[2 * blockIdx.x] = INFINITY;  // exp(s - inf) = 0 in pass 2
            stats[2 * blockIdx.x + 1] = 0.f;
        }
        return;
    }
    float sum = 0.f;
    for (int64_t j = threadIdx.x; j < S; j += blockDim.x) {
        p[j] = expf(p[j] - m);
        sum += p[j];
    }
    sum = block_sum(sum, red);
    const float inv = 1.f / sum;
    float dsum = 0.f;
    for (int64_t j = threadIdx.x; j < S; j += blockDim.x) {
        float dp = 0.f;
        for (int64_t e = 0; e < Ev; ++e) dp += gi[e] * vb[j * Ev + e];
        p[j] *= inv;
        dsum += p[j] * dp;
    }
    const float D = block_sum(dsum, red);
    if (threadIdx.x == 0) {
        stats[2 * blockIdx.x] = m + logf(sum);
        stats[2 * blockIdx.x + 1] = D;
    }
    if (!dqi) return;
    for (int64_t j = threadIdx.x; j < S; j += blockDim.x) {  // the same j as above: p[j] is this thread's
        float dp = 0.f;
        for (int64_t e = 0; e < Ev; ++e) dp += gi[e] * vb[j * Ev + e];
        p[j] *= dp - D;  // ds_j = p_j (dp_j - D)
    }
    __syncthreads();
    for (int64_t e = threadIdx.x; e < E; e += blockDim.x) {
        float acc = 0.f;
        for (int64_t j = 0; j < S; ++j) acc += p[j] * kb[j * E + e];
        dqi[e] = acc * scale;
    }
}
__global__ inline void attention_backward_keys_kernel(float* dk, float* dv, const float* stats, const float* dout, const float* q,
                                                      const float* k, const float* v, const std::uint8_t* mask, int64_t L, int64_t S,
                                                      int64_t E, int64_t Ev, float scale, bool causal) {
    MITHRIL_CUDA_DYNAMIC_SHARED(float, row);
    float* p = row;       // p_ij over i
    float* ds = row + L;  // p_ij (dp_ij - D_i) over i
    const int64_t b = blockIdx.x / S, j = blockIdx.x % S;
    const float* kj = k + (b * S + j) * E;
    const float* vj = v + (b * S + j) * Ev;
    const float* qb = q + b * L * E;
    const float* gb = dout + b * L * Ev;
    const float* st = stats + 2 * b * L;
    for (int64_t i = threadIdx.x; i < L; i += blockDim.x) {
        float pij = 0.f, dp = 0.f;
        if (!(causal && j > i) && !(mask && !mask[i * S + j])) {
            float s = 0.f;
            for (int64_t e = 0; e < E; ++e) s += qb[i * E + e] * kj[e];
            pij = expf(s * scale - st[2 * i]);
            for (int64_t e = 0; e < Ev; ++e) dp += gb[i * Ev + e] * vj[e];
        }
        p[i] = pij;
        ds[i] = pij * (dp - st[2 * i + 1]);
    }
    __syncthreads();
    if (dv)
        for (int64_t e = threadIdx.x; e < Ev; e += blockDim.x) {
            float acc = 0.f;
            for (int64_t i = 0; i < L; ++i) acc += p[i] * gb[i * Ev + e];
            dv[(b * S + j) * Ev + e] = acc;
        }
    if (dk)
        for (int64_t e = threadIdx.x; e < E; e += blockDim.x) {
            float acc = 0.f;
            for (int64_t i = 0; i < L; ++i) acc += ds[i] * qb[i * E + e];
            dk[(b * S + j) * E + e] = acc * scale;
        }
}
// stats: 2 * batch * L floats.
inline void attention_backward(const Device& dev, float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                               const float* v, const std::uint8_t* mask, int64_t batch, int64_t L, int64_t S, int64_t E, int64_t Ev,
                               double scale, bool causal, float* stats, const char* layer) {
    if (batch <= 0) return;
    if (S > attention_max_keys() || L > attention_max_keys() / 2)
        throw Error(std::string(layer) + ": the backward pass of attention over " + std::to_string(L) + " queries and " +
                    std::to_string(S) + " keys; the CUDA target's kernels take at most " + std::to_string(attention_max_keys() / 2) +
                    " queries and " + std::to_string(attention_max_keys()) + " keys");
    const float sc = static_cast<float>(scale);
    if (L > 0) {
        MITHRIL_CUDA_LAUNCH(static_cast<unsigned>(batch * L), kThreads, static_cast<std::size_t>(S > 0 ? S : 1) * sizeof(float),
                            stream_of(dev), attention_backward_rows_kernel)(dq, stats, dout, q, k, v, mask, L, S, E, Ev, sc, causal);
        Device::check_launch(layer);
    }
    if ((dk || dv) && S > 0) {
        MITHRIL_CUDA_LAUNCH(static_cast<unsigned>(batch * S), kThreads, static_cast<std::size_t>(2 * (L > 0 ? L : 1)) * sizeof(float),
                            stream_of(dev), attention_backward_keys_kernel)(dk, dv, stats, dout, q, k, v, mask, L, S, E, Ev, sc, causal);
        Device::check_launch(layer);
    }
}

// ---- convolution backward (NCHW, every geometry), direct ----------------------------------------
// dx: one thread per input element, gathering the outputs whose windows read it.
inline void conv2d_grad_input(const Device& dev, float* dx, const float* dy, const float* w, const k::Conv2dGeom& g, const char* layer) {
    const k::Conv2dGeom c = g;
    const int64_t Cg = c.c_in / c.groups, Kg = c.c_out / c.groups, HW = c.h * c.w;
    for_each(
        dev, c.n * c.c_in * HW,
        [=] __device__(int64_t i) {
            const int64_t iw = i % c.w, ih = i / c.w % c.h, ci = i / HW % c.c_in, n = i / (HW * c.c_in);
            const int64_t grp = ci / Cg, cg = ci % Cg;
            float acc = 0.f;
            for (int64_t kh = 0; kh < c.kernel_h; ++kh) {
                const int64_t th = ih + c.pad_h - kh * c.dil_h;
                if (th < 0 || th % c.stride_h) continue;
                const int64_t oh = th / c.stride_h;
                if (oh >= c.out_h) continue;
                for (int64_t kw = 0; kw < c.kernel_w; ++kw) {
                    const int64_t tw = iw + c.pad_w - kw * c.dil_w;
                    if (tw < 0 || tw % c.stride_w) continue;
                    const int64_t ow = tw / c.stride_w;
                    if (ow >= c.out_w) continue;
                    for (int64_t kk = 0; kk < Kg; ++kk) {
                        const int64_t ko = grp * Kg + kk;
                        acc += dy[((n * c.c_out + ko) * c.out_h + oh) * c.out_w + ow] *
                               w[((ko * Cg + cg) * c.kernel_h + kh) * c.kernel_w + kw];
                    }
                }
            }
            dx[i] = acc;
        },
        layer);
}
// dW: one block per weight element, reducing over the images and output positions.
__global__ inline void conv2d_grad_weight_kernel(float* dw, const float* dy, const float* x, k::Conv2dGeom c) {
    __shared__ float red[32];
    const int64_t Cg = c.c_in / c.groups, Kg = c.c_out / c.groups, P = c.out_h * c.out_w;
    const int64_t at = blockIdx.x, kw = at % c.kernel_w, kh = at / c.kernel_w % c.kernel_h, cg = at / (c.kernel_w * c.kernel_h) % Cg,
                  ko = at / (c.kernel_w * c.kernel_h * Cg);
    const int64_t ci = ko / Kg * Cg + cg;
    float acc = 0.f;
    for (int64_t t = threadIdx.x; t < c.n * P; t += blockDim.x) {
        const int64_t n = t / P, ow = t % c.out_w, oh = t / c.out_w % c.out_h;
        const int64_t ih = oh * c.stride_h - c.pad_h + kh * c.dil_h, iw = ow * c.stride_w - c.pad_w + kw * c.dil_w;
        if (ih < 0 || ih >= c.h || iw < 0 || iw >= c.w) continue;
        acc += dy[(n * c.c_out + ko) * P + oh * c.out_w + ow] * x[((n * c.c_in + ci) * c.h + ih) * c.w + iw];
    }
    acc = block_sum(acc, red);
    if (threadIdx.x == 0) dw[at] = acc;
}
inline void conv2d_grad_weight(const Device& dev, float* dw, const float* dy, const float* x, const k::Conv2dGeom& g, const char* layer) {
    const int64_t count = g.c_out * (g.c_in / g.groups) * g.kernel_h * g.kernel_w;
    if (count <= 0) return;
    MITHRIL_CUDA_LAUNCH(static_cast<unsigned>(count), kThreads, 0, stream_of(dev), conv2d_grad_weight_kernel)(dw, dy, x, g);
    Device::check_launch(layer);
}
// dbias[k] = sum of dy[n, k, :]: one block per channel.
__global__ inline void channel_sums_kernel(float* out, const float* dy, int64_t N, int64_t C, int64_t HW) {
    __shared__ float red[32];
    const int64_t c = blockIdx.x;
    float s = 0.f;
    for (int64_t t = threadIdx.x; t < N * HW; t += blockDim.x) s += dy[(t / HW * C + c) * HW + t % HW];
    s = block_sum(s, red);
    if (threadIdx.x == 0) out[c] = s;
}
inline void conv_grad_bias(const Device& dev, float* db, const float* dy, int64_t N, int64_t C, int64_t HW, const char* layer) {
    if (C <= 0) return;
    MITHRIL_CUDA_LAUNCH(static_cast<unsigned>(C), kThreads, 0, stream_of(dev), channel_sums_kernel)(db, dy, N, C, HW);
    Device::check_launch(layer);
}

// ---- pooling backward: one thread per input element, gathering the windows that cover it ---------
// Max: the gradient goes to each window's first maximum (NaN wins), as the forward pass picked it.
inline void max_pool2d_backward(const Device& dev, float* dx, const float* dy, const float* x, const k::Pool2dGeom& g,
                                const char* layer) {
    const k::Pool2dGeom c = g;
    for_each(
        dev, c.n * c.c * c.h * c.w,
        [=] __device__(int64_t i) {
            const int64_t iw = i % c.w, ih = i / c.w % c.h, pl = i / (c.h * c.w);
            const float* xp = x + pl * c.h * c.w;
            float acc = 0.f;
            for (int64_t oh = 0; oh < c.out_h; ++oh) {
                const int64_t h0 = oh * c.stride_h - c.pad_h;
                if (ih < h0 || ih > h0 + (c.kernel_h - 1) * c.dil_h || (ih - h0) % c.dil_h) continue;
                for (int64_t ow = 0; ow < c.out_w; ++ow) {
                    const int64_t w0 = ow * c.stride_w - c.pad_w;
                    if (iw < w0 || iw > w0 + (c.kernel_w - 1) * c.dil_w || (iw - w0) % c.dil_w) continue;
                    // This window's first maximum, as max_pool2d chose it.
                    float best = -INFINITY;
                    int64_t at = -1;
                    for (int64_t kh = 0; kh < c.kernel_h; ++kh) {
                        const int64_t hh = h0 + kh * c.dil_h;
                        if (hh < 0 || hh >= c.h) continue;
                        for (int64_t kw = 0; kw < c.kernel_w; ++kw) {
                            const int64_t ww = w0 + kw * c.dil_w;
                            if (ww < 0 || ww >= c.w) continue;
                            const float v = xp[hh * c.w + ww];
                            if (at < 0) at = hh * c.w + ww;  // the first element when none is above -inf
                            if ((v > best || v != v) && best == best) {
                                best = v;
                                at = hh * c.w + ww;
                            }
                        }
                    }
                    if (at == ih * c.w + iw) acc += dy[(pl * c.out_h + oh) * c.out_w + ow];
                }
            }
            dx[i] = acc;
        },
        layer);
}
// Average: each covering window's gradient divided by its divisor (as avg_pool2d).
inline void avg_pool2d_backward(const Device& dev, float* dx, const float* dy, const k::Pool2dGeom& g, const char* layer) {
    const k::Pool2dGeom c = g;
    for_each(
        dev, c.n * c.c * c.h * c.w,
        [=] __device__(int64_t i) {
            const int64_t iw = i % c.w, ih = i / c.w % c.h, pl = i / (c.h * c.w);
            float acc = 0.f;
            for (int64_t oh = 0; oh < c.out_h; ++oh) {
                int64_t h0 = oh * c.stride_h - c.pad_h, h1 = h0 + c.kernel_h < c.h + c.pad_h ? h0 + c.kernel_h : c.h + c.pad_h;
                if (ih < h0 || ih >= h1) continue;
                for (int64_t ow = 0; ow < c.out_w; ++ow) {
                    int64_t w0 = ow * c.stride_w - c.pad_w, w1 = w0 + c.kernel_w < c.w + c.pad_w ? w0 + c.kernel_w : c.w + c.pad_w;
                    if (iw < w0 || iw >= w1) continue;
                    const int64_t pool = (h1 - h0) * (w1 - w0);
                    const int64_t hh0 = h0 < 0 ? 0 : h0, ww0 = w0 < 0 ? 0 : w0, hh1 = h1 > c.h ? c.h : h1, ww1 = w1 > c.w ? c.w : w1;
                    const int64_t div = c.divisor_override > 0 ? c.divisor_override
                                        : c.count_include_pad     ? pool
                                                                  : (hh1 - hh0) * (ww1 - ww0);
                    acc += dy[(pl * c.out_h + oh) * c.out_w + ow] / static_cast<float>(div);
                }
            }
            dx[i] = acc;
        },
        layer);
}

}  // namespace mithril::rt::cuda
