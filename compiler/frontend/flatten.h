// Flattening: from a logical model (with composites, `$` arguments, repeats and
// named terminals) to one flat graph of primitive nodes.
//
// Each use of a composite instantiates its own parameters, named by dotted
// instance paths (`block1.conv2.weight`). Connections may be used before the
// layer that produces them; order and cycles are the `order` pass's business.
#pragma once

#include "frontend/model.h"
#include "ir/graph.h"

namespace mithril {

struct FlattenOptions {
  json args = json::object();  // overrides for the main model's `args` (--arg NAME=VALUE)
};

Graph flatten(const Program& prog, const FlattenOptions& opts = {});

}  // namespace mithril
