// npy.h - read and write NumPy .npy files (model inputs and outputs).
//
// Reads format versions 1.0, 2.0 and 3.0, little-endian (or byte-order-free)
// dtypes <f4 <f8 <i4 <i8 |u1 |b1 <u2 |i1 <f2 in C order. Fortran order,
// big-endian, structured and other dtypes are rejected. A bool element's
// non-zero byte reads as 1 (True), as numpy reads it. Writes version 1.0
// (2.0 if the header would not fit) atomically (temp file + rename).
// Every problem throws Error naming the file and what is wrong.
//
//   Tensor x = mithril::rt::load_npy_expect("x.npy", "image", DType::Float32, {1, 3, 32, 32});
//   mithril::rt::save_npy("y.npy", y);
#pragma once

#include <filesystem>
#include <string_view>

#include "mithril/rt/tensor.h"

namespace mithril::rt {

// Loads the whole array into an owning, contiguous Tensor.
Tensor load_npy(const std::filesystem::path& path);

// Like load_npy, but the file must hold exactly `dtype` and `shape`; otherwise
// throws e.g. "input 'image': expected float32[1,3,32,32], file x.npy holds
// float64[1,3,32,32]".
Tensor load_npy_expect(const std::filesystem::path& path, std::string_view name, DType dtype, const Shape& shape);

// Writes `tensor` (any layout; strided views are written in C order).
void save_npy(const std::filesystem::path& path, const Tensor& tensor);

}  // namespace mithril::rt
