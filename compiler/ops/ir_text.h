// The textual IR of a graph, as `--ir` and `--dump-ir` print it. It names ops and their input
// ports, which the op registry defines: so it sits at the ops layer, not in ir/.
#pragma once

#include <string>

#include "ir/graph.h"

namespace mithril {

// Textual IR, one node per line:  %7 = Conv2d(%3, %5:weight, %6:bias) {out_channels=16, ...} : [N, 16, 32, 32]  # block1.conv1
std::string dump_ir(const Graph& g);

}  // namespace mithril
