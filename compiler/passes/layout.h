// The `layout` pass: channels-first (NCHW) or channels-last (NHWC) per convolution, with the
// transposes between them only where they pay.
//
// Every convolution is channels-first unless this pass moves it. It runs last among the graph
// passes (after fold-batchnorm, fuse-epilogue and fuse-pool, whose epilogues it keeps), in
// programs without gradients, and considers the Conv2d nodes with known channel and spatial
// sizes (the batch may be symbolic) that a channels-last kernel computes
// (rt::k::conv2d_nhwc_supports, kernels/conv_nhwc.h: depthwise, and pointwise 1x1 stride 1) and
// that have no fused pooling.
//
// The choice minimizes an estimate of the time: for each convolution its multiply-adds at the
// rate its kernel reaches in the chosen layout (layout_rate, measured on the benchmark machine and
// listed in docs/passes.md), plus, for each tensor a convolution reads or writes, one transpose
// (read and write of every element, at kTransposeBytesPerNs) when a reader needs the other layout
// than its producer gives (graph inputs, model outputs and every other op are channels-first). It
// starts from all channels-first and, round after round, flips whole chains (convolutions joined
// by tensors one writes and another reads) and then single convolutions while a flip lowers the
// total: a local search, whose chain moves find the layouts whose gain only shows once the
// transposes inside a chain are gone.
//
// The rewrite: a channels-last convolution gets the attribute `layout: NHWC`, reads [N, H, W, C]
// and writes [N, OH, OW, K]; a Permute [0, 2, 3, 1] makes the channels-last copy of a
// channels-first tensor it reads (its input, residual inputs of its epilogue), once per tensor,
// and a Permute [0, 3, 1, 2] (named `<conv>.to_nchw`) gives its output back to the readers that
// need channels-first, only if there are such. Between two channels-last convolutions there is
// none.
#pragma once

#include "ir/graph.h"

namespace mithril {

Graph choose_layouts(Graph g);

// The estimated throughput, in multiply-adds per nanosecond, of a convolution's kernel in one
// layout (`nhwc` or not): `depthwise` (groups == C == K) or `pointwise` (1x1), else generic.
// Exposed for the pass's tests.
double layout_rate(bool nhwc, bool depthwise, bool pointwise);

}  // namespace mithril
