// What the CPU target's plan needs to know of the runtime's convolution kernels
// (runtime/include/mithril/rt/kernels/conv.h, conv_nhwc.h, gemm.h), stated by the
// compiler: the working memory ("scratch") each kernel asks for, which variant
// applies to a shape (Winograd, channels-last depthwise or pointwise, direct,
// polyphase, im2col per image or per group of images), and the size of packed
// weights. The compiler never includes the runtime's headers, so its plan does
// not depend on the kernels of the machine it runs on; these formulas are written
// from the kernels' definitions, and tests/runtime/test_cpu_kernel_facts.cpp
// proves them equal to the runtime's for many shapes, every path included. A
// change to a kernel's plan or scratch changes both places (that test fails
// until they agree).
//
// Every quantity here is the same on every machine, except the packed sizes,
// which follow the generated program's vector width (the build's -march): the
// compiler takes those as C++ expressions the generated code evaluates, and
// estimates them (`mithril check`) at the widest width, kWidestVector.
//
// Header only, on purpose: it needs nothing of the compiler, so the runtime's
// tests include it beside the runtime's headers.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace mithril::cpu_kernels {

// The conv kernels' algorithm choice (rt::k::ConvAlgo). PerImage: one im2col + gemm per image
// and group (the choice when sizes are known at run time only). Auto: per the plan below.
enum class ConvAlgo { PerImage, Auto };

// How a convolution's gemms are cut (rt::k::ConvPlan): `images` is the number of scratch slots
// (Images) or images per gemm (Batched).
struct ConvPlan {
  enum Mode { PerImage, Images, Batched } mode;
  int64_t images;
};

inline constexpr int64_t kConvSmallGemm = int64_t{1} << 18;
inline constexpr int64_t kConvSlotElems = int64_t{1} << 18;
inline constexpr int64_t kConvImageSlots = 16;
inline constexpr int64_t kConvGemmColumns = 512;
inline constexpr int64_t kConvGroupMacs = int64_t{1} << 20;
inline constexpr int64_t kConvDirectRows = 1024;
inline constexpr int64_t kConvPolyphaseWidth = 64;
inline constexpr int64_t kWinogradChannels = 16;
inline constexpr int64_t kWinogradTiles = 256;
inline constexpr int64_t kWinograd4Min = 8;
// Floats gemm_rows may read past the end of a row (rt::k::gemm_row_slack).
inline constexpr int64_t kGemmRowSlack = 64;
// The widest vector (floats) a generated program's GEMM kernel uses (AVX-512).
inline constexpr int kWidestVector = 16;

// The plan for N images whose per-image gemm is M x Nd x Kd (rt::k::conv_plan).
inline ConvPlan conv_plan(ConvAlgo algo, int64_t N, int64_t M, int64_t Nd, int64_t Kd, int64_t P, int64_t col_elems) {
  if (algo == ConvAlgo::PerImage || N <= 1 || M <= 0 || Nd <= 0 || Kd <= 0 || P <= 0) return {ConvPlan::PerImage, 1};
  const double mnk = static_cast<double>(M) * static_cast<double>(Nd) * static_cast<double>(Kd);
  if (mnk <= static_cast<double>(kConvSmallGemm) && col_elems <= kConvSlotElems)
    return {ConvPlan::Images, std::min(N, kConvImageSlots)};
  const int64_t nb = std::min(N, (kConvGemmColumns + P - 1) / P);
  if (nb > 1) return {ConvPlan::Batched, nb};
  return {ConvPlan::PerImage, 1};
}

// Images per gemm of the Images mode through im2col (rt::k::conv_group).
inline int64_t conv_group(const ConvPlan& plan, int64_t N, int64_t M, int64_t Nd, int64_t Kd, int64_t col_elems,
                          int64_t res_elems) {
  if (plan.mode != ConvPlan::Images) return 1;
  const int64_t mnk = std::max<int64_t>(M * Nd * Kd, 1), per = std::max<int64_t>(col_elems + res_elems, 1);
  const int64_t by_work = (kConvGroupMacs + mnk - 1) / mnk, by_memory = std::max<int64_t>(kConvSlotElems / per, 1);
  return std::max<int64_t>(1, std::min({by_work, by_memory, N / 2 + N % 2}));
}

// The direct path (rt::k::conv_direct) and one image's slot of it (conv_direct_slot).
inline bool conv_direct(const ConvPlan& plan, int64_t stride_h, int64_t stride_w, int64_t R) {
  return plan.mode == ConvPlan::Images && stride_h == 1 && stride_w == 1 && R > 0 && R <= kConvDirectRows;
}
inline int64_t conv_direct_slot(int64_t C, int64_t Hp, int64_t Wp, int64_t Kg, int64_t OH, int64_t OW) {
  return C * Hp * Wp + kGemmRowSlack + Kg * ((OH - 1) * Wp + OW);
}

