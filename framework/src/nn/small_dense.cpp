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
//
// The backward pass reuses it: the input gradient (dL/dy) W is the same
// kernel on W packed transposed, with the slope f' of the layer below as its
// epilogue, and the weight gradient (dL/dy)ᵀ x the same outer products summed
// over the batch's rows (weight_gradient_block).
#include <immintrin.h>

#include <algorithm>
#include <type_traits>
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

// The epilogues: what becomes of a vector of sums on its way to `count` ≤
// width entries of y. A layer's forward pass: its activation (of a kind
// known at compile time, or not), f' into dy when it is given.
template <class T, Kind K>
struct Activate {
  const detail::ActivationBatch<T>& f;
  bool accumulate;
  void operator()(Batch<T> sum, T* y, T* dy, Index count) const {
    store(sum, y, dy, count, accumulate,
          [this](Batch<T> a, Batch<T>* d) { return f.template apply<K>(a, d); });
  }
};

template <class T>
struct ActivateAnyKind {
  const detail::ActivationBatch<T>& f;
  bool accumulate;
  void operator()(Batch<T> sum, T* y, T* dy, Index count) const {
    store(sum, y, dy, count, accumulate, f);
  }
};

// An input gradient's: y = sum ⊙ s, with s read at dy (the slope f' of the
// layer below), or the sum itself without one.
template <class T>
struct TimesSlope {
  void operator()(Batch<T> sum, T* y, const T* s, Index count) const {
    constexpr Index width = Batch<T>::size;
    if (count >= width) {
      if (s) sum *= Batch<T>::load_unaligned(s);
      sum.store_unaligned(y);
      return;
    }
    alignas(64) T buffer[width] = {};
    if (s) {
      std::copy(s, s + count, buffer);
      sum *= Batch<T>::load_aligned(buffer);
    }
    sum.store_aligned(buffer);
    std::copy(buffer, buffer + count, y);
  }
};

// One MR x NV block of y: rows x[r] (in place, `inputs` read), the panel's
// packed weight w (inputs x NV vectors) and bias, into y[r] (the panel's
// first column), `columns` of them, through the epilogue (with dy[r] when dy
// is given). Every loop over the block is unrolled, so that the sums stay in
// registers through the epilogue.
template <class T, Index MR, Index NV, class Epilogue>
void microkernel(const T* const* x, Index inputs, const T* w, const T* bias, T* const* y,
                 T* const* dy, Index columns, const Epilogue& epilogue) {
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
        epilogue(sum[r][v], y[r] + v * width, dy ? dy[r] + v * width : nullptr,
                 columns - v * width);
}

// Rows [begin, end) of y through one panel, MR rows at a time, with dy (of
// y's shape, or null) for the epilogue. The last group's missing rows repeat
// its last row and write to a scratch row.
template <class T, Index NV, class Epilogue>
void run_panel(const MatrixOf<T>& x, Index begin, Index end, const PackedDense<T>& packed,
               const typename PackedDense<T>::Panel& panel, const Epilogue& epilogue,
               MatrixOf<T>& y, T* dy) {
  constexpr Index MR = rows_for(NV), width = Batch<T>::size;
  const Index in = packed.in, out = packed.out;
  const T* w = packed.values.data() + panel.offset;
  const T* bias = packed.bias.data() + panel.column_begin;
  alignas(64) T scratch[NV * width] = {}, dy_scratch[NV * width] = {};
  for (Index r0 = begin; r0 < end; r0 += MR) {
    const Index rows = std::min(MR, end - r0);
    const T* xr[MR];
    T *yr[MR], *dr[MR];
    for (Index r = 0; r < MR; ++r) {
      const Index row = r0 + std::min(r, rows - 1);
      const Index at = row * out + panel.column_begin;
      xr[r] = x.data() + row * in;
      yr[r] = r < rows ? y.data() + at : scratch;
      dr[r] = !dy ? nullptr : r < rows ? dy + at : dy_scratch;
    }
    if (rows < MR) std::fill(scratch, scratch + NV * width, T(0));
    microkernel<T, MR, NV>(xr, panel.inputs, w, bias, yr, dy ? dr : nullptr, panel.columns,
                           epilogue);
  }
}

// run_panel for a panel of `vectors` ≤ NV vectors.
template <class T, Index NV, class Epilogue>
void run_panel_of(Index vectors, const MatrixOf<T>& x, Index begin, Index end,
                  const PackedDense<T>& packed, const typename PackedDense<T>::Panel& panel,
                  const Epilogue& epilogue, MatrixOf<T>& y, T* dy) {
  if constexpr (NV > 1)
    if (vectors < NV)
      return run_panel_of<T, NV - 1>(vectors, x, begin, end, packed, panel, epilogue, y, dy);
  run_panel<T, NV>(x, begin, end, packed, panel, epilogue, y, dy);
}

