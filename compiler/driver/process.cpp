#include "driver/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "support/diag.h"

namespace mithril {

namespace {

constexpr int kPassedOn[2] = {SIGINT, SIGTERM};

// For the signal handler: the child mithril waits for (0: none), whether that child leads a process
// group of its own, and the last signal received.
volatile sig_atomic_t g_child = 0;
volatile sig_atomic_t g_child_group = 0;
volatile sig_atomic_t g_interrupt = 0;

extern "C" void pass_on_signal(int sig, siginfo_t* info, void*) {
  const int saved_errno = errno;
  g_interrupt = sig;
  const pid_t pid = g_child;
  // A signal from the terminal (Ctrl-C) went to the whole foreground group: to a child in mithril's group too.
  if (pid > 0 && (g_child_group || info->si_code != SI_KERNEL)) kill(pid, sig);
  errno = saved_errno;
}

// What a new child needs to become the program. All of it is prepared before fork: between fork
// and exec only async-signal-safe calls are allowed (mithril can have threads, e.g. the BLAS library's).
struct ChildSetup {
  char* const* argv;
  pid_t parent;                     // mithril
  int log = -1, null = -1;          // the child's stdout and stderr, and stdin; -1: mithril's
  int report = -1;                  // a failed exec writes its errno here
  struct sigaction old_actions[2];  // SIGINT and SIGTERM as mithril had them
  sigset_t old_mask;
};

[[noreturn]] void report_and_exit(const ChildSetup& s) {
  const int err = errno;
  (void)!write(s.report, &err, sizeof err);
  _exit(127);
}

// In a new child of `parent`: ends when its parent does, takes its standard streams and the signal
// handling mithril had, and becomes the program.
[[noreturn]] void exec_program(const ChildSetup& s, pid_t parent) {
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent) _exit(128 + SIGTERM);  // the parent died before prctl
  if (s.log >= 0 && (dup2(s.null, 0) < 0 || dup2(s.log, 1) < 0 || dup2(s.log, 2) < 0)) report_and_exit(s);
  for (int i = 0; i < 2; ++i) sigaction(kPassedOn[i], &s.old_actions[i], nullptr);
  sigprocmask(SIG_SETMASK, &s.old_mask, nullptr);
  execvp(s.argv[0], s.argv);
  report_and_exit(s);
}

// In a new child that leads a process group of its own (the build's): runs the program as its child
// and waits. When mithril dies (PR_SET_PDEATHSIG) or passes on SIGINT or SIGTERM, it sends SIGTERM
// to the whole group, then SIGKILL to what is left when the program has ended or 5 s later. Signalling
// CMake alone would not do: `cmake --build` takes SIGTERM as "stop once the build tool is done", and
// the build tool (make, ninja) and the compilers would go on without mithril.
[[noreturn]] void guard_group(const ChildSetup& s) {
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != s.parent) _exit(128 + SIGTERM);
  sigset_t wake;  // SIGINT and SIGTERM are blocked already (run_child)
  sigemptyset(&wake);
  sigaddset(&wake, SIGINT);
  sigaddset(&wake, SIGTERM);
  sigaddset(&wake, SIGCHLD);
  sigprocmask(SIG_BLOCK, &wake, nullptr);
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  sigaction(SIGCHLD, &dfl, nullptr);  // not SIG_IGN, which would reap the program unseen
  const pid_t self = getpid();
  const pid_t program = fork();
  if (program == 0) exec_program(s, self);
  if (program < 0) report_and_exit(s);
  close(s.report);  // the program's copy tells mithril whether exec succeeded
  bool stopping = false;
  for (;;) {
    siginfo_t info;
    const timespec grace = {5, 0};
    const int sig = stopping ? sigtimedwait(&wake, &info, &grace) : sigwaitinfo(&wake, &info);
    if (sig < 0 && errno == EAGAIN) kill(0, SIGKILL);
    if ((sig == SIGINT || sig == SIGTERM) && !stopping) {
      stopping = true;
      kill(0, SIGTERM);  // this process too: it comes back here as a signal already handled
    }
    int status = 0;
    if (waitpid(program, &status, WNOHANG) == program) {
      if (stopping) kill(0, SIGKILL);  // whatever the program left behind, and this process
      _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
  }
}

// File descriptors closed at the end of scope.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

}  // namespace

Interrupted::Interrupted(int sig) : std::runtime_error(fmt::format("interrupted by signal {}", sig)), signal_(sig) {}

int last_child_interrupt() { return g_interrupt; }

int run_child(const std::vector<std::string>& argv, const ChildOptions& opts) {
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  ChildSetup setup;
  setup.argv = args.data();
  setup.parent = getpid();
  Fd log, null;
  if (!opts.log.empty()) {
    log.fd = open(opts.log.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (opts.append_log ? O_APPEND : O_TRUNC), 0666);
    if (log.fd < 0) fail(SourceLoc{opts.log, 0, 0}, "cannot write the log: {}", std::strerror(errno));
    null.fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null.fd < 0) fail(SourceLoc{"/dev/null", 0, 0}, "cannot open: {}", std::strerror(errno));
    setup.log = log.fd;
    setup.null = null.fd;
  }
  // The child reports a failed exec through this pipe; a successful exec closes it.
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) fail(SourceLoc{argv[0], 0, 0}, "cannot start the program: {}", std::strerror(errno));
  Fd report_read{pipe_fds[0]}, report_write{pipe_fds[1]};
  setup.report = report_write.fd;

  // While the child runs, SIGINT and SIGTERM are passed on to it (where mithril does not ignore
  // them: then the child inherits that). Blocked until the handler knows the child's pid.
  sigset_t passed_on;
  sigemptyset(&passed_on);
  for (int sig : kPassedOn) sigaddset(&passed_on, sig);
  sigprocmask(SIG_BLOCK, &passed_on, &setup.old_mask);
  struct sigaction pass = {};
  pass.sa_sigaction = pass_on_signal;
  pass.sa_flags = SA_SIGINFO;
  sigemptyset(&pass.sa_mask);
  for (int i = 0; i < 2; ++i) {
    sigaction(kPassedOn[i], nullptr, &setup.old_actions[i]);
    if (setup.old_actions[i].sa_handler != SIG_IGN) sigaction(kPassedOn[i], &pass, nullptr);
  }
  g_interrupt = 0;
  const pid_t pid = fork();
  if (pid == 0) {
    if (opts.own_group) guard_group(setup);
    exec_program(setup, setup.parent);
  }
  const int fork_error = errno;
  g_child_group = opts.own_group;
  g_child = pid > 0 ? pid : 0;
  sigprocmask(SIG_SETMASK, &setup.old_mask, nullptr);  // a signal that came meanwhile is passed on now

  int status = 0, exec_error = 0;
  ssize_t n = 0;
  if (pid > 0) {
    close(report_write.fd);
    report_write.fd = -1;
    while ((n = read(report_read.fd, &exec_error, sizeof exec_error)) < 0 && errno == EINTR) {
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  g_child = 0;
  for (int i = 0; i < 2; ++i) sigaction(kPassedOn[i], &setup.old_actions[i], nullptr);
  if (pid < 0) fail(SourceLoc{argv[0], 0, 0}, "cannot start the program: {}", std::strerror(fork_error));
  if (n == static_cast<ssize_t>(sizeof exec_error))
    fail(SourceLoc{argv[0], 0, 0}, "cannot run the program: {}", std::strerror(exec_error));
  return status;
}

}  // namespace mithril
