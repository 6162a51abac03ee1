// Running other programs from mithril: the CMake build of a generated project and
// the generated program itself (`run`, `train`, `evaluate`). No shell is involved
// (the arguments go to the program as they are), and a child never outlives
// mithril: it is sent SIGTERM when mithril dies, and mithril passes on the SIGINT
// and SIGTERM it receives while it waits.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace mithril {

struct ChildOptions {
  std::string log;          // when set: the child's stdout and stderr go to this file, its stdin is /dev/null
  bool append_log = false;  // append to `log` instead of truncating it
  // In a process group of its own, led by a small guard process (the build: CMake, the build tool,
  // the compilers). When mithril dies or passes on SIGINT or SIGTERM, the guard stops the whole
  // group. Ctrl-C in the terminal then reaches the group only through mithril. Without it the child
  // shares mithril's group, so Ctrl-C reaches it directly and is not passed on a second time (the
  // training program takes a second Ctrl-C as "stop at once").
  bool own_group = false;
};

// Runs argv[0] (looked up in PATH unless it names a path) with the arguments argv[1...] and
// waits for it. Returns its wait status (read it with WIFEXITED/WEXITSTATUS, WIFSIGNALED/WTERMSIG).
// A program that cannot be started, or a log that cannot be opened, is a CompileError.
int run_child(const std::vector<std::string>& argv, const ChildOptions& opts = {});

// The signal (SIGINT or SIGTERM) mithril received while the last run_child waited; 0 if none.
int last_child_interrupt();

// Thrown when mithril is told to stop during a step it has passed the signal on to and cannot
// finish (the build). The command line reports it and ends by the same signal.
class Interrupted : public std::runtime_error {
 public:
  explicit Interrupted(int sig);
  int signal() const { return signal_; }

 private:
  int signal_;
};

}  // namespace mithril
