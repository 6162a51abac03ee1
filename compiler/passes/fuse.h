// The `fuse-elementwise` pass: chains of elementwise ops become one loop.
//
// Every elementwise op with an element expression (OpDef::scalar: the unary ops and their <Name>Grad
// ops, the binary ops, Not, Where, Cast) writes its own loop and its result to memory. The pass
// merges a producer into its consumer when the producer's one output is read by that consumer
// only (in the forward and the backward pass), is neither a model output nor a gradient, has the
// consumer's output shape (the intermediate is never broadcast), and both are on the same side of
// the forward/backward boundary. The merged group is one FusedElementwise node (ops/fused.cpp) at
// the consumer's place: its inputs are the group's external values (which may broadcast against the
// output, as any elementwise input), its `body` the steps, each computed by the op's own element
// expression into a local, so results are those of the unfused code (up to the compiler contracting
// a multiply and an add across steps into one FMA). The intermediates are left orphans (no
// producer): the memory plan never sees them. A producer is not moved past a node that writes a
// value it reads (an optimizer update of a parameter, BatchNorm's running statistics), nor past
// another parameter's first reader when it reads a parameter first (the weight table lists
// parameters in order of first read: it stays the same).
//
// It runs last, after `autodiff` and `optimizer`, so the backward pass's chains fuse too.
#pragma once

#include "ir/graph.h"
#include "ops/fused.h"  // FusedStep, the body of FusedElementwise and of epilogues

namespace mithril {

Graph fuse_elementwise(Graph g);

// The `fold-batchnorm` pass, before fuse-elementwise, in programs without gradients whose
// BatchNorm uses its running statistics (not --mode train): a BatchNorm2d whose input is a Conv2d's
// output read by nothing else goes into the convolution: the convolution takes its output, the
// attribute `batchnorm` ({name, eps, weight, bias}: which of BatchNorm's parameters are bound) and
// BatchNorm's weight, bias, running mean and variance as the first `epilogue_inputs`. The
// convolution's emitter computes BatchNorm's per-channel scale and shift once per run (K values,
// so loading or updating the weights needs no refolding) and applies them to each output row
// while it is in cache: the separate pass over the activations is gone. Not done when another
// parameter is first read between the two nodes (the weight table's order stays the same).
Graph fold_batchnorm(Graph g);

// The `fuse-epilogue` pass, after fuse-elementwise, in programs without gradients: an op with the
// trait "epilogue" (Linear, Conv1d, Conv2d) whose one output is read only by an elementwise node
// (or a FusedElementwise one) of the same type takes that node's steps as its `epilogue` attribute
// (a FusedElementwise body whose "in0" is the op's raw result) and its output; the elementwise node
// goes. For Linear the chain may read nothing else; ops with the trait "epilogue_inputs" (the
// convolutions) also take chains reading other values of the output's type and shape that are
// computed before the op and are not parameters (ResNet's residual add and ReLU): they are
// appended to `epilogue_inputs` and read as "in1", "in2", ... The op's emitter applies the steps
// to each result as it is written (emit_epilogue, epilogue_statements): one pass over memory fewer.
Graph fuse_epilogue(Graph g);

// The `fuse-pool` pass, last, in programs without gradients: a MaxPool2d or AvgPool2d whose input
// is a Conv2d's output read by nothing else goes into the convolution (after its epilogue, if it
// has one): the convolution takes the pooling's output and the attribute `pool` ({op, name,
// args}: the pooling layer). Its emitter writes the convolution's result to its scratch and, in
// the epilogue, pools each row (one channel of one image) into the output right after computing
// it: the pooling no longer reads the whole result back from memory. Only for planes (height *
// width of the convolution's result) of at most 4096 elements, which stay in the first-level cache
// between the epilogue and the pooling: LeNet's, not ResNet's 112 x 112 stem.
Graph fuse_pool(Graph g);

}  // namespace mithril