// The polyphase path of strided convolutions with wide outputs (rt::k::conv_polyphase) and its
// phases' size (conv_polyphase_scratch).
inline bool conv_polyphase(const ConvPlan& plan, int64_t KH, int64_t KW, int64_t stride_h, int64_t stride_w,
                           int64_t dil_h, int64_t dil_w, int64_t groups, int64_t R, int64_t OW) {
  return plan.mode == ConvPlan::PerImage && (stride_h > 1 || stride_w > 1) && dil_h == 1 && dil_w == 1 && groups == 1 &&
         KH * KW > 1 && R <= kConvDirectRows && OW >= kConvPolyphaseWidth;
}
inline int64_t conv_polyphase_scratch(int64_t C, int64_t H, int64_t W, int64_t pad_h, int64_t pad_w, int64_t stride_h,
                                      int64_t stride_w) {
  const int64_t Hq = (H + 2 * pad_h + stride_h - 1) / stride_h, Wq = (W + 2 * pad_w + stride_w - 1) / stride_w;
  return C * stride_h * stride_w * Hq * Wq + kGemmRowSlack;
}

// 1x1, stride 1, no padding: the columns are the image itself (rt::k::detail::conv_is_pointwise).
inline bool conv_is_pointwise(int64_t KH, int64_t KW, int64_t stride_h, int64_t stride_w, int64_t pad_h,
                              int64_t pad_w) {
  return KH == 1 && KW == 1 && stride_h == 1 && stride_w == 1 && pad_h == 0 && pad_w == 0;
}

// The plan of conv2d (rt::k::detail::conv2d_plan).
inline ConvPlan conv2d_plan(ConvAlgo algo, int64_t N, int64_t C, int64_t K, int64_t KH, int64_t KW, int64_t groups,
                            int64_t P) {
  const int64_t R = C / groups * KH * KW;
  return conv_plan(algo, N, K / groups, P, R, P, R * P);
}

// ---- Winograd (rt::k::detail::winograd_*) ----------------------------------
inline bool winograd_shape(int64_t N, int64_t C, int64_t K, int64_t KH, int64_t KW, int64_t stride_h, int64_t stride_w,
                           int64_t dil_h, int64_t dil_w, int64_t groups, int64_t OH, int64_t OW) {
  return KH == 3 && KW == 3 && stride_h == 1 && stride_w == 1 && dil_h == 1 && dil_w == 1 && groups == 1 &&
         C >= kWinogradChannels && K >= kWinogradChannels && N > 0 && OH > 0 && OW > 0;
}
// Output tile side of the forward Winograd path: 4 or 2.
constexpr int64_t winograd_tile(int64_t OH, int64_t OW) { return OH >= kWinograd4Min && OW >= kWinograd4Min ? 4 : 2; }
// Images per chunk of the Winograd path, or 0 when it does not apply.
inline int64_t winograd_images(ConvAlgo algo, int64_t N, int64_t C, int64_t K, int64_t KH, int64_t KW,
                               int64_t stride_h, int64_t stride_w, int64_t dil_h, int64_t dil_w, int64_t groups,
                               int64_t OH, int64_t OW, int64_t tile = 2) {
  if (algo != ConvAlgo::Auto || !winograd_shape(N, C, K, KH, KW, stride_h, stride_w, dil_h, dil_w, groups, OH, OW))
    return 0;
  const int64_t tiles = ((OH + tile - 1) / tile) * ((OW + tile - 1) / tile);
  if (N < (kWinogradTiles + tiles - 1) / tiles) return 0;
  return std::min(N, std::max<int64_t>(1, (kWinogradTiles + tiles - 1) / tiles));
}
inline size_t winograd_scratch(int64_t C, int64_t K, int64_t nb, int64_t OH, int64_t OW, int64_t tile = 2) {
  const int64_t tiles = ((OH + tile - 1) / tile) * ((OW + tile - 1) / tile), a2 = (tile + 2) * (tile + 2);
  return static_cast<size_t>(a2 * (K * C + (C + K) * nb * tiles));
}
// Whether conv2d takes the Winograd transform of its weights made once (the plan's packed copy):
// Winograd suits the shape but the batch has too few tiles to transform them on every call.
inline bool winograd_packs(int64_t N, int64_t C, int64_t K, int64_t KH, int64_t KW, int64_t stride_h, int64_t stride_w,
                           int64_t dil_h, int64_t dil_w, int64_t groups, int64_t OH, int64_t OW) {
  return winograd_shape(N, C, K, KH, KW, stride_h, stride_w, dil_h, dil_w, groups, OH, OW) &&
         winograd_images(ConvAlgo::Auto, N, C, K, KH, KW, stride_h, stride_w, dil_h, dil_w, groups, OH, OW,
                         winograd_tile(OH, OW)) == 0;
}