// 0, 1, ..., width - 1.
template <class T>
Batch<T> lane_index() {
  alignas(64) T lanes[Batch<T>::size];
  for (Index i = 0; i < Batch<T>::size; ++i) lanes[i] = static_cast<T>(i);
  return Batch<T>::load_aligned(lanes);
}

#if defined(__AVX512F__)
// _mm512_shuffle_f32x4 and _mm512_permutexvar_ps in their zero-masked forms:
// GCC 12's unmasked ones warn of an uninitialized placeholder inside.
template <int selector>
inline __m512 shuffle_128(__m512 a, __m512 b) {
  return _mm512_maskz_shuffle_f32x4(0xFFFF, a, b, selector);
}
#endif

// The vector whose lane i is the sum of the lanes of v[i], for the first
// `count` of the width vectors at v (the others are zero, and so are their
// lanes).
template <class T, Index count>
[[gnu::always_inline]] inline Batch<T> sums_by_lane(const Batch<T>* v) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float> && Batch<T>::size == 16) {
    // A tree of shuffles and adds: 46 instructions where 16 horizontal adds
    // take about 130. Each level halves the partial sums per vector and
    // doubles the vectors' count per register: 8 x (2 x 8), 4 x (4 x 4),
    // 2 x (8 x 2), then 16 sums, lane 4c + m holding v[c + 4m]'s.
    __m512 t[8], u[4], w[2];
    for (int i = 0; i < 8; ++i) {
      const __m512 a = v[2 * i], b = v[2 * i + 1];
      t[i] = _mm512_add_ps(shuffle_128<0x44>(a, b), shuffle_128<0xEE>(a, b));
    }
    for (int i = 0; i < 4; ++i)
      u[i] = _mm512_add_ps(shuffle_128<0x88>(t[2 * i], t[2 * i + 1]),
                           shuffle_128<0xDD>(t[2 * i], t[2 * i + 1]));
    for (int i = 0; i < 2; ++i)
      w[i] = _mm512_add_ps(_mm512_shuffle_ps(u[2 * i], u[2 * i + 1], 0x44),
                           _mm512_shuffle_ps(u[2 * i], u[2 * i + 1], 0xEE));
    const __m512 r =
        _mm512_add_ps(_mm512_shuffle_ps(w[0], w[1], 0x88), _mm512_shuffle_ps(w[0], w[1], 0xDD));
    const __m512i lane_of = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return Batch<T>(_mm512_maskz_permutexvar_ps(0xFFFF, lane_of, r));
  }
#endif
  // One horizontal add per sum (xsimd 8.1's haddp permutes lanes on AVX-512).
  alignas(64) T sums[Batch<T>::size] = {};
#pragma GCC unroll 16
  for (Index i = 0; i < count; ++i) sums[i] = xsimd::hadd(v[i]);
  return Batch<T>::load_aligned(sums);
}

// A narrow layer (OUT ≤ width / 2 outputs, packed.narrow): R = width / OUT
// rows at a time, each output a dot product along the inputs, the R x OUT
// sums reduced (one horizontal add each) into one vector of the R x OUT
// outputs, which are contiguous in y. The last group's missing rows repeat
// its last row and are not stored.
template <class T, Index OUT, class Epilogue>
void run_narrow(const MatrixOf<T>& x, const PackedDense<T>& packed, const Epilogue& epilogue,
                MatrixOf<T>& y, T* dy) {
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
    const Index at = r0 * OUT;
    epilogue(sums_by_lane<T, R * OUT>(sum) + bias, y.data() + at, dy ? dy + at : nullptr,
             rows * OUT);
  }
}

template <class T, Index OUT, class Epilogue>
void run_narrow_of(const MatrixOf<T>& x, const PackedDense<T>& packed, const Epilogue& epilogue,
                   MatrixOf<T>& y, T* dy) {
  if constexpr (OUT > 1)
    if (packed.out < OUT) return run_narrow_of<T, OUT - 1>(x, packed, epilogue, y, dy);
  run_narrow<T, OUT>(x, packed, epilogue, y, dy);
}

