// The fused kernel for small dense layers: y = f(x Wᵀ + b [+ y]).
//
// At a MADE's or an MLP's sizes (64 x 64 on 1024-row blocks) BLAS spends a
// large share of its time packing x and its panels of W, and the separate
// passes for the bias and the activation read and write y twice more. Here
// Wᵀ is packed once per call (it is small), x is read in place, and each
// microkernel keeps an MR x NV block of y's vectors in registers from the
// bias through the sum over the inputs to the activation: the outer-product
// formulation of a register-blocked GEMM (Goto & van de Geijn 2008, "Anatomy
// of high-performance matrix multiplication", ACM TOMS 34(3)), with the bias
// as the accumulators' start and the activation as their epilogue.
#include <algorithm>
#include <xsimd/xsimd.hpp>

#include "activation_batch.hpp"
#include "flows/checks.hpp"
#include "flows/nn/dense.hpp"

namespace flows::nn {

namespace {

template <class T>
using Batch = xsimd::batch<T>;

// Vectors per panel: 4 with 32 vector registers (AVX-512: 24 accumulators,
// 4 weights and a broadcast), 2 with 16 (AVX2: 12 + 2 + 1).
template <class T>
constexpr Index kMaxVectors = sizeof(Batch<T>) >= 64 ? 4 : 2;
// Rows per microkernel: 6 against a panel of several vectors; 8 against a
// single vector, as many sums as keep both FMA pipes busy (latency 4) with
// the rows' pointers still in general registers.
constexpr Index rows_for(Index vectors) {
  return vectors == 1 ? 8 : 6;
}
// Rows of x run through all the panels before the next ones: they stay in
// the first-level cache while each panel's weight streams past them.
constexpr Index kRowChunk = 48;

using Kind = Activation::Kind;

// Stores a sum vector (after adding y's old values with accumulate and
// applying f(x, &f'(x)), an ActivationBatch call) to `count` ≤ width entries
// at `y`, and f' there to `dy` when it is given.
template <class T, class F>
inline void store(Batch<T> sum, T* y, T* dy, Index count, bool accumulate, const F& f) {
  constexpr Index width = Batch<T>::size;
  Batch<T> slope;
  if (count >= width) {
    if (accumulate) sum += Batch<T>::load_unaligned(y);
    f(sum, dy ? &slope : nullptr).store_unaligned(y);
    if (dy) slope.store_unaligned(dy);
    return;
  }
  alignas(64) T buffer[width] = {};
  if (accumulate) std::copy(y, y + count, buffer);
  sum += Batch<T>::load_aligned(buffer);
  f(sum, dy ? &slope : nullptr).store_aligned(buffer);
  std::copy(buffer, buffer + count, y);
  if (dy) {
    slope.store_aligned(buffer);
    std::copy(buffer, buffer + count, dy);
  }
}

// One MR x NV block of y: rows x[r] (in place, `inputs` read), the panel's
// packed weight w (inputs x NV vectors) and bias, into y[r] (the panel's
// first column), `columns` of them, and f' into dy[r] when dy is given.
// Every loop over the block is unrolled, so that the sums stay in registers
// through the epilogue.
template <class T, Index MR, Index NV, Kind K>
void microkernel(const T* const* x, Index inputs, const T* w, const T* bias, T* const* y,
                 T* const* dy, Index columns, bool accumulate,
                 const detail::ActivationBatch<T>& f) {
  constexpr Index width = Batch<T>::size;
  Batch<T> sum[MR][NV];
#pragma GCC unroll 4
  for (Index v = 0; v < NV; ++v) {
    const Batch<T> b = Batch<T>::load_unaligned(bias + v * width);
#pragma GCC unroll 8
    for (Index r = 0; r < MR; ++r) sum[r][v] = b;
  }
  for (Index k = 0; k < inputs; ++k, w += NV * width) {
    Batch<T> wk[NV];
#pragma GCC unroll 4
    for (Index v = 0; v < NV; ++v) wk[v] = Batch<T>::load_unaligned(w + v * width);
#pragma GCC unroll 8
    for (Index r = 0; r < MR; ++r) {
      const Batch<T> xr(x[r][k]);
#pragma GCC unroll 4
      for (Index v = 0; v < NV; ++v) sum[r][v] = xsimd::fma(xr, wk[v], sum[r][v]);
    }
  }
#pragma GCC unroll 8
  for (Index r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (Index v = 0; v < NV; ++v)
      if (v * width < columns)
        store(sum[r][v], y[r] + v * width, dy ? dy[r] + v * width : nullptr, columns - v * width,
              accumulate, [&f](Batch<T> a, Batch<T>* d) { return f.template apply<K>(a, d); });
}

// Rows [begin, end) of y through one panel, MR rows at a time. The last
// group's missing rows repeat its last row and write to a scratch row.
template <class T, Index NV, Kind K>
void run_panel(const MatrixOf<T>& x, Index begin, Index end, const PackedDense<T>& packed,
               const typename PackedDense<T>::Panel& panel, const detail::ActivationBatch<T>& f,
               MatrixOf<T>& y, bool accumulate, MatrixOf<T>* slope) {
  constexpr Index MR = rows_for(NV), width = Batch<T>::size;
  const Index in = packed.in, out = packed.out;
  const T* w = packed.values.data() + panel.offset;
  const T* bias = packed.bias.data() + panel.column_begin;
  alignas(64) T scratch[NV * width], slope_scratch[NV * width];
  for (Index r0 = begin; r0 < end; r0 += MR) {
    const Index rows = std::min(MR, end - r0);
    const T* xr[MR];
    T *yr[MR], *dr[MR];
    for (Index r = 0; r < MR; ++r) {
      const Index row = r0 + std::min(r, rows - 1);
      const Index at = row * out + panel.column_begin;
      xr[r] = x.data() + row * in;
      yr[r] = r < rows ? y.data() + at : scratch;
      dr[r] = !slope ? nullptr : r < rows ? slope->data() + at : slope_scratch;
    }
    if (rows < MR) std::fill(scratch, scratch + NV * width, T(0));
    microkernel<T, MR, NV, K>(xr, panel.inputs, w, bias, yr, slope ? dr : nullptr, panel.columns,
                              accumulate, f);
  }
}

// run_panel for a panel of `vectors` ≤ NV vectors.
template <class T, Index NV, Kind K>
void run_panel_of(Index vectors, const MatrixOf<T>& x, Index begin, Index end,
                  const PackedDense<T>& packed, const typename PackedDense<T>::Panel& panel,
                  const detail::ActivationBatch<T>& f, MatrixOf<T>& y, bool accumulate,
                  MatrixOf<T>* slope) {
  if constexpr (NV > 1)
    if (vectors < NV)
      return run_panel_of<T, NV - 1, K>(vectors, x, begin, end, packed, panel, f, y, accumulate,
                                        slope);
  run_panel<T, NV, K>(x, begin, end, packed, panel, f, y, accumulate, slope);
}

// 0, 1, ..., width - 1.
template <class T>
Batch<T> lane_index() {
  alignas(64) T lanes[Batch<T>::size];
  for (Index i = 0; i < Batch<T>::size; ++i) lanes[i] = static_cast<T>(i);
  return Batch<T>::load_aligned(lanes);
}

// A narrow layer (OUT ≤ width / 2 outputs, packed.narrow): R = width / OUT
// rows at a time, each output a dot product along the inputs, the R x OUT
// sums reduced (one horizontal add each) into one vector of the R x OUT
// outputs, which are contiguous in y. The last group's missing rows repeat
// its last row and are not stored.
template <class T, Index OUT>
void run_narrow(const MatrixOf<T>& x, const PackedDense<T>& packed,
                const detail::ActivationBatch<T>& f, MatrixOf<T>& y, bool accumulate,
                MatrixOf<T>* slope) {
  constexpr Index width = Batch<T>::size, R = width / OUT;
  const Index n = x.shape(0), in = packed.in, stride = packed.row_stride;
  const Index full = in / width;  // whole vectors of a row of x
  const T* w = packed.values.data();
  const Batch<T> bias = Batch<T>::load_unaligned(packed.bias.data());
  for (Index r0 = 0; r0 < n; r0 += R) {
    const Index rows = std::min(R, n - r0);
    const T* xr[R];
    for (Index r = 0; r < R; ++r) xr[r] = x.data() + (r0 + std::min(r, rows - 1)) * in;
    Batch<T> sum[width];
#pragma GCC unroll 16
    for (Index i = 0; i < width; ++i) sum[i] = Batch<T>(T(0));
    auto accumulate_vector = [&](Index v, auto load_x) {
      Batch<T> wj[OUT];
#pragma GCC unroll 8
      for (Index j = 0; j < OUT; ++j) wj[j] = Batch<T>::load_unaligned(w + j * stride + v * width);
      // Per output: read all of the vector, part of it (lanes below its
      // inputs' end, the others zeroed), or none.
      bool reads[OUT], whole[OUT];
      xsimd::batch_bool<T> lanes[OUT];
#pragma GCC unroll 8
      for (Index j = 0; j < OUT; ++j) {
        const Index end = packed.row_inputs[j];
        reads[j] = v * width < end;
        whole[j] = (v + 1) * width <= end;
        if (reads[j] && !whole[j])
          lanes[j] = lane_index<T>() < Batch<T>(static_cast<T>(end - v * width));
      }
#pragma GCC unroll 16
      for (Index r = 0; r < R; ++r) {
        const Batch<T> xv = load_x(xr[r] + v * width);
#pragma GCC unroll 8
        for (Index j = 0; j < OUT; ++j)
          if (reads[j])
            sum[r * OUT + j] =
                xsimd::fma(whole[j] ? xv : xsimd::select(lanes[j], xv, Batch<T>(T(0))), wj[j],
                           sum[r * OUT + j]);
      }
    };
    for (Index v = 0; v < full; ++v)
      accumulate_vector(v, [](const T* p) { return Batch<T>::load_unaligned(p); });
    if (full * width < in)  // the rows' last, partial vector: through a zeroed buffer
      accumulate_vector(full, [&](const T* p) {
        alignas(64) T buffer[width] = {};
        std::copy(p, p + (in - full * width), buffer);
        return Batch<T>::load_aligned(buffer);
      });
    // One reduction per sum: xsimd 8.1's haddp permutes lanes on AVX-512.
    alignas(64) T sums[width] = {};
#pragma GCC unroll 16
    for (Index i = 0; i < R * OUT; ++i) sums[i] = xsimd::hadd(sum[i]);
    const Index at = r0 * OUT;
    store(Batch<T>::load_aligned(sums) + bias, y.data() + at, slope ? slope->data() + at : nullptr,
          rows * OUT, accumulate, f);
  }
}

template <class T, Index OUT>
void run_narrow_of(const MatrixOf<T>& x, const PackedDense<T>& packed,
                   const detail::ActivationBatch<T>& f, MatrixOf<T>& y, bool accumulate,
                   MatrixOf<T>* slope) {
  if constexpr (OUT > 1)
    if (packed.out < OUT) return run_narrow_of<T, OUT - 1>(x, packed, f, y, accumulate, slope);
  run_narrow<T, OUT>(x, packed, f, y, accumulate, slope);
}

template <class T, Kind K>
void run_layer(const MatrixOf<T>& x, const PackedDense<T>& packed,
               const detail::ActivationBatch<T>& f, MatrixOf<T>& y, bool accumulate,
               MatrixOf<T>* slope) {
  const Index n = x.shape(0);
  for (Index begin = 0; begin < n; begin += kRowChunk) {
    const Index end = std::min(n, begin + kRowChunk);
    for (const auto& panel : packed.panels)
      run_panel_of<T, kMaxVectors<T>, K>(panel.vectors, x, begin, end, packed, panel, f, y,
                                         accumulate, slope);
  }
}

}  // namespace

template <class T>
void PackedDense<T>::pack(const MatrixOf<T>& w, const T* b, const std::vector<RowBlock>* blocks) {
  constexpr Index width = Batch<T>::size;
  out = w.shape(0);
  in = w.shape(1);
  panels.clear();
  narrow = 2 * out <= width;
  if (narrow) {
    row_stride = (in + width - 1) / width * width;
    values.assign(out * row_stride, T(0));
    row_inputs.assign(out, 0);
    auto copy_rows = [&](Index row_begin, Index row_end, Index col_end) {
      for (Index j = row_begin; j < row_end; ++j) {
        std::copy(w.data() + j * in, w.data() + j * in + col_end, values.data() + j * row_stride);
        row_inputs[j] = col_end;
      }
    };
    if (blocks)
      for (const RowBlock& rb : *blocks) copy_rows(rb.row_begin, rb.row_end, rb.col_end);
    else
      copy_rows(0, out, in);
    bias.assign(width, T(0));
    if (b) set_bias(b);
    return;
  }
  // The inputs each vector of output columns reads: the largest col_end of
  // the row blocks it overlaps.
  // (Computed here rather than kept: packing runs in every pass and must
  // not allocate.)
  const Index vectors = (out + width - 1) / width;
  auto reads = [&](Index v) {
    if (!blocks) return in;
    Index r = 0;
    for (const RowBlock& rb : *blocks)
      if (rb.row_begin < (v + 1) * width && rb.row_end > v * width) r = std::max(r, rb.col_end);
    return r;
  };
  // Panels of up to kMaxVectors vectors, reading as far as their furthest
  // vector; vectors that read nothing (only a bias) are panels of their own,
  // so the others do not compute them.
  Index size = 0;
  for (Index v = 0; v < vectors;) {
    Panel p;
    p.column_begin = v * width;
    const bool bias_only = reads(v) == 0;
    p.vectors = 0;
    p.inputs = 0;
    while (p.vectors < kMaxVectors<T> && v + p.vectors < vectors &&
           (reads(v + p.vectors) == 0) == bias_only)
      p.inputs = std::max(p.inputs, reads(v + p.vectors++));
    p.columns = std::min(out - p.column_begin, p.vectors * width);
    p.offset = size;
    size += p.inputs * p.vectors * width;
    panels.push_back(p);
    v += p.vectors;
  }
  values.assign(size, T(0));
  // Column j of the output reads row j of w up to its block's col_end (the
  // entries past it are not kept by a blocked layer's copy).
  auto pack_rows = [&](Index row_begin, Index row_end, Index col_end) {
    for (const Panel& p : panels) {
      const Index first = std::max(row_begin, p.column_begin);
      const Index last = std::min(row_end, p.column_begin + p.columns);
      const Index stride = p.vectors * width;
      for (Index j = first; j < last; ++j) {
        const T* row = w.data() + j * in;
        T* target = values.data() + p.offset + (j - p.column_begin);
        for (Index k = 0; k < std::min(col_end, p.inputs); ++k) target[k * stride] = row[k];
      }
    }
  };
  if (blocks)
    for (const RowBlock& rb : *blocks) pack_rows(rb.row_begin, rb.row_end, rb.col_end);
  else
    pack_rows(0, out, in);
  bias.assign(vectors * width, T(0));
  if (b) set_bias(b);
}

template <class T>
void PackedDense<T>::set_bias(const T* b) {
  constexpr Index width = Batch<T>::size;
  // Narrow, the bias repeats for each of a vector's width / out rows.
  const Index copies = narrow ? width / out : 1;
  for (Index r = 0; r < copies; ++r) std::copy(b, b + out, bias.begin() + r * out);
}

template <class T>
bool small_dense_suits(Index in, Index out) {
  return in * out * sizeof(T) <= 64 * 1024;
}

template <class T>
void small_dense_forward(const MatrixOf<T>& x, const PackedDense<T>& packed, const Activation& f,
                         MatrixOf<T>& y, bool accumulate, MatrixOf<T>* slope) {
  if (slope) ensure(*slope, x.shape(0), packed.out);
  const detail::ActivationBatch<T> g(f);
  if (packed.narrow)
    return run_narrow_of<T, Batch<T>::size / 2>(x, packed, g, y, accumulate, slope);
  detail::with_kind(f.kind(), [&](auto kind) {
    run_layer<T, decltype(kind)::value>(x, packed, g, y, accumulate, slope);
  });
}

template <class T>
void dense_layer_infer(DenseCopy<T>& copy, const std::vector<RowBlock>* blocks,
                       const MatrixOf<T>& x, const Activation& f, MatrixOf<T>& y, bool accumulate,
                       MatrixOf<T>* slope) {
  const Index n = x.shape(0), out = copy.weight.shape(0), in = copy.weight.shape(1);
  if (!accumulate) ensure(y, n, out);
  if (small_dense_suits<T>(in, out)) {
    copy.packed.pack(copy.weight, copy.bias.data(), blocks);
    small_dense_forward(x, copy.packed, f, y, accumulate, slope);
    return;
  }
  if (blocks)
    blocked_forward(x, copy.weight, copy.bias.data(), *blocks, y, accumulate);
  else
    dense_forward(x, copy.weight, copy.bias.data(), y, accumulate);
  if (f.kind() != Activation::Kind::identity || slope) f.forward(y, y, slope);
}

#define FLOWS_SMALL_DENSE(T)                                                                    \
  template struct PackedDense<T>;                                                               \
  template bool small_dense_suits<T>(Index, Index);                                             \
  template void small_dense_forward<T>(const MatrixOf<T>&, const PackedDense<T>&,               \
                                       const Activation&, MatrixOf<T>&, bool, MatrixOf<T>*);    \
  template void dense_layer_infer<T>(DenseCopy<T>&, const std::vector<RowBlock>*,               \
                                     const MatrixOf<T>&, const Activation&, MatrixOf<T>&, bool, \
                                     MatrixOf<T>*);
FLOWS_SMALL_DENSE(float)
FLOWS_SMALL_DENSE(double)
#undef FLOWS_SMALL_DENSE

}  // namespace flows::nn