// ---- scratch of the channels-first kernels ---------------------------------

// conv2d's scratch for an input of H x W (rt::k::detail::conv2d_scratch_sized).
inline size_t conv2d_scratch_sized(int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride_h,
                                   int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t groups, int64_t OH,
                                   int64_t OW, int64_t N, int64_t K, ConvAlgo algo, int64_t dil_h, int64_t dil_w) {
  const int64_t tile = winograd_tile(OH, OW);
  if (const int64_t nb = winograd_images(algo, N, C, K, KH, KW, stride_h, stride_w, dil_h, dil_w, groups, OH, OW, tile))
    return winograd_scratch(C, K, nb, OH, OW, tile);
  size_t packed = 0;  // with packed weights Winograd runs on the whole batch (V and M only)
  if (algo == ConvAlgo::Auto && winograd_packs(N, C, K, KH, KW, stride_h, stride_w, dil_h, dil_w, groups, OH, OW))
    packed = winograd_scratch(C, K, N, OH, OW, tile) - static_cast<size_t>((tile + 2) * (tile + 2) * K * C);
  const bool pointwise = conv_is_pointwise(KH, KW, stride_h, stride_w, pad_h, pad_w) && OH == H && OW == W;
  const int64_t R = C / groups * KH * KW, P = OH * OW;
  const ConvPlan plan = conv2d_plan(algo, N, C, K, KH, KW, groups, P);
  const int64_t direct = conv_direct(plan, stride_h, stride_w, R)
                             ? plan.images * conv_direct_slot(C, H + 2 * pad_h, W + 2 * pad_w, K / groups, OH, OW)
                             : 0;
  size_t own = static_cast<size_t>(std::max(direct, pointwise ? 0 : plan.images * R * P));
  if (plan.mode == ConvPlan::Batched) own = static_cast<size_t>((R + K / groups) * plan.images * P);
  if (algo == ConvAlgo::Auto && conv_polyphase(plan, KH, KW, stride_h, stride_w, dil_h, dil_w, groups, R, OW))
    own = std::max(own, static_cast<size_t>(conv_polyphase_scratch(C, H, W, pad_h, pad_w, stride_h, stride_w)));
  if (const int64_t g = conv_group(plan, N, K / groups, P, R, R * P, K / groups * P); g > 1)
    own = static_cast<size_t>(std::max(direct, plan.images * g * (R + K / groups) * P));
  return std::max(packed, own);
}

// Scratch elements of conv2d (rt::k::conv2d_scratch); conv1d is conv2d with H = KH = 1.
inline size_t conv2d_scratch(int64_t C, int64_t KH, int64_t KW, int64_t stride_h, int64_t stride_w, int64_t pad_h,
                             int64_t pad_w, int64_t groups, int64_t OH, int64_t OW, int64_t N = 1, int64_t K = 0,
                             ConvAlgo algo = ConvAlgo::PerImage, int64_t dil_h = 1, int64_t dil_w = 1) {
  return conv2d_scratch_sized(C, OH, OW, KH, KW, stride_h, stride_w, pad_h, pad_w, groups, OH, OW, N, K, algo, dil_h,
                              dil_w);
}

// Whether conv2d_grad_input runs the flipped kernel forward (rt::k::conv2d_grad_input_flipped).
inline bool conv2d_grad_input_flipped(ConvAlgo algo, int64_t C, int64_t groups, int64_t stride_h, int64_t stride_w,
                                      int64_t H, int64_t W, int64_t OH, int64_t OW) {
  return algo == ConvAlgo::Auto && C / groups >= 16 && stride_h == 1 && stride_w == 1 && H * W <= OH * OW;
}

// Scratch elements of conv2d_grad_input (x N x C x H x W, dy N x K x OH x OW).
inline size_t conv2d_grad_input_scratch(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t KH, int64_t KW,
                                        int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                                        int64_t dil_h, int64_t dil_w, int64_t groups, int64_t OH, int64_t OW,
                                        ConvAlgo algo = ConvAlgo::PerImage) {
  const int64_t Cg = C / groups, Kg = K / groups, R = Cg * KH * KW, P = OH * OW;
  if (conv2d_grad_input_flipped(algo, C, groups, stride_h, stride_w, H, W, OH, OW))
    return static_cast<size_t>(K * R) + conv2d_scratch_sized(K, OH, OW, KH, KW, 1, 1, (KH - 1) * dil_h - pad_h,
                                                             (KW - 1) * dil_w - pad_w, groups, H, W, N, C, algo,
                                                             dil_h, dil_w);
  const ConvPlan plan = conv_plan(algo, N, R, P, Kg, P, R * P);  // rt::k::detail::conv2d_grad_input_plan
  if (plan.mode == ConvPlan::Batched) return static_cast<size_t>((R + Kg) * plan.images * P);
  if (conv_is_pointwise(KH, KW, stride_h, stride_w, pad_h, pad_w) && H == OH && W == OW) return 0;
  return static_cast<size_t>(plan.images * R * P);
}