template <class T, class Epilogue>
void run_layer(const MatrixOf<T>& x, const PackedDense<T>& packed, const Epilogue& epilogue,
               MatrixOf<T>& y, T* dy) {
  const Index n = x.shape(0);
  for (Index begin = 0; begin < n; begin += kRowChunk) {
    const Index end = std::min(n, begin + kRowChunk);
    for (const auto& panel : packed.panels)
      run_panel_of<T, kMaxVectors<T>>(panel.vectors, x, begin, end, packed, panel, epilogue, y, dy);
  }
}

// The weight gradient dL/dW = (dL/dy)ᵀ x of rows j0 .. j0 + rows (≤ MR) and
// the NV vectors of columns from c0, of which `columns` are written: the
// same outer products over the batch's rows i, MR broadcasts of dL/dy[i][j]
// against NV vectors of x[i], the sums in registers from the first row to
// the last. Missing rows repeat the last one and are not stored.
template <class T, Index MR, Index NV>
void weight_gradient_block(const T* grad_y, Index out, const T* x, Index in, Index n, Index j0,
                           Index rows, Index c0, Index columns, T* grad_w) {
  constexpr Index width = Batch<T>::size;
  Index at[MR];
  for (Index r = 0; r < MR; ++r) at[r] = j0 + std::min(r, rows - 1);
  Batch<T> sum[MR][NV];
#pragma GCC unroll 8
  for (Index r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (Index v = 0; v < NV; ++v) sum[r][v] = Batch<T>(T(0));
  const T* g = grad_y;
  const T* xi = x + c0;
  for (Index i = 0; i < n; ++i, g += out, xi += in) {
    Batch<T> xv[NV];
#pragma GCC unroll 4
    for (Index v = 0; v < NV; ++v) xv[v] = Batch<T>::load_unaligned(xi + v * width);
#pragma GCC unroll 8
    for (Index r = 0; r < MR; ++r) {
      const Batch<T> gr(g[at[r]]);
#pragma GCC unroll 4
      for (Index v = 0; v < NV; ++v) sum[r][v] = xsimd::fma(gr, xv[v], sum[r][v]);
    }
  }
  const TimesSlope<T> write;
#pragma GCC unroll 8
  for (Index r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (Index v = 0; v < NV; ++v)
      if (r < rows && v * width < columns)
        write(sum[r][v], grad_w + (j0 + r) * in + c0 + v * width, nullptr, columns - v * width);
}

template <class T, Index NV>
void weight_gradient_block_of(Index vectors, const T* grad_y, Index out, const T* x, Index in,
                              Index n, Index j0, Index rows, Index c0, Index columns, T* grad_w) {
  if constexpr (NV > 1)
    if (vectors < NV)
      return weight_gradient_block_of<T, NV - 1>(vectors, grad_y, out, x, in, n, j0, rows, c0,
                                                 columns, grad_w);
  weight_gradient_block<T, rows_for(NV), NV>(grad_y, out, x, in, n, j0, rows, c0, columns, grad_w);
}

// The layout of a packing of `out` output columns over `in` inputs, with
// every entry (and the bias) zero: narrow (row_inputs left to the caller),
// or panels of up to kMaxVectors vectors, each reading the furthest of its
// vectors' reads(v) inputs; vectors that read nothing (only a bias) are
// panels of their own, so the others do not compute them.
template <class T, class Reads>
void lay_out(PackedDense<T>& p, Index out, Index in, const Reads& reads) {
  constexpr Index width = Batch<T>::size;
  p.out = out;
  p.in = in;
  p.panels.clear();
  p.narrow = 2 * out <= width;
  if (p.narrow) {
    p.row_stride = (in + width - 1) / width * width;
    p.values.assign(out * p.row_stride, T(0));
    p.row_inputs.assign(out, 0);
    p.bias.assign(width, T(0));
    return;
  }
  const Index vectors = (out + width - 1) / width;
  Index size = 0;
  for (Index v = 0; v < vectors;) {
    typename PackedDense<T>::Panel panel;
    panel.column_begin = v * width;
    const bool bias_only = reads(v) == 0;
    panel.vectors = 0;
    panel.inputs = 0;
    while (panel.vectors < kMaxVectors<T> && v + panel.vectors < vectors &&
           (reads(v + panel.vectors) == 0) == bias_only)
      panel.inputs = std::max(panel.inputs, reads(v + panel.vectors++));
    panel.columns = std::min(out - panel.column_begin, panel.vectors * width);
    panel.offset = size;
    size += panel.inputs * panel.vectors * width;
    p.panels.push_back(panel);
    v += panel.vectors;
  }
  p.values.assign(size, T(0));
  p.bias.assign(vectors * width, T(0));
}

}  // namespace

template <class T>
void PackedDense<T>::pack(const MatrixOf<T>& w, const T* b, const std::vector<RowBlock>* blocks) {
  constexpr Index width = Batch<T>::size;
  const Index rows = w.shape(0), cols = w.shape(1);
  // The inputs each vector of output columns reads: the largest col_end of
  // the row blocks it overlaps. (Computed here rather than kept: packing
  // runs in every pass and must not allocate.)
  lay_out(*this, rows, cols, [&](Index v) {
    if (!blocks) return cols;
    Index r = 0;
    for (const RowBlock& rb : *blocks)
      if (rb.row_begin < (v + 1) * width && rb.row_end > v * width) r = std::max(r, rb.col_end);
    return r;
  });
  // Column j of the output reads row j of w up to its block's col_end (the
  // entries past it are not kept by a blocked layer's copy).
  auto pack_rows = [&](Index row_begin, Index row_end, Index col_end) {
    if (narrow) {
      for (Index j = row_begin; j < row_end; ++j) {
        std::copy(w.data() + j * in, w.data() + j * in + col_end, values.data() + j * row_stride);
        row_inputs[j] = col_end;
      }
      return;
    }
    for (const Panel& p : panels) {
      const Index first = std::max(row_begin, p.column_begin);
      const Index last = std::min(row_end, p.column_begin + p.columns);
      const Index stride = p.vectors * width, inputs = std::min(col_end, p.inputs);
      // Input by input: contiguous stores along the panel's columns, the
      // loads down a column of w (small: it stays in the first-level cache).
      for (Index k = 0; k < inputs; ++k) {
        T* target = values.data() + p.offset + k * stride - p.column_begin;
        const T* column = w.data() + k;
        for (Index j = first; j < last; ++j) target[j] = column[j * in];
      }
    }
  };
  if (blocks)
    for (const RowBlock& rb : *blocks) pack_rows(rb.row_begin, rb.row_end, rb.col_end);
  else
    pack_rows(0, out, in);
  if (b) set_bias(b);
}

template <class T>
void PackedDense<T>::pack_transposed(const MatrixOf<T>& w, const std::vector<RowBlock>* blocks) {
  constexpr Index width = Batch<T>::size;
  const Index rows = w.shape(0), cols = w.shape(1);
  // Output column c is input c of w, reading every row of w (the rows that
  // do not reach c hold zeros here).
  lay_out(*this, cols, rows, [rows](Index) { return rows; });
  if (narrow) row_inputs.assign(cols, rows);
  // Row k of w up to col_end is input k of the packed columns below col_end.
  auto pack_rows = [&](Index row_begin, Index row_end, Index col_end) {
    for (Index k = row_begin; k < row_end; ++k) {
      const T* row = w.data() + k * cols;
      if (narrow) {
        for (Index c = 0; c < col_end; ++c) values[c * row_stride + k] = row[c];
        continue;
      }
      for (const Panel& p : panels) {
        const Index last = std::min(col_end, p.column_begin + p.columns);
        if (last > p.column_begin)
          std::copy(row + p.column_begin, row + last,
                    values.data() + p.offset + k * p.vectors * width);
      }
    }
  };
  if (blocks)
    for (const RowBlock& rb : *blocks) pack_rows(rb.row_begin, rb.row_end, rb.col_end);
  else
    pack_rows(0, rows, cols);
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
  T* dy = slope ? slope->data() : nullptr;
  if (packed.narrow)
    return run_narrow_of<T, Batch<T>::size / 2>(x, packed, ActivateAnyKind<T>{g, accumulate}, y,
                                                dy);
  detail::with_kind(f.kind(), [&](auto kind) {
    run_layer<T>(x, packed, Activate<T, decltype(kind)::value>{g, accumulate}, y, dy);
  });
}

template <class T>
bool small_weight_gradient_suits(Index in, Index out) {
  return small_dense_suits<T>(in, out) && in % Batch<T>::size == 0;
}

template <class T>
void small_dense_weight_gradient(const MatrixOf<T>& x, const MatrixOf<T>& grad_y,
                                 const std::vector<RowBlock>* blocks, MatrixOf<T>& grad_w) {
  constexpr Index width = Batch<T>::size, NV = kMaxVectors<T>, MR = rows_for(NV);
  const Index n = x.shape(0), in = x.shape(1), out = grad_y.shape(1);
  auto block = [&](const RowBlock& b) {
    if (n == 0) {
      for (Index j = b.row_begin; j < b.row_end; ++j)
        std::fill(grad_w.data() + j * in, grad_w.data() + j * in + b.col_end, T(0));
      return;
    }
    const Index vectors = (b.col_end + width - 1) / width;
    for (Index j0 = b.row_begin; j0 < b.row_end; j0 += MR)
      for (Index v0 = 0; v0 < vectors; v0 += NV) {
        const Index c0 = v0 * width;
        const Index nv = std::min(NV, vectors - v0);
        weight_gradient_block_of<T, NV>(nv, grad_y.data(), out, x.data(), in, n, j0,
                                        std::min(MR, b.row_end - j0), c0,
                                        std::min(b.col_end - c0, nv * width), grad_w.data());
      }
  };
  if (blocks)
    for (const RowBlock& b : *blocks) block(b);
  else
    block(RowBlock{0, out, in});
}

template <class T>
void small_dense_input_gradient(const PackedDense<T>& packed, const MatrixOf<T>& grad_y,
                                MatrixOf<T>& grad_x, const MatrixOf<T>* slope) {
  // TimesSlope only reads through the pointer that the forward epilogue
  // writes f' to.
  T* s = slope ? const_cast<T*>(slope->data()) : nullptr;
  if (packed.narrow)
    return run_narrow_of<T, Batch<T>::size / 2>(grad_y, packed, TimesSlope<T>{}, grad_x, s);
  run_layer<T>(grad_y, packed, TimesSlope<T>{}, grad_x, s);
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

template <class T>
void dense_layer_input_gradient(DenseCopy<T>& copy, const std::vector<RowBlock>* blocks,
                                const MatrixOf<T>& grad_y, MatrixOf<T>& grad_x,
                                const MatrixOf<T>* slope) {
  const Index out = copy.weight.shape(0), in = copy.weight.shape(1);
  if (small_dense_suits<T>(in, out)) {
    copy.packed_transposed.pack_transposed(copy.weight, blocks);
    small_dense_input_gradient(copy.packed_transposed, grad_y, grad_x, slope);
    return;
  }
  if (blocks)
    blocked_input_gradient(grad_y, copy.weight, *blocks, grad_x);
  else
    dense_input_gradient(grad_y, copy.weight, grad_x);
  if (slope) xt::noalias(grad_x) *= *slope;
}

template <class T>
void dense_layer_weight_gradient(DenseCopy<T>& copy, const std::vector<RowBlock>* blocks,
                                 const MatrixOf<T>& x, const MatrixOf<T>& grad_y) {
  const Index out = copy.weight.shape(0), in = copy.weight.shape(1);
  ensure(copy.grad_weight, out, in);
  if (small_weight_gradient_suits<T>(in, out))
    small_dense_weight_gradient(x, grad_y, blocks, copy.grad_weight);
  else if (blocks)
    blocked_weight_gradient(x, grad_y, *blocks, copy.grad_weight);
  else
    dense_weight_gradient(x, grad_y, copy.grad_weight, T(0));
}

#define FLOWS_SMALL_DENSE(T)                                                                    \
  template struct PackedDense<T>;                                                               \
  template bool small_dense_suits<T>(Index, Index);                                             \
  template bool small_weight_gradient_suits<T>(Index, Index);                                   \
  template void small_dense_weight_gradient<T>(const MatrixOf<T>&, const MatrixOf<T>&,          \
                                               const std::vector<RowBlock>*, MatrixOf<T>&);     \
  template void small_dense_input_gradient<T>(const PackedDense<T>&, const MatrixOf<T>&,        \
                                              MatrixOf<T>&, const MatrixOf<T>*);                \
  template void dense_layer_input_gradient<T>(DenseCopy<T>&, const std::vector<RowBlock>*,      \
                                              const MatrixOf<T>&, MatrixOf<T>&,                 \
                                              const MatrixOf<T>*);                              \
  template void dense_layer_weight_gradient<T>(DenseCopy<T>&, const std::vector<RowBlock>*,     \
                                               const MatrixOf<T>&, const MatrixOf<T>&);         \
  template void small_dense_forward<T>(const MatrixOf<T>&, const PackedDense<T>&,               \
                                       const Activation&, MatrixOf<T>&, bool, MatrixOf<T>*);    \
  template void dense_layer_infer<T>(DenseCopy<T>&, const std::vector<RowBlock>*,               \
                                     const MatrixOf<T>&, const Activation&, MatrixOf<T>&, bool, \
                                     MatrixOf<T>*);
FLOWS_SMALL_DENSE(float)
FLOWS_SMALL_DENSE(double)
#undef FLOWS_SMALL_DENSE

}  // namespace flows::nn
