// Graph surgery shared by the passes that remove, move or merge nodes (optimize, fuse, layout,
// training): the node list renumbered and every value's producer kept right.
#pragma once

#include <vector>

#include "ir/graph.h"

namespace mithril {

// The nodes g.nodes[order[0]], g.nodes[order[1]], ... become the node list, renumbered, their
// outputs' producers updated; nodes not in `order` are dropped (callers orphan their outputs).
// For the passes that move nodes (remove_nodes, layout, the optimizer's updates).
void reorder_nodes(Graph& g, const std::vector<size_t>& order);

// Drops the nodes with keep[k] false (their outputs left orphans: producer -1); the others keep
// their order and are renumbered. For the passes that remove nodes (simplify, fold, cse, dce,
// the fusions).
void remove_nodes(Graph& g, const std::vector<bool>& keep);

// Node `producer` absorbs node `consumer`, the one reader of its one output: the producer's
// output becomes the consumer's (so the consumer's readers now read the producer), the value
// between them is left an orphan (producer -1: never read, never planned) and keep[consumer]
// turns false, for remove_nodes to drop it. Both must have exactly one output value. The
// fusions that fold a consumer into its producer (fold-batchnorm, fuse-epilogue, fuse-pool)
// go through it; they set the producer's attributes and extra inputs themselves.
void take_over_consumer(Graph& g, size_t producer, size_t consumer, std::vector<bool>& keep);

}  // namespace mithril
