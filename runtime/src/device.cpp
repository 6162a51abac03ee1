#include "mithril/rt/device.h"

#include <fstream>
#include <thread>

#include "mithril/rt/threads.h"

namespace mithril::rt {

Device cpu_device() {
    Device d;
    d.kind = "cpu";
    d.name = "unknown CPU";
    std::ifstream info("/proc/cpuinfo");
    for (std::string line; std::getline(info, line);)
        if (line.rfind("model name", 0) == 0) {
            auto colon = line.find(':');
            if (colon != std::string::npos) d.name = line.substr(line.find_first_not_of(' ', colon + 1));
            break;
        }
    d.cores = static_cast<int>(std::thread::hardware_concurrency());
    d.threads = num_threads();
    return d;
}

std::string Device::describe() const {
    return kind + ": " + name + ", " + std::to_string(threads) + " threads of " + std::to_string(cores);
}

}  // namespace mithril::rt
