// checkpoint.h - training checkpoints in the run folder.
//
// A checkpoint is a safetensors file RUNDIR/checkpoint-<step>.safetensors
// holding the parameters (and optimizer state) as tensors and string metadata;
// save_checkpoint adds "step". By convention the trainer also stores "model"
// (the model's fingerprint(), see below) and "model_name", which check_rundir
// compares so that a run folder is never resumed with another model.
//
// Writes go through save_safetensors -> atomic_write_file: the bytes go to a
// temp file that is fsynced, renamed over the final name, and the folder is
// fsynced, so after a crash, a full disk or a kill the folder holds whole
// checkpoints only. A failed write throws Error and leaves earlier checkpoints
// as they were; older checkpoints are removed only after the new one is safe.
//
//   using namespace mithril::rt;
//   const std::string fp = fingerprint(model_json_text);
//   check_rundir(rundir, fp, "lenet");
//   if (auto last = latest_checkpoint(rundir)) { Checkpoint c = load_checkpoint(*last); ... }
//   save_checkpoint(rundir, step, {{"fc1.weight", w1}, {"fc1.bias", b1}},
//                   {{"model", fp}, {"model_name", "lenet"}, {"epoch", "3"}});
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mithril/rt/tensor.h"

namespace mithril::rt {

struct Checkpoint {
    std::vector<std::pair<std::string, Tensor>> tensors;  // sorted by name
    std::map<std::string, std::string> metadata;
};

// "checkpoint-<step>.safetensors".
std::string checkpoint_filename(std::int64_t step);
// The step of a file named exactly checkpoint-<digits>.safetensors, else nullopt
// (temp files "...safetensors.tmp-XXXXXXXX", "*.tmp" and other names).
std::optional<std::int64_t> checkpoint_step(const std::filesystem::path& file);

// Writes RUNDIR/checkpoint-<step>.safetensors (creating RUNDIR if needed) with
// metadata["step"] = step, then removes the checkpoints of smaller steps beyond
// the newest `keep` (counting the new one); checkpoints of larger steps are
// never touched, nor is the one just written. keep <= 0 keeps every checkpoint.
// Returns the path written. Throws Error for a negative step or a failed write
// (e.g. "cannot write runs/a/checkpoint-20.safetensors: No space left on device").
std::filesystem::path save_checkpoint(const std::filesystem::path& rundir, std::int64_t step,
                                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                                      std::map<std::string, std::string> metadata, int keep = 3);

// Removes the temporaries an interrupted checkpoint write leaves behind
// (RUNDIR/checkpoint-<step>.safetensors.tmp-<8 hex digits>, regular files only;
// nothing else is touched) and returns their paths. The trainer calls it when
// it starts in a run folder, after check_rundir; a missing RUNDIR gives {}.
// A file that cannot be removed is left in place.
std::vector<std::filesystem::path> remove_stale_temporaries(const std::filesystem::path& rundir);

// Every checkpoint in RUNDIR as (step, path), by increasing step; empty when
// RUNDIR does not exist.
std::vector<std::pair<std::int64_t, std::filesystem::path>> list_checkpoints(const std::filesystem::path& rundir);

// The checkpoint with the largest step number (not the newest mtime, and step
// 10 after step 9), or nullopt when there is none.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& rundir);

// Reads a whole checkpoint (tensors own their memory via the file buffer).
Checkpoint load_checkpoint(const std::filesystem::path& path);

// Reads only the metadata of a checkpoint (its header, not the tensors).
std::map<std::string, std::string> read_checkpoint_metadata(const std::filesystem::path& path);

// Throws Error when a checkpoint in RUNDIR was written for another model
// (metadata "model" != model_fingerprint) or does not say for which model:
//   "run folder runs/a holds checkpoints of model 'lenet' (fingerprint 1a2b3c4d5e6f7a8b),
//    not of this model 'mlp' (fingerprint 9f8e...): use another -o folder or delete it"
// `model_name` only makes the message clearer. A missing or empty RUNDIR passes.
void check_rundir(const std::filesystem::path& rundir, const std::string& model_fingerprint,
                  const std::string& model_name = "");

// 64-bit FNV-1a of `text` as 16 lower-case hex digits, e.g. for the model's JSON.
std::string fingerprint(std::string_view text);

}  // namespace mithril::rt
