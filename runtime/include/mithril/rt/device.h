// device.h - the device generated code runs on. The CPU is the only one the
// runtime drives itself (later targets bring their own); this says what it is,
// so benchmarks and logs can name the machine their numbers come from.
#pragma once

#include <string>

namespace mithril::rt {

struct Device {
    std::string kind;   // "cpu"
    std::string name;   // e.g. "AMD EPYC 7B13" (from /proc/cpuinfo), "unknown CPU" elsewhere
    int cores = 0;      // hardware threads available to this process
    int threads = 0;    // threads the runtime uses (see threads.h)
    std::string describe() const;  // "cpu: AMD EPYC 7B13, 2 threads of 2"
};

Device cpu_device();

}  // namespace mithril::rt
