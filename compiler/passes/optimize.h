// The optimizing passes: simplify, fold, cse and dce, run in that order on the forward graph
// right after `infer-shapes` (so the backward pass is built from the optimized forward pass).
// Each is optional: `--no-pass NAME` switches it off, `mithril check --dump-ir NAME` prints the
// IR after it. All keep the graph ordered and typed, and keep every model output under its name.
// They work on the forward graph only: a graph that already has a backward pass comes back as is.
// See docs/passes.md. The graph surgery they share is in ir/surgery.h, the fold rules' helpers
// in ops/fold.h.
#pragma once

#include "ir/graph.h"

namespace mithril {

// Algebraic identities: x*1, 1*x, x+0, 0+x, x-0, x/1 (the constant a Constant or a broadcast
// Constant, and only where the result has x's shape and dtype), Identity, Permute/Transpose of a
// Permute/Transpose composed into one Permute (an identity permutation disappears), Reshape (or
// Flatten, Squeeze, Unsqueeze) of a reshape collapsed into one Reshape, a reshape to the same
// shape removed, Log(Softmax(x)) -> LogSoftmax(x). Bypassed nodes are removed; producers a
// rewrite no longer needs are left to `dce`. Where x is a model input, parameter or state, or
// the node's result is a model output that x cannot become, the node stays as Identity(x).
Graph simplify(Graph g);
// Constant folding: a node with a fold rule (OpDef::fold) whose result it can compute from
// Constant inputs becomes a Constant, when the result has a constant shape, 1 to 4096 elements,
// no more than max(64, the largest constant input), and finite values that fit its dtype.
// The inputs it no longer reads are left to `dce`.
Graph fold_constants(Graph g);
// Common subexpressions: a node with the op, arguments (JSON equality) and inputs of an earlier
// node (in any order for "commutative" ops) is dropped and its readers read the earlier node's
// outputs. Not merged: "random" ops (Dropout), nodes that read state (BatchNorm's running
// statistics), and nodes one of whose outputs is a model output.
Graph cse(Graph g);
// Dead code: nodes none of whose outputs reaches a model output are removed, except nodes that
// read state (they update it in training) and nodes that read a parameter: every parameter stays
// in the graph, so the weight table and weights files are the same with and without the pass.
Graph dce(Graph g);

}  // namespace mithril