// Scratch elements of conv_transpose2d_grad_input (a conv2d of dy to the size of x).
inline size_t conv_transpose2d_grad_input_scratch(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t KH,
                                                  int64_t KW, int64_t stride_h, int64_t stride_w, int64_t pad_h,
                                                  int64_t pad_w, int64_t dil_h, int64_t dil_w, int64_t groups,
                                                  int64_t OH, int64_t OW, ConvAlgo algo = ConvAlgo::PerImage) {
  return conv2d_scratch_sized(K, OH, OW, KH, KW, stride_h, stride_w, pad_h, pad_w, groups, H, W, N, C, algo, dil_h,
                              dil_w);
}

// Scratch elements of conv2d_grad_weight (K: dy's channels).
inline size_t conv2d_grad_weight_scratch(int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride_h,
                                         int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t groups, int64_t OH,
                                         int64_t OW, int64_t N = 1, int64_t K = 0, ConvAlgo algo = ConvAlgo::PerImage,
                                         int64_t dil_h = 1, int64_t dil_w = 1) {
  const int64_t R = C / groups * KH * KW, P = OH * OW;
  const bool pointwise = conv_is_pointwise(KH, KW, stride_h, stride_w, pad_h, pad_w) && OH == H && OW == W;
  if (const int64_t nb = winograd_images(algo, N, C, K, KH, KW, stride_h, stride_w, dil_h, dil_w, groups, OH, OW))
    return winograd_scratch(C, K, nb, OH, OW);
  const ConvPlan plan = conv_plan(algo, N, K / groups, R, P, P, R * P);  // rt::k::detail::conv2d_grad_weight_plan
  if (plan.mode == ConvPlan::Batched) return static_cast<size_t>((R + K / groups) * plan.images * P);
  if (plan.mode == ConvPlan::Images) return static_cast<size_t>(plan.images * ((pointwise ? 0 : R * P) + K * R));
  if (pointwise) return 0;
  return static_cast<size_t>(R * P);
}

// ---- channels-last kernels (rt::k::conv2d_nhwc, kernels/conv_nhwc.h) -------
inline bool conv_nhwc_depthwise(int64_t C, int64_t K, int64_t groups) { return groups == C && K == C; }
inline bool conv_nhwc_pointwise(int64_t KH, int64_t KW, int64_t stride_h, int64_t stride_w, int64_t pad_h,
                                int64_t pad_w, int64_t groups) {
  return KH == 1 && KW == 1 && stride_h == 1 && stride_w == 1 && pad_h == 0 && pad_w == 0 && groups == 1;
}
// Whether conv2d_nhwc computes this convolution (the `layout` pass's candidates).
inline bool conv2d_nhwc_supports(int64_t C, int64_t K, int64_t KH, int64_t KW, int64_t stride_h, int64_t stride_w,
                                 int64_t pad_h, int64_t pad_w, int64_t groups) {
  return conv_nhwc_depthwise(C, K, groups) || conv_nhwc_pointwise(KH, KW, stride_h, stride_w, pad_h, pad_w, groups);
}
// Scratch elements of conv2d_nhwc: a depthwise weight as [KH * KW, C].
inline size_t conv2d_nhwc_scratch(int64_t C, int64_t K, int64_t KH, int64_t KW, int64_t groups) {
  return conv_nhwc_depthwise(C, K, groups) ? static_cast<size_t>(KH * KW * C) : 0;
}

// ---- packed weights (rt::k::packed_b_size, winograd_packed_size) -----------
// Floats pack_b writes for a K x N right operand with the GEMM kernel of `vec` floats per vector
// (panels of 2 * vec columns, a last one of at most vec columns one vector wide).
constexpr int64_t packed_b_size(int64_t N, int64_t K, int vec = kWidestVector) {
  if (N <= 0) return 0;
  const int64_t nr = 2 * vec, full = N / nr, rest = N - full * nr;
  return (full * nr + (rest == 0 ? 0 : rest > vec ? nr : vec)) * K;
}
// Floats of winograd_pack's transform of a [K, C, 3, 3] weight for OH x OW outputs.
constexpr int64_t winograd_packed_size(int64_t K, int64_t C, int64_t OH, int64_t OW, int vec = kWidestVector) {
  const int64_t a = winograd_tile(OH, OW) + 2;
  return a * a * packed_b_size(K, C, vec);
}

}  // namespace mithril::cpu_kernels
